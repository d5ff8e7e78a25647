// SPDX-License-Identifier: GPL-2.0-only
/**
 * Which compiled BPF objects this installation runs. The build id is a hash
 * of the objects the package ships (name and content of each), so two
 * installations with the same id load the same bytecode. `npm run build`
 * (and so `npm pack`) records it with where the objects came from (commit,
 * clang) in dist/build-info.json; `ipvlan-bpf version` hashes the objects
 * again and says whether they still match that record.
 */
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../paths.js';

/** The objects the controller loads at run time (bpf/*.bpf.o); the package ships exactly these. */
const SHIPPED_OBJECTS = ['guard.bpf.o', 'master_ingress.bpf.o', 'peer_egress.bpf.o', 'slave_egress.bpf.o'] as const;

/** hex digits of the build id (of a sha256) */
const BUILD_ID_HEX = 16;

export interface ObjectsHash {
  /** null when an object is missing */
  buildId: string | null;
  /** sha256 of each object present */
  objects: Record<string, string>;
  missing: string[];
}

export interface BuildRecord {
  buildId: string;
  objects: Record<string, string>;
  /** `git describe --always --dirty` of the tree that was built, null outside a checkout */
  commit: string | null;
  /** first line of `clang --version` */
  clang: string | null;
  builtAt: string;
}

export interface BuildIdentity extends ObjectsHash {
  recorded: BuildRecord | null;
  /** null when nothing was recorded or an object is missing */
  matchesRecord: boolean | null;
}

function objectsDir(root: string): string {
  return join(root, 'bpf');
}

function recordPath(root: string): string {
  return join(root, 'dist', 'build-info.json');
}

/** Hashes the shipped objects under ROOT/bpf. */
function hashObjects(root = repoRoot()): ObjectsHash {
  const objects: Record<string, string> = {};
  const missing: string[] = [];
  const all = createHash('sha256');
  for (const name of SHIPPED_OBJECTS) {
    const p = join(objectsDir(root), name);
    if (!existsSync(p)) {
      missing.push(name);
      continue;
    }
    const h = createHash('sha256').update(readFileSync(p)).digest('hex');
    objects[name] = h;
    all.update(`${name}\0${h}\n`);
  }
  return { buildId: missing.length ? null : all.digest('hex').slice(0, BUILD_ID_HEX), objects, missing };
}

function firstLineOf(cmd: string, args: readonly string[], cwd: string): string | null {
  // only the build records: `version` does not load child_process
  const { spawnSync } = createRequire(import.meta.url)('node:child_process') as typeof import('node:child_process');
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8' });
  if (r.error || r.status !== 0) return null;
  return r.stdout.split('\n')[0]?.trim() || null;
}

/** Writes ROOT/dist/build-info.json for the objects now in ROOT/bpf (the build step after make and tsc). */
export function recordBuild(root = repoRoot()): BuildRecord {
  const h = hashObjects(root);
  if (h.buildId === null) throw new Error(`cannot record the build: ${h.missing.map((m) => `bpf/${m}`).join(', ')} missing (make -C bpf)`);
  const rec: BuildRecord = {
    buildId: h.buildId,
    objects: h.objects,
    commit: firstLineOf('git', ['describe', '--always', '--dirty', '--abbrev=12'], root),
    clang: firstLineOf(process.env.CLANG ?? 'clang', ['--version'], root),
    builtAt: new Date().toISOString(),
  };
  writeFileSync(recordPath(root), JSON.stringify(rec, null, 2) + '\n');
  return rec;
}

function readBuildRecord(root = repoRoot()): BuildRecord | null {
  try {
    return JSON.parse(readFileSync(recordPath(root), 'utf8')) as BuildRecord;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

/** The objects as installed, against what the build recorded. */
export function buildIdentity(root = repoRoot()): BuildIdentity {
  const h = hashObjects(root);
  const recorded = readBuildRecord(root);
  return { ...h, recorded, matchesRecord: recorded && h.buildId ? recorded.buildId === h.buildId : null };
}
