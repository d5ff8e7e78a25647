// SPDX-License-Identifier: GPL-2.0-only
/*
 * native/libbpf.ts against the real kernel (root, bpffs, BTF): no mocks.
 * Uses bpf/test_fixture.bpf.o, a pin folder /sys/fs/bpf/ivb-test-<pid> and a
 * throw-away netns ivbnat<pid> with its own veth pair; all removed in afterAll.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import {
	BPF_EXIST,
	BPF_NOEXIST,
	BpfError,
	BpfObject,
	LibcError,
	SKB_CTX_SIZE,
	closeFd,
	currentNetnsInode,
	encodeSkbCtx,
	ifNameToIndex,
	linkCreate,
	linkDetach,
	linkUpdate,
	mapDelete,
	mapDeleteBatch,
	mapInfo,
	mapKeys,
	mapLookup,
	mapLookupBatch,
	mapUpdate,
	mapUpdateBatch,
	objGet,
	objPin,
	pathIsBpffs,
	perCpuValueSize,
	possibleCpus,
	progInfo,
	progTestRun,
	tcClsactAttach,
	tcClsactDetach,
	tcxSupported,
	withNetns,
} from '../native/libbpf.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const fixture = path.join(root, 'bpf', 'test_fixture.bpf.o');
const pinBase = `/sys/fs/bpf/ivb-test-${process.pid}`;
const netns = `ivbnat${process.pid}`;
const netnsPath = `/run/netns/${netns}`;
const vethA = `ivbv${process.pid}a`;
const vethB = `ivbv${process.pid}b`;

const TC_ACT_OK = 0;
const TC_ACT_SHOT = 2;
const BPF_MAP_TYPE_HASH = 1;
const BPF_MAP_TYPE_PERCPU_ARRAY = 6;
const BPF_PROG_TYPE_SCHED_CLS = 3;

const opened: BpfObject[] = [];
let pinCounter = 0;

/** A fresh pin folder per test so pinned maps are shared only where intended. */
function pinDir(): string {
	const dir = path.join(pinBase, `p${pinCounter++}`);
	fs.mkdirSync(dir, { recursive: true });
	return dir;
}

function load(pinRoot: string, setup?: (o: BpfObject) => void): BpfObject {
	const o = BpfObject.open(fixture, { pinRoot });
	opened.push(o);
	setup?.(o);
	o.load();
	return o;
}

function u32(n: number): Buffer {
	const b = Buffer.alloc(4);
	b.writeUInt32LE(n, 0);
	return b;
}

/** Ethernet frame (local experimental ethertype) whose byte 14 is the marker the fixture keys on. */
function frame(marker: number): Buffer {
	const b = Buffer.alloc(64);
	b.set([2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x88, 0xb5], 0);
	b[14] = marker;
	for (let i = 15; i < b.length; i++) b[i] = i;
	return b;
}

function sh(cmd: string, args: string[]): string {
	return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

beforeAll(() => {
	execFileSync('make', ['-s', '-C', path.join(root, 'bpf'), 'test_fixture.bpf.o'], { stdio: 'pipe' });
	fs.mkdirSync(pinBase, { recursive: true });
	sh('ip', ['netns', 'add', netns]);
	sh('ip', ['-n', netns, 'link', 'add', vethA, 'type', 'veth', 'peer', 'name', vethB]);
	sh('ip', ['-n', netns, 'link', 'set', vethA, 'up']);
	sh('ip', ['-n', netns, 'link', 'set', vethB, 'up']);
});

afterAll(() => {
	for (const o of opened) o.close();
	fs.rmSync(pinBase, { recursive: true, force: true });
	try {
		sh('ip', ['netns', 'del', netns]);
	} catch {
		// already gone
	}
});

describe('BpfObject', () => {
	it('opens, lists and loads the fixture', () => {
		const o = load(pinDir(), (obj) => obj.setMaxEntries('ivb_t_verdicts', 128));
		expect(o.programNames()).toEqual(['ivb_t_classify', 'ivb_t_pass', 'ivb_t_bad']);
		expect(o.mapNames()).toEqual(expect.arrayContaining(['ivb_t_verdicts', 'ivb_t_counters']));
		expect(o.mapNames().some((n) => n.endsWith('.rodata'))).toBe(true);

		const hash = mapInfo(o.mapFd('ivb_t_verdicts'));
		expect(hash).toMatchObject({ type: BPF_MAP_TYPE_HASH, keySize: 4, valueSize: 4, maxEntries: 128, name: 'ivb_t_verdicts' });
		expect(hash.id).toBeGreaterThan(0);
		expect(mapInfo(o.mapFd('ivb_t_counters'))).toMatchObject({ type: BPF_MAP_TYPE_PERCPU_ARRAY, maxEntries: 4, valueSize: 8 });

		const p = progInfo(o.programFd('ivb_t_classify'));
		expect(p).toMatchObject({ name: 'ivb_t_classify', type: BPF_PROG_TYPE_SCHED_CLS });
		expect(p.tag).toMatch(/^[0-9a-f]{16}$/);
		expect(p.id).toBeGreaterThan(0);
	});

	it('rejects unknown names and post-load rodata writes', () => {
		const o = BpfObject.open(fixture, { pinRoot: pinDir() });
		opened.push(o);
		expect(() => o.setRodata('ivb_t_nope', u32(1))).toThrow(/ivb_t_nope/);
		expect(() => o.setRodata('ivb_t_stamp', u32(1))).toThrow(TypeError);
		o.load();
		expect(() => o.setRodata('ivb_t_stamp', Buffer.from([1]))).toThrow(/already loaded/);
		expect(() => o.programFd('nope')).toThrow(BpfError);
		o.close();
		o.close(); // idempotent
		expect(() => o.mapNames()).toThrow(/closed/);
	});

	it('setRodata before load changes the test-run verdict and output data', () => {
		const plain = load(pinDir());
		const tuned = load(pinDir(), (o) => {
			o.setRodata('ivb_t_default_verdict', u32(TC_ACT_SHOT));
			o.setRodata('ivb_t_stamp', Buffer.from([0xaa]));
		});
		const pkt = frame(7);

		const a = progTestRun(plain.programFd('ivb_t_classify'), { data: pkt });
		expect(a.retval).toBe(TC_ACT_OK);
		expect(a.data.toString('hex')).toBe(pkt.toString('hex'));

		const b = progTestRun(tuned.programFd('ivb_t_classify'), { data: pkt, repeat: 3 });
		expect(b.retval).toBe(TC_ACT_SHOT);
		expect(b.data.length).toBe(pkt.length);
		expect(b.data[15]).toBe(0xaa);
		expect(b.data.subarray(16).toString('hex')).toBe(pkt.subarray(16).toString('hex'));
		expect(b.durationNs).toBeGreaterThanOrEqual(0);
	});

	it('test run follows the map and counts per CPU; ctx round-trips', () => {
		const o = load(pinDir());
		const prog = o.programFd('ivb_t_classify');
		const verdicts = o.mapFd('ivb_t_verdicts');
		expect(progTestRun(prog, { data: frame(9) }).retval).toBe(TC_ACT_OK);
		mapUpdate(verdicts, u32(9), u32(TC_ACT_SHOT));
		expect(progTestRun(prog, { data: frame(9) }).retval).toBe(TC_ACT_SHOT);
		expect(progTestRun(prog, { data: frame(8) }).retval).toBe(TC_ACT_OK);

		const r = progTestRun(prog, { data: frame(9), ctxIn: encodeSkbCtx({ mark: 0x1234, priority: 3 }), repeat: 4 });
		expect(r.retval).toBe(TC_ACT_SHOT);
		expect(r.ctx?.length).toBe(SKB_CTX_SIZE);
		expect(r.ctx?.readUInt32LE(8)).toBe(0x1234);

		// 1 + 1 + 1 + 4 runs so far, spread over whatever CPUs ran them.
		const size = perCpuValueSize(8);
		expect(size).toBe(8 * possibleCpus());
		const slots = mapLookup(o.mapFd('ivb_t_counters'), u32(0), size);
		expect(slots).not.toBeNull();
		let total = 0n;
		for (let cpu = 0; cpu < possibleCpus(); cpu++) total += slots!.readBigUInt64LE(cpu * 8);
		expect(total).toBe(7n);
	});

	it('includes the verifier log tail when load fails', () => {
		const o = BpfObject.open(fixture, { pinRoot: pinDir() });
		opened.push(o);
		o.setAutoload('ivb_t_bad', true);
		let err: unknown;
		try {
			o.load();
		} catch (e) {
			err = e;
		}
		expect(err).toBeInstanceOf(BpfError);
		const be = err as BpfError;
		expect(be.errno).toBe(13); // EACCES from the verifier
		expect(be.op).toBe(`bpf_object__load(${fixture})`);
		expect(be.message).toMatch(/verifier log:/);
		expect(be.message).toMatch(/invalid mem access/);
	});

	it('BpfError on a missing file carries ENOENT and a readable message', () => {
		let err: unknown;
		try {
			BpfObject.open('/nonexistent/ivb.bpf.o');
		} catch (e) {
			err = e;
		}
		expect(err).toBeInstanceOf(BpfError);
		expect(err).toBeInstanceOf(Error);
		const be = err as BpfError;
		expect(be.name).toBe('BpfError');
		expect(be.code).toBe('IPVLAN_E_BPF');
		expect(be.errno).toBe(2);
		expect(be.op).toBe('bpf_object__open_file(/nonexistent/ivb.bpf.o)');
		expect(be.message).toMatch(/^bpf_object__open_file\(\/nonexistent\/ivb\.bpf\.o\): No such file or directory \(ENOENT\)/);
	});
});

describe('map operations', () => {
	it('update / lookup / delete / keys', () => {
		const fd = load(pinDir()).mapFd('ivb_t_verdicts');
		expect(mapLookup(fd, u32(1), 4)).toBeNull();
		mapUpdate(fd, u32(1), u32(11));
		mapUpdate(fd, u32(2), u32(22), BPF_NOEXIST);
		expect(mapLookup(fd, u32(1), 4)?.readUInt32LE(0)).toBe(11);
		expect(() => mapUpdate(fd, u32(1), u32(0), BPF_NOEXIST)).toThrow(/EEXIST/);
		try {
			mapUpdate(fd, u32(3), u32(0), BPF_EXIST);
			expect.unreachable();
		} catch (e) {
			expect(e).toBeInstanceOf(BpfError);
			expect((e as BpfError).errno).toBe(2);
			expect((e as BpfError).message).toMatch(/^bpf_map_update_elem\(fd \d+\): No such file or directory \(ENOENT\)$/);
		}
		expect(
			mapKeys(fd, 4)
				.map((k) => k.readUInt32LE(0))
				.sort(),
		).toEqual([1, 2]);
		expect(mapDelete(fd, u32(1))).toBe(true);
		expect(mapDelete(fd, u32(1))).toBe(false);
		expect(mapKeys(fd, 4).map((k) => k.readUInt32LE(0))).toEqual([2]);
	});

	it('batch update / lookup / delete', () => {
		const fd = load(pinDir()).mapFd('ivb_t_verdicts');
		const keys = Array.from({ length: 40 }, (_, i) => u32(100 + i));
		const values = Array.from({ length: 40 }, (_, i) => u32(1000 + i));
		expect(mapUpdateBatch(fd, keys, values)).toBe(40);

		const all = mapLookupBatch(fd, 4, 4);
		expect(all.keys.length).toBe(40);
		const got = new Map(all.keys.map((k, i) => [k.readUInt32LE(0), all.values[i]!.readUInt32LE(0)]));
		for (let i = 0; i < 40; i++) expect(got.get(100 + i)).toBe(1000 + i);

		// Concatenated form with an explicit count.
		const flat = Buffer.alloc(8);
		flat.writeUInt32LE(100, 0);
		flat.writeUInt32LE(101, 4);
		expect(mapDeleteBatch(fd, flat, 2)).toBe(2);
		expect(mapDeleteBatch(fd, keys.slice(2))).toBe(38);
		expect(mapKeys(fd, 4)).toEqual([]);
		expect(mapLookupBatch(fd, 4, 4).keys).toEqual([]);
	});

	it('per-CPU values through batch ops', () => {
		const fd = load(pinDir()).mapFd('ivb_t_counters');
		const size = perCpuValueSize(8);
		const v = Buffer.alloc(size);
		for (let cpu = 0; cpu < possibleCpus(); cpu++) v.writeBigUInt64LE(BigInt(cpu + 1), cpu * 8);
		mapUpdate(fd, u32(2), v);
		const all = mapLookupBatch(fd, 4, size);
		expect(all.keys.map((k) => k.readUInt32LE(0))).toEqual([0, 1, 2, 3]);
		expect(all.values[2]!.toString('hex')).toBe(v.toString('hex'));
		expect(all.values[1]!.toString('hex')).toBe(Buffer.alloc(size).toString('hex'));
	});
});

describe('pins', () => {
	it('a LIBBPF_PIN_BY_NAME map is reused across loads with the same pinRoot', () => {
		const dir = pinDir();
		const first = load(dir);
		mapUpdate(first.mapFd('ivb_t_verdicts'), u32(5), u32(55));
		expect(fs.existsSync(path.join(dir, 'ivb_t_verdicts'))).toBe(true);
		first.close();

		const second = load(dir);
		const fd = second.mapFd('ivb_t_verdicts');
		expect(mapLookup(fd, u32(5), 4)?.readUInt32LE(0)).toBe(55);
		// And the program of the second object sees it too.
		expect(progTestRun(second.programFd('ivb_t_classify'), { data: frame(5) }).retval).toBe(55);

		const viaPin = objGet(path.join(dir, 'ivb_t_verdicts'));
		try {
			expect(mapInfo(viaPin).id).toBe(mapInfo(fd).id);
		} finally {
			closeFd(viaPin);
		}
		// The per-CPU map is not pinned, so each load gets its own.
		expect(fs.existsSync(path.join(dir, 'ivb_t_counters'))).toBe(false);
	});

	it('pins programs and raw fds; detects bpffs', () => {
		const dir = pinDir();
		const o = load(dir);
		o.pinProgram('ivb_t_pass', path.join(dir, 'pass'));
		const fd = objGet(path.join(dir, 'pass'));
		try {
			expect(progInfo(fd).id).toBe(progInfo(o.programFd('ivb_t_pass')).id);
		} finally {
			closeFd(fd);
		}
		objPin(o.mapFd('ivb_t_counters'), path.join(dir, 'counters'));
		const m = objGet(path.join(dir, 'counters'));
		expect(mapInfo(m).name).toBe('ivb_t_counters');
		closeFd(m);
		expect(() => objGet(path.join(dir, 'missing'))).toThrow(/ENOENT/);

		expect(pathIsBpffs(dir)).toBe(true);
		expect(pathIsBpffs('/proc')).toBe(false);
		expect(pathIsBpffs('/nonexistent/ivb')).toBe(false);
	});
});

describe('namespaces and links', () => {
	it('withNetns enters and always restores', () => {
		const before = currentNetnsInode();
		const target = fs.statSync(netnsPath).ino;
		expect(target).not.toBe(before);
		expect(withNetns(netnsPath, () => currentNetnsInode())).toBe(target);
		expect(currentNetnsInode()).toBe(before);
		expect(() =>
			withNetns(netnsPath, () => {
				throw new Error('boom');
			}),
		).toThrow('boom');
		expect(currentNetnsInode()).toBe(before);
		expect(() => withNetns(netnsPath, () => Promise.resolve(1))).toThrow(/synchronous/);
		expect(currentNetnsInode()).toBe(before);
		// Child processes started inside inherit the namespace.
		const seen = withNetns(netnsPath, () => sh('ip', ['-o', 'link', 'show', vethA]));
		expect(seen).toContain(vethA);
		expect(currentNetnsInode()).toBe(before);
	});

	it('ifNameToIndex resolves in the current netns and throws on unknown names', () => {
		expect(withNetns(netnsPath, () => ifNameToIndex('lo'))).toBe(1);
		expect(() => ifNameToIndex(vethA)).toThrow(LibcError);
		try {
			ifNameToIndex(vethA);
		} catch (e) {
			expect((e as LibcError).code).toBe('ENODEV');
		}
	});

	it('TCX link: create, pin, update, detach', () => {
		expect(tcxSupported()).toBe(true); // kernel >= 6.6
		expect(tcxSupported()).toBe(true); // cached
		const dir = pinDir();
		const o = load(dir);
		const classify = o.programFd('ivb_t_classify');
		const pass = o.programFd('ivb_t_pass');
		const linkPin = path.join(dir, 'link');

		withNetns(netnsPath, () => {
			const ifindex = ifNameToIndex(vethA);
			const link = linkCreate(classify, ifindex, 'tcx_ingress');
			try {
				objPin(link, linkPin);
				const show = (): { prog_id: number } => JSON.parse(sh('bpftool', ['link', 'show', 'pinned', linkPin, '-j'])) as { prog_id: number };
				expect(show().prog_id).toBe(progInfo(classify).id);
				linkUpdate(link, pass);
				expect(show().prog_id).toBe(progInfo(pass).id);
				// The egress hook takes its own link.
				const egress = linkCreate(pass, ifindex, 'tcx_egress');
				linkDetach(egress);
				closeFd(egress);

				linkDetach(link);
				// A detached TCX link has no device left to update.
				expect(() => linkUpdate(link, classify)).toThrow(BpfError);
			} finally {
				closeFd(link);
				fs.rmSync(linkPin, { force: true });
			}
			expect(() => linkCreate(classify, 999999, 'tcx_ingress')).toThrow(/ENODEV/);
		});
	});

	it('clsact fallback attaches and detaches a direct-action filter', () => {
		const o = load(pinDir());
		const pass = o.programFd('ivb_t_pass');
		withNetns(netnsPath, () => {
			const ifindex = ifNameToIndex(vethB);
			tcClsactAttach(pass, ifindex, 'ingress');
			tcClsactAttach(pass, ifindex, 'ingress'); // replace, not duplicate
			const filters = sh('tc', ['filter', 'show', 'dev', vethB, 'ingress']);
			expect(filters).toMatch(/ivb_t_pass/);
			expect(filters.match(/handle 0x1 /g)?.length).toBe(1);
			expect(filters).toMatch(/direct-action/);
			expect(tcClsactDetach(ifindex, 'ingress')).toBe(true);
			expect(tcClsactDetach(ifindex, 'ingress')).toBe(false);
			expect(sh('tc', ['filter', 'show', 'dev', vethB, 'ingress'])).not.toMatch(/ivb_t_pass/);
			expect(tcClsactDetach(ifindex, 'egress')).toBe(false);
		});
	});
});

describe('threads', () => {
	// libbpf's print hook is process-wide and koffi runs a callback on the
	// thread that registered it. The agent's rtnetlink listener is a worker
	// that loads this binding and then polls without ever returning to its
	// event loop: had it registered the hook, every libbpf call of the main
	// thread that prints (opening an object does) would wait for it for ever.
	it('a worker that loaded the binding and never yields does not hold up the main thread', () => {
		const script = `
			import { Worker } from 'node:worker_threads';
			const lib = await import(${JSON.stringify(path.join(root, 'dist', 'native', 'libbpf.js'))});
			const w = new Worker(\`
				import { workerData, parentPort } from 'node:worker_threads';
				await import(workerData);
				parentPort.postMessage('loaded');
				const end = Date.now() + 8000;
				while (Date.now() < end) {}
			\`, { eval: true, workerData: ${JSON.stringify(path.join(root, 'dist', 'native', 'libbpf.js'))} });
			await new Promise((r) => w.once('message', r));
			const t0 = Date.now();
			lib.BpfObject.open(${JSON.stringify(fixture)}).close();
			console.log('opened in', Date.now() - t0, 'ms');
			process.exit(0);
		`;
		const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 6000 });
		expect(r.signal, `the main thread's open waited for the busy worker: ${r.stderr}`).toBeNull();
		expect(r.status, r.stderr).toBe(0);
		expect(r.stdout).toMatch(/opened in \d+ ms/);
	});
});
