// SPDX-License-Identifier: GPL-2.0-only
/**
 * Port records: one JSON file per master ("port" in the kernel driver),
 * written atomically (rename) under a lock, so that concurrent CLI calls and
 * the agent never see half a change.
 */
import { closeSync, existsSync, openSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { IvbError } from './errors.js';
import { ensureDir, portPinDir, stateDir } from './paths.js';
import { timeScale } from './timescale.js';

export type Mode = 'l2' | 'l3' | 'l3s';
export type PortFlag = 'bridge' | 'private' | 'vepa';

export interface SlaveRecord {
  /** the name given at `link add` (the user may rename it later) */
  name: string;
  /** our host-side veth peer, in the master's namespace */
  peerName: string;
  peerIfindex: number;
  /** the kernel's per-port dev_id (1..0xfffd), folded into the IPv6 link-local address */
  devId: number;
  /** slot in the port's fan-out list */
  slot: number;
}

/** What l3s changed in the master's namespace, kept so that it can be put back (also by gc). */
export interface L3sSaved {
  /** sysctl key -> the value found before */
  sysctls: Record<string, string>;
  /** families whose `iif MASTER blackhole` rule we added (the master did not forward them before) */
  blackhole: Array<4 | 6>;
}

export interface PortRecord {
  portId: number;
  master: {
    name: string;
    ifindex: number;
    /** iproute2 name of the master's namespace, null for the init namespace */
    netns: string | null;
    netnsIno: number;
    mac: string;
    mtu: number;
  };
  mode: Mode;
  flag: PortFlag;
  /** slaves may send only from their own learned addresses (ours; the kernel validates nothing) */
  sourceValidation?: boolean;
  slaves: SlaveRecord[];
  nextDevId: number;
  /** set while the port is in l3s: what entering it changed */
  l3s?: L3sSaved;
}

function portsDir(): string {
  return join(stateDir(), 'ports');
}

function portFile(portId: number): string {
  return join(portsDir(), `${portId}.json`);
}

export function listPorts(): PortRecord[] {
  let files: string[] = [];
  try {
    files = readdirSync(portsDir()).filter((f) => /^\d+\.json$/.test(f));
  } catch (e) {
    if (isNotFound(e)) return [];
    throw e;
  }
  const out: PortRecord[] = [];
  for (const f of files) {
    const p = readRecord(join(portsDir(), f));
    if (p) out.push(p);
  }
  return out.sort((a, b) => a.portId - b.portId);
}

function isNotFound(e: unknown): boolean {
  return (e as NodeJS.ErrnoException).code === 'ENOENT';
}

/** A record file, or null when it is gone (removed under us); a damaged one is an error naming it. */
function readRecord(path: string): PortRecord | null {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if (isNotFound(e)) return null;
    throw e;
  }
  try {
    return JSON.parse(text) as PortRecord;
  } catch (e) {
    throw new IvbError('IPVLAN_E_STATE', `${path}: damaged port record (${(e as Error).message})`);
  }
}

export function readPort(portId: number): PortRecord | null {
  return readRecord(portFile(portId));
}

export function writePort(p: PortRecord): void {
  ensureDir(portsDir());
  const tmp = `${portFile(p.portId)}.tmp${process.pid}`;
  writeFileSync(tmp, JSON.stringify(p, null, 1));
  renameSync(tmp, portFile(p.portId));
}

export function removePort(portId: number): void {
  rmSync(portFile(portId), { force: true });
}

/** The lowest id with neither a record nor pins (pins without a record are gc's to judge, never reused). */
export function allocPortId(): number {
  const used = new Set(listPorts().map((p) => p.portId));
  let id = 1;
  while (used.has(id) || existsSync(portPinDir(id))) id++;
  return id;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

const sleepCell = new Int32Array(new SharedArrayBuffer(4));
function sleepMs(ms: number): void {
  Atomics.wait(sleepCell, 0, 0, ms);
}

/**
 * Runs fn under the global lock (a pid file created with O_EXCL; a holder
 * that died is detected and its lock taken over).
 */
let lockDepth = 0;

export function withLock<T>(fn: () => T, timeoutMs = 15000 * timeScale()): T {
  if (lockDepth > 0) {
    lockDepth++;
    try {
      return fn();
    } finally {
      lockDepth--;
    }
  }
  ensureDir(stateDir());
  const lock = join(stateDir(), 'lock');
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const fd = openSync(lock, 'wx', 0o600);
      writeSync(fd, String(process.pid));
      closeSync(fd);
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      let holder = 0;
      try {
        holder = Number(readFileSync(lock, 'utf8'));
      } catch (e2) {
        // released between our open and this read: try again
        if (isNotFound(e2)) continue;
        throw e2;
      }
      if (holder > 0 && !pidAlive(holder)) {
        rmSync(lock, { force: true });
        continue;
      }
      if (Date.now() > deadline) throw new IvbError('IPVLAN_E_LOCK', `${lock} is held by pid ${holder}`);
      sleepMs(5);
    }
  }
  lockDepth = 1;
  try {
    return fn();
  } finally {
    lockDepth = 0;
    rmSync(lock, { force: true });
  }
}
