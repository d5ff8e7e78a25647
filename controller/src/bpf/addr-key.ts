// SPDX-License-Identifier: GPL-2.0-only
/**
 * Where an address lives in the demux tables: IPv4 in ivb_addrs4 under an
 * 8-byte key, IPv6 in ivb_addrs6 under a 20-byte one (maps/layout.h). The
 * generic struct ivb_addr_key (both families, 24 bytes) keys the maps that
 * are not read per frame (ivb_local_addrs, ivb_unknown).
 */
import {
  decodeIvbAddr4Key,
  decodeIvbAddr6Key,
  encodeIvbAddr4Key,
  encodeIvbAddr6Key,
  IvbAddr4KeyLayout,
  IvbAddr6KeyLayout,
} from '../../../maps/generated.js';

export type AddrFamily = 4 | 6;

/** The demux table of each family, as pinned. */
export const ADDR_MAP = { 4: 'ivb_addrs4', 6: 'ivb_addrs6' } as const;
export type AddrMapName = (typeof ADDR_MAP)[AddrFamily];

/** Key size of each family's table. */
export const ADDR_KEY_SIZE = { 4: IvbAddr4KeyLayout.size, 6: IvbAddr6KeyLayout.size } as const;

export interface AddrKey {
  map: AddrMapName;
  key: Buffer;
}

/** The table and key of an address (`addr`: 4 bytes for IPv4, 16 for IPv6; an IPv4 one may be zero-padded to 16). */
export function addrKeyOf(portId: number, family: AddrFamily, addr: Buffer): AddrKey {
  if (family === 4) return { map: ADDR_MAP[4], key: encodeIvbAddr4Key({ portId, addr: addr.subarray(0, 4) }) };
  return { map: ADDR_MAP[6], key: encodeIvbAddr6Key({ portId, addr }) };
}

/** A key of a family's table, back to port and address bytes (4 or 16). */
export function decodeAddrKey(family: AddrFamily, key: Buffer): { portId: number; addr: Buffer } {
  return family === 4 ? decodeIvbAddr4Key(key) : decodeIvbAddr6Key(key);
}
