// SPDX-License-Identifier: GPL-2.0-only
/*
 * BPF_PROG_TEST_RUN of the per-slave multicast filter (bpf/lib/mcfilter.h,
 * used by fanout.h) against the real compiled objects: which slaves a
 * broadcast/multicast frame is copied to (ivb_trace's fan-out count), for
 * filters as the agent writes them (controller/src/agent/multicast.ts
 * mcFilterBits). The kernel's rules (ipvlan_set_multicast_mac_filter,
 * ipvlan_process_multicast): a copy to an up slave whose bit of the
 * destination's hash is set; broadcast always; all bits for PROMISC/ALLMULTI.
 * Ours adds: a slave whose filter the agent has not kept yet gets every copy.
 *
 * Throw-away netns ivbmcu<pid>: m0 <-> w0 (master and wire), p1..p3 <-> s1..s3
 * (slaves' host peers and ends); maps under /sys/fs/bpf/ivb-mcu-<pid>/.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mapLookup, mapUpdate } from '../native/libbpf.js';
import { IvbMcFilterLayout, IvbMode, IvbSlaveFlags, encodeIvbMcFilter } from '../maps/generated.js';
import { macHash, mcFilterBits } from '../controller/src/agent/multicast.js';
import { ProgInstance, SharedMaps, TestNetns, makePinRoot, removePinRoot, type PortState, type ProgKind } from './lib/bpfprog.js';
import { BROADCAST_MAC, ETH_P_IP, ETH_P_IPV6, IPPROTO_ICMPV6, eth, ip4, ip6, ipv4, ipv6, mac, udp } from './lib/frames.js';

const PORT = 5;
const MASTER_MAC = mac('02:00:00:00:00:01');
const EXT_MAC = mac('02:00:00:00:00:99');
/** the slaves' own address (A), for frames they send */
const A4 = ip4('198.18.1.10');
/** slave A's link-local, which its MLD reports come from */
const A6LL = ip6('fe80::200:ff:fe00:1');

const netns = new TestNetns(`ivbmcu${process.pid}`);
const pinRootName = `ivb-mcu-${process.pid}`;
let pinRoot = '';
const ifx: Record<string, number> = {};
let prog: Record<ProgKind, ProgInstance>;
let maps: SharedMaps;
let filters = -1;

/** an IPv4 multicast group's MAC (01:00:5e + the low 23 bits) */
const groupMac = (n: number): Buffer => Buffer.from([0x01, 0x00, 0x5e, (n >> 16) & 0x7f, (n >> 8) & 0xff, n & 0xff]);
const hex = (b: Buffer): string => b.toString('hex');

/** Two groups whose hashes differ from each other's and from broadcast's (so neither rides on another's bit). */
function twoGroups(): [Buffer, Buffer] {
	const bh = macHash(BROADCAST_MAC);
	let g1: Buffer | null = null;
	for (let n = 1; ; n++) {
		const g = groupMac(n);
		const h = macHash(g);
		if (h === bh) continue;
		if (!g1) g1 = g;
		else if (h !== macHash(g1)) return [g1, g];
	}
}
const [G1, G2] = twoGroups();

function port(nr: number): PortState {
	return {
		portId: PORT,
		port: { masterIfindex: ifx.m0!, masterMac: MASTER_MAC, mode: IvbMode.L2, flags: 0, nrSlaves: nr },
		slaves: ['p1', 'p2', 'p3'].slice(0, nr).map((p, i) => ({ peerIfindex: ifx[p]!, devId: i + 1, flags: IvbSlaveFlags.UP, mtu: 1500 })),
		addrs: [
			{ family: 4, addr: A4, peerIfindex: ifx.p1!, prefixlen: 24 },
			{ family: 6, addr: A6LL, peerIfindex: ifx.p1!, prefixlen: 64 },
		],
		fanout: ['p1', 'p2', 'p3'].slice(0, nr).map((p) => ifx[p]!),
	};
}

type Filter = null | { groups: Buffer[]; allmulti?: boolean; promisc?: boolean } | { raw: Buffer };

/** Sets the slaves' filters (null: none kept) after the port's state. */
function setup(nr: number, f: Record<string, Filter>): void {
	maps.clear();
	maps.write(port(nr));
	for (const p of ['p1', 'p2', 'p3']) {
		const want = f[p] ?? null;
		const bits =
			want === null
				? null
				: 'raw' in want
					? want.raw
					: mcFilterBits({ groups: want.groups.map(hex), allmulti: want.allmulti ?? false, promisc: want.promisc ?? false });
		const v = encodeIvbMcFilter({ kept: bits ? 1 : 0, bits: bits ?? Buffer.alloc(32) });
		mapUpdate(filters, u32(maps.slaveIndexOf(PORT, ifx[p]!)), v);
	}
}

function u32(n: number): Buffer {
	const b = Buffer.alloc(4);
	b.writeUInt32LE(n, 0);
	return b;
}

const frameTo = (dmac: Buffer, smac = EXT_MAC) => eth(dmac, smac, ETH_P_IP, ipv4({ src: smac === EXT_MAC ? ip4('198.18.0.99') : A4, dst: ip4('198.18.1.255'), payload: udp(40000, 5000) }));

/** Copies the program made of a frame from the wire to DMAC. */
function copiesFromWire(dmac: Buffer): number {
	return netns.run(() => prog.master_ingress.run(frameTo(dmac), { ifindex: ifx.m0!, ingressIfindex: ifx.m0! })).decision.fanout;
}

/** Copies to siblings of a frame slave A (p1) sent to DMAC. */
function copiesFromA(dmac: Buffer): number {
	return netns.run(() => prog.slave_egress.run(frameTo(dmac, MASTER_MAC), { ifindex: ifx.p1!, ingressIfindex: ifx.p1! })).decision.fanout;
}

beforeAll(() => {
	pinRoot = makePinRoot(pinRootName);
	netns.create();
	try {
		netns.ip('link', 'add', 'm0', 'address', '02:00:00:00:00:01', 'type', 'veth', 'peer', 'name', 'w0');
		for (const i of [1, 2, 3]) netns.ip('link', 'add', `p${i}`, 'type', 'veth', 'peer', 'name', `s${i}`, 'address', '02:00:00:00:00:01');
		for (const d of ['lo', 'm0', 'w0', 'p1', 's1', 'p2', 's2', 'p3', 's3']) netns.ip('link', 'set', d, 'up');
		for (const d of ['m0', 'p1', 'p2', 'p3']) ifx[d] = netns.ifindex(d);
		prog = {
			master_ingress: ProgInstance.load('master_ingress', { pinRoot, portId: PORT, trace: true }),
			slave_egress: ProgInstance.load('slave_egress', { pinRoot, portId: PORT, trace: true }),
		};
		maps = new SharedMaps(prog.master_ingress);
		filters = prog.master_ingress.obj.mapFd('ivb_mc_filters');
	} catch (e) {
		netns.destroy();
		removePinRoot(pinRoot);
		throw e;
	}
});

afterAll(() => {
	for (const p of Object.values(prog ?? {})) p.close();
	netns.destroy();
	removePinRoot(pinRoot);
});

describe('multicast filter (ipvlan_process_multicast)', () => {
	it('the filter value is 40 bytes: kept flag, pad, 256 bits', () => {
		expect(IvbMcFilterLayout.size).toBe(40);
		expect(mcFilterBits({ groups: [], allmulti: false, promisc: false }).length).toBe(32);
	});

	it('no filter kept yet: every up slave gets a copy (as before the agent read the lists)', () => {
		setup(3, {});
		expect(copiesFromWire(G1)).toBe(3);
		expect(copiesFromWire(G2)).toBe(3);
		expect(copiesFromWire(BROADCAST_MAC)).toBe(3);
	});

	it('a group goes to the slaves that joined it (and to a slave with no filter kept), not to the others', () => {
		setup(3, { p1: { groups: [G1] }, p2: { groups: [] }, p3: null });
		expect(copiesFromWire(G1)).toBe(2); // p1 joined, p3 unfiltered
		expect(copiesFromWire(G2)).toBe(1); // p3 only
	});

	it('broadcast passes every filter, even one with no group at all', () => {
		setup(3, { p1: { groups: [] }, p2: { groups: [] }, p3: { groups: [G1] } });
		expect(copiesFromWire(BROADCAST_MAC)).toBe(3);
		expect(copiesFromWire(G2)).toBe(0);
	});

	it('ALLMULTI or PROMISC opens every bit', () => {
		setup(3, { p1: { groups: [], allmulti: true }, p2: { groups: [], promisc: true }, p3: { groups: [] } });
		expect(copiesFromWire(G1)).toBe(2);
		expect(copiesFromWire(G2)).toBe(2);
	});

	it('a down slave gets nothing, whatever its filter', () => {
		setup(3, { p1: { groups: [G1] }, p2: { groups: [G1] }, p3: { groups: [G1] } });
		const s = port(3);
		s.slaves[1]!.flags = 0;
		maps.write(s);
		expect(copiesFromWire(G1)).toBe(2);
	});

	it("a slave's own multicast goes to the siblings that joined the group, never back to it", () => {
		setup(3, { p1: { groups: [G1] }, p2: { groups: [G1] }, p3: { groups: [G2] } });
		expect(copiesFromA(G1)).toBe(1);
		expect(copiesFromA(G2)).toBe(1);
		expect(copiesFromA(BROADCAST_MAC)).toBe(2);
	});

	it("the datapath's hash is the agent's: exactly the bit macHash() names lets a group through", () => {
		// 48 groups over the MAC bytes the hash reads (2..5), IPv4 and IPv6 ones
		const groups = Array.from({ length: 48 }, (_, i) =>
			i % 2 ? groupMac(i * 7919) : Buffer.from([0x33, 0x33, 0xff, (i * 37) & 0xff, (i * 101) & 0xff, (i * 13) & 0xff]),
		);
		const seen = new Set<number>();
		for (const g of groups) {
			const h = macHash(g);
			seen.add(h);
			const only = Buffer.alloc(32);
			only[h >> 3] = 1 << (h & 7);
			const allBut = Buffer.alloc(32, 0xff);
			allBut[h >> 3] = 0xff & ~(1 << (h & 7));
			setup(1, { p1: { raw: only } });
			expect(copiesFromWire(g), `${hex(g)} with bit ${h} only`).toBe(1);
			setup(1, { p1: { raw: allBut } });
			expect(copiesFromWire(g), `${hex(g)} with every bit but ${h}`).toBe(0);
		}
		// the groups spread over many buckets (a constant hash would pass the above with one)
		expect(seen.size).toBeGreaterThan(30);
	});
});

// ---------------------------------------------------------------------------
// Membership reports (bpf/lib/snoop.h): the slave's own report opens its filter

const IPPROTO_IGMP = 2;
/** an IPv4 group's MAC: 01:00:5e + its low 23 bits */
const v4GroupMac = (g: string): Buffer => {
	const b = ip4(g);
	return Buffer.from([0x01, 0x00, 0x5e, b[1]! & 0x7f, b[2]!, b[3]!]);
};
/** an IPv6 group's MAC: 33:33 + its last 4 bytes */
const v6GroupMac = (g: string): Buffer => Buffer.concat([Buffer.from([0x33, 0x33]), ip6(g).subarray(12)]);

/** IGMP as the kernel sends it: IP with the router alert option (IHL 6) */
function igmpFrame(dst: string, igmp: Buffer): Buffer {
	const payload = Buffer.concat([Buffer.from([0x94, 0x04, 0, 0]), igmp]);
	return eth(v4GroupMac(dst), MASTER_MAC, ETH_P_IP, ipv4({ src: A4, dst: ip4(dst), ihl: 6, protocol: IPPROTO_IGMP, ttl: 1, payload }));
}
function igmpV2Report(group: string): Buffer {
	const m = Buffer.alloc(8);
	m[0] = 0x16;
	ip4(group).copy(m, 4);
	return igmpFrame(group, m);
}
/** records: [type, group, number of sources] */
type GroupRecords = Array<[number, string, number]>;

/**
 * The ICMP part of an IGMPv3 or MLDv2 report (RFC 3376 4.2, RFC 3810 5.2):
 * type, the record count, then each record's type, aux length (words),
 * source count, group, sources and aux data.
 */
function v3Report(type: number, records: GroupRecords, addr: (a: string) => Buffer, source: (i: number) => Buffer, auxWords: number): Buffer {
	const head = Buffer.alloc(8);
	head[0] = type;
	head.writeUInt16BE(records.length, 6);
	const parts = [head];
	for (const [recType, group, nsrcs] of records) {
		const g = addr(group);
		const r = Buffer.alloc(4 + g.length * (1 + nsrcs) + 4 * auxWords);
		r[0] = recType;
		r[1] = auxWords;
		r.writeUInt16BE(nsrcs, 2);
		g.copy(r, 4);
		for (let i = 0; i < nsrcs; i++) source(i).copy(r, 4 + g.length * (1 + i));
		parts.push(r);
	}
	return Buffer.concat(parts);
}
/** with one word of aux data in each record, which the walk must step over */
const igmpV3Report = (records: GroupRecords): Buffer => igmpFrame('224.0.0.22', v3Report(0x22, records, ip4, (i) => ip4(`198.18.9.${i + 1}`), 1));
/** MLD after a hop-by-hop header with the router alert, as the kernel sends it */
function mldFrame(dst: string, mld: Buffer): Buffer {
	const hbh = Buffer.from([IPPROTO_ICMPV6, 0, 0x05, 0x02, 0, 0, 0x01, 0x00]);
	return eth(v6GroupMac(dst), MASTER_MAC, ETH_P_IPV6, ipv6({ src: A6LL, dst: ip6(dst), nextHeader: 0, hopLimit: 1, payload: Buffer.concat([hbh, mld]) }));
}
function mldV1Report(group: string): Buffer {
	const m = Buffer.alloc(24);
	m[0] = 131;
	ip6(group).copy(m, 8);
	return mldFrame(group, m);
}
const mldV2Report = (records: GroupRecords): Buffer => mldFrame('ff02::16', v3Report(143, records, ip6, (i) => ip6(`2001:db8:9::${i + 1}`), 0));

/** Slave A (p1) sends FRAME; its filter afterwards (null: none kept). */
function afterA(frame: Buffer): Buffer | null {
	netns.run(() => prog.slave_egress.run(frame, { ifindex: ifx.p1!, ingressIfindex: ifx.p1! }));
	const v = mapLookup(filters, u32(maps.slaveIndexOf(PORT, ifx.p1!)), IvbMcFilterLayout.size);
	return v && v.readUInt32LE(0) ? v.subarray(8) : null;
}
const filterOf = (groups: Buffer[]): Buffer => mcFilterBits({ groups: groups.map(hex), allmulti: false, promisc: false });

describe("membership reports open the reporting slave's filter (a join honoured before the agent reads the list)", () => {
	it('IGMPv2 and MLDv1: the reported group', () => {
		setup(2, { p1: { groups: [] }, p2: { groups: [] } });
		expect(afterA(igmpV2Report('239.1.2.3'))).toEqual(filterOf([v4GroupMac('239.1.2.3')]));
		expect(afterA(mldV1Report('ff0e::1:1'))).toEqual(filterOf([v4GroupMac('239.1.2.3'), v6GroupMac('ff0e::1:1')]));
		// the sibling's filter is its own
		const p2 = mapLookup(filters, u32(maps.slaveIndexOf(PORT, ifx.p2!)), IvbMcFilterLayout.size)!;
		expect(p2.subarray(8)).toEqual(filterOf([]));
	});

	it('IGMPv3 and MLDv2: every record that names a membership, none of the leaves (TO_IN of no source) or blocks', () => {
		setup(1, { p1: { groups: [] } });
		// 4 TO_EX {} (a join), 3 TO_IN {} (a leave), 5 ALLOW {s} (a source join), 6 BLOCK {s}, 2 IS_EX, 3 TO_IN {s}
		const v4 = afterA(
			igmpV3Report([
				[4, '239.1.1.1', 0],
				[3, '239.1.1.2', 0],
				[5, '239.1.1.3', 2],
				[6, '239.1.1.4', 1],
				[2, '239.1.1.5', 0],
				[3, '239.1.1.6', 1],
			]),
		);
		const joined4 = ['239.1.1.1', '239.1.1.3', '239.1.1.5', '239.1.1.6'].map(v4GroupMac);
		expect(v4).toEqual(filterOf(joined4));
		const v6 = afterA(
			mldV2Report([
				[4, 'ff0e::2:1', 0],
				[3, 'ff0e::2:2', 0],
				[5, 'ff0e::2:3', 1],
				[6, 'ff0e::2:4', 2],
			]),
		);
		expect(v6).toEqual(filterOf([...joined4, ...['ff0e::2:1', 'ff0e::2:3'].map(v6GroupMac)]));
	});

	it('a filter not kept yet stays so (it passes everything already); other multicast from the slave changes nothing', () => {
		setup(1, { p1: null });
		expect(afterA(igmpV2Report('239.1.2.3'))).toBeNull();
		setup(1, { p1: { groups: [] } });
		expect(afterA(frameTo(v4GroupMac('239.1.2.3'), MASTER_MAC))).toEqual(filterOf([]));
		// an IGMP query (0x11) or an MLD query (130) is nobody's membership
		const q = igmpV2Report('239.1.2.3');
		q[14 + 24] = 0x11;
		expect(afterA(q)).toEqual(filterOf([]));
		const mq = mldV1Report('ff0e::1:1');
		mq[14 + 48] = 130;
		expect(afterA(mq)).toEqual(filterOf([]));
	});

	it('after the report, a copy of the group reaches the slave that reported it, and not its sibling', () => {
		setup(2, { p1: { groups: [] }, p2: { groups: [] } });
		const g = v4GroupMac('239.7.7.7');
		if (macHash(g) === macHash(BROADCAST_MAC)) throw new Error('pick another group: it shares broadcast\'s bit');
		expect(copiesFromWire(g)).toBe(0);
		afterA(igmpV2Report('239.7.7.7'));
		expect(copiesFromWire(g)).toBe(1);
	});
});
