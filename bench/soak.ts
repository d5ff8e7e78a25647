// SPDX-License-Identifier: GPL-2.0-only
/**
 * Load and churn soak (issue 6): N slaves with K addresses each, then R
 * address add/del per second for D seconds, with the real agent learning
 * them. Bounded: every option has a ceiling, everything runs in private
 * namespaces (ivbsoak<pid>-*), a private pin folder and state folder, all
 * removed at the end, also on failure or SIGINT/SIGTERM.
 *
 * Measures
 *  - the agent's RSS (VmRSS of its process, once a second): flat?
 *  - entry leaks: ivb_addrs / ivb_slaves entries of the port against what
 *    the slaves actually hold once the churn stopped and the agent settled;
 *  - learning latency, p50/p99/max. With `--generator rtnetlink` (the
 *    default) the churn is sent from this process, one request at a time,
 *    spread over each tick, and an address's latency runs from just before
 *    its RTM_NEWADDR is sent to its entry in ivb_addrs. With `--generator
 *    ip-batch` (issue 6's first soak) each tick is one `ip -batch` process and
 *    the latency runs from the start of that process (conservative: the
 *    process's own start-up and the rest of the batch count; its duration is
 *    reported beside it, with the latency measured from its end).
 * Writes bench/results/soak-<date>.json (or --out) and prints a summary.
 *
 *   node dist/bench/soak.js [--slaves 256] [--addrs 4] [--rate 1000] [--duration 60]
 *                           [--per-ns 16] [--generator rtnetlink|ip-batch] [--out FILE] [--quiet]
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { closeFd, mapKeys, mapLookup, mapLookupBatch, objGet } from '../native/libbpf.js';
import { IvbAddrOwnerLayout, IvbSlaveLayout, decodeIvbSlave } from '../maps/generated.js';
import { ADDR_KEY_SIZE, ADDR_MAP, addrKeyOf, decodeAddrKey } from '../controller/src/bpf/addr-key.js';
import { rtnlLinks, withRtnl } from '../controller/src/netlink/rtnl.js';
import { addrBytes } from '../controller/src/netlink/addr.js';
import { IvbError } from '../controller/src/errors.js';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLI = join(REPO, 'bin', 'ipvlan-bpf.js');

interface Options {
  slaves: number;
  addrs: number;
  rate: number;
  duration: number;
  perNs: number;
  out: string;
  quiet: boolean;
  generator: 'rtnetlink' | 'ip-batch';
}

function parseArgs(argv: string[]): Options {
  const o: Options = { slaves: 256, addrs: 4, rate: 1000, duration: 60, perNs: 16, out: '', quiet: false, generator: 'rtnetlink' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const v = argv[i + 1];
    const num = (lo: number, hi: number): number => {
      const n = Number(v);
      if (!Number.isFinite(n) || n < lo || n > hi) throw new Error(`${a} wants a number from ${lo} to ${hi}, not ${v}`);
      i++;
      return n;
    };
    switch (a) {
      case '--slaves':
        o.slaves = num(1, 1024);
        break;
      case '--addrs':
        o.addrs = num(1, 16);
        break;
      case '--rate':
        o.rate = num(10, 5000);
        break;
      case '--duration':
        o.duration = num(1, 600);
        break;
      case '--per-ns':
        o.perNs = num(1, 256);
        break;
      case '--out':
        o.out = v ?? '';
        i++;
        break;
      case '--quiet':
        o.quiet = true;
        break;
      case '--generator':
        if (v !== 'rtnetlink' && v !== 'ip-batch') throw new Error(`--generator wants rtnetlink or ip-batch, not ${v}`);
        o.generator = v;
        i++;
        break;
      default:
        throw new Error(`unknown option ${a}`);
    }
  }
  return o;
}

const id = `ivb-soak-${process.pid}`;
const env: NodeJS.ProcessEnv = { ...process.env, IPVLAN_BPF_STATE_DIR: `/run/${id}`, IPVLAN_BPF_PIN_SUBDIR: id };
delete env.IPVLAN_BPF_BPFFS;
const pinDir = join('/sys/fs/bpf', id);
const nsPrefix = `ivbsoak${process.pid}-`;
const namespaces: string[] = [];
let agent: ChildProcess | null = null;

function sh(cmd: string, args: string[], input?: string): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env, input, timeout: 60_000, maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} -> ${r.status}: ${(r.stderr ?? '') + (r.error ?? '')}`);
  return r.stdout;
}

function netns(name: string): string {
  const full = `${nsPrefix}${name}`;
  sh('ip', ['netns', 'add', full]);
  namespaces.push(full);
  sh('ip', ['-n', full, 'link', 'set', 'lo', 'up']);
  return full;
}

function cleanup(): void {
  if (agent && agent.pid) {
    try {
      process.kill(-agent.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  agent = null;
  for (const ns of namespaces.splice(0)) spawnSync('ip', ['netns', 'del', ns]);
  rmSync(pinDir, { recursive: true, force: true });
  rmSync(`/run/${id}`, { recursive: true, force: true });
}

function pct(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

function rssKiB(pid: number): number {
  try {
    const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+) kB/);
    return m ? Number(m[1]) : NaN;
  } catch {
    return NaN;
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function v4Key(portId: number, a: string): Buffer {
  const addr = Buffer.alloc(16);
  addr.set(a.split('.').map(Number));
  return addrKeyOf(portId, 4, addr).key;
}

export interface SoakResult {
  date: string;
  options: Omit<Options, 'out' | 'quiet'>;
  setupSeconds: number;
  churn: { ops: number; adds: number; dels: number; seconds: number; achievedRate: number };
  latencyMs: { samples: number; p50: number; p99: number; max: number; unlearnedAtEnd: number; worstBySecond: number[] };
  /** the generator's own share: how long each `ip -batch` took (process start to exit), and learning measured from its end */
  generator: Options['generator'];
  batchMs: { p50: number; p99: number; max: number };
  afterBatchMs: { p50: number; p99: number; max: number };
  rssKiB: { start: number; afterSetup: number; end: number; max: number; samples: Array<[number, number]> };
  leaks: { addrEntries: number; expectedAddrs: number; slaveEntries: number; expectedSlaves: number; strayAddrEntries: number; missingAddrEntries: number };
  agentLogLines: number;
  agentErrors: string[];
}

export async function soak(o: Options): Promise<SoakResult> {
  const log = (s: string): void => {
    if (!o.quiet) process.stdout.write(`soak: ${s}\n`);
  };
  const t0 = performance.now();
  const host = netns('host');
  sh('ip', ['-n', host, 'link', 'add', 'eth0m', 'address', '02:00:00:00:00:02', 'type', 'veth', 'peer', 'name', 'wp0']);
  sh('ip', ['-n', host, 'link', 'set', 'eth0m', 'up']);
  const groups: string[] = [];
  for (let g = 0; g * o.perNs < o.slaves; g++) groups.push(netns(`s${g}`));

  const agentLines: string[] = [];
  agent = spawn(process.execPath, [CLI, 'agent'], { env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  for (const s of [agent.stdout, agent.stderr]) s?.on('data', (d: Buffer) => agentLines.push(...d.toString().split('\n').filter((l) => l)));
  const agentPid = agent.pid!;
  for (let i = 0; i < 200 && !agentLines.some((l) => l.includes('agent: started')); i++) await sleep(50);
  const rssStart = rssKiB(agentPid);

  // slaves: created in the host namespace, moved into their group's namespace, up, K addresses
  const slaveAddrs: string[][] = [];
  for (let i = 0; i < o.slaves; i++) {
    const name = `sv${i}`;
    sh(process.execPath, [CLI, '-n', host, 'link', 'add', 'link', 'eth0m', 'name', name, 'type', 'ipvlan', 'mode', 'l3']);
    const ns = groups[Math.floor(i / o.perNs)]!;
    sh('ip', ['-n', host, 'link', 'set', 'dev', name, 'netns', ns]);
    const addrs: string[] = [];
    for (let k = 0; k < o.addrs; k++) {
      const n = i * o.addrs + k;
      addrs.push(`198.18.${1 + (n >> 8)}.${n & 255}`);
    }
    sh('ip', ['-n', ns, '-batch', '-'], [`link set dev ${name} up`, ...addrs.map((a) => `addr add ${a}/32 dev ${name}`)].join('\n') + '\n');
    slaveAddrs.push(addrs);
    if (!o.quiet && i % 32 === 31) log(`${i + 1} slaves`);
  }
  const portId = Number(JSON.parse(sh(process.execPath, [CLI, '-j', 'link', 'show']))[0].ipvlan_bpf.port_id);
  const addrsFd = objGet(join(pinDir, 'maps', ADDR_MAP[4]));
  const slavesFd = objGet(join(pinDir, 'maps', 'ivb_slaves'));
  try {
    // every base address learned
    const all = slaveAddrs.flat();
    const dl = Date.now() + 60_000;
    while (all.some((a) => !mapLookup(addrsFd, v4Key(portId, a), IvbAddrOwnerLayout.size))) {
      if (Date.now() > dl) throw new Error('base addresses not learned within 60 s');
      await sleep(100);
    }
    const setupSeconds = (performance.now() - t0) / 1000;
    const rssAfterSetup = rssKiB(agentPid);
    log(`${o.slaves} slaves x ${o.addrs} addresses learned in ${setupSeconds.toFixed(1)} s; agent RSS ${(rssAfterSetup / 1024).toFixed(1)} MiB`);

    // churn: every tick, a batch of adds and dels in one group's namespace (each address is 198.19.x.y, per slave)
    // in-process requests are spread over short ticks; a process per tick needs longer ones
    const tickMs = o.generator === 'rtnetlink' ? 10 : 50;
    const ifindex = new Map<string, number>(); // `${ns}/${dev}` -> ifindex (rtnetlink generator)
    if (o.generator === 'rtnetlink') for (const gns of groups) for (const l of rtnlLinks(gns)) ifindex.set(`${gns}/${l.ifname}`, l.ifindex);
    const perTick = Math.max(2, Math.round((o.rate * tickMs) / 1000));
    const present = new Map<string, { ns: string; dev: string }>();
    const pending = new Map<string, number>(); // address -> batch start
    const latencies: number[] = [];
    const afterBatch: number[] = [];
    const batchDurations: number[] = [];
    const batchEnd = new Map<string, number>();
    /** the slowest learning per second of churn: shows whether the tail is periodic (resyncs) */
    const worstBySecond: number[] = [];
    const rssSamples: Array<[number, number]> = [];
    let adds = 0;
    let dels = 0;
    let seq = 0;
    const churnStart = performance.now();
    let nextTick = churnStart;
    let nextRss = churnStart;
    let tick = 0;
    const poll = (): void => {
      const now = performance.now();
      for (const [a, t] of pending) {
        if (mapLookup(addrsFd, v4Key(portId, a), IvbAddrOwnerLayout.size)) {
          latencies.push(now - t);
          afterBatch.push(Math.max(0, now - (batchEnd.get(a) ?? t)));
          batchEnd.delete(a);
          const sec = Math.floor((t - churnStart) / 1000);
          worstBySecond[sec] = Math.max(worstBySecond[sec] ?? 0, now - t);
          pending.delete(a);
        }
      }
    };
    while (performance.now() - churnStart < o.duration * 1000) {
      const g = tick++ % groups.length;
      const ns = groups[g]!;
      const first = g * o.perNs;
      const count = Math.min(o.perNs, o.slaves - first);
      const lines: string[] = [];
      const added: string[] = [];
      // dels first: the oldest present addresses of this namespace, then as many adds
      const mine = [...present].filter(([, v]) => v.ns === ns);
      const nDel = Math.min(mine.length, Math.floor(perTick / 2));
      for (let i = 0; i < nDel; i++) {
        const [a, v] = mine[i]!;
        lines.push(`addr del ${a}/32 dev ${v.dev}`);
        present.delete(a);
        pending.delete(a);
        dels++;
      }
      for (let i = lines.length; i < perTick; i++) {
        const s = seq++;
        const a = `198.19.${(s >> 8) & 255}.${s & 255}`;
        if (present.has(a)) continue; // wrapped around onto a live one: skip
        const dev = `sv${first + (s % count)}`;
        lines.push(`addr add ${a}/32 dev ${dev}`);
        present.set(a, { ns, dev });
        added.push(a);
        adds++;
      }
      if (o.generator === 'rtnetlink') {
        withRtnl(ns, (w) => {
          for (const line of lines) {
            const [, op, cidr, , dev] = line.split(' ') as [string, string, string, string, string];
            const a = cidr.replace(/\/32$/, '');
            const idx = ifindex.get(`${ns}/${dev}`)!;
            const at = performance.now();
            try {
              if (op === 'add') {
                w.addAddr(idx, 4, addrBytes(4, a), 32, { what: line });
                pending.set(a, at);
              } else w.delAddr(idx, 4, addrBytes(4, a), 32, line);
            } catch (e) {
              // as ip -force: one refusal does not stop the others
              if (!(e instanceof IvbError)) throw e;
            }
            poll();
          }
        });
      } else {
        const start = performance.now();
        for (const a of added) pending.set(a, start);
        sh('ip', ['-n', ns, '-force', '-batch', '-'], lines.join('\n') + '\n');
        const end = performance.now();
        batchDurations.push(end - start);
        for (const a of added) batchEnd.set(a, end);
      }
      // poll the map until the next tick
      nextTick += tickMs;
      do {
        poll();
        await sleep(1);
      } while (performance.now() < nextTick);
      if (performance.now() >= nextRss) {
        rssSamples.push([Math.round((performance.now() - churnStart) / 1000), rssKiB(agentPid)]);
        nextRss += 1000;
      }
    }
    const churnSeconds = (performance.now() - churnStart) / 1000;
    // let the agent settle: everything still pending gets its chance, then a periodic resync passes
    const settleEnd = performance.now() + 3_000;
    while (pending.size && performance.now() < settleEnd) {
      poll();
      await sleep(5);
    }
    const unlearned = pending.size;
    await sleep(12_000);

    // leaks: entries of the port vs what the slaves hold (link-locals included: l3 slaves that are up get one)
    const held = new Set<string>();
    for (const ns of groups) {
      const dump = JSON.parse(sh('ip', ['-n', ns, '-j', 'addr', 'show'])) as Array<{ ifname: string; addr_info: Array<{ family: string; local: string }> }>;
      for (const l of dump) if (/^sv\d+$/.test(l.ifname)) for (const ai of l.addr_info) held.add(`${ai.family === 'inet' ? 4 : 6}:${ai.local}`);
    }
    // both families' tables (addr-key.ts)
    const addrs6Fd = objGet(join(pinDir, 'maps', ADDR_MAP[6]));
    const keys = ([4, 6] as const).flatMap((fam) =>
      mapKeys(fam === 4 ? addrsFd : addrs6Fd, ADDR_KEY_SIZE[fam])
        .map((k) => ({ fam, ...decodeAddrKey(fam, k) }))
        .filter((k) => k.portId === portId),
    );
    closeFd(addrs6Fd);
    const inMap = new Set<string>();
    for (const { fam, addr: b } of keys) {
      if (fam === 4) inMap.add(`4:${b[0]}.${b[1]}.${b[2]}.${b[3]}`);
      else {
        const g: string[] = [];
        for (let i = 0; i < 8; i++) g.push(b.readUInt16BE(i * 2).toString(16));
        inMap.add(`6:${g.join(':')}`);
      }
    }
    const norm6 = (s: string): string => {
      if (!s.startsWith('6:')) return s;
      const a = s.slice(2);
      const [h = '', t = ''] = a.split('::');
      const head = h ? h.split(':') : [];
      const tail = a.includes('::') && t ? t.split(':') : [];
      const all = [...head, ...Array<string>(8 - head.length - tail.length).fill('0'), ...tail].map((x) => parseInt(x, 16).toString(16));
      return `6:${all.join(':')}`;
    };
    const heldN = new Set([...held].map(norm6));
    const stray = [...inMap].filter((k) => !heldN.has(k)).length;
    const missing = [...heldN].filter((k) => !inMap.has(k)).length;
    // ivb_slaves is an array by slave index: the used entries of this port
    const slaveEntries = mapLookupBatch(slavesFd, 4, IvbSlaveLayout.size)
      .values.map((v) => decodeIvbSlave(v))
      .filter((v) => v.peerIfindex !== 0 && v.portId === portId).length;
    const rssEnd = rssKiB(agentPid);
    const sorted = [...latencies].sort((a, b) => a - b);
    const summary = (xs: number[]): { p50: number; p99: number; max: number } => {
      const s = [...xs].sort((a, b) => a - b);
      return { p50: Number(pct(s, 50).toFixed(1)), p99: Number(pct(s, 99).toFixed(1)), max: Number((s[s.length - 1] ?? NaN).toFixed(1)) };
    };
    const result: SoakResult = {
      date: new Date().toISOString(),
      options: { slaves: o.slaves, addrs: o.addrs, rate: o.rate, duration: o.duration, perNs: o.perNs, generator: o.generator },
      setupSeconds: Number(setupSeconds.toFixed(1)),
      churn: { ops: adds + dels, adds, dels, seconds: Number(churnSeconds.toFixed(1)), achievedRate: Math.round((adds + dels) / churnSeconds) },
      latencyMs: {
        samples: sorted.length,
        p50: Number(pct(sorted, 50).toFixed(1)),
        p99: Number(pct(sorted, 99).toFixed(1)),
        max: Number((sorted[sorted.length - 1] ?? NaN).toFixed(1)),
        unlearnedAtEnd: unlearned,
        worstBySecond: worstBySecond.map((x) => Math.round(x ?? 0)),
      },
      generator: o.generator,
      batchMs: summary(batchDurations),
      afterBatchMs: summary(afterBatch),
      rssKiB: { start: rssStart, afterSetup: rssAfterSetup, end: rssEnd, max: Math.max(rssAfterSetup, rssEnd, ...rssSamples.map((s) => s[1])), samples: rssSamples },
      leaks: { addrEntries: inMap.size, expectedAddrs: heldN.size, slaveEntries, expectedSlaves: o.slaves, strayAddrEntries: stray, missingAddrEntries: missing },
      agentLogLines: agentLines.length,
      agentErrors: agentLines.filter((l) => /fail|error|full|refused/i.test(l)).slice(0, 20),
    };
    return result;
  } finally {
    closeFd(addrsFd);
    closeFd(slavesFd);
  }
}

function summary(r: SoakResult): string {
  const mib = (k: number): string => `${(k / 1024).toFixed(1)} MiB`;
  return [
    `soak ${r.date}: ${r.options.slaves} slaves x ${r.options.addrs} addresses (setup ${r.setupSeconds} s), churn ${r.churn.ops} ops in ${r.churn.seconds} s (${r.churn.achievedRate}/s asked ${r.options.rate}/s)`,
    `learning latency (${r.generator === 'ip-batch' ? 'batch start' : 'RTM_NEWADDR sent'} -> ivb_addrs): p50 ${r.latencyMs.p50} ms, p99 ${r.latencyMs.p99} ms, max ${r.latencyMs.max} ms over ${r.latencyMs.samples} adds; ${r.latencyMs.unlearnedAtEnd} never learned`,
    ...(r.generator === 'ip-batch'
      ? [`  the generator's ip -batch itself (process start to exit): p50 ${r.batchMs.p50} ms, p99 ${r.batchMs.p99} ms; learning measured from its end: p50 ${r.afterBatchMs.p50} ms, p99 ${r.afterBatchMs.p99} ms, max ${r.afterBatchMs.max} ms`]
      : []),
    `slowest learning per second of churn (ms): ${r.latencyMs.worstBySecond.join(' ')}`,
    `agent RSS: start ${mib(r.rssKiB.start)}, after setup ${mib(r.rssKiB.afterSetup)}, end ${mib(r.rssKiB.end)}, max ${mib(r.rssKiB.max)}`,
    `entries: ivb_addrs ${r.leaks.addrEntries} (slaves hold ${r.leaks.expectedAddrs}; ${r.leaks.strayAddrEntries} stray, ${r.leaks.missingAddrEntries} missing), ivb_slaves ${r.leaks.slaveEntries} of ${r.leaks.expectedSlaves}`,
    ...(r.agentErrors.length ? [`agent lines worth a look:\n  ${r.agentErrors.join('\n  ')}`] : []),
  ].join('\n');
}

async function main(): Promise<number> {
  const o = parseArgs(process.argv.slice(2));
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      cleanup();
      process.exit(130);
    });
  }
  try {
    const r = await soak(o);
    const out = o.out || join(REPO, 'bench', 'results', `soak-${r.date.slice(0, 19).replace(/:/g, '-')}.json`);
    if (!existsSync(dirname(out))) mkdirSync(dirname(out), { recursive: true });
    writeFileSync(out, JSON.stringify(r, null, 2) + '\n');
    process.stdout.write(summary(r) + `\nwritten to ${out}\n`);
    return 0;
  } catch (e) {
    process.stderr.write(`soak: ${e instanceof Error ? e.message : String(e)}\n`);
    return 1;
  } finally {
    cleanup();
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().then((c) => {
    process.exitCode = c;
  });
}
