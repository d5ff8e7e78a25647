// SPDX-License-Identifier: GPL-2.0-only
/*
 * The in-process rtnetlink reads (controller/src/netlink/rtnl.ts) against
 * iproute2, the user's tool, on the same namespaces: every field the
 * controller reads of every link (a veth whose peer is in another
 * namespace, one whose peer is beside it, a bridge and its port, an alias,
 * addrgenmode none, a device down) and every address (IPv4, IPv6 nodad,
 * IPv6 tentative) must be what `ip -j -d link show` / `ip -j addr show` say.
 * A namespace that does not exist fails as `ip -n` does.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestEnv, ip, ipJson } from './lib/topo.js';
import { rtnlAddrs, rtnlLinks } from '../controller/src/netlink/rtnl.js';
import type { IpAddrLink, IpLink } from '../controller/src/netlink/links.js';
import { LibcError, closeFd, netlinkRecv, netlinkSocket, setRecvTimeout } from '../native/libc.js';

const env = new TestEnv('rtnl', 'ivbrn');
let a: string;
let b: string;

beforeAll(() => {
  a = env.netns('a');
  b = env.netns('b');
  ip(a, 'link', 'add', 'va', 'mtu', '1400', 'type', 'veth', 'peer', 'name', 'vb', 'netns', b);
  ip(a, 'link', 'add', 'vx', 'address', '02:00:00:00:09:01', 'type', 'veth', 'peer', 'name', 'vy');
  ip(a, 'link', 'add', 'br0', 'type', 'bridge');
  ip(a, 'link', 'set', 'vy', 'master', 'br0');
  ip(a, 'link', 'set', 'vx', 'alias', 'ipvlan-bpf:7:ivb7x1');
  ip(a, 'link', 'set', 'vx', 'addrgenmode', 'none');
  for (const d of ['va', 'vx', 'br0']) ip(a, 'link', 'set', d, 'up');
  ip(a, 'addr', 'add', '198.18.11.1/24', 'dev', 'va');
  ip(a, 'addr', 'add', '2001:db8:11::1/64', 'dev', 'va', 'nodad');
  ip(a, 'addr', 'add', '2001:db8:11::2/64', 'dev', 'vx');
  ip(a, 'addr', 'add', '198.18.11.9/32', 'dev', 'br0');
});

afterAll(async () => {
  await env.cleanup();
});

/** The fields the controller reads, from either source. */
function linkView(l: IpLink): Record<string, unknown> {
  return {
    ifindex: l.ifindex,
    ifname: l.ifname,
    flags: [...l.flags].filter((f) => f !== 'M-DOWN').sort(),
    mtu: l.mtu,
    link_type: l.link_type,
    address: l.link_type === 'ether' ? l.address : undefined,
    // iproute2 gives the lower device's name in the same namespace, its index (and nsid) across
    link: l.link_netnsid === undefined ? (l.link ?? null) : undefined,
    link_index: l.link_netnsid !== undefined ? l.link_index : undefined,
    link_netnsid: l.link_netnsid,
    master: l.master,
    ifalias: l.ifalias,
    kind: l.linkinfo?.info_kind,
    slaveKind: l.linkinfo?.info_slave_kind,
    genMode: l.inet6_addr_gen_mode,
    operstate: l.operstate,
  };
}

function addrView(list: IpAddrLink[]): string[] {
  return list
    .flatMap((l) => (l.addr_info ?? []).map((i) => `${l.ifindex} ${i.family} ${i.local}/${i.prefixlen}${i.tentative ? ' tentative' : ''}${i.dadfailed ? ' dadfailed' : ''}`))
    .sort();
}

describe('rtnetlink reads agree with iproute2', () => {
  it('links: every field the controller reads', () => {
    for (const ns of [a, b]) {
      const theirs = ipJson<IpLink[]>(ns, '-d', 'link', 'show').map(linkView);
      const ours = rtnlLinks(ns).map(linkView);
      expect(ours).toEqual(theirs);
    }
  });

  it('addresses: family, address, prefix, tentative', () => {
    for (const ns of [a, b]) {
      const theirs = addrView(ipJson<IpAddrLink[]>(ns, 'addr', 'show'));
      const ours = addrView(rtnlAddrs(ns));
      expect(ours).toEqual(theirs);
      expect(ours.length).toBeGreaterThan(1);
    }
    // the one added with DAD on a device without carrier (vy is down) stays tentative, in both
    expect(addrView(rtnlAddrs(a)).some((x) => x.includes('2001:db8:11::2/64 tentative'))).toBe(true);
  });

  it('a namespace that does not exist fails as ip -n does', () => {
    expect(() => rtnlLinks(`${env.prefix}nope`)).toThrow(/Cannot open network namespace/);
  });

  it('a netlink socket the kernel does not answer gives up with EAGAIN instead of hanging (the dumps retry once, then fail)', () => {
    const fd = netlinkSocket(0);
    try {
      setRecvTimeout(fd, 150);
      const t0 = performance.now();
      let err: unknown = null;
      try {
        netlinkRecv(fd, Buffer.alloc(4096));
      } catch (e) {
        err = e;
      }
      const ms = performance.now() - t0;
      expect(err).toBeInstanceOf(LibcError);
      expect((err as LibcError).code).toBe('EAGAIN');
      expect(ms).toBeGreaterThanOrEqual(100);
    } finally {
      closeFd(fd);
    }
  });
});
