// SPDX-License-Identifier: GPL-2.0-only
/*
 * The raw libbpf calls a kernel feature probe needs (controller/src/platform/
 * features.ts): load a few hand-assembled instructions with a given program
 * type, expected attach type and BTF target, try a link, look a function up
 * in the kernel's BTF. Unlike libbpf.ts these never throw on a refusal: the
 * refusal (its errno and the verifier's words) is the probe's answer.
 *
 * struct bpf_prog_load_opts offsets were checked with offsetof() against
 * /usr/include/bpf/bpf.h of libbpf 1.1.2 on x86_64: sz 104, expected_attach_type
 * 12, attach_btf_id 32, log_level 88, log_size 92, log_buf 96.
 */
import koffi from 'koffi';
import { closeFd, lastErrno } from './libc.js';

const lib = koffi.load('libbpf.so.1');

type Ptr = bigint;

const f = {
	prog_load: lib.func(
		'int bpf_prog_load(int type, const char *name, const char *license, void *insns, size_t cnt, void *opts)',
	),
	link_create: lib.func('int bpf_link_create(int prog_fd, int target_fd, int attach_type, void *opts)'),
	load_vmlinux_btf: lib.func('void *btf__load_vmlinux_btf(void)'),
	btf_find_by_name_kind: lib.func('int32_t btf__find_by_name_kind(void *btf, const char *name, uint32_t kind)'),
	btf_free: lib.func('void btf__free(void *btf)'),
	version_string: lib.func('const char *libbpf_version_string(void)'),
};

const PROG_LOAD_OPTS_SZ = 104;
const PROG_LOAD_OPTS_EXPECTED_ATTACH_TYPE = 12;
const PROG_LOAD_OPTS_ATTACH_BTF_ID = 32;
const PROG_LOAD_OPTS_LOG_LEVEL = 88;
const PROG_LOAD_OPTS_LOG_SIZE = 92;
const PROG_LOAD_OPTS_LOG_BUF = 96;
/** a probe program is a handful of instructions: its log is a few lines */
const PROBE_LOG_SIZE = 16 * 1024;
const BTF_KIND_FUNC = 12;

/** One eBPF instruction (struct bpf_insn). */
export interface Insn {
	code: number;
	dst: number;
	src: number;
	off: number;
	imm: number;
}

/** struct bpf_insn array, as the kernel reads it (dst_reg in the low nibble). */
function encodeInsns(insns: readonly Insn[]): Buffer {
	const b = Buffer.alloc(insns.length * 8);
	insns.forEach((i, n) => {
		b.writeUInt8(i.code, n * 8);
		b.writeUInt8(((i.src & 0xf) << 4) | (i.dst & 0xf), n * 8 + 1);
		b.writeInt16LE(i.off, n * 8 + 2);
		b.writeInt32LE(i.imm, n * 8 + 4);
	});
	return b;
}

export interface ProbeProgram {
	progType: number;
	name: string;
	insns: readonly Insn[];
	expectedAttachType?: number;
	/** the kernel function (vmlinux BTF id) an LSM/tracing program attaches to */
	attachBtfId?: number;
}

/** What the kernel answered: an fd the caller closes, or the errno and the verifier's last line. */
export type ProbeOutcome = { ok: true; fd: number } | { ok: false; errno: number; log: string };

/** bpf_prog_load of a probe program; a refusal is an answer, not an exception. */
export function probeProgLoad(p: ProbeProgram): ProbeOutcome {
	const insns = encodeInsns(p.insns);
	const log = Buffer.alloc(PROBE_LOG_SIZE);
	const o = Buffer.alloc(PROG_LOAD_OPTS_SZ);
	o.writeBigUInt64LE(BigInt(PROG_LOAD_OPTS_SZ), 0);
	o.writeUInt32LE(p.expectedAttachType ?? 0, PROG_LOAD_OPTS_EXPECTED_ATTACH_TYPE);
	o.writeUInt32LE(p.attachBtfId ?? 0, PROG_LOAD_OPTS_ATTACH_BTF_ID);
	o.writeUInt32LE(1, PROG_LOAD_OPTS_LOG_LEVEL);
	o.writeUInt32LE(PROBE_LOG_SIZE, PROG_LOAD_OPTS_LOG_SIZE);
	o.writeBigUInt64LE(koffi.address(log), PROG_LOAD_OPTS_LOG_BUF);
	const fd = f.prog_load(p.progType, p.name, 'GPL', insns, p.insns.length, o) as number;
	if (fd >= 0) return { ok: true, fd };
	const errno = -fd; // libbpf 1.x: -errno
	const nul = log.indexOf(0);
	const text = log.toString('utf8', 0, nul < 0 ? log.length : nul);
	const lines = text.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !/^processed \d+ insns/.test(l));
	return { ok: false, errno, log: lines[lines.length - 1] ?? '' };
}

/** bpf_link_create with the given attach type: a link fd (the caller closes it) or -errno. */
export function probeLinkCreate(progFd: number, target: number, attachType: number): number {
	return f.link_create(progFd, target, attachType, null) as number;
}

export { closeFd };

/** The running kernel's BTF (/sys/kernel/btf/vmlinux), for looking up attach targets and kfuncs. */
export class KernelBtf {
	#btf: Ptr | null;

	private constructor(btf: Ptr) {
		this.#btf = btf;
	}

	/** null with the errno when the kernel exposes no BTF. */
	static loadVmlinux(): KernelBtf | { errno: number } {
		const p = f.load_vmlinux_btf() as Ptr | null;
		if (p === null || p === 0n) return { errno: lastErrno() || 2 };
		return new KernelBtf(p);
	}

	/** The BTF id of kernel function NAME, or null when the kernel has none by that name. */
	funcId(name: string): number | null {
		if (this.#btf === null) throw new Error('KernelBtf used after close()');
		const id = f.btf_find_by_name_kind(this.#btf, name, BTF_KIND_FUNC) as number;
		return id > 0 ? id : null;
	}

	close(): void {
		if (this.#btf !== null) f.btf_free(this.#btf);
		this.#btf = null;
	}
}

/** "v1.1": the libbpf this process loaded. */
export function libbpfVersion(): string {
	return (f.version_string() as string | null) ?? 'unknown';
}
