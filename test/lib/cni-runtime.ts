// SPDX-License-Identifier: GPL-2.0-only
/**
 * Driving `ipvlan-bpf-cni` as a container runtime does: CNI_* environment
 * variables, a namespace path in CNI_NETNS, the network configuration on
 * stdin, the result or the spec's error JSON on stdout. The plugin runs in
 * the test's "host" namespace (where the master is), entered with nsenter as
 * a runtime living there would be; the IPAM plugin is Debian's real
 * host-local from containernetworking-plugins.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { REPO, run, type TestEnv } from './topo.js';

export const CNI_BIN = join(REPO, 'bin', 'ipvlan-bpf-cni.js');
/** where Debian's containernetworking-plugins puts the plugins */
export const DEBIAN_CNI_DIR = '/usr/lib/cni';

/** Installs a Debian package when FILE (one it installs) is missing. */
export function ensurePackage(pkg: string, file: string): void {
  if (existsSync(file)) return;
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const r = run('apt-get', ['install', '-y', '-qq', '--no-install-recommends', pkg], { env, timeoutMs: 600_000 });
  if (r.status !== 0) {
    run('apt-get', ['update', '-qq'], { env, timeoutMs: 600_000 });
    const again = run('apt-get', ['install', '-y', '-qq', '--no-install-recommends', pkg], { env, timeoutMs: 600_000 });
    if (again.status !== 0) throw new Error(`apt-get install ${pkg} failed: ${again.stderr.trim()}`);
  }
  if (!existsSync(file)) throw new Error(`${pkg} installed but ${file} is missing`);
}

export interface CniCall {
  command: 'ADD' | 'DEL' | 'CHECK' | 'GC' | 'STATUS' | 'VERSION';
  containerId?: string;
  /** a namespace path (/var/run/netns/X, /proc/PID/ns/net) */
  netns?: string;
  ifname?: string;
  /** the config as a JS value (sent as JSON) or as raw text */
  config: unknown;
  /** extra or overriding environment (undefined removes a variable) */
  env?: Record<string, string | undefined>;
}

export interface CniReply {
  status: number;
  /** stdout parsed as JSON, or null when empty/not JSON */
  json: Record<string, unknown> | null;
  stdout: string;
  stderr: string;
  ms: number;
}

export class CniRuntime {
  constructor(
    private readonly env: TestEnv,
    /** the namespace the plugin runs in (the runtime's): its /run/netns name */
    readonly hostNs: string,
    readonly cniPath = DEBIAN_CNI_DIR,
    /** the plugin as the runtime executes it (an installed one: its path alone) */
    readonly plugin: readonly string[] = [process.execPath, CNI_BIN],
  ) {}

  call(c: CniCall): CniReply {
    const e: NodeJS.ProcessEnv = { ...this.env.env, CNI_COMMAND: c.command, CNI_PATH: this.cniPath };
    if (c.containerId !== undefined) e.CNI_CONTAINERID = c.containerId;
    if (c.netns !== undefined) e.CNI_NETNS = c.netns;
    if (c.ifname !== undefined) e.CNI_IFNAME = c.ifname;
    for (const [k, v] of Object.entries(c.env ?? {})) {
      if (v === undefined) delete e[k];
      else e[k] = v;
    }
    const input = typeof c.config === 'string' ? c.config : JSON.stringify(c.config);
    const t0 = performance.now();
    const r = spawnSync('nsenter', [`--net=/run/netns/${this.hostNs}`, '--', ...this.plugin], {
      env: e,
      input,
      encoding: 'utf8',
      timeout: 60_000,
    });
    const ms = performance.now() - t0;
    let json: Record<string, unknown> | null = null;
    try {
      json = JSON.parse(r.stdout) as Record<string, unknown>;
    } catch {
      json = null;
    }
    return { status: r.status ?? -1, json, stdout: r.stdout ?? '', stderr: (r.stderr ?? '') + (r.error ? String(r.error) : ''), ms };
  }

  /** A call that must succeed (exit 0); the error shows the plugin's JSON and log. */
  ok(c: CniCall): CniReply {
    const r = this.call(c);
    if (r.status !== 0) throw new Error(`CNI ${c.command} ${c.containerId ?? ''} -> exit ${r.status}: ${r.stdout.trim()} ${r.stderr.trim()}`);
    return r;
  }
}

/** The addresses host-local holds for NETWORK in DATADIR (its one file per address). */
export function hostLocalLeases(dataDir: string, network: string): string[] {
  try {
    return readdirSync(join(dataDir, network)).filter((f) => /^[0-9a-f.:]+$/i.test(f) && (f.includes('.') || f.includes(':')));
  } catch {
    return [];
  }
}

/** A bounded ping from the namespace at PATH (any path nsenter takes). */
export function pingFrom(nsPath: string, addr: string): boolean {
  return run('nsenter', [`--net=${nsPath}`, 'ping', '-c', '1', '-W', '1', addr], { timeoutMs: 5_000 }).status === 0;
}

/** Up to TRIES bounded pings (the first may be lost to neighbour resolution); true when one got a reply. */
export function reaches(nsPath: string, addr: string, tries = 3): boolean {
  for (let i = 0; i < tries; i++) if (pingFrom(nsPath, addr)) return true;
  return false;
}
