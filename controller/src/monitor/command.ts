// SPDX-License-Identifier: GPL-2.0-only
/**
 * `ipvlan-bpf monitor [--drops] [-j] [--rate N] [--count N] [--timeout S]`:
 * events until Ctrl-C. Through the agent's event stream when it serves its
 * API (the ring buffer has one reader), else straight from the ring; either
 * way events are switched on for as long as this runs and put back after.
 */
import { IvbError, EINVAL, errorLine } from '../errors.js';
import { ApiClient } from '../api/client.js';
import { eventFromMsg } from '../api/convert.js';
import { DirectEventSource, formatEvent, type MonitorEvent } from './events.js';

export interface MonitorArgs {
  drops: boolean;
  json: boolean;
  perSec: number;
  count: number;
  timeoutMs: number;
}

export function parseMonitorArgs(words: readonly string[], json: boolean): MonitorArgs {
  const a: MonitorArgs = { drops: false, json, perSec: 0, count: 0, timeoutMs: 0 };
  const num = (w: string, v: string | undefined, min: number): number => {
    const n = Number(v);
    if (v === undefined || !Number.isFinite(n) || n < min) throw new IvbError('IPVLAN_E_USAGE', `monitor: ${w} takes a number (at least ${min})`, EINVAL);
    return n;
  };
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    if (w === '--drops' || w === 'drops') a.drops = true;
    else if (w === '-j' || w === '--json' || w === '-json') a.json = true;
    else if (w === '--rate') a.perSec = Math.round(num(w, words[++i], 1));
    else if (w === '--count' || w === '-c') a.count = Math.round(num(w, words[++i], 1));
    else if (w === '--timeout') a.timeoutMs = Math.round(num(w, words[++i], 0) * 1000);
    else throw new IvbError('IPVLAN_E_USAGE', `monitor: unknown argument "${w}" (monitor [--drops] [-j] [--rate N] [--count N] [--timeout S])`, EINVAL);
  }
  return a;
}

export async function runMonitor(a: MonitorArgs): Promise<number> {
  const print = (e: MonitorEvent): void => {
    process.stdout.write((a.json ? JSON.stringify(e) : formatEvent(e)) + '\n');
  };
  const client = await ApiClient.tryConfigured();
  let seen = 0;
  return new Promise<number>((resolve) => {
    let done = false;
    let cleanup: () => void = () => undefined;
    const finish = (code: number): void => {
      if (done) return;
      done = true;
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      process.off('SIGHUP', onSignal);
      if (timer) clearTimeout(timer);
      try {
        cleanup();
      } finally {
        resolve(code);
      }
    };
    const onSignal = (): void => finish(0);
    const onEvent = (e: MonitorEvent): void => {
      if (done) return;
      print(e);
      seen++;
      if (a.count > 0 && seen >= a.count) finish(0);
    };
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    process.once('SIGHUP', onSignal);
    const timer = a.timeoutMs > 0 ? setTimeout(() => finish(0), a.timeoutMs) : null;
    const what = a.drops ? 'drops' : 'every decision';
    if (client) {
      cleanup = () => client.close();
      client
        .stream({ events: { dropsOnly: a.drops, perSec: a.perSec } }, (r) => {
          if (r.event) onEvent(eventFromMsg(r.event));
        })
        .then(
          (r) => {
            if (r.error) process.stderr.write(`ipvlan-bpf: ${r.error.message}\n`);
            finish(r.error ? 1 : 0);
          },
          (e: unknown) => {
            if (!done) process.stderr.write(`ipvlan-bpf: ${errorLine(e)}\n`);
            finish(done ? 0 : 1);
          },
        );
      process.stderr.write(`monitoring ${what} through the agent (Ctrl-C to stop)\n`);
      return;
    }
    try {
      const src = new DirectEventSource({ drops: a.drops, perSec: a.perSec }, onEvent, (e) => {
        process.stderr.write(`ipvlan-bpf: ${errorLine(e)}\n`);
        finish(1);
      });
      cleanup = () => src.stop();
    } catch (e) {
      process.stderr.write(`ipvlan-bpf: ${errorLine(e)}\n`);
      finish(1);
      return;
    }
    process.stderr.write(`monitoring ${what} (Ctrl-C to stop)\n`);
  });
}
