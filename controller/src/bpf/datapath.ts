// SPDX-License-Identifier: GPL-2.0-only
/**
 * The datapath of one port: loading its two programs, attaching them with
 * pinned TCX links (clsact where the kernel has no TCX), and the map entries
 * that describe the port, its slaves and their addresses.
 *
 * Pins: <pinRoot>/maps/ivb_* (shared by every port, keyed by port id) and
 * <pinRoot>/ports/<id>/{master_ingress,slave_egress} (programs) and
 * link_master, link_peer_<ifindex> (links). A pinned link keeps its program
 * attached after our process exits; removing the pin detaches it.
 */
import { existsSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { createHash } from 'node:crypto';
import * as generated from '../../../maps/generated.js';
import { addrBytes, bytesToAddr, type Family } from '../netlink/addr.js';
import { IvbError } from '../errors.js';
import { join } from 'node:path';
import {
  BpfError,
  BpfObject,
  BPF_ANY,
  closeFd,
  linkCreate,
  mapInfo,
  linkUpdate,
  mapDelete,
  mapKeys,
  mapLookupBatchEach,
  mapLookupBatchEachAsync,
  mapLookup,
  mapLookupBatch,
  mapUpdate,
  objGet,
  objPin,
  perCpuValueSize,
  possibleCpus,
  withNetns,
} from '../../../native/libbpf.js';
import {
  decodeIvbAddrKey,
  decodeIvbAddrOwner,
  decodeIvbPort,
  decodeIvbSlave,
  decodeIvbSlaveKey,
  decodeIvbFanoutEntry,
  encodeIvbAddrKey,
  encodeIvbAddrOwner,
  encodeIvbFanoutEntry,
  encodeIvbPort,
  encodeIvbPortKey,
  encodeIvbSlave,
  encodeIvbMcFilter,
  decodeIvbMcFilter,
  IvbMcFilterLayout,
  encodeIvbSlaveKey,
  encodeIvbGuardKey,
  encodeIvbGuardEntry,
  decodeIvbGuardEntry,
  encodeIvbSlowpathState,
  encodeIvbUnknownEntry,
  IvbGuardKeyLayout,
  IvbGuardEntryLayout,
  IvbAddrKeyLayout,
  IvbAddr4KeyLayout,
  IvbAddr6KeyLayout,
  IvbAddrOwnerLayout,
  IvbCounterLayout,
  IvbPortLayout,
  IvbSlaveLayout,
  IvbSlaveFlags,
  IvbMode,
  IvbPortFlags,
  IvbSlaveKeyLayout,
  IvbFanoutEntryLayout,
  IvbPortOptions,
  IvbSize,
  type IvbPort,
  type IvbSlave,
} from '../../../maps/generated.js';
import { bpfObjectPath, ensureDir, mapsPinDir, pinRoot, portPinDir } from '../paths.js';
import { recordedFingerprint } from './fingerprint-cache.js';
import { cachedRefusal, recordRefusal } from '../platform/feature-cache.js';
import { initNetnsPath, netnsPath } from '../netlink/netns.js';
import {
  COUNTER_BLOCK_SIZE,
  COUNTER_ROW_MEANING,
  UNLISTED,
  clearCounterSlot,
  masterCounterSlot,
  retireCounterSlot,
  retiredCounterSlot,
  slaveCounterSlot,
} from '../stats/counters.js';
import { ADDR_KEY_SIZE, ADDR_MAP, addrKeyOf, decodeAddrKey, type AddrFamily } from './addr-key.js';
import type { Mode, PortFlag, PortRecord } from '../state.js';

const MODE_NUM: Record<Mode, number> = { l2: IvbMode.L2, l3: IvbMode.L3, l3s: IvbMode.L3S };
const FLAG_NUM: Record<PortFlag, number> = { bridge: 0, private: IvbPortFlags.PRIVATE, vepa: IvbPortFlags.VEPA };
export const SLAVE_UP = IvbSlaveFlags.UP;
const OPT_SOURCE_VALIDATION = IvbPortOptions.VALIDATION;
export const SLAVE_SAME_NETNS = IvbSlaveFlags.SAME_NETNS;

export type { Family } from '../netlink/addr.js';

export interface LearnedAddr {
  family: Family;
  /** textual address as iproute2 prints it */
  addr: string;
  prefixlen: number;
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return b;
}

export function macBytes(mac: string): Buffer {
  const parts = mac.split(':');
  if (parts.length !== 6) throw new Error(`bad MAC ${mac}`);
  return Buffer.from(parts.map((p) => parseInt(p, 16)));
}

export { addrBytes, bytesToAddr } from '../netlink/addr.js';

/** The maps, opened from their pins (kept open for the life of the process). */
export interface Maps {
  ports: number;
  /** the demux tables by family (addr-key.ts) */
  addrs4: number;
  addrs6: number;
  slaves: number;
  slaveIds: number;
  fanout: number;
  mcFilters: number;
  guard: number;
  counters: number;
  localAddrs: number;
  slowpathState: number;
  unknown: number;
}

let openMaps: Maps | null = null;

const MAP_PINS = {
  ports: 'ivb_ports',
  addrs4: ADDR_MAP[4],
  addrs6: ADDR_MAP[6],
  slaves: 'ivb_slaves',
  slaveIds: 'ivb_slave_ids',
  fanout: 'ivb_fanout_slots',
  mcFilters: 'ivb_mc_filters',
  guard: 'ivb_guard',
  counters: 'ivb_counters',
  localAddrs: 'ivb_local_addrs',
  slowpath: 'ivb_slowpath',
  slowpathState: 'ivb_slowpath_state',
  unknown: 'ivb_unknown',
} as const;

/**
 * Slaves the maps have room for unless IPVLAN_BPF_MAX_SLAVES says otherwise
 * (up to 65 535): every slave index has a counter block in ivb_counters on
 * every CPU (IvbSize.COUNTER_ROWS x 16 = 592 bytes), 5.8 MiB per CPU for
 * 8 191 slaves and the ports' 2 x 1 024 blocks, where the 65 535 the index
 * allows would take 38 MiB per CPU.
 */
const DEFAULT_SLAVES = 8191;

/**
 * Creates and pins any missing map: the object is loaded with none of its
 * programs (autoload off), so libbpf creates the maps and the verifier is
 * not run for a program nobody keeps.
 */
function createPinnedMaps(keep: { slaves?: number } = {}): void {
  ensureDir(mapsPinDir());
  const obj = BpfObject.open(bpfObjectPath('master_ingress.bpf.o'), { pinRoot: mapsPinDir() });
  try {
    for (const prog of obj.programNames()) obj.setAutoload(prog, false);
    // maps already pinned (an upgrade creates only the ones whose layout changed) keep their size
    matchPinnedSizes(obj);
    // capacities are fixed when a map is created: configurable here, never later
    for (const [env, map, max] of [
      // each family's table gets this capacity
      ['IPVLAN_BPF_MAX_ADDRS', 'ivb_addrs4', 1 << 24],
      // a slave's index is a __u16 in each address entry; index 0 is never used
      ['IPVLAN_BPF_MAX_SLAVES', 'ivb_slaves', IvbSize.SLAVES - 1],
    ] as const) {
      const v =
        map === 'ivb_slaves'
          ? String(keep.slaves ?? process.env[env] ?? DEFAULT_SLAVES)
          : process.env[env];
      if (v === undefined || existsSync(join(mapsPinDir(), map))) continue;
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1 || n > max) {
        throw new IvbError('IPVLAN_E_USAGE', `${env}=${v}: want an integer from 1 to ${max}`);
      }
      if (map === 'ivb_slaves') {
        obj.setMaxEntries('ivb_slaves', n + 1);
        obj.setMaxEntries('ivb_slave_ids', n);
        // (a filter map made before, by an upgrade's first steps, keeps its size: an index beyond it has no filter, every copy)
        if (!existsSync(join(mapsPinDir(), 'ivb_mc_filters'))) obj.setMaxEntries('ivb_mc_filters', n + 1);
      } else {
        obj.setMaxEntries(ADDR_MAP[4], n);
        obj.setMaxEntries(ADDR_MAP[6], n);
      }
    }
    // a counter block per port, per slave index and per port's deleted slaves (per CPU, IvbSize.COUNTER_ROWS x 16 bytes each)
    if (!existsSync(join(mapsPinDir(), 'ivb_counters'))) obj.setMaxEntries('ivb_counters', IvbSize.PORTS + obj.maxEntries('ivb_slaves') + IvbSize.PORTS);
    obj.load();
  } finally {
    obj.close();
  }
}

/** Kind of every map this build declares (type, key and value size), read from its object. */
let buildMapDefs: Array<{ name: string; type: number; keySize: number; valueSize: number }> | null = null;
function mapDefsOfBuild(): Array<{ name: string; type: number; keySize: number; valueSize: number }> {
  if (buildMapDefs) return buildMapDefs;
  const obj = BpfObject.open(bpfObjectPath('master_ingress.bpf.o'));
  try {
    buildMapDefs = obj
      .mapDefs()
      .filter((m) => !m.name.includes('.'))
      .sort((x, y) => x.name.localeCompare(y.name));
  } finally {
    obj.close();
  }
  return buildMapDefs;
}

/**
 * sha256 of every generated layout (each derived from BTF, and checked
 * against it by test/layout.test.ts) and of every map's kind (a HASH that
 * becomes an ARRAY keeps its value layout): two builds with the same
 * fingerprint agree on every map, key and value byte.
 */
export function layoutFingerprint(fresh = false): Buffer {
  // as the build recorded it, while its inputs are unchanged (fingerprint-cache.ts)
  const recorded = fresh ? null : recordedFingerprint();
  if (recorded) return recorded;
  const layouts = Object.entries(generated)
    .filter(([name]) => name.endsWith('Layout'))
    .sort(([a], [b]) => a.localeCompare(b));
  return createHash('sha256').update(JSON.stringify(layouts)).update(JSON.stringify(mapDefsOfBuild())).digest();
}

/**
 * Fingerprints of earlier builds whose pinned maps `upgrade` migrates
 * (migrateMaps), with what changed since.
 */
const KNOWN_LAYOUTS: Record<string, string> = {
  // cb51093 and before (issue 12 changed it): ports, slaves and fan-out slots were hash maps
  '003ffcfe8c05895af6a64d289adafb41d2cdd1f6a2518c3baa394225ee2c2c79': 'hash-v1',
  // 04f7cd0 and before: counters a per-CPU hash of rows, one address table for both families (REPLACED says what changed)
  '97c81d2d4092974b2c221a735608561a418d45e377b5e747ad171ee52445f53b': 'array-v2',
};

function pinnedFingerprint(dir: string): Buffer | null {
  if (!existsSync(join(dir, 'ivb_layout'))) return null;
  const fd = objGet(join(dir, 'ivb_layout'));
  try {
    const have = mapLookup(fd, Buffer.alloc(4), 32);
    return !have || have.every((b) => b === 0) ? null : have;
  } finally {
    closeFd(fd);
  }
}

function stampLayout(dir: string): void {
  const fd = objGet(join(dir, 'ivb_layout'));
  try {
    mapUpdate(fd, Buffer.alloc(4), layoutFingerprint(), BPF_ANY);
  } finally {
    closeFd(fd);
  }
}

/** Refuses pinned maps made by a build with other layouts; stamps new ones. */
function checkLayout(dir: string): void {
  const have = pinnedFingerprint(dir);
  const want = layoutFingerprint();
  if (!have) {
    stampLayout(dir);
    return;
  }
  if (!have.equals(want)) {
    const known = KNOWN_LAYOUTS[have.toString('hex')] !== undefined;
    throw new IvbError(
      'IPVLAN_E_STATE',
      `the pinned maps in ${dir} were created with other map layouts (${have.toString('hex').slice(0, 12)}, this build ${want.toString('hex').slice(0, 12)}): refusing to reuse them; ` +
        (known ? 'they are an earlier build\'s: "ipvlan-bpf upgrade" migrates them' : 'delete the ports (or the pins) first'),
    );
  }
}

export function maps(): Maps {
  if (openMaps) return openMaps;
  const dir = mapsPinDir();
  // maps of another layout are refused before anything is created next to them
  if (existsSync(join(dir, 'ivb_layout'))) checkLayout(dir);
  if (!Object.values(MAP_PINS).every((n) => existsSync(join(dir, n))) || !existsSync(join(dir, 'ivb_layout'))) {
    createPinnedMaps();
  }
  checkLayout(dir);
  openMaps = {
    ports: objGet(join(dir, MAP_PINS.ports)),
    addrs4: objGet(join(dir, MAP_PINS.addrs4)),
    addrs6: objGet(join(dir, MAP_PINS.addrs6)),
    slaves: objGet(join(dir, MAP_PINS.slaves)),
    slaveIds: objGet(join(dir, MAP_PINS.slaveIds)),
    fanout: objGet(join(dir, MAP_PINS.fanout)),
    mcFilters: objGet(join(dir, MAP_PINS.mcFilters)),
    guard: objGet(join(dir, MAP_PINS.guard)),
    counters: objGet(join(dir, MAP_PINS.counters)),
    localAddrs: objGet(join(dir, MAP_PINS.localAddrs)),
    slowpathState: objGet(join(dir, MAP_PINS.slowpathState)),
    unknown: objGet(join(dir, MAP_PINS.unknown)),
  };
  return openMaps;
}

export function mapsExist(): boolean {
  return Object.values(MAP_PINS).every((n) => existsSync(join(mapsPinDir(), n)));
}

/**
 * Gives every map of `obj` that is already pinned the pinned map's size, so
 * that libbpf reuses it: capacities are chosen once, when the maps are
 * created (IPVLAN_BPF_MAX_*), and every later load follows them.
 */
export function matchPinnedSizes(obj: BpfObject): void {
  for (const name of obj.mapNames()) {
    const pin = join(mapsPinDir(), name);
    if (name.includes('.') || !existsSync(pin)) continue;
    const fd = objGet(pin);
    try {
      obj.setMaxEntries(name, mapInfo(fd).maxEntries);
    } finally {
      closeFd(fd);
    }
  }
}

export interface InstanceOptions {
  /** record decisions in ivb_trace (explain, tests) */
  trace?: boolean;
  /** count decisions; default: on unless IPVLAN_BPF_COUNTERS=0 (to measure their cost) */
  counters?: boolean;
  /** broadcast/multicast copies counted in the trace, not sent (explain) */
  dryRun?: boolean;
}

/**
 * Opens and loads one instance of a port's program (`master_ingress` or
 * `slave_egress`) against the pinned maps, with its load-time settings: the
 * one place every loader (ports, upgrade, explain) goes through.
 */
export type PortProgram = 'master_ingress' | 'slave_egress' | 'peer_egress';

export function loadPortInstance(kind: PortProgram, portId: number, o: InstanceOptions = {}): BpfObject {
  const obj = BpfObject.open(bpfObjectPath(`${kind}.bpf.o`), { pinRoot: mapsPinDir() });
  try {
    matchPinnedSizes(obj);
    obj.setRodata('ivb_port_id', u32(portId));
    obj.setRodata('ivb_counters_enabled', u32((o.counters ?? process.env.IPVLAN_BPF_COUNTERS !== '0') ? 1 : 0));
    if (o.trace) obj.setRodata('ivb_trace_enabled', u32(1));
    if (o.dryRun) obj.setRodata('ivb_dry_run', u32(1));
    obj.load();
    return obj;
  } catch (e) {
    obj.close();
    throw e;
  }
}

function loadProgram(kind: PortProgram, portId: number, pinPath: string): void {
  const obj = loadPortInstance(kind, portId);
  try {
    obj.pinProgram(`ivb_${kind}`, pinPath);
  } finally {
    obj.close();
  }
}

/** Runs fn in the namespace of a port's master (TCX attach resolves ifindex there). */
function inNetns<T>(netns: string | null, fn: () => T): T {
  return withNetns(netns === null ? initNetnsPath() : netnsPath(netns), fn);
}

function attachPinned(progPin: string, ifindex: number, linkPin: string, netns: string | null, hook: 'tcx_ingress' | 'tcx_egress' = 'tcx_ingress'): void {
  const prog = objGet(progPin);
  try {
    const link = inNetns(netns, () => linkCreate(prog, ifindex, hook));
    try {
      objPin(link, linkPin);
    } finally {
      closeFd(link);
    }
  } finally {
    closeFd(prog);
  }
}

function guardLinkPin(): string {
  return join(pinRoot(), 'guard_link');
}

/**
 * The netlink guard (bpf/guard.bpf.c): one LSM program for all ports, there
 * while any port exists. Where the kernel has no BPF LSM the port still
 * works, without the duplicate-address and MAC-change refusals.
 */
let guardUnavailable = false;
let guardRefusal: string | null = null;

export function ensureGuard(): boolean {
  if (existsSync(guardLinkPin())) return true;
  if (guardUnavailable) return false;
  const object = bpfObjectPath('guard.bpf.o');
  // refused earlier this boot: each command does not pay for asking again
  const refused = cachedRefusal('guard', object);
  if (refused !== null) {
    guardUnavailable = true;
    guardRefusal = refused;
    return false;
  }
  const obj = BpfObject.open(object, { pinRoot: mapsPinDir() });
  try {
    let link: number;
    try {
      matchPinnedSizes(obj);
      obj.load();
      link = linkCreate(obj.programFd('ivb_netlink_send'), 0, 'lsm');
    } catch (e) {
      refuseGuard(object, e);
      return false;
    }
    try {
      objPin(link, guardLinkPin());
    } catch (e) {
      // another command or the agent attached it a moment ago (both try at
      // a port's first link add): theirs is the guard, ours goes with its fd
      if (!(e instanceof BpfError && e.errno === 17 /* EEXIST */)) throw e;
    } finally {
      closeFd(link);
    }
    return true;
  } finally {
    obj.close();
  }
}

/**
 * The kernel refused the guard (the load or the attach): remembered with its
 * reason for this boot (platform/feature-cache.ts: only a record root wrote
 * and nobody else can write is believed, so no one can switch the guard off
 * by leaving a file). Only those: a pin that already exists (a concurrent
 * attach) is not a refusal, and once cached as one every later command of
 * the boot would go without the guard.
 */
function refuseGuard(object: string, e: unknown): void {
  // e.g. lockdown=integrity or a sandbox refusing LSM programs (EPERM);
  // the reason goes with the refusal (guardRefusalReason), never lost
  guardUnavailable = true;
  guardRefusal = (e instanceof Error ? e.message : String(e)).split('\n')[0]!;
  recordRefusal('guard', object, guardRefusal);
}

/** Why the guard could not be loaded (after ensureGuard returned false). */
export function guardRefusalReason(): string {
  return guardRefusal ?? 'not tried';
}

/** Whether the netlink guard is attached (for status output and tests). */
export function guardActive(): boolean {
  return existsSync(guardLinkPin());
}

export function removeGuard(): void {
  rmSync(guardLinkPin(), { force: true });
}

export function setGuard(netnsIno: number, ifindex: number, portId: number, peerIfindex: number): void {
  // entries matter only to an attached guard; without one they would only take room
  if (!guardActive()) return;
  mapUpdate(maps().guard, encodeIvbGuardKey({ netnsIno, ifindex }), encodeIvbGuardEntry({ portId, peerIfindex }), BPF_ANY);
}

/** Forgets where a slave was (all its entries, or all of a port's with peerIfindex null). */
export function clearGuard(portId: number, peerIfindex: number | null): void {
  // without an attached guard nothing was written (setGuard): nothing to scan
  if (!guardActive() && mapKeys(maps().guard, IvbGuardKeyLayout.size).length === 0) return;
  const m = maps();
  for (const key of mapKeys(m.guard, IvbGuardKeyLayout.size)) {
    const v = mapLookup(m.guard, key, IvbGuardEntryLayout.size);
    if (!v) continue;
    const e = decodeIvbGuardEntry(v);
    if (e.portId === portId && (peerIfindex === null || e.peerIfindex === peerIfindex)) mapDelete(m.guard, key);
  }
}

/** Loads the port's programs (pinned) and attaches master ingress. */
export function createPortDatapath(portId: number, masterIfindex: number, netns: string | null): void {
  const dir = portPinDir(portId);
  ensureDir(dir);
  maps();
  loadProgram('master_ingress', portId, join(dir, 'master_ingress'));
  loadProgram('slave_egress', portId, join(dir, 'slave_egress'));
  loadProgram('peer_egress', portId, join(dir, 'peer_egress'));
  attachPinned(join(dir, 'master_ingress'), masterIfindex, join(dir, 'link_master'), netns);
}

/** The pin of a peer's TC egress link (l3s TTL restore, peer_egress.bpf.c). */
function peerEgressPin(dir: string, peerIfindex: number): string {
  return join(dir, `link_pegress_${peerIfindex}`);
}

export function attachPeer(portId: number, peerIfindex: number, netns: string | null): void {
  const dir = portPinDir(portId);
  attachPinned(join(dir, 'slave_egress'), peerIfindex, join(dir, `link_peer_${peerIfindex}`), netns);
}

/**
 * peer_egress on the peers of an l3s port, on none of another's: it acts in
 * l3s only, and each first TCX attach to a fresh device waits for an RCU
 * grace period in the kernel (tcx_entry_sync), ~10-20 ms of every `link add`
 * here. ON: attached to each of PEERS that lacks it; off: every one removed.
 */
export function setPeerEgress(portId: number, peers: readonly number[], netns: string | null, on: boolean): void {
  const dir = portPinDir(portId);
  for (const peer of peers) {
    const pin = peerEgressPin(dir, peer);
    if (!on) rmSync(pin, { force: true });
    else if (!existsSync(pin)) attachPinned(join(dir, 'peer_egress'), peer, pin, netns, 'tcx_egress');
  }
}

export function detachPeer(portId: number, peerIfindex: number): void {
  rmSync(join(portPinDir(portId), `link_peer_${peerIfindex}`), { force: true });
  rmSync(peerEgressPin(portPinDir(portId), peerIfindex), { force: true });
}

/** A peer's links stay attached when it changes namespace; only their pins follow a new ifindex. */
export function renamePeerPins(portId: number, oldIfindex: number, newIfindex: number): void {
  const dir = portPinDir(portId);
  for (const [from, to] of [
    [join(dir, `link_peer_${oldIfindex}`), join(dir, `link_peer_${newIfindex}`)],
    [peerEgressPin(dir, oldIfindex), peerEgressPin(dir, newIfindex)],
  ] as const) {
    if (existsSync(from)) renameSync(from, to);
  }
}

/** Unpins everything of the port: links detach, programs go once unused. */
export function destroyPortDatapath(portId: number): void {
  const dir = portPinDir(portId);
  if (!existsSync(dir)) return;
  for (const f of readdirSync(dir)) rmSync(join(dir, f), { force: true });
  rmSync(dir, { recursive: true, force: true });
  const m = maps();
  // (a pin folder of a port id ivb_ports cannot hold had no entry there)
  if (portId < mapInfo(m.ports).maxEntries) mapUpdate(m.ports, encodeIvbPortKey({ portId }), Buffer.alloc(IvbPortLayout.size), BPF_ANY);
  for (const family of [4, 6] as const) {
    const fd = addrsFd(family);
    for (const key of mapKeys(fd, ADDR_KEY_SIZE[family])) {
      if (decodeAddrKey(family, key).portId === portId) mapDelete(fd, key);
    }
  }
  for (const key of mapKeys(m.slaveIds, IvbSlaveKeyLayout.size)) {
    const k = decodeIvbSlaveKey(key);
    if (k.portId === portId) deleteSlaveEntry(portId, k.peerIfindex);
  }
  clearFanout(portId);
  clearGuard(portId, null);
  for (const key of mapKeys(m.localAddrs, IvbAddrKeyLayout.size)) {
    if (decodeIvbAddrKey(key).portId === portId) mapDelete(m.localAddrs, key);
  }
  // the slaves' blocks are zeroed when their indexes are given again (slaveIndex)
  if (portId < IvbSize.PORTS) {
    clearCounterSlot(m.counters, masterCounterSlot(portId));
    clearCounterSlot(m.counters, retiredCounterSlot(mapInfo(m.counters).maxEntries, portId));
  }
}

/** The map entry of a port record: what the datapath reads per packet. */
export function portEntryOf(port: PortRecord): IvbPort {
  return {
    masterIfindex: port.master.ifindex,
    masterMac: macBytes(port.master.mac),
    mode: MODE_NUM[port.mode],
    flags: FLAG_NUM[port.flag],
    nrSlaves: port.slaves.length,
    options: port.sourceValidation === false ? 0 : OPT_SOURCE_VALIDATION,
  };
}

export function writePortEntry(portId: number, v: IvbPort): void {
  if (portId < 1 || portId >= mapInfo(maps().ports).maxEntries) {
    throw new IvbError('IPVLAN_E_STATE', `port id ${portId} outside ivb_ports (1..${mapInfo(maps().ports).maxEntries - 1}): too many masters`);
  }
  mapUpdate(maps().ports, encodeIvbPortKey({ portId }), encodeIvbPort(v), BPF_ANY);
}

/** E2BIG from a hash map update: the table is full. */
function isFull(e: unknown): boolean {
  return e instanceof Error && 'errno' in e && (e as { errno: number }).errno === 7;
}

/** What the control plane says about a slave; its index, port and peer are the map's business. */
export type SlaveState = Pick<IvbSlave, 'devId' | 'flags' | 'mtu'>;

/**
 * The slave's index in ivb_slaves: the one it has (ivb_slave_ids), or with
 * `create` the smallest free one, reserved at once (its entry names the
 * peer, down). Stable for the slave's life; the datapath finds it in each of
 * the slave's address entries and fan-out slots.
 */
export function slaveIndex(portId: number, peerIfindex: number, create: true): number;
export function slaveIndex(portId: number, peerIfindex: number, create: false): number | null;
export function slaveIndex(portId: number, peerIfindex: number, create: boolean): number | null {
  const m = maps();
  const key = encodeIvbSlaveKey({ portId, peerIfindex });
  const have = mapLookup(m.slaveIds, key, 4);
  if (have) return have.readUInt32LE(0);
  if (!create) return null;
  const used = new Set<number>();
  for (const v of mapLookupBatch(m.slaveIds, IvbSlaveKeyLayout.size, 4).values) used.add(v.readUInt32LE(0));
  const cap = mapInfo(m.slaves).maxEntries;
  let index = 1;
  while (used.has(index)) index++;
  if (index >= cap) {
    throw new IvbError('IPVLAN_E_STATE', `slave table full (${cap - 1} slaves, IPVLAN_BPF_MAX_SLAVES)`);
  }
  // counts of the index's earlier owner are not this slave's
  clearCounterSlot(m.counters, slaveCounterSlot(index));
  mapUpdate(m.slaves, u32(index), encodeIvbSlave({ devId: 0, flags: 0, mtu: 0, peerIfindex, portId }), BPF_ANY);
  // a reused index starts with no filter kept: every copy, until the agent reads the new slave's list
  clearMcFilter(index);
  try {
    mapUpdate(m.slaveIds, key, u32(index), BPF_ANY);
  } catch (e) {
    mapUpdate(m.slaves, u32(index), Buffer.alloc(IvbSlaveLayout.size), BPF_ANY);
    if (isFull(e)) throw new IvbError('IPVLAN_E_STATE', `slave table full (${mapInfo(m.slaveIds).maxEntries} slaves, IPVLAN_BPF_MAX_SLAVES)`);
    throw e;
  }
  return index;
}

export function writeSlaveEntry(portId: number, peerIfindex: number, v: SlaveState): void {
  const index = slaveIndex(portId, peerIfindex, true);
  mapUpdate(maps().slaves, u32(index), encodeIvbSlave({ devId: v.devId, flags: v.flags, mtu: v.mtu, peerIfindex, portId }), BPF_ANY);
}

export function readSlaveEntry(portId: number, peerIfindex: number): IvbSlave | null {
  const index = slaveIndex(portId, peerIfindex, false);
  if (index === null) return null;
  const b = mapLookup(maps().slaves, u32(index), IvbSlaveLayout.size);
  const s = b ? decodeIvbSlave(b) : null;
  return s && s.peerIfindex === peerIfindex && s.portId === portId ? s : null;
}

/** Frees the slave's index: its address entries, if any are left, lead nowhere (slave_gone). */
export function deleteSlaveEntry(portId: number, peerIfindex: number): void {
  const index = slaveIndex(portId, peerIfindex, false);
  if (index === null) return;
  mapUpdate(maps().slaves, u32(index), Buffer.alloc(IvbSlaveLayout.size), BPF_ANY);
  clearMcFilter(index);
  mapDelete(maps().slaveIds, encodeIvbSlaveKey({ portId, peerIfindex }));
  // what it counted stays in its port's totals
  retireCounterSlot(maps().counters, slaveCounterSlot(index), portId);
}

function clearMcFilter(index: number): void {
  // a map smaller than ivb_slaves (created before IPVLAN_BPF_MAX_SLAVES raised it) has no entry to clear
  if (index < mapInfo(maps().mcFilters).maxEntries) mapUpdate(maps().mcFilters, u32(index), Buffer.alloc(IvbMcFilterLayout.size), BPF_ANY);
}

/**
 * The slave's multicast filter (fanout.h): BITS, the 32 bytes of its
 * 256-bit set (agent/multicast.ts computes them), or null for none kept
 * (every copy passes). False when the slave has no index (gone).
 */
export function writeMcFilter(portId: number, peerIfindex: number, bits: Buffer | null): boolean {
  const index = slaveIndex(portId, peerIfindex, false);
  if (index === null || index >= mapInfo(maps().mcFilters).maxEntries) return false;
  mapUpdate(maps().mcFilters, u32(index), encodeIvbMcFilter({ kept: bits ? 1 : 0, bits: bits ?? Buffer.alloc(32) }), BPF_ANY);
  return true;
}

/** The slave's filter as the datapath reads it: null when none is kept. */
export function readMcFilter(portId: number, peerIfindex: number): Buffer | null {
  const index = slaveIndex(portId, peerIfindex, false);
  if (index === null) return null;
  const b = mapLookup(maps().mcFilters, u32(index), IvbMcFilterLayout.size);
  const f = b ? decodeIvbMcFilter(b) : null;
  return f && f.kept ? Buffer.from(f.bits) : null;
}

function fanoutIndex(portId: number, slot: number): Buffer {
  return u32(portId * IvbSize.FANOUT_PER_PORT + slot);
}

/**
 * Slot `slot` of the port's fan-out list. The datapath walks the first
 * IvbSize.FANOUT_PER_PORT slots only (its bound on copies per frame): slots
 * past it have no entry, as before, until a deletion moves a slave down.
 */
export function writeFanoutSlot(portId: number, slot: number, peerIfindex: number): void {
  if (slot >= IvbSize.FANOUT_PER_PORT) return;
  const slave = slaveIndex(portId, peerIfindex, true);
  mapUpdate(maps().fanout, fanoutIndex(portId, slot), encodeIvbFanoutEntry({ peerIfindex, slave }), BPF_ANY);
}

export function deleteFanoutSlot(portId: number, slot: number): void {
  if (slot >= IvbSize.FANOUT_PER_PORT) return;
  mapUpdate(maps().fanout, fanoutIndex(portId, slot), Buffer.alloc(IvbFanoutEntryLayout.size), BPF_ANY);
}

/** Used slots of the port's fan-out list. */
function countFanout(portId: number): number {
  let n = 0;
  for (let slot = 0; slot < IvbSize.FANOUT_PER_PORT; slot++) {
    const v = mapLookup(maps().fanout, fanoutIndex(portId, slot), IvbFanoutEntryLayout.size);
    if (v && decodeIvbFanoutEntry(v).peerIfindex !== 0) n++;
  }
  return n;
}

/** Empties every fan-out slot of the port. */
function clearFanout(portId: number): void {
  const fd = maps().fanout;
  if (portId >= IvbSize.PORTS) return;
  for (let slot = 0; slot < IvbSize.FANOUT_PER_PORT; slot++) {
    const v = mapLookup(fd, fanoutIndex(portId, slot), IvbFanoutEntryLayout.size);
    if (v && decodeIvbFanoutEntry(v).peerIfindex !== 0) deleteFanoutSlot(portId, slot);
  }
}

/**
 * Removes every map entry of ports not in `known` (gc): one line per map
 * that had some, as "N ivb_x entries of unknown ports".
 */
export function sweepUnknownPorts(known: ReadonlySet<number>): string[] {
  const m = maps();
  const removed: string[] = [];
  const note = (n: number, what: string): void => {
    if (n) removed.push(`${n} ${what} entr${n === 1 ? 'y' : 'ies'} of unknown ports`);
  };
  // arrays: used slots of unknown ports are zeroed
  let n = 0;
  const ports = mapLookupBatch(m.ports, 4, IvbPortLayout.size);
  ports.keys.forEach((k, i) => {
    const id = k.readUInt32LE(0);
    if (!known.has(id) && decodeIvbPort(ports.values[i]!).masterIfindex !== 0) {
      mapUpdate(m.ports, k, Buffer.alloc(IvbPortLayout.size), BPF_ANY);
      clearCounterSlot(m.counters, masterCounterSlot(id));
      clearCounterSlot(m.counters, retiredCounterSlot(mapInfo(m.counters).maxEntries, id));
      n++;
    }
  });
  note(n, 'ivb_ports');
  for (const family of [4, 6] as const) {
    n = 0;
    const fd = addrsFd(family);
    for (const key of mapKeys(fd, ADDR_KEY_SIZE[family])) {
      if (!known.has(decodeAddrKey(family, key).portId)) n += Number(mapDelete(fd, key));
    }
    note(n, ADDR_MAP[family]);
  }
  // slaves through their index entries (a hash of a few entries), not the 64k-slot array
  n = 0;
  for (const key of mapKeys(m.slaveIds, IvbSlaveKeyLayout.size)) {
    const k = decodeIvbSlaveKey(key);
    if (known.has(k.portId)) continue;
    deleteSlaveEntry(k.portId, k.peerIfindex);
    n++;
  }
  note(n, 'ivb_slaves');
  // a port's fan-out list is dense from slot 0: a port whose slot 0 is empty has none
  n = 0;
  for (let port = 0; port < IvbSize.PORTS; port++) {
    if (known.has(port)) continue;
    const first = mapLookup(m.fanout, fanoutIndex(port, 0), IvbFanoutEntryLayout.size);
    if (!first || decodeIvbFanoutEntry(first).peerIfindex === 0) continue;
    n += countFanout(port);
    clearFanout(port);
  }
  note(n, 'ivb_fanout_slots');
  // ivb_counters: the blocks of the ports and slaves above were zeroed with them
  return removed;
}

/** The demux table of a family (addr-key.ts). */
function addrsFd(family: AddrFamily): number {
  return family === 4 ? maps().addrs4 : maps().addrs6;
}

/** An address's table and key there. */
function demuxKey(portId: number, a: { family: Family; addr: string }): { fd: number; key: Buffer } {
  return { fd: addrsFd(a.family), key: addrKeyOf(portId, a.family, addrBytes(a.family, a.addr)).key };
}

/** The generic key (both families) of ivb_local_addrs and ivb_unknown. */
function addrKey(portId: number, a: { family: Family; addr: string }): Buffer {
  return encodeIvbAddrKey({ portId, family: a.family, addr: addrBytes(a.family, a.addr) });
}

/** Owner (host-side peer ifindex) of an address of the port, or null. */
export function addrOwner(portId: number, a: { family: Family; addr: string }): number | null {
  const k = demuxKey(portId, a);
  const b = mapLookup(k.fd, k.key, IvbAddrOwnerLayout.size);
  return b ? decodeIvbAddrOwner(b).peerIfindex : null;
}

/** The owner and prefix length recorded for one address, or null. */
export function addrEntry(portId: number, a: { family: Family; addr: string }): { peerIfindex: number; prefixlen: number } | null {
  const k = demuxKey(portId, a);
  const b = mapLookup(k.fd, k.key, IvbAddrOwnerLayout.size);
  if (!b) return null;
  const o = decodeIvbAddrOwner(b);
  return { peerIfindex: o.peerIfindex, prefixlen: o.prefixlen };
}

/** An address entry's value: the owner's peer and its slave index (given it now if it has none yet). */
function ownerEntry(portId: number, peerIfindex: number, prefixlen: number): Buffer {
  return encodeIvbAddrOwner({ peerIfindex, prefixlen, slave: slaveIndex(portId, peerIfindex, true) });
}

export function learnAddr(portId: number, peerIfindex: number, a: LearnedAddr): void {
  // a slave's now: no longer "checked, nobody's"
  mapDelete(maps().unknown, addrKey(portId, a));
  const k = demuxKey(portId, a);
  try {
    mapUpdate(k.fd, k.key, ownerEntry(portId, peerIfindex, a.prefixlen), BPF_ANY);
  } catch (e) {
    if (isFull(e)) {
      throw new IvbError('IPVLAN_E_STATE', `address table full (${mapInfo(k.fd).maxEntries} entries): ${a.addr} not learned`);
    }
    throw e;
  }
}

/** learnAddr, except that a full table is not an error: false then (the agent learns it when there is room). */
export function learnAddrIfRoom(portId: number, peerIfindex: number, a: LearnedAddr): boolean {
  const k = demuxKey(portId, a);
  try {
    mapUpdate(k.fd, k.key, ownerEntry(portId, peerIfindex, a.prefixlen), BPF_ANY);
    return true;
  } catch (e) {
    if (isFull(e)) return false;
    throw e;
  }
}

export function unlearnAddr(portId: number, a: { family: Family; addr: string }): void {
  const k = demuxKey(portId, a);
  mapDelete(k.fd, k.key);
}

/**
 * Makes ivb_local_addrs hold exactly the master device's own addresses
 * (what the kernel's oif-pinned lookup finds local): l3 egress to them goes
 * up the master's stack, to anything else out of the master.
 */
export function setMasterAddrs(portId: number, addrs: Array<{ family: Family; addr: string; prefixlen: number }>): void {
  const m = maps();
  const want = new Map<string, Buffer>();
  for (const a of addrs) {
    const k = addrKey(portId, a);
    want.set(k.toString('hex'), k);
    mapUpdate(m.localAddrs, k, encodeIvbAddrOwner({ peerIfindex: 0, prefixlen: a.prefixlen, slave: 0 }), BPF_ANY);
  }
  for (const key of mapKeys(m.localAddrs, IvbAddrKeyLayout.size)) {
    if (decodeIvbAddrKey(key).portId === portId && !want.has(key.toString('hex'))) mapDelete(m.localAddrs, key);
  }
}

export function setMasterAddr(portId: number, a: { family: Family; addr: string; prefixlen: number }, present: boolean): void {
  const k = addrKey(portId, a);
  if (present) mapUpdate(maps().localAddrs, k, encodeIvbAddrOwner({ peerIfindex: 0, prefixlen: a.prefixlen, slave: 0 }), BPF_ANY);
  else mapDelete(maps().localAddrs, k);
}

/** Pin of the slow path's ring buffer (frames held for the agent: bpf/lib/slowpath.h). */
export function slowpathRingPin(): string {
  maps();
  return join(mapsPinDir(), MAP_PINS.slowpath);
}

/** The agent's heartbeat: the datapath holds frames for it until `untilNs` (CLOCK_MONOTONIC; 0: never). */
export function setSlowpathConsumer(untilNs: bigint): void {
  mapUpdate(maps().slowpathState, Buffer.alloc(4), encodeIvbSlowpathState({ consumerUntilNs: untilNs }), BPF_ANY);
}

/** Tells the datapath the agent found no owner for this address at `nowNs`: it is not held again for a while. */
export function markUnowned(portId: number, family: Family, addr: Buffer, nowNs: bigint): void {
  const key = encodeIvbAddrKey({ portId, family, addr });
  mapUpdate(maps().unknown, key, encodeIvbUnknownEntry({ checkedNs: nowNs }), BPF_ANY);
}

/**
 * Forgets every address the agent found unowned on this port: a slave made
 * (or made again under an old name) may own any of them now, and its first
 * frames must be copied to the agent, not decided on a stale answer.
 */
export function forgetUnowned(portId: number): void {
  const fd = maps().unknown;
  for (const key of mapKeys(fd, IvbAddrKeyLayout.size)) {
    if (decodeIvbAddrKey(key).portId === portId) mapDelete(fd, key);
  }
}

/**
 * Every address of the port with its owner: one batch walk of the map, each
 * entry's port read in place (only the port's own entries are decoded).
 */
export function portAddrs(portId: number): Array<LearnedAddr & { peerIfindex: number }> {
  const out: Array<LearnedAddr & { peerIfindex: number }> = [];
  for (const family of [4, 6] as const) {
    mapLookupBatchEach(addrsFd(family), ADDR_KEY_SIZE[family], IvbAddrOwnerLayout.size, portAddrsOf(portId, family, out));
  }
  return out;
}

/** portAddrs without holding the event loop for the walk (mapLookupBatchEachAsync); also how many entries of all ports it walked. */
export async function portAddrsAsync(
  portId: number,
  cancelled?: () => boolean,
): Promise<{ addrs: Array<LearnedAddr & { peerIfindex: number }>; walked: number }> {
  const addrs: Array<LearnedAddr & { peerIfindex: number }> = [];
  let walked = 0;
  for (const family of [4, 6] as const) {
    if (cancelled?.()) break;
    walked += await mapLookupBatchEachAsync(addrsFd(family), ADDR_KEY_SIZE[family], IvbAddrOwnerLayout.size, portAddrsOf(portId, family, addrs), cancelled);
  }
  return { addrs, walked };
}

/** A batch consumer of one family's table that keeps the entries of PORTID (into OUT). */
function portAddrsOf(portId: number, family: AddrFamily, out: Array<LearnedAddr & { peerIfindex: number }>): (keys: Buffer, values: Buffer, n: number) => void {
  const ks = ADDR_KEY_SIZE[family];
  const vs = IvbAddrOwnerLayout.size;
  const portAt = (family === 4 ? IvbAddr4KeyLayout : IvbAddr6KeyLayout).fields.portId.offset;
  return (keys, values, n) => {
    for (let i = 0; i < n; i++) {
      if (keys.readUInt32LE(i * ks + portAt) !== portId) continue;
      const k = decodeAddrKey(family, keys.subarray(i * ks, (i + 1) * ks));
      const o = decodeIvbAddrOwner(values.subarray(i * vs, (i + 1) * vs));
      out.push({ family, addr: bytesToAddr(family, Buffer.from(k.addr)), prefixlen: o.prefixlen, peerIfindex: o.peerIfindex });
    }
  };
}

/**
 * Replaces every port's programs with the objects of this build, atomically
 * per hook (bpf_link_update: no moment without a program). The pinned maps
 * are reused only when their layout fingerprint matches this build's.
 */
export function upgradePorts(ports: Array<{ portId: number; mode: string; master: { netns: string | null } }>): string[] {
  const migration = migrateMaps();
  maps();
  const netnsOf = (id: number): string | null => ports.find((p) => p.portId === id)!.master.netns;
  const modeOf = (id: number): string => ports.find((p) => p.portId === id)!.mode;
  const done: string[] = migration ? [migration.note] : [];
  for (const { portId } of ports) {
    const dir = portPinDir(portId);
    for (const pin of ['master_ingress', 'slave_egress', 'peer_egress'] as const) {
      const progName = `ivb_${pin}`;
      const obj = loadPortInstance(pin, portId);
      try {
        const prog = obj.programFd(progName);
        const prefix = { master_ingress: 'link_master', slave_egress: 'link_peer_', peer_egress: 'link_pegress_' }[pin];
        const links = readdirSync(dir).filter((f) => (pin === 'master_ingress' ? f === prefix : f.startsWith(prefix)));
        for (const l of links) {
          const linkFd = objGet(join(dir, l));
          try {
            linkUpdate(linkFd, prog);
          } finally {
            closeFd(linkFd);
          }
        }
        rmSync(join(dir, pin), { force: true });
        obj.pinProgram(progName, join(dir, pin));
        done.push(`port ${portId}: ${progName} replaced on ${links.length} link(s)`);
      } finally {
        obj.close();
      }
    }
    // peers of an l3s port attached by a build without peer_egress get it now
    if (modeOf(portId) !== 'l3s') continue;
    for (const f of readdirSync(dir)) {
      const ifindex = Number(f.match(/^link_peer_(\d+)$/)?.[1] ?? 0);
      if (!ifindex || existsSync(peerEgressPin(dir, ifindex))) continue;
      attachPinned(join(dir, 'peer_egress'), ifindex, peerEgressPin(dir, ifindex), netnsOf(portId), 'tcx_egress');
      done.push(`port ${portId}: ivb_peer_egress attached to peer ${ifindex}`);
    }
  }
  // no program uses the earlier build's maps any more
  migration?.dropOld();
  return done;
}

/**
 * The pinned maps each earlier layout had otherwise than this build: they
 * are set aside and made anew (the rest are reused as they are).
 *  - hash-v1 (cb51093): ports, slaves and fan-out slots were hash maps; no
 *    ivb_slave_ids; address values had no slave index;
 *  - array-v2 (04f7cd0), and hash-v1 too: the counters were a per-CPU hash
 *    of rows keyed {port, ifindex, direction, action, reason}; both families
 *    of addresses were in one table (ivb_addrs) under a 24-byte key
 *    {port, family, pad, addr[16]}, the key ivb_local_addrs and ivb_unknown
 *    still had (now {family, pad, port, addr[16]}).
 */
const REPLACED: Record<string, readonly string[]> = {
  'hash-v1': ['ivb_ports', 'ivb_slaves', 'ivb_fanout_slots', 'ivb_counters', 'ivb_addrs', 'ivb_local_addrs', 'ivb_unknown'],
  'array-v2': ['ivb_counters', 'ivb_addrs', 'ivb_local_addrs', 'ivb_unknown'],
};

/** Every entry of a pinned map (hash maps: what is there). */
function pinnedEntries(pin: string, valueSize?: number): Array<{ key: Buffer; value: Buffer }> {
  if (!existsSync(pin)) return [];
  const fd = objGet(pin);
  try {
    const info = mapInfo(fd);
    const size = valueSize ?? info.valueSize;
    return mapKeys(fd, info.keySize).flatMap((key) => {
      const value = mapLookup(fd, key, size);
      return value ? [{ key, value }] : [];
    });
  } finally {
    closeFd(fd);
  }
}

/** An address key of the earlier layouts: {port_id u32, family u8, pad[3], addr[16]}. */
function decodeOldAddrKey(key: Buffer): { portId: number; family: Family; addr: Buffer } {
  return { portId: key.readUInt32LE(0), family: key[4] === 4 ? 4 : 6, addr: key.subarray(8, 24) };
}

/**
 * Moves the pinned maps of an earlier build (KNOWN_LAYOUTS) to this build's
 * layout, entries included, before the programs are replaced: the maps that
 * changed (REPLACED) are set aside under a folder of the layout's name, which
 * the running programs keep using until bpf_link_update gives them the new
 * programs, and are made anew next to them and filled; the rest are kept.
 * Counter rows become rows of their device's block (a row of a slave no
 * longer there goes to its port's deleted-slaves sums). null when the maps are this build's
 * already, or none exist; an unknown layout is left for maps() to refuse.
 */
function migrateMaps(): { note: string; dropOld: () => void } | null {
  const dir = mapsPinDir();
  const have = pinnedFingerprint(dir);
  const layout = have ? KNOWN_LAYOUTS[have.toString('hex')] : undefined;
  if (!have || have.equals(layoutFingerprint()) || layout === undefined) return null;
  const replaced = REPLACED[layout]!;
  const v1 = layout === 'hash-v1';
  const oldCapacity = (name: string): number => {
    const fd = objGet(join(dir, name));
    try {
      return mapInfo(fd).maxEntries;
    } finally {
      closeFd(fd);
    }
  };
  // hash-v1: ports u32 -> ivb_port; slaves {port, peer} -> {dev_id, flags, mtu, pad}; fan-out {port, slot} -> {peer, pad}
  const ports = v1 ? pinnedEntries(join(dir, 'ivb_ports')).map((e) => ({ portId: e.key.readUInt32LE(0), port: decodeIvbPort(e.value) })) : [];
  const slaves = v1
    ? pinnedEntries(join(dir, 'ivb_slaves')).map((e) => ({
        portId: e.key.readUInt32LE(0),
        peerIfindex: e.key.readUInt32LE(4),
        state: { devId: e.value.readUInt32LE(0), flags: e.value.readUInt32LE(4), mtu: e.value.readUInt32LE(8) },
      }))
    : [];
  const fanout = v1 ? pinnedEntries(join(dir, 'ivb_fanout_slots')).map((e) => ({ portId: e.key.readUInt32LE(0), slot: e.key.readUInt32LE(4), peerIfindex: e.value.readUInt32LE(0) })) : [];
  const addrs = pinnedEntries(join(dir, 'ivb_addrs')).map((e) => ({ ...decodeOldAddrKey(e.key), owner: decodeIvbAddrOwner(e.value) }));
  const localAddrs = pinnedEntries(join(dir, 'ivb_local_addrs')).map((e) => ({ key: decodeOldAddrKey(e.key), value: e.value }));
  // the per-CPU rows: {port u32, ifindex u32, direction u8, action u8, reason u8, pad} -> {packets, bytes} per CPU
  const counterRows = pinnedEntries(join(dir, 'ivb_counters'), perCpuValueSize(IvbCounterLayout.size));
  const slaveCapacity = Math.min(oldCapacity('ivb_slaves') - (v1 ? 0 : 1), IvbSize.SLAVES - 1);
  const aside = join(dir, layout);
  const moved = (name: string): string => join(aside, name);
  ensureDir(aside);
  for (const name of replaced) if (existsSync(join(dir, name))) movePin(join(dir, name), moved(name));
  closeOpenMaps();
  try {
    createPinnedMaps({ slaves: slaveCapacity });
    stampLayout(dir);
    for (const p of ports) writePortEntry(p.portId, p.port);
    for (const sl of slaves) writeSlaveEntry(sl.portId, sl.peerIfindex, sl.state);
    for (const f of fanout) writeFanoutSlot(f.portId, f.slot, f.peerIfindex);
    let withIndex = 0;
    for (const a of addrs) {
      // hash-v1's entries had no slave index: the slave's, now that every slave has one
      const slave = a.owner.slave || slaveIndex(a.portId, a.owner.peerIfindex, false);
      if (slave === null) continue;
      if (!a.owner.slave) withIndex++;
      const k = addrKeyOf(a.portId, a.family, a.addr);
      mapUpdate(addrsFd(a.family), k.key, encodeIvbAddrOwner({ ...a.owner, slave }), BPF_ANY);
    }
    for (const l of localAddrs) mapUpdate(maps().localAddrs, encodeIvbAddrKey({ portId: l.key.portId, family: l.key.family, addr: l.key.addr }), l.value, BPF_ANY);
    const counted = migrateCounterRows(counterRows);
    const parts = v1 ? [`${ports.length} port(s), ${slaves.length} slave(s), ${fanout.length} fan-out slot(s) into arrays`] : [];
    parts.push(`${addrs.length} address(es) into ivb_addrs4/ivb_addrs6${v1 ? ` (${withIndex} given their slave index)` : ''}`);
    parts.push(`${counted} counter row(s) into device blocks`);
    return {
      note: `maps: migrated from layout ${have.toString('hex').slice(0, 12)} (${layout}): ${parts.join('; ')}`,
      dropOld: () => rmSync(aside, { recursive: true, force: true }),
    };
  } catch (e) {
    // back to the earlier build's maps, as they were
    closeOpenMaps();
    for (const name of [...replaced, ADDR_MAP[4], ADDR_MAP[6], ...(v1 ? ['ivb_slave_ids'] : [])]) rmSync(join(dir, name), { force: true });
    for (const name of replaced) if (existsSync(moved(name))) movePin(moved(name), join(dir, name));
    rmSync(aside, { recursive: true, force: true });
    const fd = objGet(join(dir, 'ivb_layout'));
    try {
      mapUpdate(fd, Buffer.alloc(4), have, BPF_ANY);
    } finally {
      closeFd(fd);
    }
    throw e;
  }
}

/** Adds the earlier layouts' counter rows (per CPU) into the blocks of their devices; returns the rows placed. */
function migrateCounterRows(rows: Array<{ key: Buffer; value: Buffer }>): number {
  const cpus = possibleCpus();
  const blockSize = perCpuValueSize(COUNTER_BLOCK_SIZE);
  const stride = blockSize / cpus;
  const blocks = new Map<number, Buffer>();
  let placed = 0;
  for (const { key, value } of rows) {
    const portId = key.readUInt32LE(0);
    const ifindex = key.readUInt32LE(4);
    const [direction, action, reason] = [key[8]!, key[9]!, key[10]!];
    const index = ifindex === 0 ? null : slaveIndex(portId, ifindex, false);
    // a row of a slave no longer there: in its port's deleted-slaves sums, as the old reader counted it
    const slot =
      ifindex === 0 ? masterCounterSlot(portId) : index === null ? retiredCounterSlot(mapInfo(maps().counters).maxEntries, portId) : slaveCounterSlot(index);
    let row = COUNTER_ROW_MEANING.findIndex((m) => m.direction === direction && m.action === action && m.reason === reason);
    if (row < 0) row = COUNTER_ROW_MEANING.findIndex((m) => m.direction === direction && m.action === UNLISTED);
    if (row < 0 || portId >= IvbSize.PORTS) continue;
    let block = blocks.get(slot);
    if (!block) blocks.set(slot, (block = Buffer.alloc(blockSize)));
    for (let c = 0; c < cpus; c++) {
      const from = c * Math.ceil(IvbCounterLayout.size / 8) * 8;
      const to = c * stride + row * IvbCounterLayout.size;
      block.writeBigUInt64LE(block.readBigUInt64LE(to) + value.readBigUInt64LE(from), to);
      block.writeBigUInt64LE(block.readBigUInt64LE(to + 8) + value.readBigUInt64LE(from + 8), to + 8);
    }
    placed++;
  }
  for (const [slot, block] of blocks) mapUpdate(maps().counters, u32(slot), block, BPF_ANY);
  return placed;
}

/** Pins the object of `from` at `to` and unpins `from` (bpffs refuses rename(2) of pins). */
function movePin(from: string, to: string): void {
  const fd = objGet(from);
  try {
    objPin(fd, to);
  } finally {
    closeFd(fd);
  }
  rmSync(from);
}

/** Forgets (and closes) the maps opened by maps(): the pins changed under them. */
function closeOpenMaps(): void {
  if (!openMaps) return;
  for (const fd of Object.values(openMaps)) closeFd(fd);
  openMaps = null;
}
