// SPDX-License-Identifier: GPL-2.0-only
/**
 * The HOWTO's wire (ipvlan-howto §6), built in one place for the demo, the
 * end-to-end tests and the bench: a master that is one end of a veth pair in
 * a "host" namespace, whose other end sits in a "wire" namespace playing the
 * external router; and the per-namespace steps a slave gets.
 *
 * The namespaces are the caller's: it makes them, keeps track of them and
 * deletes them (the tests' TestEnv, the demo, the bench each do that their
 * own way). This only adds devices, addresses, routes, neighbours and
 * sysctls inside them. Only documentation ranges (198.18.0.0/15,
 * 2001:db8::/32) belong here; nothing touches the init namespace.
 */

/**
 * Runs CMD with ARGS to completion and throws when it fails. Each caller
 * brings its own: the product's `runOk` (an IvbError), a test's `must`
 * (stderr in the message), the bench's `must` (timed).
 */
export type Runner = (cmd: string, args: readonly string[]) => unknown;

/** The HOWTO's master and addresses: the router is .1, the master .2 of the wire's subnet. */
export const HOWTO = {
  master: 'eth0m',
  masterMac: '02:00:00:00:00:02',
  router4: '198.18.0.1',
  router6: '2001:db8::1',
  master4: '198.18.0.2',
  master6: '2001:db8::2',
  prefix4: 24,
  prefix6: 64,
} as const;

export interface WireSpec {
  /** the master's namespace */
  host: string;
  /** the namespace of the veth's other end: the wire, the external router */
  wire: string;
  /** the master: a veth in HOST */
  master: string;
  /** its peer in WIRE */
  peer: string;
  /** fixed MACs (the kernel picks random ones otherwise) */
  masterMac?: string;
  peerMac?: string;
  /** the master's addresses with their prefix ("198.18.0.2/24"); IPv6 ones are added without DAD */
  masterAddrs: readonly string[];
  /** the router's, on the wire side */
  routerAddrs: readonly string[];
  /** a bridge in WIRE that PEER joins and that carries the router's addresses, so that more wire hosts can hang off it */
  bridge?: string;
  /** the wire forwards IPv4 and IPv6: a router, not a host */
  forwarding?: boolean;
  /** the master's namespace routes by default via the router's address of each family */
  defaultRoutes?: boolean;
  /** permanent neighbours both ways (needs both MACs): no ARP or NDP crosses the master */
  staticNeighbours?: boolean;
}

const bare = (cidr: string): string => cidr.split('/')[0]!;
const isV6 = (addr: string): boolean => addr.includes(':');

/** `sysctl -qw KEY=VALUE...` inside NS */
export function sysctlIn(run: Runner, ns: string, ...kv: string[]): void {
  run('ip', ['netns', 'exec', ns, 'sysctl', '-qw', ...kv]);
}

function addAddr(run: Runner, ns: string, dev: string, cidr: string): void {
  run('ip', ['-n', ns, 'addr', 'add', cidr, 'dev', dev, ...(isV6(cidr) ? ['nodad'] : [])]);
}

/** The master veth and the wire side as SPEC says, everything up. */
export function buildMasterWire(run: Runner, s: WireSpec): void {
  const ip = (ns: string, ...args: string[]): unknown => run('ip', ['-n', ns, ...args]);
  const mac = (m: string | undefined): string[] => (m ? ['address', m] : []);
  ip(s.host, 'link', 'add', s.master, ...mac(s.masterMac), 'type', 'veth', 'peer', 'name', s.peer, ...mac(s.peerMac), 'netns', s.wire);

  const routerDev = s.bridge ?? s.peer;
  if (s.bridge) {
    ip(s.wire, 'link', 'add', s.bridge, 'type', 'bridge');
    ip(s.wire, 'link', 'set', s.peer, 'master', s.bridge);
  }
  ip(s.wire, 'link', 'set', s.peer, 'up');
  if (s.bridge) ip(s.wire, 'link', 'set', s.bridge, 'up');
  for (const a of s.routerAddrs) addAddr(run, s.wire, routerDev, a);
  if (s.forwarding) sysctlIn(run, s.wire, 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1');

  ip(s.host, 'link', 'set', s.master, 'up');
  for (const a of s.masterAddrs) addAddr(run, s.host, s.master, a);
  if (s.defaultRoutes) {
    for (const r of s.routerAddrs) ip(s.host, ...(isV6(r) ? ['-6'] : []), 'route', 'add', 'default', 'via', bare(r), 'dev', s.master);
  }
  if (s.staticNeighbours) {
    if (!s.masterMac || !s.peerMac) throw new Error(`static neighbours on ${s.master} need both MACs`);
    for (const r of s.routerAddrs) ip(s.host, 'neigh', 'replace', bare(r), 'lladdr', s.peerMac, 'dev', s.master, 'nud', 'permanent');
    for (const m of s.masterAddrs) ip(s.wire, 'neigh', 'replace', bare(m), 'lladdr', s.masterMac, 'dev', routerDev, 'nud', 'permanent');
  }
}

/** The HOWTO's wire with a master in HOST and the router in WIRE (peer PEER): addresses, forwarding and all. */
export function howtoWireSpec(host: string, wire: string, peer: string, masterMac: string = HOWTO.masterMac): WireSpec {
  return {
    host,
    wire,
    master: HOWTO.master,
    peer,
    masterMac,
    masterAddrs: [`${HOWTO.master4}/${HOWTO.prefix4}`, `${HOWTO.master6}/${HOWTO.prefix6}`],
    routerAddrs: [`${HOWTO.router4}/${HOWTO.prefix4}`, `${HOWTO.router6}/${HOWTO.prefix6}`],
    forwarding: true,
  };
}

/**
 * The HOWTO's per-namespace steps for a slave DEV in NS: link and lo up, an
 * IPv4 and an IPv6 address (with prefix; no DAD), and default routes via the
 * router (GW4/GW6) or, for l3, out of the device.
 */
export function configureSlave(
  run: Runner,
  ns: string,
  dev: string,
  v4: string,
  v6: string,
  via: { gw4: string; gw6: string } | 'dev',
): void {
  const ip = (...args: string[]): unknown => run('ip', ['-n', ns, ...args]);
  ip('link', 'set', 'dev', dev, 'up');
  ip('link', 'set', 'dev', 'lo', 'up');
  addAddr(run, ns, dev, v4);
  addAddr(run, ns, dev, v6);
  const via4 = via === 'dev' ? [] : ['via', via.gw4];
  const via6 = via === 'dev' ? [] : ['via', via.gw6];
  ip('route', 'add', 'default', ...via4, 'dev', dev);
  ip('-6', 'route', 'add', 'default', ...via6, 'dev', dev);
}
