// SPDX-License-Identifier: GPL-2.0-only
/**
 * What this kernel lets ipvlan-bpf do, found by asking it: each probe loads
 * a few hand-assembled instructions (or looks in the kernel's BTF) and reads
 * the answer, errno included, so "unavailable" always comes with why
 * (EPERM from a sandbox or lockdown, EINVAL from a kernel too old, ...).
 *
 * Nothing is attached to any device: the TCX and netkit probes ask for a
 * link on ifindex 0, which a kernel that knows the attach type refuses with
 * ENODEV (the device lookup comes after the type is accepted) and one that
 * does not refuses with EINVAL. The LSM and fentry probes attach a program
 * that returns 0 (allow / nothing) and detach it at once.
 *
 * Used by `ipvlan-bpf version`; each probe is exported on its own for other
 * callers (test harnesses, VM checks).
 */
import { readFileSync } from 'node:fs';
import { release } from 'node:os';
import { LibcError, closeFd as closeSocket, describeErrno, netlinkAddMembership, netlinkSocket } from '../../../native/libc.js';
import {
  KernelBtf,
  closeFd,
  libbpfVersion,
  probeLinkCreate,
  probeProgLoad,
  type Insn,
  type ProbeOutcome,
} from '../../../native/probes.js';

export type FeatureName = 'btf' | 'tcx' | 'bpf_lsm' | 'tracing' | 'netkit' | 'conntrack_kfuncs' | 'rtnl_mcaddr';

export interface KernelFeature {
  name: FeatureName;
  available: boolean;
  /** what the kernel answered (e.g. "bpf_prog_load(lsm): Operation not permitted (EPERM)") */
  detail: string;
  /** what ipvlan-bpf does with it */
  usedFor: string;
}

export interface FeatureReport {
  kernel: string;
  libbpf: string;
  /** probes without CAP_BPF/CAP_SYS_ADMIN see EPERM everywhere */
  root: boolean;
  features: KernelFeature[];
}

// uapi numbers (include/uapi/linux/bpf.h)
const BPF_PROG_TYPE_SCHED_CLS = 3;
const BPF_PROG_TYPE_TRACING = 26;
const BPF_PROG_TYPE_LSM = 29;
const BPF_TRACE_FENTRY = 24;
const BPF_LSM_MAC = 27;
const BPF_TCX_INGRESS = 46;
const BPF_NETKIT_PRIMARY = 54;
const BPF_PSEUDO_KFUNC_CALL = 2;
const ENODEV = 19;
const EINVAL = 22;
const IPPROTO_TCP = 6;

/** instruction encodings used below (BPF_CLASS | BPF_OP | BPF_SRC) */
const OP = {
  movImm: 0xb7, // ALU64 MOV K: dst = imm
  movReg: 0xbf, // ALU64 MOV X: dst = src
  addImm: 0x07, // ALU64 ADD K: dst += imm
  stDw: 0x7a, // ST MEM DW: *(u64 *)(dst + off) = imm
  stW: 0x62, // ST MEM W: *(u32 *)(dst + off) = imm
  stB: 0x72, // ST MEM B: *(u8 *)(dst + off) = imm
  call: 0x85,
  jeqImm: 0x15, // JMP JEQ K: if dst == imm goto +off
  exit: 0x95,
} as const;
const R0 = 0;
const R1 = 1;
const R2 = 2;
const R3 = 3;
const R4 = 4;
const R5 = 5;
const R6 = 6;
const FP = 10;

const insn = (code: number, dst = 0, src = 0, off = 0, imm = 0): Insn => ({ code, dst, src, off, imm });

/** `return 0`: allow (LSM), nothing (fentry), TC_ACT_OK (tc) */
const RETURN_ZERO: readonly Insn[] = [insn(OP.movImm, R0), insn(OP.exit)];

/** A kernel function an LSM program can attach to; every BPF LSM kernel has it. */
const LSM_HOOK = 'bpf_lsm_file_open';
/** The kernel's own fentry test target (net/bpf/test_run.c): only BPF_PROG_TEST_RUN calls it. */
const FENTRY_TARGET = 'bpf_fentry_test1';

function refusal(op: string, errno: number, log = ''): string {
  return `${op}: ${describeErrno(errno)}${log ? ` — verifier: ${log}` : ''}`;
}

function loaded(o: ProbeOutcome, op: string): { fd: number } | { detail: string } {
  return o.ok ? { fd: o.fd } : { detail: refusal(op, o.errno, o.log) };
}

/** The kernel's BTF as loadVmlinux() gave it, or why not. */
type VmlinuxBtf = ReturnType<typeof KernelBtf.loadVmlinux>;

/**
 * Runs FN with the kernel's BTF, or answers for it when the kernel has none.
 * SHARED: probeFeatures() parses vmlinux's BTF once for every probe (each
 * parse costs ~9 ms, most of `ipvlan-bpf version`); alone, a probe loads and
 * frees its own.
 */
function withBtf(name: FeatureName, usedFor: string, fn: (btf: KernelBtf) => KernelFeature, shared?: VmlinuxBtf): KernelFeature {
  const btf = shared ?? KernelBtf.loadVmlinux();
  if (!(btf instanceof KernelBtf)) {
    return { name, available: false, usedFor, detail: `needs the kernel's BTF, which is missing (${describeErrno(btf.errno)})` };
  }
  try {
    return fn(btf);
  } finally {
    if (!shared) btf.close();
  }
}

function probeBtf(shared?: VmlinuxBtf): KernelFeature {
  const usedFor = 'CO-RE: the shipped objects are relocated to this kernel at load';
  const btf = shared ?? KernelBtf.loadVmlinux();
  if (!(btf instanceof KernelBtf)) {
    return { name: 'btf', available: false, usedFor, detail: `/sys/kernel/btf/vmlinux: ${describeErrno(btf.errno)} (CONFIG_DEBUG_INFO_BTF)` };
  }
  if (!shared) btf.close();
  return { name: 'btf', available: true, usedFor, detail: '/sys/kernel/btf/vmlinux' };
}

/** A tc program asks for a link of ATTACHTYPE on ifindex 0: ENODEV means the type is known. */
function probeDeviceLinkType(name: FeatureName, attachType: number, typeName: string, usedFor: string, absent: string): KernelFeature {
  const prog = loaded(probeProgLoad({ progType: BPF_PROG_TYPE_SCHED_CLS, name: 'ivb_probe_tc', insns: RETURN_ZERO }), 'bpf_prog_load(sched_cls)');
  if ('detail' in prog) return { name, available: false, usedFor, detail: prog.detail };
  try {
    const ret = probeLinkCreate(prog.fd, 0, attachType);
    if (ret >= 0) {
      closeFd(ret);
      return { name, available: true, usedFor, detail: `bpf_link_create(${typeName}) accepted` };
    }
    if (-ret === ENODEV) return { name, available: true, usedFor, detail: `kernel knows ${typeName} (probed on no device: ENODEV)` };
    if (-ret === EINVAL) return { name, available: false, usedFor, detail: `bpf_link_create(${typeName}): EINVAL — ${absent}` };
    return { name, available: false, usedFor, detail: refusal(`bpf_link_create(${typeName})`, -ret) };
  } finally {
    closeFd(prog.fd);
  }
}

export function probeTcx(): KernelFeature {
  return probeDeviceLinkType(
    'tcx',
    BPF_TCX_INGRESS,
    'BPF_TCX_INGRESS',
    'attaching the datapath (TCX links; required)',
    'no TCX in this kernel (6.6+)',
  );
}

export function probeNetkit(): KernelFeature {
  return probeDeviceLinkType(
    'netkit',
    BPF_NETKIT_PRIMARY,
    'BPF_NETKIT_PRIMARY',
    'not used yet (slaves are veth pairs)',
    'kernel built without CONFIG_NETKIT, or older than 6.7',
  );
}

/** Loads PROG and attaches it (then detaches): available only when both work. */
function loadAndAttach(name: FeatureName, usedFor: string, what: string, prog: Parameters<typeof probeProgLoad>[0], attachType: number): KernelFeature {
  const p = loaded(probeProgLoad(prog), `bpf_prog_load(${what})`);
  if ('detail' in p) return { name, available: false, usedFor, detail: p.detail };
  try {
    const link = probeLinkCreate(p.fd, 0, attachType);
    if (link < 0) return { name, available: false, usedFor, detail: refusal(`bpf_link_create(${what})`, -link) };
    closeFd(link);
    return { name, available: true, usedFor, detail: `${what} program loaded and attached` };
  } finally {
    closeFd(p.fd);
  }
}

/** The active LSMs, when securityfs is mounted (null otherwise). */
function activeLsms(): string[] | null {
  try {
    return readFileSync('/sys/kernel/security/lsm', 'utf8').trim().split(',');
  } catch {
    return null;
  }
}

export function probeBpfLsm(shared?: VmlinuxBtf): KernelFeature {
  const usedFor = 'the netlink guard (refuses, at netlink time, what the kernel driver refuses)';
  return withBtf('bpf_lsm', usedFor, (btf) => {
    const hook = btf.funcId(LSM_HOOK);
    if (hook === null) return { name: 'bpf_lsm', available: false, usedFor, detail: `no ${LSM_HOOK} in the kernel's BTF (CONFIG_BPF_LSM)` };
    const r = loadAndAttach('bpf_lsm', usedFor, `lsm/${LSM_HOOK}`, { progType: BPF_PROG_TYPE_LSM, name: 'ivb_probe_lsm', insns: RETURN_ZERO, expectedAttachType: BPF_LSM_MAC, attachBtfId: hook }, BPF_LSM_MAC);
    const lsms = activeLsms();
    if (r.available && lsms && !lsms.includes('bpf')) {
      return { ...r, available: false, detail: `attached, but "bpf" is not among the active LSMs (${lsms.join(',')}): add it to the lsm= boot parameter` };
    }
    return r;
  }, shared);
}

export function probeTracing(shared?: VmlinuxBtf): KernelFeature {
  const usedFor = 'not used by the datapath (fentry/fexit programs)';
  return withBtf('tracing', usedFor, (btf) => {
    const target = btf.funcId(FENTRY_TARGET);
    if (target === null) return { name: 'tracing', available: false, usedFor, detail: `no ${FENTRY_TARGET} in the kernel's BTF` };
    return loadAndAttach('tracing', usedFor, `fentry/${FENTRY_TARGET}`, { progType: BPF_PROG_TYPE_TRACING, name: 'ivb_probe_fentry', insns: RETURN_ZERO, expectedAttachType: BPF_TRACE_FENTRY, attachBtfId: target }, BPF_TRACE_FENTRY);
  }, shared);
}

/**
 * A tc program that calls bpf_skb_ct_lookup() on a zeroed IPv4 tuple and
 * releases what it got: it loads only where the kernel lets tc programs call
 * the conntrack kfuncs. Nothing runs it.
 */
function conntrackLookupProgram(lookupId: number, releaseId: number): Insn[] {
  const TUPLE = -16; // struct bpf_sock_tuple (ipv4: 12 bytes), zeroed
  const OPTS = -32; // struct bpf_ct_opts (12 bytes in its first form), zeroed
  const SIZE = 12;
  return [
    insn(OP.movReg, R6, R1),
    insn(OP.stDw, FP, 0, TUPLE), insn(OP.stDw, FP, 0, TUPLE + 8),
    insn(OP.stDw, FP, 0, OPTS), insn(OP.stDw, FP, 0, OPTS + 8),
    insn(OP.stW, FP, 0, OPTS, -1), // opts.netns_id = BPF_F_CURRENT_NETNS
    insn(OP.stB, FP, 0, OPTS + 8, IPPROTO_TCP), // opts.l4proto
    insn(OP.movReg, R1, R6),
    insn(OP.movReg, R2, FP), insn(OP.addImm, R2, 0, 0, TUPLE),
    insn(OP.movImm, R3, 0, 0, SIZE),
    insn(OP.movReg, R4, FP), insn(OP.addImm, R4, 0, 0, OPTS),
    insn(OP.movImm, R5, 0, 0, SIZE),
    insn(OP.call, 0, BPF_PSEUDO_KFUNC_CALL, 0, lookupId),
    insn(OP.jeqImm, R0, 0, 2, 0), // NULL: nothing to release
    insn(OP.movReg, R1, R0),
    insn(OP.call, 0, BPF_PSEUDO_KFUNC_CALL, 0, releaseId),
    ...RETURN_ZERO,
  ];
}

export function probeConntrackKfuncs(shared?: VmlinuxBtf): KernelFeature {
  const usedFor = 'not used yet (conntrack lookups from tc programs)';
  return withBtf('conntrack_kfuncs', usedFor, (btf) => {
    const lookup = btf.funcId('bpf_skb_ct_lookup');
    const release = btf.funcId('bpf_ct_release');
    if (lookup === null || release === null) {
      return { name: 'conntrack_kfuncs', available: false, usedFor, detail: 'no bpf_skb_ct_lookup in the kernel\'s BTF (nf_conntrack as a module, not loaded, or CONFIG_NF_CONNTRACK off)' };
    }
    const r = probeProgLoad({ progType: BPF_PROG_TYPE_SCHED_CLS, name: 'ivb_probe_ct', insns: conntrackLookupProgram(lookup, release) });
    if (!r.ok) return { name: 'conntrack_kfuncs', available: false, usedFor, detail: refusal('bpf_prog_load(tc calling bpf_skb_ct_lookup)', r.errno, r.log) };
    closeFd(r.fd);
    return { name: 'conntrack_kfuncs', available: true, usedFor, detail: 'a tc program calling bpf_skb_ct_lookup/bpf_ct_release loaded' };
  }, shared);
}

/**
 * RTNLGRP_IPV4_MCADDR/RTNLGRP_IPV6_MCADDR (6.13+): rtnetlink reports a
 * device's IP group joins and leaves (RTM_NEWMULTICAST/RTM_DELMULTICAST).
 * Older kernels refuse the groups with EINVAL.
 */
export function probeRtnlMcaddr(): KernelFeature {
  const usedFor = "slaves' multicast filters and their groups on the master follow joins at once (without: re-read every 2 s)";
  const fd = netlinkSocket(0);
  try {
    netlinkAddMembership(fd, 37);
    netlinkAddMembership(fd, 38);
    return { name: 'rtnl_mcaddr', available: true, usedFor, detail: 'a NETLINK_ROUTE socket joined groups 37 and 38 (RTNLGRP_IPV4/IPV6_MCADDR)' };
  } catch (e) {
    if (!(e instanceof LibcError)) throw e;
    return { name: 'rtnl_mcaddr', available: false, usedFor, detail: e.message };
  } finally {
    closeSocket(fd);
  }
}

/** Every probe, in the order `ipvlan-bpf version` prints them. */
export function probeFeatures(): FeatureReport {
  const btf = KernelBtf.loadVmlinux();
  try {
    return {
      kernel: release(),
      libbpf: libbpfVersion(),
      root: process.geteuid?.() === 0,
      features: [probeBtf(btf), probeTcx(), probeBpfLsm(btf), probeTracing(btf), probeNetkit(), probeConntrackKfuncs(btf), probeRtnlMcaddr()],
    };
  } finally {
    if (btf instanceof KernelBtf) btf.close();
  }
}
