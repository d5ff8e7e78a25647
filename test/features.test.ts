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
import { release, tmpdir } from 'node:os';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { BpfError, BpfObject, errnoName, tcxSupported } from '../native/libbpf.js';
import { KernelBtf, closeFd, probeProgLoad } from '../native/probes.js';
import { probeBpfLsm, probeConntrackKfuncs, probeFeatures, probeNetkit, probeRtnlMcaddr, probeTcx, probeTracing } from '../controller/src/platform/features.js';
import { REPO, TestEnv, ipTry, run } from './lib/topo.js';

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

describe('`version` probes once per boot (platform/feature-cache.ts)', () => {
  interface VersionJson {
    features: Record<string, { available: boolean; detail: string }> | null;
    featuresProbedAt?: string;
    featuresCached?: boolean;
  }
  const cacheDir = mkdtempSync(join(tmpdir(), 'ivb-features-'));
  env.onCleanup(() => rmSync(cacheDir, { recursive: true, force: true }));
  const version = (dir: string, ...args: string[]): VersionJson => {
    const r = run(process.execPath, [join(REPO, 'bin', 'ipvlan-bpf.js'), '-j', 'version', ...args], { env: { ...env.env, IPVLAN_BPF_CACHE_DIR: dir } });
    expect(r.status, r.stderr).toBe(0);
    return JSON.parse(r.stdout) as VersionJson;
  };
  const file = join(cacheDir, 'features.json');

  it('the first probes and records, the next reuse it; --probe probes again', () => {
    const first = version(cacheDir);
    expect(first.featuresCached).toBe(false);
    expect(first.features).not.toBeNull();
    const st = statSync(file);
    expect({ uid: st.uid, mode: st.mode & 0o777 }).toEqual({ uid: 0, mode: 0o644 });
    const second = version(cacheDir);
    expect(second.featuresCached).toBe(true);
    expect(second.featuresProbedAt).toBe(first.featuresProbedAt);
    expect(second.features).toEqual(first.features);
    const fresh = version(cacheDir, '--probe');
    expect(fresh.featuresCached).toBe(false);
    expect(fresh.featuresProbedAt! > first.featuresProbedAt!).toBe(true);
    expect(fresh.features).toEqual(first.features);
    expect(version(cacheDir).featuresProbedAt).toBe(fresh.featuresProbedAt);
  });

  it('a record of another boot, a torn file or one writable by others is not believed: probed again and replaced', () => {
    const rec = JSON.parse(readFileSync(file, 'utf8')) as { key: string; probedAt: string };
    const key = JSON.parse(rec.key) as Record<string, unknown>;
    writeFileSync(file, JSON.stringify({ ...rec, key: JSON.stringify({ ...key, boot: 'another-boot' }) }));
    expect(version(cacheDir).featuresCached).toBe(false);
    expect(version(cacheDir).featuresCached).toBe(true);
    // a libbpf other than the one the probes ran with (upgraded, removed, hidden)
    const good = JSON.parse(readFileSync(file, 'utf8')) as { libbpf: { path: string; stamp: string } };
    expect(good.libbpf.path).toMatch(/\/libbpf\.so\.1/);
    writeFileSync(file, JSON.stringify({ ...good, libbpf: { ...good.libbpf, stamp: 'another-file' } }));
    expect(version(cacheDir).featuresCached).toBe(false);
    expect(version(cacheDir).featuresCached).toBe(true);
    writeFileSync(file, '{"key": "torn');
    expect(version(cacheDir).featuresCached).toBe(false);
    expect(version(cacheDir).featuresCached).toBe(true);
    chmodSync(file, 0o666);
    expect(version(cacheDir).featuresCached).toBe(false);
    expect(statSync(file).mode & 0o777).toBe(0o644);
  });

  it('where the cache cannot be written, every run probes and answers the same', () => {
    const blocker = join(cacheDir, 'not-a-dir');
    writeFileSync(blocker, '');
    const a = version(join(blocker, 'cache'));
    const b = version(join(blocker, 'cache'));
    expect([a.featuresCached, b.featuresCached]).toEqual([false, false]);
    expect(b.features).toEqual(a.features);
  });

  it('an unknown argument is refused, naming it', () => {
    const r = run(process.execPath, [join(REPO, 'bin', 'ipvlan-bpf.js'), 'version', '--probes'], { env: { ...env.env, IPVLAN_BPF_CACHE_DIR: cacheDir } });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/version: unknown argument "--probes"/);
  });
});

describe('a refused netlink guard is remembered for the boot, only in a record we trust (bpf/datapath.ts ensureGuard)', () => {
  const cacheDir = mkdtempSync(join(tmpdir(), 'ivb-guardcache-'));
  const scratchTmp = mkdtempSync(join(tmpdir(), 'ivb-guardtmp-'));
  env.onCleanup(() => {
    rmSync(cacheDir, { recursive: true, force: true });
    rmSync(scratchTmp, { recursive: true, force: true });
  });
  const file = join(cacheDir, 'guard-refused.json');
  /** ensureGuard in a new process (the module remembers a refusal for its own life) */
  const guard = (): { ok: boolean; why: string } => {
    const datapath = join(REPO, 'dist', 'controller', 'src', 'bpf', 'datapath.js');
    const code = `import { ensureGuard, guardRefusalReason } from ${JSON.stringify(datapath)};\nconsole.log(JSON.stringify({ ok: ensureGuard(), why: guardRefusalReason() }));`;
    const r = run(process.execPath, ['--input-type=module', '-e', code], { env: { ...env.env, IPVLAN_BPF_CACHE_DIR: cacheDir, TMPDIR: scratchTmp } });
    expect(r.status, r.stderr).toBe(0);
    return JSON.parse(r.stdout) as { ok: boolean; why: string };
  };
  const lsm = probeBpfLsm().available;

  it.runIf(lsm)('a kernel that runs the guard: attached, nothing recorded', () => {
    const g = guard();
    expect(g.ok).toBe(true);
    expect(() => statSync(file)).toThrow(/ENOENT/);
    rmSync(join(env.pinDir, 'guard_link'), { force: true });
  });

  it.runIf(!lsm)("the first refusal is recorded with the kernel's reason and used by the next command", () => {
    const first = guard();
    expect(first.ok).toBe(false);
    expect(first.why).toMatch(/\(E[A-Z]+\)/);
    const st = statSync(file);
    expect({ uid: st.uid, mode: st.mode & 0o777 }).toEqual({ uid: 0, mode: 0o644 });
    // a record of ours is the answer: the next command does not load the object
    const rec = JSON.parse(readFileSync(file, 'utf8')) as { key: string; reason: string };
    writeFileSync(file, JSON.stringify({ ...rec, reason: 'the recorded reason' }));
    expect(guard()).toEqual({ ok: false, why: 'the recorded reason' });
  });

  it.runIf(!lsm)('not believed: writable by others, another boot, a rebuilt object; the old /tmp marker is not read', () => {
    const rec = JSON.parse(readFileSync(file, 'utf8')) as { key: string; reason: string };
    const planted = (r: object, mode = 0o644): void => {
      writeFileSync(file, JSON.stringify(r));
      chmodSync(file, mode);
    };
    // anyone could have written it: the kernel is asked again, and the record replaced
    planted({ ...rec, reason: 'planted' }, 0o666);
    const asked = guard();
    expect(asked.why).not.toBe('planted');
    expect(asked.why).toMatch(/\(E[A-Z]+\)/);
    expect(statSync(file).mode & 0o777).toBe(0o644);
    const key = JSON.parse(rec.key) as Record<string, unknown>;
    planted({ ...rec, key: JSON.stringify({ ...key, boot: 'another-boot' }), reason: 'planted' });
    expect(guard().why).not.toBe('planted');
    planted({ ...rec, key: JSON.stringify({ ...key, build: `${String(key.build)}-before-a-rebuild` }), reason: 'planted' });
    expect(guard().why).not.toBe('planted');
    // the marker earlier builds kept in the world-writable $TMPDIR, per kernel release only
    rmSync(file);
    writeFileSync(join(scratchTmp, 'ipvlan-bpf-guard-refused'), `${release()}\nplanted\n`);
    const fresh = guard();
    expect(fresh.why).not.toBe('planted');
    expect(fresh.why).toMatch(/\(E[A-Z]+\)/);
  });
});
