// SPDX-License-Identifier: GPL-2.0-only
/**
 * Sysctls of a network namespace through /proc/sys, from this process: the
 * kernel resolves /proc/sys/net against the namespace of the thread that
 * opens the file, so a setns around a synchronous read or write is enough
 * (no `ip netns exec … sysctl`, which costs a process and a /sys remount).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { withNetns } from '../../../native/libbpf.js';
import { IvbError, isSysError } from '../errors.js';
import { describeNetnsRef, netnsRefFile, type NetnsRef } from './netns.js';

/** KEY as `net.ipv4.conf.X.forwarding` or as a path `net/ipv4/conf/X/forwarding` (a device name may hold dots). */
function procPath(key: string): string {
  return `/proc/sys/${key.includes('/') ? key : key.replace(/\./g, '/')}`;
}

/** Runs FN in NETNS (null: the init namespace, where the process works: context.ts). */
function inNetns<T>(netns: NetnsRef, fn: () => T): T {
  const file = netnsRefFile(netns);
  return file === null ? fn() : withNetns(file, fn);
}

/** The value of KEY in NETNS, or null when the key does not exist there. */
export function sysctlRead(key: string, netns: NetnsRef): string | null {
  return inNetns(netns, () => {
    try {
      return readFileSync(procPath(key), 'utf8').trim();
    } catch (e) {
      if (isSysError(e, 'ENOENT')) return null;
      throw new IvbError('IPVLAN_E_IPROUTE', `sysctl ${key}${netns !== null ? ` (${describeNetnsRef(netns)})` : ''}: ${(e as Error).message}`);
    }
  });
}

/** Sets KEY in NETNS; false when the key does not exist there (an older kernel, a device gone). */
export function sysctlWrite(key: string, value: string, netns: NetnsRef): boolean {
  return inNetns(netns, () => {
    try {
      writeFileSync(procPath(key), value);
      return true;
    } catch (e) {
      if (isSysError(e, 'ENOENT')) return false;
      throw new IvbError('IPVLAN_E_IPROUTE', `sysctl ${key}=${value}${netns !== null ? ` (${describeNetnsRef(netns)})` : ''}: ${(e as Error).message}`);
    }
  });
}
