// SPDX-License-Identifier: GPL-2.0-only
/*
 * Loading datapath program instances for unit tests and running frames
 * through them with BPF_PROG_TEST_RUN.
 *
 * Instances are loaded the way the controller loads them (same object, same
 * .rodata knobs) but with a private pin root, so the pinned maps they share
 * (ivb_ports, ivb_addrs4, ivb_addrs6, ivb_slaves, ivb_fanout_slots) belong to the test
 * alone. ivb_trace is not pinned: each instance has its own, which is where
 * the decision of the last run is read from.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
	BpfObject,
	encodeSkbCtx,
	ifNameToIndex,
	mapDelete,
	mapKeys,
	mapLookup,
	mapUpdate,
	progTestRun,
	withNetns,
} from '../../native/libbpf.js';
import {
	IvbAddrKeyLayout,
	IvbSlaveKeyLayout,
	encodeIvbSlaveKey,
	IvbDecisionLayout,
	IvbPortLayout,
	IvbSize,
	decodeIvbDecision,
	encodeIvbAddrKey,
	encodeIvbAddrOwner,
	encodeIvbFanoutEntry,
	encodeIvbPort,
	encodeIvbSlave,
	type IvbDecision,
} from '../../maps/generated.js';
import { ADDR_KEY_SIZE, addrKeyOf } from '../../controller/src/bpf/addr-key.js';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

export type ProgKind = 'master_ingress' | 'slave_egress';

const PROGRAM_NAME: Record<ProgKind, string> = {
	master_ingress: 'ivb_master_ingress',
	slave_egress: 'ivb_slave_egress',
};

/** TC verdicts as BPF_PROG_TEST_RUN reports them (linux/pkt_cls.h). */
export const TC_ACT_OK = 0;
export const TC_ACT_SHOT = 2;
export const TC_ACT_REDIRECT = 7;

function u32(n: number): Buffer {
	const b = Buffer.alloc(4);
	b.writeUInt32LE(n >>> 0, 0);
	return b;
}

export interface RunResult {
	retval: number;
	/** the frame as the program left it */
	data: Buffer;
	/** ivb_trace after the run; all zero for an instance loaded without trace */
	decision: IvbDecision;
}

export interface RunContext {
	/** skb->ifindex: the device the program is attached to (must exist in the current netns) */
	ifindex: number;
	/** skb->ingress_ifindex: slave_egress reads the sending slave's host peer from it */
	ingressIfindex: number;
	/** skb_shinfo gso_size / gso_segs: a GRO/TSO super-frame as a veth or NIC hands it over */
	gsoSize?: number;
	gsoSegs?: number;
}

/** One loaded object: a program plus its private ivb_trace. */
export class ProgInstance {
	readonly progFd: number;
	readonly traceFd: number;

	private constructor(
		readonly kind: ProgKind,
		readonly obj: BpfObject,
	) {
		this.progFd = obj.programFd(PROGRAM_NAME[kind]);
		this.traceFd = obj.mapFd('ivb_trace');
	}

	/**
	 * Opens bpf/<kind>.bpf.o with pinned maps under pinRoot, sets the port id
	 * and the trace switch in .rodata, and loads it.
	 */
	static load(kind: ProgKind, opts: { pinRoot: string; portId: number; trace: boolean }): ProgInstance {
		const obj = BpfObject.open(path.join(repoRoot, 'bpf', `${kind}.bpf.o`), { pinRoot: opts.pinRoot });
		try {
			obj.setRodata('ivb_port_id', u32(opts.portId));
			obj.setRodata('ivb_trace_enabled', u32(opts.trace ? 1 : 0));
			obj.load();
			return new ProgInstance(kind, obj);
		} catch (e) {
			obj.close();
			throw e;
		}
	}

	/** Clears the trace so a stale decision can never pass for this run's. */
	clearTrace(): void {
		mapUpdate(this.traceFd, u32(0), Buffer.alloc(IvbDecisionLayout.size));
	}

	readTrace(): IvbDecision {
		const v = mapLookup(this.traceFd, u32(0), IvbDecisionLayout.size);
		if (!v) throw new Error('ivb_trace has no entry 0');
		return decodeIvbDecision(v);
	}

	/** Runs one frame; call inside withNetns so ctx ifindexes resolve to the test's devices. */
	run(frame: Buffer, ctx: RunContext): RunResult {
		// a poisoned trace shows whether the program reset it itself
		mapUpdate(this.traceFd, u32(0), Buffer.alloc(IvbDecisionLayout.size, 0xee));
		const r = progTestRun(this.progFd, {
			data: frame,
			ctxIn: encodeSkbCtx({
				ifindex: ctx.ifindex,
				ingressIfindex: ctx.ingressIfindex,
				gsoSize: ctx.gsoSize ?? 0,
				gsoSegs: ctx.gsoSegs ?? 0,
			}),
		});
		return { retval: r.retval, data: r.data, decision: this.readTrace() };
	}

	close(): void {
		this.obj.close();
	}
}

// ---------------------------------------------------------------------------
// Map state

export interface PortSpec {
	masterIfindex: number;
	masterMac: Buffer;
	mode: number;
	flags: number;
	nrSlaves: number;
}

export interface SlaveSpec {
	peerIfindex: number;
	devId: number;
	flags: number;
	mtu: number;
}

export interface AddrSpec {
	family: 4 | 6;
	/** 4 or 16 bytes */
	addr: Buffer;
	peerIfindex: number;
	prefixlen: number;
}

/** Everything one port's datapath reads; written from scratch before each case. */
export interface PortState {
	portId: number;
	/** absent: the port entry is missing (a deleted port) */
	port?: PortSpec;
	slaves: SlaveSpec[];
	addrs: AddrSpec[];
	/** peer ifindex per slot; a 0 leaves that slot without an entry */
	fanout: number[];
	/** the master device's own addresses (ivb_local_addrs, kept by the agent) */
	localAddrs?: Array<{ family: 4 | 6; addr: Buffer }>;
}

/** File descriptors of the shared (pinned) maps, taken from any loaded instance. */
export class SharedMaps {
	readonly ports: number;
	readonly addrs4: number;
	readonly addrs6: number;
	readonly slaves: number;
	readonly fanout: number;
	readonly localAddrs: number;
	readonly slaveIds: number;
	/*
	 * ivb_ports, ivb_slaves and ivb_fanout_slots are arrays (no delete): the
	 * slots written since the last clear() are zeroed again by it. Slave
	 * indexes are given here as the control plane gives them (1, 2, ...).
	 */
	#written: Array<[number, Buffer, number]> = [];
	#slaveIndex = new Map<string, number>();

	constructor(from: ProgInstance) {
		this.ports = from.obj.mapFd('ivb_ports');
		this.addrs4 = from.obj.mapFd('ivb_addrs4');
		this.addrs6 = from.obj.mapFd('ivb_addrs6');
		this.slaves = from.obj.mapFd('ivb_slaves');
		this.fanout = from.obj.mapFd('ivb_fanout_slots');
		this.localAddrs = from.obj.mapFd('ivb_local_addrs');
		this.slaveIds = from.obj.mapFd('ivb_slave_ids');
	}

	clear(): void {
		for (const [fd, k, size] of this.#written.splice(0)) mapUpdate(fd, k, Buffer.alloc(size));
		this.#slaveIndex.clear();
		for (const [fd, keySize] of [
			[this.addrs4, ADDR_KEY_SIZE[4]],
			[this.addrs6, ADDR_KEY_SIZE[6]],
			[this.localAddrs, IvbAddrKeyLayout.size],
			[this.slaveIds, IvbSlaveKeyLayout.size],
		] as const) {
			for (const k of mapKeys(fd, keySize)) mapDelete(fd, k);
		}
	}

	/** Used ports (entries of ivb_ports that are not zero). */
	portCount(): number {
		return mapKeys(this.ports, 4).filter((k) => mapLookup(this.ports, k, IvbPortLayout.size)?.some((b) => b !== 0)).length;
	}

	#arrayWrite(fd: number, index: number, value: Buffer): void {
		const k = u32(index);
		mapUpdate(fd, k, value);
		this.#written.push([fd, k, value.length]);
	}

	/** The slave index of (port, peer): given on first use, as slaveIndex() of the controller does. */
	slaveIndexOf(portId: number, peerIfindex: number): number {
		const key = `${portId}/${peerIfindex}`;
		let i = this.#slaveIndex.get(key);
		if (i === undefined) {
			i = this.#slaveIndex.size + 1;
			this.#slaveIndex.set(key, i);
		}
		return i;
	}

	/** Adds one port's entries (without clearing: several ports may coexist). */
	write(s: PortState): void {
		if (s.port) this.#arrayWrite(this.ports, s.portId, encodeIvbPort(s.port));
		for (const sl of s.slaves) {
			// (port, peer) -> index: the control plane's lookup, which the datapath makes for rare frames only
			mapUpdate(this.slaveIds, encodeIvbSlaveKey({ portId: s.portId, peerIfindex: sl.peerIfindex }), u32(this.slaveIndexOf(s.portId, sl.peerIfindex)));
			this.#arrayWrite(
				this.slaves,
				this.slaveIndexOf(s.portId, sl.peerIfindex),
				encodeIvbSlave({ devId: sl.devId, flags: sl.flags, mtu: sl.mtu, peerIfindex: sl.peerIfindex, portId: s.portId }),
			);
		}
		for (const a of s.addrs) {
			const addr = Buffer.alloc(16);
			addr.set(a.addr, 0);
			mapUpdate(
				a.family === 4 ? this.addrs4 : this.addrs6,
				addrKeyOf(s.portId, a.family, addr).key,
				encodeIvbAddrOwner({ peerIfindex: a.peerIfindex, prefixlen: a.prefixlen, slave: this.slaveIndexOf(s.portId, a.peerIfindex) }),
			);
		}
		for (const a of s.localAddrs ?? []) {
			const addr = Buffer.alloc(16);
			addr.set(a.addr, 0);
			mapUpdate(
				this.localAddrs,
				encodeIvbAddrKey({ portId: s.portId, family: a.family, addr }),
				encodeIvbAddrOwner({ peerIfindex: 0, prefixlen: a.family === 4 ? 24 : 64, slave: 0 }),
			);
		}
		s.fanout.forEach((peer, slot) => {
			if (peer) {
				this.#arrayWrite(
					this.fanout,
					s.portId * IvbSize.FANOUT_PER_PORT + slot,
					encodeIvbFanoutEntry({ peerIfindex: peer, slave: this.slaveIndexOf(s.portId, peer) }),
				);
			}
		});
	}
}

// ---------------------------------------------------------------------------
// Throw-away namespace and pin folder

function sh(cmd: string, args: string[]): string {
	return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** A named netns (ip netns) that test-run executes in, so ctx ifindexes name real devices. */
export class TestNetns {
	readonly path: string;

	constructor(readonly name: string) {
		this.path = `/run/netns/${name}`;
	}

	create(): void {
		sh('ip', ['netns', 'add', this.name]);
	}

	/** `ip -n <ns> ...args` */
	ip(...args: string[]): string {
		return sh('ip', ['-n', this.name, ...args]);
	}

	sysctl(key: string, value: string): void {
		sh('ip', ['netns', 'exec', this.name, 'sysctl', '-q', '-w', `${key}=${value}`]);
	}

	ifindex(dev: string): number {
		return withNetns(this.path, () => ifNameToIndex(dev));
	}

	run<T>(fn: () => T): T {
		return withNetns(this.path, fn);
	}

	/** Idempotent; never throws (cleanup must not hide the real failure). */
	destroy(): void {
		try {
			if (fs.existsSync(this.path)) sh('ip', ['netns', 'del', this.name]);
		} catch {
			// already gone
		}
	}
}

/** A private bpffs folder for LIBBPF_PIN_BY_NAME maps. */
export function makePinRoot(name: string): string {
	const dir = path.join('/sys/fs/bpf', name);
	fs.mkdirSync(dir, { recursive: true });
	return dir;
}

export function removePinRoot(dir: string): void {
	fs.rmSync(dir, { recursive: true, force: true });
}
