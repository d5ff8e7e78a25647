// SPDX-License-Identifier: GPL-2.0-only
/** Process helpers for the bench: bounded commands, tracked background children, /proc readers. */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { withNetns } from '../../native/libbpf.js';

export interface Res {
  status: number;
  stdout: string;
  stderr: string;
  ms: number;
}

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
  /** written to the command's stdin */
  input?: string;
}

export function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Res {
  const t0 = performance.now();
  const r = spawnSync(cmd, args, { encoding: 'utf8', env: opts.env ?? process.env, timeout: opts.timeoutMs ?? 60_000, maxBuffer: 64 << 20, input: opts.input });
  return { status: r.status ?? -1, stdout: r.stdout ?? '', stderr: (r.stderr ?? '') + (r.error ? String(r.error) : ''), ms: performance.now() - t0 };
}

export function must(cmd: string, args: readonly string[], opts: RunOptions = {}): Res {
  const r = run(cmd, args, opts);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} -> exit ${r.status}: ${r.stderr.trim()} ${r.stdout.trim()}`.trim());
  return r;
}

/** `ip -n NS ...` that must succeed */
export function ip(ns: string, ...args: string[]): string {
  return must('ip', ['-n', ns, ...args]).stdout;
}

export function ipTry(ns: string, ...args: string[]): Res {
  return run('ip', ['-n', ns, ...args]);
}

export function nsx(ns: string, cmd: string, ...args: string[]): Res {
  return must('ip', ['netns', 'exec', ns, cmd, ...args]);
}

export function sysctl(ns: string, key: string, value: string): void {
  nsx(ns, 'sysctl', '-q', '-w', `${key}=${value}`);
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Children we started (each in its own process group), ended on cleanup. */
const children = new Set<ChildProcess>();

export interface Bg {
  proc: ChildProcess;
  out: () => string;
  done: Promise<number>;
  waitLine: (re: RegExp, timeoutMs: number) => Promise<boolean>;
}

export function bg(cmd: string, args: readonly string[], env?: NodeJS.ProcessEnv): Bg {
  const proc = spawn(cmd, args, { env: env ?? process.env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(proc);
  let out = '';
  proc.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const done = new Promise<number>((res) => {
    proc.once('exit', (code) => {
      children.delete(proc);
      res(code ?? -1);
    });
    proc.once('error', () => {
      children.delete(proc);
      res(-1);
    });
  });
  const waitLine = async (re: RegExp, timeoutMs: number): Promise<boolean> => {
    const t0 = performance.now();
    while (performance.now() - t0 < timeoutMs) {
      if (re.test(out)) return true;
      if (!children.has(proc)) return re.test(out);
      await sleep(10);
    }
    return false;
  };
  return { proc, out: () => out, done, waitLine };
}

export function killAll(): void {
  for (const c of children) {
    try {
      if (c.pid) process.kill(-c.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  children.clear();
}

/** /proc/net/snmp of a namespace, read from this thread after setns (no child process). */
export function snmpUdp(ns: string): { inDatagrams: number; rcvbufErrors: number; noPorts: number } {
  const text = withNetns(`/run/netns/${ns}`, () => readFileSync('/proc/thread-self/net/snmp', 'utf8'));
  const lines = text.split('\n').filter((l) => l.startsWith('Udp:'));
  const names = lines[0]!.split(/\s+/);
  const vals = lines[1]!.split(/\s+/).map(Number);
  const get = (n: string): number => vals[names.indexOf(n)] ?? 0;
  return { inDatagrams: get('InDatagrams'), rcvbufErrors: get('RcvbufErrors'), noPorts: get('NoPorts') };
}

/** Per-CPU jiffies from /proc/stat (USER_HZ ticks). */
export interface CpuTimes {
  user: number;
  system: number;
  irq: number;
  softirq: number;
  idle: number;
  total: number;
}

function cpuTimes(): CpuTimes[] {
  const out: CpuTimes[] = [];
  for (const l of readFileSync('/proc/stat', 'utf8').split('\n')) {
    const m = /^cpu(\d+)\s+(.*)$/.exec(l);
    if (!m) continue;
    const v = m[2]!.split(/\s+/).map(Number);
    const [user, nice, system, idle, iowait, irq, softirq] = v as [number, number, number, number, number, number, number];
    out[Number(m[1])] = { user: user + nice, system, irq, softirq, idle: idle + iowait, total: v.slice(0, 8).reduce((a, b) => a + b, 0) };
  }
  return out;
}

/** utime+stime (ticks) of a process, 0 when gone */
function procTicks(pid: number | undefined): number {
  if (!pid) return 0;
  try {
    const st = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]);
  } catch {
    return 0;
  }
}

let ksoft: number[] | null = null;
/** pid of ksoftirqd/N per core */
function ksoftirqd(): number[] {
  if (ksoft) return ksoft;
  ksoft = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const m = /^ksoftirqd\/(\d+)$/.exec(readFileSync(`/proc/${d}/comm`, 'utf8').trim());
      if (m) ksoft[Number(m[1])] = Number(d);
    } catch {
      /* raced */
    }
  }
  return ksoft;
}

/**
 * Ticks one core spent on packets, robust to other processes' load: its
 * softirq and irq time (/proc/stat), its ksoftirqd's time (softirq work
 * deferred there is accounted to that task), and the given processes' time.
 */
export function coreTicks(core: number, pids: Array<number | undefined> = []): number {
  const c = cpuTimes()[core]!;
  return c.softirq + c.irq + procTicks(ksoftirqd()[core]) + pids.reduce<number>((a, p) => a + procTicks(p), 0);
}

export function loadavg(): number[] {
  return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).map(Number);
}
