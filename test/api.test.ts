// SPDX-License-Identifier: GPL-2.0-only
/*
 * The agent's control API, spoken by a client built here from
 * proto/ipvlan_bpf.proto with protobufjs and our own length-delimited
 * framing (not the controller's client): link list/add/del, stats
 * snapshots, the event stream; malformed and oversized requests get an
 * error and the agent keeps serving. The CLI gives the same answers with
 * and without the agent.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { createConnection, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import protobuf from 'protobufjs';
import { REPO, TestEnv, linkOf, sendRaw } from './lib/topo.js';
import { A_MAC, IP, ObsAgent, buildObsTopo, statsJson, type ObsTopo } from './lib/obs-topo.js';
import { echoReplyFrame } from './lib/frames.js';

const env = new TestEnv('api', 'ivbap');
const sockDir = mkdtempSync(join(tmpdir(), 'ivb-api-'));
const sock = join(sockDir, 'api.sock');
let t: ObsTopo;
let agent: ObsAgent;
const root = protobuf.loadSync(join(REPO, 'proto', 'ipvlan_bpf.proto'));
const Request = root.lookupType('ipvlan_bpf.v1.Request');
const Response = root.lookupType('ipvlan_bpf.v1.Response');
const OBJ = { longs: Number, defaults: true, oneofs: true, arrays: true, objects: true };

type Msg = Record<string, unknown> & { id: number; result?: string; error?: { code: string; message: string } };

/** A connection that reads varint-delimited Responses. */
class Conn {
  private readonly socket: Socket;
  private buf = Buffer.alloc(0);
  readonly got: Msg[] = [];
  closed = false;
  private waiters: Array<() => void> = [];

  private constructor(s: Socket) {
    this.socket = s;
    s.on('data', (b: Buffer) => {
      this.buf = Buffer.concat([this.buf, b]);
      for (;;) {
        const r = protobuf.Reader.create(this.buf);
        let len: number;
        try {
          len = r.uint32();
        } catch {
          break;
        }
        if (this.buf.length < r.pos + len) break;
        this.got.push(Response.toObject(Response.decode(this.buf.subarray(r.pos, r.pos + len)), OBJ) as Msg);
        this.buf = this.buf.subarray(r.pos + len);
      }
      this.wake();
    });
    s.on('close', () => {
      this.closed = true;
      this.wake();
    });
    s.on('error', () => undefined);
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  static open(): Promise<Conn> {
    return new Promise((res, rej) => {
      const s = createConnection(sock);
      s.once('connect', () => res(new Conn(s)));
      s.once('error', rej);
    });
  }

  send(obj: Record<string, unknown>): void {
    const err = Request.verify(obj);
    if (err) throw new Error(err);
    this.socket.write(Request.encodeDelimited(Request.fromObject(obj)).finish());
  }

  raw(b: Buffer): void {
    this.socket.write(b);
  }

  async next(pred: (m: Msg) => boolean = () => true, timeoutMs = 10_000): Promise<Msg> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.got.findIndex(pred);
      if (i >= 0) return this.got.splice(i, 1)[0]!;
      if (this.closed) throw new Error('connection closed');
      if (Date.now() > deadline) throw new Error('timed out waiting for a response');
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 100);
      });
    }
  }

  async call(obj: Record<string, unknown>): Promise<Msg> {
    this.send(obj);
    return this.next((m) => m.id === obj.id);
  }

  close(): void {
    this.socket.destroy();
  }
}

beforeAll(async () => {
  agent = new ObsAgent(env, ['--api', sock]);
  await agent.line(/api on /);
  await agent.line(/agent: started/);
  t = await buildObsTopo(env);
});

afterAll(async () => {
  await env.cleanup();
  rmSync(sockDir, { recursive: true, force: true });
});

describe('control API', () => {
  it('serves on a socket only root can use', () => {
    expect(statSync(sock).mode & 0o777).toBe(0o600);
  });

  it('lists links as link show -j does', async () => {
    const c = await Conn.open();
    try {
      const r = await c.call({ id: 1, linkList: { netns: '', onlyNetns: false } });
      expect(r.result).toBe('linkList');
      const links = (r.linkList as { links: Array<{ ifname: string; link: string; mode: string; learned: Array<{ local: string }> }> }).links;
      expect(links.map((l) => l.ifname).sort()).toEqual(['s0', 's1', 's2', 's3']);
      const s2 = links.find((l) => l.ifname === 's2')!;
      expect(s2).toMatchObject({ link: 'eth1m', mode: 'l3' });
      expect(s2.learned.map((a) => a.local)).toContain(IP.s2);
    } finally {
      c.close();
    }
  });

  it('adds and deletes a link', async () => {
    const c = await Conn.open();
    try {
      const add = await c.call({ id: 7, linkAdd: { master: 'eth0m', name: 's9', netns: t.host, mode: 'l2', typeArgs: true } });
      expect(add.error).toBeUndefined();
      expect(add.result).toBe('linkAdd');
      expect(linkOf(t.host, 's9')).not.toBeNull();
      expect(env.show().map((s) => s.ifname)).toContain('s9');
      const dup = await c.call({ id: 8, linkAdd: { master: 'eth0m', name: 's9', netns: t.host, typeArgs: false } });
      expect(dup.error).toMatchObject({ code: 'IPVLAN_E_EXISTS' });
      const del = await c.call({ id: 9, linkDel: { name: 's9', netns: t.host } });
      expect(del.result).toBe('linkDel');
      expect(linkOf(t.host, 's9')).toBeNull();
      const again = await c.call({ id: 10, linkDel: { name: 's9', netns: t.host } });
      expect(again.error?.code).toMatch(/^IPVLAN_E_/);
    } finally {
      c.close();
    }
  });

  it('gives stats snapshots with the numbers of stats -j', async () => {
    sendRaw(t.wire, 'wp0', echoReplyFrame(A_MAC, '02:00:00:00:10:01', IP.wire0, IP.s0), 4);
    const c = await Conn.open();
    try {
      const r = await c.call({ id: 3, stats: { device: 's0' } });
      const ports = (r.stats as { ports: Array<{ devices: Array<{ ifname: string; rx: { packets: number; bytes: number }; drops: Record<string, number> }> }> }).ports;
      expect(ports.length).toBe(1);
      const d = ports[0]!.devices[0]!;
      const direct = statsJson(env, { IPVLAN_BPF_API: 'off' }, 's0')[0]!;
      expect(d.ifname).toBe('s0');
      expect(d.rx.packets).toBe(direct.stats64.rx.packets);
      expect(d.rx.packets).toBeGreaterThanOrEqual(4);
      expect(d.rx.bytes).toBe(direct.stats64.rx.bytes);
    } finally {
      c.close();
    }
  });

  it('streams events until the client goes', async () => {
    const c = await Conn.open();
    try {
      c.send({ id: 42, events: { dropsOnly: true } });
      await new Promise((r) => setTimeout(r, 300));
      sendRaw(t.ns.s0, 's0', echoReplyFrame(A_MAC, A_MAC, IP.s0, IP.s1, 1400), 2);
      const e1 = await c.next((m) => m.id === 42);
      const e2 = await c.next((m) => m.id === 42);
      for (const e of [e1, e2]) {
        expect(e.result).toBe('event');
        expect(e.event).toMatchObject({ master: 'eth0m', slave: 's0', action: 'drop', reason: 'too_big', direction: 'from_slave', len: 1400 });
      }
    } finally {
      c.close();
    }
  });

  it('answers a malformed request with an error and keeps the connection', async () => {
    const c = await Conn.open();
    try {
      // a valid length prefix around bytes that are no Request (field 1 with wire type 7)
      c.raw(Buffer.from([3, 0x0f, 0xff, 0xff]));
      const e = await c.next();
      expect(e.error).toMatchObject({ code: 'IPVLAN_E_MALFORMED' });
      const ok = await c.call({ id: 5, stats: {} });
      expect(ok.result).toBe('stats');
      // a request with no operation
      const none = await c.call({ id: 6 });
      expect(none.error).toMatchObject({ code: 'IPVLAN_E_USAGE' });
    } finally {
      c.close();
    }
  });

  it('refuses an oversized request, closes that connection only, and keeps serving', async () => {
    const big = await Conn.open();
    const other = await Conn.open();
    try {
      // announce 1 MiB and start sending it
      const w = protobuf.Writer.create();
      w.uint32(1 << 20);
      big.raw(Buffer.concat([Buffer.from(w.finish()), Buffer.alloc(4096, 0x41)]));
      const e = await big.next();
      expect(e.error).toMatchObject({ code: 'IPVLAN_E_TOO_BIG' });
      await new Promise((r) => setTimeout(r, 200));
      expect(big.closed).toBe(true);
      const ok = await other.call({ id: 1, linkList: { netns: '', onlyNetns: false } });
      expect(ok.result).toBe('linkList');
      const fresh = await Conn.open();
      expect((await fresh.call({ id: 2, stats: {} })).result).toBe('stats');
      fresh.close();
      expect(agent.done).toBe(false);
    } finally {
      big.close();
      other.close();
    }
  });
});

describe('the CLI with and without the agent', () => {
  it('link show prints the same text and JSON', () => {
    for (const args of [['link', 'show'], ['-j', 'link', 'show'], ['-n', t.ns.s1, 'link', 'show', 'dev', 's1'], ['-n', t.ns.s2, '-j', 'link', 'show']]) {
      const viaApi = env.cli(args);
      expect(viaApi.status, viaApi.stderr).toBe(0);
      const off = spawnDirect(args);
      expect(viaApi.stdout).toBe(off);
    }
  });

  it('an error through the API reads as the direct one', () => {
    const viaApi = env.cli(['link', 'show', 'dev', 'nosuch']);
    expect(viaApi.status).toBe(1);
    expect(viaApi.stderr).toBe(`ipvlan-bpf: Device "nosuch" does not exist.\n`);
  });
});

import { spawnSync } from 'node:child_process';
import { CLI } from './lib/topo.js';

function spawnDirect(args: string[]): string {
  const r = spawnSync(process.execPath, [CLI, ...args], { env: { ...env.env, IPVLAN_BPF_API: 'off' }, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  return r.stdout;
}

describe('an agent too busy to answer', () => {
  it('link show reads the same view directly after 5 s instead of waiting for ever', async () => {
    const { createServer } = await import('node:net');
    const { readFileSync, writeFileSync } = await import('node:fs');
    const silent = join(sockDir, 'silent.sock');
    // listening, never answering: connections land in the backlog and wait
    const server = createServer(() => undefined);
    await new Promise<void>((resolve) => server.listen(silent, resolve));
    const apiFile = join(env.stateDir, 'api');
    const saved = readFileSync(apiFile, 'utf8');
    writeFileSync(apiFile, `${silent}\n`);
    try {
      const t0 = performance.now();
      const r = spawnSync(process.execPath, [CLI, '-j', 'link', 'show'], { env: env.env, encoding: 'utf8', timeout: 20_000 });
      const ms = performance.now() - t0;
      expect(r.status, r.stderr).toBe(0);
      expect(ms).toBeGreaterThanOrEqual(4_500);
      expect(JSON.parse(r.stdout)).toEqual(JSON.parse(spawnDirect(['-j', 'link', 'show'])));
    } finally {
      writeFileSync(apiFile, saved);
      server.close();
    }
  }, 60_000);
});
