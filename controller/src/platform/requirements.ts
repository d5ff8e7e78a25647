// SPDX-License-Identifier: GPL-2.0-only
/**
 * What an installed ipvlan-bpf needs on the host at run time, per command,
 * and the one line that names the Debian package of whatever is missing.
 * Checked before the command's modules are imported, so a host without
 * libbpf or iproute2 gets "install libbpf1" instead of a dlopen or spawn
 * error from deep inside.
 *
 * Build-time tools (clang, llvm, bpftool, tsc) are not here: the package
 * ships the compiled objects and JavaScript.
 */
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

export interface Requirement {
  kind: 'library' | 'command';
  /** the soname or the command's name */
  name: string;
  /** the Debian package that installs it */
  debianPackage: string;
  why: string;
}

const LIBBPF: Requirement = { kind: 'library', name: 'libbpf.so.1', debianPackage: 'libbpf1', why: 'loads the BPF objects' };
const IP: Requirement = { kind: 'command', name: 'ip', debianPackage: 'iproute2', why: 'nft in a named namespace (ip netns exec); the demo' };
const SYSCTL: Requirement = { kind: 'command', name: 'sysctl', debianPackage: 'procps', why: "the demo's namespaces" };
const NFT: Requirement = { kind: 'command', name: 'nft', debianPackage: 'nftables', why: "accept rules in the host's drop-policy forward chains" };
const PING: Requirement = { kind: 'command', name: 'ping', debianPackage: 'iputils-ping', why: "the demo's traffic" };

const DATAPATH = [LIBBPF, IP, NFT];

/** Every run-time requirement (for documentation and `version`). */
export const ALL_REQUIREMENTS: readonly Requirement[] = [LIBBPF, IP, SYSCTL, NFT, PING];

/**
 * What each `ipvlan-bpf` object needs. `version` and `cni install` need
 * nothing (the CLI runs them without the rest); anything else, help
 * included, goes through the module that loads libbpf.
 */
const CLI_NEEDS: Record<string, readonly Requirement[]> = {
  link: DATAPATH,
  l: DATAPATH,
  stats: DATAPATH,
  monitor: DATAPATH,
  explain: DATAPATH,
  sync: DATAPATH,
  gc: DATAPATH,
  upgrade: DATAPATH,
  agent: DATAPATH,
  demo: [...DATAPATH, SYSCTL, PING],
};

/** What the CNI plugin's ADD/DEL/CHECK/GC/STATUS need (VERSION needs nothing). */
export const CNI_NEEDS: readonly Requirement[] = DATAPATH;

export function cliRequirements(object: string | undefined): readonly Requirement[] {
  if (object === 'version' || object === 'cni') return [];
  return object !== undefined && Object.hasOwn(CLI_NEEDS, object) ? CLI_NEEDS[object]! : [LIBBPF];
}

/** The executable NAME in PATH, or null. */
function findInPath(name: string, path = process.env.PATH ?? ''): string | null {
  for (const dir of path.split(delimiter)) {
    if (dir === '') continue;
    const p = join(dir, name);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      /* next directory */
    }
  }
  return null;
}

async function libraryLoads(soname: string): Promise<boolean> {
  const koffi = (await import('koffi')).default;
  try {
    koffi.load(soname);
    return true;
  } catch {
    return false;
  }
}

/** The requirements of REQS this host lacks (each checked once). */
export async function missingRequirements(reqs: readonly Requirement[]): Promise<Requirement[]> {
  const missing: Requirement[] = [];
  for (const r of new Set(reqs)) {
    const found = r.kind === 'library' ? await libraryLoads(r.name) : findInPath(r.name) !== null;
    if (!found) missing.push(r);
  }
  return missing;
}

/** One line: "nft (nftables) is missing: apt-get install nftables". */
export function missingLine(missing: readonly Requirement[]): string {
  const what = missing.map((r) => `${r.kind === 'library' ? 'the library ' : ''}${r.name} (${r.debianPackage})`);
  const pkgs = [...new Set(missing.map((r) => r.debianPackage))];
  return `${what.join(', ')} ${missing.length === 1 ? 'is' : 'are'} missing: apt-get install ${pkgs.join(' ')}`;
}
