// SPDX-License-Identifier: GPL-2.0-only
/**
 * Helpers for the hardening tests (issue 6) on top of topo.ts: crafted
 * frames sent from inside a slave's namespace with a python3 AF_PACKET
 * socket (what a hostile namespace owner can do: any MAC, any source), the
 * pinned per-CPU counters read back, nft packet counters on the wire, a
 * bounded ping flow with its loss, and calls into the controller library
 * (dist/) in a child process with the test's private state.
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { IvbDropReason } from '../../maps/generated.js';
import { readCounterRows, type CounterRow } from '../../controller/src/stats/counters.js';
import { Agent, REPO, configureSlave, ip, must, run, waitUntil, type Result, type TestEnv, type Wire } from './topo.js';

export { IvbDropReason };

// ---------------------------------------------------------------------------
// Frames

export function macBuf(s: string): Buffer {
  return Buffer.from(s.split(':').map((h) => parseInt(h, 16)));
}

export function v4(s: string): Buffer {
  return Buffer.from(s.split('.').map(Number));
}

export function v6(s: string): Buffer {
  const [h = '', t = ''] = s.split('::');
  const head = h ? h.split(':') : [];
  const tail = s.includes('::') && t ? t.split(':') : [];
  const all = [...head, ...Array<string>(8 - head.length - tail.length).fill('0'), ...tail];
  const b = Buffer.alloc(16);
  all.forEach((g, i) => b.writeUInt16BE(parseInt(g, 16), i * 2));
  return b;
}

function csum(b: Buffer): number {
  let s = 0;
  for (let i = 0; i + 1 < b.length; i += 2) s += b.readUInt16BE(i);
  if (b.length % 2) s += b[b.length - 1]! << 8;
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

function ethHdr(dst: string, src: string, type: number): Buffer {
  const h = Buffer.alloc(14);
  macBuf(dst).copy(h, 0);
  macBuf(src).copy(h, 6);
  h.writeUInt16BE(type, 12);
  return h;
}

/** Ethernet + IPv4 + UDP (valid checksums) */
export function udp4Frame(o: { dmac: string; smac: string; src: string; dst: string; dport?: number }): Buffer {
  const data = Buffer.from('ivb-hardening');
  const u = Buffer.alloc(8 + data.length);
  u.writeUInt16BE(40000, 0);
  u.writeUInt16BE(o.dport ?? 9, 2);
  u.writeUInt16BE(u.length, 4);
  data.copy(u, 8);
  const ip = Buffer.alloc(20);
  ip[0] = 0x45;
  ip.writeUInt16BE(20 + u.length, 2);
  ip[8] = 64;
  ip[9] = 17;
  v4(o.src).copy(ip, 12);
  v4(o.dst).copy(ip, 16);
  ip.writeUInt16BE(csum(ip), 10);
  return Buffer.concat([ethHdr(o.dmac, o.smac, 0x0800), ip, u]);
}

function ipv6Frame(dmac: string, smac: string, src: Buffer, dst: Buffer, nh: number, payload: Buffer, hop = 64): Buffer {
  const h = Buffer.alloc(40);
  h.writeUInt32BE(0x60000000, 0);
  h.writeUInt16BE(payload.length, 4);
  h[6] = nh;
  h[7] = hop;
  src.copy(h, 8);
  dst.copy(h, 24);
  if (nh === 58 || nh === 17) {
    // ICMPv6 or UDP checksum over the pseudo-header (IPv6 UDP without one is dropped by the receiving stack)
    const at = nh === 58 ? 2 : 6;
    const ph = Buffer.alloc(40);
    src.copy(ph, 0);
    dst.copy(ph, 16);
    ph.writeUInt32BE(payload.length, 32);
    ph[39] = nh;
    payload.writeUInt16BE(0, at);
    const sum = csum(Buffer.concat([ph, payload]));
    payload.writeUInt16BE(nh === 17 && sum === 0 ? 0xffff : sum, at);
  }
  return Buffer.concat([ethHdr(dmac, smac, 0x86dd), h, payload]);
}

/** Ethernet + IPv6 + UDP (checksum 0 is not allowed in IPv6, but nothing here checks L4) */
export function udp6Frame(o: { dmac: string; smac: string; src: string; dst: string }): Buffer {
  const u = Buffer.alloc(16);
  u.writeUInt16BE(40000, 0);
  u.writeUInt16BE(9, 2);
  u.writeUInt16BE(16, 4);
  return ipv6Frame(o.dmac, o.smac, v6(o.src), v6(o.dst), 17, u);
}

/** An unsolicited neighbour advertisement for TARGET (override flag), to all nodes */
export function unsolicitedNa(o: { smac: string; src: string; target: string }): Buffer {
  const p = Buffer.alloc(32);
  p[0] = 136;
  p.writeUInt32BE(0x20000000, 4); // O
  v6(o.target).copy(p, 8);
  p[24] = 2; // target link-layer address option
  p[25] = 1;
  macBuf(o.smac).copy(p, 26);
  return ipv6Frame('33:33:00:00:00:01', o.smac, v6(o.src), v6('ff02::1'), 58, p, 255);
}

/** A gratuitous ARP (request, spa == tpa) from SMAC claiming ADDR, broadcast */
export function gratuitousArp(o: { smac: string; addr: string }): Buffer {
  const a = Buffer.alloc(28);
  a.writeUInt16BE(1, 0);
  a.writeUInt16BE(0x0800, 2);
  a[4] = 6;
  a[5] = 4;
  a.writeUInt16BE(1, 6);
  macBuf(o.smac).copy(a, 8);
  v4(o.addr).copy(a, 14);
  v4(o.addr).copy(a, 24);
  return Buffer.concat([ethHdr('ff:ff:ff:ff:ff:ff', o.smac, 0x0806), a, Buffer.alloc(18)]);
}

const SENDER = `
import socket, sys, time
dev, hexframe, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((dev, 0))
f = bytes.fromhex(hexframe)
for i in range(count):
    s.send(f)
    time.sleep(0.002)
`;

/** Sends FRAME COUNT times out of DEV inside NS with a raw AF_PACKET socket (as a hostile namespace can). */
export function sendRaw(ns: string, dev: string, frame: Buffer, count = 1): void {
  must('ip', ['netns', 'exec', ns, 'python3', '-c', SENDER, dev, frame.toString('hex'), String(count)], { timeoutMs: 20_000 });
}

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
