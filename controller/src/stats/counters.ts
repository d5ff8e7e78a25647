// SPDX-License-Identifier: GPL-2.0-only
/**
 * Reading the datapath's counters: the pinned per-CPU hash ivb_counters, one
 * row per (port, device, direction, action, reason), summed over CPUs here.
 * Also the occupancy and capacity of every pinned map (for metrics).
 *
 * Rows are read with one batch lookup where the kernel supports it, else key
 * by key; either is a snapshot racing with the datapath, which only ever adds,
 * so a row is never seen going backwards.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import {
  BpfError,
  closeFd,
  mapInfo,
  mapKeys,
  mapLookup,
  mapLookupBatch,
  objGet,
  perCpuValueSize,
  possibleCpus,
} from '../../../native/libbpf.js';
import { IvbCounterKeyLayout, IvbCounterLayout, IvbDropReasonTable, IvbSize, decodeIvbCounterKey } from '../../../maps/generated.js';
import { mapsPinDir } from '../paths.js';

/* linux/bpf.h: enum bpf_map_type */
const BPF_MAP_TYPE_ARRAY = 2;

export const COUNTERS_PIN = 'ivb_counters';

/** One counter row, summed over CPUs. */
export interface CounterRow {
  portId: number;
  /** host-side peer of the slave; 0 = the master */
  ifindex: number;
  /** 0 from the wire (master ingress), 1 from a slave (slave egress) */
  direction: number;
  action: number;
  reason: number;
  packets: number;
  bytes: number;
}

const BPF_MAP_TYPE_PERCPU_HASH = 5;

/** Sums one per-CPU value buffer of struct ivb_counter slots. */
export function sumPerCpu(value: Buffer, cpus: number): { packets: number; bytes: number } {
  const slot = Math.ceil(IvbCounterLayout.size / 8) * 8;
  let packets = 0n;
  let bytes = 0n;
  for (let c = 0; c < cpus; c++) {
    const off = c * slot;
    if (off + IvbCounterLayout.size > value.length) break;
    packets += value.readBigUInt64LE(off + IvbCounterLayout.fields.packets.offset);
    bytes += value.readBigUInt64LE(off + IvbCounterLayout.fields.bytes.offset);
  }
  // 2^53 packets is centuries at line rate: numbers are safe and JSON-friendly
  return { packets: Number(packets), bytes: Number(bytes) };
}

/** Every row of an open ivb_counters fd. */
export function readCounterRowsFd(fd: number): CounterRow[] {
  const info = mapInfo(fd);
  if (info.type !== BPF_MAP_TYPE_PERCPU_HASH || info.keySize !== IvbCounterKeyLayout.size) {
    throw new Error(`ivb_counters: unexpected map (type ${info.type}, key ${info.keySize} bytes): stale pins from another build?`);
  }
  const valueSize = perCpuValueSize(IvbCounterLayout.size);
  const cpus = possibleCpus();
  let keys: Buffer[];
  let values: Buffer[];
  try {
    ({ keys, values } = mapLookupBatch(fd, IvbCounterKeyLayout.size, valueSize));
  } catch (e) {
    // kernels or map types without batch ops (EINVAL/ENOTSUPP): one lookup per key
    if (!(e instanceof BpfError && [22, 95, 524].includes(e.errno))) throw e;
    keys = [];
    values = [];
    for (const k of mapKeys(fd, IvbCounterKeyLayout.size)) {
      const v = mapLookup(fd, k, valueSize);
      if (v) {
        keys.push(k);
        values.push(v);
      }
    }
  }
  const rows: CounterRow[] = [];
  for (let i = 0; i < keys.length; i++) {
    const k = decodeIvbCounterKey(keys[i]!);
    const { packets, bytes } = sumPerCpu(values[i]!, cpus);
    rows.push({ portId: k.portId, ifindex: k.ifindex, direction: k.direction, action: k.action, reason: k.reason, packets, bytes });
  }
  return rows;
}

/** Every counter row under the live pins; [] when no port was ever created (nothing pinned). */
export function readCounterRows(pinDir: string = mapsPinDir()): CounterRow[] {
  const pin = join(pinDir, COUNTERS_PIN);
  if (!existsSync(pin)) return [];
  const fd = objGet(pin);
  try {
    return readCounterRowsFd(fd);
  } finally {
    closeFd(fd);
  }
}

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
export const OCCUPANCY_MAPS = ['ivb_ports', 'ivb_addrs', 'ivb_local_addrs', 'ivb_slaves', 'ivb_fanout_slots', 'ivb_guard', 'ivb_counters'] as const;

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

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
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
