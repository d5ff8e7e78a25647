// SPDX-License-Identifier: GPL-2.0-only
/**
 * IPAM delegation, as libcni's ExecPluginWithResult does it for the
 * reference plugin: the IPAM plugin named by `ipam.type` is found in
 * CNI_PATH and run with our environment (CNI_COMMAND and all) and our stdin.
 *
 * One addition: where the IPAM plugin refuses the config's version (code 1,
 * e.g. Debian's host-local 1.1.1 knows CNI 1.0.0 at most and a runtime
 * writes "cniVersion": "1.1.0"), we ask it for its versions and run it again
 * with the highest one it shares with us. The reference plugin fails the ADD
 * there; runtimes move to 1.1 before every IPAM plugin does.
 */
import { isSysError } from '../errors.js';
import { spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { join } from 'node:path';
import { CNI_E, CniError, compareVersions, parseResult, type CniResult } from './types.js';

export interface ExecEnv {
  command: string;
  containerId?: string;
  netns?: string;
  ifname?: string;
}

/** The plugin binary TYPE in CNI_PATH (its directories in order), as libcni's FindInPath. */
export function findPlugin(type: string, cniPath: string): string {
  if (type.includes('/') || type === '.' || type === '..') throw new CniError(CNI_E.INVALID_CONFIG, `invalid plugin name ${JSON.stringify(type)}`);
  const dirs = cniPath.split(':').filter((d) => d !== '');
  for (const d of dirs) {
    const p = join(d, type);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch (e) {
      // not in this directory (or not executable): the next one
      if (!isSysError(e, 'ENOENT', 'EACCES', 'ENOTDIR')) throw e;
    }
  }
  throw new CniError(CNI_E.INTERNAL, `failed to find plugin "${type}" in path [${dirs.join(' ')}]`);
}

interface ExecOutcome {
  stdout: string;
}

function execPlugin(path: string, stdin: string, env: ExecEnv, timeoutMs = 60_000): ExecOutcome {
  const childEnv: NodeJS.ProcessEnv = { ...process.env, CNI_COMMAND: env.command };
  if (env.containerId !== undefined) childEnv.CNI_CONTAINERID = env.containerId;
  if (env.netns !== undefined) childEnv.CNI_NETNS = env.netns;
  if (env.ifname !== undefined) childEnv.CNI_IFNAME = env.ifname;
  const r = spawnSync(path, [], { input: stdin, env: childEnv, encoding: 'utf8', timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 });
  // EPIPE: the plugin exited without reading all of stdin (an early refusal); its status and output still count
  const epipe = (r.error as NodeJS.ErrnoException | undefined)?.code === 'EPIPE' && r.status !== null;
  if (r.error && !epipe) throw new CniError(CNI_E.INTERNAL, `${path}: ${r.error.message}`);
  // the plugin's own log lines belong to the runtime's log, as ours do
  if (r.stderr) process.stderr.write(r.stderr);
  if (r.status !== 0) {
    let err: unknown = null;
    try {
      err = JSON.parse(r.stdout);
    } catch (e) {
      // not the spec's JSON: reported below as the plugin's exit status
      if (!(e instanceof SyntaxError)) throw e;
    }
    if (typeof err === 'object' && err !== null && typeof (err as { code?: unknown }).code === 'number') {
      const e = err as { code: number; msg?: unknown; details?: unknown };
      throw new CniError(e.code, typeof e.msg === 'string' ? e.msg : `${path} failed`, typeof e.details === 'string' ? e.details : undefined);
    }
    throw new CniError(CNI_E.INTERNAL, `${path} exited with status ${r.status ?? r.signal}`, (r.stdout + r.stderr).trim() || undefined);
  }
  return { stdout: r.stdout };
}

/** The versions the plugin reports for VERSION. */
function pluginVersions(path: string): string[] {
  const out = execPlugin(path, JSON.stringify({ cniVersion: '0.4.0' }), { command: 'VERSION' });
  try {
    const v = JSON.parse(out.stdout) as { supportedVersions?: unknown };
    return Array.isArray(v.supportedVersions) ? v.supportedVersions.filter((x): x is string => typeof x === 'string') : [];
  } catch (e) {
    // a plugin that does not answer VERSION in JSON supports no version we know
    if (e instanceof SyntaxError) return [];
    throw e;
  }
}

function withVersion(stdin: string, version: string): string {
  const o = JSON.parse(stdin) as Record<string, unknown>;
  o.cniVersion = version;
  return JSON.stringify(o);
}

/** The highest version of the plugin's that is not above ours, or null. */
function downgradeTarget(path: string, ours: string): string | null {
  const theirs = pluginVersions(path).filter((v) => compareVersions(v, ours) <= 0 && compareVersions(v, '0.3.0') >= 0);
  theirs.sort(compareVersions);
  return theirs[theirs.length - 1] ?? null;
}

/** Runs the IPAM plugin; for ADD returns its result (null for other commands). */
export function execIpam(
  type: string,
  cniPath: string,
  stdin: string,
  cniVersion: string,
  env: ExecEnv,
): CniResult | null {
  const path = findPlugin(type, cniPath);
  let out: ExecOutcome;
  try {
    out = execPlugin(path, stdin, env);
  } catch (e) {
    if (!(e instanceof CniError) || e.code !== CNI_E.INCOMPATIBLE_VERSION) throw e;
    const target = downgradeTarget(path, cniVersion);
    if (!target || target === cniVersion) throw e;
    process.stderr.write(`ipvlan-bpf-cni: IPAM plugin ${type} does not know CNI ${cniVersion}: using ${target} with it\n`);
    out = execPlugin(path, withVersion(stdin, target), env);
  }
  if (env.command !== 'ADD') return null;
  let parsed: unknown;
  try {
    parsed = JSON.parse(out.stdout);
  } catch (e) {
    throw new CniError(CNI_E.DECODE, `IPAM plugin ${type} returned no JSON result`, e instanceof Error ? e.message : String(e));
  }
  return parseResult(parsed, `IPAM plugin ${type}'s result`);
}

/** Whether the IPAM plugin implements CNI 1.1 (and so GC and STATUS). */
export function ipamKnows11(type: string, cniPath: string): boolean {
  return pluginVersions(findPlugin(type, cniPath)).includes('1.1.0');
}
