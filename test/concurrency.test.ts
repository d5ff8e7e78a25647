// SPDX-License-Identifier: GPL-2.0-only
/*
 * Concurrent control (issue 13): 20 `link add` at once, half through CLI
 * processes and half through the agent's API, then 10 `link del` and 10 more
 * `link add` at once, while the agent resyncs (a slave toggled down/up and
 * its addresses churned, each a netlink event that makes it resync the
 * port). Afterwards every record, pin, device and map entry agrees: `link
 * show` lists exactly the slaves that should be there, the master's
 * namespace holds exactly their peers, the pins exactly their links, `gc`
 * finds nothing to remove. Learning keeps going meanwhile: addresses added
 * during the storm are all learned (the slowest is printed; timing targets
 * live in bench/).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI, TestEnv, ip, ipTry, linkNames, sleep, waitUntil, type Result } from './lib/topo.js';
import { ObsAgent } from './lib/obs-topo.js';
// the controller's own client, as built (it finds proto/ beside dist/)
import { ApiClient } from '../dist/controller/src/api/client.js';

const env = new TestEnv('concurrency', 'ivbcc');
const sockDir = mkdtempSync(join(tmpdir(), 'ivb-cc-'));
const sock = join(sockDir, 'api.sock');
let host: string;
let probeNs: string;
let agent: ObsAgent;

beforeAll(async () => {
  host = env.netns('host');
  const wire = env.netns('wire');
  probeNs = env.netns('probe');
  ip(host, 'link', 'add', 'eth0m', 'address', '02:00:00:00:08:02', 'type', 'veth', 'peer', 'name', 'wp0', 'netns', wire);
  ip(host, 'link', 'set', 'eth0m', 'up');
  ip(wire, 'link', 'set', 'wp0', 'up');
  agent = new ObsAgent(env, ['--api', sock]);
  await agent.line(/agent: started/);
  // the port exists: every add below is an add on an existing port
  env.cliOk('-n', host, 'link', 'add', 'link', 'eth0m', 'name', 'ccprobe', 'type', 'ipvlan', 'mode', 'l2');
  ip(host, 'link', 'set', 'ccprobe', 'netns', probeNs);
  ip(probeNs, 'link', 'set', 'ccprobe', 'up');
}, 60_000);

afterAll(async () => {
  await agent?.stop();
  await env.cleanup();
  rmSync(sockDir, { recursive: true, force: true });
});

/** The CLI as its own process, straight to the state (not through the agent). */
function cliAsync(args: string[]): Promise<Result> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [CLI, ...args], { env: { ...env.env, IPVLAN_BPF_API: 'off' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    p.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    p.on('close', (status) => resolve({ status: status ?? -1, stdout, stderr }));
  });
}

async function apiCall(req: Parameters<ApiClient['call']>[0]): Promise<Result> {
  const c = await ApiClient.connect(sock);
  try {
    const r = await c.call(req);
    return r.error ? { status: 1, stdout: '', stderr: `${r.error.code}: ${r.error.message}` } : { status: 0, stdout: JSON.stringify(r), stderr: '' };
  } finally {
    c.close();
  }
}

function add(name: string, viaApi: boolean): Promise<Result> {
  if (viaApi) return apiCall({ linkAdd: { master: 'eth0m', name, netns: host, mode: 'l2', typeArgs: true } });
  return cliAsync(['-n', host, 'link', 'add', 'link', 'eth0m', 'name', name, 'type', 'ipvlan', 'mode', 'l2']);
}

function del(name: string, viaApi: boolean): Promise<Result> {
  if (viaApi) return apiCall({ linkDel: { name, netns: host } });
  return cliAsync(['-n', host, 'link', 'del', name]);
}

/** Makes the agent resync the port over and over, and adds addresses to learn, until STOP; returns the addresses. */
async function churn(stop: () => boolean): Promise<string[]> {
  const added: string[] = [];
  let i = 0;
  while (!stop()) {
    // a slave's link event (down/up) schedules a resync of the port
    if (ipTry(probeNs, 'link', 'set', 'ccprobe', i % 2 ? 'up' : 'down').status !== 0) break;
    const a = `198.18.${9 + Math.floor(i / 200)}.${10 + (i % 200)}`;
    if (ipTry(probeNs, 'addr', 'add', `${a}/32`, 'dev', 'ccprobe').status !== 0) break;
    added.push(a);
    i++;
    await sleep(100);
  }
  ipTry(probeNs, 'link', 'set', 'ccprobe', 'up');
  return added;
}

function consistent(expected: string[]): void {
  const shown = env.show();
  expect(shown.map((s) => s.ifname).sort()).toEqual(['ccprobe', ...expected].sort());
  // the master's namespace holds exactly the peers of the slaves shown
  const peers = linkNames(host).filter((n) => /^ivb\d+x\d+$/.test(n)).sort();
  expect(peers).toEqual(shown.map((s) => s.ipvlan_bpf.peer).sort());
  // every slave device there is one of ours, every one of ours is there
  const slaves = linkNames(host).filter((n) => n.startsWith('cc')).sort();
  expect(slaves).toEqual([...expected].sort());
  // the pins: one TCX link per peer (ingress side), no more
  const linkPins = env.pinFiles().filter((f) => /link_peer_\d+$/.test(f)).map((f) => Number(f.match(/(\d+)$/)![1])).sort((a, b) => a - b);
  expect(linkPins).toEqual(shown.map((s) => s.ipvlan_bpf.peer_ifindex!).sort((a, b) => a - b));
  // the maps hold nothing of a port or slave that is not there
  expect(env.cliOk('gc')).toMatch(/nothing to remove/);
}

describe('20 concurrent link add/del through the CLI and the API while the agent resyncs', () => {
  it('leaves every record, pin, device and map entry consistent; learning goes on', async () => {
    let done = false;
    const churning = churn(() => done);
    // a failure below must not leave the churn running into the cleanup
    env.onCleanup(() => (done = true));
    const first = Array.from({ length: 20 }, (_, i) => `cc${i}`);
    const r1 = await Promise.all(first.map((n, i) => add(n, i % 2 === 1)));
    r1.forEach((r, i) => expect(r.status, `add ${first[i]}: ${r.stderr}`).toBe(0));
    const second = Array.from({ length: 10 }, (_, i) => `cc${20 + i}`);
    const gone = first.filter((_, i) => i % 2 === 0);
    const r2 = await Promise.all([...gone.map((n, i) => del(n, i % 2 === 1)), ...second.map((n, i) => add(n, i % 2 === 0))]);
    r2.forEach((r) => expect(r.status, r.stderr).toBe(0));
    done = true;
    const added = await churning;
    const left = [...first.filter((n) => !gone.includes(n)), ...second];
    consistent(left);
    // every address added during the storm is learned
    const t0 = performance.now();
    await waitUntil('every churned address learned', () => {
      const learned = new Set(env.learned('ccprobe'));
      return added.every((a) => learned.has(a));
    }, 10_000, 50);
    console.log(`${added.length} addresses added during the storm; all learned ${Math.round(performance.now() - t0)} ms after it ended`);
    expect(agent.lines.filter((l) => /failed|error/i.test(l))).toEqual([]);
    // and every one of them deleted again, nothing left
    await Promise.all(left.map((n, i) => del(n, i % 2 === 0)));
    consistent([]);
  }, 180_000);
});
