// SPDX-License-Identifier: GPL-2.0-only
/*
 * Fuzzing helpers for test/fuzz.test.ts (issue 6, parser robustness):
 *
 *  - FastRunner: BPF_PROG_TEST_RUN with every buffer allocated once (the
 *    frame is written in place, no data_out copy), so a million runs take
 *    seconds, not minutes; the decision is read from the instance's
 *    ivb_trace only when asked.
 *  - Rng: a small seeded PRNG (sfc32), so a failure is replayed from its seed.
 *  - FrameGen: random and mutated frames written straight into the runner's
 *    input buffer (truncations, bad IHL/lengths, IPv6 extension chains,
 *    stacked VLAN tags, ARP with odd hln/pln, short and big frames).
 *  - refParse: an independent reading of a frame's L3 demux keys, following
 *    the kernel's ipvlan_get_L3_hdr() (not the datapath's parse.h), used as
 *    the oracle for "who may receive this" and "is this malformed".
 */
import koffi from 'koffi';
import { BpfObject } from '../../native/libbpf.js';
import { IvbDecisionLayout, IvbSize } from '../../maps/generated.js';
import { clearCounterSlot, readCounterRowsFds, slaveCounterSlot, type CounterMaps, type CounterRow } from '../../controller/src/stats/counters.js';

const lib = koffi.load('libbpf.so.1');
const testRun = lib.func('int bpf_prog_test_run_opts(int prog_fd, void *opts)');
const lookup = lib.func('int bpf_map_lookup_elem(int fd, void *key, void *value)');

/** The largest frame an skb test run takes (PAGE_SIZE minus head- and tailroom); probed at start. */
export const MAX_FRAME = 4096;
export const SKB_CTX_SIZE = 192;

export class FastRunner {
	/** the frame to run: write into it, then call run(len) */
	readonly data = Buffer.alloc(MAX_FRAME);
	private readonly ctx = Buffer.alloc(SKB_CTX_SIZE);
	private readonly opts = Buffer.alloc(80);
	private readonly key0 = Buffer.alloc(4);
	private readonly trace = Buffer.alloc(IvbDecisionLayout.size);

	constructor(
		readonly progFd: number,
		readonly traceFd: number,
	) {
		const o = this.opts;
		o.writeBigUInt64LE(80n, 0);
		o.writeBigUInt64LE(koffi.address(this.data), 8);
		o.writeBigUInt64LE(0n, 16); // no data_out: nothing copied back
		o.writeBigUInt64LE(koffi.address(this.ctx), 32);
		o.writeBigUInt64LE(0n, 40);
		o.writeUInt32LE(SKB_CTX_SIZE, 48);
		o.writeUInt32LE(0, 52);
		o.writeInt32LE(1, 60);
	}

	/** skb->ifindex, skb->ingress_ifindex, gso size/segs for the next runs */
	setCtx(ifindex: number, ingressIfindex: number, gsoSize = 0, gsoSegs = 0): void {
		this.ctx.writeUInt32LE(ingressIfindex, 36);
		this.ctx.writeUInt32LE(ifindex, 40);
		this.ctx.writeUInt32LE(gsoSegs, 164);
		this.ctx.writeUInt32LE(gsoSize, 176);
	}

	/** Runs data[0..len); returns the TC verdict (>= 0) or -errno when test-run refused the frame. */
	run(len: number): number {
		const o = this.opts;
		o.writeUInt32LE(len, 24);
		o.writeUInt32LE(0, 28);
		const ret = testRun(this.progFd, o) as number;
		if (ret < 0) return ret;
		return o.readInt32LE(56);
	}

	/** ivb_trace of the last run: [action, target_ifindex, reason, fanout] */
	decision(): [number, number, number, number] {
		const ret = lookup(this.traceFd, this.key0, this.trace) as number;
		if (ret < 0) throw new Error(`ivb_trace lookup: ${ret}`);
		const t = this.trace;
		return [t.readUInt32LE(0), t.readUInt32LE(4), t.readUInt32LE(8), t.readUInt32LE(12)];
	}
}

/** Loads one datapath program with trace and counters on, maps pinned under pinRoot. */
export function loadInstance(kind: 'master_ingress' | 'slave_egress', objPath: string, pinRoot: string, portId: number): { obj: BpfObject; prog: number; trace: number; counters: CounterMaps } {
	const obj = BpfObject.open(objPath, { pinRoot });
	const u32 = (n: number): Buffer => {
		const b = Buffer.alloc(4);
		b.writeUInt32LE(n, 0);
		return b;
	};
	try {
		obj.setRodata('ivb_port_id', u32(portId));
		obj.setRodata('ivb_trace_enabled', u32(1));
		obj.setRodata('ivb_counters_enabled', u32(1));
		obj.load();
		return {
			obj,
			prog: obj.programFd(`ivb_${kind}`),
			trace: obj.mapFd('ivb_trace'),
			counters: { counters: obj.mapFd('ivb_counters'), ports: obj.mapFd('ivb_ports'), slaves: obj.mapFd('ivb_slaves') },
		};
	} catch (e) {
		obj.close();
		throw e;
	}
}

export type { CounterRow } from '../../controller/src/stats/counters.js';

/** Every row of the devices in use, summed over CPUs: the controller's own reader. */
export function readCounters(m: CounterMaps): CounterRow[] {
	return readCounterRowsFds(m);
}

/** Zeroes every master's block and the blocks of the first `slaves` slave indexes. */
export function clearCounters(m: CounterMaps, slaves = 16): void {
	for (let slot = 0; slot < IvbSize.PORTS; slot++) clearCounterSlot(m.counters, slot);
	for (let index = 1; index <= slaves; index++) clearCounterSlot(m.counters, slaveCounterSlot(index));
}

// ---------------------------------------------------------------------------
// PRNG

/** sfc32: fast, seedable, good enough for fuzzing. */
export class Rng {
	private a: number;
	private b: number;
	private c: number;
	private d: number;

	constructor(seed: number) {
		this.a = 0x9e3779b9;
		this.b = 0x243f6a88;
		this.c = 0xb7e15162;
		this.d = seed >>> 0;
		for (let i = 0; i < 16; i++) this.u32();
	}

	u32(): number {
		const t = (((this.a + this.b) | 0) + this.d) | 0;
		this.d = (this.d + 1) | 0;
		this.a = this.b ^ (this.b >>> 9);
		this.b = (this.c + (this.c << 3)) | 0;
		this.c = (this.c << 21) | (this.c >>> 11);
		this.c = (this.c + t) | 0;
		return t >>> 0;
	}

	/** 0 <= n < max */
	int(max: number): number {
		return this.u32() % max;
	}

	chance(p: number): boolean {
		return this.u32() < p * 4294967296;
	}

	pick<T>(xs: readonly T[]): T {
		return xs[this.int(xs.length)]!;
	}
}

// ---------------------------------------------------------------------------
// The reference parser (kernel ipvlan_get_L3_hdr, from the bytes alone)

export const ETH_P_IP = 0x0800;
export const ETH_P_ARP = 0x0806;
export const ETH_P_IPV6 = 0x86dd;
export const ETH_P_8021Q = 0x8100;
export const ETH_P_8021AD = 0x88a8;

export interface RefFrame {
	proto: number;
	/** an IPv4/IPv6/ARP ethertype whose L3 header ipvlan_get_L3_hdr() refuses */
	malformed: boolean;
	/** demux key family (4/6) or 0 when there is none */
	family: 0 | 4 | 6;
	/** offsets of the destination and source key in the frame (-1: none) */
	dstOff: number;
	srcOff: number;
	/** a DAD NS from :: (keyed by its target both ways) */
	dad: boolean;
	/** IPv6 ICMPv6 neighbour advertisement: offset of its target (-1: not an NA) */
	naTargetOff: number;
}

function isZero(b: Buffer, off: number, len: number): boolean {
	for (let i = 0; i < len; i++) if (b[off + i] !== 0) return false;
	return true;
}

export function refParse(b: Buffer, len: number): RefFrame {
	const r: RefFrame = { proto: 0, malformed: false, family: 0, dstOff: -1, srcOff: -1, dad: false, naTargetOff: -1 };
	if (len < 14) {
		r.malformed = true;
		return r;
	}
	r.proto = b.readUInt16BE(12);
	if (r.proto === ETH_P_ARP) {
		if (len < 14 + 28) r.malformed = true;
		else {
			r.family = 4;
			r.dstOff = 14 + 24;
			r.srcOff = 14 + 14;
		}
	} else if (r.proto === ETH_P_IP) {
		if (len < 34) r.malformed = true;
		else {
			const v = b[14]! >> 4;
			const ihl = b[14]! & 15;
			const tot = b.readUInt16BE(16);
			if (v !== 4 || ihl < 5 || tot > len - 14 || tot < ihl * 4) r.malformed = true;
			else {
				r.family = 4;
				r.dstOff = 30;
				r.srcOff = 26;
			}
		}
	} else if (r.proto === ETH_P_IPV6) {
		if (len < 54 || b[14]! >> 4 !== 6) r.malformed = true;
		else if (isZero(b, 22, 16) && b[20] === 58) {
			if (len < 54 + 8) r.malformed = true;
			else if (b[54] === 135) {
				if (len < 54 + 24) r.malformed = true;
				else {
					r.family = 6;
					r.dstOff = 54 + 8;
					r.srcOff = 54 + 8;
					r.dad = true;
				}
			}
			// other ICMPv6 from :: : a valid header without a key
		} else {
			r.family = 6;
			r.dstOff = 38;
			r.srcOff = 22;
			if (b[20] === 58 && len >= 54 + 24 && b[54] === 136) r.naTargetOff = 54 + 8;
		}
	}
	return r;
}

/** "4:198.18.1.10" style key text of the address at OFF */
export function keyText(b: Buffer, family: 4 | 6, off: number): string {
	return `${family}:${b.toString('hex', off, off + (family === 4 ? 4 : 16))}`;
}

// ---------------------------------------------------------------------------
// Frame generation

export interface Addrs {
	masterMac: Buffer;
	/** IPv4 / IPv6 addresses (4 / 16 bytes) worth aiming at: owned, unowned, special */
	v4: Buffer[];
	v6: Buffer[];
}

const EXT_HDRS = [0, 43, 44, 60]; // hop-by-hop, routing, fragment, destination options
const MACS = ['ff:ff:ff:ff:ff:ff', '33:33:00:00:00:01', '33:33:ff:00:00:10', '01:00:5e:00:00:fb', '02:00:00:00:00:99', '00:00:00:00:00:00'].map((s) =>
	Buffer.from(s.split(':').map((h) => parseInt(h, 16))),
);

export class FrameGen {
	constructor(
		private readonly rng: Rng,
		private readonly a: Addrs,
	) {}

	private mac(b: Buffer, off: number, master: boolean): void {
		if (master) this.a.masterMac.copy(b, off);
		else this.rng.pick(MACS).copy(b, off);
	}

	private v4(b: Buffer, off: number): void {
		const r = this.rng;
		if (r.chance(0.85)) this.a.v4[r.int(this.a.v4.length)]!.copy(b, off);
		else b.writeUInt32BE(r.u32(), off);
	}

	private v6(b: Buffer, off: number): void {
		const r = this.rng;
		if (r.chance(0.85)) this.a.v6[r.int(this.a.v6.length)]!.copy(b, off);
		else for (let i = 0; i < 16; i += 4) b.writeUInt32BE(r.u32(), off + i);
	}

	private fillRandom(b: Buffer, off: number, end: number): void {
		for (let i = off; i < end; i++) b[i] = this.rng.u32() & 0xff;
	}

	/** VLAN tags (0-3, 802.1Q/802.1ad) after the MACs; returns the offset of the inner ethertype */
	private tags(b: Buffer, n: number): number {
		let off = 12;
		for (let i = 0; i < n; i++) {
			b.writeUInt16BE(this.rng.chance(0.5) ? ETH_P_8021Q : ETH_P_8021AD, off);
			b.writeUInt16BE(this.rng.int(4096), off + 2);
			off += 4;
		}
		return off;
	}

	/**
	 * Writes one frame into B; returns its length. FROMSLAVE biases the
	 * source MAC to the master's (what a well-behaved slave sends), so that
	 * frames get past MAC enforcement and reach the parser's deeper paths.
	 */
	frame(b: Buffer, fromSlave: boolean): number {
		const r = this.rng;
		const kind = r.int(100);
		// 2%: pure random bytes of any length, including under 14
		if (kind < 2) {
			const len = r.int(200);
			this.fillRandom(b, 0, len);
			return len;
		}
		this.mac(b, 0, !fromSlave && r.chance(0.6));
		this.mac(b, 6, fromSlave ? r.chance(0.9) : r.chance(0.1));
		if (fromSlave && r.chance(0.1)) this.mac(b, 0, true); // "local" frames (dst MAC == src MAC)
		const nTags = r.chance(0.12) ? 1 + r.int(3) : 0;
		const et = this.tags(b, nTags);
		const l3 = et + 2;
		let len: number;
		const what = r.int(100);
		if (what < 28) len = this.ipv4(b, et, l3);
		else if (what < 60) len = this.ipv6(b, et, l3);
		else if (what < 85) len = this.arp(b, et, l3);
		else {
			// another ethertype (LLDP, random) with random payload
			b.writeUInt16BE(r.chance(0.5) ? 0x88cc : r.int(0x10000), et);
			len = l3 + r.int(120);
			this.fillRandom(b, l3, len);
		}
		return this.mutate(b, len);
	}

	private ipv4(b: Buffer, et: number, l3: number): number {
		const r = this.rng;
		b.writeUInt16BE(ETH_P_IP, et);
		const optWords = r.chance(0.1) ? r.int(11) : 0;
		const ihl = 5 + optWords;
		const payload = r.chance(0.05) ? r.int(3000) : r.int(64);
		const tot = ihl * 4 + payload;
		b[l3] = 0x40 | ihl;
		b[l3 + 1] = 0;
		b.writeUInt16BE(tot, l3 + 2);
		b.writeUInt32BE(r.u32(), l3 + 4);
		b[l3 + 8] = r.chance(0.1) ? r.pick([0, 1, 254, 255]) : 64;
		b[l3 + 9] = r.pick([1, 6, 17, 58, r.int(256)]);
		b.writeUInt16BE(0, l3 + 10);
		if (r.chance(0.1)) b.fill(0, l3 + 12, l3 + 16);
		else this.v4(b, l3 + 12);
		this.v4(b, l3 + 16);
		const end = Math.min(MAX_FRAME, l3 + tot);
		this.fillRandom(b, l3 + 20, end);
		return end;
	}

	private ipv6(b: Buffer, et: number, l3: number): number {
		const r = this.rng;
		b.writeUInt16BE(ETH_P_IPV6, et);
		b.writeUInt32BE(0x60000000, l3);
		b[l3 + 7] = r.chance(0.3) ? 255 : 64;
		const unspec = r.chance(0.2);
		if (unspec) b.fill(0, l3 + 8, l3 + 24);
		else this.v6(b, l3 + 8);
		this.v6(b, l3 + 24);
		let off = l3 + 40;
		let nhOff = l3 + 6;
		// an extension header chain of 0-4 headers
		const chain = r.chance(0.2) ? 1 + r.int(4) : 0;
		for (let i = 0; i < chain; i++) {
			const h = r.pick(EXT_HDRS);
			b[nhOff] = h;
			const hlen = h === 44 ? 8 : 8 * (1 + r.int(3));
			this.fillRandom(b, off, off + hlen);
			if (h !== 44) b[off + 1] = hlen / 8 - 1;
			nhOff = off;
			off += hlen;
		}
		const l4 = r.int(10);
		if (l4 < 6) {
			// ICMPv6: NS (DAD or not), NA, RS, echo
			b[nhOff] = 58;
			const type = r.pick([135, 135, 136, 136, 133, 128]);
			b[off] = type;
			b[off + 1] = 0;
			b.writeUInt16BE(0, off + 2);
			b.writeUInt32BE(type === 136 ? 0x20000000 : 0, off + 4);
			this.v6(b, off + 8);
			off += 24;
			if (r.chance(0.3)) {
				// a link-layer address option
				b[off] = type === 136 ? 2 : 1;
				b[off + 1] = 1;
				this.mac(b, off + 2, r.chance(0.7));
				off += 8;
			}
		} else {
			b[nhOff] = r.pick([17, 6, 59, r.int(256)]);
			const p = r.chance(0.05) ? r.int(3000) : r.int(64);
			const end = Math.min(MAX_FRAME, off + p);
			this.fillRandom(b, off, end);
			off = end;
		}
		b.writeUInt16BE(Math.max(0, off - l3 - 40), l3 + 4);
		return off;
	}

	private arp(b: Buffer, et: number, l3: number): number {
		const r = this.rng;
		b.writeUInt16BE(ETH_P_ARP, et);
		b.writeUInt16BE(r.chance(0.9) ? 1 : r.int(0x10000), l3);
		b.writeUInt16BE(r.chance(0.9) ? ETH_P_IP : r.int(0x10000), l3 + 2);
		b[l3 + 4] = r.chance(0.8) ? 6 : r.pick([0, 1, 8, 16, 255]);
		b[l3 + 5] = r.chance(0.8) ? 4 : r.pick([0, 6, 16, 255]);
		b.writeUInt16BE(r.chance(0.9) ? 1 + r.int(2) : r.int(0x10000), l3 + 6);
		// sha: the Ethernet source usually (gratuitous ARP, replies)
		if (r.chance(0.8)) b.copy(b, l3 + 8, 6, 12);
		else this.mac(b, l3 + 8, false);
		this.v4(b, l3 + 14);
		if (r.chance(0.2)) b.fill(0, l3 + 14, l3 + 18); // probe
		this.mac(b, l3 + 18, r.chance(0.3));
		this.v4(b, l3 + 24);
		if (r.chance(0.15)) b.copy(b, l3 + 24, l3 + 14, l3 + 18); // gratuitous
		return l3 + 28 + (r.chance(0.5) ? 18 : 0); // with or without Ethernet padding
	}

	/** Damage: truncation, bad IHL / lengths / version, flipped bytes, growth to a big frame */
	private mutate(b: Buffer, len: number): number {
		const r = this.rng;
		const m = r.int(100);
		if (m < 45) return len; // intact
		if (m < 65) return r.int(len + 1); // truncated anywhere, including under 14 bytes
		if (m < 72) {
			// bad IHL (IPv4) / bad version
			const et = b.readUInt16BE(12);
			if (len > 14 && (et === ETH_P_IP || et === ETH_P_IPV6)) b[14] = r.u32() & 0xff;
			return len;
		}
		if (m < 80) {
			// bad lengths: IPv4 tot_len / IPv6 payload_len
			if (len >= 20) b.writeUInt16BE(r.chance(0.5) ? r.int(0x10000) : r.int(64), 16);
			if (len >= 20 && r.chance(0.5)) b.writeUInt16BE(r.int(0x10000), 18);
			return len;
		}
		if (m < 92) {
			// flip a few bytes in the headers
			const n = 1 + r.int(4);
			for (let i = 0; i < n && len > 0; i++) b[r.int(Math.min(len, 96))] = r.u32() & 0xff;
			return len;
		}
		// grow to a big frame (up to what test-run takes)
		const big = Math.max(len, 1500 + r.int(MAX_FRAME - 1500));
		this.fillRandom(b, len, big);
		return big;
	}
}
