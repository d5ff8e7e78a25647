// SPDX-License-Identifier: GPL-2.0-only
/*
 * `ipvlan-bpf monitor`: every provoked reason shows up as events under its
 * own label, exactly as many as frames were sent; --drops shows drops only;
 * events are switched on while the monitor runs and put back after, also
 * when it runs through the agent's event stream.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { CLI, TestEnv, run, sendRaw, waitUntil } from './lib/topo.js';
import {
  A_MAC,
  IP,
  ObsAgent,
  SLAVE_DOWN_FRAME,
  WIRE0_MAC,
  buildObsTopo,
  dropCases,
  provokePrivate,
  s1Down,
  s1Up,
  type ObsTopo,
} from './lib/obs-topo.js';
import { echoReplyFrame } from './lib/frames.js';

const env = new TestEnv('monitor', 'ivbmo');
// every frame decided on the table as it is: with the slow path a frame to or
// from an address nobody owns yet is first held (counted "held"), then decided
// again when the agent sends it back (test/first-packet.test.ts covers that)
env.env.IPVLAN_BPF_SLOWPATH = '0';
const sockDir = mkdtempSync(join(tmpdir(), 'ivb-monitor-'));
const sock = join(sockDir, 'api.sock');
let t: ObsTopo;
let agent: ObsAgent;

interface Ev {
  master: string;
  slave: string;
  direction: string;
  action: string;
  reason: string;
  summary: string;
  len: number;
}

class Monitor {
  readonly proc: ChildProcess;
  readonly out: string[] = [];
  readonly err: string[] = [];
  readonly exit: Promise<number>;

  constructor(args: string[], extraEnv: NodeJS.ProcessEnv) {
    this.proc = spawn(process.execPath, [CLI, 'monitor', ...args], { env: { ...env.env, ...extraEnv }, stdio: ['ignore', 'pipe', 'pipe'] });
    createInterface({ input: this.proc.stdout! }).on('line', (l) => this.out.push(l));
    createInterface({ input: this.proc.stderr! }).on('line', (l) => this.err.push(l));
    this.exit = new Promise((r) => this.proc.once('exit', (c) => r(c ?? -1)));
    env.onCleanup(() => this.proc.kill('SIGKILL'));
  }

  async ready(): Promise<void> {
    await waitUntil('monitor to start', () => this.err.some((l) => /^monitoring /.test(l)), 10_000, 20);
  }

  events(): Ev[] {
    return this.out.map((l) => JSON.parse(l) as Ev);
  }

  async stop(): Promise<number> {
    this.proc.kill('SIGINT');
    return this.exit;
  }
}

/** ivb_settings[0].events as the kernel has it (bpftool, independent of our code). */
function eventsSetting(): number {
  const r = run('bpftool', ['-j', 'map', 'lookup', 'pinned', join(env.pinDir, 'maps', 'ivb_settings'), 'key', '0', '0', '0', '0']);
  if (r.status !== 0) throw new Error(r.stderr);
  const v = (JSON.parse(r.stdout) as { value: string[] }).value.map((b) => parseInt(b, 16));
  return v[0]! | (v[1]! << 8);
}

function countBy(evs: Ev[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const e of evs) if (e.reason !== 'none') out[e.reason] = (out[e.reason] ?? 0) + 1;
  return out;
}

beforeAll(async () => {
  agent = new ObsAgent(env, ['--api', sock]);
  await agent.line(/agent: started/);
  t = await buildObsTopo(env);
});

afterAll(async () => {
  await env.cleanup();
  rmSync(sockDir, { recursive: true, force: true });
});

describe.each([
  ['directly from the ring', { IPVLAN_BPF_API: 'off' }],
  ['through the agent API', {}],
])('monitor -j %s', (_how, extraEnv) => {
  it('shows every provoked reason, once per frame, and restores the setting', async () => {
    expect(eventsSetting()).toBe(0);
    const m = new Monitor(['-j'], extraEnv);
    let code: number;
    const expected: Record<string, number> = {};
    try {
      await m.ready();
      expect(eventsSetting()).toBe(2);
      for (const c of dropCases()) {
        c.send(t);
        expected[c.reason] = (expected[c.reason] ?? 0) + c.count;
      }
      await provokePrivate(t, 2);
      expected.private = 2;
      // last: while s1 is down, frames for it from s0 go to the master (and in again as slave_down)
      await s1Down(t);
      sendRaw(t.wire, 'wp0', SLAVE_DOWN_FRAME, 3);
      expected.slave_down = 3;
      const total = Object.values(expected).reduce((a, b) => a + b, 0);
      await waitUntil('all events', () => countBy(m.events()) && Object.values(countBy(m.events())).reduce((a, b) => a + b, 0) >= total, 10_000, 50);
    } finally {
      code = await m.stop();
      await s1Up(t);
    }
    expect(code).toBe(0);
    expect(countBy(m.events())).toEqual(expected);
    const tooBig = m.events().find((e) => e.reason === 'too_big')!;
    expect(tooBig).toMatchObject({ master: 'eth0m', slave: 's0', direction: 'from_slave', action: 'drop', len: 1400 });
    expect(tooBig.summary).toContain(`ip ${IP.s0} > ${IP.s1}`);
    const noOwner = m.events().find((e) => e.reason === 'no_owner')!;
    expect(noOwner).toMatchObject({ master: 'eth0m', slave: '', direction: 'from_wire', action: 'pass' });
    expect(eventsSetting()).toBe(0);
  });

  it('--drops shows drops only; the text form is one line per event', async () => {
    const m = new Monitor(['--drops'], extraEnv);
    try {
      await m.ready();
      expect(eventsSetting()).toBe(1);
      sendRaw(t.wire, 'wp0', echoReplyFrame(A_MAC, WIRE0_MAC, IP.wire0, IP.nobody0), 2); // a pass: not shown
      sendRaw(t.ns.s0, 's0', echoReplyFrame(A_MAC, A_MAC, IP.s0, IP.s1, 1400), 1);
      await waitUntil('the drop line', () => m.out.length >= 1, 10_000, 50);
      await new Promise((r) => setTimeout(r, 300));
    } finally {
      expect(await m.stop()).toBe(0);
    }
    expect(m.out.length).toBe(1);
    expect(m.out[0]).toMatch(/^\d\d:\d\d:\d\d\.\d{3} eth0m s0 slave> drop too_big: 02:00:00:00:10:02 > 02:00:00:00:10:02 ip 198\.18\.10\.10 > 198\.18\.10\.11 ttl 64 icmp echo reply len 1400$/);
    expect(eventsSetting()).toBe(0);
  });
});

describe('the events setting', () => {
  it('goes back to what it was when two monitors overlap, in either order', async () => {
    const a = new Monitor(['--drops', '-j'], { IPVLAN_BPF_API: 'off' });
    await a.ready();
    expect(eventsSetting()).toBe(1);
    const b = new Monitor(['-j'], { IPVLAN_BPF_API: 'off' });
    await b.ready();
    expect(eventsSetting()).toBe(2);
    expect(await a.stop()).toBe(0);
    expect(eventsSetting()).toBe(2);
    expect(await b.stop()).toBe(0);
    expect(eventsSetting()).toBe(0);
  });

  it('a monitor killed with SIGKILL leaves a dead lease the next one ignores', async () => {
    const a = new Monitor(['-j'], { IPVLAN_BPF_API: 'off' });
    await a.ready();
    a.proc.kill('SIGKILL');
    await a.exit;
    expect(eventsSetting()).toBe(2);
    const b = new Monitor(['--drops', '-j'], { IPVLAN_BPF_API: 'off' });
    await b.ready();
    expect(await b.stop()).toBe(0);
    // the dead lease's "saved" setting (off) is what comes back
    expect(eventsSetting()).toBe(0);
    expect(agent.done).toBe(false);
  });
});
