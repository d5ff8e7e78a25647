// SPDX-License-Identifier: GPL-2.0-only
/*
 * The agent's /metrics (prom-client), read with a line-oriented parser of
 * the exposition format (test/lib/obs-prom.ts): the drop reasons counted
 * under their own labels exactly, rx/tx equal to `stats -j`, map occupancy
 * and capacity, build info; no label value is an address; the endpoint
 * refuses non-loopback addresses.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isIP } from 'node:net';
import { TestEnv } from './lib/topo.js';
import { ObsAgent, buildObsTopo, dev, dropCases, provokePrivate, provokeSlaveDown, statsJson, type ObsTopo } from './lib/obs-topo.js';
import { parseExposition, sampleValue, type Exposition } from './lib/obs-prom.js';

const env = new TestEnv('metrics', 'ivbme');
let t: ObsTopo;
let url = '';

async function scrape(): Promise<Exposition> {
  const r = await fetch(url);
  expect(r.status).toBe(200);
  expect(r.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return parseExposition(await r.text());
}

beforeAll(async () => {
  const agent = new ObsAgent(env, ['--metrics', '127.0.0.1:0']);
  const line = await agent.line(/metrics on http:/);
  url = /(http:\/\/\S+)/.exec(line)![1]!;
  await agent.line(/agent: started/);
  t = await buildObsTopo(env);
});

afterAll(async () => {
  await env.cleanup();
});

describe('/metrics', () => {
  it('counts every provoked reason under its own label, exactly', async () => {
    const before = await scrape();
    const want: Array<{ labels: Record<string, string>; n: number }> = [];
    for (const c of dropCases()) {
      c.send(t);
      const slave = c.device === c.master ? '' : c.device;
      want.push({ labels: { master: c.master, slave, direction: c.direction, reason: c.reason }, n: c.count });
    }
    await provokePrivate(t, 2);
    want.push({ labels: { master: 'eth0m', slave: 's0', direction: 'from_slave', reason: 'private' }, n: 2 });
    await provokeSlaveDown(t, 3);
    want.push({ labels: { master: 'eth0m', slave: '', direction: 'from_wire', reason: 'slave_down' }, n: 3 });
    const after = await scrape();
    expect(after.types.get('ipvlan_bpf_drops_total')).toBe('counter');
    for (const w of want) {
      const d = sampleValue(after, 'ipvlan_bpf_drops_total', w.labels) - sampleValue(before, 'ipvlan_bpf_drops_total', w.labels);
      expect(d, JSON.stringify(w.labels)).toBe(w.n);
    }
  });

  it('rx/tx per device equal stats -j', async () => {
    const e = await scrape();
    const stats = statsJson(t.env, { IPVLAN_BPF_API: 'off' });
    for (const name of ['s0', 's1', 's2', 's3']) {
      const d = dev(stats, name);
      const master = d.link;
      expect(sampleValue(e, 'ipvlan_bpf_rx_packets_total', { master, slave: name })).toBe(d.stats64.rx.packets);
      expect(sampleValue(e, 'ipvlan_bpf_rx_bytes_total', { master, slave: name })).toBe(d.stats64.rx.bytes);
      expect(sampleValue(e, 'ipvlan_bpf_tx_packets_total', { master, slave: name })).toBe(d.stats64.tx.packets);
      expect(sampleValue(e, 'ipvlan_bpf_tx_bytes_total', { master, slave: name })).toBe(d.stats64.tx.bytes);
    }
    const m = dev(stats, 'eth0m');
    expect(sampleValue(e, 'ipvlan_bpf_rx_packets_total', { master: 'eth0m', slave: '' })).toBe(m.stats64.rx.packets);
  });

  it('has map occupancy and capacity, and build info', async () => {
    const e = await scrape();
    // a counter block per port, per slave index (8 191 slaves by default) and per port's deleted slaves
    expect(sampleValue(e, 'ipvlan_bpf_map_capacity', { map: 'ivb_counters' })).toBe(1024 + 8192 + 1024);
    expect(sampleValue(e, 'ipvlan_bpf_map_entries', { map: 'ivb_slaves' })).toBe(4);
    expect(sampleValue(e, 'ipvlan_bpf_map_entries', { map: 'ivb_ports' })).toBe(2);
    expect(sampleValue(e, 'ipvlan_bpf_map_entries', { map: 'ivb_counters' })).toBeGreaterThan(0);
    const build = e.samples.filter((s) => s.name === 'ipvlan_bpf_build_info');
    expect(build.length).toBe(1);
    expect(build[0]!.value).toBe(1);
    expect(build[0]!.labels.version).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('never uses an address as a label value', async () => {
    const e = await scrape();
    for (const s of e.samples.filter((x) => x.name.startsWith('ipvlan_bpf_'))) {
      for (const v of Object.values(s.labels)) expect(isIP(v), `${s.name} ${JSON.stringify(s.labels)}`).toBe(0);
    }
  });

  it('answers 404 elsewhere, and the agent refuses a non-loopback address', async () => {
    const r = await fetch(url.replace('/metrics', '/'));
    expect(r.status).toBe(404);
    const bad = env.cli(['agent', '--metrics', '0.0.0.0:9464']);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/not a loopback address/);
  });
});
