// SPDX-License-Identifier: GPL-2.0-only
/**
 * The HOWTO's example topology (ipvlan-howto §6) in throw-away namespaces:
 *
 *   router ns: eth0r 198.18.0.1/24 2001:db8::1/64, lo 198.19.0.1 ("remote")
 *   host ns:   eth0m, the master (a veth whose peer is eth0r), 198.18.0.2/24
 *   ns0, ns1:  the slaves ipvl0, ipvl1, created on eth0m and moved there
 *
 * Only documentation ranges (198.18.0.0/15, 2001:db8::/32) and only our own
 * namespaces: nothing here touches the machine's own devices.
 */
import { existsSync } from 'node:fs';
import { buildMasterWire, configureSlave, howtoWireSpec, sysctlIn, HOWTO } from '../lab/wire.js';
import { ip, ipTry, run, runOk } from '../netlink/exec.js';

export const MASTER = HOWTO.master;
export const MASTER_MAC = HOWTO.masterMac;
export const ROUTER_DEV = 'eth0r';

export const ADDR = {
  router4: HOWTO.router4,
  router6: HOWTO.router6,
  master4: HOWTO.master4,
  master6: HOWTO.master6,
  remote4: '198.19.0.1',
  broadcast4: '255.255.255.255',
} as const;

/** a slave's addresses in one addressing plan (l2: the wire's subnet; l3: its own) */
export interface SlavePlan {
  v4: string;
  v6: string;
}

export interface SlaveSpec {
  dev: string;
  /** short label used in the report */
  label: 'ns0' | 'ns1';
  ns: string;
  l2: SlavePlan;
  l3: SlavePlan;
}

/** the subnet l3 slaves move to, routed by the router via the master */
export const L3_NET4 = '198.18.1.0/24';
export const L3_NET6 = '2001:db8:1::/64';

export interface Topology {
  prefix: string;
  host: string;
  router: string;
  slaves: [SlaveSpec, SlaveSpec];
}

export function topologyNames(pid: number): Topology {
  const prefix = `ivbdemo-${pid}-`;
  const slave = (i: 0 | 1): SlaveSpec => ({
    dev: `ipvl${i}`,
    label: i === 0 ? 'ns0' : 'ns1',
    ns: `${prefix}ns${i}`,
    l2: { v4: `198.18.0.1${i}`, v6: `2001:db8::1${i}` },
    l3: { v4: `198.18.1.1${i}`, v6: `2001:db8:1::1${i}` },
  });
  return { prefix, host: `${prefix}host`, router: `${prefix}router`, slaves: [slave(0), slave(1)] };
}

export function allNamespaces(t: Topology): string[] {
  return [t.slaves[0].ns, t.slaves[1].ns, t.host, t.router];
}

function addNetns(ns: string): void {
  runOk('ip', ['netns', 'add', ns]);
  ip(['link', 'set', 'dev', 'lo', 'up'], ns);
}

/**
 * Creates the namespaces, the master and the router (the HOWTO's wire, with
 * the host's default routes via the router); the slaves come later, through
 * the library.
 */
export function buildTopology(t: Topology): void {
  for (const ns of allNamespaces(t)) addNetns(ns);
  buildMasterWire(runOk, { ...howtoWireSpec(t.host, t.router, ROUTER_DEV), defaultRoutes: true });
  // a "remote" network behind the router, on its lo
  ip(['addr', 'add', `${ADDR.remote4}/32`, 'dev', 'lo'], t.router);
  // no redirects, so the l3 hairpin via the router stays quiet
  sysctlIn(runOk, t.router, 'net.ipv4.conf.all.send_redirects=0', `net.ipv4.conf.${ROUTER_DEV}.send_redirects=0`);
  // the broadcast check counts echo requests answered by the slaves
  for (const s of t.slaves) sysctlIn(runOk, s.ns, 'net.ipv4.icmp_echo_ignore_broadcasts=0');
}

/** The HOWTO's per-namespace steps (up, lo, addresses, default routes via the router), IPv6 without DAD. */
export function configureSlaveL2(s: SlaveSpec): void {
  configureSlave(runOk, s.ns, s.dev, `${s.l2.v4}/24`, `${s.l2.v6}/64`, { gw4: ADDR.router4, gw6: ADDR.router6 });
}

/**
 * l3: the slave gets its own subnet and a default route out of the device
 * (the master's namespace does the real routing), as the kernel docs and
 * CNI configure it. Link-locals stay.
 */
export function renumberSlaveL3(s: SlaveSpec): void {
  ip(['addr', 'del', `${s.l2.v4}/24`, 'dev', s.dev], s.ns);
  ip(['addr', 'del', `${s.l2.v6}/64`, 'dev', s.dev], s.ns);
  ip(['addr', 'add', `${s.l3.v4}/24`, 'dev', s.dev], s.ns);
  ip(['addr', 'add', `${s.l3.v6}/64`, 'dev', s.dev, 'nodad'], s.ns);
  ip(['route', 'replace', 'default', 'dev', s.dev], s.ns);
  ip(['-6', 'route', 'replace', 'default', 'dev', s.dev], s.ns);
}

/** The router reaches l3 slaves through the master's address: l3 slaves answer no ARP/NDP. */
export function routeL3ViaMaster(t: Topology): void {
  ip(['route', 'add', L3_NET4, 'via', ADDR.master4], t.router);
  ip(['-6', 'route', 'add', L3_NET6, 'via', ADDR.master6], t.router);
}

export function linkFlags(ns: string, dev: string): string[] {
  const r = ipTry(['-j', 'link', 'show', 'dev', dev], ns);
  if (r.status !== 0) return [];
  const list = JSON.parse(r.stdout) as Array<{ flags?: string[] }>;
  return list[0]?.flags ?? [];
}

export function addrsOf(ns: string, dev: string): string[] {
  const r = ipTry(['-j', 'addr', 'show', 'dev', dev], ns);
  if (r.status !== 0) return [];
  const list = JSON.parse(r.stdout) as Array<{ addr_info?: Array<{ local: string }> }>;
  return (list[0]?.addr_info ?? []).map((a) => a.local);
}

/** Deletes whichever of our namespaces exist (the veth pairs inside go with them). */
export function deleteNamespaces(t: Topology): void {
  for (const ns of allNamespaces(t)) {
    if (existsSync(`/run/netns/${ns}`)) run('ip', ['netns', 'del', ns]);
  }
}
