// SPDX-License-Identifier: GPL-2.0-only
/*
 * A port is its master device, not its names (issue 13), with real
 * namespaces, real traffic and the real kernel:
 *  - the master's namespace deleted while no agent runs: `gc` removes every
 *    record, pin and map entry of the port; the same names made again take a
 *    new `link add` (the stale record is never reused);
 *  - the same with the agent running: the agent cleans it by itself;
 *  - the master moved to another namespace and back (`ip link set MASTER
 *    netns X`): both slaves are kept, traffic wire -> slave flows after each
 *    move, `link show` names the master's new namespace;
 *  - the master moved to a namespace without a name (nothing of it can be
 *    read): the learned addresses stay as they were; moved back, everything
 *    works again.
 */
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { TestEnv, ip, linkNames, linkOf, must, ping, run, sleep, waitUntil, type Agent, type SlaveJson } from './lib/topo.js';
import { libCall } from './lib/hard-topo.js';

const env = new TestEnv('port-identity', 'ivbpi');
const agents: Agent[] = [];

/** The agent, its lines printed when the test fails (what it saw and did). */
async function startAgent(): Promise<Agent> {
  const a = await env.startAgent();
  agents.push(a);
  return a;
}

afterEach((ctx) => {
  if (ctx.task.result?.state === 'fail') for (const a of agents) console.log(a.lines.join('\n'));
});

afterAll(async () => {
  await env.cleanup();
});

interface Topo {
  host: string;
  wire: string;
}

/** A master eth0m in HOST whose other end (wp0, 198.18.7.1) is in WIRE. */
function buildMaster(hostName: string, wireName: string): Topo {
  const host = env.netns(hostName);
  const wire = env.netns(wireName);
  ip(host, 'link', 'add', 'eth0m', 'address', '02:00:00:00:07:02', 'type', 'veth', 'peer', 'name', 'wp0', 'netns', wire);
  ip(host, 'link', 'set', 'eth0m', 'up');
  ip(host, 'addr', 'add', '198.18.7.2/24', 'dev', 'eth0m');
  ip(wire, 'link', 'set', 'wp0', 'up');
  ip(wire, 'addr', 'add', '198.18.7.1/24', 'dev', 'wp0');
  return { host, wire };
}

/** `link add` of an l2 slave NAME of eth0m in HOST, moved to SLAVENS with ADDR. */
function addSlave(t: Topo, name: string, slaveNs: string, addr: string): void {
  env.cliOk('-n', t.host, 'link', 'add', 'link', 'eth0m', 'name', name, 'type', 'ipvlan', 'mode', 'l2');
  ip(t.host, 'link', 'set', 'dev', name, 'netns', slaveNs);
  ip(slaveNs, 'link', 'set', name, 'up');
  ip(slaveNs, 'addr', 'add', `${addr}/24`, 'dev', name);
}

function portPins(): string[] {
  return env.pinFiles().filter((f) => f.startsWith('ports/'));
}

function portRecords(): string[] {
  return env.stateFiles().filter((f) => f.startsWith('ports/'));
}

/** Entries of a pinned map (bpftool), as a sorted list of key/value dumps. */
function mapDump(name: string): string[] {
  const r = run('bpftool', ['-j', 'map', 'dump', 'pinned', join(env.pinDir, 'maps', name)]);
  if (r.status !== 0) return [];
  return (JSON.parse(r.stdout) as Array<{ key: string[]; value: string[] }>).map((e) => `${e.key.join('')}=${e.value.join('')}`.replace(/0x/g, '')).sort();
}

/** The kernel has destroyed the namespace: the master's wire end went with it. */
async function destroyed(t: Topo): Promise<void> {
  await waitUntil('the master destroyed with its namespace', () => linkOf(t.wire, 'wp0') === null, 10_000, 50);
}

describe('master namespace deleted', () => {
  it('agent stopped: gc removes everything of the port; the same names take a new link add', async () => {
    const t = buildMaster('h1', 'w1');
    const a = env.netns('a1');
    addSlave(t, 'pis1', a, '198.18.7.11');
    env.cliOk('sync');
    expect(env.addrMapHas('198.18.7.11')).toBe(true);
    expect(portPins().length).toBeGreaterThan(0);
    env.delNetns(t.host);
    await destroyed(t);
    const gc = env.cli(['gc']);
    console.log(`gc:\n${gc.stdout}${gc.stderr}`);
    expect(gc.status).toBe(0);
    expect(gc.stdout).toMatch(/port \d+: master eth0m is gone/);
    expect(portPins()).toEqual([]);
    expect(portRecords()).toEqual([]);
    expect(env.addrMapHas('198.18.7.11')).toBe(false);
    expect(env.show()).toEqual([]);
    // the same names again: a new port, not the stale one
    env.delNetns(t.wire);
    const t2 = buildMaster('h1', 'w1');
    addSlave(t2, 'pis1', a, '198.18.7.11');
    const shown = env.show();
    expect(shown.map((s) => s.ifname)).toEqual(['pis1']);
    expect(env.cli(['stats']).status).toBe(0);
    // a second gc finds nothing to remove
    expect(env.cliOk('gc')).toMatch(/nothing to remove/);
    env.cliOk('-n', a, 'link', 'del', 'pis1');
    expect(portPins()).toEqual([]);
    env.delNetns(t2.host);
    env.delNetns(t2.wire);
  }, 120_000);

  it('agent running: the agent removes everything of the port; the same names take a new link add', async () => {
    const agent = await startAgent();
    const t = buildMaster('h2', 'w2');
    const a = env.netns('a2');
    addSlave(t, 'pis2', a, '198.18.7.12');
    await waitUntil('pis2 learned', () => env.addrMapHas('198.18.7.12') === true, 5_000, 20);
    env.delNetns(t.host);
    await waitUntil('the agent removed the port', () => portRecords().length === 0 && portPins().length === 0, 10_000, 50);
    await destroyed(t);
    expect(env.addrMapHas('198.18.7.12')).toBe(false);
    expect(agent.matching(/master eth0m is gone/).length).toBeGreaterThan(0);
    env.delNetns(t.wire);
    const t2 = buildMaster('h2', 'w2');
    addSlave(t2, 'pis2', a, '198.18.7.12');
    await waitUntil('pis2 learned again', () => env.addrMapHas('198.18.7.12') === true, 5_000, 20);
    await waitUntil('wire reaches pis2', () => ping(t2.wire, '198.18.7.12'), 5_000, 100);
    expect(env.show().map((s) => s.ifname)).toEqual(['pis2']);
    env.cliOk('-n', a, 'link', 'del', 'pis2');
    await agent.stop();
    env.delNetns(t2.host);
    env.delNetns(t2.wire);
  }, 120_000);
});

describe('master moved to another namespace', () => {
  let agent: Agent;
  it('keeps both slaves; traffic wire -> slave after each move; link show follows', async () => {
    agent = await startAgent();
    const t = buildMaster('h3', 'w3');
    const other = env.netns('o3');
    // ifindexes taken there: the master and its peers get new ones on the way
    ip(other, 'link', 'add', 'x0', 'type', 'veth', 'peer', 'name', 'x1');
    ip(other, 'link', 'add', 'x2', 'type', 'veth', 'peer', 'name', 'x3');
    const a = env.netns('a3');
    const b = env.netns('b3');
    addSlave(t, 'pim1', a, '198.18.7.21');
    addSlave(t, 'pim2', b, '198.18.7.22');
    for (const x of ['198.18.7.21', '198.18.7.22']) await waitUntil(`wire reaches ${x}`, () => ping(t.wire, x), 5_000, 100);
    for (const [to, back] of [
      [other, t.host],
      [t.host, other],
    ] as const) {
      ip(back, 'link', 'set', 'eth0m', 'netns', to);
      // a device moved comes up down: the user brings it up where it is now
      ip(to, 'link', 'set', 'eth0m', 'up');
      await waitUntil(`link show names ${to}`, () => {
        const s = env.show();
        return s.length === 2 && s.every((x) => x.ipvlan_bpf.master_netns === to) ? s : null;
      }, 10_000, 50);
      for (const x of ['198.18.7.21', '198.18.7.22']) await waitUntil(`wire reaches ${x} (master in ${to})`, () => ping(t.wire, x), 5_000, 100);
      // our peers moved with the master
      expect(linkNames(to).filter((n) => /^ivb\d+x\d+$/.test(n)).length).toBe(2);
      expect(linkNames(back).filter((n) => /^ivb\d+x\d+$/.test(n))).toEqual([]);
    }
    expect(agent.matching(/is gone/)).toEqual([]);
    await waitUntil('both moves logged', () => agent.matching(/master eth0m moved/).length >= 2, 5_000, 50);
  }, 120_000);

  it('in a namespace without a name: the tables stay as they were; moved back, traffic flows', async () => {
    const t = { host: `${env.prefix}h3`, wire: `${env.prefix}w3` };
    const learned = (): string[] => [...mapDump('ivb_addrs4'), ...mapDump('ivb_addrs6')];
    const learnedBefore = learned();
    const localBefore = mapDump('ivb_local_addrs');
    expect(learnedBefore.length).toBeGreaterThan(0);
    expect(localBefore.length).toBeGreaterThan(0);
    // a namespace only a process of ours holds (no /run/netns name)
    const holder = spawn('unshare', ['-n', 'sleep', '60'], { stdio: 'ignore' });
    env.onCleanup(() => holder.kill('SIGKILL'));
    await sleep(200);
    const pid = String(holder.pid);
    ip(t.host, 'link', 'set', 'eth0m', 'netns', pid);
    await agent.waitForLine(/namespace without a name/, 5_000);
    await sleep(1_000);
    // the slaves' addresses stay learned (the master's own went with the
    // move: the kernel flushes a moved device's addresses)
    expect(learned()).toEqual(learnedBefore);
    expect(env.show().length).toBe(2);
    must('nsenter', [`--net=/proc/${pid}/ns/net`, 'ip', 'link', 'set', 'eth0m', 'netns', t.host]);
    ip(t.host, 'link', 'set', 'eth0m', 'up');
    ip(t.host, 'addr', 'add', '198.18.7.2/24', 'dev', 'eth0m');
    // 198.18.7.2 as the datapath keys it
    await waitUntil("the master's address known again", () => mapDump('ivb_local_addrs').some((e) => e.includes('c6120702')), 5_000, 50);
    for (const x of ['198.18.7.21', '198.18.7.22']) await waitUntil(`wire reaches ${x} again`, () => ping(t.wire, x), 10_000, 100);
    holder.kill('SIGKILL');
    await agent.stop();
  }, 120_000);
});

describe('a slave deleted and made again under the same names', () => {
  it('a prune decided from a read before the delete does not take the new slave (same peer name, new ifindex)', () => {
    const t = buildMaster('rn-host', 'rn-wire');
    const mine = (): SlaveJson[] => env.show().filter((s) => s.ipvlan_bpf.master_netns === t.host);
    // the port's only slave: deleting it deletes the port, and the next add makes the port again
    // with the lowest free id and dev_ids from the start, so the peer name comes back (with a
    // sibling kept, dev_ids go on upwards and no name comes back)
    env.cliOk('-n', t.host, 'link', 'add', 'link', 'eth0m', 'name', 'ipvl9', 'type', 'ipvlan', 'mode', 'l3');
    const before = mine().find((s) => s.ifname === 'ipvl9')!;
    const old = { peer: before.ipvlan_bpf.peer, ifindex: before.ipvlan_bpf.peer_ifindex!, port: before.ipvlan_bpf.port_id };
    env.cliOk('-n', t.host, 'link', 'del', 'ipvl9');
    env.cliOk('-n', t.host, 'link', 'add', 'link', 'eth0m', 'name', 'ipvl9', 'type', 'ipvlan', 'mode', 'l3');
    const again = mine().find((s) => s.ifname === 'ipvl9')!;
    // the dev_id comes back, and with it the peer's name; the kernel gives the new peer a new index
    expect(again.ipvlan_bpf.port_id).toBe(old.port);
    expect(again.ipvlan_bpf.peer).toBe(old.peer);
    expect(again.ipvlan_bpf.peer_ifindex).not.toBe(old.ifindex);
    ip(t.host, 'link', 'set', 'ipvl9', 'up');
    ip(t.host, 'addr', 'add', '198.18.7.9/32', 'dev', 'ipvl9');
    ip(t.host, 'route', 'add', '198.18.7.10/32', 'dev', 'ipvl9');
    // what the agent's resync (or gc) does for a record whose peer it found gone, from the old read
    const prune = (ifindex: number): void => {
      const r = libCall(env, `const m = await lib('controller/src/link/manager.js'); m.pruneSlave(${old.port}, ${JSON.stringify(old.peer)}, ${ifindex});`);
      expect(r.status, r.stderr).toBe(0);
    };
    prune(old.ifindex);
    expect(linkOf(t.host, 'ipvl9')).not.toBeNull();
    expect(linkOf(t.host, old.peer)?.ifindex).toBe(again.ipvlan_bpf.peer_ifindex);
    expect(ip(t.host, 'route', 'show', '198.18.7.10')).toContain('dev ipvl9');
    expect(mine().map((s) => s.ifname)).toEqual(['ipvl9']);
    // the new one, named by its own index, is pruned
    prune(again.ipvlan_bpf.peer_ifindex!);
    expect(linkOf(t.host, 'ipvl9')).toBeNull();
    expect(mine()).toEqual([]);
  });
});
