// SPDX-License-Identifier: GPL-2.0-only
/**
 * The observability tests' world: two ports in one "host" namespace, each
 * master a veth whose other end sits in a "wire" namespace, slaves in their
 * own namespaces, and an agent (optionally with --metrics / --api).
 *
 *   port A, l2 bridge: eth0m (MAC A_MAC, 198.18.10.2/24) <-> wire wp0 (198.18.10.1)
 *       s0 in ns0: 198.18.10.10/24      s1 in ns1: 198.18.10.11/24, mtu 1280
 *   port B, l3 bridge: eth1m (MAC B_MAC, 198.18.11.2/24) <-> wire wp1 (198.18.11.1)
 *       s2 in ns2: 198.18.11.10/24      s3 in ns3: 198.18.11.11/24
 *   host: unreachable 198.19.99.0/24 (fib_lookup_failed)
 *
 * Counting exactly needs silence: IPv6 is off in every namespace before any
 * device exists (no DAD, RS, MLD), and the test traffic is raw frames sent
 * with a packet socket (python3, AF_PACKET): ICMP echo replies and UDP
 * broadcasts, which no receiver answers, so nothing but what a test sends
 * ever reaches a counter.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { readFileSync, readdirSync } from 'node:fs';
import { Agent, CLI, TestEnv, ip, must, sendRaw, waitUntil } from './topo.js';
import { echoReplyFrame, etherFrame, udp4Frame } from './frames.js';
import { buildMasterWire } from '../../controller/src/lab/wire.js';
import { closeFd, mapLookup, objGet } from '../../native/libbpf.js';
import { IvbSlaveFlags, IvbSlaveLayout, decodeIvbSlave, encodeIvbSlaveKey } from '../../maps/generated.js';

export const A_MAC = '02:00:00:00:10:02';
export const B_MAC = '02:00:00:00:11:02';
export const WIRE0_MAC = '02:00:00:00:10:01';
export const WIRE1_MAC = '02:00:00:00:11:01';

export const IP = {
  wire0: '198.18.10.1',
  host0: '198.18.10.2',
  s0: '198.18.10.10',
  s1: '198.18.10.11',
  nobody0: '198.18.10.99',
  wire1: '198.18.11.1',
  host1: '198.18.11.2',
  s2: '198.18.11.10',
  s3: '198.18.11.11',
  unreachable: '198.19.99.1',
} as const;

export interface ObsTopo {
  env: TestEnv;
  host: string;
  wire: string;
  ns: Record<'s0' | 's1' | 's2' | 's3', string>;
}

function quiet(ns: string): void {
  must('ip', ['netns', 'exec', ns, 'sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
}

/** Where each thread of a process is (state, syscall, kernel wait channel): evidence of a stuck agent. */
function threadStates(pid: number): string {
  const lines: string[] = [];
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const read = (f: string): string => {
        try {
          return readFileSync(`/proc/${pid}/task/${tid}/${f}`, 'utf8').trim();
        } catch (e) {
          return `(${(e as Error).message})`;
        }
      };
      const stat = read('stat');
      lines.push(`thread ${tid} ${read('comm')} state ${stat.split(') ')[1]?.split(' ')[0]} syscall ${read('syscall').split(' ')[0]} wchan ${read('wchan')} | ${read('stack').split('\n').slice(0, 4).join(' < ')}`);
    }
  } catch (e) {
    lines.push(`(no threads: ${(e as Error).message})`);
  }
  // the native stacks: a thread blocked outside JavaScript shows where
  const gdb = spawnSync('gdb', ['-p', String(pid), '-batch', '-ex', 'thread apply all bt 25'], { encoding: 'utf8', timeout: 20_000 });
  lines.push(`gdb:\n${(gdb.stdout ?? '').split('\n').filter((l) => /^(Thread|#)/.test(l)).join('\n')}`);
  return lines.join('\n');
}

/** The agents of this file still running: their log goes into a set-up failure's message. */
const liveAgents = new Set<ObsAgent>();

/**
 * topo.ts's Agent with arguments and the learner's trace on, its exit noted
 * in its lines, killed (with its process group) at cleanup.
 */
export class ObsAgent extends Agent {
  constructor(env: TestEnv, args: string[]) {
    // its trace is what a failed set-up prints (buildObsTopo)
    super({ ...env.env, IPVLAN_BPF_LEARNER_TRACE: '1' }, [process.execPath, CLI, 'agent', ...args]);
    liveAgents.add(this);
    this.proc.once('exit', (code, signal) => {
      this.lines.push(`(agent exited: ${signal ?? code})`);
      liveAgents.delete(this);
    });
    env.onCleanup(() => this.killGroup());
  }

  get done(): boolean {
    return !this.running;
  }

  line(re: RegExp, timeoutMs = 10_000): Promise<string> {
    return this.waitForLine(re, timeoutMs);
  }
}

/** Builds the two ports; the agent must already run (it learns the addresses and marks slaves up). */
export async function buildObsTopo(env: TestEnv): Promise<ObsTopo> {
  const host = env.netns('host');
  const wire = env.netns('wire');
  const ns = { s0: env.netns('ns0'), s1: env.netns('ns1'), s2: env.netns('ns2'), s3: env.netns('ns3') };
  for (const n of [host, wire, ...Object.values(ns)]) quiet(n);
  for (const [master, peer, masterMac, peerMac, host4, wire4] of [
    ['eth0m', 'wp0', A_MAC, WIRE0_MAC, IP.host0, IP.wire0],
    ['eth1m', 'wp1', B_MAC, WIRE1_MAC, IP.host1, IP.wire1],
  ] as const) {
    // static neighbours between host and wire: no ARP crossing the masters while a test counts
    const spec = { host, wire, master, peer, masterMac, peerMac, masterAddrs: [`${host4}/24`], routerAddrs: [`${wire4}/24`], staticNeighbours: true };
    buildMasterWire(must, spec);
  }
  ip(host, 'route', 'add', 'unreachable', '198.19.99.0/24');
  env.cliOk('-n', host, 'link', 'add', 'link', 'eth0m', 'name', 's0', 'type', 'ipvlan', 'mode', 'l2', 'bridge');
  env.cliOk('-n', host, 'link', 'add', 'link', 'eth0m', 'name', 's1', 'mtu', '1280', 'type', 'ipvlan', 'mode', 'l2', 'bridge');
  env.cliOk('-n', host, 'link', 'add', 'link', 'eth1m', 'name', 's2', 'type', 'ipvlan', 'mode', 'l3', 'bridge');
  env.cliOk('-n', host, 'link', 'add', 'link', 'eth1m', 'name', 's3', 'type', 'ipvlan', 'mode', 'l3', 'bridge');
  const addrs: Record<keyof typeof ns, string> = { s0: IP.s0, s1: IP.s1, s2: IP.s2, s3: IP.s3 };
  for (const s of ['s0', 's1', 's2', 's3'] as const) {
    ip(host, 'link', 'set', 'dev', s, 'netns', ns[s]);
    must('ip', ['netns', 'exec', ns[s], 'sysctl', '-qw', `net.ipv6.conf.${s}.disable_ipv6=1`]);
    ip(ns[s], 'addr', 'add', `${addrs[s]}/24`, 'dev', s);
    ip(ns[s], 'link', 'set', 'dev', s, 'up');
  }
  let learned: string[] = [];
  try {
    await waitUntil('the agent to learn every slave address', () => {
      learned = env.show().flatMap((l) => l.ipvlan_bpf.learned.map((a) => a.local));
      return Object.values(addrs).every((a) => learned.includes(a));
    }, 15_000, 50);
  } catch (e) {
    // what the agent saw is the only evidence of why: put it in the failure
    const parts: string[] = [];
    for (const a of liveAgents) parts.push(`${a.lines.slice(-80).join('\n')}\n${threadStates(a.proc.pid!)}`);
    const logs = parts.join('\n---\n');
    throw new Error(`${(e as Error).message}; learned: [${learned.join(', ')}]; agent log:\n${logs || '(no agent running)'}`);
  }
  // learned, and up in the datapath: explain from the wire reaches every slave
  for (const s of ['s0', 's1', 's2', 's3'] as const) {
    const master = s === 's0' || s === 's1' ? 'eth0m' : 'eth1m';
    await waitUntil(`${s} up in the datapath`, () => {
      const r = env.cli(['-j', 'explain', '--master', master, '--src', IP.wire0, '--dst', addrs[s], '--proto', 'icmp']);
      return r.status === 0 && (JSON.parse(r.stdout) as { verdict: string }).verdict === 'deliver';
    }, 15_000, 100);
  }
  return { env, host, wire, ns };
}

// --- counters ---------------------------------------------------------------

/** stats -j as the CLI prints it. */
export interface StatsDev {
  ifname: string;
  role: string;
  link: string;
  stats64: { rx: Record<'packets' | 'bytes' | 'dropped' | 'multicast', number>; tx: Record<'packets' | 'bytes' | 'dropped' | 'multicast', number> };
  drops: Record<string, number>;
  ipvlan_bpf: { sibling_tx: number; to_stack: number; to_wire: number };
}

export function statsJson(env: TestEnv, extraEnv: NodeJS.ProcessEnv = {}, device?: string): StatsDev[] {
  const saved = env.env;
  const args = ['stats', ...(device ? [device] : []), '-j'];
  const r = spawnSync(process.execPath, [CLI, ...args], { env: { ...saved, ...extraEnv }, encoding: 'utf8', timeout: 30_000 });
  if (r.status !== 0) throw new Error(`stats -j: ${r.stderr}`);
  return JSON.parse(r.stdout) as StatsDev[];
}

export function dev(list: StatsDev[], name: string): StatsDev {
  const d = list.find((x) => x.ifname === name);
  if (!d) throw new Error(`no ${name} in stats: ${list.map((x) => x.ifname).join(', ')}`);
  return d;
}

/** b - a, field by field, for one device (drops by label; missing labels count 0). */
export function delta(a: StatsDev, b: StatsDev): { rx: StatsDev['stats64']['rx']; tx: StatsDev['stats64']['tx']; drops: Record<string, number>; sibling_tx: number; to_wire: number; to_stack: number } {
  const d = (k: 'rx' | 'tx'): StatsDev['stats64']['rx'] => ({
    packets: b.stats64[k].packets - a.stats64[k].packets,
    bytes: b.stats64[k].bytes - a.stats64[k].bytes,
    dropped: b.stats64[k].dropped - a.stats64[k].dropped,
    multicast: b.stats64[k].multicast - a.stats64[k].multicast,
  });
  const drops: Record<string, number> = {};
  for (const k of new Set([...Object.keys(a.drops), ...Object.keys(b.drops)])) {
    const v = (b.drops[k] ?? 0) - (a.drops[k] ?? 0);
    if (v !== 0) drops[k] = v;
  }
  return {
    rx: d('rx'),
    tx: d('tx'),
    drops,
    sibling_tx: b.ipvlan_bpf.sibling_tx - a.ipvlan_bpf.sibling_tx,
    to_wire: b.ipvlan_bpf.to_wire - a.ipvlan_bpf.to_wire,
    to_stack: b.ipvlan_bpf.to_stack - a.ipvlan_bpf.to_stack,
  };
}

/**
 * Every drop reason the tests provoke: which netns/device sends what, and
 * where the reason is counted (the device in `stats`, the direction).
 */
export interface DropCase {
  reason: string;
  count: number;
  /** the device whose `drops` counts it */
  device: string;
  direction: 'from_wire' | 'from_slave';
  /** explain's --from: "wire" or the slave */
  from: string;
  master: string;
  frame: Buffer;
  send: (t: ObsTopo) => void;
}

export function dropCases(): DropCase[] {
  const big = echoReplyFrame(A_MAC, A_MAC, IP.s0, IP.s1, 1400);
  const c = (reason: string, count: number, device: string, from: string, master: string, frame: Buffer, ns: (t: ObsTopo) => [string, string]): DropCase => ({
    reason,
    count,
    device,
    direction: from === 'wire' ? 'from_wire' : 'from_slave',
    from,
    master,
    frame,
    send: (t) => {
      const [n, d] = ns(t);
      sendRaw(n, d, frame, count);
    },
  });
  return [
    c('too_big', 2, 's0', 's0', 'eth0m', big, (t) => [t.ns.s0, 's0']),
    c('spoofed_mac', 3, 's0', 's0', 'eth0m', echoReplyFrame(WIRE0_MAC, '02:00:00:00:aa:aa', IP.s0, IP.wire0), (t) => [t.ns.s0, 's0']),
    c('spoofed_source', 4, 's0', 's0', 'eth0m', echoReplyFrame(WIRE0_MAC, A_MAC, '198.18.10.77', IP.wire0), (t) => [t.ns.s0, 's0']),
    c('no_owner', 5, 'eth0m', 'wire', 'eth0m', echoReplyFrame(A_MAC, WIRE0_MAC, IP.wire0, IP.nobody0), (t) => [t.wire, 'wp0']),
    c('l3_multicast', 2, 's2', 's2', 'eth1m', udp4Frame({ dmac: '01:00:5e:00:00:fb', smac: B_MAC, src: IP.s2, dst: '224.0.0.251' }), (t) => [t.ns.s2, 's2']),
    c('l3_broadcast', 3, 's2', 's2', 'eth1m', udp4Frame({ dmac: B_MAC, smac: B_MAC, src: IP.s2, dst: '255.255.255.255' }), (t) => [t.ns.s2, 's2']),
    c('l3_protocol', 2, 's2', 's2', 'eth1m', etherFrame(B_MAC, B_MAC, 0x88b5), (t) => [t.ns.s2, 's2']),
    c('fib_lookup_failed', 3, 's2', 's2', 'eth1m', udp4Frame({ dmac: B_MAC, smac: B_MAC, src: IP.s2, dst: IP.unreachable }), (t) => [t.ns.s2, 's2']),
  ];
}

/** `private` needs the port flag flipped around the sends; `slave_down` a slave taken down. */
export async function provokePrivate(t: ObsTopo, count: number): Promise<Buffer> {
  const frame = echoReplyFrame(A_MAC, A_MAC, IP.s0, IP.s1);
  t.env.cliOk('-n', t.ns.s0, 'link', 'set', 'dev', 's0', 'type', 'ipvlan', 'mode', 'l2', 'private');
  try {
    sendRaw(t.ns.s0, 's0', frame, count);
  } finally {
    t.env.cliOk('-n', t.ns.s0, 'link', 'set', 'dev', 's0', 'type', 'ipvlan', 'mode', 'l2', 'bridge');
  }
  return frame;
}

export const SLAVE_DOWN_FRAME = echoReplyFrame(A_MAC, WIRE0_MAC, IP.wire0, IP.s1);

/**
 * Whether the datapath has s1 up: its ivb_slaves entry's flags, read with
 * bpftool (not explain, whose test runs would be monitor events too).
 */
export function s1UpInDatapath(t: ObsTopo): boolean {
  const peer = t.env.slave('s1')?.ipvlan_bpf.peer_ifindex;
  if (peer === undefined) throw new Error('s1 has no peer_ifindex in link show');
  // ivb_slaves is an array by slave index; ivb_slave_ids gives s1's
  const maps = join(t.env.pinDir, 'maps');
  const port = t.env.slave('s1')?.ipvlan_bpf.port_id;
  if (port === undefined) throw new Error('s1 has no port_id in link show');
  const read = (name: string, key: Buffer, size: number): Buffer | null => {
    const fd = objGet(join(maps, name));
    try {
      return mapLookup(fd, key, size);
    } finally {
      closeFd(fd);
    }
  };
  const index = read('ivb_slave_ids', encodeIvbSlaveKey({ portId: port, peerIfindex: peer }), 4);
  const e = index ? read('ivb_slaves', index, IvbSlaveLayout.size) : null;
  if (!e || decodeIvbSlave(e).peerIfindex !== peer) throw new Error('s1 has no ivb_slaves entry');
  return (decodeIvbSlave(e).flags & IvbSlaveFlags.UP) !== 0;
}

/** s1 down, and the learner has told the datapath. */
export async function s1Down(t: ObsTopo): Promise<void> {
  ip(t.ns.s1, 'link', 'set', 'dev', 's1', 'down');
  await waitUntil('s1 down in the datapath', () => !s1UpInDatapath(t), 15_000, 50);
}

export async function s1Up(t: ObsTopo): Promise<void> {
  ip(t.ns.s1, 'link', 'set', 'dev', 's1', 'up');
  await waitUntil('s1 up again in the datapath', () => s1UpInDatapath(t), 15_000, 50);
}

export async function provokeSlaveDown(t: ObsTopo, count: number): Promise<Buffer> {
  await s1Down(t);
  try {
    sendRaw(t.wire, 'wp0', SLAVE_DOWN_FRAME, count);
  } finally {
    await s1Up(t);
  }
  return SLAVE_DOWN_FRAME;
}
