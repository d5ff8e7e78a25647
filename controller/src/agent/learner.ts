// SPDX-License-Identifier: GPL-2.0-only
/**
 * Address learning: the kernel driver's inetaddr/inet6addr notifiers, from
 * user space. For each port the agent listens to rtnetlink in the master's
 * namespace with NETLINK_LISTEN_ALL_NSID (netlink/listener.ts), which also
 * reports the namespaces the slaves were moved to (they get an nsid there
 * when a veth end moves).
 * Address events are applied incrementally; link events (up/down, moves,
 * MTU) and anything unknown trigger a resync of the port, which recomputes
 * the whole table from what exists and applies the difference. First come
 * owns an address; a later claimant gets none of its traffic and is logged.
 */
import { RtnlListener, type ListenerReport, type RtnlEvent } from '../netlink/listener.js';
import { watch, type FSWatcher } from 'node:fs';
import { join } from 'node:path';
import { ensureDir, stateDir } from '../paths.js';
import { nsidNames, withRtnl } from '../netlink/rtnl.js';
import { listAddrs, type IpAddrLink, type IpLink } from '../netlink/links.js';
import { NETNS_RUN_DIR, initNetnsInode, netnsExists, netnsInodeOfPath, netnsPath } from '../netlink/netns.js';
import { listPorts, readPort, withLock, writePort, type PortRecord } from '../state.js';
import {
  addrEntry,
  addrOwner,
  clearGuard,
  portEntryOf,
  setMasterAddr,
  setMasterAddrs,
  writePortEntry,
  ensureGuard,
  guardRefusalReason,
  learnAddr,
  setGuard,
  portAddrs,
  portAddrsAsync,
  readSlaveEntry,
  SLAVE_UP,
  SLAVE_SAME_NETNS,
  unlearnAddr,
  writeSlaveEntry,
  type Family,
} from '../bpf/datapath.js';
import { locateSlaves, parseAlias, type SlaveLocation } from '../link/slaves.js';
import { followMasterMove, masterAddrs, masterCarries, portDelete, pruneSlave, setPeersCarrier } from '../link/manager.js';
import { giveSlaveLinkLocal, masterLinkLocal, slaveLinkLocal } from '../link/link-local.js';
import { locateMaster, masterMoved, recordedNetnsReachable } from '../link/identity.js';
import { IvbError, errorLine, isIvbError, isSysError } from '../errors.js';
import { applySlaveRoutes, ensurePortRules, syncForwardAccepts, syncSlaveRoutes, type SlaveRouteOp } from '../link/hostnet.js';
import { getLink } from '../netlink/links.js';
import { MulticastSync, type SlavePlace } from './multicast.js';

export type Log = (line: string) => void;

/** IPVLAN_BPF_LEARNER_TRACE=1: a log line per notification batch and per resync (what was read, what changed) */
const TRACE = process.env.IPVLAN_BPF_LEARNER_TRACE === '1';

/** A walk of the address table over this many entries (of all ports) logs how long it took. */
const SWEEP_LOG_ENTRIES = 100_000;
/** The slow path re-reads one slave, or resyncs one port, at most this often (a hostile slave cannot keep the agent busy). */
const REREAD_INTERVAL_NS = 5_000_000n;

interface PortWatch {
  port: PortRecord;
  /** its master's namespace is watched (listener.ts) */
  listening: boolean;
  /** "nsid:ifindex" (nsid as the master's namespace names it, "current" for itself) -> slave */
  bySlaveKey: Map<string, SlaveLocation>;
  /** host-side peer ifindexes (events about them mean a slave moved or vanished) */
  peers: Set<number>;
  resyncTimer: NodeJS.Timeout | null;
  resyncFirstAsk: number;
  /** an address was refused for want of room: a deletion may make room */
  tableFull: boolean;
  refused: Set<string>;
  nsNames: Map<number, string>;
  /** the master's carrier as last mirrored onto the slaves (null: not yet known) */
  masterCarries: boolean | null;
  /** route changes of the events at hand, applied together after them (order kept) */
  routeQueue: SlaveRouteOp[];
  routeBusy: boolean;
  /** since when the master lives where we cannot look (an unnamed namespace), 0 when it does not */
  unreachableSince: number;
  /** addresses applied by events while a table sweep walks (sweepTable): the walk's view of them is stale */
  touched: Set<string> | null;
  /** the sweep in flight: a newer resync's supersedes it */
  sweep: number;
}

function newWatch(port: PortRecord): PortWatch {
  return {
    port,
    listening: false,
    bySlaveKey: new Map(),
    peers: new Set(),
    resyncTimer: null,
    resyncFirstAsk: 0,
    tableFull: false,
    refused: new Set(),
    nsNames: new Map(),
    masterCarries: null,
    routeQueue: [],
    routeBusy: false,
    unreachableSince: 0,
    touched: null,
    sweep: 0,
  };
}

export class Learner {
  private readonly watches = new Map<number, PortWatch>();
  /** refused claims (duplicate addresses, full tables) per master name, for metrics */
  readonly refusals = new Map<string, number>();
  private scanTimer: NodeJS.Timeout | null = null;
  private stopped = false;
  /** started as the agent (a one-shot `sync` listens to nothing and schedules nothing) */
  private running = false;
  private scans = 0;
  private dirWatch: FSWatcher | null = null;
  private netnsWatch: FSWatcher | null = null;
  private scanSoon: NodeJS.Timeout | null = null;
  private guardChecked = false;
  /** CLOCK_MONOTONIC ns at which each port's last resync began: the slow path's barrier */
  private readonly resyncBegan = new Map<number, bigint>();
  /** the same per slave (host-side peer ifindex), for re-reads of one slave's addresses */
  private readonly slaveReadBegan = new Map<number, bigint>();

  private readonly listener = new RtnlListener((r) => this.onReport(r));
  /** slaves' multicast filters and what their masters hold for them (multicast.ts) */
  private readonly multicast = new MulticastSync((line) => this.log(line));
  /** the kernel reports group joins (6.13+); null until a watch says */
  private mcastEvents: boolean | null = null;

  constructor(private readonly log: Log) {}

  /**
   * For the slow path: makes the table as fresh as the moment the frame was
   * held (`heldAtNs`, the datapath's CLOCK_MONOTONIC), so that every change
   * made before the slave sent it is in: for an unknown source, a re-read of
   * the sending slave's own addresses; for an unknown destination (any slave
   * may own it), a resync of the port. Nothing is re-read when that already
   * began after the frame was held. Says where the sending slave is now.
   */
  freshSlave(
    portId: number,
    peerIfindex: number,
    heldAtNs: bigint,
    unknownSource: boolean,
  ): { netns: string | null; ifindex: number; masterMac: string; masterNetns: string | null; masterIfindex: number; mode: string } | null | 'later' {
    let w = this.watches.get(portId);
    if (!w) {
      // a port the CLI created a moment ago
      this.scanPorts(false);
      w = this.watches.get(portId);
      if (!w) return null;
    }
    const fromWire = peerIfindex === w.port.master.ifindex;
    const find = (): SlaveLocation | undefined =>
      [...w.bySlaveKey.values()].find((l) => l.record.peerIfindex === peerIfindex && l.netns !== undefined);
    const now = process.hrtime.bigint();
    const portRead = this.resyncBegan.get(portId) ?? 0n;
    let loc = find();
    if (portRead <= heldAtNs) {
      if (unknownSource && loc && loc.netns !== undefined) {
        const slaveRead = this.slaveReadBegan.get(peerIfindex) ?? 0n;
        if (slaveRead <= heldAtNs) {
          // a slave sending from ever new addresses gets one re-read per interval
          if (now - slaveRead < REREAD_INTERVAL_NS) return 'later';
          this.rereadSlave(w, loc);
        }
      } else {
        if (now - portRead < REREAD_INTERVAL_NS) return 'later';
        // any slave may own a destination: every slave's addresses, or all of the port
        if (!this.rereadPortAddrs(w)) this.resync(w);
        loc = find();
      }
    }
    const master = { masterMac: w.port.master.mac, masterNetns: w.port.master.netns, masterIfindex: w.port.master.ifindex, mode: w.port.mode };
    if (fromWire) return { netns: w.port.master.netns, ifindex: w.port.master.ifindex, ...master };
    return loc && loc.netns !== undefined ? { netns: loc.netns, ifindex: loc.ifindex, ...master } : null;
  }

  /**
   * The addresses of every slave of the port, one dump per namespace they
   * live in (lighter than a resync, which also re-reads links, the master and
   * the host's rules). False when a slave's place is not known: then only a
   * resync will do.
   */
  private rereadPortAddrs(w: PortWatch): boolean {
    const fresh = readPort(w.port.portId);
    if (!fresh) return false;
    const locs = [...w.bySlaveKey.values()];
    const known = new Set(locs.map((l) => l.record.peerIfindex));
    if (fresh.slaves.some((s) => !known.has(s.peerIfindex)) || locs.some((l) => l.netns === undefined)) return false;
    this.resyncBegan.set(w.port.portId, process.hrtime.bigint());
    const byNs = new Map<string | null, SlaveLocation[]>();
    for (const l of locs) byNs.set(l.netns ?? null, [...(byNs.get(l.netns ?? null) ?? []), l]);
    for (const [ns, inNs] of byNs) {
      const dump = listAddrs(ns);
      for (const loc of inNs) {
        const mine = dump.find((d) => d.ifindex === loc.ifindex);
        if (mine) this.applySlaveAddrs(w, loc, mine);
      }
    }
    return true;
  }

  /** Learns what one slave holds now (its own addresses only: nothing of another slave changes). */
  private rereadSlave(w: PortWatch, loc: SlaveLocation): void {
    this.slaveReadBegan.set(loc.record.peerIfindex, process.hrtime.bigint());
    const mine = listAddrs(loc.netns).find((l) => l.ifindex === loc.ifindex);
    if (mine) this.applySlaveAddrs(w, loc, mine);
  }

  /** Learns the addresses in one slave's dump; an up slave still on the veth's own link-local gets the kernel's. */
  private applySlaveAddrs(w: PortWatch, loc: SlaveLocation, mine: IpAddrLink): void {
    const wantLL = slaveLinkLocal(w.port.master.mac, loc.record.devId);
    let foreignLL = false;
    for (const i of mine.addr_info ?? []) {
      if (i.dadfailed) continue;
      // a link-local derived from the shared MAC is the master's own, never the slave's
      if (i.family === 'inet6' && i.local.startsWith('fe80:') && i.local !== wantLL) {
        foreignLL = true;
        continue;
      }
      this.applyAddr(w, loc, { family: i.family === 'inet' ? 4 : 6, addr: i.local, prefixlen: i.prefixlen }, false);
    }
    const up = mine.flags?.includes('UP') ?? false;
    // up and sending from the veth's own link-local: the kernel's dev_id one now
    if (foreignLL && up && loc.netns !== undefined) {
      const present = (mine.addr_info ?? []).filter((i) => i.family === 'inet6' && i.local.startsWith('fe80:')).map((i) => i.local);
      giveSlaveLinkLocal({ netns: loc.netns, ifname: mine.ifname, ifindex: mine.ifindex, want: wantLL, present, genModeNone: mine.inet6_addr_gen_mode === 'none' });
      // ours to give, so known at once: its first frames are not taken for spoofing
      this.applyAddr(w, loc, { family: 6, addr: wantLL, prefixlen: 64 }, false);
    }
    // its up state too (a slave brought up a moment ago owns its addresses now)
    const cur = readSlaveEntry(w.port.portId, loc.record.peerIfindex);
    if (cur && ((cur.flags & SLAVE_UP) !== 0) !== up) {
      writeSlaveEntry(w.port.portId, loc.record.peerIfindex, { ...cur, flags: up ? cur.flags | SLAVE_UP : cur.flags & ~SLAVE_UP });
    }
  }

  start(): void {
    this.running = true;
    this.multicast.holdOnMasters();
    this.scanPorts();
    this.scanTimer = setInterval(() => {
      this.watchNetnsDir();
      this.scanPorts();
    }, 2000);
    this.watchNetnsDir();
    // a port created by the CLI is picked up at once, not at the next scan
    try {
      ensureDir(join(stateDir(), 'ports'));
      this.dirWatch = watch(join(stateDir(), 'ports'), () => {
        if (this.scanSoon) return;
        this.scanSoon = setTimeout(() => {
          this.scanSoon = null;
          this.scanPorts(false);
        }, 20);
      });
    } catch (e) {
      // inotify instances used up: the periodic scan still runs
      if (!isSysError(e, 'EMFILE', 'ENOSPC')) throw e;
      this.log(`cannot watch the port records (${errorLine(e)}): new ports are picked up by the 2 s scan`);
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.scanTimer) clearInterval(this.scanTimer);
    if (this.scanSoon) clearTimeout(this.scanSoon);
    this.dirWatch?.close();
    this.netnsWatch?.close();
    for (const w of this.watches.values()) this.unwatch(w);
    this.watches.clear();
    this.multicast.stop();
    await this.listener.stop();
  }

  /** Picks up ports created or deleted by the CLI; resyncs each one periodically as a safety net. */
  scanPorts(periodic = true): void {
    if (this.stopped) return;
    const ports = listPorts();
    const ids = new Set(ports.map((p) => p.portId));
    for (const [id, w] of this.watches) {
      if (!ids.has(id)) {
        this.unwatch(w);
        this.watches.delete(id);
        this.multicast.dropPort(id);
      }
    }
    if (periodic) this.scans++;
    if (ports.length > 0 && !this.guardChecked) {
      this.guardChecked = true;
      if (!ensureGuard()) {
        this.log(
          `netlink guard unavailable (${guardRefusalReason()}): duplicate addresses are refused by the learner only, slave MAC changes are not refused`,
        );
      }
    }
    for (const p of ports) {
      let w = this.watches.get(p.portId);
      const fresh = !w;
      if (!w) {
        w = newWatch(p);
        this.watches.set(p.portId, w);
        this.startMonitor(w);
      }
      // new ports at once; every port every 60 s as a safety net against lost
      // events (a full resync dumps every slave namespace: with hundreds of
      // slaves that blocks the event path for a second)
      if (!fresh && (!periodic || this.scans % 30 !== 0)) {
        // group lists no event reports (`ip maddr add`; every join before 6.13): re-read every 2 s without events, 10 s with
        if (periodic && this.scans % (this.mcastEvents ? 5 : 1) === 0) this.syncMulticast(w);
        continue;
      }
      try {
        this.resync(w);
      } catch (e) {
        this.log(`resync of ${p.master.name} failed: ${errorLine(e)}`);
      }
    }
  }

  /**
   * A namespace name deleted or made (`ip netns del/add`): the ports whose
   * master or slaves it names are resynced at once (a deleted namespace
   * sends no netlink event of its own while something still holds it).
   */
  private watchNetnsDir(): void {
    if (this.netnsWatch || this.stopped) return;
    try {
      this.netnsWatch = watch(NETNS_RUN_DIR, (_event, file) => {
        for (const w of this.watches.values()) {
          const names = [w.port.master.netns, ...[...w.bySlaveKey.values()].map((l) => l.netns)];
          if (file === null || names.includes(String(file))) this.scheduleResync(w, 20);
        }
      });
      this.netnsWatch.on('error', () => {
        this.netnsWatch?.close();
        this.netnsWatch = null;
      });
    } catch (e) {
      // no named namespace yet: the next scan tries again
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
  }

  private unwatch(w: PortWatch): void {
    if (w.resyncTimer) clearTimeout(w.resyncTimer);
    w.resyncTimer = null;
    if (w.listening) this.listener.unwatch(String(w.port.portId));
    w.listening = false;
  }

  /** Listens to rtnetlink in the master's namespace (and, through nsids, where its slaves are). */
  private startMonitor(w: PortWatch): void {
    const ns = w.port.master.netns;
    if (!netnsExists(ns)) return;
    w.listening = true;
    this.listener.watch(String(w.port.portId), ns);
  }

  /** What the listener thread reports: events, a watch that could not start, lost notifications. */
  private onReport(r: ListenerReport): void {
    if (this.stopped) return;
    if (TRACE) this.log(`trace: listener ${r.key}: ${'events' in r ? r.events.map((e) => `${e.deleted ? 'del' : 'new'}${e.kind}@${e.nsid}:${e.ifindex}${e.addr ? ` ${e.addr}` : ''}`).join(' ') : JSON.stringify(r)}`);
    const targets = r.key === '*' ? [...this.watches.values()] : [this.watches.get(Number(r.key))].filter((w): w is PortWatch => !!w);
    if ('ready' in r && this.mcastEvents === null) {
      this.mcastEvents = r.multicastEvents;
      if (!r.multicastEvents) this.log("this kernel does not report multicast group joins (6.13+): slaves' group lists are re-read every 2 s and on link events");
    }
    for (const w of targets) {
      if ('events' in r) {
        for (const ev of r.events) this.onEvent(w, ev);
      } else if ('error' in r) {
        // its namespace went meanwhile: the resync judges the port, and watches again where it is
        w.listening = false;
        this.scheduleResync(w, 200);
      } else if ('ready' in r) {
        // the socket listens from now on; what changed between the port's
        // first read and this moment (the thread's start takes a while) no
        // event will tell: read it once more
        this.scheduleResync(w, 0);
      } else if ('overflow' in r) {
        this.log(`port ${w.port.master.name}: ${r.overflow}: resyncing`);
        if (r.key === '*') {
          w.listening = false;
          this.startMonitor(w);
        }
        this.scheduleResync(w, 20);
      }
    }
  }

  /**
   * Trailing debounce: the resync runs once events have been quiet for
   * `delayMs` (at most 1 s after the first), so a burst of changes is handled
   * by the incremental path without a blocking dump in the middle of it.
   */
  private scheduleResync(w: PortWatch, delayMs = 150): void {
    const now = Date.now();
    if (w.resyncTimer) clearTimeout(w.resyncTimer);
    else w.resyncFirstAsk = now;
    const wait = Math.max(0, Math.min(delayMs, w.resyncFirstAsk + 1000 - now));
    w.resyncTimer = setTimeout(() => {
      w.resyncTimer = null;
      try {
        // no state lock: waiting for a CLI command would stall the event path
        this.resync(w);
      } catch (e) {
        this.log(`resync of ${w.port.master.name} failed: ${errorLine(e)}`);
      }
    }, wait);
  }

  private onEvent(w: PortWatch, ev: RtnlEvent): void {
    try {
      if (ev.kind === 'mcast') {
        // a join or leave of a slave: its list is read again (others' devices are not ours)
        const loc = w.bySlaveKey.get(`${ev.nsid}:${ev.ifindex}`);
        if (loc && loc.netns !== undefined) {
          this.multicast.slaveChanged(w.port, { peerIfindex: loc.record.peerIfindex, netns: loc.netns, ifindex: loc.ifindex, flags: null });
        }
        return;
      }
      if (ev.kind === 'addr' && ev.family && ev.addr && ev.prefixlen !== undefined) {
        if (ev.nsid === 'current' && ev.ifindex === w.port.master.ifindex) {
          // the master's own addresses: where l3 egress goes up its stack
          setMasterAddr(w.port.portId, { family: ev.family, addr: ev.addr, prefixlen: ev.prefixlen }, !ev.deleted);
          return;
        }
        const loc = w.bySlaveKey.get(`${ev.nsid}:${ev.ifindex}`);
        if (!loc) {
          // another device of a namespace we know (lo, the master's namespace):
          // not ours; only a namespace we have not seen yet needs a resync
          const known = ev.nsid === 'current' || [...w.bySlaveKey.keys()].some((k) => k.startsWith(`${ev.nsid}:`));
          if (!known) this.scheduleResync(w);
          return;
        }
        this.applyAddr(w, loc, { family: ev.family, addr: ev.addr, prefixlen: ev.prefixlen }, ev.deleted);
        return;
      }
      if (ev.kind === 'link') {
        // slave events carrying our alias are applied at once; a resync is
        // needed only for what that cannot cover
        const handled = this.onLinkEvent(w, ev);
        const current = ev.nsid === 'current';
        // the master matters only when it goes, or its MAC or MTU changes (the
        // slaves follow): up/down and the rest need no blocking resync
        const masterEvent =
          current &&
          ev.ifindex === w.port.master.ifindex &&
          (ev.deleted || ev.mac !== w.port.master.mac || ev.mtu !== w.port.master.mtu);
        if (current && ev.ifindex === w.port.master.ifindex && !ev.deleted) {
          const flags = ev.flags ?? [];
          this.mirrorCarrier(w, flags.includes('UP') && flags.includes('LOWER_UP'), w.port.slaves.map((s) => s.peerName));
        }
        const peerEvent = current && w.peers.has(ev.ifindex);
        if (masterEvent || (peerEvent && ev.deleted) || (!handled && !current) || (handled === false && ev.deleted)) {
          this.scheduleResync(w);
        }
      }
    } catch (e) {
      this.log(`port ${w.port.master.name}: ${errorLine(e)}`);
      this.scheduleResync(w);
    }
  }

  /**
   * A slave's link event carries our alias: map (nsid, ifindex) to the slave
   * and update its up/namespace/MTU state at once, without waiting for the
   * resync, so that addresses added right after `link set up` are learned
   * within milliseconds.
   */
  private onLinkEvent(w: PortWatch, ev: RtnlEvent): boolean {
    if (ev.deleted) return false;
    const alias = parseAlias(ev.alias);
    if (!alias || alias.portId !== w.port.portId) return false;
    const fresh = readPort(w.port.portId);
    const record = fresh?.slaves.find((s) => s.peerName === alias.peerName);
    // a slave being created: its record is written when `link add` completes
    if (!fresh || !record) return true;
    w.port = fresh;
    const key = `${ev.nsid}:${ev.ifindex}`;
    for (const [k, l] of w.bySlaveKey) if (l.record.peerName === record.peerName && k !== key) w.bySlaveKey.delete(k);
    let netns: string | null | undefined = fresh.master.netns;
    if (ev.nsid !== 'current') {
      netns = this.nsName(w, Number(ev.nsid));
    }
    const mac = ev.mac;
    if (mac && mac !== fresh.master.mac && !w.refused.has(`mac:${record.peerName}:${mac}`)) {
      w.refused.add(`mac:${record.peerName}:${mac}`);
      this.log(
        `slave ${ev.ifname ?? record.name} of ${fresh.master.name} changed its MAC to ${mac}: its frames are dropped (spoofed_mac) until it is ${fresh.master.mac} again`,
      );
    }
    const linkFlags = ev.flags ?? [];
    const up = linkFlags.includes('UP');
    const mtu = ev.mtu ?? 0;
    w.bySlaveKey.set(key, { record, netns, ifindex: ev.ifindex, link: null, peer: null });
    this.guard(fresh.portId, record.peerIfindex, netns, ev.ifindex);
    const flags = (up ? SLAVE_UP : 0) | (ev.nsid === 'current' ? SLAVE_SAME_NETNS : 0);
    const cur = readSlaveEntry(fresh.portId, record.peerIfindex);
    if (!cur || cur.flags !== flags || cur.mtu !== mtu) {
      writeSlaveEntry(fresh.portId, record.peerIfindex, { devId: record.devId, flags, mtu });
    }
    if (netns !== undefined) this.multicast.slaveChanged(fresh, { peerIfindex: record.peerIfindex, netns, ifindex: ev.ifindex, flags: linkFlags });
    // a slave added while the master has no carrier gets none either
    if (w.masterCarries === false && linkFlags.includes('LOWER_UP')) {
      setPeersCarrier([record.peerName], false, fresh.master.netns);
    }
    const ifname = ev.ifname;
    if (up && netns !== undefined && ifname && (!cur || !(cur.flags & SLAVE_UP))) {
      // what a veth derives from the shared MAC when it comes up: the master's own
      giveSlaveLinkLocal({ netns, ifname, ifindex: ev.ifindex, want: slaveLinkLocal(fresh.master.mac, record.devId), present: [masterLinkLocal(fresh.master.mac)] });
    }
    return true;
  }

  /** Tells the netlink guard where the slave lives now. */
  private guard(portId: number, peerIfindex: number, netns: string | null | undefined, ifindex: number): void {
    if (netns === undefined || !ifindex) return;
    let ino: number;
    try {
      ino = netns === null ? initNetnsInode() : netnsInodeOfPath(netnsPath(netns));
    } catch (e) {
      // its namespace was deleted meanwhile: the next resync finds where it is
      if (isIvbError(e, 'IPVLAN_E_NETNS')) return;
      throw e;
    }
    clearGuard(portId, peerIfindex);
    setGuard(ino, ifindex, portId, peerIfindex);
  }

  private nsName(w: PortWatch, nsid: number): string | undefined {
    let name = w.nsNames.get(nsid);
    if (name === undefined) {
      w.nsNames = nsidNames(w.port.master.netns);
      name = w.nsNames.get(nsid);
    }
    return name;
  }

  private slaveLabel(loc: SlaveLocation): string {
    const name = loc.link?.ifname ?? loc.record.name;
    return loc.netns ? `${name} (netns ${loc.netns})` : name;
  }

  private applyAddr(w: PortWatch, loc: SlaveLocation, a: { family: Family; addr: string; prefixlen: number }, deleted: boolean): void {
    const portId = w.port.portId;
    const owner = addrOwner(portId, a);
    const key = `${a.family}:${a.addr}`;
    w.touched?.add(key);
    if (deleted) {
      if (w.tableFull) {
        // room again: the resync learns what was refused
        w.tableFull = false;
        this.scheduleResync(w, 20);
      }
      if (owner === loc.record.peerIfindex) {
        unlearnAddr(portId, a);
        this.queueRoute(w, loc, a, false);
        // a refused sibling may hold it too: it is the owner now
        if ([...w.refused].some((t) => t.startsWith(`${a.addr}@`))) this.scheduleResync(w, 20);
      }
      w.refused.delete(`${a.addr}@${loc.record.peerIfindex}`);
      return;
    }
    if (owner !== null && owner !== loc.record.peerIfindex) {
      this.refuse(w, loc, a.addr, owner);
      return;
    }
    try {
      learnAddr(portId, loc.record.peerIfindex, a);
    } catch (e) {
      this.tableRefusal(w, loc, a.addr, e);
      return;
    }
    this.queueRoute(w, loc, a, true);
  }

  /**
   * The port table's route for an address just learned or forgotten
   * (hostnet.ts), applied right after the events at hand: the routes of a
   * burst of address events go over one rtnetlink socket, in order, and the
   * learning of the next event does not wait for them (the resync corrects
   * anything a failure left).
   */
  private queueRoute(w: PortWatch, loc: SlaveLocation, a: { family: Family; addr: string }, present: boolean): void {
    w.routeQueue.push({ family: a.family, addr: a.addr, peerName: loc.record.peerName, peerIfindex: loc.record.peerIfindex, present });
    if (w.routeBusy) return;
    w.routeBusy = true;
    setImmediate(() => this.flushRoutes(w));
  }

  private flushRoutes(w: PortWatch): void {
    w.routeBusy = false;
    const ops = w.routeQueue.splice(0);
    if (this.stopped || ops.length === 0) return;
    try {
      applySlaveRoutes(w.port, ops);
    } catch (e) {
      if (!isIvbError(e, 'IPVLAN_E_IPROUTE')) throw e;
      this.log(`routes of ${w.port.master.name}'s table: ${e.message} (the next resync puts them right)`);
    }
  }

  /** A learn that failed (a full table): logged and counted once per address. */
  private tableRefusal(w: PortWatch, loc: SlaveLocation, addr: string, e: unknown): void {
    w.tableFull = true;
    const tag = `full:${addr}@${loc.record.peerIfindex}`;
    if (w.refused.has(tag)) return;
    w.refused.add(tag);
    this.refusals.set(w.port.master.name, (this.refusals.get(w.port.master.name) ?? 0) + 1);
    this.log(`${this.slaveLabel(loc)}: ${errorLine(e)}`);
  }

  private refuse(w: PortWatch, loc: SlaveLocation, addr: string, owner: number): void {
    const tag = `${addr}@${loc.record.peerIfindex}`;
    if (w.refused.has(tag)) return;
    w.refused.add(tag);
    this.refusals.set(w.port.master.name, (this.refusals.get(w.port.master.name) ?? 0) + 1);
    const ownerLoc = [...w.bySlaveKey.values()].find((l) => l.record.peerIfindex === owner);
    const ownerName = ownerLoc ? this.slaveLabel(ownerLoc) : `peer ${owner}`;
    this.log(
      `address ${addr} refused on ${this.slaveLabel(loc)}: already assigned to ipvlan-bpf slave ${ownerName} of ${w.port.master.name}`,
    );
  }

  /** Recomputes the port's slaves and addresses from what exists and applies the difference. */
  resync(w: PortWatch): void {
    this.resyncBegan.set(w.port.portId, process.hrtime.bigint());
    const fresh = readPort(w.port.portId);
    if (TRACE) this.log(`trace: resync of port ${w.port.portId} (${fresh ? `${fresh.slaves.length} slave(s)` : 'no record'})`);
    if (!fresh) return;
    w.port = fresh;
    let port = fresh;
    // the master is the device our pinned link is on (identity.ts), wherever it went
    let where = locateMaster(port);
    if (where.state === 'gone') {
      this.log(`master ${port.master.name} is gone (${where.why}): deleting its ${port.slaves.length} slave(s)`);
      portDelete(port);
      return;
    }
    if (where.state === 'unreachable') {
      if (TRACE) this.log(`trace: port ${port.portId}: master unreachable (${JSON.stringify(where).slice(0, 200)})`);
      if (!recordedNetnsReachable(port) && this.running && (w.listening || this.multicast.holdsMaster(port.portId))) {
        // its namespace was deleted, yet our own sockets in it (the
        // rtnetlink monitor, the packet socket holding the master's groups)
        // keep it, and the master, alive: let go and look again
        this.unwatch(w);
        this.multicast.releaseMaster(port.portId);
        this.scheduleResync(w, 200);
        return;
      }
      // nothing read, nothing changed: the table stays as it is until the master is back where we can see it
      if (w.unreachableSince === 0) {
        w.unreachableSince = Date.now();
        this.log(`master ${port.master.name} is in a namespace without a name: its slaves are kept, their table unchanged`);
      }
      // a namespace being destroyed takes a moment: look again meanwhile
      if (this.running && Date.now() - w.unreachableSince < 10_000) this.scheduleResync(w, 500);
      return;
    }
    w.unreachableSince = 0;
    if (masterMoved(port, where)) {
      for (const line of followMasterMove(port.portId, where)) this.log(line);
      const moved = readPort(port.portId);
      if (!moved) return;
      w.port = moved;
      port = moved;
      // listen where the master is now
      if (this.running) {
        this.unwatch(w);
        this.startMonitor(w);
      }
      where = { ...where, link: getLink(where.link.ifname, where.netns) ?? where.link };
    }
    // a watch that could not start (its namespace was being replaced): again, now that the master is found
    if (this.running && !w.listening) this.startMonitor(w);
    const locs = locateSlaves(port);
    const master = this.followMaster(w, where.link, locs);
    if (master) {
      const carries = masterCarries(master);
      const stale = locs.filter((l) => l.peer && l.peer.flags.includes('UP') !== carries).map((l) => l.record.peerName);
      w.masterCarries = null;
      this.mirrorCarrier(w, carries, stale);
    }
    // a failed read throws: the resync stops, with every map as it was
    setMasterAddrs(port.portId, masterAddrs(where.link.ifname, where.netns));
    const bySlaveKey = new Map<string, SlaveLocation>();
    const peers = new Set<number>();
    const addrDumps = new Map<string, IpAddrLink[]>();
    const claims = new Map<string, Array<{ loc: SlaveLocation; family: Family; addr: string; prefixlen: number }>>();
    const unreadable = new Set<number>();
    for (const loc of locs) {
      peers.add(loc.record.peerIfindex);
      if (!loc.peer) {
        // our peer is gone: the slave's namespace was deleted (the kernel destroys the slave too)
        this.log(`slave ${loc.record.name} of ${port.master.name} is gone: removing it`);
        try {
          pruneSlave(port.portId, loc.record.peerName, loc.record.peerIfindex);
        } catch (e) {
          this.log(`cleanup of ${loc.record.name} failed: ${errorLine(e)}`);
        }
        continue;
      }
      if (loc.netns === undefined || !loc.link) {
        // a namespace without a name (CNI's /proc/PID/ns/net): its addresses
        // cannot be read here, so what was learned for it stays
        unreadable.add(loc.record.peerIfindex);
        continue;
      }
      const nsid = loc.netns === port.master.netns ? 'current' : String(loc.peer.link_netnsid);
      bySlaveKey.set(`${nsid}:${loc.ifindex}`, loc);
      this.guard(port.portId, loc.record.peerIfindex, loc.netns, loc.ifindex);
      const up = loc.link.flags.includes('UP');
      const cur = readSlaveEntry(port.portId, loc.record.peerIfindex);
      const sameNs = loc.netns === port.master.netns ? SLAVE_SAME_NETNS : 0;
      const want = { devId: loc.record.devId, flags: (up ? SLAVE_UP : 0) | sameNs, mtu: loc.link.mtu };
      if (!cur || cur.flags !== want.flags || cur.mtu !== want.mtu || cur.devId !== want.devId) {
        writeSlaveEntry(port.portId, loc.record.peerIfindex, want);
      }
      const dkey = loc.netns ?? '';
      let dump = addrDumps.get(dkey);
      if (!dump) {
        try {
          dump = listAddrs(loc.netns);
        } catch (e) {
          // its namespace went away meanwhile: what was learned for it stays
          // until a read succeeds (a failed read never clears a map)
          if (!(e instanceof IvbError && e.code === 'IPVLAN_E_IPROUTE')) throw e;
          unreadable.add(loc.record.peerIfindex);
          continue;
        }
        addrDumps.set(dkey, dump);
      }
      const mine = dump.find((l) => l.ifindex === loc.ifindex);
      const infos = mine?.addr_info ?? [];
      const wantLL = slaveLinkLocal(port.master.mac, loc.record.devId);
      if (up) this.fixLinkLocal(port, loc, infos.filter((i) => i.family === 'inet6').map((i) => i.local));
      for (const i of infos) {
        if (i.dadfailed) continue;
        // a link-local derived from the shared MAC is being replaced by the dev_id one
        if (up && i.family === 'inet6' && i.local.startsWith('fe80:') && i.local !== wantLL) continue;
        const family: Family = i.family === 'inet' ? 4 : 6;
        const k = `${family}:${i.local}`;
        const list = claims.get(k) ?? [];
        list.push({ loc, family, addr: i.local, prefixlen: i.prefixlen });
        claims.set(k, list);
      }
    }
    w.bySlaveKey = bySlaveKey;
    w.peers = peers;
    if (TRACE) this.log(`trace: port ${port.portId} slaves ${[...bySlaveKey].map(([k, l]) => `${k}=${l.record.peerName}`).join(' ')} claims ${[...claims.keys()].join(' ')} unreadable ${[...unreadable].join(' ')}`);
    // what the table holds for the claimed addresses, by one lookup each; the
    // rest of the port's entries (stale ones, from events missed while no
    // agent ran) is found by a walk of the whole table (sweepTable)
    const current = new Map<string, { family: Family; addr: string; peerIfindex: number; prefixlen: number }>();
    for (const [k, list] of claims) {
      const e = addrEntry(port.portId, list[0]!);
      if (e) current.set(k, { family: list[0]!.family, addr: list[0]!.addr, ...e });
    }
    for (const [k, list] of claims) {
      const cur = current.get(k);
      const keep = cur ? list.find((c) => c.loc.record.peerIfindex === cur.peerIfindex) : undefined;
      const winner = keep ?? list[0]!;
      if (!cur || cur.peerIfindex !== winner.loc.record.peerIfindex || cur.prefixlen !== winner.prefixlen) {
        try {
          learnAddr(port.portId, winner.loc.record.peerIfindex, winner);
        } catch (e) {
          this.tableRefusal(w, winner.loc, winner.addr, e);
        }
      }
      for (const c of list) if (c !== winner) this.refuse(w, c.loc, c.addr, winner.loc.record.peerIfindex);
    }
    // the slaves' multicast filters and the master's memberships, with the flags of the link dump just made
    this.multicast.syncPort(port, this.multicastPlaces(w, true), unreadable);
    this.sweepTable(w, new Set(claims.keys()), unreadable);
  }

  /**
   * The resync's second half: one walk of the address table for the port's
   * entries, removing those no slave claims (unless their slave cannot be
   * read), then the host's routes and rules for what remains. At a million
   * entries the walk costs ~0.7 s in the kernel: a running agent walks in
   * batches between events (start and the safety-net resync never hold the
   * event path), and what events change meanwhile is judged by a fresh
   * lookup instead of the walk's view. A one-shot sync walks at once.
   */
  private sweepTable(w: PortWatch, claimed: Set<string>, unreadable: Set<number>): void {
    const portId = w.port.portId;
    if (!this.running) {
      this.finishSweep(w, portAddrs(portId), claimed, unreadable, new Set());
      return;
    }
    const sweep = ++w.sweep;
    const began = performance.now();
    w.touched = new Set();
    const touched = w.touched;
    const superseded = (): boolean => this.stopped || w.sweep !== sweep || this.watches.get(portId) !== w;
    portAddrsAsync(portId, superseded).then(
      ({ addrs, walked }) => {
        // superseded by a newer resync, or the port is no longer watched
        if (superseded()) return;
        w.touched = null;
        const ms = performance.now() - began;
        // a walk of a big table is worth a line: learning went on meanwhile
        if (walked >= SWEEP_LOG_ENTRIES || TRACE) {
          this.log(`port ${w.port.master.name}: address table swept in ${ms.toFixed(0)} ms (${walked} entries, ${addrs.length} of the port)`);
        }
        try {
          this.finishSweep(w, addrs, claimed, unreadable, touched);
        } catch (e) {
          this.log(`sweep of ${w.port.master.name}'s addresses failed: ${errorLine(e)}`);
        }
      },
      (e: unknown) => {
        if (w.sweep === sweep) w.touched = null;
        this.log(`sweep of ${w.port.master.name}'s addresses failed: ${errorLine(e)}`);
      },
    );
  }

  private finishSweep(
    w: PortWatch,
    walked: Array<{ family: Family; addr: string; peerIfindex: number; prefixlen: number }>,
    claimed: Set<string>,
    unreadable: Set<number>,
    touched: Set<string>,
  ): void {
    const portId = w.port.portId;
    const after = new Map<string, { family: Family; addr: string; peerIfindex: number }>();
    const recheck = new Set([...claimed, ...touched]);
    for (const a of walked) {
      const k = `${a.family}:${a.addr}`;
      if (recheck.has(k)) continue;
      if (unreadable.has(a.peerIfindex)) {
        after.set(k, a);
        continue;
      }
      // as walked, still: nothing learned it meanwhile
      if (addrOwner(portId, a) === a.peerIfindex) unlearnAddr(portId, a);
    }
    // claimed, or changed by events during the walk: as the table has them now
    for (const k of recheck) {
      const sep = k.indexOf(':');
      const a = { family: (k.slice(0, sep) === '4' ? 4 : 6) as Family, addr: k.slice(sep + 1) };
      const owner = addrOwner(portId, a);
      if (owner !== null) after.set(k, { ...a, peerIfindex: owner });
    }
    this.syncHostnet(w, [...after.values()]);
  }

  /**
   * Where the port's slaves are, for multicast.ts; with DUMPED, their flags
   * from the link dump just made (else the flags the last event or dump gave stay).
   */
  private multicastPlaces(w: PortWatch, dumped: boolean): SlavePlace[] {
    return [...w.bySlaveKey.values()].flatMap((l) =>
      l.netns === undefined ? [] : [{ peerIfindex: l.record.peerIfindex, netns: l.netns, ifindex: l.ifindex, flags: dumped ? (l.link?.flags ?? null) : null }],
    );
  }

  /** The periodic re-read of every slave's group list (multicast.ts). */
  private syncMulticast(w: PortWatch): void {
    try {
      this.multicast.syncPort(w.port, this.multicastPlaces(w, false), new Set(w.peers));
    } catch (e) {
      this.log(`port ${w.port.master.name}: ${errorLine(e)}`);
    }
  }

  /**
   * What the master's namespace needs for l3/l3s on real hosts (hostnet.ts):
   * rules, slave routes, forward accepts (a firewall started after the
   * slaves, such as Docker's, gets its accepts here). Under the state lock,
   * so that it cannot re-add what a `link del` of the last slave just
   * removed; never waits for it: when a command holds it, later.
   */
  private syncHostnet(w: PortWatch, addrs: Array<{ family: Family; addr: string; peerIfindex: number }>): void {
    try {
      withLock(() => {
        const port = readPort(w.port.portId);
        if (!port || port.slaves.length === 0) return;
        ensurePortRules(port);
        // (addresses of a slave the fresh record no longer has get no route: syncSlaveRoutes maps owners through it)
        syncSlaveRoutes(port, addrs);
        for (const line of syncForwardAccepts(port)) this.log(`${port.master.name}: ${line}`);
      }, 0);
    } catch (e) {
      if (!(e instanceof IvbError && e.code === 'IPVLAN_E_LOCK')) throw e;
      this.scheduleResync(w, 300);
    }
  }

  /**
   * NETDEV_CHANGEADDR / NETDEV_CHANGEMTU on the master: every slave takes the
   * master's new MAC, and its new MTU (up or down), as the kernel's
   * ipvlan_device_event does. Our host-side peers keep the MAC too (the L3
   * path needs frames to them to be PACKET_HOST).
   */
  /**
   * The slaves' carrier follows the master's (netif_stacked_transfer_operstate
   * on NETDEV_UP/CHANGE, and NETDEV_DOWN since ~6.10): PEERS are set up or down.
   */
  private mirrorCarrier(w: PortWatch, carries: boolean, peers: readonly string[]): void {
    if (w.masterCarries === carries) return;
    const before = w.masterCarries;
    w.masterCarries = carries;
    setPeersCarrier(peers, carries, w.port.master.netns);
    if (before !== null || peers.length > 0) {
      this.log(`master ${w.port.master.name} ${carries ? 'is up with carrier' : 'is down or has no carrier'}: its slaves follow`);
    }
    // the peers' routes in the port's table went when they went down: a
    // resync puts them back now that they are up
    if (carries && before === false) this.scheduleResync(w, 20);
  }

  /**
   * Slaves take the master's MAC and MTU; returns the master's link. The
   * record changes under the lock, from a fresh read (a `link add` running
   * meanwhile keeps its slave); when a command holds the lock, later.
   */
  private followMaster(w: PortWatch, master: IpLink, locs: SlaveLocation[]): IpLink {
    const port = w.port;
    const mac = master.address ?? port.master.mac;
    if (mac === port.master.mac && master.mtu === port.master.mtu && master.ifname === port.master.name) return master;
    const macChanged = mac !== port.master.mac;
    const mtuChanged = master.mtu !== port.master.mtu;
    try {
      withLock(() => {
        const fresh = readPort(port.portId);
        if (!fresh || fresh.master.ifindex !== master.ifindex || fresh.master.netnsIno !== port.master.netnsIno) return;
        if (macChanged || mtuChanged) {
          this.log(`master ${master.ifname} changed (${macChanged ? `MAC ${mac}` : ''}${macChanged && mtuChanged ? ', ' : ''}${mtuChanged ? `MTU ${master.mtu}` : ''}): its slaves follow`);
        }
        for (const loc of locs) {
          if (!loc.link || loc.netns === undefined) continue;
          if (macChanged) {
            // our own change: the netlink guard would refuse it like any other
            clearGuard(port.portId, loc.record.peerIfindex);
            this.followMasterLink(loc.netns, loc.link.ifname, { address: mac });
            this.followMasterLink(port.master.netns, loc.record.peerName, { address: mac });
          }
          if (mtuChanged) this.followMasterLink(loc.netns, loc.link.ifname, { mtu: master.mtu });
        }
        fresh.master.name = master.ifname;
        fresh.master.mac = mac;
        fresh.master.mtu = master.mtu;
        writePort(fresh);
        writePortEntry(fresh.portId, portEntryOf(fresh));
        w.port = fresh;
      }, 0);
    } catch (e) {
      if (!(e instanceof IvbError && e.code === 'IPVLAN_E_LOCK')) throw e;
      this.scheduleResync(w, 300);
    }
    return master;
  }

  /** One end of a slave takes its master's new MAC or MTU; a refusal (the link went meanwhile) is logged, the next change or resync tries again. */
  private followMasterLink(netns: string | null, ifname: string, change: { address?: string; mtu?: number }): void {
    try {
      withRtnl(netns, (w) => w.setLink(ifname, change));
    } catch (e) {
      if (!isIvbError(e, 'IPVLAN_E_IPROUTE')) throw e;
      this.log(e.message);
    }
  }

  /** A slave up where it lives holds the kernel's dev_id link-local and no other (link-local.ts). */
  private fixLinkLocal(port: PortRecord, loc: SlaveLocation, v6: string[]): void {
    if (!loc.link || loc.netns === undefined) return;
    const present = v6.filter((a) => a.toLowerCase().startsWith('fe80:'));
    giveSlaveLinkLocal({
      netns: loc.netns,
      ifname: loc.link.ifname,
      ifindex: loc.link.ifindex,
      want: slaveLinkLocal(port.master.mac, loc.record.devId),
      present,
      genModeNone: loc.link.inet6_addr_gen_mode === 'none',
    });
  }
}

/** Runs the learner under the state lock for one resync of everything (used by tests and `sync`). */
export function resyncOnce(log: Log): void {
  const l = new Learner(log);
  withLock(() => {
    for (const p of listPorts()) {
      const w: PortWatch = newWatch(p);
      l.resync(w);
    }
  });
}
