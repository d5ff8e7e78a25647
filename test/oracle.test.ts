// SPDX-License-Identifier: GPL-2.0-only
/**
 * The kernel driver's own outcomes, cell by cell: runs the oracle's scenario
 * script (../shared/oracle, measured on a kernel that has ipvlan) against
 * ipvlan-bpf on this kernel, and checks every l2 and l3 cell (and the
 * port-wide checks) against the kernel's recorded verdict.
 *
 * Three cell kinds need the netlink guard (bpf/guard.bpf.c, a BPF LSM
 * program): refusing a duplicate address at `ip addr add` time, refusing a
 * slave MAC change and refusing to enslave a master that has slaves. Where the kernel refuses LSM programs (lockdown,
 * sandboxes) those cells are reported as skipped, with the reason; where
 * the kernel lists `bpf` among its active LSMs (the 6.12 VM of
 * `npm run test:vm`), the guard must load and those cells are checked.
 *
 * ORACLE_SKIP (the oracle's scenario groups: info unicast mcast arp nd ct cfg
 * global) runs a part only, e.g. "info unicast mcast arp nd ct" for the cfg
 * and global groups; the cells of skipped groups are left out.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { copyFileSync, cpSync, existsSync, mkdtempSync, readFileSync, rmSync, chmodSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { tmpdir } from 'node:os';
import { spawnSync } from 'node:child_process';

const REPO = resolve(import.meta.dirname, '..');
const ORACLE = resolve(REPO, '..', 'shared', 'oracle');
const MODES = 'l2 l3';
/**
 * The kernel's records to check against: the oracle's own (Debian 6.1) unless
 * IVB_ORACLE_RECORDS names others, e.g. test/oracle/kernel-ipvlan-6.12.json.
 */
const KERNEL_RECORDS = process.env.IVB_ORACLE_RECORDS
  ? resolve(REPO, process.env.IVB_ORACLE_RECORDS)
  : join(ORACLE, 'results', 'kernel-ipvlan.json');
/** the scenario run's time limit: about 2 min here, 6–10 min for cfg + global under TCG */
const RUN_LIMIT_S = Number(process.env.IVB_ORACLE_LIMIT_S ?? 540);

interface OracleRecord {
  mode: string;
  flag: string;
  wire: string;
  family: string;
  scenario: string;
  src: string;
  dst: string;
  expected: string;
  per_receiver?: boolean;
  /** what the harness saw (counters, ping summary, set-up errors): printed for a cell that differs */
  detail?: unknown;
}

const GUARD_SCENARIOS = new Set(['dup_addr_other_slave', 'mac_change_slave', 'global_enslave_master_to_bridge']);

const CFG_SCENARIOS = new Set([
  'dup_addr_other_slave',
  'readd_same_addr_same_slave',
  'master_addr_on_slave',
  'slave_addr_on_master',
  'mac_change_slave',
  'slave_mtu_above_master',
  'mac_change_master',
]);

/** The oracle's scenario group of a record (scenarios.sh, ORACLE_SKIP). */
function groupOf(r: OracleRecord): string {
  if (r.scenario.startsWith('global_') || r.mode === '-') return 'global';
  if (CFG_SCENARIOS.has(r.scenario)) return 'cfg';
  if (r.scenario === 'slave_info') return 'info';
  if (r.scenario.startsWith('arp_')) return 'arp';
  if (r.scenario.startsWith('nd_')) return 'nd';
  if (r.scenario.startsWith('conntrack_')) return 'ct';
  if (r.scenario.startsWith('bcast_') || r.scenario.startsWith('mcast_')) return 'mcast';
  return 'unicast';
}

const SKIPPED_GROUPS = new Set((process.env.ORACLE_SKIP ?? '').split(/[\s,]+/).filter(Boolean));

/** Whether this kernel runs BPF LSM programs: then the guard has no excuse. */
function kernelHasBpfLsm(): boolean {
  try {
    return readFileSync('/sys/kernel/security/lsm', 'utf8').split(',').includes('bpf');
  } catch {
    return false;
  }
}

function cellKey(r: OracleRecord): string {
  return [r.mode, r.flag, r.wire, r.family, r.scenario, r.src, r.dst, r.per_receiver ? 'pr' : ''].join('|');
}

function kernelCells(): OracleRecord[] {
  const path = KERNEL_RECORDS;
  if (!existsSync(path)) return [];
  const all = JSON.parse(readFileSync(path, 'utf8')) as OracleRecord[];
  const modes = MODES.split(' ');
  return all.filter((r) => {
    if (r.expected === 'info') return false;
    if (SKIPPED_GROUPS.has(groupOf(r))) return false;
    if (r.scenario.startsWith('global_') || r.mode === '-') return true;
    return modes.includes(r.mode);
  });
}

function makeWritable(dir: string): void {
  for (const e of readdirSync(dir)) {
    const p = join(dir, e);
    chmodSync(p, statSync(p).isDirectory() ? 0o755 : 0o644);
    if (statSync(p).isDirectory()) makeWritable(p);
  }
  chmodSync(dir, 0o755);
}

const cells = kernelCells();
const got = new Map<string, string>();
const gotDetail = new Map<string, unknown>();
let work = '';
let guardActive = false;
let runLog = '';
/** the agent's lines of the run that report trouble (timestamped): they go with a cell that differs */
let agentLogTail = '';
/** the CLI commands of the run that failed (timestamped), likewise */
let cliFailures = '';
let cliFailureLines = '';

describe.skipIf(cells.length === 0)('kernel oracle: l2 and l3 cells', () => {
  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'ivb-oracle-'));
    const copy = join(work, 'oracle');
    cpSync(ORACLE, copy, { recursive: true });
    makeWritable(copy);
    // compare.py (BASE.compare.txt) reads the copy's kernel records
    if (KERNEL_RECORDS !== join(ORACLE, 'results', 'kernel-ipvlan.json')) {
      copyFileSync(KERNEL_RECORDS, join(copy, 'results', 'kernel-ipvlan.json'));
    }
    // the CLI through a wrapper that notes every command that failed, with
    // the time and its error: the oracle keeps only the last status of a
    // cell's set-up, and a cell that differs goes out with these lines
    cliFailures = join(work, 'cli-failures.log');
    const cli = join(work, 'ivb-noting-failures.sh');
    const node = `node ${join(REPO, 'bin', 'ipvlan-bpf.js')}`;
    writeFileSync(
      cli,
      [
        '#!/bin/bash',
        // run-host.sh stops the agent by the PID it started: the agent must be that process
        `case " $* " in *" agent "*) exec ${node} "$@" ;; esac`,
        'err=$(mktemp)',
        `${node} "$@" 2>"$err"; rc=$?`,
        `[ $rc = 0 ] || printf '%s exit %s: ipvlan-bpf %s: %s\n' "$(date +%T.%N)" "$rc" "$*" "$(tr '\n' ' ' < "$err")" >> ${cliFailures}`,
        'cat "$err" >&2; rm -f "$err"; exit $rc',
        '',
      ].join('\n'),
      { mode: 0o755 },
    );
    const env = {
      ...process.env,
      IPVLAN_BPF: cli,
      ORACLE_MODES: MODES,
      // scenarios.sh stops first, so the combinations that finished are still written
      ORACLE_TIMEOUT: String(Math.max(60, RUN_LIMIT_S - 30)),
      ORACLE_COMPARE: '1',
      IPVLAN_BPF_STATE_DIR: join(work, 'state'),
      IPVLAN_BPF_PIN_SUBDIR: `ivb-oracle-${process.pid}`,
      // the kernel validates no source address: compare like with like
      IPVLAN_BPF_SOURCE_VALIDATION: '0',
    };
    const r = spawnSync('bash', [join(copy, 'run-host.sh'), 'ipvlan-bpf'], { env, encoding: 'utf8', timeout: RUN_LIMIT_S * 1000 });
    runLog = `${r.stderr}\n${r.stdout}`;
    const out = join(copy, 'results', 'host-ipvlan-bpf.json');
    if (existsSync(out)) {
      for (const rec of JSON.parse(readFileSync(out, 'utf8')) as OracleRecord[]) {
        got.set(cellKey(rec), rec.expected);
        gotDetail.set(cellKey(rec), rec.detail);
      }
    }
    const agentLog = join(copy, 'results', 'host-ipvlan-bpf.agent.log');
    const agentText = existsSync(agentLog) ? readFileSync(agentLog, 'utf8') : '';
    guardActive = !agentText.includes('netlink guard unavailable');
    agentLogTail = agentText
      .split('\n')
      .filter((l) => (/fail|lost|refused|gone|error/i.test(l) || /\bE[A-Z]{3,}\b/.test(l)) && !/refused on ipvl1 .*already assigned/.test(l))
      .slice(-40)
      .join('\n');
    cliFailureLines = existsSync(cliFailures) ? readFileSync(cliFailures, 'utf8').trim().split('\n').slice(-40).join('\n') : '(none)';
    const compare = join(copy, 'results', 'host-ipvlan-bpf.compare.txt');
    if (existsSync(compare)) {
      const last = readFileSync(compare, 'utf8').trim().split('\n').pop();
      console.log(`oracle (${MODES}): ${last}`);
    }
  }, (RUN_LIMIT_S + 60) * 1000);

  afterAll(() => {
    // in the VM (scripts/vm), the run's logs go out with the results
    if (process.env.IVB_VM_OUT && work && existsSync(join(work, 'oracle', 'results'))) {
      cpSync(join(work, 'oracle', 'results'), join(process.env.IVB_VM_OUT, 'oracle-results'), { recursive: true });
    }
    rmSync(`/sys/fs/bpf/ivb-oracle-${process.pid}`, { recursive: true, force: true });
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('the harness ran every scenario', () => {
    expect(got.size, runLog.slice(-2000)).toBeGreaterThan(0);
  });

  it("the run's agent stopped with it (run-host.sh stops it by the PID it started)", () => {
    const mine = `IPVLAN_BPF_STATE_DIR=${join(work, 'state')}`;
    const left: number[] = [];
    for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
      try {
        const environ = readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0');
        if (environ.includes(mine) && readFileSync(`/proc/${pid}/cmdline`, 'latin1').split('\0').includes('agent')) left.push(Number(pid));
      } catch {
        // gone meanwhile
      }
    }
    for (const pid of left) process.kill(pid, 'SIGTERM');
    expect(left).toEqual([]);
  });

  for (const cell of cells) {
    const name = `${cell.mode}/${cell.flag}/${cell.wire} ${cell.family} ${cell.scenario} ${cell.src}->${cell.dst}`;
    it(name, (ctx) => {
      if (GUARD_SCENARIOS.has(cell.scenario) && !guardActive) {
        if (kernelHasBpfLsm()) throw new Error('this kernel runs BPF LSM programs, but the netlink guard did not load (see the agent log)');
        ctx.skip('needs the netlink guard (BPF LSM), which this kernel refuses to load');
      }
      const seen = got.get(cellKey(cell)) ?? 'missing';
      // a cell that differs says what ipvlan-bpf's run saw (a flaky one can be read from CI's log alone)
      const why = seen === cell.expected ? undefined : `${JSON.stringify(gotDetail.get(cellKey(cell)) ?? null).slice(0, 1500)}\nthe agent's trouble lines of the run (last 40):\n${agentLogTail}\nthe CLI commands of the run that failed (last 40):\n${cliFailureLines}`;
      expect(seen, why).toBe(cell.expected);
    });
  }
});
