// SPDX-License-Identifier: GPL-2.0-only
/**
 * The agent's Prometheus endpoint (prom-client). Every scrape reads the
 * counters afresh: nothing is cached between scrapes, so /metrics is exactly
 * what `ipvlan-bpf stats -j` would print at that moment.
 *
 * Labels are device names, reason labels and directions, never addresses:
 * a label value per IP would make the series count grow with the address
 * table (and addresses are what an operator asks `explain` about, not what a
 * dashboard aggregates).
 */
import { createServer, type Server } from 'node:http';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { isIP } from 'node:net';
import { Counter, Gauge, Registry } from 'prom-client';
import { IvbError, EINVAL, isSysError } from '../errors.js';
import { listPorts } from '../state.js';
import { repoRoot } from '../paths.js';
import { mapOccupancy, readCounterRows, reasonLabel } from '../stats/counters.js';
import { buildSnapshot } from '../stats/snapshot.js';

export interface MetricsSource {
  ports: typeof listPorts;
  rows: typeof readCounterRows;
  occupancy: typeof mapOccupancy;
}

const liveSource: MetricsSource = { ports: listPorts, rows: readCounterRows, occupancy: mapOccupancy };

function version(): string {
  try {
    return String((JSON.parse(readFileSync(join(repoRoot(), 'package.json'), 'utf8')) as { version?: unknown }).version ?? 'unknown');
  } catch (e) {
    // installed without its package.json
    if (isSysError(e, 'ENOENT')) return 'unknown';
    throw e;
  }
}

/** A registry whose collectors read the datapath at scrape time. */
export function createRegistry(source: MetricsSource = liveSource): Registry {
  const registry = new Registry();
  // one read of the counters per scrape, shared by every collector of that scrape
  let cache: { at: number; snapshot: ReturnType<typeof buildSnapshot>; rows: ReturnType<typeof readCounterRows> } | null = null;
  const current = (): NonNullable<typeof cache> => {
    const now = Date.now();
    if (!cache || now - cache.at > 200) {
      const rows = source.rows();
      cache = { at: now, rows, snapshot: buildSnapshot(source.ports(), rows, now) };
    }
    return cache;
  };

  const deviceCounter = (name: string, help: string, pick: (d: ReturnType<typeof buildSnapshot>['ports'][number]['devices'][number]) => number): void => {
    new Counter({
      name,
      help,
      labelNames: ['master', 'slave'] as const,
      registers: [registry],
      collect() {
        this.reset();
        for (const p of current().snapshot.ports) {
          for (const d of p.devices) {
            const v = pick(d);
            // the master's own series has slave="" (an empty label is the same as none in PromQL)
            this.inc({ master: p.master, slave: d.role === 'slave' ? d.ifname : '' }, v);
          }
        }
      },
    });
  };
  deviceCounter('ipvlan_bpf_rx_packets_total', 'Frames received (slave: delivered to it from the wire; master: seen by its ingress program)', (d) => d.stats64.rx.packets);
  deviceCounter('ipvlan_bpf_rx_bytes_total', 'Bytes received (as ipvlan_bpf_rx_packets_total)', (d) => d.stats64.rx.bytes);
  deviceCounter('ipvlan_bpf_tx_packets_total', 'Frames sent (slave: frames it sent that were not dropped; master: frames slaves sent out of it)', (d) => d.stats64.tx.packets);
  deviceCounter('ipvlan_bpf_tx_bytes_total', 'Bytes sent (as ipvlan_bpf_tx_packets_total)', (d) => d.stats64.tx.bytes);

  new Counter({
    name: 'ipvlan_bpf_drops_total',
    help: 'Frames by reason (maps/drop_reasons.def): drops, and the reasons a frame went to the master\'s stack',
    labelNames: ['master', 'slave', 'direction', 'reason'] as const,
    registers: [registry],
    collect() {
      this.reset();
      const { rows } = current();
      const ports = new Map(source.ports().map((p) => [p.portId, p]));
      for (const r of rows) {
        if (r.reason === 0) continue;
        const port = ports.get(r.portId);
        if (!port) continue;
        const slave = r.ifindex === 0 ? '' : (port.slaves.find((s) => s.peerIfindex === r.ifindex)?.name ?? `if${r.ifindex}`);
        this.inc(
          { master: port.master.name, slave, direction: r.direction === 0 ? 'from_wire' : 'from_slave', reason: reasonLabel(r.reason) },
          r.packets,
        );
      }
    },
  });

  const occupancy = (): ReturnType<typeof mapOccupancy> => source.occupancy();
  new Gauge({
    name: 'ipvlan_bpf_map_entries',
    help: 'Entries in a pinned datapath map',
    labelNames: ['map'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const m of occupancy()) this.set({ map: m.name }, m.entries);
    },
  });
  new Gauge({
    name: 'ipvlan_bpf_map_capacity',
    help: 'max_entries of a pinned datapath map',
    labelNames: ['map'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const m of occupancy()) this.set({ map: m.name }, m.capacity);
    },
  });
  const build = new Gauge({
    name: 'ipvlan_bpf_build_info',
    help: 'The agent build: always 1, the labels say which',
    labelNames: ['version', 'nodejs'] as const,
    registers: [registry],
  });
  build.set({ version: version(), nodejs: process.version }, 1);
  return registry;
}

/** "127.0.0.1:9464" / "[::1]:9464" -> host and port; only loopback addresses are accepted. */
export function parseListen(spec: string): { host: string; port: number } {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(spec) ?? /^([^:]+):(\d+)$/.exec(spec);
  if (!m) throw new IvbError('IPVLAN_E_USAGE', `--metrics takes ADDRESS:PORT (e.g. 127.0.0.1:9464), not "${spec}"`, EINVAL);
  let host = m[1]!;
  const port = Number(m[2]);
  if (host === 'localhost') host = '127.0.0.1';
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new IvbError('IPVLAN_E_USAGE', `--metrics: bad port "${m[2]}"`, EINVAL);
  const loopback = (isIP(host) === 4 && host.startsWith('127.')) || (isIP(host) === 6 && (host === '::1' || host === '0:0:0:0:0:0:0:1'));
  if (!loopback) {
    throw new IvbError('IPVLAN_E_USAGE', `--metrics: ${host} is not a loopback address (the endpoint is unauthenticated: put a proxy in front to export it)`, EINVAL);
  }
  return { host, port };
}

export interface MetricsServer {
  server: Server;
  /** the address actually bound (port 0 picks one) */
  address: { host: string; port: number };
  close(): Promise<void>;
}

/** Serves GET /metrics on a loopback address; everything else is 404. */
export async function startMetricsServer(spec: string, registry: Registry = createRegistry()): Promise<MetricsServer> {
  const { host, port } = parseListen(spec);
  const server = createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /metrics\n');
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
      (e: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${e instanceof Error ? e.message : String(e)}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const a = server.address();
  const bound = typeof a === 'object' && a ? { host: a.address, port: a.port } : { host, port };
  return {
    server,
    address: bound,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
