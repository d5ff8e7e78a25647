// SPDX-License-Identifier: GPL-2.0-only
/**
 * Reading the datapath's counters: the pinned PERCPU_ARRAY ivb_counters, one
 * block per device (maps/layout.h: a master's slot is its port id, a
 * slave's IvbSize.PORTS + its slave index), each block a row per
 * (direction, action, reason) of maps/counter_rows.def. Blocks are summed
 * over CPUs here and given back as one row per (port, device, direction,
 * action, reason) that counted anything.
 * Also the occupancy and capacity of every pinned map (for metrics).
 *
 * Only the blocks of devices in use are read (ports in ivb_ports, slaves in
 * ivb_slaves), each with one lookup: a snapshot racing with the datapath,
 * which only ever adds, so a row is never seen going backwards.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import {
  closeFd,
  mapInfo,
  mapKeys,
  mapLookup,
  mapLookupBatch,
  mapUpdate,
  objGet,
  perCpuValueSize,
  possibleCpus,
} from '../../../native/libbpf.js';
import {
  IvbAction,
  IvbCounterLayout,
  IvbCounterRow,
  IvbDirection,
  IvbDropReason,
  IvbDropReasonTable,
  IvbPortLayout,
  IvbSize,
  IvbSlaveLayout,
  decodeIvbPort,
  decodeIvbSlave,
} from '../../../maps/generated.js';
import { mapsPinDir } from '../paths.js';

/* linux/bpf.h: enum bpf_map_type */
const BPF_MAP_TYPE_ARRAY = 2;
const BPF_MAP_TYPE_PERCPU_ARRAY = 6;

const COUNTERS_PIN = 'ivb_counters';

/** action and reason of a counter_rows.def "other" row: a decision the table does not list */
export const UNLISTED = 255;

/** One counter row, summed over CPUs. */
export interface CounterRow {
  portId: number;
  /** host-side peer of the slave; 0 = the master */
  ifindex: number;
  /** 0 from the wire (master ingress), 1 from a slave (slave egress), 2 the receiving sibling */
  direction: number;
  /** IvbAction, or UNLISTED */
  action: number;
  /** IvbDropReason, or UNLISTED */
  reason: number;
  packets: number;
  bytes: number;
}

/** What row N of a device's counter block counts, from the generated enum's names (WIRE__PASS__NO_OWNER). */
export const COUNTER_ROW_MEANING: ReadonlyArray<{ direction: number; action: number; reason: number }> = (() => {
  const out: Array<{ direction: number; action: number; reason: number }> = [];
  for (const [name, row] of Object.entries(IvbCounterRow)) {
    const [dir, act, reason] = name.split('__') as [keyof typeof IvbDirection, string, string | undefined];
    const direction = IvbDirection[dir];
    const other = act === 'OTHER' && reason === undefined;
    const action = other ? UNLISTED : IvbAction[act as keyof typeof IvbAction];
    const why = other ? UNLISTED : IvbDropReason[reason as keyof typeof IvbDropReason];
    if (direction === undefined || action === undefined || why === undefined) {
      throw new Error(`ivb_counter_row ${name}: not DIRECTION__ACTION__REASON of this build's enums (maps/counter_rows.def)`);
    }
    out[row] = { direction, action, reason: why };
  }
  if (out.length !== IvbSize.COUNTER_ROWS || out.some((m) => m === undefined)) {
    throw new Error(`ivb_counter_row: ${out.length} rows for IVB_SIZE_COUNTER_ROWS ${IvbSize.COUNTER_ROWS}`);
  }
  return out;
})();

/** The bytes of one device's block, as the kernel stores one CPU's copy. */
export const COUNTER_BLOCK_SIZE = IvbSize.COUNTER_ROWS * IvbCounterLayout.size;

/** A master's slot in ivb_counters. */
export function masterCounterSlot(portId: number): number {
  return portId;
}

/** A slave's slot in ivb_counters (by its index in ivb_slaves). */
export function slaveCounterSlot(index: number): number {
  return IvbSize.PORTS + index;
}

/** The slot of a port's deleted slaves' sums: among the last IvbSize.PORTS of the map (`maxEntries`). */
export function retiredCounterSlot(maxEntries: number, portId: number): number {
  return maxEntries - IvbSize.PORTS + portId;
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return b;
}

/** Sums one row of a per-CPU block value over CPUs. */
function sumRow(value: Buffer, cpus: number, row: number): { packets: number; bytes: number } {
  const stride = Math.ceil(COUNTER_BLOCK_SIZE / 8) * 8;
  let packets = 0n;
  let bytes = 0n;
  for (let c = 0; c < cpus; c++) {
    const off = c * stride + row * IvbCounterLayout.size;
    if (off + IvbCounterLayout.size > value.length) break;
    packets += value.readBigUInt64LE(off + IvbCounterLayout.fields.packets.offset);
    bytes += value.readBigUInt64LE(off + IvbCounterLayout.fields.bytes.offset);
  }
  // 2^53 packets is centuries at line rate: numbers are safe and JSON-friendly
  return { packets: Number(packets), bytes: Number(bytes) };
}

/** The maps a counter read needs (open fds). */
export interface CounterMaps {
  counters: number;
  ports: number;
  slaves: number;
}

/**
 * The devices in use: a master per port with an entry (and its deleted
 * slaves' sums, counted as the master's like a row of a slave no longer
 * there), a slave per ivb_slaves entry naming a peer.
 */
function devicesInUse(m: CounterMaps): Array<{ slot: number; portId: number; ifindex: number }> {
  const out: Array<{ slot: number; portId: number; ifindex: number }> = [];
  const maxEntries = mapInfo(m.counters).maxEntries;
  const ports = mapLookupBatch(m.ports, 4, IvbPortLayout.size);
  ports.keys.forEach((k, i) => {
    const portId = k.readUInt32LE(0);
    if (decodeIvbPort(ports.values[i]!).masterIfindex === 0) return;
    out.push({ slot: masterCounterSlot(portId), portId, ifindex: 0 });
    out.push({ slot: retiredCounterSlot(maxEntries, portId), portId, ifindex: 0 });
  });
  const slaves = mapLookupBatch(m.slaves, 4, IvbSlaveLayout.size);
  slaves.keys.forEach((k, i) => {
    const s = decodeIvbSlave(slaves.values[i]!);
    if (s.peerIfindex !== 0) out.push({ slot: slaveCounterSlot(k.readUInt32LE(0)), portId: s.portId, ifindex: s.peerIfindex });
  });
  return out;
}

/** Every row that counted something, for the devices in use. */
export function readCounterRowsFds(m: CounterMaps): CounterRow[] {
  const info = mapInfo(m.counters);
  if (info.type !== BPF_MAP_TYPE_PERCPU_ARRAY || info.valueSize !== COUNTER_BLOCK_SIZE) {
    throw new Error(`ivb_counters: unexpected map (type ${info.type}, value ${info.valueSize} bytes): stale pins from another build?`);
  }
  const valueSize = perCpuValueSize(COUNTER_BLOCK_SIZE);
  const cpus = possibleCpus();
  const rows: CounterRow[] = [];
  for (const d of devicesInUse(m)) {
    if (d.slot >= info.maxEntries) continue;
    const v = mapLookup(m.counters, u32(d.slot), valueSize);
    if (!v) continue;
    for (let row = 0; row < IvbSize.COUNTER_ROWS; row++) {
      const { packets, bytes } = sumRow(v, cpus, row);
      if (packets === 0 && bytes === 0) continue;
      rows.push({ portId: d.portId, ifindex: d.ifindex, ...COUNTER_ROW_MEANING[row]!, packets, bytes });
    }
  }
  return rows;
}

/** Zeroes a device's block on every CPU (a slave index or port id given to a new device starts from 0). */
export function clearCounterSlot(countersFd: number, slot: number): void {
  if (slot >= mapInfo(countersFd).maxEntries) return;
  mapUpdate(countersFd, u32(slot), Buffer.alloc(perCpuValueSize(COUNTER_BLOCK_SIZE)));
}

/** Adds per-CPU block `add` into the block at `slot` (only blocks the datapath never writes: no race). */
function addIntoCounterSlot(countersFd: number, slot: number, add: Buffer): void {
  const size = perCpuValueSize(COUNTER_BLOCK_SIZE);
  const sum = mapLookup(countersFd, u32(slot), size) ?? Buffer.alloc(size);
  for (let off = 0; off + 8 <= size; off += 8) sum.writeBigUInt64LE(sum.readBigUInt64LE(off) + add.readBigUInt64LE(off), off);
  mapUpdate(countersFd, u32(slot), sum);
}

/**
 * A slave's block at its going: added to its port's deleted-slaves sums, so
 * that the port's totals (master rx and tx count its slaves' deliveries and
 * sends) never go back, and zeroed.
 */
export function retireCounterSlot(countersFd: number, slot: number, portId: number): void {
  const maxEntries = mapInfo(countersFd).maxEntries;
  if (slot >= maxEntries || portId >= IvbSize.PORTS) return;
  const v = mapLookup(countersFd, u32(slot), perCpuValueSize(COUNTER_BLOCK_SIZE));
  if (v && v.some((b) => b !== 0)) addIntoCounterSlot(countersFd, retiredCounterSlot(maxEntries, portId), v);
  clearCounterSlot(countersFd, slot);
}

/** Every counter row under the live pins; [] when no port was ever created (nothing pinned). */
export function readCounterRows(pinDir: string = mapsPinDir()): CounterRow[] {
  const names = [COUNTER_PIN_NAMES.counters, COUNTER_PIN_NAMES.ports, COUNTER_PIN_NAMES.slaves];
  if (!names.every((n) => existsSync(join(pinDir, n)))) return [];
  const fds: number[] = [];
  try {
    for (const n of names) fds.push(objGet(join(pinDir, n)));
    return readCounterRowsFds({ counters: fds[0]!, ports: fds[1]!, slaves: fds[2]! });
  } finally {
    for (const fd of fds) closeFd(fd);
  }
}

const COUNTER_PIN_NAMES = { counters: COUNTERS_PIN, ports: 'ivb_ports', slaves: 'ivb_slaves' } as const;

const labels = new Map(IvbDropReasonTable.map((r) => [r.value, r.label]));

/** A reason number as its label (metric label value, JSON key); unknown numbers stay recognisable. */
export function reasonLabel(reason: number): string {
  return labels.get(reason) ?? `reason_${reason}`;
}

export function reasonText(reason: number): string {
  return IvbDropReasonTable.find((r) => r.value === reason)?.text ?? `reason ${reason} (not in this build's table)`;
}

/**
 * The pinned maps whose fill level matters: hash maps, and the arrays indexed
 * by a dense id the control plane gives (ports, slaves, fan-out slots), whose
 * used entries are the ones not all zero.
 */
const OCCUPANCY_MAPS = ['ivb_ports', 'ivb_addrs4', 'ivb_addrs6', 'ivb_local_addrs', 'ivb_slaves', 'ivb_fanout_slots', 'ivb_guard', 'ivb_counters'] as const;

export interface MapFill {
  name: string;
  entries: number;
  capacity: number;
}

function countKeys(pin: string): number {
  if (!existsSync(pin)) return 0;
  const fd = objGet(pin);
  try {
    return mapKeys(fd, mapInfo(fd).keySize).length;
  } finally {
    closeFd(fd);
  }
}

/**
 * Used entries (not all zero) of ivb_ports, or of ivb_fanout_slots, whose
 * per-port lists are dense from slot 0 (IvbSize.FANOUT_PER_PORT slots a port):
 * a port with slot 0 empty has none, so 262k slots are not read one by one.
 */
function usedFanoutOrPorts(fd: number, maxEntries: number, valueSize: number, fanout: boolean): number {
  const used = (i: number): boolean => mapLookup(fd, u32(i), valueSize)?.some((b) => b !== 0) ?? false;
  if (!fanout) return mapLookupBatch(fd, 4, valueSize).values.filter((v) => v.some((b) => b !== 0)).length;
  let n = 0;
  for (let base = 0; base < maxEntries; base += IvbSize.FANOUT_PER_PORT) {
    for (let slot = 0; slot < IvbSize.FANOUT_PER_PORT && used(base + slot); slot++) n++;
  }
  return n;
}

/** Blocks of ivb_counters in use: one per port with an entry and per slave (its index entry). */
function usedCounterBlocks(pinDir: string): number {
  const pin = join(pinDir, 'ivb_ports');
  if (!existsSync(pin)) return 0;
  const fd = objGet(pin);
  try {
    const ports = mapLookupBatch(fd, 4, IvbPortLayout.size).values.filter((v) => decodeIvbPort(v).masterIfindex !== 0).length;
    return ports + countKeys(join(pinDir, 'ivb_slave_ids'));
  } finally {
    closeFd(fd);
  }
}

/** Entries and max_entries of each pinned map that exists. */
export function mapOccupancy(pinDir: string = mapsPinDir()): MapFill[] {
  const out: MapFill[] = [];
  for (const name of OCCUPANCY_MAPS) {
    const pin = join(pinDir, name);
    if (!existsSync(pin)) continue;
    const fd = objGet(pin);
    try {
      const info = mapInfo(fd);
      const entries =
        name === 'ivb_slaves'
          ? countKeys(join(pinDir, 'ivb_slave_ids')) // one index entry per slave: cheaper than 64k array slots
          : name === 'ivb_counters'
            ? usedCounterBlocks(pinDir)
          : info.type === BPF_MAP_TYPE_ARRAY
            ? usedFanoutOrPorts(fd, info.maxEntries, info.valueSize, name === 'ivb_fanout_slots')
            : mapKeys(fd, info.keySize).length;
      out.push({ name, entries, capacity: info.maxEntries });
    } finally {
      closeFd(fd);
    }
  }
  return out;
}
