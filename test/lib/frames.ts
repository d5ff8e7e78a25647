// SPDX-License-Identifier: GPL-2.0-only
/*
 * A small Ethernet/ARP/IPv4/IPv6 frame builder for the BPF unit tests, and
 * the whole frames the end-to-end tests send with topo.ts sendRaw.
 *
 * Deliberately independent of the datapath's own parsing: every header is
 * laid out here from the RFC / kernel struct, so a wrong offset in bpf/ shows
 * up as a failing case instead of being mirrored by the test.
 */

/** 6 bytes from "aa:bb:cc:dd:ee:ff". */
export function mac(s: string): Buffer {
	const parts = s.split(':');
	if (parts.length !== 6) throw new Error(`bad MAC ${s}`);
	return Buffer.from(parts.map((p) => parseInt(p, 16)));
}

/** 4 bytes, network order, from dotted quad. */
export function ip4(s: string): Buffer {
	const parts = s.split('.').map((p) => Number(p));
	if (parts.length !== 4 || parts.some((n) => !Number.isInteger(n) || n < 0 || n > 255)) {
		throw new Error(`bad IPv4 ${s}`);
	}
	return Buffer.from(parts);
}

/** 16 bytes from an IPv6 text address (with at most one "::", no embedded IPv4). */
export function ip6(s: string): Buffer {
	const halves = s.split('::');
	if (halves.length > 2) throw new Error(`bad IPv6 ${s}`);
	const groups = (h: string): number[] => (h === '' ? [] : h.split(':').map((g) => parseInt(g, 16)));
	const head = groups(halves[0] ?? '');
	const tail = halves.length === 2 ? groups(halves[1] ?? '') : [];
	const fill = halves.length === 2 ? 8 - head.length - tail.length : 0;
	const all = [...head, ...new Array<number>(fill).fill(0), ...tail];
	if (all.length !== 8 || all.some((g) => Number.isNaN(g) || g < 0 || g > 0xffff)) throw new Error(`bad IPv6 ${s}`);
	const b = Buffer.alloc(16);
	all.forEach((g, i) => b.writeUInt16BE(g, 2 * i));
	return b;
}

/** A 16-byte address key value: IPv4 in the first 4 bytes (maps/layout.h ivb_addr_key.addr). */
export function addr16(a: Buffer): Buffer {
	const b = Buffer.alloc(16);
	b.set(a, 0);
	return b;
}

/** The EUI-64 link-local addrconf gives a device with dev_id 0 (U/L bit flipped, ff:fe inserted). */
export function eui64LinkLocal(m: Buffer): Buffer {
	const b = Buffer.alloc(16);
	b[0] = 0xfe;
	b[1] = 0x80;
	b[8] = (m[0] ?? 0) ^ 0x02;
	b[9] = m[1] ?? 0;
	b[10] = m[2] ?? 0;
	b[11] = 0xff;
	b[12] = 0xfe;
	b[13] = m[3] ?? 0;
	b[14] = m[4] ?? 0;
	b[15] = m[5] ?? 0;
	return b;
}

/** The solicited-node multicast MAC 33:33:ff:xx:xx:xx for an IPv6 address. */
export function solicitedNodeMac(a: Buffer): Buffer {
	return Buffer.from([0x33, 0x33, 0xff, a[13] ?? 0, a[14] ?? 0, a[15] ?? 0]);
}

export function solicitedNodeAddr(a: Buffer): Buffer {
	const b = ip6('ff02::1:ff00:0');
	b[13] = a[13] ?? 0;
	b[14] = a[14] ?? 0;
	b[15] = a[15] ?? 0;
	return b;
}

export const ETH_P_IP = 0x0800;
export const ETH_P_ARP = 0x0806;
export const ETH_P_8021Q = 0x8100;
export const ETH_P_8021AD = 0x88a8;
export const ETH_P_IPV6 = 0x86dd;
export const ETH_P_LLDP = 0x88cc;

export const BROADCAST_MAC = mac('ff:ff:ff:ff:ff:ff');

function concat(parts: readonly Uint8Array[]): Buffer {
	const out = Buffer.alloc(parts.reduce((n, p) => n + p.length, 0));
	let off = 0;
	for (const p of parts) {
		out.set(p, off);
		off += p.length;
	}
	return out;
}

export function eth(dst: Buffer, src: Buffer, type: number, payload: Buffer = Buffer.alloc(0)): Buffer {
	const h = Buffer.alloc(14);
	h.set(dst, 0);
	h.set(src, 6);
	h.writeUInt16BE(type, 12);
	return concat([h, payload]);
}

/** An 802.1Q tag in the frame itself (what the stack sees when the NIC does not strip it). */
export function ethVlan(dst: Buffer, src: Buffer, vid: number, innerType: number, payload: Buffer, tpid = ETH_P_8021Q): Buffer {
	const tag = Buffer.alloc(4);
	tag.writeUInt16BE(vid & 0xfff, 0);
	tag.writeUInt16BE(innerType, 2);
	return eth(dst, src, tpid, concat([tag, payload]));
}

export interface ArpOptions {
	op?: number; // 1 request, 2 reply
	sha: Buffer;
	spa: Buffer;
	tha?: Buffer;
	tpa: Buffer;
	/** override the address lengths (the datapath only demuxes 6/4) */
	hln?: number;
	pln?: number;
}

/** ARP for IPv4 over Ethernet (28 bytes); hln/pln overrides keep the same byte layout. */
export function arp(o: ArpOptions): Buffer {
	const b = Buffer.alloc(28);
	b.writeUInt16BE(1, 0); // ARPHRD_ETHER
	b.writeUInt16BE(ETH_P_IP, 2);
	b[4] = o.hln ?? 6;
	b[5] = o.pln ?? 4;
	b.writeUInt16BE(o.op ?? 1, 6);
	b.set(o.sha, 8);
	b.set(o.spa, 14);
	b.set(o.tha ?? Buffer.alloc(6), 18);
	b.set(o.tpa, 24);
	return b;
}

/** RFC 1071 ones' complement sum of 16-bit words. */
export function inetChecksum(b: Buffer): number {
	let sum = 0;
	for (let i = 0; i + 1 < b.length; i += 2) sum += b.readUInt16BE(i);
	if (b.length % 2) sum += (b[b.length - 1] ?? 0) << 8;
	while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
	return ~sum & 0xffff;
}

export interface Ipv4Options {
	src: Buffer;
	dst: Buffer;
	ttl?: number;
	tos?: number;
	protocol?: number;
	payload?: Buffer;
	/** header fields for malformed-header cases; the checksum is still computed over what is written */
	version?: number;
	ihl?: number;
	totLen?: number;
}

export const IPPROTO_ICMP = 1;
export const IPPROTO_UDP = 17;
export const IPPROTO_ICMPV6 = 58;

/** IPv4 header (20 bytes, no options) + payload, with a valid header checksum. */
export function ipv4(o: Ipv4Options): Buffer {
	const payload = o.payload ?? Buffer.alloc(0);
	const h = Buffer.alloc(20);
	h[0] = ((o.version ?? 4) << 4) | ((o.ihl ?? 5) & 0xf);
	h[1] = o.tos ?? 0;
	h.writeUInt16BE(o.totLen ?? 20 + payload.length, 2);
	h.writeUInt16BE(0x1234, 4); // id
	h.writeUInt16BE(0x4000, 6); // DF
	h[8] = o.ttl ?? 64;
	h[9] = o.protocol ?? IPPROTO_UDP;
	h.set(o.src, 12);
	h.set(o.dst, 16);
	h.writeUInt16BE(inetChecksum(h), 10);
	return concat([h, payload]);
}

export interface Ipv6Options {
	src: Buffer;
	dst: Buffer;
	hopLimit?: number;
	nextHeader?: number;
	payload?: Buffer;
	version?: number;
	/**
	 * fill in the payload's ICMPv6 or UDP checksum over the pseudo-header (a
	 * receiving stack drops IPv6 UDP without one); the unit tests leave it 0
	 */
	l4Checksum?: boolean;
}

export function ipv6(o: Ipv6Options): Buffer {
	const payload = o.payload ?? Buffer.alloc(0);
	const nh = o.nextHeader ?? IPPROTO_UDP;
	const h = Buffer.alloc(40);
	h.writeUInt32BE(((o.version ?? 6) << 28) >>> 0, 0);
	h.writeUInt16BE(payload.length, 4);
	h[6] = nh;
	h[7] = o.hopLimit ?? 64;
	h.set(o.src, 8);
	h.set(o.dst, 24);
	if (o.l4Checksum) {
		const at = nh === IPPROTO_ICMPV6 ? 2 : 6;
		const pseudo = Buffer.alloc(40);
		pseudo.set(o.src, 0);
		pseudo.set(o.dst, 16);
		pseudo.writeUInt32BE(payload.length, 32);
		pseudo[39] = nh;
		payload.writeUInt16BE(0, at);
		const sum = inetChecksum(concat([pseudo, payload]));
		// UDP sends a computed 0 as 0xffff (0 means "no checksum", which IPv6 forbids)
		payload.writeUInt16BE(nh === IPPROTO_UDP && sum === 0 ? 0xffff : sum, at);
	}
	return concat([h, payload]);
}

/** A UDP datagram with a zero checksum (the datapath never looks at L4). */
export function udp(sport: number, dport: number, data: Buffer = Buffer.from('ivb-unit')): Buffer {
	const h = Buffer.alloc(8);
	h.writeUInt16BE(sport, 0);
	h.writeUInt16BE(dport, 2);
	h.writeUInt16BE(8 + data.length, 4);
	return concat([h, data]);
}

/** ICMPv6 Neighbour Solicitation (type 135) for target (checksum left 0: not verified on this path). */
export function icmp6NeighbourSolicitation(target: Buffer): Buffer {
	const b = Buffer.alloc(24);
	b[0] = 135;
	b.set(target, 8);
	return b;
}

/** ICMPv6 Router Solicitation (type 133): another message a host sends from :: . */
export function icmp6RouterSolicitation(): Buffer {
	const b = Buffer.alloc(8);
	b[0] = 133;
	return b;
}

/** Filler bytes so a frame reaches exactly `total` bytes (for MTU boundaries). */
export function padTo(frame: Buffer, total: number): Buffer {
	if (frame.length > total) throw new Error(`frame is ${frame.length} bytes, more than ${total}`);
	return concat([frame, Buffer.alloc(total - frame.length, 0xa5)]);
}

/** An IPv4/UDP Ethernet frame of exactly `total` bytes with consistent tot_len. */
export function ipv4FrameOfSize(dstMac: Buffer, srcMac: Buffer, src: Buffer, dst: Buffer, total: number, ttl = 64): Buffer {
	const dataLen = total - 14 - 20 - 8;
	if (dataLen < 0) throw new Error(`${total} bytes cannot hold Ethernet + IPv4 + UDP`);
	return eth(dstMac, srcMac, ETH_P_IP, ipv4({ src, dst, ttl, payload: udp(5000, 5001, Buffer.alloc(dataLen, 0x5a)) }));
}

/**
 * What the L3 route path hands to the master's stack: IPv4 TTL raised by one
 * (unless already 255) with the header checksum recomputed from scratch, so an
 * incremental-update mistake in the datapath cannot cancel out.
 */
export function withIpv4TtlPlusOne(frame: Buffer): Buffer {
	const out = Buffer.from(frame);
	const ttl = out[14 + 8] ?? 0;
	if (ttl === 255) return out;
	out[14 + 8] = ttl + 1;
	const ihl = ((out[14] ?? 0) & 0xf) * 4;
	out.writeUInt16BE(0, 14 + 10);
	out.writeUInt16BE(inetChecksum(out.subarray(14, 14 + ihl)), 14 + 10);
	return out;
}

/** IPv6 hop limit raised by one (unless already 255); IPv6 has no header checksum. */
export function withIpv6HopLimitPlusOne(frame: Buffer): Buffer {
	const out = Buffer.from(frame);
	const hl = out[14 + 7] ?? 0;
	if (hl !== 255) out[14 + 7] = hl + 1;
	return out;
}

/** True when the IPv4 header at offset 14 sums to zero (a valid checksum). */
export function ipv4HeaderChecksumOk(frame: Buffer): boolean {
	const ihl = ((frame[14] ?? 0) & 0xf) * 4;
	return inetChecksum(frame.subarray(14, 14 + ihl)) === 0;
}

// ---------------------------------------------------------------------------
// Whole frames for the end-to-end tests, from text addresses

/** Ethernet + IPv4 + UDP from port 40000 to DPORT (9, discard, unless given); valid header checksum, UDP's 0 (none) */
export function udp4Frame(o: { dmac: string; smac: string; src: string; dst: string; dport?: number }): Buffer {
	return eth(mac(o.dmac), mac(o.smac), ETH_P_IP, ipv4({ src: ip4(o.src), dst: ip4(o.dst), payload: udp(40000, o.dport ?? 9) }));
}

/** Ethernet + IPv6 + UDP from port 40000 to 9, with the checksum a receiving stack wants */
export function udp6Frame(o: { dmac: string; smac: string; src: string; dst: string }): Buffer {
	const payload = udp(40000, 9, Buffer.alloc(8));
	return eth(mac(o.dmac), mac(o.smac), ETH_P_IPV6, ipv6({ src: ip6(o.src), dst: ip6(o.dst), payload, l4Checksum: true }));
}

/** An unsolicited neighbour advertisement for TARGET (override flag), to all nodes */
export function unsolicitedNa(o: { smac: string; src: string; target: string }): Buffer {
	const p = Buffer.alloc(32);
	p[0] = 136;
	p.writeUInt32BE(0x20000000, 4); // O
	ip6(o.target).copy(p, 8);
	p[24] = 2; // target link-layer address option
	p[25] = 1;
	mac(o.smac).copy(p, 26);
	const v6 = ipv6({ src: ip6(o.src), dst: ip6('ff02::1'), nextHeader: IPPROTO_ICMPV6, hopLimit: 255, payload: p, l4Checksum: true });
	return eth(mac('33:33:00:00:00:01'), mac(o.smac), ETH_P_IPV6, v6);
}

/** A gratuitous ARP (request, spa == tpa) from SMAC claiming ADDR, broadcast, zero-padded to 60 bytes */
export function gratuitousArp(o: { smac: string; addr: string }): Buffer {
	const a = arp({ sha: mac(o.smac), spa: ip4(o.addr), tpa: ip4(o.addr) });
	return eth(BROADCAST_MAC, mac(o.smac), ETH_P_ARP, concat([a, Buffer.alloc(18)]));
}

const ICMP_ECHOREPLY = 0;
const ICMP_ECHO = 8;

function icmpEcho4Frame(type: number, dstMac: string, srcMac: string, src: string, dst: string, total: number): Buffer {
	const data = Buffer.alloc(total - 14 - 20 - 8, 0x42);
	const icmp = concat([Buffer.from([type, 0, 0, 0, 0x12, 0x34, 0, 1]), data]);
	icmp.writeUInt16BE(inetChecksum(icmp), 2);
	return eth(mac(dstMac), mac(srcMac), ETH_P_IP, ipv4({ src: ip4(src), dst: ip4(dst), protocol: IPPROTO_ICMP, payload: icmp }));
}

/** An ICMP echo reply of TOTAL bytes: no host answers one, so it makes no traffic of its own. */
export function echoReplyFrame(dstMac: string, srcMac: string, src: string, dst: string, total = 98): Buffer {
	return icmpEcho4Frame(ICMP_ECHOREPLY, dstMac, srcMac, src, dst, total);
}

/** An ICMP echo request of TOTAL bytes (valid checksums), which the destination's stack answers and counts. */
export function echoRequestFrame(dstMac: string, srcMac: string, src: string, dst: string, total = 98): Buffer {
	return icmpEcho4Frame(ICMP_ECHO, dstMac, srcMac, src, dst, total);
}

/** A frame of ethertype TYPE and LEN bytes, filled with 0x33 */
export function etherFrame(dstMac: string, srcMac: string, type: number, len = 60): Buffer {
	return eth(mac(dstMac), mac(srcMac), type, Buffer.alloc(len - 14, 0x33));
}
