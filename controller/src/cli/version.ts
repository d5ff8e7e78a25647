// SPDX-License-Identifier: GPL-2.0-only
/**
 * `ipvlan-bpf version [-j]`: the package version, the build id of the BPF
 * objects it ships (and whether they match the build's record), the kernel
 * features this host offers and any missing run-time package — what a user
 * needs to see at once whether ipvlan-bpf will work here.
 *
 * Works without libbpf: the features are then reported as not probed, with
 * the package to install.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { release } from 'node:os';
import { repoRoot } from '../paths.js';
import { buildIdentity, type BuildIdentity } from '../platform/build-info.js';
import type { FeatureName, KernelFeature } from '../platform/features.js';
import { cachedFeatures, probeAndRecord } from '../platform/feature-cache.js';
import { EINVAL, IvbError } from '../errors.js';
import { ALL_REQUIREMENTS, missingLine, missingRequirements, type Requirement } from '../platform/requirements.js';

export interface VersionReport {
  name: string;
  version: string;
  objects: BuildIdentity;
  node: string;
  kernel: string;
  libbpf: string | null;
  root: boolean;
  /** keyed by feature; null when the probes could not run (see featuresError) */
  features: Record<FeatureName, Omit<KernelFeature, 'name'>> | null;
  featuresError?: string;
  /** when the features were probed (once per boot: later commands reuse it) */
  featuresProbedAt?: string;
  /** true when they are this boot's earlier probe, false when probed by this command */
  featuresCached?: boolean;
  /** run-time packages this host lacks (any command's) */
  missing: Array<Pick<Requirement, 'name' | 'debianPackage' | 'why'>>;
}

export function packageVersion(): { name: string; version: string } {
  const pkg = JSON.parse(readFileSync(join(repoRoot(), 'package.json'), 'utf8')) as { name?: string; version?: string };
  return { name: pkg.name ?? 'ipvlan-bpf', version: pkg.version ?? 'unknown' };
}

/** FRESH: probe again even when this boot's probe is cached (`version --probe`) */
async function versionReport(fresh = false): Promise<VersionReport> {
  const objects = buildIdentity();
  const build = objects.buildId ?? `unbuilt ${packageVersion().version}`;
  // this boot's answer, while the libbpf it came from is unchanged: no binding to load
  const earlier = fresh ? null : cachedFeatures(build);
  const missing = await missingRequirements(earlier ? ALL_REQUIREMENTS.filter((r) => r.kind !== 'library') : ALL_REQUIREMENTS);
  const report: VersionReport = {
    ...packageVersion(),
    objects,
    node: process.version,
    kernel: release(),
    libbpf: null,
    root: process.geteuid?.() === 0,
    features: null,
    missing: missing.map(({ name, debianPackage, why }) => ({ name, debianPackage, why })),
  };
  const libbpfMissing = missing.filter((r) => r.kind === 'library');
  if (libbpfMissing.length) {
    report.featuresError = `not probed: ${missingLine(libbpfMissing)}`;
    return report;
  }
  // the binding (koffi, libbpf) is loaded only when the probes run
  const probe = async () => (await import('../platform/features.js')).probeFeatures();
  const { report: probed, probedAt, cached } = earlier ?? (await probeAndRecord(build, probe));
  report.featuresProbedAt = probedAt;
  report.featuresCached = cached;
  report.libbpf = probed.libbpf;
  report.features = Object.fromEntries(probed.features.map(({ name, ...rest }) => [name, rest])) as VersionReport['features'];
  return report;
}

function objectsLine(o: BuildIdentity): string {
  if (o.buildId === null) return `BPF objects: ${o.missing.map((m) => `bpf/${m}`).join(', ')} missing`;
  const r = o.recorded;
  if (!r) return `BPF objects: build ${o.buildId} (no build record: built in a checkout without "npm run build")`;
  const from = [r.commit && `commit ${r.commit}`, r.clang, `built ${r.builtAt}`].filter(Boolean).join(', ');
  return o.matchesRecord
    ? `BPF objects: build ${o.buildId} (${from})`
    : `BPF objects: build ${o.buildId} — DIFFERENT from the recorded build ${r.buildId} (${from}): the objects were changed after the build`;
}

function versionText(r: VersionReport): string {
  const lines = [`${r.name} ${r.version}`, objectsLine(r.objects), `node ${r.node}, libbpf ${r.libbpf ?? '(missing)'}, kernel ${r.kernel}${r.root ? '' : ' (not root: probes need CAP_BPF and see EPERM)'}`];
  if (r.features) {
    const when = r.featuresProbedAt ? ` (probed ${r.featuresProbedAt}${r.featuresCached ? ', this boot; "version --probe" probes again' : ''})` : '';
    lines.push(`kernel features${when}:`);
    const width = Math.max(...Object.keys(r.features).map((k) => k.length));
    for (const [name, f] of Object.entries(r.features)) {
      lines.push(`  ${name.padEnd(width)}  ${f.available ? 'yes' : 'no '}  ${f.detail}`);
      lines.push(`  ${''.padEnd(width)}       used for: ${f.usedFor}`);
    }
  } else {
    lines.push(`kernel features: ${r.featuresError ?? 'not probed'}`);
  }
  lines.push(r.missing.length ? `run-time packages missing: ${r.missing.map((m) => `${m.debianPackage} (${m.name}: ${m.why})`).join(', ')}` : 'run-time packages: all found');
  return lines.join('\n');
}

export async function runVersion(json: boolean, pretty: boolean, args: readonly string[] = []): Promise<number> {
  const bad = args.find((a) => a !== '--probe');
  if (bad !== undefined) throw new IvbError('IPVLAN_E_USAGE', `version: unknown argument "${bad}" (only --probe: probe the kernel again instead of this boot's answer)`, EINVAL);
  const r = await versionReport(args.includes('--probe'));
  process.stdout.write((json ? JSON.stringify(r, null, pretty ? 2 : undefined) : versionText(r)) + '\n');
  return 0;
}
