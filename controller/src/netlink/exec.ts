// SPDX-License-Identifier: GPL-2.0-only
/**
 * Running iproute2 and friends. We use the field's own tools for netlink
 * (ip -j gives iproute2's JSON, which is also what our -j output mirrors);
 * every failure becomes an IvbError carrying the tool's own first line.
 */
import { createRequire } from 'node:module';
import { IvbError, type IvbErrorCode } from '../errors.js';

export interface RunResult {
  status: number;
  stdout: string;
  stderr: string;
}

/**
 * node:child_process, loaded on the first run: most commands (link add
 * among them) start no process, and loading it costs ~5 ms of start-up.
 */
let childProcess: typeof import('node:child_process') | null = null;
function spawnText(cmd: string, args: readonly string[], input?: string): import('node:child_process').SpawnSyncReturns<string> {
  childProcess ??= createRequire(import.meta.url)('node:child_process') as typeof import('node:child_process');
  return childProcess.spawnSync(cmd, args, { encoding: 'utf8', input, maxBuffer: 256 * 1024 * 1024 });
}

export function run(cmd: string, args: readonly string[], input?: string): RunResult {
  const r = spawnText(cmd, args, input);
  if (r.error) throw new IvbError('IPVLAN_E_IPROUTE', `${cmd}: ${r.error.message}`);
  return { status: r.status ?? 1, stdout: r.stdout, stderr: r.stderr };
}

export function firstLine(s: string): string {
  return s.split('\n').map((l) => l.trim()).find((l) => l.length > 0) ?? '';
}

/** Runs a command; a non-zero exit becomes an IvbError with the tool's first stderr line. */
export function runOk(cmd: string, args: readonly string[], code: IvbErrorCode = 'IPVLAN_E_IPROUTE'): string {
  const r = run(cmd, args);
  if (r.status !== 0) {
    throw new IvbError(code, `${cmd} ${args.join(' ')}: ${firstLine(r.stderr) || `exit ${r.status}`}`);
  }
  return r.stdout;
}

/** `ip [-n NS] ARGS` */
export function ip(args: readonly string[], netns?: string | null): string {
  const full = netns ? ['-n', netns, ...args] : [...args];
  return runOk('ip', full);
}

/** `ip [-n NS] ARGS`, without throwing */
export function ipTry(args: readonly string[], netns?: string | null): RunResult {
  const full = netns ? ['-n', netns, ...args] : [...args];
  return run('ip', full);
}

/** `ip -j [-n NS] ARGS` parsed */
export function ipJson<T>(args: readonly string[], netns?: string | null): T {
  const out = ip(['-j', ...args], netns);
  const text = out.trim();
  if (text === '') return [] as unknown as T;
  return JSON.parse(text) as T;
}
