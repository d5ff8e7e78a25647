// SPDX-License-Identifier: GPL-2.0-only
/**
 * A slave's multicast filter as the kernel keeps it
 * (ipvlan_set_multicast_mac_filter): 256 bits, one per hash bucket of a
 * group MAC (ipvlan_mac_hash: jhash_1word of MAC bytes 2..5 read as a CPU-order
 * u32, & 0xff); the groups on the slave's multicast list and the broadcast
 * address are set, every bit when the slave is PROMISC or ALLMULTI. The
 * datapath (bpf/lib/fanout.h) computes the same hash with the same seed and
 * reads the filters turned around: per bucket, the fan-out slots that take it
 * (ivb_mc_slots), one lookup per frame.
 */
import { IvbMcFilterParams } from '../../../maps/generated.js';

const rol32 = (w: number, s: number): number => ((w << s) | (w >>> (32 - s))) >>> 0;

/** ipvlan_mac_hash() with our seed: the bucket of MAC ("aa:bb:cc:dd:ee:ff"). */
export function macHash(mac: string): number {
  const b = Buffer.from(mac.split(':').map((h) => parseInt(h, 16)));
  let a = b.readUInt32LE(2);
  let bb = (IvbMcFilterParams.HASH_SEED + 0xdeadbeef + 4) >>> 0;
  let c = bb;
  a = (a + bb) >>> 0;
  c = ((c ^ bb) - rol32(bb, 14)) >>> 0;
  a = ((a ^ c) - rol32(c, 11)) >>> 0;
  bb = ((bb ^ a) - rol32(a, 25)) >>> 0;
  c = ((c ^ bb) - rol32(bb, 16)) >>> 0;
  a = ((a ^ c) - rol32(c, 4)) >>> 0;
  bb = ((bb ^ a) - rol32(a, 14)) >>> 0;
  c = ((c ^ bb) - rol32(bb, 24)) >>> 0;
  return c & (IvbMcFilterParams.FILTER_BITS - 1);
}

export const BROADCAST_MAC = 'ff:ff:ff:ff:ff:ff';

/** The filter bits (32 bytes) of a slave with link FLAGS and link-layer multicast list GROUPS. */
export function mcFilterBits(flags: readonly string[], groups: readonly string[]): Buffer {
  const bits = Buffer.alloc(IvbMcFilterParams.FILTER_BITS / 8);
  if (flags.includes('PROMISC') || flags.includes('ALLMULTI')) return bits.fill(0xff);
  for (const g of [...groups, BROADCAST_MAC]) {
    const h = macHash(g);
    bits[h >> 3] = (bits[h >> 3] ?? 0) | (1 << (h & 7));
  }
  return bits;
}

/**
 * Per hash bucket, the fan-out slots (a 256-bit map each) whose slave's
 * FILTER has it; a slave whose filter is unknown (null) takes every bucket.
 */
export function mcSlotBitmaps(slaves: ReadonlyArray<{ slot: number; filter: Buffer | null }>): Buffer[] {
  const n = IvbMcFilterParams.FILTER_BITS;
  const out = Array.from({ length: n }, () => Buffer.alloc(n / 8));
  for (const { slot, filter } of slaves) {
    if (slot < 0 || slot >= n) continue;
    for (let b = 0; b < n; b++) {
      if (filter && !(((filter[b >> 3] ?? 0) >> (b & 7)) & 1)) continue;
      const m = out[b]!;
      m[slot >> 3] = (m[slot >> 3] ?? 0) | (1 << (slot & 7));
    }
  }
  return out;
}
