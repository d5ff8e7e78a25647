// SPDX-License-Identifier: GPL-2.0-only
/**
 * What a port sets up in its master's namespace so that l3 and l3s work on
 * real hosts (issue 11), and takes away with its last slave:
 *
 * - a routing table of the port (`tableOf`) with a /32 or /128 route to
 *   every learned slave address via the slave's host-side peer, selected
 *   by `ip rule iif MASTER` only. Two lookups find it: the input route of a
 *   packet that arrives on the master (l3s ingress, forwarded to the peer),
 *   and the reverse-path check of slave egress forwarded out of the master
 *   (the kernel's __fib_validate_source looks up with iif = the forward
 *   route's output device), so all.rp_filter 1 and 2 pass. The master's
 *   own traffic (iif lo) does not see the table: it keeps the kernel's
 *   outcome (master -> slave fails).
 * - accept rules for each host-side peer (`iifname PEER`, `oifname PEER`) at
 *   the top of every forward base chain whose policy is drop (iptables-nft's
 *   FORWARD under Docker or ufw, a user's own nft chain): an accept in a
 *   table of ours would not help, every base chain at the hook must accept.
 *   Each carries the comment `ipvlan-bpf:<state>:<peer>`; only rules with
 *   that comment are ever deleted.
 * - l3s only: forwarding on the master (`net.ipv4.conf.MASTER.forwarding`,
 *   `net.ipv6.conf.MASTER.force_forwarding`), with the values found saved in
 *   the port record and put back when the port leaves l3s; where the master
 *   did not forward before, a `blackhole` rule for everything else arriving
 *   on it, so the master does not become a transit router.
 */
import { basename } from 'node:path';
import { IvbError, ENETDOWN, ENODEV, ENOENT, ESRCH, isIvbError } from '../errors.js';
import { sysctlRead, sysctlWrite } from '../netlink/sysctl.js';
import { netnsExists } from '../netlink/netns.js';
import { run } from '../netlink/exec.js';
import { pinRoot } from '../paths.js';
import { refusedWith, rtnlRoutes, rtnlRules, withRtnl, type RtnlRule } from '../netlink/rtnl.js';
import { addrBytes } from '../netlink/addr.js';
import { nftRuleset, type NftChain, type NftItem, type NftRule } from '../netlink/nftables.js';
import type { L3sSaved, PortRecord } from '../state.js';
import type { Family } from '../netlink/addr.js';

/** routing tables 0x49760000 + port id ("Iv"): out of the way of the usual small numbers */
const TABLE_BASE = 0x49760000;
/** rule preferences: before main (32766), after local (0); two per port */
const PREF_BASE = 20000;
const PREF_PORTS = 5000;

function tableOf(portId: number): number {
  return TABLE_BASE + portId;
}

function prefOf(portId: number): { lookup: number; blackhole: number } {
  const slot = portId % PREF_PORTS;
  return { lookup: PREF_BASE + 2 * slot, blackhole: PREF_BASE + 2 * slot + 1 };
}

/** whether a rule preference is one of ours (for gc) */
function isOurPref(pref: number): boolean {
  return pref >= PREF_BASE && pref < PREF_BASE + 2 * PREF_PORTS;
}


/** Deletes every FAMILY rule of preference PREF in NETNS (a rule may have been added twice by hand); none is no error. */
function delRules(f: Family, pref: number, netns: string | null): void {
  withRtnl(netns, (w) => {
    for (let i = 0; i < 64; i++) {
      try {
        w.delRule({ family: f, priority: pref, what: `ip -${f} rule del pref ${pref}` });
      } catch (e) {
        if (refusedWith(e, ENOENT)) return;
        throw e;
      }
    }
  });
}

/** Deletes every FAMILY route of TABLE in NETNS (`ip route flush table`). */
function flushTable(f: Family, table: number, netns: string | null): void {
  const routes = rtnlRoutes(netns, f, table, true);
  if (routes.length === 0) return;
  withRtnl(netns, (w) => {
    for (const r of routes) {
      try {
        w.delRoute({ family: f, dst: r.dst === null ? Buffer.alloc(16) : addrBytes(f, r.dst), dstLen: r.dstLen, table, type: r.type, ...(r.oif !== null ? { oif: r.oif } : {}), what: `ip -${f} route del ${r.dst ?? 'default'}/${r.dstLen} table ${table}` });
      } catch (e) {
        // gone meanwhile (its device went, and the kernel took its routes)
        if (!refusedWith(e, ESRCH)) throw e;
      }
    }
  });
}

/** Runs FN; a namespace that is gone (or any refusal) leaves nothing to do, as `ip` without checking its status did. */
function ifThere(fn: () => void): void {
  try {
    fn();
  } catch (e) {
    if (!isIvbError(e, 'IPVLAN_E_IPROUTE')) throw e;
  }
}

/** The port's `iif MASTER lookup TABLE` rules (v4, v6), added once. */
export function ensurePortRules(port: PortRecord): void {
  const ns = port.master.netns;
  const pref = prefOf(port.portId).lookup;
  for (const f of [4, 6] as const) {
    if (rtnlRules(ns, f).some((r) => r.priority === pref)) continue;
    const table = tableOf(port.portId);
    withRtnl(ns, (w) => w.addRule({ family: f, priority: pref, iifname: port.master.name, table, what: `ip -${f} rule add pref ${pref} iif ${port.master.name} lookup ${table}` }));
  }
}

/** Deletes every rule of the port and flushes its table. */
export function removePortRules(portId: number, netns: string | null): void {
  const p = prefOf(portId);
  for (const f of [4, 6] as const) {
    for (const pref of [p.lookup, p.blackhole]) ifThere(() => delRules(f, pref, netns));
    ifThere(() => flushTable(f, tableOf(portId), netns));
  }
}

function hostPrefix(f: Family, addr: string): string {
  return `${addr}/${f === 4 ? 32 : 128}`;
}

/** IPv6 link-local addresses are never forwarded: no route for them. */
function routable(a: { family: Family; addr: string }): boolean {
  return !(a.family === 6 && a.addr.toLowerCase().startsWith('fe80:'));
}

/** The route to one learned slave address via its peer: added (present) or removed. */
export interface SlaveRouteOp {
  family: Family;
  addr: string;
  peerName: string;
  peerIfindex: number;
  present: boolean;
}


/**
 * Applies OPS to the port's table over one rtnetlink socket in the master's
 * namespace. A route to delete that is gone already (ESRCH) is no error; one
 * to add via a peer that is down (ENETDOWN: its master has no carrier, the
 * kernel flushed its routes, the resync after the carrier returns puts them
 * back) or gone (ENODEV: the slave went meanwhile) is skipped. Any other
 * refusal throws after the remaining operations were tried.
 */
export function applySlaveRoutes(port: PortRecord, ops: readonly SlaveRouteOp[]): void {
  const todo = ops.filter(routable);
  if (todo.length === 0) return;
  const table = tableOf(port.portId);
  let first: unknown = null;
  withRtnl(port.master.netns, (w) => {
    for (const o of todo) {
      const prefix = hostPrefix(o.family, o.addr);
      const dst = addrBytes(o.family, o.addr);
      const dstLen = o.family === 4 ? 32 : 128;
      try {
        if (o.present) w.addRoute({ family: o.family, dst, dstLen, oif: o.peerIfindex, table, replace: true, what: `route replace ${prefix} dev ${o.peerName} table ${table}` });
        else w.delRoute({ family: o.family, dst, dstLen, table, oif: o.peerIfindex, what: `route del ${prefix} table ${table} dev ${o.peerName}` });
      } catch (e) {
        if (o.present ? refusedWith(e, ENETDOWN, ENODEV) : refusedWith(e, ESRCH, ENODEV)) continue;
        first ??= e;
      }
    }
  });
  if (first !== null) throw first;
}

/** The route to one learned slave address via its peer (present) or its removal. */
export function setSlaveRoute(port: PortRecord, peer: { name: string; ifindex: number }, a: { family: Family; addr: string }, present: boolean): void {
  applySlaveRoutes(port, [{ ...a, peerName: peer.name, peerIfindex: peer.ifindex, present }]);
}

/** Makes the port's table hold exactly a route per learned address (resync). */
export function syncSlaveRoutes(port: PortRecord, addrs: Array<{ family: Family; addr: string; peerIfindex: number }>): void {
  const ns = port.master.netns;
  const table = tableOf(port.portId);
  const peerName = new Map(port.slaves.map((s) => [s.peerIfindex, s.peerName]));
  const ops: SlaveRouteOp[] = [];
  for (const f of [4, 6] as const) {
    const want = new Map<string, number>();
    for (const a of addrs) {
      if (a.family !== f || !routable(a) || !peerName.has(a.peerIfindex)) continue;
      want.set(a.addr, a.peerIfindex);
    }
    // a failed read throws: nothing is deleted on a guess
    for (const r of rtnlRoutes(ns, f, table)) {
      if (r.dst === null || r.dstLen !== (f === 4 ? 32 : 128)) continue;
      if (r.oif !== null && want.get(r.dst) === r.oif) want.delete(r.dst);
      else ops.push({ family: f, addr: r.dst, peerName: peerName.get(r.oif ?? 0) ?? `ifindex ${r.oif}`, peerIfindex: r.oif ?? 0, present: false });
    }
    for (const [addr, peerIfindex] of want) ops.push({ family: f, addr, peerName: peerName.get(peerIfindex)!, peerIfindex, present: true });
  }
  applySlaveRoutes(port, ops);
}

// ---- forward accepts ----

/** The comment our accept rules carry: the state (pin subtree) and the peer. */
function acceptComment(peerName: string): string {
  return `ipvlan-bpf:${basename(pinRoot())}:${peerName}`;
}

function acceptPrefix(): string {
  return `ipvlan-bpf:${basename(pinRoot())}:`;
}

/** nft(8) for the changes (reads: nftables.ts, over netlink from the process) */
function nft(args: readonly string[], netns: string | null): { status: number; stdout: string; stderr: string } {
  return netns ? run('ip', ['netns', 'exec', netns, 'nft', ...args]) : run('nft', args);
}

/** Forward base chains that drop what no rule accepts (families that see IP). */
function dropForwardChains(items: NftItem[]): NftChain[] {
  return items
    .map((i) => i.chain)
    .filter((c): c is NftChain => !!c && c.hook === 'forward' && c.policy === 'drop' && ['ip', 'ip6', 'inet'].includes(c.family));
}

/**
 * Makes every drop-policy forward base chain of the master's namespace
 * accept to and from each of the port's peers, and removes our rules of
 * peers the port no longer has. Returns what it changed (for logs).
 */
export function syncForwardAccepts(port: PortRecord): string[] {
  const ns = port.master.netns;
  const items = nftRuleset(ns);
  if (!items) return [];
  const done: string[] = [];
  const peers = new Set(port.slaves.map((s) => s.peerName));
  const ours = items.map((i) => i.rule).filter((r): r is NftRule => !!r && !!r.comment?.startsWith(acceptPrefix()));
  for (const r of ours) {
    const peer = r.comment!.slice(acceptPrefix().length);
    // peers of other ports of this state share the namespace: only this port's names are judged
    if (!peer.startsWith(`ivb${port.portId}x`) || peers.has(peer)) continue;
    nft(['delete', 'rule', r.family, r.table, r.chain, 'handle', String(r.handle)], ns);
    done.push(`removed accept for ${peer} from ${r.family} ${r.table} ${r.chain}`);
  }
  for (const c of dropForwardChains(items)) {
    for (const peer of peers) {
      const have = ours.filter((r) => r.family === c.family && r.table === c.table && r.chain === c.name && r.comment === acceptComment(peer));
      if (have.length >= 2) continue;
      for (const r of have) nft(['delete', 'rule', r.family, r.table, r.chain, 'handle', String(r.handle)], ns);
      const comment = JSON.stringify(acceptComment(peer));
      for (const dir of ['oifname', 'iifname']) {
        const res = nft(['insert', 'rule', c.family, c.table, c.name, dir, JSON.stringify(peer), 'counter', 'accept', 'comment', comment], ns);
        if (res.status !== 0) throw new Error(`nft insert into ${c.family} ${c.table} ${c.name}: ${res.stderr.trim()}`);
      }
      done.push(`accept for ${peer} in ${c.family} ${c.table} ${c.name}`);
    }
  }
  return done;
}

/** Deletes our accept rules whose peer name `which` selects. */
export function removeForwardAccepts(netns: string | null, which: (peer: string) => boolean): void {
  const items = nftRuleset(netns);
  if (!items) return;
  for (const i of items) {
    const r = i.rule;
    if (!r?.comment?.startsWith(acceptPrefix())) continue;
    if (!which(r.comment.slice(acceptPrefix().length))) continue;
    nft(['delete', 'rule', r.family, r.table, r.chain, 'handle', String(r.handle)], netns);
  }
}

// ---- l3s: forwarding on the master ----

function sysctlGet(key: string, netns: string | null): string | null {
  return sysctlRead(key, netns);
}

function sysctlPut(key: string, value: string, netns: string | null): void {
  if (!sysctlWrite(key, value, netns)) throw new IvbError('IPVLAN_E_IPROUTE', `sysctl ${key}=${value}: no such key`);
}

/**
 * Switches the port's master into l3s forwarding (idempotent: does nothing
 * when `port.l3s` is already recorded). The caller writes the record. On a
 * failure what was done is undone and `port.l3s` stays unset.
 */
export function enterL3s(port: PortRecord): void {
  if (port.l3s) return;
  const ns = port.master.netns;
  const m = port.master.name;
  // slashes: a device name may hold dots (eth0.100)
  const v4 = `net/ipv4/conf/${m}/forwarding`;
  const v6 = `net/ipv6/conf/${m}/force_forwarding`;
  const v6AllKey = 'net/ipv6/conf/all/forwarding';
  const saved: L3sSaved = { sysctls: {}, blackhole: [] };
  const v4Was = sysctlGet(v4, ns);
  const v6Was = sysctlGet(v6, ns);
  const v6All = sysctlGet(v6AllKey, ns);
  if (v4Was === null) throw new Error(`cannot read ${v4}`);
  if (v4Was !== '1') {
    saved.sysctls[v4] = v4Was;
    saved.blackhole.push(4);
  }
  if (v6Was !== null) {
    if (v6Was !== '1') saved.sysctls[v6] = v6Was;
    if (v6Was !== '1' && v6All !== '1') saved.blackhole.push(6);
  } else if (v6All !== '1') {
    // kernels before 6.17: only the namespace-wide switch exists
    saved.sysctls[v6AllKey] = v6All ?? '0';
    saved.blackhole.push(6);
  }
  port.l3s = saved;
  try {
    const pref = prefOf(port.portId).blackhole;
    for (const f of saved.blackhole) {
      delRules(f, pref, ns);
      withRtnl(ns, (w) => w.addRule({ family: f, priority: pref, iifname: m, blackhole: true, what: `ip -${f} rule add pref ${pref} iif ${m} blackhole` }));
    }
    for (const key of Object.keys(saved.sysctls)) sysctlPut(key, '1', ns);
  } catch (e) {
    leaveL3s(port);
    throw e;
  }
}

/** Puts back what enterL3s changed (idempotent). The caller writes the record. */
export function leaveL3s(port: PortRecord): void {
  const saved = port.l3s;
  if (!saved) return;
  const ns = port.master.netns;
  // the master may be gone (with its namespace, or alone: its keys with it): nothing left to restore then
  if (netnsExists(ns)) for (const [key, value] of Object.entries(saved.sysctls)) sysctlWrite(key, value, ns);
  const pref = prefOf(port.portId).blackhole;
  for (const f of saved.blackhole) ifThere(() => delRules(f, pref, ns));
  delete port.l3s;
}

/** Everything of the port in its master's namespace: rules, table, accepts, l3s settings. */
export function teardownHostnet(port: PortRecord): void {
  leaveL3s(port);
  removePortRules(port.portId, port.master.netns);
  removeForwardAccepts(port.master.netns, (peer) => peer.startsWith(`ivb${port.portId}x`));
}

// ---- gc ----

/**
 * What a crash can leave in one namespace: our accept rules (this state's
 * comment) for peers that no longer exist there, and our `iif` rules (and
 * their tables) whose master device is gone. Rules of a master that still
 * exists are judged through its port record, never here: another state
 * (another pin subtree) may own them.
 */
export function gcHostnet(netns: string | null, livePeers: ReadonlySet<string>): string[] {
  const removed: string[] = [];
  const items = nftRuleset(netns);
  for (const i of items ?? []) {
    const r = i.rule;
    if (!r?.comment?.startsWith(acceptPrefix())) continue;
    const peer = r.comment.slice(acceptPrefix().length);
    if (livePeers.has(peer)) continue;
    nft(['delete', 'rule', r.family, r.table, r.chain, 'handle', String(r.handle)], netns);
    removed.push(`accept rule for ${peer} in ${r.family} ${r.table} ${r.chain}${netns ? ` (netns ${netns})` : ''}`);
  }
  for (const f of [4, 6] as const) {
    let list: RtnlRule[];
    try {
      list = rtnlRules(netns, f);
    } catch (e) {
      // the namespace was deleted since it was listed
      if (isIvbError(e, 'IPVLAN_E_IPROUTE')) continue;
      throw e;
    }
    for (const r of list) {
      if (!isOurPref(r.priority) || !r.iifDetached) continue;
      ifThere(() => delRules(f, r.priority, netns));
      if (r.table >= TABLE_BASE && r.table < TABLE_BASE + 0x10000) ifThere(() => flushTable(f, r.table, netns));
      removed.push(`IPv${f} rule ${r.priority} of a master that is gone${netns ? ` (netns ${netns})` : ''}`);
    }
  }
  return removed;
}
