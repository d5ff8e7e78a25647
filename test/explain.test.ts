// SPDX-License-Identifier: GPL-2.0-only
/*
 * `ipvlan-bpf explain` against real traffic: for frames covering every
 * branch of both programs, the verdict and reason explain prints are the
 * action and reason of the counter rows the same frame, sent for real,
 * increments; explain itself changes no counter.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestEnv, sendRaw } from './lib/topo.js';
import {
  A_MAC,
  B_MAC,
  IP,
  ObsAgent,
  SLAVE_DOWN_FRAME,
  WIRE0_MAC,
  WIRE1_MAC,
  buildObsTopo,
  dropCases,
  s1Down,
  s1Up,
  type ObsTopo,
} from './lib/obs-topo.js';
import { echoReplyFrame, etherFrame, udp4Frame } from './lib/frames.js';
import { counters } from './lib/hard-topo.js';
import type { CounterRow } from '../controller/src/stats/counters.js';
import { IvbAction, IvbDropReasonTable } from '../maps/generated.js';

const env = new TestEnv('explain', 'ivbex');
// every frame decided on the table as it is: with the slow path a frame to or
// from an address nobody owns yet is first held (counted "held"), then decided
// again when the agent sends it back (test/first-packet.test.ts covers that)
env.env.IPVLAN_BPF_SLOWPATH = '0';
let t: ObsTopo;

interface Explained {
  verdict: string;
  reason: string;
  target: string;
  fanout_copies: number;
  program: string;
}

interface Case {
  name: string;
  master: string;
  from: string;
  frame: Buffer;
  /** where to send it for real: [netns, device] */
  via: (t: ObsTopo) => [string, string];
  verdict: string;
  reason: string;
  target?: string;
  copies?: number;
}

const wire0 = (t: ObsTopo): [string, string] => [t.wire, 'wp0'];
const wire1 = (t: ObsTopo): [string, string] => [t.wire, 'wp1'];
const s0 = (t: ObsTopo): [string, string] => [t.ns.s0, 's0'];
const s2 = (t: ObsTopo): [string, string] => [t.ns.s2, 's2'];

const CASES: Case[] = [
  // master ingress
  { name: 'wire unicast to a slave', master: 'eth0m', from: 'wire', frame: echoReplyFrame(A_MAC, WIRE0_MAC, IP.wire0, IP.s0), via: wire0, verdict: 'deliver', reason: 'none', target: 's0' },
  { name: 'wire unicast to nobody', master: 'eth0m', from: 'wire', frame: echoReplyFrame(A_MAC, WIRE0_MAC, IP.wire0, IP.nobody0), via: wire0, verdict: 'pass', reason: 'no_owner' },
  { name: 'wire broadcast, l2', master: 'eth0m', from: 'wire', frame: udp4Frame({ dmac: 'ff:ff:ff:ff:ff:ff', smac: WIRE0_MAC, src: IP.wire0, dst: '198.18.10.255' }), via: wire0, verdict: 'pass', reason: 'none', copies: 2 },
  { name: 'wire non-IP frame', master: 'eth0m', from: 'wire', frame: etherFrame(A_MAC, WIRE0_MAC, 0x88b5), via: wire0, verdict: 'pass', reason: 'none' },
  { name: 'wire unicast to an l3 slave', master: 'eth1m', from: 'wire', frame: echoReplyFrame(B_MAC, WIRE1_MAC, IP.wire1, IP.s3), via: wire1, verdict: 'deliver', reason: 'none', target: 's3' },
  { name: 'wire broadcast, l3', master: 'eth1m', from: 'wire', frame: udp4Frame({ dmac: 'ff:ff:ff:ff:ff:ff', smac: WIRE1_MAC, src: IP.wire1, dst: '198.18.11.255' }), via: wire1, verdict: 'pass', reason: 'no_owner' },
  // slave egress, l2
  { name: 'l2 sibling', master: 'eth0m', from: 's0', frame: echoReplyFrame(A_MAC, A_MAC, IP.s0, IP.s1), via: s0, verdict: 'deliver', reason: 'none', target: 's1' },
  { name: 'l2 to the wire', master: 'eth0m', from: 's0', frame: echoReplyFrame(WIRE0_MAC, A_MAC, IP.s0, IP.wire0), via: s0, verdict: 'to_wire', reason: 'none', target: 'eth0m' },
  { name: 'l2 to the master', master: 'eth0m', from: 's0', frame: echoReplyFrame(A_MAC, A_MAC, IP.s0, IP.host0), via: s0, verdict: 'to_master', reason: 'none', target: 'eth0m' },
  { name: 'l2 broadcast from a slave', master: 'eth0m', from: 's0', frame: udp4Frame({ dmac: 'ff:ff:ff:ff:ff:ff', smac: A_MAC, src: IP.s0, dst: '198.18.10.255' }), via: s0, verdict: 'to_wire', reason: 'none', copies: 1, target: 'eth0m' },
  // slave egress, l3
  { name: 'l3 sibling', master: 'eth1m', from: 's2', frame: echoReplyFrame(B_MAC, B_MAC, IP.s2, IP.s3), via: s2, verdict: 'deliver', reason: 'none', target: 's3' },
  { name: 'l3 routed to the wire', master: 'eth1m', from: 's2', frame: echoReplyFrame(B_MAC, B_MAC, IP.s2, IP.wire1), via: s2, verdict: 'route', reason: 'none' },
  { name: 'l3 to the master namespace', master: 'eth1m', from: 's2', frame: echoReplyFrame(B_MAC, B_MAC, IP.s2, IP.host1), via: s2, verdict: 'route', reason: 'none' },
  // every drop the shared table provokes
  ...dropCases().map((c): Case => ({
    name: `drop ${c.reason}`,
    master: c.master,
    from: c.from,
    frame: c.frame,
    via: c.from === 'wire' ? wire0 : c.from === 's0' ? s0 : s2,
    verdict: c.direction === 'from_wire' ? 'pass' : 'drop',
    reason: c.reason,
  })),
];

function explainFrame(c: Case): Explained {
  return JSON.parse(env.cliOk('-j', 'explain', '--master', c.master, '--from', c.from, '--frame', c.frame.toString('hex'))) as Explained;
}

const ACTION_NAME = new Map(Object.entries(IvbAction).map(([k, v]) => [v, k.toLowerCase()]));
const REASON_LABEL = new Map(IvbDropReasonTable.map((r) => [r.value, r.label]));

/** rows that grew between two reads, as "action/reason/direction" -> packets */
function grown(a: CounterRow[], b: CounterRow[]): Map<string, number> {
  const key = (r: CounterRow): string => `${r.portId}/${r.ifindex}/${r.direction}/${r.action}/${r.reason}`;
  const before = new Map(a.map((r) => [key(r), r.packets]));
  const out = new Map<string, number>();
  for (const r of b) {
    const d = r.packets - (before.get(key(r)) ?? 0);
    if (d > 0) {
      const k = `${ACTION_NAME.get(r.action)}/${REASON_LABEL.get(r.reason)}/${r.direction}`;
      out.set(k, (out.get(k) ?? 0) + d);
    }
  }
  return out;
}

beforeAll(async () => {
  const agent = new ObsAgent(env, []);
  await agent.line(/agent: started/);
  t = await buildObsTopo(env);
});

afterAll(async () => {
  await env.cleanup();
});

describe('explain agrees with real traffic', () => {
  it.each(CASES.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    const r0 = counters(env);
    const e = explainFrame(c);
    // explain runs the programs without counting
    expect(grown(r0, counters(env)).size).toBe(0);
    expect({ verdict: e.verdict, reason: e.reason }).toEqual({ verdict: c.verdict, reason: c.reason });
    if (c.target !== undefined) expect(e.target).toBe(c.target);
    expect(e.fanout_copies).toBe(c.copies ?? 0);
    expect(e.program).toBe(c.from === 'wire' ? 'master_ingress' : 'slave_egress');

    const before = counters(env);
    const [ns, d] = c.via(t);
    sendRaw(ns, d, c.frame, 3);
    const g = grown(before, counters(env));
    const dir = c.from === 'wire' ? 0 : 1;
    // the frame's own decision, three times
    expect(g.get(`${e.verdict}/${e.reason}/${dir}`), JSON.stringify([...g])).toBe(3);
    if (c.copies) expect(g.get(`fanout_copy/none/${dir}`)).toBe(3 * c.copies);
  });

  it('private mode and a slave that is down, against real frames', async () => {
    const priv = echoReplyFrame(A_MAC, A_MAC, IP.s0, IP.s1);
    env.cliOk('-n', t.ns.s0, 'link', 'set', 'dev', 's0', 'type', 'ipvlan', 'mode', 'l2', 'private');
    try {
      expect(explainFrame({ name: '', master: 'eth0m', from: 's0', frame: priv, via: s0, verdict: '', reason: '' })).toMatchObject({ verdict: 'drop', reason: 'private' });
      const before = counters(env);
      sendRaw(t.ns.s0, 's0', priv, 2);
      expect(grown(before, counters(env)).get('drop/private/1')).toBe(2);
    } finally {
      env.cliOk('-n', t.ns.s0, 'link', 'set', 'dev', 's0', 'type', 'ipvlan', 'mode', 'l2', 'bridge');
    }
    await s1Down(t);
    try {
      expect(explainFrame({ name: '', master: 'eth0m', from: 'wire', frame: SLAVE_DOWN_FRAME, via: wire0, verdict: '', reason: '' })).toMatchObject({ verdict: 'pass', reason: 'slave_down' });
      const before = counters(env);
      sendRaw(t.wire, 'wp0', SLAVE_DOWN_FRAME, 2);
      expect(grown(before, counters(env)).get('pass/slave_down/0')).toBe(2);
    } finally {
      await s1Up(t);
    }
  });

  it('builds frames from --src/--dst/--proto as the sender would', () => {
    const run = (...a: string[]): Explained => JSON.parse(env.cliOk('-j', 'explain', ...a)) as Explained;
    expect(run('--master', 'eth0m', '--src', IP.wire0, '--dst', IP.s1, '--proto', 'udp')).toMatchObject({ verdict: 'deliver', target: 's1' });
    expect(run('--master', 'eth0m', '--from', 's0', '--src', IP.s0, '--dst', IP.s1, '--proto', 'tcp')).toMatchObject({ verdict: 'deliver', target: 's1' });
    expect(run('--master', 'eth0m', '--from', 's0', '--src', IP.s0, '--dst', IP.wire0)).toMatchObject({ verdict: 'to_wire' });
    expect(run('--master', 'eth0m', '--from', 's0', '--src', '198.18.10.77', '--dst', IP.wire0)).toMatchObject({ verdict: 'drop', reason: 'spoofed_source' });
    expect(run('--master', 'eth1m', '--from', 's2', '--src', IP.s2, '--dst', IP.unreachable)).toMatchObject({ verdict: 'drop', reason: 'fib_lookup_failed' });
    expect(run('--master', 'eth1m', '--from', 's2', '--src', IP.s2, '--dst', '224.0.0.251', '--proto', 'udp')).toMatchObject({ verdict: 'drop', reason: 'l3_multicast' });
    expect(run('--master', 'eth0m', '--src', IP.wire0, '--dst', IP.s0, '--proto', 'arp')).toMatchObject({ verdict: 'pass', fanout_copies: 2 });
    const text = env.cliOk('explain', '--master', 'eth1m', '--from', 's2', '--src', IP.s2, '--dst', IP.unreachable);
    expect(text).toMatch(/^verdict: drop \(dropped\), TC_ACT_SHOT$/m);
    expect(text).toMatch(/^reason:  fib_lookup_failed: no route in the master's namespace/m);
  });

  it('refuses what it cannot explain, with usage errors', () => {
    expect(env.cli(['explain', '--master', 'eth0m']).status).toBe(2);
    expect(env.cli(['explain', '--master', 'eth0m', '--frame', 'abc']).status).toBe(2);
    expect(env.cli(['explain', '--master', 'eth0m', '--src', IP.s0, '--dst', '2001:db8::1']).status).toBe(2);
    const r = env.cli(['explain', '--master', 'nosuch', '--src', IP.s0, '--dst', IP.s1]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/not the master of any ipvlan-bpf slave/);
    expect(env.cli(['explain', '--master', 'eth0m', '--from', 'nosuch', '--src', IP.s0, '--dst', IP.s1]).stderr).toMatch(/not a slave of eth0m/);
  });
});
