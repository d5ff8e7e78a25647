// SPDX-License-Identifier: GPL-2.0-only
/*
 * Typed binding of libbpf 1.1 (libbpf.so.1) through koffi.
 *
 * Option structs are plain Buffers laid out by hand: the offsets below were
 * checked with offsetof()/sizeof() against /usr/include/bpf/{libbpf,bpf}.h
 * 1.1.2 on x86_64 (LP64). Each *_opts struct starts with `size_t sz`, which
 * must equal sizeof() of the struct as this libbpf knows it, or libbpf
 * rejects the call with EINVAL. Pointers inside structs are raw addresses of
 * Buffers we keep referenced for as long as libbpf may touch them (Buffer
 * backing stores never move).
 *
 * Error convention: libbpf 1.x returns -errno from int functions and NULL
 * with errno set from pointer functions; both become BpfError.
 */
import fs from 'node:fs';
import koffi from 'koffi';
import { isMainThread } from 'node:worker_threads';
import {
	CLONE_NEWNET,
	BPF_FS_MAGIC,
	LibcError,
	closeFd,
	describeErrno,
	ifNameToIndexRaw,
	lastErrno,
	openRdonly,
	setnsFd,
	statfsType,
} from './libc.js';

export { CLONE_NEWNET, LibcError, closeFd, errnoName, describeErrno } from './libc.js';

const lib = koffi.load('libbpf.so.1');
const libc = koffi.load('libc.so.6');

type Ptr = bigint;

const f = {
	open_file: lib.func('void *bpf_object__open_file(const char *path, void *opts)'),
	obj_load: lib.func('int bpf_object__load(void *obj)'),
	obj_close: lib.func('void bpf_object__close(void *obj)'),
	obj_btf: lib.func('void *bpf_object__btf(void *obj)'),
	find_prog: lib.func('void *bpf_object__find_program_by_name(void *obj, const char *name)'),
	find_map: lib.func('void *bpf_object__find_map_by_name(void *obj, const char *name)'),
	next_prog: lib.func('void *bpf_object__next_program(void *obj, void *prev)'),
	next_map: lib.func('void *bpf_object__next_map(void *obj, void *prev)'),
	prog_name: lib.func('const char *bpf_program__name(void *prog)'),
	prog_fd: lib.func('int bpf_program__fd(void *prog)'),
	prog_pin: lib.func('int bpf_program__pin(void *prog, const char *path)'),
	prog_set_autoload: lib.func('int bpf_program__set_autoload(void *prog, bool autoload)'),
	map_name: lib.func('const char *bpf_map__name(void *map)'),
	map_fd: lib.func('int bpf_map__fd(void *map)'),
	map_type: lib.func('int bpf_map__type(void *map)'),
	map_key_size: lib.func('uint32_t bpf_map__key_size(void *map)'),
	map_value_size: lib.func('uint32_t bpf_map__value_size(void *map)'),
	map_set_max_entries: lib.func('int bpf_map__set_max_entries(void *map, uint32_t n)'),
	map_max_entries: lib.func('uint32_t bpf_map__max_entries(void *map)'),
	map_initial_value: lib.func('void *bpf_map__initial_value(void *map, void *psize)'),
	btf_find_by_name_kind: lib.func('int32_t btf__find_by_name_kind(void *btf, const char *name, uint32_t kind)'),
	btf_type_by_id: lib.func('void *btf__type_by_id(void *btf, uint32_t id)'),
	btf_name_by_offset: lib.func('const char *btf__name_by_offset(void *btf, uint32_t off)'),

	map_update_elem: lib.func('int bpf_map_update_elem(int fd, void *key, void *value, uint64_t flags)'),
	map_lookup_elem: lib.func('int bpf_map_lookup_elem(int fd, void *key, void *value)'),
	map_delete_elem: lib.func('int bpf_map_delete_elem(int fd, void *key)'),
	map_get_next_key: lib.func('int bpf_map_get_next_key(int fd, void *key, void *next_key)'),
	map_lookup_batch: lib.func(
		'int bpf_map_lookup_batch(int fd, void *in_batch, void *out_batch, void *keys, void *values, void *count, void *opts)',
	),
	map_update_batch: lib.func('int bpf_map_update_batch(int fd, void *keys, void *values, void *count, void *opts)'),
	map_delete_batch: lib.func('int bpf_map_delete_batch(int fd, void *keys, void *count, void *opts)'),
	obj_pin: lib.func('int bpf_obj_pin(int fd, const char *path)'),
	obj_get: lib.func('int bpf_obj_get(const char *path)'),
	obj_get_info: lib.func('int bpf_obj_get_info_by_fd(int fd, void *info, void *info_len)'),
	prog_load: lib.func(
		'int bpf_prog_load(int type, const char *name, const char *license, void *insns, size_t cnt, void *opts)',
	),
	link_create: lib.func('int bpf_link_create(int prog_fd, int target_fd, int attach_type, void *opts)'),
	link_update: lib.func('int bpf_link_update(int link_fd, int new_prog_fd, void *opts)'),
	link_detach: lib.func('int bpf_link_detach(int link_fd)'),
	prog_test_run: lib.func('int bpf_prog_test_run_opts(int prog_fd, void *opts)'),
	tc_hook_create: lib.func('int bpf_tc_hook_create(void *hook)'),
	tc_attach: lib.func('int bpf_tc_attach(void *hook, void *opts)'),
	tc_detach: lib.func('int bpf_tc_detach(void *hook, void *opts)'),
	num_possible_cpus: lib.func('int libbpf_num_possible_cpus(void)'),
};

// ---------------------------------------------------------------------------
// Errors and libbpf's own diagnostics

/** A failed libbpf / bpf(2) call. */
export class BpfError extends Error {
	override name = 'BpfError';
	readonly code = 'IPVLAN_E_BPF';
	constructor(
		/** Which call failed, e.g. "bpf_object__load(bpf/master_ingress.bpf.o)". */
		readonly op: string,
		/** Positive errno value. */
		readonly errno: number,
		detail?: string,
	) {
		super(`${op}: ${describeErrno(errno)}${detail ? `\n${detail}` : ''}`);
	}
}

/* libbpf explains most open/load failures only through its print callback
 * (missing BTF, bad relocation, pin mismatch...). Capture those lines so they
 * end up in the BpfError instead of on stderr. IVB_LIBBPF_DEBUG=1 echoes them.
 *
 * The hook is process-wide and koffi runs a callback on the thread that
 * registered it: a libbpf call on any other thread waits until that thread's
 * event loop runs it. So only the main thread registers it. A worker that
 * loaded this module for withNetns (the rtnetlink listener, which polls in a
 * loop and never returns to its event loop) once replaced the main thread's
 * hook, and the agent's next bpf_object__open_file waited for it for ever. */
const LIBBPF_INFO = 1;
const LIBBPF_DEBUG = 2;
const recentLibbpfLines: string[] = [];
const echoLibbpf = process.env.IVB_LIBBPF_DEBUG === '1';
function hookLibbpfPrint(): void {
	try {
		const vsnprintf = libc.func('int vsnprintf(void *buf, size_t size, void *fmt, void *ap)');
		const PrintFn = koffi.proto('int ivb_libbpf_print_fn(int level, void *fmt, void *ap)');
		const printBuf = Buffer.alloc(4096);
		// va_list is an array type on x86_64 and a >16-byte struct on arm64: either
		// way the callee receives a pointer, which vsnprintf takes unchanged.
		const cb = koffi.register((level: number, fmt: Ptr, ap: Ptr): number => {
			if (level === LIBBPF_DEBUG && !echoLibbpf) return 0;
			const n = vsnprintf(printBuf, printBuf.length, fmt, ap) as number;
			if (n <= 0) return 0;
			const text = printBuf.toString('utf8', 0, Math.min(n, printBuf.length - 1));
			if (echoLibbpf) process.stderr.write(`libbpf: ${text}`);
			if (level <= LIBBPF_INFO) {
				for (const line of text.split('\n')) if (line.trim()) recentLibbpfLines.push(line);
				if (recentLibbpfLines.length > 80) recentLibbpfLines.splice(0, recentLibbpfLines.length - 80);
			}
			return 0;
		}, koffi.pointer(PrintFn));
		lib.func('void *libbpf_set_print(void *fn)')(cb);
	} catch {
		// Without the hook libbpf keeps printing to stderr; errors stay usable.
	}
}
if (isMainThread) hookLibbpfPrint();

function takeLibbpfLines(): string[] {
	return recentLibbpfLines.splice(0, recentLibbpfLines.length);
}

/** Throws BpfError if a libbpf int return is negative; returns it otherwise. */
function check(ret: number, op: string, detail?: () => string | undefined): number {
	if (ret >= 0) return ret;
	throw new BpfError(op, -ret, detail?.());
}

function checkPtr(p: Ptr | null, op: string, detail?: () => string | undefined): Ptr {
	if (p !== null && p !== 0n) return p;
	throw new BpfError(op, lastErrno() || 22 /* EINVAL */, detail?.());
}

/* Buffer.from(buf), Buffer.concat and buf.copy reject a Buffer argument under
 * @types/node 20.9 with TS 5.9 (ArrayBufferLike variance); copy through
 * plain Uint8Array views instead. */
function u8(b: Buffer): Uint8Array {
	return new Uint8Array(b.buffer, b.byteOffset, b.length);
}

function copyInto(dst: Buffer, src: Buffer, offset: number): void {
	u8(dst).set(u8(src), offset);
}

function copyBuf(b: Buffer): Buffer {
	const c = Buffer.alloc(b.length);
	copyInto(c, b, 0);
	return c;
}

function concatBufs(items: readonly Buffer[]): Buffer {
	const out = Buffer.alloc(items.reduce((n, b) => n + b.length, 0));
	let off = 0;
	for (const b of items) {
		copyInto(out, b, off);
		off += b.length;
	}
	return out;
}

function cstr(s: string): Buffer {
	return Buffer.from(`${s}\0`, 'utf8');
}

function addr(b: Buffer | null | undefined): bigint {
	return b && b.length > 0 ? koffi.address(b) : 0n;
}

function cstrAt(b: Buffer, off: number, len: number): string {
	const raw = b.subarray(off, off + len);
	const nul = raw.indexOf(0);
	return raw.toString('utf8', 0, nul < 0 ? raw.length : nul);
}

// ---------------------------------------------------------------------------
// Objects

const OPEN_OPTS_SZ = 80;
const OPEN_OPTS_PIN_ROOT = 24;
const OPEN_OPTS_LOG_BUF = 56;
const OPEN_OPTS_LOG_SIZE = 64;
const OPEN_OPTS_LOG_LEVEL = 72;
const KERNEL_LOG_SIZE = 1 << 20;
const VERIFIER_TAIL_LINES = 40;
const BTF_KIND_DATASEC = 15;

export interface BpfObjectOpenOptions {
	/** Folder where maps declared with LIBBPF_PIN_BY_NAME are pinned / reused (default /sys/fs/bpf). */
	pinRoot?: string;
}

export class BpfObject {
	#obj: Ptr | null;
	#loaded = false;
	readonly path: string;
	// Referenced by libbpf through raw pointers until close.
	#keep: Buffer[];
	#logBuf: Buffer;

	private constructor(obj: Ptr, path: string, keep: Buffer[], logBuf: Buffer) {
		this.#obj = obj;
		this.path = path;
		this.#keep = keep;
		this.#logBuf = logBuf;
	}

	/** bpf_object__open_file; nothing reaches the kernel until load(). */
	static open(path: string, opts: BpfObjectOpenOptions = {}): BpfObject {
		const o = Buffer.alloc(OPEN_OPTS_SZ);
		const keep: Buffer[] = [o];
		o.writeBigUInt64LE(BigInt(OPEN_OPTS_SZ), 0);
		if (opts.pinRoot !== undefined) {
			const pin = cstr(opts.pinRoot);
			keep.push(pin);
			o.writeBigUInt64LE(addr(pin), OPEN_OPTS_PIN_ROOT);
		}
		// Level 0: libbpf loads without a log and retries at level 1 into this
		// buffer only when a load fails, so successful loads pay nothing.
		const logBuf = Buffer.alloc(KERNEL_LOG_SIZE);
		keep.push(logBuf);
		o.writeBigUInt64LE(addr(logBuf), OPEN_OPTS_LOG_BUF);
		o.writeBigUInt64LE(BigInt(KERNEL_LOG_SIZE), OPEN_OPTS_LOG_SIZE);
		o.writeUInt32LE(0, OPEN_OPTS_LOG_LEVEL);

		takeLibbpfLines();
		const obj = f.open_file(path, o) as Ptr | null;
		const op = `bpf_object__open_file(${path})`;
		const p = checkPtr(obj, op, () => libbpfDetail());
		return new BpfObject(p, path, keep, logBuf);
	}

	#handle(what: string): Ptr {
		if (this.#obj === null) throw new Error(`${what}: BpfObject(${this.path}) is closed`);
		return this.#obj;
	}

	#beforeLoad(what: string): Ptr {
		const h = this.#handle(what);
		if (this.#loaded) throw new Error(`${what}: BpfObject(${this.path}) is already loaded`);
		return h;
	}

	#prog(name: string, what: string): Ptr {
		const p = f.find_prog(this.#handle(what), name) as Ptr | null;
		return checkPtr(p, `${what}: bpf_object__find_program_by_name(${name}) in ${this.path}`);
	}

	#map(name: string, what: string): Ptr {
		const p = f.find_map(this.#handle(what), name) as Ptr | null;
		return checkPtr(p, `${what}: bpf_object__find_map_by_name(${name}) in ${this.path}`);
	}

	#maps(): Array<{ ptr: Ptr; name: string }> {
		const h = this.#handle('mapNames');
		const out: Array<{ ptr: Ptr; name: string }> = [];
		for (let m = f.next_map(h, null) as Ptr | null; m; m = f.next_map(h, m) as Ptr | null) {
			out.push({ ptr: m, name: (f.map_name(m) as string | null) ?? '' });
		}
		return out;
	}

	/**
	 * Overwrites a `const volatile` global before load (the verifier then
	 * treats it as a constant). value.length must equal the variable's size.
	 */
	setRodata(varName: string, value: Buffer): void {
		const h = this.#beforeLoad(`setRodata(${varName})`);
		const op = `setRodata(${varName}) in ${this.path}`;
		const rodata = this.#maps().find((m) => m.name.endsWith('.rodata'));
		if (!rodata) throw new BpfError(`${op}: no .rodata map`, 2 /* ENOENT */);
		const sizeBuf = Buffer.alloc(8);
		const mem = checkPtr(f.map_initial_value(rodata.ptr, sizeBuf) as Ptr | null, `${op}: bpf_map__initial_value`);
		const memSize = Number(sizeBuf.readBigUInt64LE(0));

		const btf = checkPtr(f.obj_btf(h) as Ptr | null, `${op}: bpf_object__btf`);
		const secId = f.btf_find_by_name_kind(btf, '.rodata', BTF_KIND_DATASEC) as number;
		check(secId, `${op}: btf__find_by_name_kind(.rodata)`);
		const sec = checkPtr(f.btf_type_by_id(btf, secId) as Ptr | null, `${op}: btf__type_by_id`);
		// struct btf_type { u32 name_off; u32 info; u32 size; } + vlen * btf_var_secinfo { u32 type, offset, size }
		const info = Buffer.from(koffi.view(sec, 12)).readUInt32LE(4);
		const vlen = info & 0xffff;
		const secinfo = Buffer.from(koffi.view(sec, 12 + 12 * vlen));
		for (let i = 0; i < vlen; i++) {
			const base = 12 + 12 * i;
			const varType = checkPtr(f.btf_type_by_id(btf, secinfo.readUInt32LE(base)) as Ptr | null, `${op}: btf__type_by_id`);
			const nameOff = Buffer.from(koffi.view(varType, 4)).readUInt32LE(0);
			const name = f.btf_name_by_offset(btf, nameOff) as string | null;
			if (name !== varName) continue;
			const offset = secinfo.readUInt32LE(base + 4);
			const size = secinfo.readUInt32LE(base + 8);
			if (value.length !== size) {
				throw new TypeError(`${op}: variable is ${size} bytes, value is ${value.length}`);
			}
			if (offset + size > memSize) throw new BpfError(`${op}: offset ${offset} outside .rodata`, 34 /* ERANGE */);
			copyInto(Buffer.from(koffi.view(mem, memSize)), value, offset);
			return;
		}
		throw new BpfError(`${op}: no such variable in .rodata`, 2 /* ENOENT */);
	}

	/** bpf_map__set_max_entries; only before load. */
	setMaxEntries(mapName: string, n: number): void {
		this.#beforeLoad(`setMaxEntries(${mapName})`);
		check(f.map_set_max_entries(this.#map(mapName, 'setMaxEntries'), n) as number, `bpf_map__set_max_entries(${mapName}, ${n})`);
	}

	/** bpf_map__max_entries: as declared, or as set (setMaxEntries) before load. */
	maxEntries(mapName: string): number {
		return f.map_max_entries(this.#map(mapName, 'maxEntries')) as number;
	}

	/** Programs declared SEC("?...") are not loaded unless turned on here (before load). */
	setAutoload(progName: string, autoload: boolean): void {
		this.#beforeLoad(`setAutoload(${progName})`);
		check(f.prog_set_autoload(this.#prog(progName, 'setAutoload'), autoload) as number, `bpf_program__set_autoload(${progName})`);
	}

	/** bpf_object__load; on failure the message carries libbpf's reasons and the verifier log tail. */
	load(): void {
		const h = this.#beforeLoad('load');
		this.#logBuf.fill(0, 0, 16);
		takeLibbpfLines();
		const ret = f.obj_load(h) as number;
		if (ret < 0) {
			throw new BpfError(`bpf_object__load(${this.path})`, -ret, libbpfDetail(verifierTail(this.#logBuf)));
		}
		this.#loaded = true;
	}

	get loaded(): boolean {
		return this.#loaded;
	}

	programFd(name: string): number {
		const fd = f.prog_fd(this.#prog(name, 'programFd')) as number;
		return check(fd, `bpf_program__fd(${name}) in ${this.path}`);
	}

	mapFd(name: string): number {
		const fd = f.map_fd(this.#map(name, 'mapFd')) as number;
		return check(fd, `bpf_map__fd(${name}) in ${this.path}`);
	}

	programNames(): string[] {
		const h = this.#handle('programNames');
		const out: string[] = [];
		for (let p = f.next_prog(h, null) as Ptr | null; p; p = f.next_prog(h, p) as Ptr | null) {
			out.push((f.prog_name(p) as string | null) ?? '');
		}
		return out;
	}

	/** Kind of each map as declared (type, key and value size): what a pinned map must match to be reused. */
	mapDefs(): Array<{ name: string; type: number; keySize: number; valueSize: number }> {
		return this.#maps().map((m) => ({
			name: m.name,
			type: f.map_type(m.ptr) as number,
			keySize: f.map_key_size(m.ptr) as number,
			valueSize: f.map_value_size(m.ptr) as number,
		}));
	}

	/** Includes libbpf's internal maps (e.g. "<obj>.rodata"). */
	mapNames(): string[] {
		return this.#maps().map((m) => m.name);
	}

	pinProgram(name: string, path: string): void {
		check(f.prog_pin(this.#prog(name, 'pinProgram'), path) as number, `bpf_program__pin(${name}, ${path})`);
	}

	/** Closes every fd libbpf holds for this object; pinned objects and links stay. Idempotent. */
	close(): void {
		if (this.#obj === null) return;
		f.obj_close(this.#obj);
		this.#obj = null;
		// libbpf no longer points into them: they may go
		this.#keep.length = 0;
	}
}

function verifierTail(logBuf: Buffer): string | undefined {
	const log = cstrAt(logBuf, 0, logBuf.length).trimEnd();
	if (!log) return undefined;
	const lines = log.split('\n');
	const tail = lines.slice(-VERIFIER_TAIL_LINES);
	const head = lines.length > tail.length ? `(last ${tail.length} of ${lines.length} lines)\n` : '';
	return `verifier log:\n${head}${tail.join('\n')}`;
}

function libbpfDetail(extra?: string): string | undefined {
	const lines = takeLibbpfLines().map((l) => (l.startsWith('libbpf: ') ? l : `libbpf: ${l}`));
	const parts = [lines.join('\n'), extra ?? ''].filter((s) => s.length > 0);
	return parts.length ? parts.join('\n') : undefined;
}

// ---------------------------------------------------------------------------
// Map operations on raw fds
//
// Per-CPU maps (PERCPU_HASH, PERCPU_ARRAY, LRU_PERCPU_HASH): the value buffer
// holds one slot per possible CPU, each round_up(value_size, 8) bytes, so pass
// valueSize = round_up(value_size, 8) * possibleCpus() and slice per CPU.

export const BPF_ANY = 0;
export const BPF_NOEXIST = 1;
export const BPF_EXIST = 2;

const ENOENT = 2;
const EEXIST = 17;
const ENODEV = 19;
const EINVAL = 22;
const ENOSPC = 28;

let cpuCount: number | undefined;
/** libbpf_num_possible_cpus (cached by libbpf too). */
export function possibleCpus(): number {
	if (cpuCount === undefined) cpuCount = check(f.num_possible_cpus() as number, 'libbpf_num_possible_cpus');
	return cpuCount;
}

/** Bytes of one per-CPU map value as the syscall expects it. */
export function perCpuValueSize(valueSize: number): number {
	return Math.ceil(valueSize / 8) * 8 * possibleCpus();
}

export function mapUpdate(fd: number, key: Buffer, value: Buffer, flags: number = BPF_ANY): void {
	check(f.map_update_elem(fd, key, value, flags) as number, `bpf_map_update_elem(fd ${fd})`);
}

/** null when the key is absent. */
export function mapLookup(fd: number, key: Buffer, valueSize: number): Buffer | null {
	const value = Buffer.alloc(valueSize);
	const ret = f.map_lookup_elem(fd, key, value) as number;
	if (ret === -ENOENT) return null;
	check(ret, `bpf_map_lookup_elem(fd ${fd})`);
	return value;
}

/** false when the key was absent. */
export function mapDelete(fd: number, key: Buffer): boolean {
	const ret = f.map_delete_elem(fd, key) as number;
	if (ret === -ENOENT) return false;
	check(ret, `bpf_map_delete_elem(fd ${fd})`);
	return true;
}

/** All keys (a snapshot racing with concurrent updates, like bpftool's dump). */
export function mapKeys(fd: number, keySize: number): Buffer[] {
	const keys: Buffer[] = [];
	let prev: Buffer | null = null;
	for (;;) {
		const next = Buffer.alloc(keySize);
		const ret = f.map_get_next_key(fd, prev, next) as number;
		if (ret === -ENOENT) return keys;
		check(ret, `bpf_map_get_next_key(fd ${fd})`);
		keys.push(next);
		prev = next;
	}
}

function batchOpts(elemFlags: number): Buffer {
	const o = Buffer.alloc(24);
	o.writeBigUInt64LE(24n, 0);
	o.writeBigUInt64LE(BigInt(elemFlags), 8);
	return o;
}

function concatFixed(items: Buffer[] | Buffer, size: number, count: number, what: string): Buffer {
	const buf = Buffer.isBuffer(items) ? items : concatBufs(items);
	if (buf.length < size * count) {
		throw new TypeError(`${what}: need ${count} × ${size} bytes, got ${buf.length}`);
	}
	if (!Buffer.isBuffer(items) && items.some((b) => b.length !== size)) {
		throw new TypeError(`${what}: every element must be ${size} bytes`);
	}
	return buf;
}

/** Whole map via bpf_map_lookup_batch (kernel 5.6+; not every map type supports it: EINVAL/ENOTSUPP then). */
export function mapLookupBatch(fd: number, keySize: number, valueSize: number): { keys: Buffer[]; values: Buffer[] } {
	const maxEntries = Math.max(1, mapInfo(fd).maxEntries);
	let chunk = Math.min(maxEntries, 4096);
	// Hash maps use a u32 bucket cursor, array maps a key: size for either.
	let inBatch: Buffer | null = null;
	const outBatch = Buffer.alloc(Math.max(keySize, 8));
	const keys: Buffer[] = [];
	const values: Buffer[] = [];
	const countBuf = Buffer.alloc(4);
	const opts = batchOpts(0);
	for (;;) {
		const kbuf = Buffer.alloc(keySize * chunk);
		const vbuf = Buffer.alloc(valueSize * chunk);
		countBuf.writeUInt32LE(chunk, 0);
		const ret = f.map_lookup_batch(fd, inBatch, outBatch, kbuf, vbuf, countBuf, opts) as number;
		const n = countBuf.readUInt32LE(0);
		if (ret < 0 && ret !== -ENOENT) {
			// A hash bucket larger than the chunk: retry the same cursor with room for it.
			if (ret === -ENOSPC && n === 0 && chunk < maxEntries * 2) {
				chunk *= 2;
				continue;
			}
			check(ret, `bpf_map_lookup_batch(fd ${fd})`);
		}
		// kbuf and vbuf are this round's own: views into them need no copy
		for (let i = 0; i < n; i++) {
			keys.push(kbuf.subarray(i * keySize, (i + 1) * keySize));
			values.push(vbuf.subarray(i * valueSize, (i + 1) * valueSize));
		}
		if (ret === -ENOENT) return { keys, values };
		inBatch = copyBuf(outBatch);
	}
}

/**
 * The chunks of one bpf_map_lookup_batch walk over the whole map: each
 * chunk's raw keys and values (N entries, back to back, valid until the next
 * step). A hash bucket larger than the chunk is retried at the same cursor
 * with room for it. The walk is not a snapshot: entries changed meanwhile
 * may be seen or not.
 */
function* batchChunks(fd: number, keySize: number, valueSize: number): Generator<{ keys: Buffer; values: Buffer; n: number }> {
	const maxEntries = Math.max(1, mapInfo(fd).maxEntries);
	let chunk = Math.min(maxEntries, 4096);
	let inBatch: Buffer | null = null;
	const outBatch = Buffer.alloc(Math.max(keySize, 8));
	const countBuf = Buffer.alloc(4);
	const opts = batchOpts(0);
	let kbuf = Buffer.alloc(keySize * chunk);
	let vbuf = Buffer.alloc(valueSize * chunk);
	for (;;) {
		countBuf.writeUInt32LE(chunk, 0);
		const ret = f.map_lookup_batch(fd, inBatch, outBatch, kbuf, vbuf, countBuf, opts) as number;
		const n = countBuf.readUInt32LE(0);
		if (ret < 0 && ret !== -ENOENT) {
			if (ret === -ENOSPC && n === 0 && chunk < maxEntries * 2) {
				chunk *= 2;
				kbuf = Buffer.alloc(keySize * chunk);
				vbuf = Buffer.alloc(valueSize * chunk);
				continue;
			}
			check(ret, `bpf_map_lookup_batch(fd ${fd})`);
		}
		yield { keys: kbuf, values: vbuf, n };
		if (ret === -ENOENT) return;
		inBatch = copyBuf(outBatch);
	}
}

/**
 * bpf_map_lookup_batch over the whole map, handing each chunk's raw keys and
 * values (N entries, back to back, valid only during the call) to FN: a walk
 * of a large map without a Buffer per entry.
 */
export function mapLookupBatchEach(fd: number, keySize: number, valueSize: number, fn: (keys: Buffer, values: Buffer, n: number) => void): void {
	for (const c of batchChunks(fd, keySize, valueSize)) if (c.n > 0) fn(c.keys, c.values, c.n);
}

/**
 * mapLookupBatchEach that gives the event loop back between batches (one
 * batch of up to 4096 entries per turn): a walk of a million entries takes
 * ~0.7 s in the kernel, which an agent's event path must not wait for.
 * Resolves to the number of entries walked.
 */
export async function mapLookupBatchEachAsync(
	fd: number,
	keySize: number,
	valueSize: number,
	fn: (keys: Buffer, values: Buffer, n: number) => void,
	cancelled: () => boolean = () => false,
): Promise<number> {
	let walked = 0;
	for (const c of batchChunks(fd, keySize, valueSize)) {
		if (c.n > 0) fn(c.keys, c.values, c.n);
		walked += c.n;
		await new Promise<void>((resolve) => setImmediate(resolve));
		// (a walk nobody waits for any more ends here: what it found is not used)
		if (cancelled()) return walked;
	}
	return walked;
}

/**
 * bpf_map_update_batch. keys/values: arrays of fixed-size Buffers or one
 * concatenated Buffer each (count then required). Returns how many were written.
 */
export function mapUpdateBatch(
	fd: number,
	keys: Buffer[] | Buffer,
	values: Buffer[] | Buffer,
	count?: number,
	elemFlags: number = BPF_ANY,
): number {
	const n = count ?? (Array.isArray(keys) ? keys.length : undefined);
	if (n === undefined) throw new TypeError('mapUpdateBatch: count is required with concatenated buffers');
	if (n === 0) return 0;
	const kbuf = Array.isArray(keys) ? concatFixed(keys, keys[0]!.length, n, 'mapUpdateBatch keys') : keys;
	const vbuf = Array.isArray(values) ? concatFixed(values, values[0]!.length, n, 'mapUpdateBatch values') : values;
	const countBuf = Buffer.alloc(4);
	countBuf.writeUInt32LE(n, 0);
	check(f.map_update_batch(fd, kbuf, vbuf, countBuf, batchOpts(elemFlags)) as number, `bpf_map_update_batch(fd ${fd}, ${n})`);
	return countBuf.readUInt32LE(0);
}

/** bpf_map_delete_batch; a missing key fails the call with ENOENT. Returns how many were deleted. */
export function mapDeleteBatch(fd: number, keys: Buffer[] | Buffer, count?: number): number {
	const n = count ?? (Array.isArray(keys) ? keys.length : undefined);
	if (n === undefined) throw new TypeError('mapDeleteBatch: count is required with a concatenated buffer');
	if (n === 0) return 0;
	const kbuf = Array.isArray(keys) ? concatFixed(keys, keys[0]!.length, n, 'mapDeleteBatch keys') : keys;
	const countBuf = Buffer.alloc(4);
	countBuf.writeUInt32LE(n, 0);
	check(f.map_delete_batch(fd, kbuf, countBuf, batchOpts(0)) as number, `bpf_map_delete_batch(fd ${fd}, ${n})`);
	return countBuf.readUInt32LE(0);
}

// ---------------------------------------------------------------------------
// Info, pins, fds

export interface MapInfo {
	type: number;
	keySize: number;
	valueSize: number;
	maxEntries: number;
	flags: number;
	name: string;
	id: number;
}

export interface ProgInfo {
	id: number;
	name: string;
	type: number;
	/** 8-byte program tag as 16 hex digits (what bpftool prints). */
	tag: string;
	/** Translated (xlated) and JIT image sizes in bytes. */
	xlatedBytes: number;
	jitedBytes: number;
	/** Instructions the verifier processed to accept it (kernel 5.16+). */
	verifiedInsns?: number;
	/** Only counted while kernel.bpf_stats_enabled=1. */
	runTimeNs?: number;
	runCnt?: number;
}

function objInfo(fd: number, size: number, what: string): { buf: Buffer; len: number } {
	const buf = Buffer.alloc(size);
	const lenBuf = Buffer.alloc(4);
	lenBuf.writeUInt32LE(size, 0);
	check(f.obj_get_info(fd, buf, lenBuf) as number, `bpf_obj_get_info_by_fd(${what} fd ${fd})`);
	return { buf, len: lenBuf.readUInt32LE(0) };
}

export function mapInfo(fd: number): MapInfo {
	// struct bpf_map_info (88 bytes): type, id, key_size, value_size, max_entries, map_flags, name[16]...
	const { buf } = objInfo(fd, 88, 'map');
	return {
		type: buf.readUInt32LE(0),
		id: buf.readUInt32LE(4),
		keySize: buf.readUInt32LE(8),
		valueSize: buf.readUInt32LE(12),
		maxEntries: buf.readUInt32LE(16),
		flags: buf.readUInt32LE(20),
		name: cstrAt(buf, 24, 16),
	};
}

export function progInfo(fd: number): ProgInfo {
	// struct bpf_prog_info (232 bytes): type@0 id@4 tag[8]@8 jited_prog_len@16 xlated_prog_len@20
	// name[16]@64 run_time_ns@192 run_cnt@200 verified_insns@216
	const { buf, len } = objInfo(fd, 232, 'prog');
	const info: ProgInfo = {
		type: buf.readUInt32LE(0),
		id: buf.readUInt32LE(4),
		tag: buf.subarray(8, 16).toString('hex'),
		name: cstrAt(buf, 64, 16),
		jitedBytes: buf.readUInt32LE(16),
		xlatedBytes: buf.readUInt32LE(20),
	};
	if (len >= 208) {
		info.runTimeNs = Number(buf.readBigUInt64LE(192));
		info.runCnt = Number(buf.readBigUInt64LE(200));
	}
	if (len >= 220) info.verifiedInsns = buf.readUInt32LE(216);
	return info;
}

export interface LinkInfo {
	type: number;
	id: number;
	progId: number;
	/** tcx/xdp/netkit links: the device's ifindex now (0 once the device is gone: the link is defunct) */
	ifindex: number;
}

const BPF_LINK_TYPE_XDP = 6;
const BPF_LINK_TYPE_TCX = 11;
const BPF_LINK_TYPE_NETKIT = 13;

export function linkInfo(fd: number): LinkInfo {
	// struct bpf_link_info: type@0 id@4 prog_id@8, union@16 (tcx/xdp/netkit: ifindex first)
	const { buf } = objInfo(fd, 128, 'link');
	const type = buf.readUInt32LE(0);
	const onDevice = type === BPF_LINK_TYPE_XDP || type === BPF_LINK_TYPE_TCX || type === BPF_LINK_TYPE_NETKIT;
	return { type, id: buf.readUInt32LE(4), progId: buf.readUInt32LE(8), ifindex: onDevice ? buf.readUInt32LE(16) : 0 };
}

export function objPin(fd: number, path: string): void {
	check(f.obj_pin(fd, path) as number, `bpf_obj_pin(fd ${fd}, ${path})`);
}

/** New fd for a pinned map/program/link; the caller closes it. */
export function objGet(path: string): number {
	return check(f.obj_get(path) as number, `bpf_obj_get(${path})`);
}

/** Whether path lies on a bpf filesystem (false when it does not exist). */
export function pathIsBpffs(path: string): boolean {
	try {
		return statfsType(path) === BPF_FS_MAGIC;
	} catch (e) {
		if (e instanceof LibcError && (e.errno === ENOENT || e.errno === 20 /* ENOTDIR */)) return false;
		throw e;
	}
}

// ---------------------------------------------------------------------------
// Links, TCX and the clsact fallback

const BPF_XDP = 37;
export const BPF_TCX_INGRESS = 46;
const BPF_TCX_EGRESS = 47;
export const BPF_PROG_TYPE_SCHED_CLS = 3;

/** BPF_LSM_MAC: an LSM program's link (target 0: the hook comes from the program's BTF id) */
export const BPF_LSM_MAC = 27;

export type LinkKind = 'tcx_ingress' | 'tcx_egress' | 'xdp' | 'lsm';

const LINK_ATTACH: Record<LinkKind, number> = {
	tcx_ingress: BPF_TCX_INGRESS,
	tcx_egress: BPF_TCX_EGRESS,
	xdp: BPF_XDP,
	lsm: BPF_LSM_MAC,
};

/**
 * bpf_link_create for a netdev hook; returns the link fd (the link lives as
 * long as that fd or a pin of it). libbpf 1.1 predates TCX, but its
 * bpf_link_create passes unknown attach types through unchanged; the zeroed
 * tcx.relative_fd / expected_revision mean "append, any revision".
 */
export function linkCreate(progFd: number, ifindex: number, kind: LinkKind, opts: { xdpFlags?: number } = {}): number {
	const attach = LINK_ATTACH[kind];
	if (attach === undefined) throw new TypeError(`linkCreate: unknown kind ${String(kind)}`);
	const o = Buffer.alloc(64); // struct bpf_link_create_opts
	o.writeBigUInt64LE(64n, 0);
	if (kind === 'xdp' && opts.xdpFlags) o.writeUInt32LE(opts.xdpFlags, 8);
	return check(f.link_create(progFd, ifindex, attach, o) as number, `bpf_link_create(prog fd ${progFd}, ifindex ${ifindex}, ${kind})`);
}

/** Atomically swaps the program behind a link. */
export function linkUpdate(linkFd: number, newProgFd: number): void {
	check(f.link_update(linkFd, newProgFd, null) as number, `bpf_link_update(link fd ${linkFd}, prog fd ${newProgFd})`);
}

/** Detaches the program even while the link fd or pin still exists. */
export function linkDetach(linkFd: number): void {
	check(f.link_detach(linkFd) as number, `bpf_link_detach(link fd ${linkFd})`);
}

let tcxCache: boolean | undefined;

/**
 * Probes TCX without touching any device: link_create on ifindex 0 fails
 * with ENODEV where the kernel knows BPF_TCX_INGRESS (device lookup comes
 * after the attach type is accepted) and with EINVAL where it does not.
 */
export function tcxSupported(): boolean {
	if (tcxCache !== undefined) return tcxCache;
	// r0 = 0; exit
	const insns = Buffer.from([0xb7, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0]);
	const progFd = f.prog_load(BPF_PROG_TYPE_SCHED_CLS, 'ivb_tcx_probe', 'GPL', insns, 2, null) as number;
	check(progFd, 'tcxSupported: bpf_prog_load(sched_cls probe)');
	try {
		const ret = f.link_create(progFd, 0, BPF_TCX_INGRESS, null) as number;
		if (ret >= 0) {
			closeFd(ret);
			tcxCache = true;
		} else {
			tcxCache = ret === -ENODEV;
		}
	} finally {
		closeFd(progFd);
	}
	return tcxCache;
}

export type TcDirection = 'ingress' | 'egress';

const BPF_TC_INGRESS = 1;
const BPF_TC_EGRESS = 2;
const BPF_TC_F_REPLACE = 1;
/** Filter handle the clsact fallback always uses, so detach can find it. */
const TC_CLSACT_HANDLE = 1;
const TC_CLSACT_PRIORITY = 1;

function tcHook(ifindex: number, direction: TcDirection): Buffer {
	const h = Buffer.alloc(24); // struct bpf_tc_hook { sz; int ifindex; attach_point; u32 parent; }
	h.writeBigUInt64LE(24n, 0);
	h.writeInt32LE(ifindex, 8);
	h.writeUInt32LE(direction === 'ingress' ? BPF_TC_INGRESS : BPF_TC_EGRESS, 12);
	return h;
}

function tcOpts(progFd: number, flags: number, priority: number): Buffer {
	const o = Buffer.alloc(32); // struct bpf_tc_opts { sz; prog_fd; flags; prog_id; handle; priority; }
	o.writeBigUInt64LE(32n, 0);
	o.writeInt32LE(progFd, 8);
	o.writeUInt32LE(flags, 12);
	o.writeUInt32LE(TC_CLSACT_HANDLE, 20);
	o.writeUInt32LE(priority, 24);
	return o;
}

/**
 * Pre-TCX fallback: creates the clsact qdisc if missing and installs (or
 * replaces) a direct-action cls_bpf filter at handle 1 / priority. Runs over
 * netlink in the calling thread's netns.
 */
export function tcClsactAttach(progFd: number, ifindex: number, direction: TcDirection, priority: number = TC_CLSACT_PRIORITY): void {
	const hook = tcHook(ifindex, direction);
	const ret = f.tc_hook_create(hook) as number;
	if (ret !== -EEXIST) check(ret, `bpf_tc_hook_create(ifindex ${ifindex}, ${direction})`);
	check(
		f.tc_attach(hook, tcOpts(progFd, BPF_TC_F_REPLACE, priority)) as number,
		`bpf_tc_attach(prog fd ${progFd}, ifindex ${ifindex}, ${direction}, prio ${priority})`,
	);
}

/** Removes the filter tcClsactAttach installed; false if there was none. The clsact qdisc stays. */
export function tcClsactDetach(ifindex: number, direction: TcDirection, priority: number = TC_CLSACT_PRIORITY): boolean {
	const ret = f.tc_detach(tcHook(ifindex, direction), tcOpts(0, 0, priority)) as number;
	if (ret === -ENOENT || ret === -EINVAL) {
		// EINVAL: no clsact qdisc at all on this device.
		return false;
	}
	check(ret, `bpf_tc_detach(ifindex ${ifindex}, ${direction}, prio ${priority})`);
	return true;
}

// ---------------------------------------------------------------------------
// Test runs

export interface TestRunOptions {
	/** Packet, starting at the Ethernet header (at least 14 bytes for skb programs). */
	data: Buffer;
	/** Room for the output packet (default data.length + 512). */
	dataOutSize?: number;
	/**
	 * Context in: a struct __sk_buff (192 bytes, see encodeSkbCtx) for TC
	 * programs, struct xdp_md for XDP. Kernel rule for __sk_buff: only mark,
	 * priority, ingress_ifindex, ifindex, cb[], tstamp, wire_len, gso_segs,
	 * gso_size and hwtstamp may be non-zero; ifindex > 1 must name a device in
	 * the calling thread's netns (else ENODEV), otherwise loopback is used.
	 */
	ctxIn?: Buffer;
	/** Room for the output context (default ctxIn.length when ctxIn is given). */
	ctxOutSize?: number;
	repeat?: number;
	flags?: number;
}

export interface TestRunResult {
	retval: number;
	data: Buffer;
	ctx?: Buffer;
	/** Average per repetition. */
	durationNs: number;
}

/** bpf_prog_test_run_opts (struct bpf_test_run_opts, 80 bytes). */
export function progTestRun(progFd: number, opts: TestRunOptions): TestRunResult {
	const dataOut = Buffer.alloc(opts.dataOutSize ?? opts.data.length + 512);
	const ctxOutSize = opts.ctxOutSize ?? opts.ctxIn?.length ?? 0;
	const ctxOut = ctxOutSize > 0 ? Buffer.alloc(ctxOutSize) : null;
	const o = Buffer.alloc(80);
	o.writeBigUInt64LE(80n, 0);
	o.writeBigUInt64LE(addr(opts.data), 8);
	o.writeBigUInt64LE(addr(dataOut), 16);
	o.writeUInt32LE(opts.data.length, 24);
	o.writeUInt32LE(dataOut.length, 28);
	o.writeBigUInt64LE(addr(opts.ctxIn), 32);
	o.writeBigUInt64LE(addr(ctxOut), 40);
	o.writeUInt32LE(opts.ctxIn?.length ?? 0, 48);
	o.writeUInt32LE(ctxOut?.length ?? 0, 52);
	o.writeInt32LE(opts.repeat ?? 1, 60);
	o.writeUInt32LE(opts.flags ?? 0, 68);
	// Only raw addresses of data/ctx sit in `o`; they stay valid because no JS
	// (hence no GC) runs during this synchronous call.
	check(f.prog_test_run(progFd, o) as number, `bpf_prog_test_run_opts(prog fd ${progFd})`);
	const result: TestRunResult = {
		retval: o.readInt32LE(56),
		data: copyBuf(dataOut.subarray(0, o.readUInt32LE(28))),
		durationNs: o.readUInt32LE(64),
	};
	if (ctxOut) result.ctx = copyBuf(ctxOut.subarray(0, o.readUInt32LE(52)));
	return result;
}

export const SKB_CTX_SIZE = 192;

/** struct __sk_buff with the fields BPF_PROG_TEST_RUN accepts for skb programs. */
export function encodeSkbCtx(fields: {
	mark?: number;
	priority?: number;
	ingressIfindex?: number;
	ifindex?: number;
	cb?: number[];
	tstamp?: bigint;
	wireLen?: number;
	gsoSegs?: number;
	gsoSize?: number;
}): Buffer {
	const b = Buffer.alloc(SKB_CTX_SIZE);
	b.writeUInt32LE(fields.mark ?? 0, 8);
	b.writeUInt32LE(fields.priority ?? 0, 32);
	b.writeUInt32LE(fields.ingressIfindex ?? 0, 36);
	b.writeUInt32LE(fields.ifindex ?? 0, 40);
	(fields.cb ?? []).slice(0, 5).forEach((v, i) => b.writeUInt32LE(v, 48 + 4 * i));
	b.writeBigUInt64LE(fields.tstamp ?? 0n, 152);
	b.writeUInt32LE(fields.wireLen ?? 0, 160);
	b.writeUInt32LE(fields.gsoSegs ?? 0, 164);
	b.writeUInt32LE(fields.gsoSize ?? 0, 176);
	return b;
}

// ---------------------------------------------------------------------------
// Network namespaces
//
// setns() switches only the calling OS thread. koffi runs synchronous calls
// on the main JS thread, so libbpf netlink (tc), if_nametoindex, bpf_link
// ifindex resolution, fs.*Sync and child processes spawned from the main
// thread all follow it; libuv's thread pool (async fs, dns) and worker
// threads do not. Never await inside withNetns.

const SELF_NETNS = '/proc/thread-self/ns/net';

/** setns(2) into a namespace given by an open fd or a path (e.g. /run/netns/x). */
export function setns(fdOrPath: number | string, nstype: number = CLONE_NEWNET): void {
	if (typeof fdOrPath === 'number') {
		setnsFd(fdOrPath, nstype);
		return;
	}
	const fd = openRdonly(fdOrPath);
	try {
		setnsFd(fd, nstype);
	} finally {
		closeFd(fd);
	}
}

/** Inode of the calling thread's network namespace (identifies it). */
export function currentNetnsInode(): number {
	return fs.statSync(SELF_NETNS).ino;
}

/** Runs fn (synchronously) inside the netns at path, always switching back. */
export function withNetns<T>(path: string, fn: () => T): T {
	const saved = openRdonly(SELF_NETNS);
	try {
		setns(path, CLONE_NEWNET);
		try {
			const result = fn();
			if (result !== null && typeof result === 'object' && typeof (result as { then?: unknown }).then === 'function') {
				throw new TypeError('withNetns: fn must be synchronous (it returned a promise)');
			}
			return result;
		} finally {
			setnsFd(saved, CLONE_NEWNET);
		}
	} finally {
		closeFd(saved);
	}
}

/** if_nametoindex in the calling thread's netns; throws LibcError (ENODEV) if unknown. */
export function ifNameToIndex(name: string): number {
	const { index, errno } = ifNameToIndexRaw(name);
	if (index === 0) throw new LibcError(`if_nametoindex(${name})`, errno || ENODEV);
	return index;
}
