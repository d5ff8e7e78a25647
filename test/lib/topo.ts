// SPDX-License-Identifier: GPL-2.0-only
/**
 * Shared helpers for the end-to-end tests: throw-away namespaces, iproute2,
 * bounded pings, the ipvlan-bpf CLI and agent run with a private state, and
 * polling with a deadline. Everything a test creates is registered in its
 * TestEnv, whose cleanup() (called from afterAll, which vitest runs even when
 * a test or beforeAll failed) kills the agents, deletes every namespace and
 * removes the private pin and state folders.
 *
 * Real kernel, real packets: no mocks. Nothing here touches the init
 * namespace's devices; addresses are only ever configured inside the test's
 * own namespaces.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, rmSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { HOWTO, buildMasterWire, configureSlave as configureSlaveWith, howtoWireSpec } from '../../controller/src/lab/wire.js';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CLI = join(REPO, 'bin', 'ipvlan-bpf.js');
/** the host's bpffs: tests run in the init mount namespace, so /sys/fs/bpf is the real one */
export const BPFFS = '/sys/fs/bpf';

export interface Result {
  status: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
}

/** Runs a command to completion; never throws (a spawn failure is status -1). */
export function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Result {
  const r = spawnSync(cmd, args, {
    encoding: 'utf8',
    env: opts.env ?? process.env,
    timeout: opts.timeoutMs ?? 30_000,
    maxBuffer: 64 * 1024 * 1024,
  });
  return {
    status: r.status ?? -1,
    stdout: r.stdout ?? '',
    stderr: (r.stderr ?? '') + (r.error ? String(r.error) : ''),
  };
}

/** Runs a command that must succeed; the error names the command and its stderr. */
export function must(cmd: string, args: readonly string[], opts: RunOptions = {}): string {
  const r = run(cmd, args, opts);
  if (r.status !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} -> exit ${r.status}: ${r.stderr.trim()}`);
  }
  return r.stdout;
}

/** `ip -n NS ARGS`, which must succeed */
export function ip(ns: string, ...args: string[]): string {
  return must('ip', ['-n', ns, ...args]);
}

/** `ip -n NS ARGS`, result only */
export function ipTry(ns: string, ...args: string[]): Result {
  return run('ip', ['-n', ns, ...args]);
}

/** `ip -n NS -j ARGS`, parsed */
export function ipJson<T>(ns: string, ...args: string[]): T {
  const out = ip(ns, '-j', ...args).trim();
  return JSON.parse(out === '' ? '[]' : out) as T;
}

/** `ip netns exec NS CMD ARGS` */
export function nsExec(ns: string, cmd: string, args: readonly string[], opts: RunOptions = {}): Result {
  return run('ip', ['netns', 'exec', ns, cmd, ...args], opts);
}

export interface IpLinkJson {
  ifindex: number;
  ifname: string;
  flags: string[];
  mtu: number;
  address?: string;
  operstate?: string;
  ifalias?: string;
}

export interface IpAddrJson extends IpLinkJson {
  addr_info: Array<{ family: string; local: string; prefixlen: number; scope?: string }>;
}

export function linkNames(ns: string): string[] {
  return ipJson<IpLinkJson[]>(ns, 'link', 'show').map((l) => l.ifname).sort();
}

export function linkOf(ns: string, dev: string): IpLinkJson | null {
  const r = run('ip', ['-n', ns, '-j', 'link', 'show', 'dev', dev]);
  if (r.status !== 0) return null;
  return (JSON.parse(r.stdout) as IpLinkJson[])[0] ?? null;
}

/** the addresses (text) configured on DEV in NS */
export function addrsOf(ns: string, dev: string): string[] {
  const r = run('ip', ['-n', ns, '-j', 'addr', 'show', 'dev', dev]);
  if (r.status !== 0) return [];
  const list = JSON.parse(r.stdout) as IpAddrJson[];
  return list.flatMap((l) => l.addr_info.map((a) => a.local));
}

/**
 * One bounded ping (`-c 1 -W 1`) from inside NS; true when a reply came.
 * DEV binds the socket, as a link-local destination needs.
 */
export function ping(ns: string, addr: string, dev?: string): boolean {
  const args = ['-c', '1', '-W', '1', ...(dev ? ['-I', dev] : []), addr];
  return nsExec(ns, 'ping', args, { timeoutMs: 5_000 }).status === 0;
}

/**
 * A counter of NS's IP stack from /proc/net/snmp (IPv4: `Icmp InEchos`) or
 * /proc/net/snmp6 (IPv6: `Icmp6InEchos`). Which namespace answered a ping is
 * how the tests tell which slave got the traffic.
 */
export function snmp(ns: string, proto: 'Ip' | 'Icmp' | 'Icmp6' | 'Ip6', field: string): number {
  if (proto === 'Icmp6' || proto === 'Ip6') {
    const text = must('ip', ['netns', 'exec', ns, 'cat', '/proc/net/snmp6']);
    const line = text.split('\n').find((l) => l.split(/\s+/)[0] === `${proto}${field}`);
    if (!line) throw new Error(`no ${proto}${field} in ${ns}'s /proc/net/snmp6`);
    return Number(line.split(/\s+/)[1]);
  }
  const lines = must('ip', ['netns', 'exec', ns, 'cat', '/proc/net/snmp'])
    .split('\n')
    .filter((l) => l.startsWith(`${proto}:`));
  const names = lines[0]?.split(/\s+/) ?? [];
  const values = lines[1]?.split(/\s+/) ?? [];
  const i = names.indexOf(field);
  if (i < 0) throw new Error(`no ${proto} ${field} in ${ns}'s /proc/net/snmp`);
  return Number(values[i]);
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Polls PROBE until it returns something other than undefined/null/false, or
 * throws after TIMEOUTMS. Returns the value and how long it took (the first
 * probe runs at once, so 0 ms means "already true").
 */
export async function waitUntil<T>(
  what: string,
  probe: () => T | undefined | null | false,
  timeoutMs = 2_000,
  intervalMs = 10,
): Promise<{ value: T; ms: number }> {
  const t0 = performance.now();
  for (;;) {
    const v = probe();
    const ms = performance.now() - t0;
    if (v !== undefined && v !== null && v !== false) return { value: v, ms };
    if (ms > timeoutMs) throw new Error(`timed out after ${Math.round(ms)} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}

/** `ipvlan-bpf -j link show` as the tests read it (iproute2 key names plus ours) */
export interface LearnedJson {
  family: 'inet' | 'inet6';
  local: string;
  prefixlen: number;
}

export interface SlaveJson {
  ifindex: number;
  ifname: string;
  link: string;
  flags: string[];
  address: string;
  link_netns?: string;
  linkinfo: {
    info_kind: string;
    info_data: { mode: string; bridge?: boolean; private?: boolean; vepa?: boolean };
  };
  ipvlan_bpf: {
    master_netns?: string | null;
    port_id: number;
    dev_id: number;
    peer: string;
    peer_ifindex?: number;
    netns: string | null;
    learned: LearnedJson[];
  };
}

/** "l2 bridge", "l3s vepa", ...: mode and the one flag set, as the tests compare them */
export function modeOf(s: SlaveJson): string {
  const d = s.linkinfo.info_data;
  const flags = (['bridge', 'private', 'vepa'] as const).filter((f) => d[f] === true);
  return [d.mode, ...flags].join(' ');
}

/** The kernel's link-local for slave DEVID of a master with MAC (semantics §1.2). */
export function slaveLinkLocal(mac: string, devId: number): string {
  const m = mac.split(':').map((h) => parseInt(h, 16));
  const g = [(m[0]! << 8) | m[1]!, (m[2]! << 8) | (devId >> 8), ((devId & 0xff) << 8) | m[3]!, (m[4]! << 8) | m[5]!];
  return `fe80::${g.map((x) => x.toString(16)).join(':')}`;
}

/** A running `ipvlan-bpf agent`, with every stdout/stderr line kept for assertions. */
export class Agent {
  readonly lines: string[] = [];
  readonly proc: ChildProcess;
  private exited: Promise<void>;
  private ended = false;

  /** COMMAND: how the agent is started (an installed package's, a service's command line) */
  constructor(env: NodeJS.ProcessEnv, command: readonly string[] = [process.execPath, CLI, 'agent']) {
    // own process group, so that its `ip monitor` children can be ended with it
    this.proc = spawn(command[0]!, command.slice(1), { env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    for (const stream of [this.proc.stdout, this.proc.stderr]) {
      if (stream) createInterface({ input: stream }).on('line', (l) => this.lines.push(l));
    }
    this.exited = new Promise((res) => {
      this.proc.once('exit', () => {
        this.ended = true;
        res();
      });
    });
  }

  get pid(): number {
    return this.proc.pid ?? -1;
  }

  get running(): boolean {
    return !this.ended;
  }

  matching(re: RegExp): string[] {
    return this.lines.filter((l) => re.test(l));
  }

  async waitForLine(re: RegExp, timeoutMs = 5_000): Promise<string> {
    const { value } = await waitUntil(`agent line ${re}`, () => this.lines.find((l) => re.test(l)), timeoutMs, 20);
    return value;
  }

  /** SIGTERM (the agent's clean stop), escalating to SIGKILL of the group after 3 s. */
  async stop(): Promise<void> {
    if (this.ended) return this.killGroup();
    try {
      process.kill(this.pid, 'SIGTERM');
    } catch {
      /* already gone */
    }
    const t = setTimeout(() => this.killGroup(), 3_000);
    await this.exited;
    clearTimeout(t);
    this.killGroup();
  }

  /** SIGKILL of the agent process alone, as a crash would be. */
  async crash(): Promise<void> {
    if (!this.ended) process.kill(this.pid, 'SIGKILL');
    await this.exited;
  }

  /** The processes the agent left in its group (orphaned `ip monitor`s), as "pid cmd" lines. */
  leftovers(): string[] {
    const r = run('pgrep', ['-a', '-g', String(this.pid)]);
    return r.stdout.split('\n').filter((l) => l.trim() !== '');
  }

  /** Ends whatever is left of the agent's process group (ours: we started it). */
  killGroup(): void {
    try {
      process.kill(-this.pid, 'SIGKILL');
    } catch {
      /* nothing left */
    }
  }
}

export type CliVia = 'direct' | 'ip-netns-exec' | 'nsenter';

/**
 * One test file's private world: namespace names with a unique prefix, the
 * private state and pin folders the CLI and agent are pointed at, and the
 * cleanup registry.
 */
export class TestEnv {
  readonly prefix: string;
  readonly stateDir: string;
  readonly pinSubdir: string;
  readonly pinDir: string;
  readonly env: NodeJS.ProcessEnv;
  private readonly namespaces = new Set<string>();
  private readonly agents = new Set<Agent>();
  private readonly extra: Array<() => void> = [];

  /** FILE names the test file (state and pin folders); NSTAG starts every namespace name */
  constructor(file: string, nsTag: string) {
    const id = `ivb-test-${file}-${process.pid}`;
    this.prefix = `${nsTag}${process.pid}-`;
    this.stateDir = `/run/${id}`;
    this.pinSubdir = id;
    this.pinDir = join(BPFFS, id);
    this.env = { ...process.env, IPVLAN_BPF_STATE_DIR: this.stateDir, IPVLAN_BPF_PIN_SUBDIR: this.pinSubdir };
    delete this.env.IPVLAN_BPF_BPFFS;
    // a crashed worker must not leave an agent running
    process.once('exit', () => this.killAgents());
  }

  /** Creates namespace PREFIX+NAME (lo up) and registers it for cleanup; returns its full name. */
  netns(name: string): string {
    const full = `${this.prefix}${name}`;
    if (existsSync(`/run/netns/${full}`)) run('ip', ['netns', 'del', full]);
    must('ip', ['netns', 'add', full]);
    this.namespaces.add(full);
    ip(full, 'link', 'set', 'lo', 'up');
    return full;
  }

  /** Deletes one of our namespaces now (the test of "slave's namespace deleted"). */
  delNetns(full: string): void {
    must('ip', ['netns', 'del', full]);
    this.namespaces.delete(full);
  }

  onCleanup(fn: () => void): void {
    this.extra.push(fn);
  }

  /**
   * Runs the CLI with the private state. VIA starts it inside NS the way a
   * user would: `ip netns exec NS` (which remounts /sys) or
   * `nsenter --net=/run/netns/NS`.
   */
  cli(args: readonly string[], via: CliVia = 'direct', ns?: string): Result {
    const node = process.execPath;
    switch (via) {
      case 'direct':
        return run(node, [CLI, ...args], { env: this.env });
      case 'ip-netns-exec':
        return run('ip', ['netns', 'exec', ns!, node, CLI, ...args], { env: this.env });
      case 'nsenter':
        return run('nsenter', [`--net=/run/netns/${ns!}`, node, CLI, ...args], { env: this.env });
    }
  }

  /** The CLI, which must succeed; returns stdout. */
  cliOk(...args: string[]): string {
    const r = this.cli(args);
    if (r.status !== 0) throw new Error(`ipvlan-bpf ${args.join(' ')} -> exit ${r.status}: ${r.stderr.trim()}`);
    return r.stdout;
  }

  /** `ipvlan-bpf -j link show` */
  show(): SlaveJson[] {
    const out = this.cliOk('-j', 'link', 'show').trim();
    return out === '' ? [] : (JSON.parse(out) as SlaveJson[]);
  }

  slave(ifname: string): SlaveJson | undefined {
    return this.show().find((s) => s.ifname === ifname);
  }

  learned(ifname: string): string[] {
    return this.slave(ifname)?.ipvlan_bpf.learned.map((a) => a.local) ?? [];
  }

  /** Starts the agent and waits for its "started" line. */
  async startAgent(): Promise<Agent> {
    const a = new Agent(this.env);
    this.agents.add(a);
    await a.waitForLine(/ipvlan-bpf agent: started/, 10_000);
    return a;
  }

  /** Every file under the private pin folder, relative, sorted ("" when it does not exist). */
  pinFiles(): string[] {
    return listTree(this.pinDir);
  }

  /** Every file under the private state folder except the agent's pid file and the lock. */
  stateFiles(): string[] {
    return listTree(this.stateDir).filter((f) => !/(^|\/)(agent\.pid|\.?lock[^/]*)$/.test(f));
  }

  /** The address map's pin, read with bpftool (null when the map is not pinned). */
  addrMapHas(addr: string): boolean | null {
    // the demux table of the address's family (IPv4: ivb_addrs4, IPv6: ivb_addrs6)
    const pin = join(this.pinDir, 'maps', addr.includes(':') ? 'ivb_addrs6' : 'ivb_addrs4');
    if (!existsSync(pin)) return null;
    const r = run('bpftool', ['-j', 'map', 'dump', 'pinned', pin]);
    if (r.status !== 0) return null;
    const needle = addrBytes(addr);
    const entries = JSON.parse(r.stdout) as Array<{ key?: unknown }>;
    // layout-agnostic: the address's bytes anywhere in the raw key
    return entries.some((e) => Array.isArray(e.key) && containsSeq(e.key.map((b) => parseInt(String(b), 16)), needle));
  }

  killAgents(): void {
    for (const a of this.agents) a.killGroup();
  }

  /** Kills the agents, deletes every namespace, removes the private pin and state folders. */
  async cleanup(): Promise<void> {
    for (const a of this.agents) await a.stop().catch(() => a.killGroup());
    this.agents.clear();
    for (const fn of this.extra.reverse()) {
      try {
        fn();
      } catch {
        /* best effort: keep cleaning */
      }
    }
    for (const ns of this.namespaces) run('ip', ['netns', 'del', ns]);
    this.namespaces.clear();
    rmSync(this.pinDir, { recursive: true, force: true });
    rmSync(this.stateDir, { recursive: true, force: true });
  }
}

function listTree(root: string): string[] {
  const out: string[] = [];
  const walk = (dir: string, rel: string): void => {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      return;
    }
    for (const n of names) {
      const p = join(dir, n);
      const r = rel ? `${rel}/${n}` : n;
      let isDir = false;
      try {
        isDir = statSync(p).isDirectory();
      } catch {
        continue;
      }
      if (isDir) walk(p, r);
      else out.push(r);
    }
  };
  walk(root, '');
  return out.sort();
}

function addrBytes(addr: string): number[] {
  if (addr.includes(':')) {
    const [head = '', tail = ''] = addr.split('::');
    const h = head ? head.split(':') : [];
    const t = addr.includes('::') ? (tail ? tail.split(':') : []) : [];
    const groups = [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
    return groups.flatMap((g) => {
      const v = parseInt(g, 16);
      return [v >> 8, v & 0xff];
    });
  }
  return addr.split('.').map(Number);
}

function containsSeq(hay: number[], needle: number[]): boolean {
  for (let i = 0; i + needle.length <= hay.length; i++) {
    if (needle.every((b, j) => hay[i + j] === b)) return true;
  }
  return false;
}

/** The HOWTO's shape: a host namespace with the master, a wire namespace as the external router. */
export interface Wire {
  host: string;
  wire: string;
  master: string;
  masterMac: string;
  routerV4: string;
  routerV6: string;
  hostV4: string;
  hostV6: string;
}

/**
 * The HOWTO's wire (controller/src/lab/wire.ts) in this file's namespaces:
 * host ns: master eth0m (a veth, MAC MASTERMAC) with 198.18.0.2/24 and 2001:db8::2/64;
 * wire ns: its peer wp0 in bridge br0, the router, 198.18.0.1/24 and 2001:db8::1/64,
 * forwarding on. A bridge, so that a test can hang more "wire" hosts off it.
 */
export function buildWire(env: TestEnv, masterMac: string = HOWTO.masterMac): Wire {
  const host = env.netns('host');
  const wire = env.netns('wire');
  buildMasterWire(must, { ...howtoWireSpec(host, wire, 'wp0', masterMac), bridge: 'br0' });
  return {
    host,
    wire,
    master: HOWTO.master,
    masterMac,
    routerV4: HOWTO.router4,
    routerV6: HOWTO.router6,
    hostV4: HOWTO.master4,
    hostV6: HOWTO.master6,
  };
}

/**
 * The HOWTO's per-namespace steps: link up, lo up, an IPv4 and an IPv6
 * (nodad) address, default routes via the router (GW4/GW6) or, for l3, out
 * of the device.
 */
export function configureSlave(ns: string, dev: string, v4: string, v6: string, via: { gw4: string; gw6: string } | 'dev'): void {
  configureSlaveWith(must, ns, dev, v4, v6, via);
}

const SENDER = [
  'import errno, socket, sys, time',
  'dev, frame, count, gap = sys.argv[1], bytes.fromhex(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])',
  's = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)',
  's.bind((dev, 0))',
  'for _ in range(count):',
  // ENOBUFS: the frame was dropped on the way (a full backlog on a busy machine): send it again
  '    for attempt in range(2000):',
  '        try:',
  '            s.send(frame)',
  '            break',
  '        except OSError as e:',
  '            if e.errno != errno.ENOBUFS or attempt == 1999: raise',
  '            time.sleep(0.001)',
  '    time.sleep(gap)',
].join('\n');

/**
 * Sends FRAME COUNT times out of DEV inside NS, GAPMS apart, with a python3
 * AF_PACKET socket: the frame goes out byte for byte, any MAC, any source,
 * as a hostile namespace owner can send it.
 */
export function sendRaw(ns: string, dev: string, frame: Buffer, count = 1, gapMs = 2): void {
  must('ip', ['netns', 'exec', ns, 'python3', '-c', SENDER, dev, frame.toString('hex'), String(count), String(gapMs / 1000)], { timeoutMs: 20_000 });
}
