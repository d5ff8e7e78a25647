// SPDX-License-Identifier: GPL-2.0-only
/**
 * The frame `explain --src A --dst B` asks about, built as the sender would
 * put it on the wire: IPv4 or IPv6 by the address, ICMP echo request, UDP,
 * TCP SYN or an ARP request, with the MACs the sender would use.
 */
import { IvbError, EINVAL } from '../errors.js';
import { addrBytes, macBytes } from '../bpf/datapath.js';

export type Proto = 'icmp' | 'udp' | 'tcp' | 'arp';

export interface FrameSpec {
  src: string;
  dst: string;
  proto: Proto;
  srcMac: string;
  dstMac: string;
  /** total frame length (padded with zeros); default: just the headers and a small payload */
  size?: number;
}

export function isIpv6(a: string): boolean {
  return a.includes(':');
}

function checkAddr(a: string, what: string): void {
  try {
    addrBytes(isIpv6(a) ? 6 : 4, a);
  } catch (e) {
    // addrBytes throws a plain Error naming the bad address
    if (!(e instanceof Error)) throw e;
    throw new IvbError('IPVLAN_E_USAGE', `explain: "${a}" is not an IPv4 or IPv6 address (${what})`, EINVAL);
  }
}

/** Where a multicast/broadcast IP maps at L2 (RFC 1112, RFC 2464); null for unicast. */
export function groupMac(dst: string, prefixlen?: number): string | null {
  if (isIpv6(dst)) {
    const b = addrBytes(6, dst);
    if (b[0] !== 0xff) return null;
    return ['33', '33', ...[...b.subarray(12, 16)].map((x) => x.toString(16).padStart(2, '0'))].join(':');
  }
  const b = addrBytes(4, dst);
  if (b[0]! >= 224 && b[0]! <= 239) {
    return ['01', '00', '5e', (b[1]! & 0x7f).toString(16).padStart(2, '0'), b[2]!.toString(16).padStart(2, '0'), b[3]!.toString(16).padStart(2, '0')].join(':');
  }
  if (dst === '255.255.255.255') return 'ff:ff:ff:ff:ff:ff';
  if (prefixlen !== undefined && prefixlen > 0 && prefixlen < 31) {
    const host = 0xffffffff >>> prefixlen;
    if ((b.readUInt32BE(0) & host) === host) return 'ff:ff:ff:ff:ff:ff';
  }
  return null;
}

function sum16(b: Buffer, init = 0): number {
  let s = init;
  for (let i = 0; i + 1 < b.length; i += 2) s += b.readUInt16BE(i);
  if (b.length % 2) s += b[b.length - 1]! << 8;
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}

function csum(b: Buffer, init = 0): number {
  return ~sum16(b, init) & 0xffff;
}

function l4(proto: Proto, v6: boolean): { next: number; payload: Buffer } {
  switch (proto) {
    case 'icmp': {
      const b = Buffer.alloc(16);
      b[0] = v6 ? 128 : 8; // echo request
      b.writeUInt16BE(0x1d1d, 4);
      b.writeUInt16BE(1, 6);
      b.write('ivb-expl', 8);
      return { next: v6 ? 58 : 1, payload: b };
    }
    case 'udp': {
      const b = Buffer.alloc(16);
      b.writeUInt16BE(40000, 0);
      b.writeUInt16BE(7, 2);
      b.writeUInt16BE(16, 4);
      b.write('ivb-expl', 8);
      return { next: 17, payload: b };
    }
    case 'tcp': {
      const b = Buffer.alloc(20);
      b.writeUInt16BE(40000, 0);
      b.writeUInt16BE(80, 2);
      b.writeUInt32BE(1, 4);
      b[12] = 5 << 4;
      b[13] = 0x02; // SYN
      b.writeUInt16BE(64240, 14);
      return { next: 6, payload: b };
    }
    default:
      throw new IvbError('IPVLAN_E_USAGE', `explain: no L4 for ${proto}`, EINVAL);
  }
}

/** The frame, Ethernet header first. */
export function buildFrame(spec: FrameSpec): Buffer {
  checkAddr(spec.src, '--src');
  checkAddr(spec.dst, '--dst');
  const v6 = isIpv6(spec.dst);
  if (isIpv6(spec.src) !== v6) throw new IvbError('IPVLAN_E_USAGE', 'explain: --src and --dst must be the same family', EINVAL);
  const eth = Buffer.alloc(14);
  macBytes(spec.dstMac).copy(eth, 0);
  macBytes(spec.srcMac).copy(eth, 6);
  let body: Buffer;
  if (spec.proto === 'arp') {
    if (v6) throw new IvbError('IPVLAN_E_USAGE', 'explain: --proto arp needs IPv4 addresses (IPv6 uses neighbour discovery)', EINVAL);
    eth.writeUInt16BE(0x0806, 12);
    body = Buffer.alloc(28);
    body.writeUInt16BE(1, 0);
    body.writeUInt16BE(0x0800, 2);
    body[4] = 6;
    body[5] = 4;
    body.writeUInt16BE(1, 6); // request
    macBytes(spec.srcMac).copy(body, 8);
    addrBytes(4, spec.src).copy(body, 14, 0, 4);
    addrBytes(4, spec.dst).copy(body, 24, 0, 4);
  } else if (v6) {
    eth.writeUInt16BE(0x86dd, 12);
    const { next, payload } = l4(spec.proto, true);
    const h = Buffer.alloc(40);
    h.writeUInt32BE(0x60000000, 0);
    h.writeUInt16BE(payload.length, 4);
    h[6] = next;
    h[7] = 64;
    addrBytes(6, spec.src).copy(h, 8);
    addrBytes(6, spec.dst).copy(h, 24);
    const pseudo = Buffer.alloc(40);
    h.copy(pseudo, 0, 8, 40);
    pseudo.writeUInt32BE(payload.length, 32);
    pseudo[39] = next;
    const ck = next === 58 ? 2 : next === 17 ? 6 : 16;
    payload.writeUInt16BE(csum(payload, sum16(pseudo)), ck);
    body = Buffer.concat([h, payload]);
  } else {
    eth.writeUInt16BE(0x0800, 12);
    const { next, payload } = l4(spec.proto, false);
    const h = Buffer.alloc(20);
    h[0] = 0x45;
    h.writeUInt16BE(20 + payload.length, 2);
    h.writeUInt16BE(0x4000, 6);
    h[8] = 64;
    h[9] = next;
    addrBytes(4, spec.src).copy(h, 12, 0, 4);
    addrBytes(4, spec.dst).copy(h, 16, 0, 4);
    h.writeUInt16BE(csum(h), 10);
    if (next === 1) payload.writeUInt16BE(csum(payload), 2);
    else {
      const pseudo = Buffer.alloc(12);
      h.copy(pseudo, 0, 12, 20);
      pseudo[9] = next;
      pseudo.writeUInt16BE(payload.length, 10);
      payload.writeUInt16BE(csum(payload, sum16(pseudo)), next === 17 ? 6 : 16);
    }
    body = Buffer.concat([h, payload]);
  }
  const frame = Buffer.concat([eth, body]);
  if (spec.size !== undefined && spec.size > frame.length) return Buffer.concat([frame, Buffer.alloc(spec.size - frame.length)]);
  return frame;
}

/** --frame HEX: hex digits, optionally with spaces, colons or a 0x prefix. */
export function parseHexFrame(text: string): Buffer {
  const hex = text.replace(/^0x/i, '').replace(/[\s:.-]/g, '');
  if (hex.length === 0 || hex.length % 2 !== 0 || !/^[0-9a-fA-F]+$/.test(hex)) {
    throw new IvbError('IPVLAN_E_USAGE', 'explain: --frame takes the frame as hex digits, Ethernet header first', EINVAL);
  }
  const b = Buffer.from(hex, 'hex');
  if (b.length < 14) throw new IvbError('IPVLAN_E_USAGE', `explain: a frame needs at least an Ethernet header (14 bytes), got ${b.length}`, EINVAL);
  if (b.length > 65535) throw new IvbError('IPVLAN_E_USAGE', 'explain: frame longer than 65535 bytes', EINVAL);
  return b;
}
