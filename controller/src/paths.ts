// SPDX-License-Identifier: GPL-2.0-only
/**
 * Where state lives. Pinned BPF objects go under our own subtree of bpffs;
 * the port records (names, namespaces, dev_ids: what bpffs cannot hold) go
 * under /run/ipvlan-bpf. Both are per boot, as the kernel driver's state is.
 *
 * `ip netns exec` mounts a fresh /sys, which hides /sys/fs/bpf; the init
 * mount namespace's bpffs is still reachable through /proc/1/root.
 */
import { existsSync, mkdirSync, statfsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join, resolve } from 'node:path';
import { IvbError, isSysError } from './errors.js';
import { run } from './netlink/exec.js';

const BPF_FS_MAGIC = 0xcafe4a11;

function isBpffs(path: string): boolean {
  try {
    return statfsSync(path).type === BPF_FS_MAGIC;
  } catch (e) {
    if (isSysError(e, 'ENOENT', 'ENOTDIR', 'EACCES', 'EPERM')) return false;
    throw e;
  }
}

let cachedBpffs: string | null = null;

/** The bpffs mount to use, mounting it on /sys/fs/bpf when the host has none. */
export function bpffsRoot(): string {
  if (cachedBpffs) return cachedBpffs;
  const override = process.env.IPVLAN_BPF_BPFFS;
  const candidates = override ? [override] : ['/sys/fs/bpf', '/proc/1/root/sys/fs/bpf', '/proc/2/root/sys/fs/bpf'];
  for (const c of candidates) {
    if (isBpffs(c)) return (cachedBpffs = c);
  }
  if (!override) {
    run('mount', ['-t', 'bpf', 'bpf', '/sys/fs/bpf']);
    if (isBpffs('/sys/fs/bpf')) return (cachedBpffs = '/sys/fs/bpf');
  }
  throw new IvbError('IPVLAN_E_BPF', 'no bpf filesystem: mount one with "mount -t bpf bpf /sys/fs/bpf"');
}

/** Our subtree of bpffs. IPVLAN_BPF_PIN_ROOT lets tests use a private one. */
export function pinRoot(): string {
  const sub = process.env.IPVLAN_BPF_PIN_SUBDIR ?? 'ipvlan-bpf';
  return join(bpffsRoot(), sub);
}

export function mapsPinDir(): string {
  return join(pinRoot(), 'maps');
}

export function portPinDir(portId: number): string {
  return join(pinRoot(), 'ports', String(portId));
}

/** Records of ports; IPVLAN_BPF_STATE_DIR lets tests use a private one. */
export function stateDir(): string {
  return process.env.IPVLAN_BPF_STATE_DIR ?? '/run/ipvlan-bpf';
}

export function ensureDir(path: string): void {
  if (!existsSync(path)) mkdirSync(path, { recursive: true, mode: 0o700 });
}

/** The repository root (where bpf/*.bpf.o live), from dist/controller/src/paths.js. */
export function repoRoot(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  return resolve(here, '..', '..', '..');
}

export function bpfObjectPath(name: string): string {
  const p = join(repoRoot(), 'bpf', name);
  if (!existsSync(p)) {
    throw new IvbError('IPVLAN_E_BPF', `${p} is missing: build it with "npm run build"`);
  }
  return p;
}
