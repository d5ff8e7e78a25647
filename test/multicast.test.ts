// SPDX-License-Identifier: GPL-2.0-only
/*
 * Issue 14, items 3 and 4, end to end with real namespaces and raw frames:
 * each slave gets only the groups it joined (the kernel's per-slave MAC hash
 * filter), broadcast always, every group when ALLMULTI or PROMISC; the
 * master holds the union of its slaves' groups and allmulti while one of
 * them is ALLMULTI (not PROMISC), never touching what the user set, and
 * nothing of it is left when the slaves, the agent or the port go.
 *
 * Topology (topo.ts buildWire): host ns with master eth0m, wire ns with
 * bridge br0 (the router); l2 slaves ipvl0 (ns a) and ipvl1 (ns b); the agent
 * runs. Frames to a group go out of br0 through an AF_PACKET socket; what a
 * slave received is its rx counter (`ip -s link`), what the master holds is
 * `ip maddr show` and the `allmulti` count of `ip -d link`.
 *
 * Groups: IPv6 solicited-node groups of 2001:db8:: addresses (the kernel
 * joins them when the address is added: the RTM_NEWMULTICAST path), and
 * link-layer groups added with `ip maddr add` (no event: the agent's
 * periodic re-read). IP groups joined by an application's socket (socat)
 * with the agent stopped: the slave's own membership report opens its filter.
 */
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestEnv, buildWire, ip, ipJson, must, sendRaw, sleep, waitUntil, type Agent, type Wire } from './lib/topo.js';
import { buildTwoSlaves, startAgentPatient } from './lib/hard-topo.js';
import { udp4Frame, udp6Frame } from './lib/frames.js';
import { macHash, mcFilterBits } from '../controller/src/agent/multicast.js';

const env = new TestEnv('multicast', 'ivbmc');
let w: Wire;
let nsA: string;
let nsB: string;
let agent: Agent;
let routerMac = '';
/** the master's groups (with their holder counts) and allmulti count before any slave existed */
let baseline: { groups: string[]; allmulti: number };

const A4 = '198.18.0.10';
const B4 = '198.18.0.11';
const FRAMES = 30;
/** background multicast (RAs, reports) a slave may take meanwhile: far below FRAMES */
const NOISE = 5;

/** `ip maddr show dev DEV` link-layer groups as "mac users" (users: how many hold it) */
function maddr(ns: string, dev: string): string[] {
  const ifindex = ipJson<Array<{ ifindex: number }>>(ns, 'link', 'show', 'dev', dev)[0]!.ifindex;
  const text = must('ip', ['netns', 'exec', ns, 'cat', '/proc/net/dev_mcast']);
  return text
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f.length >= 5 && Number(f[0]) === ifindex)
    .map((f) => `${f[4]!.match(/../g)!.join(':')} ${f[2]}`)
    .sort();
}
const groupsOf = (ns: string, dev: string): string[] => maddr(ns, dev).map((l) => l.split(' ')[0]!);
const masterGroups = (): string[] => groupsOf(w.host, 'eth0m');

interface LinkDetails {
  flags: string[];
  allmulti?: number;
  promiscuity?: number;
  stats64?: { rx: { packets: number } };
}
const details = (ns: string, dev: string): LinkDetails => ipJson<LinkDetails[]>(ns, '-d', '-s', 'link', 'show', 'dev', dev)[0]!;
const masterAllmulti = (): number => details(w.host, 'eth0m').allmulti ?? 0;
const rx = (ns: string, dev: string): number => details(ns, dev).stats64!.rx.packets;

/** The solicited-node group of an IPv6 address ending in the 24 bits N: 33:33:ff:xx:xx:xx. */
const solicitedMac = (n: number): string => `33:33:ff:${[(n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff].map((x) => x.toString(16).padStart(2, '0')).join(':')}`;
const v6WithLow24 = (n: number): string => `2001:db8::${((n >> 16) & 0xff).toString(16)}:${(n & 0xffff).toString(16)}`;

/** Does a filter built from the slave's list (as the agent builds it) pass MAC? */
function slavePasses(ns: string, dev: string, mac: string): boolean {
  const bits = mcFilterBits({ groups: groupsOf(ns, dev).map((g) => g.replace(/:/g, '')), allmulti: false, promisc: false });
  const h = macHash(Buffer.from(mac.replace(/:/g, ''), 'hex'));
  return ((bits[h >> 3]! >> (h & 7)) & 1) === 1;
}

/** Sends FRAMES frames to MAC from the wire; the rx growth of both slaves. */
async function deliveredTo(mac: string): Promise<{ a: number; b: number }> {
  const a0 = rx(nsA, 'ipvl0');
  const b0 = rx(nsB, 'ipvl1');
  const frame = mac.startsWith('33:33')
    ? udp6Frame({ dmac: mac, smac: routerMac, src: w.routerV6, dst: `ff02::1:ff${mac.slice(9, 11)}:${mac.slice(12, 14)}${mac.slice(15, 17)}` })
    : udp4Frame({ dmac: mac, smac: routerMac, src: w.routerV4, dst: '198.18.0.255' });
  sendRaw(w.wire, 'br0', frame, FRAMES);
  await sleep(300);
  return { a: rx(nsA, 'ipvl0') - a0, b: rx(nsB, 'ipvl1') - b0 };
}

/** A group neither slave's filter passes (so a copy to either is the filter failing). */
function groupNobodyJoined(from: number): string {
  for (let n = from; ; n++) {
    const g = `01:00:5e:7f:${((n >> 8) & 0xff).toString(16).padStart(2, '0')}:${(n & 0xff).toString(16).padStart(2, '0')}`;
    if (!slavePasses(nsA, 'ipvl0', g) && !slavePasses(nsB, 'ipvl1', g) && !masterGroups().includes(g)) return g;
  }
}

beforeAll(async () => {
  w = buildWire(env);
  nsA = env.netns('a');
  nsB = env.netns('b');
  baseline = { groups: maddr(w.host, 'eth0m'), allmulti: masterAllmulti() };
  agent = await buildTwoSlaves(env, w, { ns: nsA, v4: A4, v6: '2001:db8::10' }, { ns: nsB, v4: B4, v6: '2001:db8::11' }, 15_000);
  routerMac = ipJson<Array<{ address: string }>>(w.wire, 'link', 'show', 'dev', 'br0')[0]!.address;
}, 120_000);

afterAll(async () => {
  await env.cleanup();
});

/** An address for slave A whose solicited-node group B's filter does not pass. */
function addressOnlyAJoins(): { addr: string; group: string } {
  for (let n = 0x770001; ; n++) {
    const group = solicitedMac(n);
    if (!slavePasses(nsB, 'ipvl1', group) && !masterGroups().includes(group)) return { addr: v6WithLow24(n), group };
  }
}

describe('per-slave multicast filter (ipvlan_process_multicast)', () => {
  it('a group the slave joined reaches it; the sibling that did not join it gets no copy', async () => {
    const { addr, group } = addressOnlyAJoins();
    ip(nsA, 'addr', 'add', `${addr}/64`, 'dev', 'ipvl0', 'nodad');
    try {
      // the kernel joined the group on the slave, and the agent heard it
      await waitUntil(`${group} on ipvl0`, () => groupsOf(nsA, 'ipvl0').includes(group), 5_000, 20);
      await waitUntil(`${group} on the master`, () => masterGroups().includes(group), 5_000, 20);
      const got = await deliveredTo(group);
      expect(got.a).toBeGreaterThanOrEqual(FRAMES);
      expect(got.b).toBeLessThan(NOISE);
    } finally {
      ip(nsA, 'addr', 'del', `${addr}/64`, 'dev', 'ipvl0');
    }
    // left: the master lets go of it, the slave gets it no more
    await waitUntil(`${group} gone from the master`, () => !masterGroups().includes(group), 5_000, 20);
    const after = await deliveredTo(group);
    expect(after.a).toBeLessThan(NOISE);
  });

  it("with the agent stopped, an application's join (IGMP, MLD) is honoured once the slave's report has gone", async () => {
    // groups whose bits neither slave's filter has (so a copy is the report's doing)
    const pick = (make: (n: number) => { ip: string; mac: string }): { ip: string; mac: string } => {
      for (let n = 0x101; ; n++) {
        const g = make(n);
        if (!slavePasses(nsA, 'ipvl0', g.mac) && !slavePasses(nsB, 'ipvl1', g.mac)) return g;
      }
    };
    const hx = (n: number): string => n.toString(16).padStart(2, '0');
    const g4 = pick((n) => ({ ip: `239.77.${n >> 8}.${n & 0xff}`, mac: `01:00:5e:4d:${hx(n >> 8)}:${hx(n & 0xff)}` }));
    const g6 = pick((n) => ({ ip: `ff0e::77:${n.toString(16)}`, mac: `33:33:00:77:${hx(n >> 8)}:${hx(n & 0xff)}` }));
    process.kill(agent.pid, 'SIGSTOP');
    const joiners: Array<ReturnType<typeof spawn>> = [];
    try {
      for (const [g, frame, opt] of [
        [g4, () => udp4Frame({ dmac: g4.mac, smac: routerMac, src: w.routerV4, dst: g4.ip, dport: 5000 }), `UDP4-RECV:5000,ip-add-membership=${g4.ip}:ipvl0`],
        [g6, () => udp6Frame({ dmac: g6.mac, smac: routerMac, src: w.routerV6, dst: g6.ip }), `UDP6-RECV:9,ipv6-join-group=[${g6.ip}]:ipvl0`],
      ] as const) {
        const b0 = rx(nsB, 'ipvl1');
        let got = 0;
        const joiner = spawn('ip', ['netns', 'exec', nsA, 'socat', '-u', opt, '-'], { stdio: ['ignore', 'pipe', 'pipe'] });
        joiners.push(joiner);
        let errors = '';
        joiner.stdout!.on('data', (d: Buffer) => (got += d.length));
        joiner.stderr!.on('data', (d: Buffer) => (errors += d.toString()));
        // one datagram every 50 ms until the application has one: the report goes within a few jiffies of the join
        const deadline = Date.now() + 5_000;
        while (got === 0 && Date.now() < deadline) {
          sendRaw(w.wire, 'br0', frame());
          await sleep(50);
        }
        expect(got, `a datagram to ${g.ip} in ns a while the agent is stopped ${errors}`).toBeGreaterThan(0);
        // and the sibling, which joined nothing, took no copy of them
        expect(rx(nsB, 'ipvl1') - b0, `copies to ns b of ${g.mac}`).toBeLessThan(NOISE);
      }
    } finally {
      for (const j of joiners) j.kill();
      process.kill(agent.pid, 'SIGCONT');
    }
    expect(agent.running).toBe(true);
  });

  it('broadcast reaches every up slave', async () => {
    const got = await deliveredTo('ff:ff:ff:ff:ff:ff');
    expect(got.a).toBeGreaterThanOrEqual(FRAMES);
    expect(got.b).toBeGreaterThanOrEqual(FRAMES);
  });

  it('a link-layer group added with `ip maddr` (no notification: the periodic re-read) reaches that slave only', async () => {
    const g = groupNobodyJoined(0x100);
    const before = await deliveredTo(g);
    expect(before).toEqual({ a: expect.any(Number), b: expect.any(Number) });
    expect(before.a).toBeLessThan(NOISE);
    expect(before.b).toBeLessThan(NOISE);
    ip(nsB, 'maddr', 'add', g, 'dev', 'ipvl1');
    try {
      await waitUntil(`${g} on the master`, () => masterGroups().includes(g), 15_000, 100);
      const got = await deliveredTo(g);
      expect(got.b).toBeGreaterThanOrEqual(FRAMES);
      expect(got.a).toBeLessThan(NOISE);
    } finally {
      ip(nsB, 'maddr', 'del', g, 'dev', 'ipvl1');
    }
    await waitUntil(`${g} gone from the master`, () => !masterGroups().includes(g), 15_000, 100);
  });

  it('ALLMULTI on a slave: it gets every group and the master is allmulti; off again: both back', async () => {
    const g = groupNobodyJoined(0x200);
    const m0 = masterAllmulti();
    ip(nsB, 'link', 'set', 'dev', 'ipvl1', 'allmulticast', 'on');
    try {
      await waitUntil('master allmulti', () => masterAllmulti() === m0 + 1, 5_000, 20);
      const got = await deliveredTo(g);
      expect(got.b).toBeGreaterThanOrEqual(FRAMES);
      expect(got.a).toBeLessThan(NOISE);
    } finally {
      ip(nsB, 'link', 'set', 'dev', 'ipvl1', 'allmulticast', 'off');
    }
    await waitUntil('master allmulti back', () => masterAllmulti() === m0, 5_000, 20);
    await sleep(200);
    expect((await deliveredTo(g)).b).toBeLessThan(NOISE);
  });

  it('PROMISC on a slave: it gets every group; the master is neither promiscuous nor allmulti for it', async () => {
    const g = groupNobodyJoined(0x300);
    const m = details(w.host, 'eth0m');
    ip(nsB, 'link', 'set', 'dev', 'ipvl1', 'promisc', 'on');
    try {
      await waitUntil('ipvl1 promisc', () => details(nsB, 'ipvl1').flags.includes('PROMISC'), 5_000, 20);
      await waitUntil('a copy of a group it never joined', async () => (await deliveredTo(g)).b >= FRAMES, 5_000, 100);
      const now = details(w.host, 'eth0m');
      expect({ promiscuity: now.promiscuity, allmulti: now.allmulti }).toEqual({ promiscuity: m.promiscuity, allmulti: m.allmulti });
    } finally {
      ip(nsB, 'link', 'set', 'dev', 'ipvl1', 'promisc', 'off');
    }
    await waitUntil('filtered again', async () => (await deliveredTo(g)).b < NOISE, 5_000, 100);
  });
});

describe("slaves' groups and allmulti on the master (dev_mc_sync, dev_set_allmulti)", () => {
  it("what the user set on the master stays: a group and allmulti of their own outlive the slaves'", async () => {
    const { addr, group } = addressOnlyAJoins();
    ip(w.host, 'maddr', 'add', group, 'dev', 'eth0m');
    ip(w.host, 'link', 'set', 'dev', 'eth0m', 'allmulticast', 'on');
    try {
      const userAllmulti = masterAllmulti();
      ip(nsA, 'addr', 'add', `${addr}/64`, 'dev', 'ipvl0', 'nodad');
      ip(nsB, 'link', 'set', 'dev', 'ipvl1', 'allmulticast', 'on');
      await waitUntil('the slaves held on the master', () => maddr(w.host, 'eth0m').includes(`${group} 2`) && masterAllmulti() === userAllmulti + 1, 5_000, 20);
      ip(nsA, 'addr', 'del', `${addr}/64`, 'dev', 'ipvl0');
      ip(nsB, 'link', 'set', 'dev', 'ipvl1', 'allmulticast', 'off');
      await waitUntil('the slaves let go', () => maddr(w.host, 'eth0m').includes(`${group} 1`) && masterAllmulti() === userAllmulti, 5_000, 20);
      // still the user's: listed, and ALLMULTI in the flags ip link shows (the user's own setting)
      expect(masterGroups()).toContain(group);
      expect(details(w.host, 'eth0m').flags).toContain('ALLMULTI');
    } finally {
      ip(w.host, 'maddr', 'del', group, 'dev', 'eth0m');
      ip(w.host, 'link', 'set', 'dev', 'eth0m', 'allmulticast', 'off');
    }
  });

  it("the master holds the slaves' own groups while the agent runs, none after it stops; again when it starts", async () => {
    const slaveGroup = solicitedMac(0x11); // 2001:db8::11 on ipvl1, not the master's (::2)
    await waitUntil('slave groups on the master', () => masterGroups().includes(slaveGroup), 5_000, 20);
    ip(nsB, 'link', 'set', 'dev', 'ipvl1', 'allmulticast', 'on');
    await waitUntil('allmulti held', () => masterAllmulti() === baseline.allmulti + 1, 5_000, 20);
    await agent.stop();
    // the kernel undid the agent's memberships with its socket
    expect(maddr(w.host, 'eth0m')).toEqual(baseline.groups);
    expect(masterAllmulti()).toBe(baseline.allmulti);
    agent = await startAgentPatient(env);
    await waitUntil('held again', () => masterGroups().includes(slaveGroup) && masterAllmulti() === baseline.allmulti + 1, 15_000, 50);
    ip(nsB, 'link', 'set', 'dev', 'ipvl1', 'allmulticast', 'off');
    await waitUntil('allmulti let go', () => masterAllmulti() === baseline.allmulti, 5_000, 20);
  });

  it("link del: the slave's groups leave the master; after the last slave nothing of theirs is left", async () => {
    const groupA = solicitedMac(0x10); // 2001:db8::10
    const groupB = solicitedMac(0x11);
    await waitUntil('both on the master', () => masterGroups().includes(groupA) && masterGroups().includes(groupB), 5_000, 20);
    env.cliOk('-n', nsA, 'link', 'del', 'ipvl0');
    await waitUntil(`${groupA} gone`, () => !masterGroups().includes(groupA), 5_000, 20);
    expect(masterGroups()).toContain(groupB);
    env.cliOk('-n', nsB, 'link', 'del', 'ipvl1');
    await waitUntil('the master as before the slaves', () => JSON.stringify(maddr(w.host, 'eth0m')) === JSON.stringify(baseline.groups), 5_000, 20);
    expect(masterAllmulti()).toBe(baseline.allmulti);
    expect(agent.running).toBe(true);
  });
});
