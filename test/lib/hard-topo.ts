// SPDX-License-Identifier: GPL-2.0-only
/**
 * Helpers for the hardening tests (issue 6) on top of topo.ts (whose
 * sendRaw sends the crafted frames of frames.ts from inside a slave's
 * namespace): the pinned per-CPU counters read back, nft packet counters on
 * the wire, a bounded ping flow with its loss, and calls into the controller
 * library (dist/) in a child process with the test's private state.
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { IvbDropReason } from '../../maps/generated.js';
import { readCounterRows, type CounterRow } from '../../controller/src/stats/counters.js';
import { Agent, REPO, configureSlave, ip, must, run, waitUntil, type Result, type TestEnv, type Wire } from './topo.js';

export { IvbDropReason };

// ---------------------------------------------------------------------------
// Counters and state

/** Rows of the private state's pinned ivb_counters (summed over CPUs). */
export function counters(env: TestEnv): CounterRow[] {
  return readCounterRows(join(env.pinDir, 'maps'));
}

/** Drops of REASON counted for the slave whose host-side peer is PEERIFINDEX. */
export function drops(env: TestEnv, peerIfindex: number, reason: number): number {
  return counters(env)
    .filter((r) => r.ifindex === peerIfindex && r.direction === 1 && r.action === 6 && r.reason === reason)
    .reduce((n, r) => n + r.packets, 0);
}

/**
 * An nft counter per source address in NS's prerouting (inet family: what
 * reaches the namespace's IP stack), read back by `sawFrom`.
 */
export function installSourceCounters(ns: string, sources: string[]): void {
  const rules = sources.map((s) => `    ${s.includes(':') ? 'ip6' : 'ip'} saddr ${s} counter`).join('\n');
  const nft = `table inet ivbhard {\n  chain pre {\n    type filter hook prerouting priority -300; policy accept;\n${rules}\n  }\n}\n`;
  const file = `/tmp/ivbhard-${process.pid}-${ns}.nft`;
  writeFileSync(file, nft);
  must('ip', ['netns', 'exec', ns, 'nft', '-f', file]);
  run('rm', ['-f', file]);
}

export function sawFrom(ns: string, src: string): number {
  const out = must('ip', ['netns', 'exec', ns, 'nft', 'list', 'chain', 'inet', 'ivbhard', 'pre']);
  const line = out.split('\n').find((l) => l.includes(`saddr ${src} `));
  return Number(line?.match(/packets (\d+)/)?.[1] ?? NaN);
}

/** The peer ifindex of a slave from `ipvlan-bpf -j link show`. */
export function peerIfindexOf(env: TestEnv, ifname: string): number {
  const s = env.slave(ifname);
  if (!s?.ipvlan_bpf.peer_ifindex) throw new Error(`no peer ifindex for ${ifname}`);
  return s.ipvlan_bpf.peer_ifindex;
}

// ---------------------------------------------------------------------------
// Traffic

export interface Flow {
  done: Promise<{ sent: number; received: number; out: string }>;
}

/** `ping -i INTERVAL -c COUNT` from NS to ADDR in the background (bounded: COUNT packets). */
export function pingFlow(ns: string, addr: string, count: number, intervalS = 0.01): Flow {
  const p = spawn('ip', ['netns', 'exec', ns, 'ping', '-q', '-i', String(intervalS), '-c', String(count), '-W', '1', addr], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  p.stdout.on('data', (d: Buffer) => (out += d.toString()));
  p.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const done = new Promise<{ sent: number; received: number; out: string }>((res) => {
    p.on('exit', () => {
      const m = out.match(/(\d+) packets transmitted, (\d+) (?:packets )?received/);
      res({ sent: Number(m?.[1] ?? NaN), received: Number(m?.[2] ?? NaN), out });
    });
  });
  return { done };
}

// ---------------------------------------------------------------------------
// The controller library, in a child process with the private state

/**
 * Runs an ES module snippet against dist/ in a child node with ENV (the
 * test's private state and pin folder); `lib(path)` imports dist/<path>.
 * Returns the child's result; its stdout's last line is JSON when it prints one.
 */
export function libCall(env: TestEnv, body: string, extraEnv: NodeJS.ProcessEnv = {}): Result {
  const code = `const lib = (p) => import(${JSON.stringify(join(REPO, 'dist'))} + '/' + p);\n${body}`;
  return run(process.execPath, ['--input-type=module', '-e', code], { env: { ...env.env, ...extraEnv }, timeoutMs: 60_000 });
}

/**
 * Starts the agent like TestEnv.startAgent, with a longer deadline for its
 * "started" line (a loaded 2-core machine running other test files), and
 * registers it for cleanup.
 */
export async function startAgentPatient(env: TestEnv, timeoutMs = 30_000): Promise<Agent> {
  const a = new Agent(env.env);
  env.onCleanup(() => a.killGroup());
  await a.waitForLine(/ipvlan-bpf agent: started/, timeoutMs);
  return a;
}

/**
 * The common two-slave world on buildWire's master: l2 slaves ipvl0 in A and
 * ipvl1 in B (addresses A4/A6, B4/B6, routes via the wire's router), the
 * agent started, both IPv4 addresses learned within LEARN_MS.
 */
export async function buildTwoSlaves(
  env: TestEnv,
  w: Wire,
  a: { ns: string; v4: string; v6: string },
  b: { ns: string; v4: string; v6: string },
  learnMs = 15_000,
): Promise<Agent> {
  for (const [name, ns] of [
    ['ipvl0', a.ns],
    ['ipvl1', b.ns],
  ] as const) {
    env.cliOk('-n', w.host, 'link', 'add', 'link', 'eth0m', 'name', name, 'type', 'ipvlan', 'mode', 'l2');
    ip(w.host, 'link', 'set', 'dev', name, 'netns', ns);
  }
  const agent = await startAgentPatient(env);
  configureSlave(a.ns, 'ipvl0', `${a.v4}/24`, `${a.v6}/64`, { gw4: w.routerV4, gw6: w.routerV6 });
  configureSlave(b.ns, 'ipvl1', `${b.v4}/24`, `${b.v6}/64`, { gw4: w.routerV4, gw6: w.routerV6 });
  for (const [dev, addr] of [
    ['ipvl0', a.v4],
    ['ipvl1', b.v4],
  ] as const) {
    await waitUntil(`${addr} learned on ${dev}`, () => env.learned(dev).includes(addr), learnMs, 20);
  }
  return agent;
}
