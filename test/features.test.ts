// SPDX-License-Identifier: GPL-2.0-only
/*
 * The kernel feature probes (controller/src/platform/features.ts) against
 * independent evidence from the same kernel: TCX against the datapath's own
 * probe, netkit against creating a netkit device in a throw-away namespace,
 * BPF LSM against loading the project's real LSM object (bpf/guard.bpf.o),
 * and the kfunc probe against a program that calls a function that is not
 * a kfunc (which must be refused: the probe can say no).
 */
import { describe, it, expect, afterAll } from 'vitest';
import { join } from 'node:path';
import { release } from 'node:os';
import { BpfError, BpfObject, errnoName, tcxSupported } from '../native/libbpf.js';
import { KernelBtf, closeFd, probeProgLoad } from '../native/probes.js';
import { probeBpfLsm, probeConntrackKfuncs, probeFeatures, probeNetkit, probeRtnlMcaddr, probeTcx, probeTracing } from '../controller/src/platform/features.js';
import { REPO, TestEnv, ipTry } from './lib/topo.js';

const env = new TestEnv('features', 'ivbf');

afterAll(async () => {
  await env.cleanup();
});

describe('kernel feature probes', () => {
  it('report every feature with what the kernel answered', () => {
    const r = probeFeatures();
    expect(r.features.map((f) => f.name)).toEqual(['btf', 'tcx', 'bpf_lsm', 'tracing', 'netkit', 'conntrack_kfuncs', 'rtnl_mcaddr']);
    for (const f of r.features) {
      expect(f.detail.length, f.name).toBeGreaterThan(0);
      expect(f.usedFor.length, f.name).toBeGreaterThan(0);
    }
    expect(r.libbpf).toMatch(/^v\d+\.\d+/);
  });

  it('TCX: the same answer as the datapath attach code', () => {
    expect(probeTcx().available).toBe(tcxSupported());
  });

  it('rtnl_mcaddr: available exactly on kernels from 6.13 (RTNLGRP_IPV4/IPV6_MCADDR)', () => {
    const [major, minor] = release().split('.').map(Number) as [number, number];
    expect(probeRtnlMcaddr().available).toBe(major > 6 || (major === 6 && minor >= 13));
  });

  it('netkit: available exactly when the kernel creates a netkit device', () => {
    const ns = env.netns('nk');
    const made = ipTry(ns, 'link', 'add', 'nk0', 'type', 'netkit');
    const p = probeNetkit();
    expect(p.available, `ip link add type netkit: ${made.status} ${made.stderr.trim()}`).toBe(made.status === 0);
  });

  it('BPF LSM: unavailable, with the errno, wherever the guard object cannot load', () => {
    const obj = BpfObject.open(join(REPO, 'bpf', 'guard.bpf.o'));
    let refused: number | null = null;
    try {
      obj.load();
    } catch (e) {
      if (!(e instanceof BpfError)) throw e;
      refused = e.errno;
    } finally {
      obj.close();
    }
    const p = probeBpfLsm();
    if (refused !== null) {
      expect(p.available).toBe(false);
      expect(p.detail).toContain(`(${errnoName(refused)})`);
    }
    console.log(`guard.bpf.o load: ${refused === null ? 'ok' : errnoName(refused)}; probe: ${p.available} (${p.detail})`);
  });

  it('tracing: an answer with its reason', () => {
    const p = probeTracing();
    if (!p.available) expect(p.detail).toMatch(/\(E[A-Z0-9]+\)|no /);
    console.log(`tracing: ${p.available} (${p.detail})`);
  });

  it('kfunc probe: a call to a kernel function that is not a kfunc is refused', () => {
    const btf = KernelBtf.loadVmlinux();
    if (!(btf instanceof KernelBtf)) return; // no BTF: the probe says so itself (first test)
    const notKfunc = btf.funcId('bpf_fentry_test1');
    btf.close();
    expect(notKfunc).not.toBeNull();
    const r = probeProgLoad({
      progType: 3, // sched_cls
      name: 'ivb_probe_neg',
      insns: [
        { code: 0x85, dst: 0, src: 2, off: 0, imm: notKfunc! }, // call kfunc by BTF id
        { code: 0xb7, dst: 0, src: 0, off: 0, imm: 0 },
        { code: 0x95, dst: 0, src: 0, off: 0, imm: 0 },
      ],
    });
    if (r.ok) closeFd(r.fd);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.log).toMatch(/kernel function|kfunc|not allowed/i);
    // and the real probe on this kernel: the conntrack kfuncs load where the kernel's BTF declares them
    const ct = probeConntrackKfuncs();
    console.log(`conntrack kfuncs: ${ct.available} (${ct.detail}); non-kfunc call: ${r.ok ? 'loaded' : r.log}`);
  });
});
