// SPDX-License-Identifier: GPL-2.0-only
/**
 * The agent's side of the slow path (bpf/lib/slowpath.h): frames a slave sent
 * from, or to a neighbour in its subnet at, an address no slave was known to
 * own. The kernel driver would have learned that address inside
 * `ip addr add`; we learn it from a netlink event a moment later, and the
 * datapath holds what falls into that moment here instead of judging it on a
 * stale table.
 *
 * For each held frame: the port is re-read unless that already happened
 * after the frame was held (so every change made before the slave sent it is
 * in the table), an address still nobody's is noted in ivb_unknown (the
 * datapath then takes its ordinary decision for it), and the frame is sent
 * again from the slave's end, where it meets the fresh table. A frame of a
 * slave whose namespace cannot be entered (unnamed) is lost, as before the
 * slow path existed; the address is noted so the next frame is not held.
 *
 * A heartbeat in ivb_slowpath_state tells the datapath an agent is reading:
 * without one nothing is held, so forwarding never waits on a dead agent.
 */
import { decodeIvbPunt, IvbDropReason, type IvbPunt } from '../../../maps/generated.js';
import { RingBuffer } from '../../../native/ringbuf.js';
import { withNetns } from '../../../native/libbpf.js';
import { closeFd, packetSocket, sendFrame } from '../../../native/libc.js';
import {
  addrOwner,
  bytesToAddr,
  markUnowned,
  mapsExist,
  readSlaveEntry,
  setSlowpathConsumer,
  slowpathRingPin,
  SLAVE_UP,
  SLAVE_SAME_NETNS,
} from '../bpf/datapath.js';
import { initNetnsPath, netnsInodeOfPath, netnsPath } from '../netlink/netns.js';
import { masterLinkLocal } from '../link/link-local.js';
import type { Family } from '../netlink/addr.js';
import { errorLine } from '../errors.js';

export type Log = (line: string) => void;

/** Where a slave's end is now, as the learner knows it after a fresh read. */
export interface SlaveEnd {
  netns: string | null;
  ifindex: number;
  /** the MAC every slave of the port shares */
  masterMac: string;
  masterNetns: string | null;
  masterIfindex: number;
  /** the port's mode: l2, l3 or l3s */
  mode: string;
}

/** What the slow path needs of the learner. */
export interface PortReader {
  /**
   * Makes the table as fresh as `heldAtNs` (the sender's own addresses for an
   * unknown source, the whole port otherwise); where the slave behind
   * `peerIfindex` is now (null: unknown).
   */
  freshSlave(portId: number, peerIfindex: number, heldAtNs: bigint, unknownSource: boolean): SlaveEnd | null | 'later';
}

/**
 * How long one heartbeat lets the datapath hold frames for us. A busy agent
 * (a resync on a loaded machine) answers late but answers; a killed one
 * costs at most this much of frames held in vain, and without an agent new
 * addresses are not learned anyway. After it the datapath decides as
 * without the agent.
 */
const HEARTBEAT_NS = 5_000_000_000n;
const HEARTBEAT_EVERY_MS = 500;
/** How often the ring is read: a held frame waits at most this long before its port is re-read. */
const POLL_EVERY_MS = 1;
/** Held frames waiting for a re-read the interval does not allow yet (the rest are lost, counted). */
const MAX_WAITING = 4096;
/** IPVLAN_BPF_SLOWPATH_TRACE=1: one log line per frame held or copied */
const TRACE = process.env.IPVLAN_BPF_SLOWPATH_TRACE === '1';

export interface SlowPathStats {
  held: number;
  /** frames from the veth's own link-local (the master's address), before the agent gave the slave the kernel's */
  discarded: number;
  resent: number;
  unowned: number;
  lost: number;
}

export class SlowPath {
  private ring: RingBuffer | null = null;
  private poll: NodeJS.Timeout | null = null;
  private beat: NodeJS.Timeout | null = null;
  /** packet sockets by namespace name, with the inode of the namespace each was opened in */
  private readonly sockets = new Map<string, { fd: number; ino: number }>();
  private batch: IvbPunt[] = [];
  private readonly lostLogged = new Set<number>();
  readonly stats: SlowPathStats = { held: 0, discarded: 0, resent: 0, unowned: 0, lost: 0 };

  constructor(
    private readonly ports: PortReader,
    private readonly log: Log,
  ) {}

  get running(): boolean {
    return this.ring !== null;
  }

  /** Starts once the datapath's maps exist (the first port creates them); true when running. */
  start(): boolean {
    if (this.ring) return true;
    if (!mapsExist()) return false;
    this.ring = RingBuffer.open(slowpathRingPin(), (b) => this.batch.push(decodeIvbPunt(b)));
    this.heartbeat();
    this.beat = setInterval(() => this.heartbeat(), HEARTBEAT_EVERY_MS);
    this.poll = setInterval(() => this.drain(), POLL_EVERY_MS);
    return true;
  }

  stop(): void {
    if (this.poll) clearInterval(this.poll);
    if (this.beat) clearInterval(this.beat);
    this.poll = this.beat = null;
    if (this.ring) {
      try {
        setSlowpathConsumer(0n);
      } catch (e) {
        this.log(`slow path: cannot clear the heartbeat: ${errorLine(e)}`);
      }
      this.ring.close();
      this.ring = null;
    }
    for (const s of this.sockets.values()) closeFd(s.fd);
    this.sockets.clear();
  }

  private heartbeat(): void {
    try {
      setSlowpathConsumer(process.hrtime.bigint() + HEARTBEAT_NS);
    } catch (e) {
      this.log(`slow path: heartbeat failed: ${errorLine(e)}`);
    }
  }

  /** Reads every held frame and answers each, or keeps it for the next round (also usable from tests). */
  drain(): void {
    if (!this.ring) return;
    try {
      this.ring.consume();
    } catch (e) {
      this.log(`slow path: reading the ring failed: ${errorLine(e)}`);
    }
    const todo = this.batch;
    this.batch = [];
    for (const p of todo) {
      try {
        if (this.answer(p)) continue;
        if (this.batch.length < MAX_WAITING) {
          this.batch.push(p);
          continue;
        }
        this.stats.lost++;
      } catch (e) {
        this.stats.lost++;
        this.log(`slow path: a frame of peer ${p.ifindex} was lost: ${errorLine(e)}`);
      }
    }
  }

  /** False when the frame has to wait for the next round. */
  private answer(p: IvbPunt): boolean {
    const end = this.ports.freshSlave(p.portId, p.ifindex, p.tsNs, p.reason === IvbDropReason.UNKNOWN_SOURCE);
    if (end === 'later') return false;
    if (TRACE) {
      const fam: Family = p.family === 4 ? 4 : 6;
      this.log(`slow path: port ${p.portId} peer ${p.ifindex} ${p.reason === IvbDropReason.UNKNOWN_SOURCE ? 'source' : p.reason === IvbDropReason.UNKNOWN_LOCAL_DEST ? 'local destination' : 'destination'} ${bytesToAddr(fam, p.addr)} (${p.len} bytes, slave ${end ? `${end.netns ?? 'init'}/${end.ifindex}` : 'unknown'})`);
    }
    this.stats.held++;
    const family: Family = p.family === 4 ? 4 : 6;
    const addr = bytesToAddr(family, p.addr);
    if (end && p.reason === IvbDropReason.UNKNOWN_SOURCE && family === 6 && addr === masterLinkLocal(end.masterMac)) {
      // a slave just up still has the veth's EUI-64 link-local, which is the
      // master's own address; its router solicitation or MLD report is not
      // an attack: the re-read gave it the kernel's dev_id link-local, from
      // which its stack sends them again, and this one is let go
      this.stats.discarded++;
      return true;
    }
    const owner = addrOwner(p.portId, { family, addr });
    if (p.reason === IvbDropReason.UNKNOWN_DEST) {
      // a copy: the original took its ordinary way; only a slave that owns
      // the address after all gets it
      const ownerEntry = owner !== null ? readSlaveEntry(p.portId, owner) : null;
      if (owner === null || !ownerEntry || !(ownerEntry.flags & SLAVE_UP)) {
        markUnowned(p.portId, family, p.addr, process.hrtime.bigint());
        this.stats.unowned++;
        return true;
      }
      if (!end) {
        this.stats.lost++;
        return true;
      }
      const copy = Buffer.from(p.frame.subarray(0, p.len));
      if (p.ifindex === end.masterIfindex) {
        // from the wire: into the slave, from its host peer (a shim's IPv4
        // was taken by the master's stack, which it shares)
        if ((ownerEntry.flags & SLAVE_SAME_NETNS) && originalReachedMasterStack(copy, 'l2')) {
          this.stats.unowned++;
          return true;
        }
        sendFrame(this.socketIn(end.masterNetns), owner, copy);
        this.stats.resent++;
        return true;
      }
      if ((ownerEntry.flags & SLAVE_SAME_NETNS) && originalReachedMasterStack(copy, end.mode)) {
        // a shim slave shares the master's stack, which took the original
        this.stats.unowned++;
        return true;
      }
      fixL4Checksum(copy);
      sendFrame(this.socketIn(end.netns), end.ifindex, copy);
      this.stats.resent++;
      return true;
    }
    // a held frame. Unknown source: nobody's after a fresh read, and the frame
    // sent again is dropped as spoofed. Unknown local destination: sent again
    // whoever owns it, into the fresh table; a note keeps an address nobody
    // owns from being held twice.
    const resolved =
      p.reason === IvbDropReason.UNKNOWN_LOCAL_DEST
        ? owner !== null && ((readSlaveEntry(p.portId, owner)?.flags ?? 0) & SLAVE_UP) !== 0
        : owner === p.ifindex;
    if (!resolved) {
      markUnowned(p.portId, family, p.addr, process.hrtime.bigint());
      this.stats.unowned++;
    }
    if (!end) {
      this.stats.lost++;
      if (!this.lostLogged.has(p.ifindex)) {
        this.lostLogged.add(p.ifindex);
        this.log(`slow path: cannot send again for peer ${p.ifindex} (its namespace cannot be entered): its first frames from new addresses are lost`);
      }
      return true;
    }
    const frame = Buffer.from(p.frame.subarray(0, p.len));
    fixL4Checksum(frame);
    sendFrame(this.socketIn(end.netns), end.ifindex, frame);
    this.stats.resent++;
    return true;
  }

  /**
   * A packet socket in the namespace that has this name now. A namespace
   * deleted and made again under the same name (the oracle does it for every
   * configuration, users do it) is another namespace: a socket of the old one
   * would send into it (ENXIO, or a device that happens to have the ifindex),
   * so a socket is reused only while the name still leads to its inode.
   */
  private socketIn(netns: string | null): number {
    const key = netns ?? '';
    const path = netns === null ? initNetnsPath() : netnsPath(netns);
    const ino = netnsInodeOfPath(path);
    const cached = this.sockets.get(key);
    if (cached && cached.ino === ino) return cached.fd;
    if (cached) {
      closeFd(cached.fd);
      this.sockets.delete(key);
    }
    const fd = withNetns(path, () => packetSocket());
    this.sockets.set(key, { fd, ino });
    return fd;
  }
}

/**
 * Whether a slave's frame to an unowned destination reached a shim slave's
 * socket on its ordinary way: IPv4 in l2, which goes up the master's stack
 * (the kernel's dev_forward_skb) and is taken there for any local address.
 * Not IPv6 (measured: the master's stack does not deliver it for an address
 * of the shim device), not IPv4 in l3 (the oif-pinned route takes it out of
 * the master), never ARP (neighbour state is per device).
 */
function originalReachedMasterStack(frame: Buffer, mode: string): boolean {
  return frame.length >= 14 && frame.readUInt16BE(12) === 0x0800 && mode === 'l2';
}

function sum16(b: Buffer, start: number, end: number, acc: number): number {
  for (let i = start; i + 1 < end; i += 2) acc += b.readUInt16BE(i);
  if ((end - start) & 1) acc += b[end - 1]! << 8;
  return acc;
}

function fold(acc: number): number {
  while (acc > 0xffff) acc = (acc & 0xffff) + (acc >>> 16);
  return acc;
}

/**
 * A local socket's TCP or UDP frame leaves a veth with its checksum to be
 * finished by the device (CHECKSUM_PARTIAL: only the pseudo-header sum is in
 * place); copied out of the datapath it has lost that mark, so it is finished
 * here before the frame is sent again. Anything else is left as it is.
 */
function fixL4Checksum(frame: Buffer): void {
  if (frame.length < 14) return;
  const etherType = frame.readUInt16BE(12);
  let l4 = 0;
  let proto = 0;
  let acc = 0;
  let l4len = 0;
  if (etherType === 0x0800 && frame.length >= 34) {
    const ihl = (frame[14]! & 0x0f) * 4;
    const frag = frame.readUInt16BE(20);
    if (ihl < 20 || (frag & 0x3fff) !== 0) return; // fragments: the checksum covers the whole datagram
    proto = frame[23]!;
    l4 = 14 + ihl;
    l4len = Math.min(frame.readUInt16BE(16), frame.length - 14) - ihl;
    acc = sum16(frame, 26, 34, 0) + proto + l4len;
  } else if (etherType === 0x86dd && frame.length >= 54) {
    proto = frame[20]!;
    l4 = 54;
    l4len = Math.min(frame.readUInt16BE(18), frame.length - 54);
    acc = sum16(frame, 22, 54, 0) + proto + l4len;
  } else {
    return;
  }
  const at = proto === 6 ? 16 : proto === 17 ? 6 : -1;
  if (at < 0 || l4len < at + 2 || l4 + l4len > frame.length) return;
  // IPv4 UDP without a checksum stays without one
  if (proto === 17 && etherType === 0x0800 && frame.readUInt16BE(l4 + at) === 0) return;
  frame.writeUInt16BE(0, l4 + at);
  let c = ~fold(sum16(frame, l4, l4 + l4len, acc)) & 0xffff;
  if (c === 0 && proto === 17) c = 0xffff;
  frame.writeUInt16BE(c, l4 + at);
}
