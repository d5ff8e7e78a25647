// SPDX-License-Identifier: GPL-2.0-only
/*
 * `ipvlan-bpf stats`: after a known number of frames on each path, every
 * counter is exactly what was sent (packets and bytes), and every drop
 * reason the tests can provoke is counted under its own label. Read
 * directly and through the agent's API, which must agree.
 *
 * Topology and silence: test/lib/obs-topo.ts (IPv6 off, raw frames nobody
 * answers).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TestEnv, ip, nsExec, sendRaw } from './lib/topo.js';
import {
  A_MAC,
  IP,
  ObsAgent,
  WIRE0_MAC,
  buildObsTopo,
  delta,
  dev,
  dropCases,
  provokePrivate,
  provokeSlaveDown,
  statsJson,
  type ObsTopo,
} from './lib/obs-topo.js';
import { echoReplyFrame, udp4Frame } from './lib/frames.js';

const env = new TestEnv('stats', 'ivbst');
const sockDir = mkdtempSync(join(tmpdir(), 'ivb-stats-'));
const sock = join(sockDir, 'api.sock');
let t: ObsTopo;
const DIRECT = { IPVLAN_BPF_API: 'off' };

beforeAll(async () => {
  const agent = new ObsAgent(env, ['--api', sock]);
  await agent.line(/agent: started/);
  t = await buildObsTopo(env);
});

afterAll(async () => {
  await env.cleanup();
  rmSync(sockDir, { recursive: true, force: true });
});

describe('stats counts exactly what was sent', () => {
  it('wire -> slave unicast: slave rx and master rx', () => {
    const before = statsJson(env, DIRECT);
    sendRaw(t.wire, 'wp0', echoReplyFrame(A_MAC, WIRE0_MAC, IP.wire0, IP.s0, 98), 7);
    const after = statsJson(env, DIRECT);
    const s0 = delta(dev(before, 's0'), dev(after, 's0'));
    expect(s0.rx).toEqual({ packets: 7, bytes: 7 * 98, dropped: 0, multicast: 0 });
    expect(s0.tx).toEqual({ packets: 0, bytes: 0, dropped: 0, multicast: 0 });
    const m = delta(dev(before, 'eth0m'), dev(after, 'eth0m'));
    expect(m.rx.packets).toBe(7);
    expect(m.rx.bytes).toBe(7 * 98);
    expect(delta(dev(before, 's1'), dev(after, 's1')).rx.packets).toBe(0);
  });

  it('wire broadcast: one copy per slave (rx.multicast), the original to the master', () => {
    const frame = udp4Frame({ dmac: 'ff:ff:ff:ff:ff:ff', smac: WIRE0_MAC, src: IP.wire0, dst: '198.18.10.255' });
    const before = statsJson(env, DIRECT);
    sendRaw(t.wire, 'wp0', frame, 3);
    const after = statsJson(env, DIRECT);
    for (const s of ['s0', 's1']) {
      expect(delta(dev(before, s), dev(after, s)).rx).toEqual({ packets: 3, bytes: 3 * frame.length, dropped: 0, multicast: 3 });
    }
    const m = delta(dev(before, 'eth0m'), dev(after, 'eth0m'));
    expect(m.rx.packets).toBe(3);
    expect(m.to_stack).toBe(3);
  });

  it('slave -> sibling and slave -> wire: sender tx, receiver rx, master tx for the wire', () => {
    const before = statsJson(env, DIRECT);
    sendRaw(t.ns.s0, 's0', echoReplyFrame(A_MAC, A_MAC, IP.s0, IP.s1, 120), 4);
    sendRaw(t.ns.s0, 's0', echoReplyFrame(WIRE0_MAC, A_MAC, IP.s0, IP.wire0, 100), 5);
    const after = statsJson(env, DIRECT);
    const s0 = delta(dev(before, 's0'), dev(after, 's0'));
    expect(s0.tx).toEqual({ packets: 9, bytes: 4 * 120 + 5 * 100, dropped: 0, multicast: 0 });
    expect(s0.sibling_tx).toBe(4);
    expect(s0.to_wire).toBe(5);
    const m = delta(dev(before, 'eth0m'), dev(after, 'eth0m'));
    expect(m.tx.packets).toBe(5);
    expect(m.tx.bytes).toBe(500);
    // the receiver's side of a sibling's frame (direction-2 rows): in its rx, exactly
    expect(delta(dev(before, 's1'), dev(after, 's1')).rx).toEqual({ packets: 4, bytes: 4 * 120, dropped: 0, multicast: 0 });
  });

  it('real pings between siblings count request and reply, one each way', () => {
    // static neighbours: no ARP on the way, so the pings are all there is
    ip(t.ns.s0, 'neigh', 'replace', IP.s1, 'lladdr', A_MAC, 'dev', 's0', 'nud', 'permanent');
    ip(t.ns.s1, 'neigh', 'replace', IP.s0, 'lladdr', A_MAC, 'dev', 's1', 'nud', 'permanent');
    const before = statsJson(env, DIRECT);
    const r = nsExec(t.ns.s0, 'ping', ['-c', '5', '-i', '0.2', '-W', '1', IP.s1], { timeoutMs: 10_000 });
    expect(r.status, r.stdout + r.stderr).toBe(0);
    const after = statsJson(env, DIRECT);
    for (const s of ['s0', 's1']) {
      const d = delta(dev(before, s), dev(after, s));
      expect(d.tx, s).toEqual({ packets: 5, bytes: 5 * 98, dropped: 0, multicast: 0 });
      expect(d.sibling_tx, s).toBe(5);
    }
  });
});

describe('drops by reason', () => {
  it('counts each provoked reason under its own label, on the right device, exactly', async () => {
    const before = statsJson(env, DIRECT);
    const expected = new Map<string, Record<string, number>>();
    const add = (device: string, reason: string, n: number): void => {
      const e = expected.get(device) ?? {};
      e[reason] = (e[reason] ?? 0) + n;
      expected.set(device, e);
    };
    for (const c of dropCases()) {
      c.send(t);
      add(c.device, c.reason, c.count);
    }
    await provokePrivate(t, 2);
    add('s0', 'private', 2);
    await provokeSlaveDown(t, 3);
    add('eth0m', 'slave_down', 3);
    const after = statsJson(env, DIRECT);
    for (const name of ['eth0m', 'eth1m', 's0', 's1', 's2', 's3']) {
      const d = delta(dev(before, name), dev(after, name));
      expect(d.drops, `drops of ${name}`).toEqual(expected.get(name) ?? {});
    }
    // drops of slaves are their tx.dropped; the master-stack reasons are no drops of a slave
    expect(delta(dev(before, 's0'), dev(after, 's0')).tx.dropped).toBe(2 + 3 + 4 + 2);
    expect(delta(dev(before, 's2'), dev(after, 's2')).tx.dropped).toBe(2 + 3 + 2 + 3);
  });
});

describe('output forms', () => {
  it('the agent API gives the same numbers as the direct read', () => {
    const direct = statsJson(env, DIRECT);
    const viaApi = statsJson(env, {});
    expect(viaApi).toEqual(direct);
  });

  it('stats SLAVE prints that slave only; an unknown name fails like ip does', () => {
    const one = statsJson(env, DIRECT, 's2');
    expect(one.map((d) => d.ifname)).toEqual(['s2']);
    expect(one[0]!.stats64.rx).toHaveProperty('multicast');
    const r = env.cli(['stats', 'nosuchdev']);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/Device "nosuchdev"/);
  });

  it('the table names every device and reason', () => {
    const text = env.cliOk('stats');
    expect(text.split('\n')[0]).toMatch(/^DEVICE\s+ROLE\s+MASTER\s+RX_PKTS/);
    for (const name of ['eth0m', 'eth1m', 's0', 's1', 's2', 's3']) expect(text).toMatch(new RegExp(`^${name}\\s`, 'm'));
    expect(text).toMatch(/too_big=2/);
  });

  it('--watch prints per-second rates of what is sent meanwhile', async () => {
    const { spawn } = await import('node:child_process');
    const { CLI } = await import('./lib/topo.js');
    const p = spawn(process.execPath, [CLI, 'stats', 's0', '-j', '--watch', '1', '--count', '2'], { env: { ...env.env, ...DIRECT } });
    let out = '';
    p.stdout.on('data', (b: Buffer) => (out += b.toString()));
    await new Promise((r) => setTimeout(r, 300));
    sendRaw(t.wire, 'wp0', echoReplyFrame(A_MAC, WIRE0_MAC, IP.wire0, IP.s0, 98), 10);
    const code = await new Promise<number>((r) => p.once('exit', (c) => r(c ?? -1)));
    expect(code).toBe(0);
    const lines = out.trim().split('\n').map((l) => JSON.parse(l) as { rates: Array<{ ifname: string; stats64: { rx: { packets: number } } }> });
    expect(lines.length).toBe(2);
    const total = lines.reduce((n, l) => n + (l.rates.find((d) => d.ifname === 's0')?.stats64.rx.packets ?? 0), 0);
    expect(total).toBeGreaterThanOrEqual(9);
    expect(total).toBeLessThanOrEqual(11);
  });
});

describe('a slave that goes', () => {
  // last: s1 is deleted
  it("leaves what it counted in its master's totals (they never go back)", async () => {
    sendRaw(t.wire, 'wp0', echoReplyFrame(A_MAC, WIRE0_MAC, IP.wire0, IP.s1, 98), 5);
    const before = dev(statsJson(env, DIRECT), 'eth0m');
    env.cliOk('-n', t.ns.s1, 'link', 'del', 's1');
    const after = statsJson(env, DIRECT);
    expect(after.some((d) => d.ifname === 's1')).toBe(false);
    const m = dev(after, 'eth0m');
    expect(m.stats64.rx.packets).toBe(before.stats64.rx.packets);
    expect(m.stats64.rx.bytes).toBe(before.stats64.rx.bytes);
    expect(m.stats64.tx.packets).toBe(before.stats64.tx.packets);
    expect(m.ipvlan_bpf.sibling_tx).toBe(before.ipvlan_bpf.sibling_tx);
  });
});
