// SPDX-License-Identifier: GPL-2.0-only
/**
 * Slaves' multicast, as the kernel driver keeps it
 * (ipvlan_set_multicast_mac_filter, ipvlan_change_rx_flags):
 *
 * - each slave's filter in ivb_mc_filters (bpf/lib/mcfilter.h): the bit of
 *   every group in its link-layer list, plus broadcast's; all bits when it is
 *   PROMISC or ALLMULTI. Read from its namespace's /proc/net/dev_mcast (what
 *   `ip maddr` shows), its flags from RTM_NEWLINK.
 * - the master: the union of its slaves' groups (dev_mc_sync) and allmulti
 *   while any slave is ALLMULTI (dev_set_allmulti; PROMISC is not passed
 *   on), held as memberships of one packet socket per port in the master's
 *   namespace. The kernel counts those per holder, as it counts the
 *   driver's: a group or allmulti the user set on the master stays theirs,
 *   and everything is undone by the kernel when the socket closes (the agent
 *   stops or dies, the port is deleted, the master goes). The price: while
 *   no agent runs, the master holds no slave group (nor would a slave's
 *   change be followed).
 */
import { readFileSync } from 'node:fs';
import { withNetns } from '../../../native/libbpf.js';
import { PACKET_MR_ALLMULTI, PACKET_MR_MULTICAST, closeFd, packetMembership, packetSocket } from '../../../native/libc.js';
import { IvbSize } from '../../../maps/generated.js';
import { readMcFilter, writeMcFilter } from '../bpf/datapath.js';
import { netnsPath } from '../netlink/netns.js';
import { errorLine, isSysError } from '../errors.js';

export type Log = (line: string) => void;

/** the seed of our jhash: bpf/lib/mcfilter.h's IVB_MC_HASH_SEED (the kernel's secret is random) */
const MC_HASH_SEED = 0;
const JHASH_INITVAL = 0xdeadbeef;
const BROADCAST = Buffer.alloc(6, 0xff);

const rol32 = (w: number, s: number): number => ((w << s) | (w >>> (32 - s))) >>> 0;

/** ipvlan_mac_hash(): jhash_1word() of MAC bytes 2..5 (a little-endian word), 8 bits; as mcfilter.h computes it. */
export function macHash(mac: Buffer): number {
  const iv = (MC_HASH_SEED + JHASH_INITVAL + 4) >>> 0;
  let a = (mac.readUInt32LE(2) + iv) >>> 0;
  let b = iv;
  let c = iv;
  c = ((c ^ b) - rol32(b, 14)) >>> 0;
  a = ((a ^ c) - rol32(c, 11)) >>> 0;
  b = ((b ^ a) - rol32(a, 25)) >>> 0;
  c = ((c ^ b) - rol32(b, 16)) >>> 0;
  a = ((a ^ c) - rol32(c, 4)) >>> 0;
  b = ((b ^ a) - rol32(a, 14)) >>> 0;
  c = ((c ^ b) - rol32(b, 24)) >>> 0;
  return c & (IvbSize.MC_FILTER_BITS - 1);
}

/** A slave's multicast state: its link-layer groups (12 hex digits each) and flags. */
export interface SlaveGroups {
  groups: string[];
  allmulti: boolean;
  promisc: boolean;
}

/** The 32 bytes of a slave's filter (ipvlan_set_multicast_mac_filter). */
export function mcFilterBits(s: SlaveGroups): Buffer {
  const bits = Buffer.alloc(IvbSize.MC_FILTER_BITS / 8);
  if (s.allmulti || s.promisc) return bits.fill(0xff);
  for (const mac of [...s.groups.map((g) => Buffer.from(g, 'hex')), BROADCAST]) {
    const h = macHash(mac);
    bits[h >> 3]! |= 1 << (h & 7);
  }
  return bits;
}

/**
 * The link-layer groups of every device of NETNS (null: the agent's own),
 * by ifindex, from dev_mcast ("ifindex name users global address").
 * /proc/thread-self: /proc/net follows the thread group's leader, not the
 * thread withNetns moved.
 */
function readDevMcast(netns: string | null): Map<number, string[]> {
  const text = netns === null ? readFileSync('/proc/thread-self/net/dev_mcast', 'utf8') : withNetns(netnsPath(netns), () => readFileSync('/proc/thread-self/net/dev_mcast', 'utf8'));
  const out = new Map<number, string[]>();
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 5 || !/^[0-9a-f]{12}$/.test(f[4]!)) continue;
    const ifindex = Number(f[0]);
    out.set(ifindex, [...(out.get(ifindex) ?? []), f[4]!]);
  }
  return out;
}

/** Where a slave end is: its namespace (null: the agent's) and ifindex there; flags as RTM_NEWLINK gave them. */
export interface SlavePlace {
  peerIfindex: number;
  netns: string | null;
  ifindex: number;
  /** null: unchanged since the last link event or resync */
  flags: readonly string[] | null;
}

export interface PortPlace {
  portId: number;
  master: { name: string; netns: string | null; ifindex: number };
}

interface PortMulticast {
  slaves: Map<number, SlaveGroups>;
  /** the packet socket holding the master's memberships, and where it was made */
  fd: number | null;
  fdNetns: string | null;
  fdIfindex: number;
  held: Set<string>;
  allmulti: boolean;
}

export class MulticastSync {
  private readonly ports = new Map<number, PortMulticast>();
  /** hold the slaves' groups on the masters (the agent; a one-shot sync keeps filters only) */
  private holdMasters = false;

  constructor(private readonly log: Log) {}

  /** From now on the masters get their slaves' groups and allmulti (undone by stop, or by the process's end). */
  holdOnMasters(): void {
    this.holdMasters = true;
  }

  /** One slave whose list or flags may have changed (a link or group event). */
  slaveChanged(port: PortPlace, where: SlavePlace): void {
    let lists: Map<number, string[]>;
    try {
      lists = readDevMcast(where.netns);
    } catch (e) {
      // its namespace went meanwhile: the resync finds where it is
      if (isSysError(e, 'ENOENT')) return;
      throw e;
    }
    const p = this.portOf(port.portId);
    this.applySlave(port, p, where, lists);
    this.syncMaster(port, p);
  }

  /**
   * Every slave of a port (the resync, and the periodic re-read that catches
   * what no event reports: `ip maddr add` of a link-layer group, or any join
   * on a kernel older than 6.13). Slaves in KEEP (unreadable where they are)
   * keep what was known; any other slave not in SLAVES is forgotten.
   */
  syncPort(port: PortPlace, slaves: readonly SlavePlace[], keep: ReadonlySet<number> = new Set()): void {
    const p = this.portOf(port.portId);
    const byNs = new Map<string | null, Map<number, string[]> | null>();
    for (const s of slaves) {
      if (!byNs.has(s.netns)) {
        try {
          byNs.set(s.netns, readDevMcast(s.netns));
        } catch (e) {
          if (!isSysError(e, 'ENOENT')) throw e;
          byNs.set(s.netns, null);
        }
      }
      const lists = byNs.get(s.netns);
      if (lists) this.applySlave(port, p, s, lists);
    }
    const present = new Set(slaves.map((s) => s.peerIfindex));
    for (const peer of [...p.slaves.keys()]) if (!present.has(peer) && !keep.has(peer)) p.slaves.delete(peer);
    this.syncMaster(port, p);
  }

  /** A slave removed: its groups leave the master (its filter went with its index). */
  forgetSlave(port: PortPlace, peerIfindex: number): void {
    const p = this.ports.get(port.portId);
    if (!p || !p.slaves.delete(peerIfindex)) return;
    this.syncMaster(port, p);
  }

  /** A port deleted: the master's memberships are dropped with the socket. */
  dropPort(portId: number): void {
    const p = this.ports.get(portId);
    if (!p) return;
    this.closeSocket(p);
    this.ports.delete(portId);
  }

  /** Whether a socket of ours holds memberships on the port's master (and with it the master's namespace). */
  holdsMaster(portId: number): boolean {
    return (this.ports.get(portId)?.fd ?? null) !== null;
  }

  /**
   * Lets the master's namespace go (it was deleted: a socket in it keeps it,
   * and the master, alive); the slaves' lists are kept for when it is found.
   */
  releaseMaster(portId: number): void {
    const p = this.ports.get(portId);
    if (p) this.closeSocket(p);
  }

  stop(): void {
    for (const id of [...this.ports.keys()]) this.dropPort(id);
  }

  private portOf(portId: number): PortMulticast {
    let p = this.ports.get(portId);
    if (!p) {
      p = { slaves: new Map(), fd: null, fdNetns: null, fdIfindex: 0, held: new Set(), allmulti: false };
      this.ports.set(portId, p);
    }
    return p;
  }

  private applySlave(port: PortPlace, p: PortMulticast, where: SlavePlace, lists: Map<number, string[]>): void {
    const before = p.slaves.get(where.peerIfindex);
    const flags = where.flags;
    const now: SlaveGroups = {
      groups: [...(lists.get(where.ifindex) ?? [])].sort(),
      allmulti: flags ? flags.includes('ALLMULTI') : (before?.allmulti ?? false),
      promisc: flags ? flags.includes('PROMISC') : (before?.promisc ?? false),
    };
    p.slaves.set(where.peerIfindex, now);
    const bits = mcFilterBits(now);
    const cur = readMcFilter(port.portId, where.peerIfindex);
    if (!cur || !cur.equals(bits)) writeMcFilter(port.portId, where.peerIfindex, bits);
  }

  /** The master holds the union of its slaves' groups, and allmulti while one of them is ALLMULTI. */
  private syncMaster(port: PortPlace, p: PortMulticast): void {
    if (!this.holdMasters) return;
    const want = new Set<string>();
    let allmulti = false;
    for (const s of p.slaves.values()) {
      for (const g of s.groups) want.add(g);
      allmulti ||= s.allmulti;
    }
    try {
      if (p.fd !== null && (p.fdNetns !== port.master.netns || p.fdIfindex !== port.master.ifindex)) {
        // the master moved or was replaced: what the socket held went with the old device
        this.closeSocket(p);
      }
      if (p.fd === null) {
        if (want.size === 0 && !allmulti) return;
        const ns = port.master.netns;
        p.fd = ns === null ? packetSocket() : withNetns(netnsPath(ns), () => packetSocket());
        p.fdNetns = ns;
        p.fdIfindex = port.master.ifindex;
      }
      const fd = p.fd;
      for (const g of want) {
        if (p.held.has(g)) continue;
        packetMembership(fd, p.fdIfindex, PACKET_MR_MULTICAST, Buffer.from(g, 'hex'), true);
        p.held.add(g);
      }
      for (const g of [...p.held]) {
        if (want.has(g)) continue;
        packetMembership(fd, p.fdIfindex, PACKET_MR_MULTICAST, Buffer.from(g, 'hex'), false);
        p.held.delete(g);
      }
      if (allmulti !== p.allmulti) {
        packetMembership(fd, p.fdIfindex, PACKET_MR_ALLMULTI, null, allmulti);
        p.allmulti = allmulti;
      }
    } catch (e) {
      // the master went meanwhile (ENODEV) or its namespace did: the resync judges the port
      this.log(`master ${port.master.name}: slaves' multicast not synced: ${errorLine(e)}`);
      this.closeSocket(p);
    }
  }

  private closeSocket(p: PortMulticast): void {
    if (p.fd !== null) closeFd(p.fd);
    p.fd = null;
    p.held.clear();
    p.allmulti = false;
  }
}
