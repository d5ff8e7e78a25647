// SPDX-License-Identifier: GPL-2.0-only
/*
 * The slow path's decisions (bpf/lib/slowpath.h) in slave egress, with
 * BPF_PROG_TEST_RUN on crafted frames against the real object: what is held
 * for the agent (and what the held record carries), what is not, and the
 * bounds. The agent's side is exercised end to end in first-packet.test.ts.
 *
 * Scene (netns ivbspu<pid>): m0 (master) <-> w0; p1/p2 host-side peers of
 * slaves A (198.18.1.10/24) and B (198.18.1.20/24), both up; source
 * validation on.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { BpfObject, encodeSkbCtx, mapDelete, mapKeys, mapUpdate, progTestRun } from '../native/libbpf.js';
import { RingBuffer } from '../native/ringbuf.js';
import {
	IvbAction,
	IvbAddrKeyLayout,
	IvbDropReason,
	IvbMode,
	IvbPortFlags,
	IvbPortOptions,
	IvbSlaveFlags,
	decodeIvbPunt,
	encodeIvbAddrKey,
	encodeIvbAddrOwner,
	encodeIvbPort,
	encodeIvbPortKey,
	encodeIvbSlave,
	encodeIvbSlowpathState,
	encodeIvbUnknownEntry,
	type IvbPunt,
} from '../maps/generated.js';
import { addrKeyOf } from '../controller/src/bpf/addr-key.js';
import { ProgInstance, TC_ACT_SHOT, TestNetns, makePinRoot, removePinRoot, repoRoot } from './lib/bpfprog.js';
import { ETH_P_ARP, ETH_P_IP, ETH_P_IPV6, arp, eth, ip4, ip6, ipv4, ipv6, mac, udp } from './lib/frames.js';
import path from 'node:path';

const PORT = 3;
const MASTER_MAC = mac('02:00:00:00:00:01');
const A4 = ip4('198.18.1.10');
const B4 = ip4('198.18.1.20');

const netns = new TestNetns(`ivbspu${process.pid}`);
let pinRoot = '';
let prog: ProgInstance;
let ingress: ProgInstance;
let explainObj: BpfObject | null = null;
let ring: RingBuffer;
const held: IvbPunt[] = [];
const ifx = { m0: 0, p1: 0, p2: 0 };
const fd = { ports: 0, addrs4: 0, addrs6: 0, slaves: 0, state: 0, unknown: 0, budget: 0 };

/* ivb_slaves is an array by slave index; here slave N (dev_id N) has index N */
function slaveIndex(n: number): Buffer {
	const b = Buffer.alloc(4);
	b.writeUInt32LE(n);
	return b;
}

function addr16(a: Buffer): Buffer {
	const b = Buffer.alloc(16);
	a.copy(b);
	return b;
}

function writePort(mode: number, flags = 0): void {
	mapUpdate(fd.ports, encodeIvbPortKey({ portId: PORT }), encodeIvbPort({
		masterIfindex: ifx.m0,
		masterMac: MASTER_MAC,
		mode,
		flags,
		nrSlaves: 2,
		options: IvbPortOptions.VALIDATION,
	}));
}

/** The agent's heartbeat: alive for `ms` from now (negative: expired). */
function heartbeat(ms: number): void {
	const until = process.hrtime.bigint() + BigInt(ms) * 1_000_000n;
	mapUpdate(fd.state, Buffer.alloc(4), encodeIvbSlowpathState({ consumerUntilNs: until < 0n ? 0n : until }));
}

function markUnowned(a: Buffer): void {
	mapUpdate(fd.unknown, encodeIvbAddrKey({ portId: PORT, family: 4, addr: addr16(a) }), encodeIvbUnknownEntry({ checkedNs: process.hrtime.bigint() }));
}

/** A UDP frame slave A sends (the shared MAC both ways: to a sibling or up the master). */
const fromA = (src: Buffer, dst: Buffer): Buffer => eth(MASTER_MAC, MASTER_MAC, ETH_P_IP, ipv4({ src, dst, payload: udp(40000, 9) }));

function run(frame: Buffer) {
	const r = netns.run(() => prog.run(frame, { ifindex: ifx.p1, ingressIfindex: ifx.p1 }));
	ring.consume();
	return r;
}

beforeAll(() => {
	netns.create();
	netns.ip('link', 'add', 'm0', 'address', '02:00:00:00:00:01', 'type', 'veth', 'peer', 'name', 'w0');
	for (const p of ['1', '2']) netns.ip('link', 'add', `p${p}`, 'type', 'veth', 'peer', 'name', `s${p}`);
	for (const d of ['m0', 'w0', 'p1', 's1', 'p2', 's2', 'lo']) netns.ip('link', 'set', d, 'up');
	netns.ip('addr', 'add', '198.18.1.1/24', 'dev', 'm0');
	for (const d of ['m0', 'p1', 'p2'] as const) ifx[d] = netns.ifindex(d);
	pinRoot = makePinRoot(`ivb-spu-${process.pid}`);
	prog = ProgInstance.load('slave_egress', { pinRoot, portId: PORT, trace: true });
	ingress = ProgInstance.load('master_ingress', { pinRoot, portId: PORT, trace: true });
	fd.ports = prog.obj.mapFd('ivb_ports');
	fd.addrs4 = prog.obj.mapFd('ivb_addrs4');
	fd.addrs6 = prog.obj.mapFd('ivb_addrs6');
	fd.slaves = prog.obj.mapFd('ivb_slaves');
	fd.state = prog.obj.mapFd('ivb_slowpath_state');
	fd.unknown = prog.obj.mapFd('ivb_unknown');
	fd.budget = prog.obj.mapFd('ivb_punt_budget');
	ring = RingBuffer.open(prog.obj.mapFd('ivb_slowpath'), (b) => held.push(decodeIvbPunt(b)));
	for (const [peer, devId] of [[ifx.p1, 1], [ifx.p2, 2]] as const) {
		mapUpdate(fd.slaves, slaveIndex(devId), encodeIvbSlave({ devId, flags: IvbSlaveFlags.UP, mtu: 1500, peerIfindex: peer, portId: PORT }));
	}
	for (const [a, peer, index] of [[A4, ifx.p1, 1], [B4, ifx.p2, 2]] as const) {
		mapUpdate(fd.addrs4, addrKeyOf(PORT, 4, a).key, encodeIvbAddrOwner({ peerIfindex: peer, prefixlen: 24, slave: index }));
	}
});

afterAll(() => {
	ring?.close();
	prog?.close();
	ingress?.close();
	explainObj?.close();
	netns.destroy();
	if (pinRoot) removePinRoot(pinRoot);
});

beforeEach(() => {
	held.length = 0;
	for (const k of mapKeys(fd.unknown, IvbAddrKeyLayout.size)) mapDelete(fd.unknown, k);
	for (const k of mapKeys(fd.budget, 8)) mapDelete(fd.budget, k);
	writePort(IvbMode.L3);
	heartbeat(10_000);
});

describe('held for the agent, or copied to it', () => {
	it('a source nobody owns: held (unknown_source), the whole frame in the ring with its slave and address', () => {
		const frame = fromA(ip4('198.18.1.77'), B4);
		const r = run(frame);
		expect(r.retval).toBe(TC_ACT_SHOT);
		expect(r.decision).toMatchObject({ action: IvbAction.HELD, reason: IvbDropReason.UNKNOWN_SOURCE });
		expect(held).toHaveLength(1);
		const p = held[0]!;
		expect(p).toMatchObject({ portId: PORT, ifindex: ifx.p1, len: frame.length, reason: IvbDropReason.UNKNOWN_SOURCE, family: 4 });
		expect(p.addr).toEqual(addr16(ip4('198.18.1.77')));
		expect(p.frame.subarray(0, p.len)).toEqual(frame);
	});

	it.each([
		['l3', IvbMode.L3, IvbAction.ROUTE_PINNED],
	])("%s: a destination in the sender's subnet nobody owns: its ordinary way at once, and a copy to the agent", (_m, mode, action) => {
		writePort(mode);
		const frame = fromA(A4, ip4('198.18.1.88'));
		const r = run(frame);
		expect(r.decision).toMatchObject({ action, reason: IvbDropReason.NONE });
		expect(held).toHaveLength(1);
		expect(held[0]).toMatchObject({ ifindex: ifx.p1, reason: IvbDropReason.UNKNOWN_DEST, len: frame.length });
		expect(held[0]!.addr).toEqual(addr16(ip4('198.18.1.88')));
	});

	it('a sibling that owns the destination but is down (it may just be coming up): a copy to the agent', () => {
		mapUpdate(fd.slaves, slaveIndex(2), encodeIvbSlave({ devId: 2, flags: 0, mtu: 1500, peerIfindex: ifx.p2, portId: PORT }));
		try {
			expect(run(fromA(A4, B4)).decision.action).not.toBe(IvbAction.HELD);
			expect(held.map((p) => p.reason)).toEqual([IvbDropReason.UNKNOWN_DEST]);
		} finally {
			mapUpdate(fd.slaves, slaveIndex(2), encodeIvbSlave({ devId: 2, flags: IvbSlaveFlags.UP, mtu: 1500, peerIfindex: ifx.p2, portId: PORT }));
		}
	});
});

describe("held where the ordinary way ends in the master namespace's stack, which a copy could not undo", () => {
	const A6 = ip6('2001:db8:1::10');
	const LOCAL6 = ip6('2001:db8:1::99'); // an address of the namespace itself (a shim's, say)
	const fromA6 = (dst: Buffer): Buffer => eth(MASTER_MAC, MASTER_MAC, ETH_P_IPV6, ipv6({ src: A6, dst, payload: udp(40000, 9) }));

	beforeAll(() => {
		mapUpdate(fd.addrs6, addrKeyOf(PORT, 6, A6).key, encodeIvbAddrOwner({ peerIfindex: ifx.p1, prefixlen: 64 }));
		netns.ip('addr', 'add', '2001:db8:1::99/128', 'dev', 's2', 'nodad');
		// the subnet is on the master's link: the namespace forwards to it
		netns.ip('addr', 'add', '2001:db8:1::1/64', 'dev', 'm0', 'nodad');
		netns.sysctl('net.ipv6.conf.p1.forwarding', '1');
	});

	it.each([
		['bridge', 0],
		['private', IvbPortFlags.PRIVATE],
	])('l2 %s: an unowned destination in the subnet, to the shared MAC: held (unknown_local_destination)', (_f, flags) => {
		writePort(IvbMode.L2, flags);
		const frame = fromA(A4, ip4('198.18.1.88'));
		const r = run(frame);
		expect(r.retval).toBe(TC_ACT_SHOT);
		expect(r.decision).toMatchObject({ action: IvbAction.HELD, reason: IvbDropReason.UNKNOWN_LOCAL_DEST });
		expect(held.map((p) => p.reason)).toEqual([IvbDropReason.UNKNOWN_LOCAL_DEST]);
		expect(held[0]!.frame.subarray(0, held[0]!.len)).toEqual(frame);
	});

	it('l2: once the agent found it unowned, the ordinary way at once, nothing held', () => {
		writePort(IvbMode.L2, IvbPortFlags.PRIVATE);
		markUnowned(ip4('198.18.1.88'));
		expect(run(fromA(A4, ip4('198.18.1.88'))).decision).toMatchObject({ action: IvbAction.TO_MASTER, reason: IvbDropReason.NONE });
		expect(held).toHaveLength(0);
	});

	it('l2: a sibling that owns it and is up is still dropped as private, nothing held', () => {
		writePort(IvbMode.L2, IvbPortFlags.PRIVATE);
		expect(run(fromA(A4, B4)).decision).toMatchObject({ action: IvbAction.DROP, reason: IvbDropReason.PRIVATE });
		expect(held).toHaveLength(0);
	});

	it.each([
		['bridge', 0],
		['private', IvbPortFlags.PRIVATE],
	])("l3 %s IPv6: an address local to the master's namespace: held; one the namespace forwards: copied", (_f, flags) => {
		writePort(IvbMode.L3, flags);
		expect(run(fromA6(LOCAL6)).decision).toMatchObject({ action: IvbAction.HELD, reason: IvbDropReason.UNKNOWN_LOCAL_DEST });
		expect(held.map((p) => p.reason)).toEqual([IvbDropReason.UNKNOWN_LOCAL_DEST]);
		held.length = 0;
		expect(run(fromA6(ip6('2001:db8:1::88'))).decision.action).not.toBe(IvbAction.HELD);
		expect(held.map((p) => p.reason)).toEqual([IvbDropReason.UNKNOWN_DEST]);
	});

	it('l3 IPv4 (its pinned route never delivers locally): copied, not held', () => {
		writePort(IvbMode.L3, IvbPortFlags.PRIVATE);
		expect(run(fromA(A4, ip4('198.18.1.88'))).decision).toMatchObject({ action: IvbAction.ROUTE_PINNED, reason: IvbDropReason.NONE });
		expect(held.map((p) => p.reason)).toEqual([IvbDropReason.UNKNOWN_DEST]);
	});
});

describe('decided at once', () => {
	it("another slave's address as the source: spoofed_source, nothing held", () => {
		expect(run(fromA(B4, ip4('198.18.1.1'))).decision).toMatchObject({ action: IvbAction.DROP, reason: IvbDropReason.SPOOFED_SOURCE });
		expect(held).toHaveLength(0);
	});

	it('a source the agent found unowned: spoofed_source, nothing held', () => {
		markUnowned(ip4('198.18.1.77'));
		expect(run(fromA(ip4('198.18.1.77'), B4)).decision).toMatchObject({ action: IvbAction.DROP, reason: IvbDropReason.SPOOFED_SOURCE });
		expect(held).toHaveLength(0);
	});

	it('a destination the agent found unowned: routed as before', () => {
		markUnowned(ip4('198.18.1.88'));
		expect(run(fromA(A4, ip4('198.18.1.88'))).decision.action).not.toBe(IvbAction.HELD);
		expect(held).toHaveLength(0);
	});

	it.each([
		['outside the sender\'s subnet', '198.19.0.1'],
		["the subnet's broadcast address", '198.18.1.255'],
		["the master's own address", '198.18.1.1'],
	])('a destination %s: not held', (_what, dst) => {
		mapUpdate(prog.obj.mapFd('ivb_local_addrs'), encodeIvbAddrKey({ portId: PORT, family: 4, addr: addr16(ip4('198.18.1.1')) }), encodeIvbAddrOwner({ peerIfindex: 0, prefixlen: 24, slave: 0 }));
		expect(run(fromA(A4, ip4(dst))).decision.action).not.toBe(IvbAction.HELD);
		expect(held).toHaveLength(0);
	});

	it('a sibling that owns the destination: delivered, nothing held', () => {
		expect(run(fromA(A4, B4)).decision).toMatchObject({ action: IvbAction.DELIVER, reason: IvbDropReason.NONE });
		expect(held).toHaveLength(0);
	});

	it('no agent (no heartbeat, or an expired one): decided as without the slow path', () => {
		heartbeat(-1);
		expect(run(fromA(ip4('198.18.1.77'), B4)).decision).toMatchObject({ action: IvbAction.DROP, reason: IvbDropReason.SPOOFED_SOURCE });
		expect(run(fromA(A4, ip4('198.18.1.88'))).decision.action).not.toBe(IvbAction.HELD);
		expect(held).toHaveLength(0);
	});

	it('explain (a dry-run instance) holds nothing', () => {
		explainObj = BpfObject.open(path.join(repoRoot, 'bpf', 'slave_egress.bpf.o'), { pinRoot });
		const u32 = (n: number): Buffer => {
			const b = Buffer.alloc(4);
			b.writeUInt32LE(n);
			return b;
		};
		explainObj.setRodata('ivb_port_id', u32(PORT));
		explainObj.setRodata('ivb_trace_enabled', u32(1));
		explainObj.setRodata('ivb_dry_run', u32(1));
		explainObj.load();
		const progFd = explainObj.programFd('ivb_slave_egress');
		const r = netns.run(() => progTestRun(progFd, { data: fromA(ip4('198.18.1.77'), B4), ctxIn: encodeSkbCtx({ ifindex: ifx.p1, ingressIfindex: ifx.p1 }) }));
		ring.consume();
		expect(r.retval).toBe(TC_ACT_SHOT);
		expect(held).toHaveLength(0);
	});
});

describe('from the wire (l2)', () => {
	const EXT_MAC = mac('02:00:00:00:00:99');
	const arpReplyTo = (target: Buffer): Buffer =>
		eth(MASTER_MAC, EXT_MAC, ETH_P_ARP, arp({ op: 2, sha: EXT_MAC, spa: ip4('198.18.1.1'), tha: MASTER_MAC, tpa: target }));
	const runIngress = (frame: Buffer) => {
		const r = netns.run(() => ingress.run(frame, { ifindex: ifx.m0, ingressIfindex: ifx.m0 }));
		ring.consume();
		return r;
	};

	it('an ARP reply for an address no slave owns yet: to the master as before, and a copy to the agent', () => {
		writePort(IvbMode.L2);
		const frame = arpReplyTo(ip4('198.18.1.99'));
		const r = runIngress(frame);
		expect(r.decision).toMatchObject({ action: IvbAction.PASS, reason: IvbDropReason.NO_OWNER });
		expect(held).toHaveLength(1);
		expect(held[0]).toMatchObject({ ifindex: ifx.m0, reason: IvbDropReason.UNKNOWN_DEST, len: frame.length });
		expect(held[0]!.addr).toEqual(addr16(ip4('198.18.1.99')));
	});

	it('a frame of our own reflected by a hairpinning switch, for an address no slave owns: a copy to the agent', () => {
		writePort(IvbMode.L2);
		const frame = eth(MASTER_MAC, MASTER_MAC, ETH_P_IP, ipv4({ src: A4, dst: ip4('198.18.1.97'), payload: udp(40000, 9) }));
		expect(runIngress(frame).decision).toMatchObject({ action: IvbAction.PASS, reason: IvbDropReason.NO_OWNER });
		expect(held.map((p) => p.ifindex)).toEqual([ifx.m0]);
		held.length = 0;
		// the same from another host on the wire: not copied
		runIngress(eth(MASTER_MAC, EXT_MAC, ETH_P_IP, ipv4({ src: ip4('198.18.1.1'), dst: ip4('198.18.1.96'), payload: udp(40000, 9) })));
		expect(held).toHaveLength(0);
	});

	it('not in l3, not for an address the agent found unowned, not for a slave\'s', () => {
		writePort(IvbMode.L3);
		runIngress(arpReplyTo(ip4('198.18.1.99')));
		writePort(IvbMode.L2);
		markUnowned(ip4('198.18.1.98'));
		runIngress(arpReplyTo(ip4('198.18.1.98')));
		expect(runIngress(arpReplyTo(A4)).decision.action).toBe(IvbAction.DELIVER);
		expect(held).toHaveLength(0);
	});
});

describe('bounded', () => {
	it('64 frames per slave and 100 ms window, then slowpath_full; a frame over 1536 bytes is not held', () => {
		// a window is 100 ms: a round that took longer proves nothing, and is run again
		let rounds = 0;
		let heldN = 0;
		let last = -1;
		for (; rounds < 5; rounds++) {
			for (const k of mapKeys(fd.budget, 8)) mapDelete(fd.budget, k);
			held.length = 0;
			const t0 = performance.now();
			const decisions = [];
			for (let i = 0; i < 65; i++) decisions.push(run(fromA(ip4(`198.18.1.${100 + i}`), B4)).decision);
			if (performance.now() - t0 > 90) continue;
			heldN = decisions.filter((d) => d.action === IvbAction.HELD).length;
			last = decisions[64]!.reason;
			break;
		}
		expect(rounds).toBeLessThan(5);
		expect(heldN).toBe(64);
		expect(last).toBe(IvbDropReason.SLOWPATH_FULL);
		expect(held).toHaveLength(64);
		for (const k of mapKeys(fd.budget, 8)) mapDelete(fd.budget, k);
		const big = eth(MASTER_MAC, MASTER_MAC, ETH_P_IP, ipv4({ src: ip4('198.18.1.77'), dst: B4, payload: udp(40000, 9, Buffer.alloc(1600)) }));
		expect(run(big).decision).toMatchObject({ action: IvbAction.DROP, reason: IvbDropReason.SPOOFED_SOURCE });
	});
});
