// SPDX-License-Identifier: GPL-2.0-only
/**
 * The kernel features as probed once per boot. Probing parses the kernel's
 * BTF with libbpf (btf__load_vmlinux_btf: 22–48 ms for this 6.18 kernel's
 * 126k types, measured with a C program), which alone was most of
 * `ipvlan-bpf version`. What the probes see cannot change while the kernel
 * runs, except through what the key below holds:
 * - the boot (boot_id) and the kernel release;
 * - the modules' BTF (/sys/kernel/btf lists one file per loaded module with
 *   BTF: a module loaded later can bring kfuncs);
 * - lockdown (/sys/kernel/security/lockdown: it can be raised while running);
 * - who asks (the effective uid: probes need CAP_BPF) and which libbpf and
 *   which build of ours probes.
 *
 * The record also names the libbpf the probes ran with (its path, as this
 * process mapped it, and its inode, size and times): while that file is
 * unchanged, `version` knows libbpf is there without loading the binding
 * (koffi, ~10 ms). Replaced, removed or hidden, the record is not used.
 *
 * The netlink guard's refusal is kept the same way (`cachedRefusal`): a
 * kernel that refused to load or attach an object this boot, under the same
 * key, refuses it again, and each command should not pay for asking.
 *
 * Each record is one JSON file in /var/cache/ipvlan-bpf (IPVLAN_BPF_CACHE_DIR
 * for another folder). A file that is not a regular file owned by us, or is
 * writable by others, is not read; one that does not parse or whose key
 * differs is probed again and replaced (written to a new name, then renamed).
 * Where the folder cannot be written (a read-only root, not root) the probe
 * simply runs every time.
 */
import { lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { release } from 'node:os';
import { join } from 'node:path';
import { isSysError } from '../errors.js';
import type { FeatureReport } from './features.js';

function featureCacheDir(): string {
  return process.env.IPVLAN_BPF_CACHE_DIR ?? '/var/cache/ipvlan-bpf';
}

function cachePath(file: string): string {
  return join(featureCacheDir(), file);
}

const FEATURES_FILE = 'features.json';

/** one line of a file under /proc or /sys, or '' where it does not exist */
function readOptional(path: string): string {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch (e) {
    if (isSysError(e, 'ENOENT', 'EACCES', 'EPERM', 'ENOTDIR')) return '';
    throw e;
  }
}

function listOptional(dir: string): string[] {
  try {
    return readdirSync(dir).sort();
  } catch (e) {
    if (isSysError(e, 'ENOENT', 'EACCES', 'EPERM', 'ENOTDIR')) return [];
    throw e;
  }
}

/** What the probes' answers depend on; BUILD names our objects' build (build-info's id). */
function featureCacheKey(build: string): string {
  return JSON.stringify({
    boot: readOptional('/proc/sys/kernel/random/boot_id'),
    kernel: release(),
    btf: listOptional('/sys/kernel/btf'),
    lockdown: readOptional('/sys/kernel/security/lockdown'),
    euid: process.geteuid?.() ?? -1,
    build,
  });
}

/** A library file as this process mapped it: where, and what it was then. */
interface LibraryStamp {
  path: string;
  stamp: string;
}

function fileStamp(path: string): string | null {
  try {
    const st = statSync(path);
    return st.isFile() ? `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}` : null;
  } catch (e) {
    if (isSysError(e, 'ENOENT', 'EACCES', 'EPERM', 'ENOTDIR')) return null;
    throw e;
  }
}

/** The file SONAME was loaded from by this process (/proc/self/maps), with its stamp; null when not mapped. */
function mappedLibrary(soname: string): LibraryStamp | null {
  const line = readOptional('/proc/self/maps').split('\n').find((l) => l.endsWith(`/${soname}`) || l.includes(`/${soname.replace(/\.so\.\d+$/, '.so.')}`));
  const path = line?.slice(line.indexOf('/'));
  if (!path) return null;
  const stamp = fileStamp(path);
  return stamp === null ? null : { path, stamp };
}

interface CachedFeatures {
  key: string;
  probedAt: string;
  report: FeatureReport;
  /** the libbpf the probes ran with */
  libbpf?: LibraryStamp | null;
}

/** FILE's record for KEY, or null (none, another key, or a file we do not trust). */
function readCached<T extends { key: string }>(file: string, key: string): T | null {
  const path = cachePath(file);
  let text: string;
  try {
    const st = lstatSync(path);
    // ours, a plain file, not writable by anyone else: otherwise not a source of truth
    if (!st.isFile() || st.uid !== (process.geteuid?.() ?? st.uid) || (st.mode & 0o022) !== 0) return null;
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if (isSysError(e, 'ENOENT', 'EACCES', 'EPERM', 'ENOTDIR')) return null;
    throw e;
  }
  let rec: T | null;
  try {
    rec = JSON.parse(text) as T | null;
  } catch (e) {
    if (e instanceof SyntaxError) return null; // a torn or foreign file: probe again
    throw e;
  }
  return rec?.key === key ? rec : null;
}

function writeCached<T extends { key: string }>(file: string, rec: T): void {
  const dir = featureCacheDir();
  const tmp = join(dir, `.${file}.${process.pid}.tmp`);
  try {
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    writeFileSync(tmp, JSON.stringify(rec) + '\n', { mode: 0o644, flag: 'wx' });
    renameSync(tmp, cachePath(file));
  } catch (e) {
    // not ours to write (read-only root in a VM, not root, a full disk): no cache, same answer
    if (isSysError(e, 'EROFS', 'EACCES', 'EPERM', 'ENOSPC', 'EEXIST', 'ENOTDIR', 'EDQUOT')) return;
    throw e;
  }
}

export interface ProbedFeatures {
  report: FeatureReport;
  /** when the probes ran (this boot) */
  probedAt: string;
  /** true when the answer is this boot's earlier probe */
  cached: boolean;
}

/**
 * This boot's earlier probe for BUILD, when there is one and the libbpf it
 * ran with is still the same file (so the library is known to be there);
 * else null.
 */
export function cachedFeatures(build: string): ProbedFeatures | null {
  const hit = readCached<CachedFeatures>(FEATURES_FILE, featureCacheKey(build));
  if (!hit || !Array.isArray(hit.report?.features) || !hit.libbpf || fileStamp(hit.libbpf.path) !== hit.libbpf.stamp) return null;
  return { report: hit.report, probedAt: hit.probedAt, cached: true };
}

/** Runs PROBE now and records its answer for the rest of the boot. */
export async function probeAndRecord(build: string, probe: () => Promise<FeatureReport>): Promise<ProbedFeatures> {
  const key = featureCacheKey(build);
  const report = await probe();
  const probedAt = new Date().toISOString();
  writeCached<CachedFeatures>(FEATURES_FILE, { key, probedAt, report, libbpf: mappedLibrary('libbpf.so.1') });
  return { report, probedAt, cached: false };
}

interface CachedRefusal {
  key: string;
  refusedAt: string;
  reason: string;
}

/** The key of a refusal of OBJECT: the probes' key, with the object file as it is now in place of the build. */
function refusalKey(object: string): string {
  return featureCacheKey(`${object} ${fileStamp(object) ?? 'missing'}`);
}

/**
 * Why the kernel refused OBJECT (a BPF object file) earlier this boot, under
 * the same key, or null: never refused, another boot, lockdown, module set or
 * uid, the object rebuilt, or a record we do not trust. WHAT names the
 * record (`guard`: guard-refused.json).
 */
export function cachedRefusal(what: string, object: string): string | null {
  const hit = readCached<CachedRefusal>(`${what}-refused.json`, refusalKey(object));
  return typeof hit?.reason === 'string' ? hit.reason : null;
}

/** Remembers for this boot that the kernel refused OBJECT, and why (cachedRefusal). */
export function recordRefusal(what: string, object: string, reason: string): void {
  writeCached<CachedRefusal>(`${what}-refused.json`, { key: refusalKey(object), refusedAt: new Date().toISOString(), reason });
}
