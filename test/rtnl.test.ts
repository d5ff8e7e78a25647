// SPDX-License-Identifier: GPL-2.0-only
/*
 * The in-process rtnetlink reads (controller/src/netlink/rtnl.ts) against
 * iproute2, the user's tool, on the same namespaces: every field the
 * controller reads of every link (a veth whose peer is in another
 * namespace, one whose peer is beside it, a bridge and its port, an alias,
 * addrgenmode none, a device down) and every address (IPv4, IPv6 nodad,
 * IPv6 tentative) must be what `ip -j -d link show` / `ip -j addr show` say.
 * A namespace that does not exist fails as `ip -n` does.
 * The writes `link add` makes (RtnlWriter) give what iproute2 would show,
 * and a refusal names the operation, the device and the kernel's reason.
 * The nftables read (netlink/nftables.ts) agrees with `nft -j list ruleset`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestEnv, ip, ipJson } from './lib/topo.js';
import { rtnlAddrs, rtnlLinks } from '../controller/src/netlink/rtnl.js';
import type { IpAddrLink, IpLink } from '../controller/src/netlink/links.js';
import { LibcError, closeFd, netlinkRecv, netlinkSocket, setRecvTimeout } from '../native/libc.js';
import { IFF_NOARP, IFF_UP, namespaceFile, nsidNames, rtnlRoutes, rtnlRules, withRtnl } from '../controller/src/netlink/rtnl.js';
import { giveSlaveLinkLocal, masterLinkLocal, slaveLinkLocal } from '../controller/src/link/link-local.js';
import { nftRuleset } from '../controller/src/netlink/nftables.js';
import { addrBytes } from '../controller/src/netlink/addr.js';
import { IvbError } from '../controller/src/errors.js';
import { execFileSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';

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

describe('rtnetlink writes (link add without ip)', () => {
  it('a veth pair with its peer made straight in another namespace, then alias, flags, addrgenmode and a nodad address', () => {
    withRtnl(a, (w) => w.addVeth('wa', { mtu: 9000, mac: '02:00:00:00:0a:01' }, { name: 'wb', mtu: 1300, mac: '02:00:00:00:0a:02', netnsPath: namespaceFile(b) }));
    withRtnl(a, (w) => w.setLink('wa', { alias: 'peer-alias', flags: IFF_NOARP | IFF_UP, mask: IFF_NOARP | IFF_UP, addrGenModeNone: true }));
    withRtnl(b, (w) => w.setLink('wb', { alias: 'slave-alias', flags: IFF_NOARP, mask: IFF_NOARP }));
    const wb = ipJson<IpLink[]>(b, '-d', 'link', 'show', 'dev', 'wb')[0]!;
    withRtnl(b, (w) => {
      w.setLink('wb', { addrGenModeNone: true });
      w.addAddr(wb.ifindex, 6, addrBytes(6, 'fe80::1:2'), 64, { nodad: true, linkScope: true, what: 'addr add fe80::1:2/64 dev wb' });
    });
    const wa = ipJson<IpLink[]>(a, '-d', 'link', 'show', 'dev', 'wa')[0]!;
    expect({ mtu: wa.mtu, address: wa.address, alias: wa.ifalias, gen: wa.inet6_addr_gen_mode }).toEqual({ mtu: 9000, address: '02:00:00:00:0a:01', alias: 'peer-alias', gen: 'none' });
    expect(wa.flags).toEqual(expect.arrayContaining(['NOARP', 'UP']));
    const wb2 = ipJson<IpLink[]>(b, '-d', 'link', 'show', 'dev', 'wb')[0]!;
    expect({ mtu: wb2.mtu, address: wb2.address, alias: wb2.ifalias, gen: wb2.inet6_addr_gen_mode }).toEqual({ mtu: 1300, address: '02:00:00:00:0a:02', alias: 'slave-alias', gen: 'none' });
    expect(wb2.flags).toContain('NOARP');
    expect(wb2.flags).not.toContain('UP');
    expect(addrView(ipJson<IpAddrLink[]>(b, 'addr', 'show', 'dev', 'wb'))).toEqual([`${wb2.ifindex} inet6 fe80::1:2/64`]);
    // a veth is deleted with its peer, wherever that is
    withRtnl(a, (w) => w.delLink('wa'));
    expect(ipJson<IpLink[]>(b, 'link', 'show').some((l) => l.ifname === 'wb')).toBe(false);
  });

  it('a refusal names the operation and the device, with the kernel reason and errno', () => {
    let err: unknown = null;
    try {
      withRtnl(a, (w) => w.addVeth('va', { mtu: 1500, mac: '02:00:00:00:0b:01' }, { name: 'vnew', mtu: 1500, mac: '02:00:00:00:0b:02' }));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(IvbError);
    expect((err as IvbError).errno).toBe(17);
    expect((err as IvbError).message).toMatch(/^link add va type veth peer vnew: .*(File exists|exists)/);
    // nothing half-made: the peer name was not created either
    expect(ipJson<IpLink[]>(a, 'link', 'show').some((l) => l.ifname === 'vnew')).toBe(false);
    expect(() => withRtnl(a, (w) => w.delLink('nosuch9'))).toThrow(/link del nosuch9: /);
  });
});

describe('rtnetlink writes (CNI ADD, the learner and the link-local fix-up without ip)', () => {
  interface RouteJson {
    dst: string;
    gateway?: string;
    dev?: string;
    protocol?: string;
    scope?: string;
    metric?: number;
    metrics?: Array<Record<string, number>>;
  }

  it('a link moved into another namespace, renamed there by the same request', () => {
    ip(a, 'link', 'add', 'mv0', 'type', 'veth', 'peer', 'name', 'mv1');
    const idx = ipJson<IpLink[]>(a, 'link', 'show', 'dev', 'mv0')[0]!.ifindex;
    withRtnl(a, (w) => w.moveLink(idx, namespaceFile(b), 'moved0', 'link set dev mv0 netns b name moved0'));
    expect(ipJson<IpLink[]>(a, 'link', 'show').some((l) => l.ifname === 'mv0')).toBe(false);
    expect(rtnlLinks({ file: namespaceFile(b) }).some((l) => l.ifname === 'moved0')).toBe(true);
    // a name taken there: EEXIST, and (as with `ip link set … netns … name …`) the link
    // has been moved already, under its old name (what the CNI undo relies on: it deletes the pair)
    ip(a, 'link', 'add', 'mv2', 'type', 'veth', 'peer', 'name', 'mv3');
    const idx2 = ipJson<IpLink[]>(a, 'link', 'show', 'dev', 'mv2')[0]!.ifindex;
    expect(() => withRtnl(a, (w) => w.moveLink(idx2, namespaceFile(b), 'moved0', 'link set dev mv2 netns b name moved0'))).toThrow(/link set dev mv2 netns b name moved0: .*exists/);
    expect(ipJson<IpLink[]>(a, 'link', 'show').some((l) => l.ifname === 'mv2')).toBe(false);
    expect(ipJson<IpLink[]>(b, 'link', 'show', 'dev', 'mv2')).toHaveLength(1);
    ip(b, 'link', 'del', 'mv2');
    ip(b, 'link', 'del', 'moved0');
  });

  it('routes as ip route add / replace / del make them, read back as a dump of one table', () => {
    const va = ipJson<IpLink[]>(a, 'link', 'show', 'dev', 'va')[0]!;
    withRtnl(a, (w) => {
      w.addRoute({ family: 4, dst: addrBytes(4, '198.18.12.0'), dstLen: 24, oif: va.ifindex, gateway: addrBytes(4, '198.18.11.9'), priority: 7, mtu: 1280, advmss: 1200, what: 'r1' });
      w.addRoute({ family: 4, dst: addrBytes(4, '198.18.13.0'), dstLen: 24, oif: va.ifindex, what: 'r2' });
      w.addRoute({ family: 6, dst: addrBytes(6, '2001:db8:12::'), dstLen: 48, oif: va.ifindex, gateway: addrBytes(6, '2001:db8:11::9'), table: 0x49760077, what: 'r3' });
      w.addRoute({ family: 4, dst: addrBytes(4, '198.18.14.5'), dstLen: 32, oif: va.ifindex, table: 0x49760077, replace: true, what: 'r4' });
      w.addRoute({ family: 4, dst: addrBytes(4, '198.18.14.5'), dstLen: 32, oif: va.ifindex, table: 0x49760077, replace: true, what: 'r4 again' });
    });
    const main = ipJson<RouteJson[]>(a, '-4', 'route', 'show');
    // protocol boot, as ip route add sets it (ip prints no "proto" for boot)
    expect(main.find((r) => r.dst === '198.18.12.0/24')).toMatchObject({ gateway: '198.18.11.9', dev: 'va', metric: 7, metrics: [{ mtu: 1280, advmss: 1200 }] });
    expect(main.find((r) => r.dst === '198.18.13.0/24')).toMatchObject({ dev: 'va', scope: 'link' });
    expect(main.filter((r) => r.dst.startsWith('198.18.1') && r.dst !== '198.18.11.0/24').map((r) => r.protocol ?? 'boot')).toEqual(['boot', 'boot']);
    expect(ipJson<RouteJson[]>(a, '-6', 'route', 'show', 'table', String(0x49760077))).toEqual([expect.objectContaining({ dst: '2001:db8:12::/48', gateway: '2001:db8:11::9', dev: 'va' })]);
    expect(ipJson<RouteJson[]>(a, '-4', 'route', 'show', 'table', String(0x49760077))).toEqual([expect.objectContaining({ dst: '198.18.14.5', dev: 'va', scope: 'link' })]);
    expect(rtnlRoutes(a, 4, 0x49760077)).toEqual([{ dst: '198.18.14.5', dstLen: 32, oif: va.ifindex, gateway: null, type: 1 }]);
    expect(rtnlRoutes(a, 6, 0x49760077)).toEqual([{ dst: '2001:db8:12::', dstLen: 48, oif: va.ifindex, gateway: '2001:db8:11::9', type: 1 }]);
    // other types only when asked for (a flush takes them too)
    ip(a, 'route', 'add', 'blackhole', '198.18.15.0/24', 'table', String(0x49760077));
    expect(rtnlRoutes(a, 4, 0x49760077)).toHaveLength(1);
    expect(rtnlRoutes(a, 4, 0x49760077, true).find((r) => r.type === 6)).toMatchObject({ dst: '198.18.15.0', dstLen: 24, oif: null });
    withRtnl(a, (w) => w.delRoute({ family: 4, dst: addrBytes(4, '198.18.15.0'), dstLen: 24, table: 0x49760077, type: 6, what: 'd0' }));
    // a table never used is empty, not an error
    expect(rtnlRoutes(a, 4, 0x49760078)).toEqual([]);
    // add without replace refuses a route that exists
    expect(() => withRtnl(a, (w) => w.addRoute({ family: 4, dst: addrBytes(4, '198.18.13.0'), dstLen: 24, oif: va.ifindex, what: 'route add 198.18.13.0/24 dev va' }))).toThrow(/route add 198.18.13.0\/24 dev va: .*(exists)/);
    withRtnl(a, (w) => {
      w.delRoute({ family: 4, dst: addrBytes(4, '198.18.14.5'), dstLen: 32, table: 0x49760077, oif: va.ifindex, what: 'd1' });
      w.delRoute({ family: 6, dst: addrBytes(6, '2001:db8:12::'), dstLen: 48, table: 0x49760077, what: 'd2' });
      w.delRoute({ family: 4, dst: addrBytes(4, '198.18.12.0'), dstLen: 24, table: 254, what: 'd3' });
      w.delRoute({ family: 4, dst: addrBytes(4, '198.18.13.0'), dstLen: 24, table: 254, what: 'd4' });
    });
    expect(rtnlRoutes(a, 4, 0x49760077)).toEqual([]);
    expect(rtnlRoutes(a, 6, 0x49760077)).toEqual([]);
    expect(ipJson<RouteJson[]>(a, '-4', 'route', 'show').map((r) => r.dst)).toEqual(['198.18.11.0/24']);
    // a route that is not there: ESRCH
    let err: unknown = null;
    try {
      withRtnl(a, (w) => w.delRoute({ family: 4, dst: addrBytes(4, '198.18.14.5'), dstLen: 32, table: 0x49760077, what: 'd1 again' }));
    } catch (e) {
      err = e;
    }
    expect((err as IvbError).errno).toBe(3);
  });

  it('policy rules as ip rule add / del make them; nsids as ip netns list-id names them; a link\'s MAC and MTU', () => {
    interface RuleJson {
      priority: number;
      iif?: string;
      table?: string;
      action?: string;
      iif_detached?: unknown;
    }
    withRtnl(a, (w) => {
      w.addRule({ family: 4, priority: 20010, iifname: 'va', table: 0x49760005, what: 'rule 1' });
      w.addRule({ family: 6, priority: 20011, iifname: 'va', blackhole: true, what: 'rule 2' });
      w.addRule({ family: 4, priority: 20012, iifname: 'nosuch0', table: 0x49760006, what: 'rule 3' });
    });
    const v4 = ipJson<RuleJson[]>(a, '-4', 'rule', 'show');
    expect(v4.find((r) => r.priority === 20010)).toMatchObject({ iif: 'va', table: String(0x49760005) });
    expect(v4.find((r) => r.priority === 20012)).toHaveProperty('iif_detached');
    expect(ipJson<RuleJson[]>(a, '-6', 'rule', 'show').find((r) => r.priority === 20011)).toMatchObject({ iif: 'va', action: 'blackhole' });
    const ours = rtnlRules(a, 4).filter((r) => r.priority >= 20000 && r.priority < 30000);
    expect(ours).toEqual([
      { priority: 20010, iifname: 'va', table: 0x49760005, action: 1, iifDetached: false },
      { priority: 20012, iifname: 'nosuch0', table: 0x49760006, action: 1, iifDetached: true },
    ]);
    expect(rtnlRules(a, 6).find((r) => r.priority === 20011)).toMatchObject({ iifname: 'va', action: 6 });
    withRtnl(a, (w) => {
      w.delRule({ family: 4, priority: 20010, what: 'd1' });
      w.delRule({ family: 6, priority: 20011, what: 'd2' });
      w.delRule({ family: 4, priority: 20012, what: 'd3' });
    });
    expect(ipJson<RuleJson[]>(a, '-4', 'rule', 'show').map((r) => r.priority)).toEqual([0, 32766, 32767]);
    expect(() => withRtnl(a, (w) => w.delRule({ family: 4, priority: 20010, what: 'ip -4 rule del pref 20010' }))).toThrow(/ip -4 rule del pref 20010: /);

    const theirs = ipJson<Array<{ nsid: number; name?: string }>>(a, 'netns', 'list-id');
    expect(theirs.length).toBeGreaterThan(0); // va's peer lives in b
    expect([...nsidNames(a)].sort()).toEqual(theirs.filter((e) => e.name).map((e) => [e.nsid, e.name]).sort());

    withRtnl(a, (w) => w.setLink('vx', { address: '02:00:00:00:09:77', mtu: 1333 }));
    expect(ipJson<IpLink[]>(a, 'link', 'show', 'dev', 'vx')[0]).toMatchObject({ address: '02:00:00:00:09:77', mtu: 1333 });
    withRtnl(a, (w) => w.setLink('vx', { address: '02:00:00:00:09:01', mtu: 1500 }));
  });

  it('nsids: a name whose namespace is being deleted (unmounted, not yet unlinked) is passed over, not an error', () => {
    // `ip netns del` unmounts the namespace, then unlinks its file: in
    // between, the name opens as a plain file, and the kernel answers
    // RTM_GETNSID for it with EINVAL ("Peer netns reference is invalid").
    // Every resync of every port asks for all names, so one namespace going
    // away anywhere on the host failed them all.
    const before = [...nsidNames(a)].sort();
    const dying = `/run/netns/${a}-deleted`;
    writeFileSync(dying, '');
    try {
      expect([...nsidNames(a)].sort()).toEqual(before);
      // and entering it is the error of a namespace that is gone, which callers pass over
      expect(() => rtnlLinks(`${a}-deleted`)).toThrow(/Cannot open network namespace "[^"]+-deleted": not a network namespace/);
    } finally {
      rmSync(dying, { force: true });
    }
  });

  it("the link-local fix-up: generation off, the master's link-local replaced by the slave's", () => {
    ip(a, 'link', 'add', 'll0', 'address', '02:00:00:00:0c:01', 'type', 'veth', 'peer', 'name', 'll1');
    ip(a, 'link', 'set', 'll1', 'up');
    ip(a, 'link', 'set', 'll0', 'up');
    const ll0 = ipJson<IpLink[]>(a, 'link', 'show', 'dev', 'll0')[0]!;
    const own = masterLinkLocal('02:00:00:00:0c:01');
    const lls = (): string[] => ipJson<IpAddrLink[]>(a, 'addr', 'show', 'dev', 'll0')[0]!.addr_info.filter((i) => i.family === 'inet6').map((i) => i.local);
    expect(lls()).toEqual([own]);
    const want = slaveLinkLocal('02:00:00:00:0c:01', 3);
    expect(giveSlaveLinkLocal({ netns: a, ifname: 'll0', ifindex: ll0.ifindex, want, present: [own] })).toBe(true);
    expect(lls()).toEqual([want]);
    expect(ipJson<IpLink[]>(a, '-d', 'link', 'show', 'dev', 'll0')[0]!.inet6_addr_gen_mode).toBe('none');
    // again, with what it holds now: nothing to do, nothing changes; with a stale view: still right
    expect(giveSlaveLinkLocal({ netns: a, ifname: 'll0', ifindex: ll0.ifindex, want, present: [want], genModeNone: true })).toBe(true);
    expect(giveSlaveLinkLocal({ netns: a, ifname: 'll0', ifindex: ll0.ifindex, want, present: [own] })).toBe(true);
    expect(lls()).toEqual([want]);
    // down and up again: the kernel generates none
    ip(a, 'link', 'set', 'll0', 'down');
    ip(a, 'link', 'set', 'll0', 'up');
    expect(lls()).not.toContain(own);
    ip(a, 'link', 'del', 'll0');
  });
});

describe('nftables read over netlink agrees with nft -j', () => {
  it('chains (hook, policy) and rules (handle, comment)', () => {
    expect(nftRuleset(a)).toEqual([]);
    const nft = (cmd: string): void => {
      execFileSync('ip', ['netns', 'exec', a, 'nft', '-f', '-'], { input: `${cmd}\n` });
    };
    nft('add table inet tf');
    nft('add chain inet tf fchain { type filter hook forward priority 0; policy drop; }');
    nft('add chain inet tf inp { type filter hook input priority 0; policy accept; }');
    nft('add chain inet tf plain');
    nft('add rule inet tf fchain iifname "x1" counter accept comment "ipvlan-bpf:test:x1"');
    nft('add rule inet tf fchain oifname "x1" counter accept');
    nft('add table ip t4');
    nft('add chain ip t4 fchain4 { type filter hook forward priority 0; policy accept; }');
    const theirs = (JSON.parse(execFileSync('ip', ['netns', 'exec', a, 'nft', '-j', 'list', 'ruleset'], { encoding: 'utf8' })) as {
      nftables: Array<{ chain?: Record<string, unknown>; rule?: Record<string, unknown> }>;
    }).nftables;
    const view = (items: Array<{ chain?: Record<string, unknown>; rule?: Record<string, unknown> }>): string[] =>
      items
        .flatMap((i) =>
          i.chain
            ? [`chain ${i.chain.family} ${i.chain.table} ${i.chain.name} ${i.chain.hook ?? '-'} ${i.chain.policy ?? '-'}`]
            : i.rule
              ? [`rule ${i.rule.family} ${i.rule.table} ${i.rule.chain} ${i.rule.handle} ${i.rule.comment ?? '-'}`]
              : [],
        )
        .sort();
    const ours = view((nftRuleset(a) ?? []) as Array<{ chain?: Record<string, unknown>; rule?: Record<string, unknown> }>);
    expect(ours).toEqual(view(theirs));
    expect(ours.filter((l) => l.startsWith('rule'))).toHaveLength(2);
    expect(ours).toContain('chain inet tf fchain forward drop');
    expect(nftRuleset(`${env.prefix}nope`)).toBeNull();
  });
});
