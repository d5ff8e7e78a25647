// SPDX-License-Identifier: GPL-2.0-only
// generated from bpf/layout.bpf.o by maps/gen-layouts.ts — do not edit
// (edit maps/layout.h, then: make -C bpf && npm run build:ts && npm run gen:maps)
import { copyBytes, requireLength, requireSpan, type StructLayout } from './codec.js';

/** enum ivb_size */
export const IvbSize = {
  PORTS: 1024, // IVB_SIZE_PORTS
  FANOUT_PER_PORT: 256, // IVB_SIZE_FANOUT_PER_PORT
  SLAVES: 65536, // IVB_SIZE_SLAVES
  MC_FILTER_BITS: 256, // IVB_SIZE_MC_FILTER_BITS
  COUNTER_ROWS: 37, // IVB_SIZE_COUNTER_ROWS
} as const;
export type IvbSize = (typeof IvbSize)[keyof typeof IvbSize];

/** enum ivb_mode */
export const IvbMode = {
  L2: 0, // IVB_MODE_L2
  L3: 1, // IVB_MODE_L3
  L3S: 2, // IVB_MODE_L3S
} as const;
export type IvbMode = (typeof IvbMode)[keyof typeof IvbMode];

/** enum ivb_port_flags */
export const IvbPortFlags = {
  PRIVATE: 1, // IVB_F_PRIVATE
  VEPA: 2, // IVB_F_VEPA
} as const;
export type IvbPortFlags = (typeof IvbPortFlags)[keyof typeof IvbPortFlags];

/** enum ivb_port_options */
export const IvbPortOptions = {
  VALIDATION: 1, // IVB_OPT_SOURCE_VALIDATION
} as const;
export type IvbPortOptions = (typeof IvbPortOptions)[keyof typeof IvbPortOptions];

/** enum ivb_family */
export const IvbFamily = {
  INET: 4, // IVB_AF_INET
  INET6: 6, // IVB_AF_INET6
} as const;
export type IvbFamily = (typeof IvbFamily)[keyof typeof IvbFamily];

/** enum ivb_slave_flags */
export const IvbSlaveFlags = {
  UP: 1, // IVB_SLAVE_UP
  SAME_NETNS: 2, // IVB_SLAVE_SAME_NETNS
} as const;
export type IvbSlaveFlags = (typeof IvbSlaveFlags)[keyof typeof IvbSlaveFlags];

/** enum ivb_action */
export const IvbAction = {
  PASS: 0, // IVB_ACT_PASS
  DELIVER: 1, // IVB_ACT_DELIVER
  TO_WIRE: 2, // IVB_ACT_TO_WIRE
  TO_MASTER: 3, // IVB_ACT_TO_MASTER
  ROUTE: 4, // IVB_ACT_ROUTE
  ROUTE_PINNED: 5, // IVB_ACT_ROUTE_PINNED
  DROP: 6, // IVB_ACT_DROP
  FANOUT_COPY: 7, // IVB_ACT_FANOUT_COPY
  HELD: 8, // IVB_ACT_HELD
} as const;
export type IvbAction = (typeof IvbAction)[keyof typeof IvbAction];

/** enum ivb_drop_reason */
export const IvbDropReason = {
  NONE: 0, // IVB_DROP_NONE
  NO_PORT: 1, // IVB_DROP_NO_PORT
  MALFORMED: 2, // IVB_DROP_MALFORMED
  PRIVATE: 3, // IVB_DROP_PRIVATE
  L3_MULTICAST: 4, // IVB_DROP_L3_MULTICAST
  L3_BROADCAST: 5, // IVB_DROP_L3_BROADCAST
  L3_PROTOCOL: 6, // IVB_DROP_L3_PROTOCOL
  NO_ROUTE: 7, // IVB_DROP_NO_ROUTE
  TOO_BIG: 8, // IVB_DROP_TOO_BIG
  SLAVE_GONE: 9, // IVB_DROP_SLAVE_GONE
  NO_OWNER: 10, // IVB_DROP_NO_OWNER
  SLAVE_DOWN: 11, // IVB_DROP_SLAVE_DOWN
  SPOOFED_MAC: 12, // IVB_DROP_SPOOFED_MAC
  SPOOFED_SOURCE: 13, // IVB_DROP_SPOOFED_SOURCE
  NO_NEIGH: 14, // IVB_DROP_NO_NEIGH
  VEPA_HAIRPIN: 15, // IVB_DROP_VEPA_HAIRPIN
  VLAN_TAGGED: 16, // IVB_DROP_VLAN_TAGGED
  OTHER_HOST: 17, // IVB_DROP_OTHER_HOST
  SLOWPATH_FULL: 18, // IVB_DROP_SLOWPATH_FULL
  UNKNOWN_SOURCE: 19, // IVB_DROP_UNKNOWN_SOURCE
  UNKNOWN_DEST: 20, // IVB_DROP_UNKNOWN_DEST
  UNKNOWN_LOCAL_DEST: 21, // IVB_DROP_UNKNOWN_LOCAL_DEST
} as const;
export type IvbDropReason = (typeof IvbDropReason)[keyof typeof IvbDropReason];

/** enum ivb_direction */
export const IvbDirection = {
  WIRE: 0, // IVB_DIR_FROM_WIRE
  SLAVE: 1, // IVB_DIR_FROM_SLAVE
  SIBLING: 2, // IVB_DIR_FROM_SIBLING
} as const;
export type IvbDirection = (typeof IvbDirection)[keyof typeof IvbDirection];

/** enum ivb_counter_row */
export const IvbCounterRow = {
  WIRE__PASS__NONE: 0, // IVB_ROW_WIRE__PASS__NONE
  WIRE__PASS__NO_OWNER: 1, // IVB_ROW_WIRE__PASS__NO_OWNER
  WIRE__PASS__SLAVE_DOWN: 2, // IVB_ROW_WIRE__PASS__SLAVE_DOWN
  WIRE__PASS__SLAVE_GONE: 3, // IVB_ROW_WIRE__PASS__SLAVE_GONE
  WIRE__DROP__OTHER_HOST: 4, // IVB_ROW_WIRE__DROP__OTHER_HOST
  WIRE__DROP__SLAVE_GONE: 5, // IVB_ROW_WIRE__DROP__SLAVE_GONE
  WIRE__ROUTE__NONE: 6, // IVB_ROW_WIRE__ROUTE__NONE
  WIRE__DELIVER__NONE: 7, // IVB_ROW_WIRE__DELIVER__NONE
  WIRE__FANOUT_COPY__NONE: 8, // IVB_ROW_WIRE__FANOUT_COPY__NONE
  SLAVE__DELIVER__NONE: 9, // IVB_ROW_SLAVE__DELIVER__NONE
  SLAVE__FANOUT_COPY__NONE: 10, // IVB_ROW_SLAVE__FANOUT_COPY__NONE
  SLAVE__TO_WIRE__NONE: 11, // IVB_ROW_SLAVE__TO_WIRE__NONE
  SLAVE__TO_WIRE__VEPA_HAIRPIN: 12, // IVB_ROW_SLAVE__TO_WIRE__VEPA_HAIRPIN
  SLAVE__TO_MASTER__NONE: 13, // IVB_ROW_SLAVE__TO_MASTER__NONE
  SLAVE__ROUTE__NONE: 14, // IVB_ROW_SLAVE__ROUTE__NONE
  SLAVE__ROUTE_PINNED__NONE: 15, // IVB_ROW_SLAVE__ROUTE_PINNED__NONE
  SLAVE__HELD__UNKNOWN_SOURCE: 16, // IVB_ROW_SLAVE__HELD__UNKNOWN_SOURCE
  SLAVE__HELD__UNKNOWN_LOCAL_DEST: 17, // IVB_ROW_SLAVE__HELD__UNKNOWN_LOCAL_DEST
  SLAVE__DROP__NO_PORT: 18, // IVB_ROW_SLAVE__DROP__NO_PORT
  SLAVE__DROP__MALFORMED: 19, // IVB_ROW_SLAVE__DROP__MALFORMED
  SLAVE__DROP__PRIVATE: 20, // IVB_ROW_SLAVE__DROP__PRIVATE
  SLAVE__DROP__L3_MULTICAST: 21, // IVB_ROW_SLAVE__DROP__L3_MULTICAST
  SLAVE__DROP__L3_BROADCAST: 22, // IVB_ROW_SLAVE__DROP__L3_BROADCAST
  SLAVE__DROP__L3_PROTOCOL: 23, // IVB_ROW_SLAVE__DROP__L3_PROTOCOL
  SLAVE__DROP__NO_ROUTE: 24, // IVB_ROW_SLAVE__DROP__NO_ROUTE
  SLAVE__DROP__TOO_BIG: 25, // IVB_ROW_SLAVE__DROP__TOO_BIG
  SLAVE__DROP__SLAVE_GONE: 26, // IVB_ROW_SLAVE__DROP__SLAVE_GONE
  SLAVE__DROP__SPOOFED_MAC: 27, // IVB_ROW_SLAVE__DROP__SPOOFED_MAC
  SLAVE__DROP__SPOOFED_SOURCE: 28, // IVB_ROW_SLAVE__DROP__SPOOFED_SOURCE
  SLAVE__DROP__NO_NEIGH: 29, // IVB_ROW_SLAVE__DROP__NO_NEIGH
  SLAVE__DROP__VLAN_TAGGED: 30, // IVB_ROW_SLAVE__DROP__VLAN_TAGGED
  SLAVE__DROP__SLOWPATH_FULL: 31, // IVB_ROW_SLAVE__DROP__SLOWPATH_FULL
  SIBLING__DELIVER__NONE: 32, // IVB_ROW_SIBLING__DELIVER__NONE
  SIBLING__FANOUT_COPY__NONE: 33, // IVB_ROW_SIBLING__FANOUT_COPY__NONE
  WIRE__OTHER: 34, // IVB_ROW_WIRE__OTHER
  SLAVE__OTHER: 35, // IVB_ROW_SLAVE__OTHER
  SIBLING__OTHER: 36, // IVB_ROW_SIBLING__OTHER
} as const;
export type IvbCounterRow = (typeof IvbCounterRow)[keyof typeof IvbCounterRow];

/** struct ivb_port_key (4 bytes) */
export interface IvbPortKey {
  /** __u32 port_id */
  portId: number;
}

export const IvbPortKeyLayout = {
  name: 'ivb_port_key',
  size: 4,
  fields: {
    portId: { offset: 0, size: 4, kind: 'u32' },
  },
} as const satisfies StructLayout;

export function encodeIvbPortKey(v: IvbPortKey): Buffer {
  // zero-filled: pad members go out as 0, and the kernel compares keys byte for byte
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v.portId, 0);
  return b;
}

export function decodeIvbPortKey(b: Buffer, offset = 0): IvbPortKey {
  requireSpan('IvbPortKey', b, offset, 4);
  return {
    portId: b.readUInt32LE(offset),
  };
}

/** struct ivb_port (20 bytes) */
export interface IvbPort {
  /** __u32 master_ifindex */
  masterIfindex: number;
  /** __u8 master_mac[6], exactly 6 bytes */
  masterMac: Buffer;
  /** __u8 mode */
  mode: number;
  /** __u8 flags */
  flags: number;
  /** __u32 nr_slaves */
  nrSlaves: number;
  /** __u32 options */
  options: number;
}

export const IvbPortLayout = {
  name: 'ivb_port',
  size: 20,
  fields: {
    masterIfindex: { offset: 0, size: 4, kind: 'u32' },
    masterMac: { offset: 4, size: 6, kind: 'bytes' },
    mode: { offset: 10, size: 1, kind: 'u8' },
    flags: { offset: 11, size: 1, kind: 'u8' },
    nrSlaves: { offset: 12, size: 4, kind: 'u32' },
    options: { offset: 16, size: 4, kind: 'u32' },
  },
} as const satisfies StructLayout;

export function encodeIvbPort(v: IvbPort): Buffer {
  // zero-filled: pad members go out as 0, and the kernel compares keys byte for byte
  const b = Buffer.alloc(20);
  b.writeUInt32LE(v.masterIfindex, 0);
  b.set(requireLength('IvbPort.masterMac', v.masterMac, 6), 4);
  b.writeUInt8(v.mode, 10);
  b.writeUInt8(v.flags, 11);
  b.writeUInt32LE(v.nrSlaves, 12);
  b.writeUInt32LE(v.options, 16);
  return b;
}

export function decodeIvbPort(b: Buffer, offset = 0): IvbPort {
  requireSpan('IvbPort', b, offset, 20);
  return {
    masterIfindex: b.readUInt32LE(offset),
    masterMac: copyBytes(b, offset + 4, 6),
    mode: b.readUInt8(offset + 10),
    flags: b.readUInt8(offset + 11),
    nrSlaves: b.readUInt32LE(offset + 12),
    options: b.readUInt32LE(offset + 16),
  };
}

/** struct ivb_addr_key (24 bytes) */
export interface IvbAddrKey {
  /** __u8 family */
  family: number;
  /** __u32 port_id */
  portId: number;
  /** __u8 addr[16], exactly 16 bytes */
  addr: Buffer;
}

export const IvbAddrKeyLayout = {
  name: 'ivb_addr_key',
  size: 24,
  fields: {
    family: { offset: 0, size: 1, kind: 'u8' },
    pad: { offset: 1, size: 3, kind: 'pad' },
    portId: { offset: 4, size: 4, kind: 'u32' },
    addr: { offset: 8, size: 16, kind: 'bytes' },
  },
} as const satisfies StructLayout;

export function encodeIvbAddrKey(v: IvbAddrKey): Buffer {
  // zero-filled: pad members go out as 0, and the kernel compares keys byte for byte
  const b = Buffer.alloc(24);
  b.writeUInt8(v.family, 0);
  b.writeUInt32LE(v.portId, 4);
  b.set(requireLength('IvbAddrKey.addr', v.addr, 16), 8);
  return b;
}

export function decodeIvbAddrKey(b: Buffer, offset = 0): IvbAddrKey {
  requireSpan('IvbAddrKey', b, offset, 24);
  return {
    family: b.readUInt8(offset),
    portId: b.readUInt32LE(offset + 4),
    addr: copyBytes(b, offset + 8, 16),
  };
}

/** struct ivb_addr4_key (8 bytes) */
export interface IvbAddr4Key {
  /** __u32 port_id */
  portId: number;
  /** __u8 addr[4], exactly 4 bytes */
  addr: Buffer;
}

export const IvbAddr4KeyLayout = {
  name: 'ivb_addr4_key',
  size: 8,
  fields: {
    portId: { offset: 0, size: 4, kind: 'u32' },
    addr: { offset: 4, size: 4, kind: 'bytes' },
  },
} as const satisfies StructLayout;

export function encodeIvbAddr4Key(v: IvbAddr4Key): Buffer {
  // zero-filled: pad members go out as 0, and the kernel compares keys byte for byte
  const b = Buffer.alloc(8);
  b.writeUInt32LE(v.portId, 0);
  b.set(requireLength('IvbAddr4Key.addr', v.addr, 4), 4);
  return b;
}

export function decodeIvbAddr4Key(b: Buffer, offset = 0): IvbAddr4Key {
  requireSpan('IvbAddr4Key', b, offset, 8);
  return {
    portId: b.readUInt32LE(offset),
    addr: copyBytes(b, offset + 4, 4),
  };
}

/** struct ivb_addr6_key (20 bytes) */
export interface IvbAddr6Key {
  /** __u32 port_id */
  portId: number;
  /** __u8 addr[16], exactly 16 bytes */
  addr: Buffer;
}

export const IvbAddr6KeyLayout = {
  name: 'ivb_addr6_key',
  size: 20,
  fields: {
    portId: { offset: 0, size: 4, kind: 'u32' },
    addr: { offset: 4, size: 16, kind: 'bytes' },
  },
} as const satisfies StructLayout;

export function encodeIvbAddr6Key(v: IvbAddr6Key): Buffer {
  // zero-filled: pad members go out as 0, and the kernel compares keys byte for byte
  const b = Buffer.alloc(20);
  b.writeUInt32LE(v.portId, 0);
  b.set(requireLength('IvbAddr6Key.addr', v.addr, 16), 4);
  return b;
}

export function decodeIvbAddr6Key(b: Buffer, offset = 0): IvbAddr6Key {
  requireSpan('IvbAddr6Key', b, offset, 20);
  return {
    portId: b.readUInt32LE(offset),
    addr: copyBytes(b, offset + 4, 16),
  };
}

/** struct ivb_addr_owner (8 bytes) */
export interface IvbAddrOwner {
  /** __u32 peer_ifindex */
  peerIfindex: number;
  /** __u8 prefixlen */
  prefixlen: number;
  /** __u16 slave */
  slave: number;
}

export const IvbAddrOwnerLayout = {
  name: 'ivb_addr_owner',
  size: 8,
  fields: {
    peerIfindex: { offset: 0, size: 4, kind: 'u32' },
    prefixlen: { offset: 4, size: 1, kind: 'u8' },
    pad: { offset: 5, size: 1, kind: 'pad' },
    slave: { offset: 6, size: 2, kind: 'u16' },
  },
} as const satisfies StructLayout;

export function encodeIvbAddrOwner(v: IvbAddrOwner): Buffer {
  // zero-filled: pad members go out as 0, and the kernel compares keys byte for byte
  const b = Buffer.alloc(8);
  b.writeUInt32LE(v.peerIfindex, 0);
  b.writeUInt8(v.prefixlen, 4);
  b.writeUInt16LE(v.slave, 6);
  return b;
}

export function decodeIvbAddrOwner(b: Buffer, offset = 0): IvbAddrOwner {
  requireSpan('IvbAddrOwner', b, offset, 8);
  return {
    peerIfindex: b.readUInt32LE(offset),
    prefixlen: b.readUInt8(offset + 4),
    slave: b.readUInt16LE(offset + 6),
  };
}

/** struct ivb_slave_key (8 bytes) */
export interface IvbSlaveKey {
  /** __u32 port_id */
  portId: number;
  /** __u32 peer_ifindex */
  peerIfindex: number;
}

export const IvbSlaveKeyLayout = {
  name: 'ivb_slave_key',
  size: 8,
  fields: {
    portId: { offset: 0, size: 4, kind: 'u32' },
    peerIfindex: { offset: 4, size: 4, kind: 'u32' },
  },
} as const satisfies StructLayout;

export function encodeIvbSlaveKey(v: IvbSlaveKey): Buffer {
  // zero-filled: pad members go out as 0, and the kernel compares keys byte for byte
  const b = Buffer.alloc(8);
  b.writeUInt32LE(v.portId, 0);
  b.writeUInt32LE(v.peerIfindex, 4);
  return b;
}

export function decodeIvbSlaveKey(b: Buffer, offset = 0): IvbSlaveKey {
  requireSpan('IvbSlaveKey', b, offset, 8);
  return {
    portId: b.readUInt32LE(offset),
    peerIfindex: b.readUInt32LE(offset + 4),
  };
}

/** struct ivb_slave (24 bytes) */
export interface IvbSlave {
  /** __u32 dev_id */
  devId: number;
  /** __u32 flags */
  flags: number;
  /** __u32 mtu */
  mtu: number;
  /** __u32 peer_ifindex */
  peerIfindex: number;
  /** __u32 port_id */
  portId: number;
}

export const IvbSlaveLayout = {
  name: 'ivb_slave',
  size: 24,
  fields: {
    devId: { offset: 0, size: 4, kind: 'u32' },
    flags: { offset: 4, size: 4, kind: 'u32' },
    mtu: { offset: 8, size: 4, kind: 'u32' },
    peerIfindex: { offset: 12, size: 4, kind: 'u32' },
    portId: { offset: 16, size: 4, kind: 'u32' },
    pad: { offset: 20, size: 4, kind: 'pad' },
  },
} as const satisfies StructLayout;

export function encodeIvbSlave(v: IvbSlave): Buffer {
  // zero-filled: pad members go out as 0, and the kernel compares keys byte for byte
  const b = Buffer.alloc(24);
  b.writeUInt32LE(v.devId, 0);
  b.writeUInt32LE(v.flags, 4);
  b.writeUInt32LE(v.mtu, 8);
  b.writeUInt32LE(v.peerIfindex, 12);
  b.writeUInt32LE(v.portId, 16);
  return b;
}

export function decodeIvbSlave(b: Buffer, offset = 0): IvbSlave {
  requireSpan('IvbSlave', b, offset, 24);
  return {
    devId: b.readUInt32LE(offset),
    flags: b.readUInt32LE(offset + 4),
    mtu: b.readUInt32LE(offset + 8),
    peerIfindex: b.readUInt32LE(offset + 12),
    portId: b.readUInt32LE(offset + 16),
  };
}

/** struct ivb_fanout_key (8 bytes) */
export interface IvbFanoutKey {
  /** __u32 port_id */
  portId: number;
  /** __u32 slot */
  slot: number;
}

export const IvbFanoutKeyLayout = {
  name: 'ivb_fanout_key',
  size: 8,
  fields: {
    portId: { offset: 0, size: 4, kind: 'u32' },
    slot: { offset: 4, size: 4, kind: 'u32' },
  },
} as const satisfies StructLayout;

export function encodeIvbFanoutKey(v: IvbFanoutKey): Buffer {
  // zero-filled: pad members go out as 0, and the kernel compares keys byte for byte
  const b = Buffer.alloc(8);
  b.writeUInt32LE(v.portId, 0);
  b.writeUInt32LE(v.slot, 4);
  return b;
}

export function decodeIvbFanoutKey(b: Buffer, offset = 0): IvbFanoutKey {
  requireSpan('IvbFanoutKey', b, offset, 8);
  return {
    portId: b.readUInt32LE(offset),
    slot: b.readUInt32LE(offset + 4),
  };
}

/** struct ivb_fanout_entry (8 bytes) */
export interface IvbFanoutEntry {
  /** __u32 peer_ifindex */
  peerIfindex: number;
  /** __u16 slave */
  slave: number;
}

export const IvbFanoutEntryLayout = {
  name: 'ivb_fanout_entry',
  size: 8,
  fields: {
    peerIfindex: { offset: 0, size: 4, kind: 'u32' },
    slave: { offset: 4, size: 2, kind: 'u16' },
    pad: { offset: 6, size: 2, kind: 'pad' },
  },
} as const satisfies StructLayout;

export function encodeIvbFanoutEntry(v: IvbFanoutEntry): Buffer {
  // zero-filled: pad members go out as 0, and the kernel compares keys byte for byte
  const b = Buffer.alloc(8);
  b.writeUInt32LE(v.peerIfindex, 0);
  b.writeUInt16LE(v.slave, 4);
  return b;
}

export function decodeIvbFanoutEntry(b: Buffer, offset = 0): IvbFanoutEntry {
  requireSpan('IvbFanoutEntry', b, offset, 8);
  return {
    peerIfindex: b.readUInt32LE(offset),
    slave: b.readUInt16LE(offset + 4),
  };
}

/** struct ivb_mc_filter (40 bytes) */
export interface IvbMcFilter {
  /** __u32 kept */
  kept: number;
  /** __u8 bits[32], exactly 32 bytes */
  bits: Buffer;
}

export const IvbMcFilterLayout = {
  name: 'ivb_mc_filter',
  size: 40,
  fields: {
    kept: { offset: 0, size: 4, kind: 'u32' },
    pad: { offset: 4, size: 4, kind: 'pad' },
    bits: { offset: 8, size: 32, kind: 'bytes' },
  },
} as const satisfies StructLayout;

export function encodeIvbMcFilter(v: IvbMcFilter): Buffer {
  // zero-filled: pad members go out as 0, and the kernel compares keys byte for byte
  const b = Buffer.alloc(40);
  b.writeUInt32LE(v.kept, 0);
  b.set(requireLength('IvbMcFilter.bits', v.bits, 32), 8);
  return b;
}

export function decodeIvbMcFilter(b: Buffer, offset = 0): IvbMcFilter {
  requireSpan('IvbMcFilter', b, offset, 40);
  return {
    kept: b.readUInt32LE(offset),
    bits: copyBytes(b, offset + 8, 32),
  };
}

/** struct ivb_decision (16 bytes) */
export interface IvbDecision {
  /** __u32 action */
  action: number;
  /** __u32 target_ifindex */
  targetIfindex: number;
  /** __u32 reason */
  reason: number;
  /** __u32 fanout */
  fanout: number;
}

export const IvbDecisionLayout = {
  name: 'ivb_decision',
  size: 16,
  fields: {
    action: { offset: 0, size: 4, kind: 'u32' },
    targetIfindex: { offset: 4, size: 4, kind: 'u32' },
    reason: { offset: 8, size: 4, kind: 'u32' },
    fanout: { offset: 12, size: 4, kind: 'u32' },
  },
} as const satisfies StructLayout;

export function encodeIvbDecision(v: IvbDecision): Buffer {
  // zero-filled: pad members go out as 0, and the kernel compares keys byte for byte
  const b = Buffer.alloc(16);
  b.writeUInt32LE(v.action, 0);
  b.writeUInt32LE(v.targetIfindex, 4);
  b.writeUInt32LE(v.reason, 8);
  b.writeUInt32LE(v.fanout, 12);
  return b;
}

export function decodeIvbDecision(b: Buffer, offset = 0): IvbDecision {
  requireSpan('IvbDecision', b, offset, 16);
  return {
    action: b.readUInt32LE(offset),
    targetIfindex: b.readUInt32LE(offset + 4),
    reason: b.readUInt32LE(offset + 8),
    fanout: b.readUInt32LE(offset + 12),
  };
}

/** struct ivb_guard_key (8 bytes) */
export interface IvbGuardKey {
  /** __u32 netns_ino */
  netnsIno: number;
  /** __u32 ifindex */
  ifindex: number;
}

export const IvbGuardKeyLayout = {
  name: 'ivb_guard_key',
  size: 8,
  fields: {
    netnsIno: { offset: 0, size: 4, kind: 'u32' },
    ifindex: { offset: 4, size: 4, kind: 'u32' },
  },
} as const satisfies StructLayout;

export function encodeIvbGuardKey(v: IvbGuardKey): Buffer {
  // zero-filled: pad members go out as 0, and the kernel compares keys byte for byte
  const b = Buffer.alloc(8);
  b.writeUInt32LE(v.netnsIno, 0);
  b.writeUInt32LE(v.ifindex, 4);
  return b;
}

export function decodeIvbGuardKey(b: Buffer, offset = 0): IvbGuardKey {
  requireSpan('IvbGuardKey', b, offset, 8);
  return {
    netnsIno: b.readUInt32LE(offset),
    ifindex: b.readUInt32LE(offset + 4),
  };
}

/** struct ivb_guard_entry (8 bytes) */
export interface IvbGuardEntry {
  /** __u32 port_id */
  portId: number;
  /** __u32 peer_ifindex */
  peerIfindex: number;
}

export const IvbGuardEntryLayout = {
  name: 'ivb_guard_entry',
  size: 8,
  fields: {
    portId: { offset: 0, size: 4, kind: 'u32' },
    peerIfindex: { offset: 4, size: 4, kind: 'u32' },
  },
} as const satisfies StructLayout;

export function encodeIvbGuardEntry(v: IvbGuardEntry): Buffer {
  // zero-filled: pad members go out as 0, and the kernel compares keys byte for byte
  const b = Buffer.alloc(8);
  b.writeUInt32LE(v.portId, 0);
  b.writeUInt32LE(v.peerIfindex, 4);
  return b;
}

export function decodeIvbGuardEntry(b: Buffer, offset = 0): IvbGuardEntry {
  requireSpan('IvbGuardEntry', b, offset, 8);
  return {
    portId: b.readUInt32LE(offset),
    peerIfindex: b.readUInt32LE(offset + 4),
  };
}

/** struct ivb_counter (16 bytes) */
export interface IvbCounter {
  /** __u64 packets */
  packets: bigint;
  /** __u64 bytes */
  bytes: bigint;
}

export const IvbCounterLayout = {
  name: 'ivb_counter',
  size: 16,
  fields: {
    packets: { offset: 0, size: 8, kind: 'u64' },
    bytes: { offset: 8, size: 8, kind: 'u64' },
  },
} as const satisfies StructLayout;

export function encodeIvbCounter(v: IvbCounter): Buffer {
  // zero-filled: pad members go out as 0, and the kernel compares keys byte for byte
  const b = Buffer.alloc(16);
  b.writeBigUInt64LE(v.packets, 0);
  b.writeBigUInt64LE(v.bytes, 8);
  return b;
}

export function decodeIvbCounter(b: Buffer, offset = 0): IvbCounter {
  requireSpan('IvbCounter', b, offset, 16);
  return {
    packets: b.readBigUInt64LE(offset),
    bytes: b.readBigUInt64LE(offset + 8),
  };
}

/** struct ivb_settings (8 bytes) */
export interface IvbSettings {
  /** __u32 events */
  events: number;
  /** __u32 events_per_sec */
  eventsPerSec: number;
}

export const IvbSettingsLayout = {
  name: 'ivb_settings',
  size: 8,
  fields: {
    events: { offset: 0, size: 4, kind: 'u32' },
    eventsPerSec: { offset: 4, size: 4, kind: 'u32' },
  },
} as const satisfies StructLayout;

export function encodeIvbSettings(v: IvbSettings): Buffer {
  // zero-filled: pad members go out as 0, and the kernel compares keys byte for byte
  const b = Buffer.alloc(8);
  b.writeUInt32LE(v.events, 0);
  b.writeUInt32LE(v.eventsPerSec, 4);
  return b;
}

export function decodeIvbSettings(b: Buffer, offset = 0): IvbSettings {
  requireSpan('IvbSettings', b, offset, 8);
  return {
    events: b.readUInt32LE(offset),
    eventsPerSec: b.readUInt32LE(offset + 4),
  };
}

/** struct ivb_layout_id (32 bytes) */
export interface IvbLayoutId {
  /** __u8 sha256[32], exactly 32 bytes */
  sha256: Buffer;
}

export const IvbLayoutIdLayout = {
  name: 'ivb_layout_id',
  size: 32,
  fields: {
    sha256: { offset: 0, size: 32, kind: 'bytes' },
  },
} as const satisfies StructLayout;

export function encodeIvbLayoutId(v: IvbLayoutId): Buffer {
  // zero-filled: pad members go out as 0, and the kernel compares keys byte for byte
  const b = Buffer.alloc(32);
  b.set(requireLength('IvbLayoutId.sha256', v.sha256, 32), 0);
  return b;
}

export function decodeIvbLayoutId(b: Buffer, offset = 0): IvbLayoutId {
  requireSpan('IvbLayoutId', b, offset, 32);
  return {
    sha256: copyBytes(b, offset, 32),
  };
}

/** struct ivb_event (96 bytes) */
export interface IvbEvent {
  /** __u64 ts_ns */
  tsNs: bigint;
  /** __u32 port_id */
  portId: number;
  /** __u32 ifindex */
  ifindex: number;
  /** __u32 target */
  target: number;
  /** __u32 len */
  len: number;
  /** __u8 direction */
  direction: number;
  /** __u8 action */
  action: number;
  /** __u8 reason */
  reason: number;
  /** __u8 cap_len */
  capLen: number;
  /** __u8 head[64], exactly 64 bytes */
  head: Buffer;
}

export const IvbEventLayout = {
  name: 'ivb_event',
  size: 96,
  fields: {
    tsNs: { offset: 0, size: 8, kind: 'u64' },
    portId: { offset: 8, size: 4, kind: 'u32' },
    ifindex: { offset: 12, size: 4, kind: 'u32' },
    target: { offset: 16, size: 4, kind: 'u32' },
    len: { offset: 20, size: 4, kind: 'u32' },
    direction: { offset: 24, size: 1, kind: 'u8' },
    action: { offset: 25, size: 1, kind: 'u8' },
    reason: { offset: 26, size: 1, kind: 'u8' },
    capLen: { offset: 27, size: 1, kind: 'u8' },
    head: { offset: 28, size: 64, kind: 'bytes' },
    pad: { offset: 92, size: 4, kind: 'pad' },
  },
} as const satisfies StructLayout;

export function encodeIvbEvent(v: IvbEvent): Buffer {
  // zero-filled: pad members go out as 0, and the kernel compares keys byte for byte
  const b = Buffer.alloc(96);
  b.writeBigUInt64LE(v.tsNs, 0);
  b.writeUInt32LE(v.portId, 8);
  b.writeUInt32LE(v.ifindex, 12);
  b.writeUInt32LE(v.target, 16);
  b.writeUInt32LE(v.len, 20);
  b.writeUInt8(v.direction, 24);
  b.writeUInt8(v.action, 25);
  b.writeUInt8(v.reason, 26);
  b.writeUInt8(v.capLen, 27);
  b.set(requireLength('IvbEvent.head', v.head, 64), 28);
  return b;
}

export function decodeIvbEvent(b: Buffer, offset = 0): IvbEvent {
  requireSpan('IvbEvent', b, offset, 96);
  return {
    tsNs: b.readBigUInt64LE(offset),
    portId: b.readUInt32LE(offset + 8),
    ifindex: b.readUInt32LE(offset + 12),
    target: b.readUInt32LE(offset + 16),
    len: b.readUInt32LE(offset + 20),
    direction: b.readUInt8(offset + 24),
    action: b.readUInt8(offset + 25),
    reason: b.readUInt8(offset + 26),
    capLen: b.readUInt8(offset + 27),
    head: copyBytes(b, offset + 28, 64),
  };
}

/** struct ivb_slowpath_state (8 bytes) */
export interface IvbSlowpathState {
  /** __u64 consumer_until_ns */
  consumerUntilNs: bigint;
}

export const IvbSlowpathStateLayout = {
  name: 'ivb_slowpath_state',
  size: 8,
  fields: {
    consumerUntilNs: { offset: 0, size: 8, kind: 'u64' },
  },
} as const satisfies StructLayout;

export function encodeIvbSlowpathState(v: IvbSlowpathState): Buffer {
  // zero-filled: pad members go out as 0, and the kernel compares keys byte for byte
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(v.consumerUntilNs, 0);
  return b;
}

export function decodeIvbSlowpathState(b: Buffer, offset = 0): IvbSlowpathState {
  requireSpan('IvbSlowpathState', b, offset, 8);
  return {
    consumerUntilNs: b.readBigUInt64LE(offset),
  };
}

/** struct ivb_punt (1576 bytes) */
export interface IvbPunt {
  /** __u64 ts_ns */
  tsNs: bigint;
  /** __u32 port_id */
  portId: number;
  /** __u32 ifindex */
  ifindex: number;
  /** __u32 len */
  len: number;
  /** __u8 reason */
  reason: number;
  /** __u8 family */
  family: number;
  /** __u8 addr[16], exactly 16 bytes */
  addr: Buffer;
  /** __u8 frame[1536], exactly 1536 bytes */
  frame: Buffer;
}

export const IvbPuntLayout = {
  name: 'ivb_punt',
  size: 1576,
  fields: {
    tsNs: { offset: 0, size: 8, kind: 'u64' },
    portId: { offset: 8, size: 4, kind: 'u32' },
    ifindex: { offset: 12, size: 4, kind: 'u32' },
    len: { offset: 16, size: 4, kind: 'u32' },
    reason: { offset: 20, size: 1, kind: 'u8' },
    family: { offset: 21, size: 1, kind: 'u8' },
    pad: { offset: 22, size: 2, kind: 'pad' },
    addr: { offset: 24, size: 16, kind: 'bytes' },
    frame: { offset: 40, size: 1536, kind: 'bytes' },
  },
} as const satisfies StructLayout;

export function encodeIvbPunt(v: IvbPunt): Buffer {
  // zero-filled: pad members go out as 0, and the kernel compares keys byte for byte
  const b = Buffer.alloc(1576);
  b.writeBigUInt64LE(v.tsNs, 0);
  b.writeUInt32LE(v.portId, 8);
  b.writeUInt32LE(v.ifindex, 12);
  b.writeUInt32LE(v.len, 16);
  b.writeUInt8(v.reason, 20);
  b.writeUInt8(v.family, 21);
  b.set(requireLength('IvbPunt.addr', v.addr, 16), 24);
  b.set(requireLength('IvbPunt.frame', v.frame, 1536), 40);
  return b;
}

export function decodeIvbPunt(b: Buffer, offset = 0): IvbPunt {
  requireSpan('IvbPunt', b, offset, 1576);
  return {
    tsNs: b.readBigUInt64LE(offset),
    portId: b.readUInt32LE(offset + 8),
    ifindex: b.readUInt32LE(offset + 12),
    len: b.readUInt32LE(offset + 16),
    reason: b.readUInt8(offset + 20),
    family: b.readUInt8(offset + 21),
    addr: copyBytes(b, offset + 24, 16),
    frame: copyBytes(b, offset + 40, 1536),
  };
}

/** struct ivb_unknown_entry (8 bytes) */
export interface IvbUnknownEntry {
  /** __u64 checked_ns */
  checkedNs: bigint;
}

export const IvbUnknownEntryLayout = {
  name: 'ivb_unknown_entry',
  size: 8,
  fields: {
    checkedNs: { offset: 0, size: 8, kind: 'u64' },
  },
} as const satisfies StructLayout;

export function encodeIvbUnknownEntry(v: IvbUnknownEntry): Buffer {
  // zero-filled: pad members go out as 0, and the kernel compares keys byte for byte
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(v.checkedNs, 0);
  return b;
}

export function decodeIvbUnknownEntry(b: Buffer, offset = 0): IvbUnknownEntry {
  requireSpan('IvbUnknownEntry', b, offset, 8);
  return {
    checkedNs: b.readBigUInt64LE(offset),
  };
}

/** maps/drop_reasons.def: every reason's stable number, NAME (IvbDropReason), label (metric label, JSON key) and text */
export interface IvbDropReasonEntry {
  readonly value: number;
  readonly name: string;
  readonly label: string;
  readonly text: string;
}

export const IvbDropReasonTable: readonly IvbDropReasonEntry[] = [
  { value: 0, name: 'NONE', label: 'none', text: 'not dropped' },
  { value: 1, name: 'NO_PORT', label: 'no_port', text: 'the slave\'s port (master) is gone' },
  { value: 2, name: 'MALFORMED', label: 'malformed', text: 'malformed or truncated header' },
  { value: 3, name: 'PRIVATE', label: 'private', text: 'private mode: no unicast between slaves' },
  { value: 4, name: 'L3_MULTICAST', label: 'l3_multicast', text: 'l3/l3s slaves send no multicast or broadcast frames' },
  { value: 5, name: 'L3_BROADCAST', label: 'l3_broadcast', text: 'l3/l3s: the limited broadcast 255.255.255.255 (a subnet broadcast is the master namespace route\'s to decide)' },
  { value: 6, name: 'L3_PROTOCOL', label: 'l3_protocol', text: 'l3/l3s carry only IPv4 and IPv6' },
  { value: 7, name: 'NO_ROUTE', label: 'fib_lookup_failed', text: 'no route in the master\'s namespace (unreachable, blackhole, prohibit)' },
  { value: 8, name: 'TOO_BIG', label: 'too_big', text: 'bigger than the receiving slave\'s MTU' },
  { value: 9, name: 'SLAVE_GONE', label: 'slave_gone', text: 'the owning slave\'s entry is missing' },
  { value: 10, name: 'NO_OWNER', label: 'no_owner', text: 'no slave owns the destination (to the master\'s stack)' },
  { value: 11, name: 'SLAVE_DOWN', label: 'slave_down', text: 'the owning slave is down (to the master\'s stack)' },
  { value: 12, name: 'SPOOFED_MAC', label: 'spoofed_mac', text: 'source MAC is not the master\'s' },
  { value: 13, name: 'SPOOFED_SOURCE', label: 'spoofed_source', text: 'source address is not the slave\'s own' },
  { value: 14, name: 'NO_NEIGH', label: 'neighbour_unresolved', text: 'neighbour unresolved in the master\'s namespace' },
  { value: 15, name: 'VEPA_HAIRPIN', label: 'vepa_hairpin', text: 'vepa: a frame for a sibling sent out for the switch to reflect' },
  { value: 16, name: 'VLAN_TAGGED', label: 'vlan_tagged', text: 'a slave sent a VLAN-tagged frame (ipvlan slaves are VLAN_CHALLENGED)' },
  { value: 17, name: 'OTHER_HOST', label: 'other_host', text: 'unicast for another host\'s MAC: the kernel\'s slave gets it as PACKET_OTHERHOST and ignores it' },
  { value: 18, name: 'SLOWPATH_FULL', label: 'slowpath_full', text: 'held for the agent, but this slave\'s slow-path budget or the ring is full' },
  { value: 19, name: 'UNKNOWN_SOURCE', label: 'unknown_source', text: 'held for the agent: a source address not learned yet' },
  { value: 20, name: 'UNKNOWN_DEST', label: 'unknown_destination', text: 'held for the agent: a destination in the sender\'s subnet not learned yet' },
  { value: 21, name: 'UNKNOWN_LOCAL_DEST', label: 'unknown_local_destination', text: 'held for the agent: a destination in the sender\'s subnet nobody was known to own, which the master\'s namespace would take itself (a new sibling\'s or shim\'s?)' },
];
