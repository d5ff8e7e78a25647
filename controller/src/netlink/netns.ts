// SPDX-License-Identifier: GPL-2.0-only
/**
 * Network namespaces by name, path and inode. A master may live in any
 * namespace (as with the kernel driver); we record it by its iproute2 name
 * (/run/netns/NAME) or as the init namespace, and find it again by inode.
 */
import { readdirSync, statSync } from 'node:fs';
import { IvbError, isSysError } from '../errors.js';

export const NETNS_RUN_DIR = '/run/netns';

export function netnsInodeOfPath(path: string): number {
  try {
    return statSync(path).ino;
  } catch (e) {
    if (!isSysError(e, 'ENOENT', 'ENOTDIR')) throw e;
    throw new IvbError('IPVLAN_E_NETNS', `Cannot open network namespace "${path}": No such file or directory`);
  }
}

export function currentNetnsInode(): number {
  return statSync('/proc/thread-self/ns/net').ino;
}

/**
 * A /proc/PID of a task that lives in the init namespaces. PID 1 is the
 * natural choice, but a sandbox's init may be undumpable (its /proc links
 * refuse even root); kthreadd (PID 2) always runs in the init namespaces.
 */
function initTaskProc(): string {
  for (const pid of [1, 2]) {
    try {
      statSync(`/proc/${pid}/ns/net`);
      return `/proc/${pid}`;
    } catch (e) {
      // an undumpable task's links refuse even root: try the next
      if (!isSysError(e, 'EACCES', 'EPERM', 'ENOENT')) throw e;
    }
  }
  throw new IvbError('IPVLAN_E_NETNS', 'cannot reach the init network namespace through /proc/1 or /proc/2');
}

export function initNetnsPath(): string {
  return `${initTaskProc()}/ns/net`;
}

export function initNetnsInode(): number {
  return statSync(initNetnsPath()).ino;
}

/**
 * A namespace as the netlink and sysctl helpers take it: its /run/netns
 * name, null for the init namespace (where the process works), or the file
 * of one that may have no name (a CNI runtime's CNI_NETNS, /proc/PID/ns/net).
 */
export type NetnsRef = string | null | { file: string };

/** The file to setns() into for REF (null: none, stay where the process works). */
export function netnsRefFile(ref: NetnsRef): string | null {
  if (ref === null) return null;
  return typeof ref === 'string' ? netnsPath(ref) : ref.file;
}

/** REF as the messages name it: `netns NAME` or the file. */
export function describeNetnsRef(ref: NetnsRef): string {
  if (ref === null) return 'the init namespace';
  return typeof ref === 'string' ? `netns ${ref}` : ref.file;
}

export function netnsPath(name: string): string {
  if (name.includes('/') || name === '' || name === '.' || name === '..') {
    throw new IvbError('IPVLAN_E_NETNS', `Invalid network namespace name "${name}"`);
  }
  return `${NETNS_RUN_DIR}/${name}`;
}

/** The iproute2 name of the namespace with this inode, or null. */
export function netnsNameOfInode(ino: number): string | null {
  let names: string[] = [];
  try {
    names = readdirSync(NETNS_RUN_DIR);
  } catch (e) {
    if (isSysError(e, 'ENOENT')) return null;
    throw e;
  }
  for (const n of names) {
    try {
      if (statSync(`${NETNS_RUN_DIR}/${n}`).ino === ino) return n;
    } catch (e) {
      // deleted since the directory was read
      if (!isSysError(e, 'ENOENT')) throw e;
    }
  }
  return null;
}

/** How the current thread's namespace is recorded: null for init, else its name. */
export function describeCurrentNetns(): { name: string | null; ino: number } {
  const ino = currentNetnsInode();
  if (ino === initNetnsInode()) return { name: null, ino };
  const name = netnsNameOfInode(ino);
  if (name === null) {
    throw new IvbError(
      'IPVLAN_E_NETNS',
      'the current network namespace has no name; give it one with "ip netns attach NAME PID" and use -n NAME',
    );
  }
  return { name, ino };
}

export function netnsExists(name: string | null): boolean {
  if (name === null) return true;
  try {
    statSync(netnsPath(name));
    return true;
  } catch (e) {
    if (isSysError(e, 'ENOENT')) return false;
    throw e;
  }
}
