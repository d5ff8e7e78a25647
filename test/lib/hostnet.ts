// SPDX-License-Identifier: GPL-2.0-only
/**
 * The "real host" shape of issue 11: the HOWTO's wire and master, l3/l3s
 * slaves ipvl0 (ns0) and ipvl1 (ns1) with the oracle's addresses, the wire
 * routing each slave address via the master's (the `*_routed` shape: NOARP
 * slaves are reached through the master), and a snapshot of everything in
 * the master's namespace that ipvlan-bpf may touch (rules, routes, the
 * forwarding and rp_filter sysctls, the nft ruleset), to show that nothing
 * of ours remains after the last `link del`.
 */
import { TestEnv, buildWire, configureSlave, ip, must, nsExec, run, waitUntil, type Wire } from './topo.js';

export interface Slave {
  ns: string;
  dev: string;
  v4: string;
  v6: string;
}

export interface HostTopo {
  w: Wire;
  s0: Slave;
  s1: Slave;
}

/** wire + master; two namespaces for slaves; the wire routes the slave addresses via the master */
export function buildHostTopo(env: TestEnv): HostTopo {
  const w = buildWire(env);
  const s0: Slave = { ns: env.netns('ns0'), dev: 'ipvl0', v4: '198.18.0.10', v6: '2001:db8::10' };
  const s1: Slave = { ns: env.netns('ns1'), dev: 'ipvl1', v4: '198.18.0.11', v6: '2001:db8::11' };
  for (const s of [s0, s1]) {
    ip(w.wire, 'route', 'add', `${s.v4}/32`, 'via', w.hostV4);
    ip(w.wire, '-6', 'route', 'add', `${s.v6}/128`, 'via', w.hostV6);
  }
  return { w, s0, s1 };
}

/** `link add` of both slaves in MODE, moved and configured as the HOWTO does (l3: default route out of the device) */
export async function addSlaves(env: TestEnv, t: HostTopo, mode: string): Promise<void> {
  for (const s of [t.s0, t.s1]) {
    env.cliOk('-n', t.w.host, 'link', 'add', 'link', t.w.master, 'name', s.dev, 'type', 'ipvlan', 'mode', mode);
    ip(t.w.host, 'link', 'set', 'dev', s.dev, 'netns', s.ns);
    configureSlave(s.ns, s.dev, `${s.v4}/24`, `${s.v6}/64`, 'dev');
  }
  for (const s of [t.s0, t.s1]) {
    await waitUntil(`${s.dev} learned`, () => {
      const got = env.learned(s.dev);
      return got.includes(s.v4) && got.includes(s.v6);
    }, 5_000);
    // the agent writes the port table's routes right after the map, in the background
    await waitUntil(`routes to ${s.v4} and ${s.v6} in the master's namespace`, () => {
      const routes = ip(t.w.host, '-4', 'route', 'show', 'table', 'all') + ip(t.w.host, '-6', 'route', 'show', 'table', 'all');
      return routes.includes(`${s.v4} dev ivb`) && routes.includes(`${s.v6} dev ivb`);
    }, 5_000);
  }
}

/** `count` pings (0.2 s apart, 1 s wait) from NS to ADDR; the number answered */
export function pings(ns: string, addr: string, count = 3): number {
  const r = nsExec(ns, 'ping', ['-c', String(count), '-i', '0.2', '-W', '1', addr], { timeoutMs: 15_000 });
  const m = r.stdout.match(/(\d+) received/);
  return m ? Number(m[1]) : 0;
}

export function sysctlIn(ns: string, ...kv: string[]): void {
  must('ip', ['netns', 'exec', ns, 'sysctl', '-qw', ...kv]);
}

export function sysctlOf(ns: string, key: string): string {
  return must('ip', ['netns', 'exec', ns, 'sysctl', '-n', key]).trim();
}

export function nftIn(ns: string, ...args: string[]): string {
  return must('ip', ['netns', 'exec', ns, 'nft', ...args]);
}

/** Everything ipvlan-bpf may change in the master's namespace, as text (no counters, no peers' own sysctls). */
export function hostState(t: HostTopo): Record<string, string> {
  const ns = t.w.host;
  const sysctls = run('ip', ['netns', 'exec', ns, 'sysctl', '-a'])
    .stdout.split('\n')
    .filter((l) => /^net\.(ipv4\.ip_forward|ipv4\.conf\.(all|default|eth0m)\.|ipv6\.conf\.(all|default|eth0m)\.)/.test(l))
    .filter((l) => !/stable_secret/.test(l))
    .join('\n');
  return {
    rules4: ip(ns, '-4', 'rule', 'show'),
    rules6: ip(ns, '-6', 'rule', 'show'),
    routes4: ip(ns, '-4', 'route', 'show', 'table', 'all'),
    routes6: ip(ns, '-6', 'route', 'show', 'table', 'all').split('\n').filter((l) => !/^(local|multicast) /.test(l) && !/fe80::/.test(l)).join('\n'),
    nft: nftIn(ns, '-s', 'list', 'ruleset'),
    sysctls,
  };
}
