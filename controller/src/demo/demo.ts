// SPDX-License-Identifier: GPL-2.0-only
/**
 * `ipvlan-bpf demo`: the ipvlan HOWTO's example (§6) built in throw-away
 * namespaces with the same library calls the CLI makes, the learner running
 * in-process as the agent would, then real pings over every path in l2
 * bridge, l2 private and l3 bridge, each next to what the kernel's ipvlan
 * does. Everything it creates (namespaces, slaves, pins, state) is removed at
 * the end, on failure and on SIGINT/SIGTERM too. Exit 0 when every path
 * behaved as the kernel's would.
 *
 * The demo uses a private state folder and pin subtree, so it never sees or
 * touches a user's real ports.
 */
import { rmSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { errorLine, isIvbError } from '../errors.js';
import { Learner } from '../agent/learner.js';
import { linkAdd, linkDel, linkSet, linkShow } from '../link/manager.js';
import { slaveLinkLocal } from '../link/link-local.js';
import { ip } from '../netlink/exec.js';
import { bpffsRoot, stateDir } from '../paths.js';
import { icmpInEchos, ping, sleep, waitFor } from './probe.js';
import { out, passed, printLearned, printRow, printSection, printTitle, printVerdict, type Row } from './report.js';
import {
  ADDR,
  MASTER,
  MASTER_MAC,
  ROUTER_DEV,
  addrsOf,
  allNamespaces,
  buildTopology,
  configureSlaveL2,
  deleteNamespaces,
  linkFlags,
  renumberSlaveL3,
  routeL3ViaMaster,
  topologyNames,
  type SlavePlan,
  type SlaveSpec,
  type Topology,
} from './topology.js';
import { timeScale } from '../timescale.js';

/** how long the learner gets to pick up addresses before the pings run regardless */
const LEARN_TIMEOUT_MS = 5_000 * timeScale();

/** Points the library at a state folder and pin subtree of our own (paths.ts reads them lazily). */
function usePrivateState(pid: number): { stateDir: string; pinSubdir: string } {
  const dirs = { stateDir: `/run/ipvlan-bpf-demo-${pid}`, pinSubdir: `ipvlan-bpf-demo-${pid}` };
  process.env.IPVLAN_BPF_STATE_DIR = dirs.stateDir;
  process.env.IPVLAN_BPF_PIN_SUBDIR = dirs.pinSubdir;
  return dirs;
}

interface Check {
  path: string;
  target: string;
  expected: string;
  note?: string;
  probe: () => Promise<string>;
}

const REPLY = 'reply';
const NO_REPLY = 'no reply';

function pingCheck(path: string, from: string, target: string, expected: boolean, note?: string, dev?: string): Check {
  return {
    path,
    target,
    expected: expected ? REPLY : NO_REPLY,
    note,
    probe: async () => ((await ping(from, target, { dev })) ? REPLY : NO_REPLY),
  };
}

class DemoSession {
  private learner: Learner | null = null;
  private readonly learnerLog: string[] = [];
  private readonly rows: Row[] = [];
  private cleaned = false;

  constructor(
    private readonly t: Topology,
    private readonly pinSubdir: string,
  ) {}

  private get s0(): SlaveSpec {
    return this.t.slaves[0];
  }

  private get s1(): SlaveSpec {
    return this.t.slaves[1];
  }

  shortNs = (ns: string | null | undefined): string => {
    if (ns === undefined) return '?';
    if (ns === null) return 'init';
    return ns.startsWith(this.t.prefix) ? ns.slice(this.t.prefix.length) : ns;
  };

  async run(): Promise<number> {
    printTitle(process.pid);
    buildTopology(this.t);
    this.learner = new Learner((line) => this.learnerLog.push(line));
    this.learner.start();
    await this.l2Bridge();
    await this.l2Private();
    await this.l3Bridge();
    const leftovers = this.cleanup();
    printVerdict(this.rows);
    if (leftovers.length) process.stderr.write(`demo: left behind: ${leftovers.join(', ')}\n`);
    const ok = this.rows.every(passed) && leftovers.length === 0;
    if (!ok || process.env.IPVLAN_BPF_DEBUG) this.dumpLearnerLog();
    return ok ? 0 : 1;
  }

  /** The HOWTO's own commands: two l2 slaves on eth0, moved to ns0 and ns1, configured inside. */
  private async l2Bridge(): Promise<void> {
    for (const s of this.t.slaves) {
      linkAdd({ master: MASTER, name: s.dev, netns: this.t.host, mode: 'l2', typeArgs: true });
    }
    // the agent notices new ports on its 2 s poll; ask now so that its monitor listens before the moves
    this.learner?.scanPorts();
    await sleep(300);
    for (const s of this.t.slaves) ip(['link', 'set', 'dev', s.dev, 'netns', s.ns], this.t.host);
    for (const s of this.t.slaves) configureSlaveL2(s);
    const ll1 = this.linkLocalOf(this.s1);
    await this.waitLearned((s) => s.l2, true);
    printSection('l2 bridge: ipvlan-bpf link add link eth0m ipvl0 type ipvlan mode l2 (as the HOWTO)');
    await this.check([
      pingCheck('ns0 -> ns1', this.s0.ns, this.s1.l2.v4, true),
      pingCheck('ns0 -> ns1', this.s0.ns, this.s1.l2.v6, true),
      pingCheck('ns0 -> ns1', this.s0.ns, ll1, true, 'link-local from dev_id', this.s0.dev),
      pingCheck('ns0 -> router', this.s0.ns, ADDR.router4, true),
      pingCheck('ns0 -> router', this.s0.ns, ADDR.router6, true),
      pingCheck('router -> ns0', this.t.router, this.s0.l2.v4, true),
      pingCheck('router -> ns1', this.t.router, this.s1.l2.v6, true),
      pingCheck('ns0 -> remote', this.s0.ns, ADDR.remote4, true),
      pingCheck('ns0 -> master', this.s0.ns, ADDR.master4, false, 'by design: master/slave isolation'),
      this.broadcastCheck('ns0+ns1', 'one broadcast, both slaves'),
    ]);
    this.printLinkShow();
  }

  private async l2Private(): Promise<void> {
    linkSet({ name: this.s0.dev, netns: this.s0.ns, mode: 'l2', flag: 'private', typeArgs: true });
    printSection('l2 private: ipvlan-bpf link set dev ipvl0 type ipvlan mode l2 private (the whole port)');
    await this.check([
      pingCheck('ns0 -> ns1', this.s0.ns, this.s1.l2.v4, false, 'private: no slave-to-slave switching'),
      pingCheck('ns0 -> ns1', this.s0.ns, this.s1.l2.v6, false),
      pingCheck('ns0 -> router', this.s0.ns, ADDR.router4, true),
      pingCheck('router -> ns1', this.t.router, this.s1.l2.v4, true),
      pingCheck('ns0 -> remote', this.s0.ns, ADDR.remote4, true),
      this.broadcastCheck('ns0+ns1', 'private filters nothing from the wire'),
    ]);
  }

  /** l3: NOARP slaves in their own subnet, which the router reaches via the master's address. */
  private async l3Bridge(): Promise<void> {
    linkSet({ name: this.s0.dev, netns: this.s0.ns, mode: 'l3', typeArgs: true });
    for (const s of this.t.slaves) renumberSlaveL3(s);
    routeL3ViaMaster(this.t);
    const ll1 = this.linkLocalOf(this.s1);
    await this.waitLearned((s) => s.l3, false);
    printSection('l3 bridge: ... type ipvlan mode l3; slaves renumbered into 198.18.1.0/24, 2001:db8:1::/64');
    await this.check([
      this.noarpCheck(),
      pingCheck('ns0 -> ns1', this.s0.ns, this.s1.l3.v4, true),
      pingCheck('ns0 -> ns1', this.s0.ns, this.s1.l3.v6, true),
      pingCheck('ns0 -> ns1', this.s0.ns, ll1, true, undefined, this.s0.dev),
      pingCheck('ns0 -> router', this.s0.ns, ADDR.router4, true, 'routed in the host namespace'),
      pingCheck('ns0 -> router', this.s0.ns, ADDR.router6, true),
      pingCheck('router -> ns0', this.t.router, this.s0.l3.v4, true, 'route via the master'),
      pingCheck('router -> ns1', this.t.router, this.s1.l3.v6, true),
      pingCheck('ns0 -> remote', this.s0.ns, ADDR.remote4, true),
      pingCheck('ns0 -> master', this.s0.ns, ADDR.master4, true, "the master's answer comes back via the router"),
      this.broadcastCheck('none', 'l3 slaves get no broadcast'),
    ]);
    this.printLinkShow();
  }

  /** Runs each check in turn and prints its row at once, so a person sees progress. */
  private async check(checks: Check[]): Promise<void> {
    for (const c of checks) {
      const observed = await c.probe();
      const row: Row = { path: c.path, target: c.target, expected: c.expected, observed, note: c.note };
      this.rows.push(row);
      printRow(row);
    }
  }

  /**
   * The router pings 255.255.255.255 once; which slaves got it is read from
   * their ICMP counters (ping itself stops at the first reply). The master's
   * own stack ignores broadcast echoes (the default), the slaves answer them.
   */
  private broadcastCheck(expected: string, note: string): Check {
    return {
      path: 'router bcast',
      target: ADDR.broadcast4,
      expected,
      note,
      probe: async () => {
        const before = this.t.slaves.map((s) => icmpInEchos(s.ns));
        await ping(this.t.router, ADDR.broadcast4, { broadcast: true, dev: ROUTER_DEV });
        const reached = (): string[] =>
          this.t.slaves.filter((s, i) => icmpInEchos(s.ns) > (before[i] ?? 0)).map((s) => s.label);
        await waitFor(() => reached().length === this.t.slaves.length, 300);
        return reached().join('+') || 'none';
      },
    };
  }

  private noarpCheck(): Check {
    return {
      path: 'slave flags',
      target: 'ipvl0, ipvl1',
      expected: 'NOARP',
      note: 'l3 slaves resolve no neighbours',
      probe: () => {
        const all = this.t.slaves.every((s) => linkFlags(s.ns, s.dev).includes('NOARP'));
        return Promise.resolve(all ? 'NOARP' : 'ARP');
      },
    };
  }

  /** The kernel's link-local for a slave: EUI-64 of the shared MAC with its dev_id folded in. */
  private linkLocalOf(s: SlaveSpec): string {
    const view = linkShow(s.dev, s.ns)[0];
    return slaveLinkLocal(MASTER_MAC, view?.loc.record.devId ?? 0);
  }

  /** Waits until every slave has its PLAN addresses learned (and, once, its dev_id link-local in place). */
  private async waitLearned(plan: (s: SlaveSpec) => SlavePlan, withLinkLocal: boolean): Promise<void> {
    const want = new Map<string, string[]>();
    for (const s of this.t.slaves) {
      const ll = withLinkLocal ? [this.linkLocalOf(s)] : [];
      want.set(s.dev, [plan(s).v4, plan(s).v6, ...ll]);
    }
    const done = (): boolean =>
      this.t.slaves.every((s) => {
        const learned = linkShow(s.dev, s.ns)[0]?.addrs.map((a) => a.addr) ?? [];
        const onDev = addrsOf(s.ns, s.dev);
        return (want.get(s.dev) ?? []).every((a) => learned.includes(a) && onDev.includes(a));
      });
    if (!(await waitFor(done, LEARN_TIMEOUT_MS))) {
      process.stderr.write(`demo: the learner had not learned every address after ${LEARN_TIMEOUT_MS} ms\n`);
    }
  }

  private printLinkShow(): void {
    out('  ipvlan-bpf link show:');
    printLearned(linkShow(null, null), this.shortNs);
  }

  private dumpLearnerLog(): void {
    for (const l of this.learnerLog.slice(-20)) process.stderr.write(`demo: agent: ${l}\n`);
  }

  /**
   * Removes everything, in the order a user would: slaves with `link del`
   * (which also unpins the port), the agent, the namespaces, then our private
   * state and pins whatever is left of them. Idempotent; never throws.
   * Returns what could not be removed.
   */
  cleanup(): string[] {
    if (this.cleaned) return [];
    this.cleaned = true;
    this.learner?.stop();
    this.learner = null;
    for (const s of this.t.slaves) this.deleteSlave(s);
    deleteNamespaces(this.t);
    const pinDir = this.pinDir();
    for (const dir of [stateDir(), pinDir]) {
      if (dir) rmSync(dir, { recursive: true, force: true });
    }
    const left = allNamespaces(this.t).filter((ns) => existsSync(`/run/netns/${ns}`));
    for (const dir of [stateDir(), pinDir]) if (dir && existsSync(dir)) left.push(dir);
    return left;
  }

  private deleteSlave(s: SlaveSpec): void {
    for (const ns of [s.ns, this.t.host]) {
      try {
        linkDel(s.dev, ns);
        return;
      } catch (e) {
        // not there (never moved, or never created, or its namespace is gone): try the next place
        if (!isIvbError(e, 'IPVLAN_E_NO_DEVICE', 'IPVLAN_E_NETNS', 'IPVLAN_E_NOT_IPVLAN')) throw e;
      }
    }
  }

  private pinDir(): string | null {
    try {
      return join(bpffsRoot(), this.pinSubdir);
    } catch (e) {
      // no bpf filesystem: nothing was ever pinned
      if (isIvbError(e, 'IPVLAN_E_BPF')) return null;
      throw e;
    }
  }
}

/** Cleans up and exits on Ctrl-C or kill; returns a function that removes the handlers. */
function onInterrupt(session: DemoSession): () => void {
  const handler = (sig: NodeJS.Signals): void => {
    process.stderr.write(`\ndemo: ${sig}: cleaning up\n`);
    session.cleanup();
    process.exit(sig === 'SIGINT' ? 130 : 143);
  };
  process.once('SIGINT', handler);
  process.once('SIGTERM', handler);
  return () => {
    process.off('SIGINT', handler);
    process.off('SIGTERM', handler);
  };
}

export async function runDemo(): Promise<number> {
  // before any library call: paths.ts reads these when first needed
  const dirs = usePrivateState(process.pid);
  const session = new DemoSession(topologyNames(process.pid), dirs.pinSubdir);
  const removeHandlers = onInterrupt(session);
  try {
    return await session.run();
  } catch (e) {
    process.stderr.write(`demo: ${errorLine(e)}\n`);
    return 1;
  } finally {
    session.cleanup();
    removeHandlers();
  }
}
