// SPDX-License-Identifier: GPL-2.0-only
/** `ipvlan-bpf stats`: taking a snapshot of the live counters, and printing it as a table or JSON. */
import { listPorts } from '../state.js';
import { IvbError, ENODEV } from '../errors.js';
import { readCounterRows } from './counters.js';
import { buildSnapshot, devicesOf, type DeviceStats, type StatsSnapshot } from './snapshot.js';

/** The live counters of every port, as device statistics. */
export function takeSnapshot(): StatsSnapshot {
  return buildSnapshot(listPorts(), readCounterRows());
}

/**
 * The devices to print: all, or one slave (or master) by name. A name that
 * is no device of any port is an error, as `ip -s link show dev X` says.
 */
export function selectDevices(s: StatsSnapshot, name: string | null): DeviceStats[] {
  const all = devicesOf(s);
  if (name === null) return all;
  const picked = all.filter((d) => d.ifname === name);
  if (picked.length === 0) throw new IvbError('IPVLAN_E_NO_DEVICE', `Device "${name}" is not an ipvlan-bpf slave or master.`, ENODEV);
  // a master named like this prints once even with several ports (never happens: one port per master)
  return picked;
}

function human(n: number): string {
  if (n < 10_000) return String(n);
  const units = ['K', 'M', 'G', 'T'];
  let v = n;
  let u = -1;
  while (v >= 1000 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  return `${v.toFixed(v < 10 ? 2 : v < 100 ? 1 : 0)}${units[u]}`;
}

const HEAD = ['DEVICE', 'ROLE', 'MASTER', 'RX_PKTS', 'RX_BYTES', 'RX_MCAST', 'TX_PKTS', 'TX_BYTES', 'TX_DROP', 'REASONS'];

/** The human table; `rate` adds "/s" to the headings (`--watch`). */
export function formatTable(devices: readonly DeviceStats[], opts: { rate?: boolean; exact?: boolean } = {}): string {
  const num = (n: number): string => (opts.exact || opts.rate ? String(n) : human(n));
  const rows = devices.map((d) => [
    d.ifname,
    d.role,
    d.role === 'master' ? '-' : d.link,
    num(d.stats64.rx.packets),
    num(d.stats64.rx.bytes),
    num(d.stats64.rx.multicast),
    num(d.stats64.tx.packets),
    num(d.stats64.tx.bytes),
    num(d.stats64.tx.dropped),
    Object.entries(d.drops)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([k, v]) => `${k}=${num(v)}`)
      .join(' ') || '-',
  ]);
  const head = opts.rate ? HEAD.map((h, i) => (i >= 3 && i <= 8 ? `${h}/s` : h)) : HEAD;
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : i >= 3 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(head), ...rows.map(line)].join('\n');
}
