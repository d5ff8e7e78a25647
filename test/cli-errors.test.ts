// SPDX-License-Identifier: GPL-2.0-only
/*
 * The CLI's control plane. Bad input (semantics §1.3 and iproute2's parser):
 * each case must print exactly one line, "ipvlan-bpf: ...", on stderr, exit
 * non-zero and leave nothing behind: no new device in any test namespace,
 * no new file under the private pin folder or state folder, and the same
 * `link show -j`. Then the good paths of §1.4 (one mode and flag per master,
 * last writer wins, bare `type ipvlan` means l3), port teardown with the last
 * slave, and the three ways of running in another namespace: `-n NS`,
 * `ip netns exec NS` (which remounts /sys and hides /sys/fs/bpf) and
 * `nsenter --net=/run/netns/NS`.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { TestEnv, ip, linkNames, linkOf, modeOf, type CliVia, type SlaveJson } from './lib/topo.js';

const env = new TestEnv('cli', 'ivbe');
let host: string;
let other: string;

interface Snapshot {
  links: Record<string, string[]>;
  pins: string[];
  state: string[];
  show: string;
}

function snapshot(): Snapshot {
  return {
    links: { [host]: linkNames(host), [other]: linkNames(other) },
    pins: env.pinFiles(),
    state: env.stateFiles(),
    show: env.cliOk('-j', 'link', 'show'),
  };
}

beforeAll(() => {
  host = env.netns('host');
  other = env.netns('other');
  // masters: veths (Ethernet) whose peers stay in the same namespace
  ip(host, 'link', 'add', 'eth0m', 'type', 'veth', 'peer', 'name', 'eth0p');
  ip(host, 'link', 'add', 'eth1m', 'type', 'veth', 'peer', 'name', 'eth1p');
  ip(other, 'link', 'add', 'eth2m', 'type', 'veth', 'peer', 'name', 'eth2p');
  // not Ethernet: a tun device (ARPHRD_NONE; this kernel has no ipip/gre to try as well)
  ip(host, 'tuntap', 'add', 'dev', 'tun0', 'mode', 'tun');
  // a bridge port already has an rx_handler: the kernel says EBUSY
  ip(host, 'link', 'add', 'br0', 'type', 'bridge');
  ip(host, 'link', 'add', 'bp0', 'type', 'veth', 'peer', 'name', 'bp1');
  ip(host, 'link', 'set', 'bp0', 'master', 'br0');
  ip(host, 'link', 'add', 'taken0', 'type', 'veth', 'peer', 'name', 'taken1');
  // a slave to aim `link set` at, so that a refused change can be seen not to apply
  env.cliOk('-n', host, 'link', 'add', 'link', 'eth0m', 'name', 'base0', 'type', 'ipvlan', 'mode', 'l2', 'private');
});

afterAll(async () => {
  await env.cleanup();
});

describe('bad input: one line on stderr, non-zero exit, nothing left behind', () => {
  const add = (master: string, name: string, ...ipvlan: string[]): string[] => [
    '-n', '<host>', 'link', 'add', 'link', master, 'name', name, 'type', 'ipvlan', ...ipvlan,
  ];
  /**
   * DEFECT marks a case the product gets wrong today: it runs as `it.fails`,
   * so the suite stays green and turns red the day the product is fixed (then
   * drop the mark).
   */
  const cases: Array<{ what: string; args: string[]; message: RegExp; defect?: string }> = [
    { what: 'unknown master', args: add('nosuch0', 'e1', 'mode', 'l2'), message: /Cannot find device "nosuch0"/ },
    { what: 'master is lo', args: add('lo', 'e1', 'mode', 'l2'), message: /lo or non-ether/ },
    { what: 'master is a tun device', args: add('tun0', 'e1', 'mode', 'l2'), message: /lo or non-ether/ },
    { what: 'master is a tun device, bare type ipvlan', args: add('tun0', 'e1'), message: /lo or non-ether/ },
    { what: 'master is a bridge port', args: add('bp0', 'e1', 'mode', 'l2'), message: /Device is already in use/ },
    { what: 'name already taken', args: add('eth0m', 'taken0', 'mode', 'l2'), message: /"taken0" already exists/ },
    { what: 'name is the master', args: add('eth0m', 'eth0m'), message: /already exists/ },
    { what: 'name of 16 bytes', args: add('eth0m', 'abcdefghijklmnop'), message: /longer than 15 bytes|not a valid ifname/ },
    { what: 'name of 16 bytes (UTF-8)', args: add('eth0m', 'abcdefghijklmné'), message: /longer than 15 bytes|not a valid ifname/ },
    { what: 'unknown mode', args: add('eth0m', 'e1', 'mode', 'l4'), message: /unknown mode "l4"/ },
    { what: 'mode without a value', args: add('eth0m', 'e1', 'mode'), message: /unknown mode|needs an argument/ },
    { what: 'unknown flag', args: add('eth0m', 'e1', 'mode', 'l2', 'hairpin'), message: /hairpin/ },
    { what: 'private and vepa together', args: add('eth0m', 'e1', 'mode', 'l2', 'private', 'vepa'), message: /private.*vepa|vepa.*private/ },
    { what: 'another link type', args: ['-n', '<host>', 'link', 'add', 'link', 'eth0m', 'name', 'e1', 'type', 'macvlan'], message: /macvlan/ },
    { what: 'no master', args: ['-n', '<host>', 'link', 'add', 'name', 'e1', 'type', 'ipvlan'], message: /link MASTER/ },
    { what: "master is a slave's host-side peer", args: add('<peer>', 'e1', 'mode', 'l2'), message: /host-side peer|lo or non-ether|already in use/ },
    { what: 'link del of an unknown device', args: ['-n', '<host>', 'link', 'del', 'nosuch0'], message: /Cannot find device "nosuch0"/ },
    { what: 'link del of a device that is not a slave', args: ['-n', '<host>', 'link', 'del', 'eth0m'], message: /eth0m is not an ipvlan-bpf slave/ },
    { what: 'link del of a plain veth', args: ['-n', '<host>', 'link', 'del', 'dev', 'taken0'], message: /not an ipvlan-bpf slave/ },
    { what: 'link set with a bad mode', args: ['-n', '<host>', 'link', 'set', 'dev', 'base0', 'type', 'ipvlan', 'mode', 'l9'], message: /unknown mode "l9"/ },
    { what: 'link set of a device that is not a slave', args: ['-n', '<host>', 'link', 'set', 'dev', 'eth0m', 'type', 'ipvlan', 'mode', 'l3'], message: /not an ipvlan-bpf slave/ },
    { what: 'link show of a device that is not a slave', args: ['-n', '<host>', 'link', 'show', 'dev', 'eth0m'], message: /not an ipvlan-bpf slave/ },
    { what: 'unknown -n namespace (link add)', args: ['-n', '<nosuch>', 'link', 'add', 'link', 'eth0m', 'name', 'e1', 'type', 'ipvlan'], message: /Cannot open network namespace/ },
    { what: 'unknown -n namespace (link del)', args: ['-n', '<nosuch>', 'link', 'del', 'base0'], message: /Cannot open network namespace/ },
    { what: 'unknown -n namespace (link set)', args: ['-n', '<nosuch>', 'link', 'set', 'dev', 'base0', 'type', 'ipvlan', 'mode', 'l3'], message: /Cannot open network namespace/ },
    {
      what: 'unknown -n namespace (link show)',
      args: ['-n', '<nosuch>', 'link', 'show'],
      message: /Cannot open network namespace/,
    },
    {
      what: 'unknown -n namespace (link show dev)',
      args: ['-n', '<nosuch>', 'link', 'show', 'dev', 'base0'],
      message: /Cannot open network namespace/,
    },
    { what: 'unknown option', args: ['-x', 'link', 'show'], message: /Option "-x" is unknown/ },
    { what: 'unknown object', args: ['route', 'show'], message: /Object "route" is unknown/ },
  ];

  for (const c of cases) {
    (c.defect ? it.fails : it)(c.defect ? `${c.what} [known defect: ${c.defect}]` : c.what, () => {
      const peer = env.slave('base0')!.ipvlan_bpf.peer;
      const args = c.args.map((a) => (a === '<host>' ? host : a === '<nosuch>' ? `${env.prefix}nosuch` : a === '<peer>' ? peer : a));
      const before = snapshot();
      const r = env.cli(args);
      expect(r.status, `exit status of ipvlan-bpf ${args.join(' ')}`).not.toBe(0);
      expect(r.stdout).toBe('');
      const lines = r.stderr.split('\n').filter((l) => l.trim() !== '');
      expect(lines, `stderr of ipvlan-bpf ${args.join(' ')}`).toHaveLength(1);
      expect(lines[0]).toMatch(/^ipvlan-bpf: /);
      expect(lines[0]).toMatch(c.message);
      expect(snapshot()).toEqual(before);
    });
  }

  it('a refused `link set` leaves the port as it was (l2 private)', () => {
    expect(modeOf(env.slave('base0')!)).toBe('l2 private');
  });
});

describe('mode and flags are per master, the last writer wins (§1.4)', () => {
  const modes = (): Record<string, string> =>
    Object.fromEntries(env.show().filter((s) => s.link === 'eth1m').map((s) => [s.ifname, modeOf(s)]));

  it('link add -n NS puts slave and peer in NS, where the master is', () => {
    env.cliOk('-n', host, 'link', 'add', 'link', 'eth1m', 'name', 'pa', 'type', 'ipvlan', 'mode', 'l2', 'private');
    const s = env.slave('pa')!;
    expect(s.ipvlan_bpf.master_netns).toBe(host);
    expect(s.ipvlan_bpf.netns).toBe(host);
    expect(linkOf(host, 'pa')).not.toBeNull();
    expect(linkOf(host, s.ipvlan_bpf.peer)).not.toBeNull();
    expect(modes()).toEqual({ pa: 'l2 private' });
  });

  it('a second slave with `mode l2` makes both l2 bridge (iproute2 always sends the flag)', () => {
    env.cliOk('-n', host, 'link', 'add', 'link', 'eth1m', 'name', 'pb', 'type', 'ipvlan', 'mode', 'l2');
    expect(modes()).toEqual({ pa: 'l2 bridge', pb: 'l2 bridge' });
  });

  it('`link set` on one slave changes every slave', () => {
    env.cliOk('-n', host, 'link', 'set', 'dev', 'pa', 'type', 'ipvlan', 'mode', 'l2', 'private');
    expect(modes()).toEqual({ pa: 'l2 private', pb: 'l2 private' });
  });

  it('a slave added with bare `type ipvlan` turns the port to l3 and keeps the flag; NOARP follows', () => {
    env.cliOk('-n', host, 'link', 'add', 'link', 'eth1m', 'name', 'pc', 'type', 'ipvlan');
    expect(modes()).toEqual({ pa: 'l3 private', pb: 'l3 private', pc: 'l3 private' });
    for (const n of ['pa', 'pb', 'pc']) expect(linkOf(host, n)?.flags).toContain('NOARP');
  });

  it('`link set dev X type ipvlan mode l3s vepa` changes every slave', () => {
    env.cliOk('-n', host, 'link', 'set', 'dev', 'pc', 'type', 'ipvlan', 'mode', 'l3s', 'vepa');
    expect(modes()).toEqual({ pa: 'l3s vepa', pb: 'l3s vepa', pc: 'l3s vepa' });
  });

  it('`link set ... mode l3` resets the flag to bridge (§9.1 #5)', () => {
    env.cliOk('-n', host, 'link', 'set', 'dev', 'pb', 'type', 'ipvlan', 'mode', 'l3');
    expect(modes()).toEqual({ pa: 'l3 bridge', pb: 'l3 bridge', pc: 'l3 bridge' });
  });

  it('a 15-byte name is accepted', () => {
    env.cliOk('-n', host, 'link', 'add', 'link', 'eth1m', 'name', 'abcdefghijklmno', 'type', 'ipvlan', 'mode', 'l2');
    expect(linkOf(host, 'abcdefghijklmno')).not.toBeNull();
    expect(modes()['abcdefghijklmno']).toBe('l2 bridge');
    expect(linkOf(host, 'pa')?.flags).not.toContain('NOARP');
  });

  it("`link del` of the last slave removes the port's pins, record and peers", () => {
    const portId = env.slave('pa')!.ipvlan_bpf.port_id;
    const peers = env.show().filter((s) => s.link === 'eth1m').map((s) => s.ipvlan_bpf.peer);
    expect(env.pinFiles().some((f) => f.startsWith(`ports/${portId}/`))).toBe(true);
    expect(env.stateFiles()).toContain(`ports/${portId}.json`);
    for (const n of ['pa', 'pb', 'pc']) env.cliOk('-n', host, 'link', 'del', n);
    // one slave left: the port is still there
    expect(env.pinFiles().some((f) => f.startsWith(`ports/${portId}/`))).toBe(true);
    env.cliOk('-n', host, 'link', 'del', 'dev', 'abcdefghijklmno');
    expect(env.pinFiles().filter((f) => f.startsWith(`ports/${portId}/`))).toEqual([]);
    expect(env.stateFiles()).not.toContain(`ports/${portId}.json`);
    expect(modes()).toEqual({});
    const names = linkNames(host);
    for (const p of peers) expect(names).not.toContain(p);
    for (const n of ['pa', 'pb', 'pc', 'abcdefghijklmno']) expect(names).not.toContain(n);
    // the other port (base0 on eth0m) is untouched
    expect(modeOf(env.slave('base0')!)).toBe('l2 private');
  });
});

describe('running in the master namespace: -n NS, ip netns exec NS, nsenter --net', () => {
  /** what must be the same whichever way the command was run */
  const essence = (s: SlaveJson): Record<string, unknown> => ({
    link: s.link,
    mode: modeOf(s),
    master_netns: s.ipvlan_bpf.master_netns,
    netns: s.ipvlan_bpf.netns,
    kind: s.linkinfo.info_kind,
  });
  const ways: Array<{ via: CliVia; name: string; global: string[] }> = [
    { via: 'direct', name: 'vdirect', global: ['-n', '<other>'] },
    { via: 'ip-netns-exec', name: 'vexec', global: [] },
    { via: 'nsenter', name: 'vnsenter', global: [] },
  ];
  const results: Record<string, Record<string, unknown>> = {};

  for (const w of ways) {
    it(`${w.via}: link add, show, set, del`, () => {
      const g = w.global.map((a) => (a === '<other>' ? other : a));
      const before = linkNames(other);
      const addR = env.cli([...g, 'link', 'add', 'link', 'eth2m', 'name', w.name, 'type', 'ipvlan', 'mode', 'l2'], w.via, other);
      expect(addR.stderr).toBe('');
      expect(addR.status).toBe(0);
      const s = env.slave(w.name)!;
      expect(s).toBeDefined();
      results[w.via] = essence(s);
      expect(results[w.via]).toEqual({ link: 'eth2m', mode: 'l2 bridge', master_netns: other, netns: other, kind: 'ipvlan' });
      expect(linkOf(other, w.name)).not.toBeNull();
      expect(linkOf(other, s.ipvlan_bpf.peer)).not.toBeNull();
      // the pins went to the private folder, even where /sys was remounted
      expect(env.pinFiles()).toContain(`ports/${s.ipvlan_bpf.port_id}/link_peer_${s.ipvlan_bpf.peer_ifindex}`);
      const showR = env.cli([...g, '-j', 'link', 'show', 'dev', w.name], w.via, other);
      expect(showR.status).toBe(0);
      expect((JSON.parse(showR.stdout) as SlaveJson[]).map(essence)).toEqual([results[w.via]]);
      const setR = env.cli([...g, 'link', 'set', 'dev', w.name, 'type', 'ipvlan', 'mode', 'l3'], w.via, other);
      expect(setR.status).toBe(0);
      expect(modeOf(env.slave(w.name)!)).toBe('l3 bridge');
      const delR = env.cli([...g, 'link', 'del', w.name], w.via, other);
      expect(delR.stderr).toBe('');
      expect(delR.status).toBe(0);
      expect(env.slave(w.name)).toBeUndefined();
      expect(linkNames(other)).toEqual(before);
      expect(env.pinFiles().filter((f) => f.startsWith(`ports/${s.ipvlan_bpf.port_id}/`))).toEqual([]);
    });
  }

  it('all three ways give the same result', () => {
    expect(results['ip-netns-exec']).toEqual(results.direct);
    expect(results.nsenter).toEqual(results.direct);
  });
});
