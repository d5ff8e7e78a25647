// SPDX-License-Identifier: GPL-2.0-only
/** `ipvlan-bpf stats [[dev] DEVICE] [-j] [-p] [--watch [SECONDS]]` */
import { IvbError, EINVAL, ENODEV } from '../errors.js';
import { ApiClient } from '../api/client.js';
import { statsFromMsg } from '../api/convert.js';
import { formatTable, selectDevices, takeSnapshot } from './format.js';
import { rates, type StatsSnapshot } from './snapshot.js';

export interface StatsArgs {
  device: string | null;
  json: boolean;
  pretty: boolean;
  watch: boolean;
  intervalMs: number;
  /** stop after this many --watch rounds (0: until Ctrl-C); for scripts and tests */
  count: number;
}

export function parseStatsArgs(words: readonly string[], json: boolean, pretty: boolean): StatsArgs {
  const a: StatsArgs = { device: null, json, pretty, watch: false, intervalMs: 1000, count: 0 };
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    if (w === '-j' || w === '--json' || w === '-json') a.json = true;
    else if (w === '-p' || w === '--pretty') a.pretty = true;
    else if (w === '--watch' || w === '-w' || w === 'watch') {
      a.watch = true;
      const next = words[i + 1];
      if (next !== undefined && /^\d+(\.\d+)?$/.test(next)) {
        a.intervalMs = Math.max(100, Math.round(Number(next) * 1000));
        i++;
      }
    } else if (w === '--count' || w === '-c') {
      const v = Number(words[++i]);
      if (!Number.isInteger(v) || v < 1) throw new IvbError('IPVLAN_E_USAGE', 'stats: --count takes a positive number', EINVAL);
      a.count = v;
    } else if (w === 'dev') {
      const v = words[++i];
      if (!v) throw new IvbError('IPVLAN_E_USAGE', 'stats: "dev" needs a device name', EINVAL);
      a.device = v;
    } else if (!w.startsWith('-') && a.device === null) a.device = w;
    else throw new IvbError('IPVLAN_E_USAGE', `stats: unknown argument "${w}" (stats [DEVICE] [-j] [--watch [SECONDS]])`, EINVAL);
  }
  return a;
}

/** A snapshot through the agent when it serves its API, else read here. */
async function snapshot(client: ApiClient | null, device: string | null): Promise<StatsSnapshot> {
  if (!client) return takeSnapshot();
  const r = await client.call({ stats: device === null ? {} : { device } });
  if (!r.stats) throw new IvbError('IPVLAN_E_AGENT', 'agent API: stats answered without a snapshot');
  const s = statsFromMsg(r.stats);
  if (device !== null && s.ports.length === 0) {
    throw new IvbError('IPVLAN_E_NO_DEVICE', `Device "${device}" is not an ipvlan-bpf slave or master.`, ENODEV);
  }
  return s;
}

export async function runStats(a: StatsArgs, out: (s: string) => void = (s) => process.stdout.write(s)): Promise<number> {
  const client = await ApiClient.tryConfigured();
  try {
    const first = await snapshot(client, a.device);
    const devices = selectDevices(first, a.device);
    if (!a.watch) {
      out(a.json ? JSON.stringify(devices, null, a.pretty ? 2 : undefined) + '\n' : formatTable(devices) + '\n');
      return 0;
    }
    let prev = first;
    let rounds = 0;
    let stop = false;
    const onSignal = (): void => {
      stop = true;
    };
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    try {
      while (!stop) {
        await new Promise((r) => setTimeout(r, a.intervalMs));
        if (stop) break;
        const now = await snapshot(client, a.device);
        const r = rates(prev, now).filter((d) => a.device === null || d.ifname === a.device);
        prev = now;
        if (a.json) out(JSON.stringify({ time: new Date(now.time_ms).toISOString(), interval_ms: a.intervalMs, rates: r }) + '\n');
        else out(`${new Date(now.time_ms).toISOString().slice(11, 19)} (per second)\n${formatTable(r, { rate: true })}\n\n`);
        rounds++;
        if (a.count > 0 && rounds >= a.count) break;
      }
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
    return 0;
  } finally {
    client?.close();
  }
}
