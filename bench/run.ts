// SPDX-License-Identifier: GPL-2.0-only
/**
 * `npm run bench [-- --quick] [-- --reps N] [-- --out DIR]`: ipvlan-bpf against
 * macvlan, veth+bridge, veth routing and the ceilings, interleaved, on this
 * machine. Writes bench/results/<stamp>.json, latest.md, latest.png (and the
 * same under <stamp>.*). Everything it creates (namespaces ivbb-*, pins under
 * /sys/fs/bpf/ivbb-pins, state /run/ivbb-state) is removed at the end, also on
 * failure and Ctrl-C. See docs/bench.md.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, release, tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  BPF_ANY,
  closeFd,
  encodeSkbCtx,
  mapDeleteBatch,
  mapUpdateBatch,
  objGet,
  progInfo,
  progTestRun,
  withNetns,
} from '../native/libbpf.js';
import { bg, coreTicks, killAll, loadavg, must, nsx, run, sleep, snmpUdp, type Bg } from './lib/sh.js';
import {
  buildBase,
  cleanupAll,
  cli,
  cliTimes,
  bpfEnv,
  H,
  ipvlanBpf,
  macvlan,
  MANY,
  M_MAC,
  PIN_DIR,
  portId,
  vethBridge,
  vethPair,
  vethRouting,
  W,
  WIRE_IP,
  WIRE_MAC,
  xdpDrop,
  type Contender,
  type Slaves,
} from './lib/topo.js';
import { linkAdd, linkDel } from '../controller/src/link/manager.js';
import { cell, drawChart, fmt, Progress, stat, type Panel, type Stat } from './lib/report.js';

const argv = process.argv.slice(2);
const QUICK = argv.includes('--quick');
const arg = (n: string): string | undefined => {
  const i = argv.indexOf(n);
  return i >= 0 ? argv[i + 1] : undefined;
};
const REPS = Number(arg('--reps') ?? (QUICK ? 1 : 5));
const DUR = QUICK ? 0.5 : 1.5; // seconds measured per sample
const WARM = QUICK ? 0.25 : 0.5;
const RR_N = QUICK ? 2000 : 20000;
/*
 * --profile: `perf record -C 1 -g` of the receiving core during the first
 * round's wire->slave sample of these contenders; the top symbols go into
 * the results (perf needs linux-perf, installed by scripts/setup.sh)
 */
const PROFILE = argv.includes('--profile');
const PROFILED = ['bpf-l2', 'macvlan'];
const profiles: Record<string, Array<{ symbol: string; pct: number }>> = {};
const TEST_REPEAT = QUICK ? 200_000 : 1_000_000;
const OUT = arg('--out') ?? join(process.cwd(), 'bench', 'results');
const TOOL = join(process.cwd(), 'dist', 'bench', 'ivbbench');
const HZ = 100; // USER_HZ
const TICK_NS = 1e9 / HZ;

// ---------------------------------------------------------------------------
// set-up step: packages the bench needs, the C tool

function setupStep(): void {
  const need: Record<string, string> = { iperf3: '/usr/bin/iperf3', gcc: '/usr/bin/gcc', 'libbpf-dev': '/usr/include/bpf/bpf.h', ethtool: '/usr/sbin/ethtool', bpftool: '/usr/sbin/bpftool' };
  const missing = Object.entries(need).filter(([, f]) => !existsSync(f)).map(([p]) => p);
  if (missing.length) {
    process.stderr.write(`[bench] installing ${missing.join(' ')}\n`);
    must('apt-get', ['update', '-qq'], { timeoutMs: 300_000 });
    must('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], { timeoutMs: 600_000, env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  }
  mkdirSync(join(process.cwd(), 'dist', 'bench'), { recursive: true });
  const src = join(process.cwd(), 'bench', 'tools', 'ivbbench.c');
  must('gcc', ['-O2', '-Wall', '-o', TOOL, src, '-lbpf']);
  for (const o of ['master_ingress', 'slave_egress']) {
    if (!existsSync(join(process.cwd(), 'bpf', `${o}.bpf.o`))) throw new Error(`bpf/${o}.bpf.o missing: run npm run build`);
  }
}

// ---------------------------------------------------------------------------
// measurements

interface UdpSample {
  pps: number;
  /** CPU ns per delivered packet on the core named in `core` */
  nsPerPkt: number;
  sent: number;
}


async function startSink(ns: string, ipAddr: string, secs: number): Promise<Bg> {
  const s = bg('ip', ['netns', 'exec', ns, TOOL, 'sink', ipAddr, '9', String(secs)]);
  if (!(await s.waitLine(/ready/, 5000))) throw new Error(`sink in ${ns}: ${s.out()}`);
  return s;
}

function xdpDrops(): number {
  const out = nsx(H, 'ethtool', '-S', 'm0').stdout;
  const m = /rx_queue_0_xdp_drops:\s*(\d+)/.exec(out);
  return m ? Number(m[1]) : 0;
}

/** wire -> slave 1: XDP live-frame generator on core 0 into wire0; counted at the slave's UDP layer */
async function udpW2S(c: Contender, sl: Slaves): Promise<UdpSample> {
  const total = WARM + DUR + 0.2;
  const sink = c.xdpDrop ? null : await startSink(sl.ns[0], sl.ips[0], total + 2);
  const count = (): number => {
    if (c.xdpDrop) return xdpDrops();
    const u = snmpUdp(sl.ns[0]);
    return u.inDatagrams + u.rcvbufErrors;
  };
  const gen = bg('ip', ['netns', 'exec', W, TOOL, 'xdpgen', 'wire0', sl.mac1, WIRE_MAC, WIRE_IP, sl.ips[0], '9', String(total), '0']);
  await sleep(WARM * 1000);
  const perfData = join(tmpdir(), `ivbb-perf-${c.id}-${process.pid}.data`);
  const perf = PROFILE && PROFILED.includes(c.id) && !profiles[c.id] ? bg('perf', ['record', '-C', '1', '-g', '-o', perfData, '--', 'sleep', String(DUR)]) : null;
  const c1 = count();
  const s1 = coreTicks(1);
  const t1 = performance.now();
  await sleep(DUR * 1000);
  const c2 = count();
  const s2 = coreTicks(1);
  const t2 = performance.now();
  await gen.done;
  if (perf) {
    await perf.done;
    profiles[c.id] = topSymbols(perfData);
    rmSync(perfData, { force: true });
  }
  if (sink) sink.proc.kill('SIGKILL');
  const n = c2 - c1;
  const sent = Number(gen.out().trim().split(/\s+/)[0] ?? 0);
  // XDP_DROP runs in m0's NAPI on core 0 with the generator: no separate receive core
  const ns = c.xdpDrop ? NaN : ((s2 - s1) * TICK_NS) / Math.max(1, n);
  return { pps: n / ((t2 - t1) / 1000), nsPerPkt: ns, sent };
}

/**
 * The hottest symbols of the receive path in a `perf record -g` of core 1:
 * samples whose call chain passes through net_rx_action (the softirq that
 * runs RPS'd packets, in whatever task it interrupted), by leaf symbol, as %
 * of those samples. Other work on the core (other sessions' processes, idle)
 * is left out, and its share is returned apart.
 */
function topSymbols(data: string, n = 20): Array<{ symbol: string; pct: number }> {
  const r = run('perf', ['script', '-i', data, '-F', 'ip,sym'], { timeoutMs: 300_000 });
  const counts = new Map<string, number>();
  let rx = 0;
  let all = 0;
  for (const block of r.stdout.split(/\n\s*\n/)) {
    const frames = block
      .split('\n')
      .map((l) => /^\s*[0-9a-f]+\s+(\S+)/.exec(l)?.[1])
      .filter((x): x is string => !!x);
    if (!frames.length) continue;
    all++;
    if (!frames.includes('net_rx_action')) continue;
    rx++;
    counts.set(frames[0]!, (counts.get(frames[0]!) ?? 0) + 1);
  }
  const out = [...counts.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([symbol, c]) => ({ symbol: symbol.replace(/^bpf_prog_[0-9a-f]+_/, 'bpf_prog_'), pct: (100 * c) / Math.max(1, rx) }));
  out.push({ symbol: `(receive path: ${rx} of ${all} samples of core 1)`, pct: (100 * rx) / Math.max(1, all) });
  return out;
}

/** a socket sender (sendmmsg, core 0) in srcNs to dstIp; counted at the receiver's UDP layer */
async function udpFromSlave(srcNs: string, dstIp: string, sinkNs: string): Promise<UdpSample> {
  const total = WARM + DUR + 0.2;
  const sink = await startSink(sinkNs, dstIp, total + 2);
  const count = (): number => {
    const u = snmpUdp(sinkNs);
    return u.inDatagrams + u.rcvbufErrors;
  };
  const gen = bg('ip', ['netns', 'exec', srcNs, TOOL, 'blast', dstIp, '9', String(total), '0']);
  await sleep(WARM * 1000);
  const c1 = count();
  const s1 = coreTicks(0, [gen.proc.pid]);
  const t1 = performance.now();
  await sleep(DUR * 1000);
  const c2 = count();
  const s2 = coreTicks(0, [gen.proc.pid]);
  const t2 = performance.now();
  await gen.done;
  sink.proc.kill('SIGKILL');
  const n = c2 - c1;
  return { pps: n / ((t2 - t1) / 1000), nsPerPkt: ((s2 - s1) * TICK_NS) / Math.max(1, n), sent: Number(gen.out().trim().split(/\s+/)[0] ?? 0) };
}

let tcpPort = 5300;
async function tcp(clientNs: string, serverNs: string, serverIp: string, streams: number): Promise<number> {
  const port = String(tcpPort++);
  const srv = bg('ip', ['netns', 'exec', serverNs, 'taskset', '-c', '1', 'iperf3', '-s', '-1', '--forceflush', '-B', serverIp, '-p', port]);
  if (!(await srv.waitLine(/listening/i, 5000))) throw new Error(`iperf3 server: ${srv.out()}`);
  const omit = QUICK ? [] : ['-O', '1'];
  const r = run('ip', ['netns', 'exec', clientNs, 'taskset', '-c', '0', 'iperf3', '-c', serverIp, '-p', port, '-t', QUICK ? '1' : '2', ...omit, '-P', String(streams), '-J', '--connect-timeout', '3000'], { timeoutMs: 30_000 });
  srv.proc.kill('SIGKILL');
  try {
    const j = JSON.parse(r.stdout) as { end?: { sum_received?: { bits_per_second?: number } } };
    return (j.end?.sum_received?.bits_per_second ?? NaN) / 1e9;
  } catch {
    return NaN;
  }
}

async function rr(serverNs: string, serverIp: string): Promise<{ p50: number; p90: number; p99: number } | null> {
  const srv = bg('ip', ['netns', 'exec', serverNs, TOOL, 'rrserver', serverIp, '7', '60', '1']);
  if (!(await srv.waitLine(/ready/, 5000))) throw new Error(`rrserver: ${srv.out()}`);
  const r = run('ip', ['netns', 'exec', W, TOOL, 'rrclient', serverIp, '7', String(RR_N), '0'], { timeoutMs: 60_000 });
  srv.proc.kill('SIGKILL');
  const v = r.stdout.trim().split(/\s+/).map(Number);
  if (r.status !== 0 || v.length < 6) return null;
  return { p50: v[0]!, p90: v[1]!, p99: v[2]! };
}

// ---------------------------------------------------------------------------
// BPF_PROG_TEST_RUN of the pinned programs, and their size

function frame(dstMac: string, srcMac: string, src: string, dst: string): Buffer {
  const f = Buffer.alloc(60);
  Buffer.from(dstMac.split(':').map((h) => parseInt(h, 16))).copy(f, 0);
  Buffer.from(srcMac.split(':').map((h) => parseInt(h, 16))).copy(f, 6);
  f.writeUInt16BE(0x0800, 12);
  const ipH = f.subarray(14, 34);
  ipH[0] = 0x45;
  ipH.writeUInt16BE(46, 2);
  ipH[8] = 64;
  ipH[9] = 17;
  Buffer.from(src.split('.').map(Number)).copy(ipH, 12);
  Buffer.from(dst.split('.').map(Number)).copy(ipH, 16);
  let s = 0;
  for (let i = 0; i < 20; i += 2) s += ipH.readUInt16BE(i);
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  ipH.writeUInt16BE(~s & 0xffff, 10);
  f.writeUInt16BE(4321, 34);
  f.writeUInt16BE(9, 36);
  f.writeUInt16BE(26, 38);
  return f;
}

interface TestRunFig {
  ns: number;
  retval: number;
}

function testRuns(c: Contender, sl: Slaves): Record<string, TestRunFig> {
  const out: Record<string, TestRunFig> = {};
  const dir = join(PIN_DIR, 'ports', String(portId()));
  const m0 = Number(JSON.parse(must('ip', ['-n', H, '-j', 'link', 'show', 'm0']).stdout)[0].ifindex);
  const [p1] = sl.peers!;
  const l3 = c.bpf!.mode !== 'l2';
  const cases: Array<[string, string, Buffer, number, number]> = [
    ['master_ingress wire->slave', 'master_ingress', frame(M_MAC, WIRE_MAC, WIRE_IP, sl.ips[0]), m0, 0],
    ['slave_egress slave->slave', 'slave_egress', frame(M_MAC, M_MAC, sl.ips[0], sl.ips[1]), p1, p1],
    ['slave_egress slave->wire', 'slave_egress', frame(l3 ? M_MAC : WIRE_MAC, M_MAC, sl.ips[0], WIRE_IP), p1, p1],
  ];
  const base = Number(run(TOOL, ['tcbase', String(TEST_REPEAT)]).stdout.trim());
  out['floor (TC program returning TC_ACT_OK)'] = { ns: base, retval: 0 };
  withNetns(`/run/netns/${H}`, () => {
    for (const [name, prog, data, ifindex, ingress] of cases) {
      const fd = objGet(join(dir, prog));
      try {
        const r = progTestRun(fd, { data, ctxIn: encodeSkbCtx({ ifindex, ingressIfindex: ingress }), repeat: TEST_REPEAT });
        out[name] = { ns: r.durationNs, retval: r.retval };
      } finally {
        closeFd(fd);
      }
    }
  });
  return out;
}

function progSizes(): Record<string, { xlatedInsns: number; jitedBytes: number; verifiedInsns?: number }> {
  const dir = join(PIN_DIR, 'ports', String(portId()));
  const out: Record<string, { xlatedInsns: number; jitedBytes: number; verifiedInsns?: number }> = {};
  for (const p of ['master_ingress', 'slave_egress']) {
    // bpf_prog_info of the pinned program (bpftool 7.1 does not print verified_insns)
    const fd = objGet(join(dir, p));
    try {
      const info = progInfo(fd);
      out[p] = { xlatedInsns: info.xlatedBytes / 8, jitedBytes: info.jitedBytes, verifiedInsns: info.verifiedInsns };
    } finally {
      closeFd(fd);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------
// address maps, agent

/** The IPv4 demux table: the bench's traffic is IPv4, so its lookups meet the entries loaded here. */
function addrsFd(): number {
  return objGet(join(PIN_DIR, 'maps', 'ivb_addrs4'));
}

/**
 * n keys/values for ivb_addrs4 (struct ivb_addr4_key: port_id u32, addr[4]):
 * 198.18.0.0/15 under port ids FAKE_PORT_BASE + i / 2^17 that no port can
 * have (ids are < 1024), so that 1M distinct keys fit in the test range
 */
const FAKE_PORT_BASE = 0x10000;
function fakeEntries(n: number): { keys: Buffer; values: Buffer } {
  const keys = Buffer.alloc(8 * n);
  const values = Buffer.alloc(8 * n);
  for (let i = 0; i < n; i++) {
    const k = i * 8;
    keys.writeUInt32LE(FAKE_PORT_BASE + (i >>> 17), k);
    keys.writeUInt32BE(0xc6120000 + (i & 0x1ffff), k + 4);
    values.writeUInt32LE(999_999, i * 8);
    values[i * 8 + 4] = 32;
  }
  return { keys, values };
}

function loadFake(n: number): { loadMs: number; unload: () => number } {
  if (n <= 0) return { loadMs: 0, unload: () => 0 };
  const fd = addrsFd();
  const { keys, values } = fakeEntries(n);
  const t0 = performance.now();
  mapUpdateBatch(fd, keys, values, n, BPF_ANY);
  const loadMs = performance.now() - t0;
  return {
    loadMs,
    unload: () => {
      const t1 = performance.now();
      mapDeleteBatch(fd, keys, n);
      const ms = performance.now() - t1;
      closeFd(fd);
      return ms;
    },
  };
}

async function agentRss(): Promise<{ startMs: number; rssKiB: number; hwmKiB: number } | null> {
  const a = bg(process.execPath, [join(process.cwd(), 'bin', 'ipvlan-bpf.js'), 'agent'], bpfEnv());
  const t0 = performance.now();
  const ok = await a.waitLine(/agent: started/, QUICK ? 20_000 : 90_000);
  const startMs = performance.now() - t0;
  await sleep(500);
  let res: { startMs: number; rssKiB: number; hwmKiB: number } | null = null;
  if (ok && a.proc.pid) {
    const st = readFileSync(`/proc/${a.proc.pid}/status`, 'utf8');
    const kib = (k: string): number => Number(new RegExp(`${k}:\\s*(\\d+)`).exec(st)?.[1] ?? NaN);
    res = { startMs, rssKiB: kib('VmRSS'), hwmKiB: kib('VmHWM') };
  }
  try {
    if (a.proc.pid) process.kill(-a.proc.pid, 'SIGTERM');
  } catch {
    /* gone */
  }
  await Promise.race([a.done, sleep(3000)]);
  try {
    if (a.proc.pid) process.kill(-a.proc.pid, 'SIGKILL');
  } catch {
    /* gone */
  }
  return res;
}

// ---------------------------------------------------------------------------

type Samples = Record<string, number[]>;

export interface BenchResult {
  command: string;
  /** --profile: top symbols of the receiving core during wire->slave, per contender */
  profiles?: Record<string, Array<{ symbol: string; pct: number }>>;
  started: string;
  finished: string;
  quick: boolean;
  reps: number;
  durationPerSampleS: number;
  env: Record<string, string>;
  loadavgBefore: number[];
  loadavgAfter: number[];
  cores: string;
  contenders: Array<{ id: string; label: string; note?: string }>;
  skipped: Array<{ id: string; why: string }>;
  samples: Record<string, Samples>;
  testRunNs: Record<string, Record<string, number[]>>;
  progSizes: Record<string, Record<string, { xlatedInsns: number; jitedBytes: number; verifiedInsns?: number }>>;
  setupMs: Record<string, number[]>;
  scaling: Record<string, number[]>;
  control: Record<string, number[]>;
  agent: Record<string, unknown>;
}

function push(s: Samples, k: string, v: number): void {
  (s[k] ??= []).push(v);
}

function envInfo(): Record<string, string> {
  const v = (cmd: string, args: string[]): string => {
    const r = run(cmd, args);
    return (r.stdout || r.stderr).split('\n')[0]!.trim();
  };
  let rev = '';
  try {
    rev = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
    if (execFileSync('git', ['status', '--porcelain', '--', 'bpf', 'controller', 'native', 'maps'], { encoding: 'utf8' }).trim()) rev += '+dirty';
  } catch {
    /* not a checkout */
  }
  return {
    kernel: release(),
    cpu: cpus()[0]?.model ?? '?',
    cores: String(cpus().length),
    node: process.version,
    iperf3: v('iperf3', ['--version']),
    iproute2: v('ip', ['-V']),
    bpftool: v('bpftool', ['version']),
    gcc: v('gcc', ['--version']),
    ipvlanBpf: `0.1.0 (${rev})`,
  };
}

/** wall ms of fn */
function timed(fn: () => unknown): number {
  const t0 = performance.now();
  fn();
  return performance.now() - t0;
}

async function main(): Promise<number> {
  const from = arg('--render');
  if (from) {
    // re-render the table and chart of a saved run (no traffic, no root needed)
    const result = JSON.parse(readFileSync(from, 'utf8')) as BenchResult;
    const stamp = from.replace(/^.*\//, '').replace(/\.json$/, '').replace(/-quick$/, '');
    cleaned = true; // nothing of ours to clean up
    const out = arg('--out') ?? from.replace(/\/[^/]*$/, '');
    process.stdout.write(render(result, out, stamp));
    return 0;
  }
  const started = new Date();
  // the in-process library calls below use the same private state as the CLI
  Object.assign(process.env, { IPVLAN_BPF_STATE_DIR: bpfEnv().IPVLAN_BPF_STATE_DIR, IPVLAN_BPF_PIN_SUBDIR: bpfEnv().IPVLAN_BPF_PIN_SUBDIR });
  const load0 = loadavg();
  setupStep();
  const env = envInfo();
  buildBase();

  const contenders: Contender[] = [
    ipvlanBpf('bpf-l2', 'ipvlan-bpf l2', 'l2', {}),
    ipvlanBpf('bpf-l2-nocnt', 'ipvlan-bpf l2 counters off', 'l2', { IPVLAN_BPF_COUNTERS: '0' }, 'counters and events compiled out at load (IPVLAN_BPF_COUNTERS=0)', true),
    ...(QUICK ? [] : [ipvlanBpf('bpf-l2-nosv', 'ipvlan-bpf l2 src-valid. off', 'l2', { IPVLAN_BPF_SOURCE_VALIDATION: '0' }, 'source validation off at link add', true)]),
    ipvlanBpf('bpf-l3', 'ipvlan-bpf l3', 'l3', {}),
    ipvlanBpf('bpf-l3s', 'ipvlan-bpf l3s', 'l3s', {}, 'wire→slave routed by the master namespace (forward path; no netfilter rules loaded here)'),
    macvlan,
    vethBridge,
    vethRouting,
    vethPair,
    xdpDrop,
  ];
  const samples: Record<string, Samples> = {};
  const testrun: Record<string, Record<string, number[]>> = {};
  const sizes: Record<string, ReturnType<typeof progSizes>> = {};
  const setupMs: Record<string, number[]> = {};
  const perSample = (c: Contender): number => 1 + Number(c.has.s2s) + Number(c.has.s2w) + (c.has.tcp ? (QUICK ? 1 : c.has.s2s ? 4 : 2) : 0) + Number(c.has.rr);
  const prog = new Progress(REPS * contenders.reduce((a, c) => a + perSample(c), 0));
  const addrSizes = QUICK ? [10, 10_000] : [10, 10_000, 1_048_000];
  const loadSizes = QUICK ? [1_000, 100_000] : [1_000, 100_000, 1_048_000];
  const slaveSizes = QUICK ? [2, 8] : [2, 64, 256];
  const scaleReps = QUICK ? 1 : REPS;
  prog.grow(scaleReps * addrSizes.length + loadSizes.length * (QUICK ? 1 : 3) + addrSizes.length + scaleReps * slaveSizes.length + 1);

  for (let rep = 0; rep < REPS; rep++) {
    // interleaved: every contender once per round, the order rotated each round
    const order = contenders.map((_, i) => contenders[(i + rep) % contenders.length]!);
    for (const c of order) {
      const S = (samples[c.id] ??= {});
      const t0 = performance.now();
      if (c.xdpDrop) must('ip', ['netns', 'exec', H, TOOL, 'xdpattach', 'm0', 'drop']);
      const sl = c.setup();
      (setupMs[c.id] ??= []).push(performance.now() - t0);
      try {
        if (c.bpf) {
          const tr = testRuns(c, sl);
          for (const [k, v] of Object.entries(tr)) (((testrun[c.id] ??= {})[k] ??= [])).push(v.ns);
          if (!sizes[c.id]) sizes[c.id] = progSizes();
        }
        const w = await udpW2S(c, sl);
        push(S, 'w2s_mpps', w.pps / 1e6);
        push(S, 'w2s_ns', w.nsPerPkt);
        push(S, 'w2s_sent_mpps', w.sent / (WARM + DUR + 0.2) / 1e6);
        prog.tick(`${c.id} udp wire->slave`);
        if (c.has.s2s) {
          const s = await udpFromSlave(sl.ns[0], sl.ips[1], sl.ns[1]);
          push(S, 's2s_mpps', s.pps / 1e6);
          push(S, 's2s_ns', s.nsPerPkt);
          prog.tick(`${c.id} udp slave->slave`);
        }
        if (c.has.s2w) {
          const s = await udpFromSlave(sl.ns[0], WIRE_IP, W);
          push(S, 's2w_mpps', s.pps / 1e6);
          push(S, 's2w_ns', s.nsPerPkt);
          prog.tick(`${c.id} udp slave->wire`);
        }
        if (c.has.tcp) {
          for (const n of QUICK ? [1] : [1, 4]) {
            push(S, `tcp${n}_w2s`, await tcp(W, sl.ns[0], sl.ips[0], n));
            prog.tick(`${c.id} tcp x${n} wire->slave`);
            if (c.has.s2s && !QUICK) {
              push(S, `tcp${n}_s2s`, await tcp(sl.ns[0], sl.ns[1], sl.ips[1], n));
              prog.tick(`${c.id} tcp x${n} slave->slave`);
            }
          }
        }
        if (c.has.rr) {
          const r = await rr(sl.ns[0], sl.ips[0]);
          if (r) {
            push(S, 'rr_p50', r.p50);
            push(S, 'rr_p99', r.p99);
          }
          prog.tick(`${c.id} request/response`);
        }
      } finally {
        c.teardown();
      }
    }
  }

  // --- scaling: addresses in the map, packet rate; load times; agent RSS
  const scale: Record<string, number[]> = {};
  const ctl: Record<string, number[]> = {};
  const agent: Record<string, unknown> = {};
  const l2 = contenders[0]!;
  let sl = l2.setup();
  try {
    for (let rep = 0; rep < scaleReps; rep++) {
      for (const n of addrSizes) {
        const f = loadFake(n - 2);
        try {
          const w = await udpW2S(l2, sl);
          (scale[`addrs_${n}_mpps`] ??= []).push(w.pps / 1e6);
          (scale[`addrs_${n}_ns`] ??= []).push(w.nsPerPkt);
          const tr = testRuns(l2, sl)['master_ingress wire->slave']!;
          (scale[`addrs_${n}_testrun_ns`] ??= []).push(tr.ns);
        } finally {
          f.unload();
        }
        prog.tick(`scaling: ${n} addresses`);
      }
    }
    for (let rep = 0; rep < (QUICK ? 1 : 3); rep++) {
      for (const n of loadSizes) {
        const f = loadFake(n);
        (ctl[`load_${n}_ms`] ??= []).push(f.loadMs);
        (ctl[`unload_${n}_ms`] ??= []).push(f.unload());
        prog.tick(`control: load ${n} addresses`);
      }
    }
    for (const n of addrSizes) {
      const f = loadFake(n - 2);
      try {
        agent[`addrs_${n}`] = await agentRss();
      } finally {
        f.unload();
      }
      prog.tick(`agent RSS at ${n} addresses`);
    }
    // --- scaling: slaves (extra ones in ns ivbb-many, same port)
    must('ip', ['netns', 'add', MANY]);
    let have = 2;
    for (const n of slaveSizes) {
      const addMs: number[] = [];
      for (; have < n; have++) {
        const name = `x${have}`;
        // odd: the CLI as users run it; even: the library call alone (no node start-up)
        if (have % 2) addMs.push(cli(['-n', H, 'link', 'add', 'link', 'm0', 'name', name, 'type', 'ipvlan', 'mode', 'l2']));
        else (ctl[`lib_link_add_upto_${n}_ms`] ??= []).push(timed(() => linkAdd({ master: 'm0', name, netns: H, mode: 'l2', typeArgs: true })));
        must('ip', ['-n', H, 'link', 'set', name, 'netns', MANY]);
        must('ip', ['-n', MANY, 'link', 'set', name, 'up']);
        must('ip', ['-n', MANY, 'addr', 'add', `198.18.${4 + (have >> 8)}.${have & 255}/16`, 'dev', name]);
      }
      if (addMs.length) (ctl[`link_add_upto_${n}_ms`] ??= []).push(...addMs);
      if (n > 2) (ctl[`sync_${n}_slaves_ms`] ??= []).push(cli(['sync']));
      for (let rep = 0; rep < scaleReps; rep++) {
        const w = await udpW2S(l2, sl);
        (scale[`slaves_${n}_mpps`] ??= []).push(w.pps / 1e6);
        (scale[`slaves_${n}_ns`] ??= []).push(w.nsPerPkt);
        prog.tick(`scaling: ${n} slaves`);
      }
    }
    agent[`slaves_${slaveSizes[slaveSizes.length - 1]}`] = await agentRss();
    prog.tick('agent RSS with many slaves');
    for (let i = 2; i < Math.min(have, 8); i++) {
      if (i % 2) (ctl.link_del_many_ms ??= []).push(cli(['-n', MANY, 'link', 'del', `x${i}`]));
      else (ctl.lib_link_del_many_ms ??= []).push(timed(() => linkDel(`x${i}`, MANY)));
    }
    for (let i = 0; i < (QUICK ? 2 : 5); i++) (ctl.cli_floor_ms ??= []).push(cli(['version']));
    run('ip', ['netns', 'del', MANY]);
    cli(['sync']);
  } finally {
    try {
      l2.teardown();
    } catch {
      /* cleanup below */
    }
    sl = undefined as unknown as Slaves;
  }
  prog.end();
  const load1 = loadavg();

  // ---------------------------------------------------------------------------
  const stamp = started.toISOString().replace(/[:.]/g, '-').slice(0, 19);
  const result: BenchResult = {
    command: `npm run bench${QUICK ? ' -- --quick' : ''}${arg('--reps') ? ` -- --reps ${REPS}` : ''}`,
    started: started.toISOString(),
    finished: new Date().toISOString(),
    quick: QUICK,
    reps: REPS,
    durationPerSampleS: DUR,
    env,
    loadavgBefore: load0,
    loadavgAfter: load1,
    cores: 'core 0: generators/clients (xdpgen, sendmmsg blaster, iperf3 -c, rr client) and m0 veth NAPI; core 1 (RPS on m0): receive path after the NAPI, servers',
    contenders: contenders.map((c) => ({ id: c.id, label: c.label, note: c.note })),
    skipped: [{ id: 'kernel-ipvlan', why: 'this kernel has no CONFIG_IPVLAN' }],
    samples,
    testRunNs: testrun,
    progSizes: sizes,
    setupMs,
    scaling: scale,
    control: { ...ctl, cliLinkAddMs: cliTimes.linkAdd, cliLinkDelMs: cliTimes.linkDel, cliSyncMs: cliTimes.sync },
    agent,
    ...(PROFILE ? { profiles } : {}),
  };
  mkdirSync(OUT, { recursive: true });
  writeFileSync(join(OUT, `${stamp}${QUICK ? '-quick' : ''}.json`), JSON.stringify(result, null, 2) + '\n');

  render(result, OUT, stamp);
  process.stdout.write(`\nwritten: ${OUT}/${stamp}${QUICK ? '-quick' : ''}.{json,md,png}\n`);
  return 0;
}

/** The Markdown table and the PNG chart of one result (also `--render FILE.json`). */
export function render(result: BenchResult, OUT: string, stamp: string): string {
  const QUICK = result.quick;
  const REPS = result.reps;
  const DUR = result.durationPerSampleS;
  const env = result.env;
  const load0 = result.loadavgBefore;
  const load1 = result.loadavgAfter;
  const samples = result.samples;
  const testrun = result.testRunNs;
  const sizes = result.progSizes;
  const scale = result.scaling;
  const ctl = result.control;
  const agent = result.agent;
  const contenders = result.contenders;
  const started = new Date(result.started);
  const st = (id: string, k: string): Stat | null => stat(samples[id]?.[k] ?? []);
  const sizesOf = (re: RegExp): number[] => [...new Set(Object.keys({ ...scale, ...ctl }).map((k) => re.exec(k)?.[1]).filter((x): x is string => !!x).map(Number))].sort((x, y) => x - y);
  const addrSizes = sizesOf(/^addrs_(\d+)_mpps$/);
  const loadSizes = sizesOf(/^load_(\d+)_ms$/);
  const slaveSizes = sizesOf(/^slaves_(\d+)_mpps$/);
  // --- table
  const L: string[] = [];
  L.push(`Command: \`${result.command}\` — ${QUICK ? 'quick' : 'full'} run, ${REPS} round(s), ${DUR} s per sample, medians (±(max−min)/median). ${started.toISOString()}`);
  L.push('');
  L.push(`Kernel ${env.kernel}, ${env.cpu} × ${env.cores} cores, node ${env.node}, ${env.iperf3}, ipvlan-bpf ${env.ipvlanBpf}. Load average (1/5/15 min) before ${load0.join(' ')}, after ${load1.join(' ')} (other sessions' tests may have shared the cores).`);
  L.push('');
  L.push('| contender | UDP64 wire→slave Mpps | rx core ns/pkt | UDP64 slave→slave Mpps | ns/pkt (core 0) | UDP64 slave→wire Mpps | ns/pkt (core 0) | TCP×1 w→s Gbit/s | TCP×4 w→s | TCP×1 s→s | TCP×4 s→s | RR p50 µs | RR p99 µs |');
  L.push('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const c of contenders) {
    const g = (k: string): string => cell(st(c.id, k));
    L.push(`| ${c.label} | ${g('w2s_mpps')} | ${g('w2s_ns')} | ${g('s2s_mpps')} | ${g('s2s_ns')} | ${g('s2w_mpps')} | ${g('s2w_ns')} | ${g('tcp1_w2s')} | ${g('tcp4_w2s')} | ${g('tcp1_s2s')} | ${g('tcp4_s2s')} | ${g('rr_p50')} | ${g('rr_p99')} |`);
  }
  L.push('| kernel ipvlan | skipped: no CONFIG_IPVLAN in this kernel | | | | | | | | | | | |');
  L.push('');
  L.push('BPF_PROG_TEST_RUN, ns per run (64-byte frame):');
  L.push('');
  const TR = ['floor (TC program returning TC_ACT_OK)', 'master_ingress wire->slave', 'slave_egress slave->slave', 'slave_egress slave->wire'];
  L.push('| contender | ' + TR.join(' | ') + ' | xlated insns (ingress / egress) |');
  L.push('| --- | --- | --- | --- | --- | --- |');
  for (const [id, t] of Object.entries(testrun)) {
    const z = sizes[id] ?? {};
    L.push(`| ${contenders.find((c) => c.id === id)!.label} | ${TR.map((k) => cell(stat(t[k] ?? []), 1)).join(' | ')} | ${z.master_ingress?.xlatedInsns ?? '–'} / ${z.slave_egress?.xlatedInsns ?? '–'} |`);
  }
  L.push('');
  L.push('Scaling (ipvlan-bpf l2, wire→slave UDP64):');
  L.push('');
  L.push('| map / port size | Mpps | rx core ns/pkt | test-run ns |');
  L.push('| --- | --- | --- | --- |');
  for (const n of addrSizes) L.push(`| ${n} addresses | ${cell(stat(scale[`addrs_${n}_mpps`] ?? []))} | ${cell(stat(scale[`addrs_${n}_ns`] ?? []))} | ${cell(stat(scale[`addrs_${n}_testrun_ns`] ?? []), 1)} |`);
  for (const n of slaveSizes) L.push(`| ${n} slaves | ${cell(stat(scale[`slaves_${n}_mpps`] ?? []))} | ${cell(stat(scale[`slaves_${n}_ns`] ?? []))} | |`);
  L.push('');
  L.push('Control plane:');
  L.push('');
  L.push('| operation | ms (median, min–max) |');
  L.push('| --- | --- |');
  const ctlRow = (label: string, xs: number[] | undefined): void => {
    const s = stat(xs ?? []);
    L.push(`| ${label} | ${s ? `${fmt(s.median)} (${fmt(s.min)}–${fmt(s.max)}, n=${s.n})` : '–'} |`);
  };
  for (const n of loadSizes) ctlRow(`load ${n} addresses (bpf_map_update_batch)`, ctl[`load_${n}_ms`]);
  for (const n of loadSizes) ctlRow(`delete ${n} addresses (bpf_map_delete_batch)`, ctl[`unload_${n}_ms`]);
  // contenders add slave 1 (which creates the port: loads and verifies both programs) then slave 2
  const firstAdd = (ctl.cliLinkAddMs ?? []).filter((_, i) => i % 2 === 0);
  const nextAdd = (ctl.cliLinkAddMs ?? []).filter((_, i) => i % 2 === 1);
  ctlRow('`ipvlan-bpf link add`, first slave (creates the port: loads both programs)', firstAdd);
  ctlRow('`ipvlan-bpf link add`, second slave (port exists)', nextAdd);
  ctlRow('`ipvlan-bpf link del` (CLI, 2-slave port)', ctl.cliLinkDelMs);
  for (const n of slaveSizes) if (ctl[`link_add_upto_${n}_ms`]) ctlRow(`\`link add\` while growing the port to ${n} slaves`, ctl[`link_add_upto_${n}_ms`]);
  for (const n of slaveSizes) if (ctl[`lib_link_add_upto_${n}_ms`]) ctlRow(`linkAdd() library call alone, growing the port to ${n} slaves`, ctl[`lib_link_add_upto_${n}_ms`]);
  ctlRow(`\`link del\` on a ${slaveSizes[slaveSizes.length - 1]}-slave port`, ctl.link_del_many_ms);
  ctlRow(`linkDel() library call alone on a ${slaveSizes[slaveSizes.length - 1]}-slave port`, ctl.lib_link_del_many_ms);
  ctlRow('CLI start-up floor (`ipvlan-bpf version`)', ctl.cli_floor_ms);
  ctlRow('`ipvlan-bpf sync` (2 slaves)', ctl.cliSyncMs);
  for (const n of slaveSizes) if (ctl[`sync_${n}_slaves_ms`]) ctlRow(`\`ipvlan-bpf sync\` (${n} slaves)`, ctl[`sync_${n}_slaves_ms`]);
  L.push('');
  L.push('Agent (start to "started", first resync included; resident memory 0.5 s later):');
  L.push('');
  L.push('| state | start ms | VmRSS MiB | VmHWM MiB |');
  L.push('| --- | --- | --- | --- |');
  for (const [k, v] of Object.entries(agent)) {
    const a = v as { startMs: number; rssKiB: number; hwmKiB: number } | null;
    L.push(`| ${k.replace('_', ' ')} | ${a ? fmt(a.startMs) : 'timeout'} | ${a ? fmt(a.rssKiB / 1024) : '–'} | ${a ? fmt(a.hwmKiB / 1024) : '–'} |`);
  }
  if (result.profiles && Object.keys(result.profiles).length) {
    L.push('');
    L.push('Receiving core (core 1) during wire→slave, `perf record -C 1 -g`, self time, % of all samples:');
    L.push('');
    const ids = Object.keys(result.profiles);
    L.push('| rank | ' + ids.map((id) => contenders.find((c) => c.id === id)?.label ?? id).join(' | ') + ' |');
    L.push('| ---: | ' + ids.map(() => '---').join(' | ') + ' |');
    const rows = Math.max(...ids.map((id) => result.profiles![id]!.length));
    for (let i = 0; i < rows; i++) {
      L.push(`| ${i + 1} | ` + ids.map((id) => { const e = result.profiles![id]![i]; return e ? `${e.pct.toFixed(1)}% \`${e.symbol}\`` : ''; }).join(' | ') + ' |');
    }
  }
  L.push('');
  L.push(targets(samples, scale, ctl));
  L.push('');
  L.push(targets12(result));
  const md = L.join('\n') + '\n';
  writeFileSync(join(OUT, `${stamp}${QUICK ? '-quick' : ''}.md`), md);
  writeFileSync(join(OUT, QUICK ? 'latest-quick.md' : 'latest.md'), md);

  // --- chart
  const panels: Panel[] = [
    ['w2s_mpps', 'UDP64 wire->slave', 'Mpps'],
    ['w2s_ns', 'wire->slave rx core cost', 'ns/pkt'],
    ['s2s_ns', 'UDP64 slave->slave cost', 'ns/pkt core 0'],
    ['s2w_ns', 'UDP64 slave->wire cost', 'ns/pkt core 0'],
    ['tcp1_w2s', 'TCP 1 stream wire->slave', 'Gbit/s'],
    ['tcp4_w2s', 'TCP 4 streams wire->slave', 'Gbit/s'],
    ['tcp1_s2s', 'TCP 1 stream slave->slave', 'Gbit/s'],
    ['rr_p99', 'UDP request/response p99', 'us'],
  ].map(([k, t, u]) => ({
    title: t!,
    unit: u!,
    bars: contenders.map((c, i) => ({ label: c.label, stat: st(c.id, k!), color: i })).filter((b) => b.stat || (k === 'w2s_mpps')),
  })).filter((p) => p.bars.some((b) => b.stat));
  const png = join(OUT, `${stamp}${QUICK ? '-quick' : ''}.png`);
  drawChart(png, `ipvlan-bpf bench ${QUICK ? '(quick) ' : ''}${started.toISOString().slice(0, 16)}`, panels);
  copyFileSync(png, join(OUT, QUICK ? 'latest-quick.png' : 'latest.png'));
  process.stdout.write(md);
  return md;
}

/** Issue 12's targets (the hot path at macvlan's cost), from the same run. */
function targets12(result: BenchResult): string {
  const m = (id: string, k: string): number => stat(result.samples[id]?.[k] ?? [])?.median ?? NaN;
  const tr = (id: string, k: string): number => stat(result.testRunNs[id]?.[k] ?? [])?.median ?? NaN;
  const rows = ['Targets (issue 12), from this run\'s medians:', '', '| target | measured | status |', '| --- | --- | --- |'];
  // a miss smaller than half the two samples' spread is not a measured miss (as in issue 5's table)
  const row = (t: string, meas: string, ok: boolean, missPct = 0, noisePct = 0): void => {
    const status = meas.includes('NaN') ? '–' : ok ? 'met' : noisePct > 0 && missPct < noisePct ? `not resolved: ${missPct.toFixed(0)}% over is inside the samples' spread (±${noisePct.toFixed(0)}%)` : 'missed';
    rows.push(`| ${t} | ${meas} | ${status} |`);
  };
  const spread = (id: string, k: string): number => stat(result.samples[id]?.[k] ?? [])?.spreadPct ?? 0;
  const noise = (k: string, a: string, b: string): number => Math.min(spread(a, k), spread(b, k)) / 2;
  const x = (a: number, b: number): string => `${fmt(a / b)}× (${fmt(a)} vs ${fmt(b)} ns/pkt)`;
  const w = m('bpf-l2', 'w2s_ns');
  const mv = m('macvlan', 'w2s_ns');
  row('wire→slave rx-core ns/pkt ≤ 1.10× macvlan (stretch ≤ 1.0×)', x(w, mv), w / mv <= 1.1, (w / mv / 1.1 - 1) * 100, noise('w2s_ns', 'bpf-l2', 'macvlan'));
  const t1 = tr('bpf-l2', 'master_ingress wire->slave');
  row('master_ingress test-run, unicast delivery, counters on ≤ 80 ns', `${fmt(t1)} ns (floor ${fmt(tr('bpf-l2', 'floor (TC program returning TC_ACT_OK)'))} ns)`, t1 <= 80);
  for (const [k, t] of [['s2w_ns', 'slave→wire l2'], ['s2s_ns', 'slave→slave']] as const) {
    const r = m('bpf-l2', k) / m('macvlan', k);
    row(`${t} ns/pkt ≤ 1.20× macvlan`, x(m('bpf-l2', k), m('macvlan', k)), r <= 1.2, (r / 1.2 - 1) * 100, noise(k, 'bpf-l2', 'macvlan'));
  }
  const off = m('bpf-l2-nocnt', 'w2s_ns');
  const t0 = tr('bpf-l2-nocnt', 'master_ingress wire->slave');
  row('counters + events ≤ 3% of the wire→slave cost, live', `${fmt((w / off - 1) * 100)}% (${fmt(w)} vs ${fmt(off)} ns/pkt)`, w / off - 1 <= 0.03, (w / off - 1.03) * 100, noise('w2s_ns', 'bpf-l2', 'bpf-l2-nocnt'));
  row('counters + events ≤ 3% of the wire→slave cost, test-run', `${fmt(t1 - t0)} ns more in test-run (${fmt(t1)} vs ${fmt(t0)}) = ${fmt(((t1 - t0) / w) * 100)}% of the rx-core cost, ${fmt(((t1 - t0) / t0) * 100)}% of the program`, (t1 - t0) / w <= 0.03);
  const z = result.progSizes['bpf-l2'] ?? {};
  const vi = Math.max(z.master_ingress?.verifiedInsns ?? NaN, z.slave_egress?.verifiedInsns ?? NaN);
  if (Number.isNaN(vi)) rows.push('| each program verifies in ≤ 50 000 processed instructions (counters on) | not recorded in this run: `node dist/bench/verifier.js` | – |');
  else row('each program verifies in ≤ 50 000 processed instructions (counters on)', `master_ingress ${z.master_ingress?.verifiedInsns}, slave_egress ${z.slave_egress?.verifiedInsns}`, vi <= 50_000);
  const adds = result.control.cliLinkAddMs ?? [];
  const first = stat(adds.filter((_, i) => i % 2 === 0))?.median ?? NaN;
  row('first `link add` of a port ≤ 400 ms (CLI wall time; loads and verifies the programs)', `${fmt(first)} ms (CLI start-up floor ${fmt(stat(result.control.cli_floor_ms ?? [])?.median)} ms)`, first <= 400);
  return rows.join('\n');
}

function targets(samples: Record<string, Samples>, scale: Record<string, number[]>, ctl: Record<string, number[]>): string {
  const m = (id: string, k: string): number => stat(samples[id]?.[k] ?? [])?.median ?? NaN;
  const rows: string[] = [
    "Targets (issue 5), from this run's medians. Packet-rate targets are judged on the receiving core's cost (rx core ns/pkt: its capacity is 1000/ns Mpps), because delivered pps is capped by core 0 (generator + m0's NAPI) for the fast contenders; the delivered-pps ratio is shown too.",
    '',
    '| target | measured | status |',
    '| --- | --- | --- |',
  ];
  const row = (t: string, meas: string, ok: boolean, miss = '', noise = 0, missPct = 0): void => {
    if (meas.includes('NaN') || meas.includes('–')) {
      rows.push(`| ${t} | not measured in this run | – |`);
      return;
    }
    // a small miss inside the samples' own spread is not a measured miss
    const status = ok ? 'met' : noise > 0 && missPct < noise ? `not resolved: ${miss} is inside the samples' spread (±${noise.toFixed(0)}%)` : `missed${miss ? ` (${miss})` : ''}`;
    rows.push(`| ${t} | ${meas} | ${status} |`);
  };
  const spread = (id: string, k: string): number => stat(samples[id]?.[k] ?? [])?.spreadPct ?? 0;
  const pct = (x: number): string => `${(x * 100).toFixed(0)}%`;
  const nsB = m('bpf-l2', 'w2s_ns');
  const cap = (id: string): number => m(id, 'w2s_ns') / nsB;
  const pps = (id: string): number => m('bpf-l2', 'w2s_mpps') / m(id, 'w2s_mpps');
  row('wire→slave packet rate ≥ 1.0× macvlan', `${fmt(cap('macvlan'))}× by rx-core cost (${fmt(nsB)} vs ${fmt(m('macvlan', 'w2s_ns'))} ns/pkt); delivered pps ${fmt(pps('macvlan'))}×`, cap('macvlan') >= 1, `by ${pct(1 - cap('macvlan'))}: +${fmt(nsB - m('macvlan', 'w2s_ns'))} ns/pkt`, Math.min(spread('bpf-l2', 'w2s_ns'), spread('macvlan', 'w2s_ns')) / 2, (1 - cap('macvlan')) * 100);
  row('wire→slave ≥ 90% of the skb ceiling (veth pair)', `${pct(cap('vethpair'))} by rx-core cost; delivered pps ${pct(pps('vethpair'))}`, cap('vethpair') >= 0.9, `by ${fmt((0.9 - cap('vethpair')) * 100)} points`);
  row('wire→slave ≥ 3× veth+bridge', `${fmt(cap('bridge'))}× by rx-core cost; delivered pps ${fmt(pps('bridge'))}×`, cap('bridge') >= 3, `by ${fmt(3 - cap('bridge'))}×`);
  for (const [k, t] of [['s2s_ns', 'slave→slave'], ['s2w_ns', 'slave→wire']] as const) {
    for (const id of ['bpf-l2', 'bpf-l3']) {
      const a = m(id, k);
      const mv = m('macvlan', k);
      row(`${t} CPU ns/pkt ≤ macvlan's (${id})`, `${fmt(a)} vs ${fmt(mv)} ns/pkt`, a <= mv, `+${fmt(a - mv)} ns, ${pct(a / mv - 1)}`);
    }
  }
  for (const k of ['tcp1_w2s', 'tcp4_w2s', 'tcp1_s2s', 'tcp4_s2s']) {
    const a = m('bpf-l2', k);
    const mv = m('macvlan', k);
    row(`TCP ${k.replace('tcp', '×').replace('_', ' ').replace('w2s', 'wire→slave').replace('s2s', 'slave→slave')} ≥ 1.0× macvlan`, `${fmt(a)} vs ${fmt(mv)} Gbit/s (${fmt(a / mv)}×)`, a >= mv, `by ${pct(1 - a / mv)}`, Math.min(spread('bpf-l2', k), spread('macvlan', k)) / 2, (1 - a / mv) * 100);
    if (k.endsWith('w2s')) {
      const ce = m('vethpair', k);
      row(`TCP ${k.replace('tcp', '×').replace('_w2s', '')} wire→slave ≥ 95% of the veth pair`, `${pct(a / ce)} (${fmt(a)} vs ${fmt(ce)})`, a / ce >= 0.95, `by ${fmt((0.95 - a / ce) * 100)} points`);
    }
  }
  const p = m('bpf-l2', 'rr_p99');
  const pm = m('macvlan', 'rr_p99');
  row('request/response p99 ≤ macvlan', `${fmt(p)} vs ${fmt(pm)} µs (p50 ${fmt(m('bpf-l2', 'rr_p50'))} vs ${fmt(m('macvlan', 'rr_p50'))})`, p <= pm, `+${fmt(p - pm)} µs`, Math.min(spread('bpf-l2', 'rr_p99'), spread('macvlan', 'rr_p99')) / 2, (p / pm - 1) * 100);
  const cnt = nsB / m('bpf-l2-nocnt', 'w2s_ns') - 1;
  row('counters+events ≤ 3% of the 64-byte rate (issue 4; rx-core ns/pkt on vs off)', `${(cnt * 100).toFixed(1)}% (${fmt(nsB)} vs ${fmt(m('bpf-l2-nocnt', 'w2s_ns'))} ns/pkt)`, cnt <= 0.03, `${(cnt * 100).toFixed(1)}%`, Math.min(spread('bpf-l2', 'w2s_ns'), spread('bpf-l2-nocnt', 'w2s_ns')) / 2, cnt * 100);
  const sizesK = Object.keys(scale).filter((k) => /^addrs_\d+_ns$/.test(k));
  const vals = sizesK.map((k) => stat(scale[k]!)!.median);
  const trK = Object.keys(scale).filter((k) => /^addrs_\d+_testrun_ns$/.test(k));
  const trv = trK.map((k) => stat(scale[k]!)!.median);
  if (vals.length > 1) {
    const dev = Math.max(...vals.map((v) => Math.abs(v / vals[0]! - 1)));
    const devT = Math.max(...trv.map((v) => Math.abs(v / trv[0]! - 1)));
    row(
      'packet rate flat ±5% from 10 to 1M addresses',
      `rx ns/pkt max deviation ${pct(dev)} (${sizesK.map((k, i) => `${k.split('_')[1]}: ${fmt(vals[i])}`).join(', ')}); master_ingress test-run ${pct(devT)} (${trv.map((v) => fmt(v)).join(' / ')} ns)`,
      dev <= 0.05,
      pct(dev),
      Math.min(...sizesK.map((k) => stat(scale[k]!)!.spreadPct)) / 2,
      dev * 100,
    );
  }
  const big = Object.keys(ctl).filter((k) => /^load_\d+_ms$/.test(k)).sort((a, b2) => Number(b2.split('_')[1]) - Number(a.split('_')[1]))[0];
  if (big) {
    const t = stat(ctl[big]!)!.median;
    row(`${big.split('_')[1]} addresses loaded ≤ 3 s (one bpf_map_update_batch)`, `${fmt(t)} ms`, t <= 3000, `${fmt(t - 3000)} ms over`);
  }
  const adds = ctl.cliLinkAddMs ?? [];
  const la = stat(adds.filter((_, i) => i % 2 === 1))?.median ?? NaN;
  const la1 = stat(adds.filter((_, i) => i % 2 === 0))?.median ?? NaN;
  const lbig = stat(Object.keys(ctl).filter((k) => /^link_add_upto_\d+_ms$/.test(k)).flatMap((k) => ctl[k]!))?.median ?? NaN;
  row(
    '`link add` ≤ 150 ms (CLI wall time, node start included)',
    `${fmt(la)} ms to add a slave to an existing port (${fmt(lbig)} ms while growing a port to many slaves); ${fmt(la1)} ms for the first slave, which loads and verifies both programs; CLI start-up floor ${fmt(stat(ctl.cli_floor_ms ?? [])?.median)} ms`,
    la <= 150,
    `+${fmt(la - 150)} ms`,
  );
  return rows.join('\n');
}

let cleaned = false;
function cleanup(): void {
  if (cleaned) return;
  cleaned = true;
  killAll();
  try {
    run('ip', ['-n', H, 'link', 'set', 'dev', 'm0', 'xdp', 'off']);
  } catch {
    /* gone */
  }
  cleanupAll();
}

for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(sig, () => {
    process.stderr.write(`\n[bench] ${sig}: cleaning up\n`);
    cleanup();
    process.exit(130);
  });
}
process.once('exit', cleanup);

main().then(
  (code) => {
    cleanup();
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`\n[bench] failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    cleanup();
    process.exitCode = 1;
  },
);
