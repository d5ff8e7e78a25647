// SPDX-License-Identifier: GPL-2.0-only
/**
 * What the demo measures: bounded pings and ICMP counters inside named
 * namespaces. Pings run as child processes without blocking the event loop,
 * so the in-process learner keeps handling rtnetlink events meanwhile.
 */
import { spawn } from 'node:child_process';
import { run } from '../netlink/exec.js';

/** a ping is `-c 1 -W 1`; this only catches a child that hangs for another reason */
const PING_HARD_LIMIT_MS = 4_000;

export interface PingOptions {
  /** the device to bind (link-local destinations need one) */
  dev?: string;
  /** allow a broadcast destination */
  broadcast?: boolean;
}

/** One bounded ping from inside NS; true when a reply came back. */
export function ping(ns: string, addr: string, o: PingOptions = {}): Promise<boolean> {
  const args = ['netns', 'exec', ns, 'ping', '-n', '-q', '-c', '1', '-W', '1'];
  if (o.broadcast) args.push('-b');
  if (o.dev) args.push('-I', o.dev);
  args.push(addr);
  return new Promise((resolve) => {
    const child = spawn('ip', args, { stdio: 'ignore' });
    const timer = setTimeout(() => child.kill('SIGKILL'), PING_HARD_LIMIT_MS);
    child.once('error', () => {
      clearTimeout(timer);
      resolve(false);
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve(code === 0);
    });
  });
}

/**
 * `Icmp InEchos` of NS (echo requests its stack received): which namespaces
 * a broadcast reached, whoever's reply ping happened to see first.
 */
export function icmpInEchos(ns: string): number {
  const r = run('ip', ['netns', 'exec', ns, 'cat', '/proc/net/snmp']);
  const lines = r.stdout.split('\n').filter((l) => l.startsWith('Icmp:'));
  const names = lines[0]?.split(/\s+/) ?? [];
  const values = lines[1]?.split(/\s+/) ?? [];
  const i = names.indexOf('InEchos');
  return i < 0 ? -1 : Number(values[i]);
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls PROBE every 25 ms until it holds or TIMEOUTMS pass; returns whether it held. */
export async function waitFor(probe: () => boolean, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (probe()) return true;
    if (Date.now() > end) return false;
    await sleep(25);
  }
}
