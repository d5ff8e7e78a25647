// SPDX-License-Identifier: GPL-2.0-only
/**
 * `npm run bench:control [-- --rounds N] [-- --addrs N]`: the control plane's
 * targets (issue 13), measured in one run so that the ratios are same-run:
 *  - `ipvlan-bpf link add` on a port that exists, `version`, and a CNI ADD
 *    on a port that exists (the plugin run by nsenter in the master's
 *    namespace, as a runtime there would; IPAM by Debian's host-local),
 *    against the bare `node -e 0` start-up of the same rounds (interleaved:
 *    a busy machine slows them all alike); `version --probe` beside them
 *    (the first `version` of a boot probes, the others reuse its answer);
 *  - the agent with N addresses (1M by default) in ivb_addrs: start to
 *    "started" (first resync included) and resident memory;
 *  - one link dump and one address dump of a namespace through rtnetlink
 *    from the process (netlink/rtnl.ts) against `ip -j` (what it replaced).
 * Own namespaces (ivbcp-*), own state and pins; everything removed after.
 * Results: bench/results/control-plane-STAMP.{json,md}.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { closeFd, mapDeleteBatch, mapUpdateBatch, objGet, BPF_ANY } from '../native/libbpf.js';
import { encodeIvbAddrOwner, IvbAddrOwnerLayout } from '../maps/generated.js';
import { ADDR_KEY_SIZE, addrKeyOf } from '../controller/src/bpf/addr-key.js';
import { rtnlAddrs, rtnlLinks } from '../controller/src/netlink/rtnl.js';
import { must, run } from './lib/sh.js';

const argv = process.argv.slice(2);
const arg = (k: string): string | undefined => {
  const i = argv.indexOf(k);
  return i >= 0 ? argv[i + 1] : undefined;
};
const ROUNDS = Number(arg('--rounds') ?? 10);
const ADDRS = Number(arg('--addrs') ?? 1_000_000);
const H = 'ivbcp-h';
const W = 'ivbcp-w';
const STATE = '/run/ivbcp-state';
const PINS = 'ivbcp-pins';
const PIN_DIR = `/sys/fs/bpf/${PINS}`;
const CLI = join(process.cwd(), 'bin', 'ipvlan-bpf.js');
const CNI = join(process.cwd(), 'bin', 'ipvlan-bpf-cni.js');
/** the container of the CNI rounds; its interface is added and deleted each round */
const C = 'ivbcp-c';
const CNI_PATH = '/usr/lib/cni';
const OUT = arg('--out') ?? join(process.cwd(), 'bench', 'results');
/** a port no slave uses: the agent walks its entries with everything else */
const FAKE_PORT = 1023;

const env = (): NodeJS.ProcessEnv => ({
  ...process.env,
  IPVLAN_BPF_STATE_DIR: STATE,
  IPVLAN_BPF_PIN_SUBDIR: PINS,
  IPVLAN_BPF_API: 'off',
  IPVLAN_BPF_MAX_ADDRS: String(Math.max(ADDRS + 4096, 65536)),
});

function cleanup(): void {
  for (const ns of [H, W, C]) if (existsSync(`/run/netns/${ns}`)) run('ip', ['netns', 'del', ns]);
  rmSync(PIN_DIR, { recursive: true, force: true });
  rmSync(STATE, { recursive: true, force: true });
}

function cli(args: string[], e: NodeJS.ProcessEnv = env()): number {
  return must(process.execPath, [CLI, ...args], { env: e, timeoutMs: 120_000 }).ms;
}

const cniConfig = JSON.stringify({
  cniVersion: '1.0.0',
  name: 'ivbcp',
  type: 'ipvlan-bpf-cni',
  master: 'm0',
  mode: 'l2',
  ipam: {
    type: 'host-local',
    dataDir: `${STATE}/ipam`,
    ranges: [[{ subnet: '198.18.77.0/24', rangeStart: '198.18.77.100', rangeEnd: '198.18.77.199' }]],
    routes: [{ dst: '0.0.0.0/0' }],
  },
});

/** The CNI plugin's COMMAND for the container C, run in the master's namespace; returns wall ms. */
function cni(command: 'ADD' | 'DEL'): number {
  const e = { ...env(), CNI_COMMAND: command, CNI_CONTAINERID: 'ivbcp-bench', CNI_NETNS: `/run/netns/${C}`, CNI_IFNAME: 'eth0', CNI_PATH };
  return must('nsenter', [`--net=/run/netns/${H}`, '--', process.execPath, CNI], { env: e, input: cniConfig, timeoutMs: 120_000 }).ms;
}

/**
 * The environment without NODE_EXTRA_CA_CERTS: where it is set (this
 * machine sets it), node reads and parses the whole CA bundle before any
 * script runs, ~40 ms that the floor and every command pay alike.
 */
function withoutExtraCerts(e: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const out = { ...e };
  delete out.NODE_EXTRA_CA_CERTS;
  return out;
}

interface Stat {
  median: number;
  min: number;
  max: number;
  n: number;
}

function stat(xs: number[]): Stat {
  const s = [...xs].sort((a, b) => a - b);
  return { median: s[Math.floor(s.length / 2)] ?? NaN, min: s[0] ?? NaN, max: s[s.length - 1] ?? NaN, n: s.length };
}

function fakeAddrs(n: number): { keys: Buffer; values: Buffer } {
  // IPv6 keys of ivb_addrs6 (issue 12 split the table by family)
  const ks = ADDR_KEY_SIZE[6];
  const vs = IvbAddrOwnerLayout.size;
  const keys = Buffer.alloc(ks * n);
  const values = Buffer.alloc(vs * n);
  const addr = Buffer.alloc(16);
  addr.writeUInt32BE(0x20010db8, 0);
  addr.writeUInt16BE(0xfffe, 4);
  const owner = encodeIvbAddrOwner({ peerIfindex: 999_999, prefixlen: 128, slave: 0 });
  for (let i = 0; i < n; i++) {
    addr.writeUInt32BE(i, 12);
    addrKeyOf(FAKE_PORT, 6, addr).key.copy(keys, i * ks);
    owner.copy(values, i * vs);
  }
  return { keys, values };
}

async function agentStart(): Promise<{ startMs: number; sweptMs: number | null; rssMiB: number; hwmMiB: number }> {
  const t0 = performance.now();
  const a = spawn(process.execPath, [CLI, 'agent'], { env: env(), detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    let out = '';
    const startMs = await new Promise<number>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`agent did not start in 60 s: ${out}`)), 60_000);
      a.stdout.on('data', (b: Buffer) => {
        out += b.toString();
        if (/agent: started/.test(out)) {
          clearTimeout(t);
          resolve(performance.now() - t0);
        }
      });
    });
    await new Promise((r) => setTimeout(r, 500));
    const st = readFileSync(`/proc/${a.pid}/status`, 'utf8');
    const mib = (k: string): number => Number(new RegExp(`${k}:\\s*(\\d+)`).exec(st)?.[1] ?? NaN) / 1024;
    // the first resync's walk of the whole table runs after "started", between events (learner.ts sweepTable)
    const sweptMs = await new Promise<number | null>((resolve) => {
      const t = setTimeout(() => resolve(null), 10_000);
      const check = (): void => {
        if (/address table swept/.test(out)) {
          clearTimeout(t);
          resolve(performance.now() - t0);
        }
      };
      a.stdout.on('data', check);
      check();
    });
    return { startMs, sweptMs, rssMiB: mib('VmRSS'), hwmMiB: mib('VmHWM') };
  } finally {
    const exited = new Promise((r) => a.once('exit', r));
    process.kill(a.pid!, 'SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
    try {
      process.kill(-a.pid!, 'SIGKILL');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw e;
    }
  }
}

async function main(): Promise<number> {
  cleanup();
  const started = new Date();
  const load = (): string => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  const loadBefore = load();
  try {
    must('ip', ['netns', 'add', H]);
    must('ip', ['netns', 'add', W]);
    must('ip', ['-n', H, 'link', 'add', 'm0', 'type', 'veth', 'peer', 'name', 'wire0', 'netns', W]);
    must('ip', ['-n', H, 'link', 'set', 'm0', 'up']);
    // the port exists: every measured add is an add on an existing port
    cli(['-n', H, 'link', 'add', 'link', 'm0', 'name', 'base', 'type', 'ipvlan', 'mode', 'l2']);
    const nodeMs: number[] = [];
    const versionMs: number[] = [];
    const addMs: number[] = [];
    const delMs: number[] = [];
    const nodeBareMs: number[] = [];
    const addBareMs: number[] = [];
    const probeMs: number[] = [];
    const cniAddMs: number[] = [];
    const cniDelMs: number[] = [];
    must('ip', ['netns', 'add', C]);
    for (let i = 0; i < ROUNDS; i++) {
      nodeMs.push(must(process.execPath, ['-e', '0']).ms);
      versionMs.push(cli(['version']));
      probeMs.push(cli(['version', '--probe']));
      cniAddMs.push(cni('ADD'));
      cniDelMs.push(cni('DEL'));
      addMs.push(cli(['-n', H, 'link', 'add', 'link', 'm0', 'name', `s${i}`, 'type', 'ipvlan', 'mode', 'l2']));
      delMs.push(cli(['-n', H, 'link', 'del', `s${i}`]));
      nodeBareMs.push(must(process.execPath, ['-e', '0'], { env: withoutExtraCerts(process.env) }).ms);
      addBareMs.push(cli(['-n', H, 'link', 'add', 'link', 'm0', 'name', `s${i}`, 'type', 'ipvlan', 'mode', 'l2'], withoutExtraCerts(env())));
      cli(['-n', H, 'link', 'del', `s${i}`]);
    }
    // dumps: in-process rtnetlink against ip -j, on the master's namespace
    const rtnlLinkMs: number[] = [];
    const ipLinkMs: number[] = [];
    const rtnlAddrMs: number[] = [];
    const ipAddrMs: number[] = [];
    for (let i = 0; i < 50; i++) {
      let t = performance.now();
      rtnlLinks(H);
      rtnlLinkMs.push(performance.now() - t);
      ipLinkMs.push(must('ip', ['-n', H, '-j', '-d', 'link', 'show']).ms);
      t = performance.now();
      rtnlAddrs(H);
      rtnlAddrMs.push(performance.now() - t);
      ipAddrMs.push(must('ip', ['-n', H, '-j', 'addr', 'show']).ms);
    }
    // the agent with ADDRS addresses in the table
    const fd = objGet(join(PIN_DIR, 'maps', 'ivb_addrs6'));
    const { keys, values } = fakeAddrs(ADDRS);
    mapUpdateBatch(fd, keys, values, ADDRS, BPF_ANY);
    const agent: Array<{ startMs: number; sweptMs: number | null; rssMiB: number; hwmMiB: number }> = [];
    try {
      for (let i = 0; i < 3; i++) agent.push(await agentStart());
    } finally {
      mapDeleteBatch(fd, keys, ADDRS);
      closeFd(fd);
    }
    cli(['-n', H, 'link', 'del', 'base']);
    const node = stat(nodeMs);
    const result = {
      command: `npm run bench:control -- --rounds ${ROUNDS} --addrs ${ADDRS}`,
      started: started.toISOString(),
      load: { before: loadBefore, after: load() },
      nodeStartMs: node,
      versionMs: stat(versionMs),
      versionProbeMs: stat(probeMs),
      cniAddExistingPortMs: stat(cniAddMs),
      cniDelMs: stat(cniDelMs),
      linkAddExistingPortMs: stat(addMs),
      linkDelMs: stat(delMs),
      withoutExtraCaCerts: { nodeStartMs: stat(nodeBareMs), linkAddExistingPortMs: stat(addBareMs) },
      ratios: {
        linkAddOverNode: stat(addMs).median / node.median,
        versionOverNode: stat(versionMs).median / node.median,
        cniAddOverNode: stat(cniAddMs).median / node.median,
        linkAddOverNodeWithoutExtraCaCerts: stat(addBareMs).median / stat(nodeBareMs).median,
      },
      dumps: { rtnlLinkMs: stat(rtnlLinkMs), ipLinkMs: stat(ipLinkMs), rtnlAddrMs: stat(rtnlAddrMs), ipAddrMs: stat(ipAddrMs) },
      agent: {
        addrs: ADDRS,
        startMs: stat(agent.map((a) => a.startMs)),
        sweptMs: stat(agent.flatMap((a) => (a.sweptMs === null ? [] : [a.sweptMs]))),
        rssMiB: stat(agent.map((a) => a.rssMiB)), hwmMiB: stat(agent.map((a) => a.hwmMiB)) },
    };
    mkdirSync(OUT, { recursive: true });
    const stamp = started.toISOString().slice(0, 19).replace(/:/g, '-');
    writeFileSync(join(OUT, `control-plane-${stamp}.json`), JSON.stringify(result, null, 2) + '\n');
    const f = (s: Stat): string => `${s.median.toFixed(s.median < 10 ? 2 : 0)} (${s.min.toFixed(s.min < 10 ? 2 : 0)}–${s.max.toFixed(s.max < 10 ? 2 : 0)}, n=${s.n})`;
    const md = [
      `# Control plane — ${result.command}`,
      '',
      `${result.started}, load average before ${result.load.before}, after ${result.load.after} (other sessions share the 2 cores).`,
      '',
      '| measure | median ms (min–max, n) | target |',
      '| --- | --- | --- |',
      `| \`node -e 0\` | ${f(result.nodeStartMs)} | |`,
      `| \`ipvlan-bpf version\` | ${f(result.versionMs)} | ≤ 1.5× node: ${result.ratios.versionOverNode.toFixed(2)}× |`,
      `| \`ipvlan-bpf link add\`, port exists | ${f(result.linkAddExistingPortMs)} | ≤ 2× node: ${result.ratios.linkAddOverNode.toFixed(2)}× |`,
      `| \`ipvlan-bpf link del\` | ${f(result.linkDelMs)} | |`,
      `| \`ipvlan-bpf version --probe\` (what the first \`version\` of a boot costs) | ${f(result.versionProbeMs)} | |`,
      `| CNI ADD, port exists (nsenter + plugin + host-local) | ${f(result.cniAddExistingPortMs)} | ≤ 2.5× node: ${result.ratios.cniAddOverNode.toFixed(2)}× |`,
      `| CNI DEL | ${f(result.cniDelMs)} | |`,
      `| \`node -e 0\`, NODE_EXTRA_CA_CERTS unset | ${f(result.withoutExtraCaCerts.nodeStartMs)} | |`,
      `| \`ipvlan-bpf link add\`, port exists, NODE_EXTRA_CA_CERTS unset | ${f(result.withoutExtraCaCerts.linkAddExistingPortMs)} | ${result.ratios.linkAddOverNodeWithoutExtraCaCerts.toFixed(2)}× its floor |`,
      `| link dump, rtnetlink in process | ${f(result.dumps.rtnlLinkMs)} | |`,
      `| link dump, \`ip -j -d link show\` | ${f(result.dumps.ipLinkMs)} | |`,
      `| address dump, rtnetlink in process | ${f(result.dumps.rtnlAddrMs)} | |`,
      `| address dump, \`ip -j addr show\` | ${f(result.dumps.ipAddrMs)} | |`,
      `| agent start with ${ADDRS} addresses (to "started": listening, every slave's addresses learned) | ${f(result.agent.startMs)} | ≤ 1000 ms |`,
      `| agent start to the end of its first walk of the table (stale entries removed; runs between events) | ${f(result.agent.sweptMs)} | |`,
      `| agent VmRSS MiB, 0.5 s after start | ${f(result.agent.rssMiB)} | ≤ 150 MiB |`,
      `| agent VmHWM MiB | ${f(result.agent.hwmMiB)} | |`,
      '',
    ].join('\n');
    writeFileSync(join(OUT, `control-plane-${stamp}.md`), md);
    process.stdout.write(md);
    return 0;
  } finally {
    cleanup();
  }
}

main().then(
  (c) => process.exit(c),
  (e: unknown) => {
    process.stderr.write(`bench:control: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    cleanup();
    process.exit(1);
  },
);
