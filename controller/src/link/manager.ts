// SPDX-License-Identifier: GPL-2.0-only
/**
 * The link manager: `link add/del/set/show` with the kernel driver's rules
 * (semantics §1): per-port mode and flags with last-writer-wins, l3 as the
 * default mode, the master's MAC and MTU on every slave, dev_id per slave,
 * the master's namespace anywhere. Every multi-step change runs under the
 * state lock and is undone step by step when a later step fails, so a failed
 * command leaves no veth, map entry or pin behind.
 */
import { basename } from 'node:path';
import { IvbError, EBUSY, EEXIST, EINVAL, ENODEV, errorLine, isIvbError } from '../errors.js';
import { pinRoot } from '../paths.js';
import { IFF_NOARP, IFF_UP, namespaceFile, tolerating, withRtnl } from '../netlink/rtnl.js';
import { sysctlRead, sysctlWrite as sysctlSet } from '../netlink/sysctl.js';
import { getLink, listAddrs, type IpLink } from '../netlink/links.js';
import { netnsExists, netnsInodeOfPath, netnsPath, initNetnsInode, type NetnsRef } from '../netlink/netns.js';
import {
  allocPortId,
  listPorts,
  readPort,
  removePort,
  withLock,
  writePort,
  type Mode,
  type PortFlag,
  type PortRecord,
  type SlaveRecord,
} from '../state.js';
import {
  attachPeer,
  setPeerEgress,
  clearGuard,
  createPortDatapath,
  ensureGuard,
  removeGuard,
  setGuard,
  deleteFanoutSlot,
  deleteSlaveEntry,
  destroyPortDatapath,
  detachPeer,
  portAddrs,
  SLAVE_SAME_NETNS,
  unlearnAddr,
  learnAddrIfRoom,
  forgetUnowned,
  writeFanoutSlot,
  writePortEntry,
  writeSlaveEntry,
  portEntryOf,
  setMasterAddrs,
  readSlaveEntry,
  learnAddr,
  renamePeerPins,
} from '../bpf/datapath.js';
import { giveSlaveLinkLocal, slaveLinkLocal } from './link-local.js';
import { masterLinkIfindex, recordedNetnsReachable } from './identity.js';
import { identifySlave, locateSlaves, parseAlias, slaveAlias, type SlaveLocation } from './slaves.js';
import {
  enterL3s,
  ensurePortRules,
  leaveL3s,
  removeForwardAccepts,
  removePortRules,
  syncForwardAccepts,
  teardownHostnet,
} from './hostnet.js';

export const MODES: readonly Mode[] = ['l2', 'l3', 'l3s'];
export const FLAGS: readonly PortFlag[] = ['bridge', 'private', 'vepa'];
/** the largest dev_id the kernel hands out (0xfffe and 0xffff are reserved) */
const MAX_DEV_ID = 0xfffd;

export interface LinkAddOptions {
  master: string;
  name: string;
  /** the namespace the command runs in (where MASTER is and SLAVE is created); null = init */
  netns: string | null;
  mode?: Mode;
  flag?: PortFlag;
  /** whether any ipvlan argument was given (iproute2 then always sends the flags) */
  typeArgs: boolean;
  mtu?: number;
  /**
   * Create the slave straight in this namespace (given by its file) instead
   * of NETNS: the CNI plugin's container, which may have no name. Its name
   * need only be free there.
   */
  slaveNetns?: { file: string };
}

function validateIfname(name: string): void {
  if (name.length === 0) throw new IvbError('IPVLAN_E_NAME', 'device name is empty', EINVAL);
  if (Buffer.byteLength(name) > 15) {
    throw new IvbError('IPVLAN_E_NAME', `"${name}" is not a valid ifname: longer than 15 bytes`, EINVAL);
  }
  if (name === '.' || name === '..' || /[/:\s]/.test(name)) {
    throw new IvbError('IPVLAN_E_NAME', `"${name}" is not a valid ifname`, EINVAL);
  }
}

function checkNetns(netns: string | null): void {
  if (!netnsExists(netns)) {
    throw new IvbError('IPVLAN_E_NETNS', `Cannot open network namespace "${netns}": No such file or directory`);
  }
}

function nsIno(netns: string | null): number {
  return netns === null ? initNetnsInode() : netnsInodeOfPath(netnsPath(netns));
}

interface ResolvedMaster {
  link: IpLink;
  netns: string | null;
  /** the existing port when MASTER is already one (or is one of its slaves) */
  port: PortRecord | null;
}

function resolveMaster(master: string, netns: string | null): ResolvedMaster {
  const link = getLink(master, netns);
  if (!link) throw new IvbError('IPVLAN_E_NO_DEVICE', `Cannot find device "${master}"`, ENODEV);
  const ports = listPorts();
  // a slave as "master": the kernel attaches the new slave to that slave's real master
  const alias = parseAlias(link.ifalias);
  if (alias) {
    const found = identifySlave(master, netns, ports);
    if (found) {
      const real = getLink(found.port.master.name, found.port.master.netns);
      if (!real) throw new IvbError('IPVLAN_E_NO_DEVICE', `master of ${master} is gone`, ENODEV);
      return { link: real, netns: found.port.master.netns, port: found.port };
    }
  }
  if (link.flags.includes('LOOPBACK') || link.link_type !== 'ether') {
    throw new IvbError('IPVLAN_E_BAD_MASTER', `${master}: Master is either lo or non-ether device`, EINVAL);
  }
  const ino = nsIno(netns);
  if (ports.some((p) => p.master.netnsIno === ino && p.slaves.some((s) => s.peerIfindex === link.ifindex))) {
    throw new IvbError('IPVLAN_E_BAD_MASTER', `${master} is an ipvlan-bpf slave's host-side peer`, EINVAL);
  }
  if (link.master || link.linkinfo?.info_slave_kind) {
    throw new IvbError('IPVLAN_E_BUSY', `${master}: Device is already in use (it is a port of ${link.master ?? 'another device'})`, EBUSY);
  }
  // a record naming this namespace inode and ifindex is this master's only
  // while its pinned link is still attached to the device: the kernel reuses
  // both numbers once a namespace is deleted and made again
  let port: PortRecord | null = null;
  for (const p of ports) {
    if (p.master.netnsIno !== ino || p.master.ifindex !== link.ifindex) continue;
    if (masterLinkIfindex(p.portId) === link.ifindex) port = p;
    else portDelete(p);
  }
  return { link, netns, port };
}

type Undo = () => void;

function runUndo(stack: Undo[]): void {
  for (const u of stack.reverse()) {
    try {
      u();
    } catch (e) {
      // keep undoing the rest; the first error is the one the caller reports
      process.stderr.write(`ipvlan-bpf: undo step failed: ${errorLine(e)}\n`);
    }
  }
}

function nextDevId(port: PortRecord): number {
  const used = new Set(port.slaves.map((s) => s.devId));
  let id = port.nextDevId;
  for (let i = 0; i < MAX_DEV_ID; i++) {
    if (id < 1 || id > MAX_DEV_ID) id = 1;
    if (!used.has(id)) return id;
    id++;
  }
  throw new IvbError('IPVLAN_E_BUSY', `port of ${port.master.name} has no free dev_id`, EBUSY);
}


/**
 * Deletes link NAME of NETNS through rtnetlink; one that is gone already (or
 * whose namespace is) is no error: what was to be removed is not there.
 * With IFINDEX, only the link of that name that still has that index: a
 * name given again to a new link (a peer name comes back with its dev_id)
 * is not the one to delete.
 */
export function deleteLinkIfThere(name: string, netns: string | null, ifindex?: number): void {
  try {
    if (ifindex !== undefined) {
      const now = getLink(name, netns);
      if (!now || now.ifindex !== ifindex) return;
    }
    withRtnl(netns, (w) => w.delLink(name));
  } catch (e) {
    if (isIvbError(e, 'IPVLAN_E_IPROUTE') && (e.errno === ENODEV || /Cannot open network namespace/.test(e.message))) return;
    throw e;
  }
}

/** The NOARP bit a slave has in MODE, as the kernel sets it: on in l3/l3s, off in l2. */
function noarpFlags(mode: Mode): { flags: number; mask: number } {
  return { flags: mode === 'l2' ? 0 : IFF_NOARP, mask: IFF_NOARP };
}

/** Sets NOARP on slaves as the kernel does per mode: on in l3/l3s, off in l2. */
function applyNoarp(port: PortRecord, locs: SlaveLocation[]): void {
  for (const loc of locs) {
    if (loc.netns === undefined || !loc.link) continue;
    const name = loc.link.ifname;
    try {
      withRtnl(loc.netns, (w) => w.setLink(name, noarpFlags(port.mode)));
    } catch (e) {
      // a slave deleted or moved meanwhile: the next resync finds it where it is
      if (!isIvbError(e, 'IPVLAN_E_IPROUTE')) throw e;
    }
  }
}

/**
 * The master device's own addresses, as the datapath keys them. A failed read
 * throws (never an empty list: the caller would forget every address).
 */
export function masterAddrs(name: string, netns: string | null): Array<{ family: 4 | 6; addr: string; prefixlen: number }> {
  const mine = listAddrs(netns).find((l) => l.ifname === name);
  if (!mine) throw new IvbError('IPVLAN_E_NO_DEVICE', `Cannot find device "${name}"`, ENODEV);
  return (mine.addr_info ?? []).map((i) => ({ family: i.family === 'inet' ? 4 : 6, addr: i.local, prefixlen: i.prefixlen }));
}

/** The alias of our host-side peers: which state (pin subtree) they belong to, for gc. */
export function peerAlias(): string {
  return `ipvlan-bpf-peer:${basename(pinRoot())}`;
}

/**
 * The master passes traffic: admin-up with its carrier. The kernel gives
 * its slaves the master's carrier (netif_stacked_transfer_operstate); ours
 * get it through their host-side peer, whose admin state a veth's carrier
 * follows: peer down, slave NO-CARRIER / LOWERLAYERDOWN (and M-DOWN shown
 * for a slave in the master's namespace, whose link is the peer).
 */
export function masterCarries(master: IpLink): boolean {
  return master.flags.includes('UP') && master.flags.includes('LOWER_UP');
}

/** Sets PEERS (host-side peer names in the master's namespace) up or down, over one rtnetlink socket. */
export function setPeersCarrier(peers: readonly string[], carries: boolean, netns: string | null): void {
  if (peers.length === 0) return;
  withRtnl(netns, (w) => {
    for (const p of peers) {
      // a peer deleted meanwhile must not stop the others
      tolerating(() => w.setLink(p, { flags: carries ? IFF_UP : 0, mask: IFF_UP }), ENODEV);
    }
  });
}

/**
 * `upgrade`: peers made by a build that set only their IPv6
 * `force_forwarding` get their own `forwarding` too (setupPeer says why).
 * What was done, one line a peer.
 */
export function upgradePeerForwarding(ports: readonly PortRecord[]): string[] {
  const done: string[] = [];
  for (const p of ports) {
    // a master whose namespace went is gc's
    if (!netnsExists(p.master.netns)) continue;
    for (const s of p.slaves) {
      const key = `net.ipv6.conf.${s.peerName}.forwarding`;
      // a device gone meanwhile (null) is gc's; a kernel without force_forwarding had all.forwarding set
      if (sysctlRead(`net.ipv6.conf.${s.peerName}.force_forwarding`, p.master.netns) !== '1') continue;
      if (sysctlRead(key, p.master.netns) !== '0') continue;
      if (sysctlSet(key, '1', p.master.netns)) done.push(`port ${p.portId}: IPv6 forwarding on peer ${s.peerName}`);
    }
  }
  return done;
}

function setupPeer(peerName: string, netns: string | null): void {
  // the master's namespace routes what l3/l3s slaves send: forwarding on this device only
  sysctlSet(`net.ipv4.conf.${peerName}.forwarding`, '1', netns);
  sysctlSet(`net.ipv4.conf.${peerName}.rp_filter`, '0', netns);
  sysctlSet(`net.ipv4.conf.${peerName}.accept_local`, '1', netns);
  sysctlSet(`net.ipv4.conf.${peerName}.send_redirects`, '0', netns);
  if (sysctlSet(`net.ipv6.conf.${peerName}.force_forwarding`, '1', netns)) {
    // the device's own IPv6 `forwarding` as well: the datapath asks the FIB
    // as this device's forward path will (bpf_fib_lookup), and the helper
    // checks `forwarding`, not `force_forwarding`; without it every answer is
    // "forwarding disabled" and a shim's address never looks local
    sysctlSet(`net.ipv6.conf.${peerName}.forwarding`, '1', netns);
  } else {
    // kernels before 6.17 have no per-device IPv6 forwarding switch
    sysctlSet('net.ipv6.conf.all.forwarding', '1', netns);
  }
  sysctlSet(`net.ipv6.conf.${peerName}.accept_ra`, '0', netns);
  // one request: our alias (gc knows its peers by it); routed to (l3s
  // ingress) without ARP/ND: the slave is NOARP, the peer's own MAC (the
  // master's) is the slave's; up even when the master has no carrier:
  // without the agent nothing would bring it up again; the agent mirrors the
  // master's carrier (learner.ts)
  withRtnl(netns, (w) => w.setLink(peerName, { alias: peerAlias(), flags: IFF_NOARP | IFF_UP, mask: IFF_NOARP | IFF_UP, addrGenModeNone: true }));
}

export interface LinkAddResult {
  port: PortRecord;
  slave: SlaveRecord;
}

export function linkAdd(o: LinkAddOptions): LinkAddResult {
  validateIfname(o.name);
  checkNetns(o.netns);
  if (o.mode !== undefined && !MODES.includes(o.mode)) {
    throw new IvbError('IPVLAN_E_MODE', `unknown mode "${String(o.mode)}" (l2, l3 or l3s)`, EINVAL);
  }
  if (o.flag !== undefined && !FLAGS.includes(o.flag)) {
    throw new IvbError('IPVLAN_E_FLAG', `unknown flag "${String(o.flag)}" (bridge, private or vepa)`, EINVAL);
  }
  return withLock(() => {
    const m = resolveMaster(o.master, o.netns);
    // where the slave is made: where the command runs, or the namespace given for it
    const at: NetnsRef = o.slaveNetns ?? o.netns;
    if (getLink(o.name, at)) {
      throw new IvbError('IPVLAN_E_EXISTS', `Device "${o.name}" already exists`, EEXIST);
    }
    const undo: Undo[] = [];
    try {
      let port = m.port;
      const created = port === null;
      if (!port) {
        port = {
          portId: allocPortId(),
          master: {
            name: m.link.ifname,
            ifindex: m.link.ifindex,
            netns: m.netns,
            netnsIno: nsIno(m.netns),
            mac: m.link.address ?? '00:00:00:00:00:00',
            mtu: m.link.mtu,
          },
          mode: 'l3',
          flag: 'bridge',
          // on unless asked for the kernel's exact behaviour
          sourceValidation: process.env.IPVLAN_BPF_SOURCE_VALIDATION !== '0',
          slaves: [],
          nextDevId: 1,
        };
        const p = port;
        writePortEntry(p.portId, portEntryOf(p));
        undo.push(() => destroyPortDatapath(p.portId));
        createPortDatapath(p.portId, p.master.ifindex, p.master.netns);
        setMasterAddrs(p.portId, masterAddrs(p.master.name, p.master.netns));
        undo.push(() => removePortRules(p.portId, p.master.netns));
        ensurePortRules(p);
        writePort(p);
        undo.push(() => removePort(p.portId));
      }
      const p = port;
      const devId = nextDevId(p);
      const peerName = `ivb${p.portId}x${devId}`;
      if (getLink(peerName, p.master.netns)) deleteLinkIfThere(peerName, p.master.netns);
      const mtu = o.mtu ?? p.master.mtu;
      const masterMac = p.master.mac;
      // both ends by one request in the master's namespace, the slave's created straight where the command runs
      withRtnl(p.master.netns, (w) =>
        w.addVeth(
          peerName,
          { mtu: 65535, mac: masterMac },
          { name: o.name, mtu, mac: masterMac, netnsPath: o.slaveNetns?.file ?? (o.netns !== p.master.netns ? namespaceFile(o.netns) : undefined) },
        ),
      );
      undo.push(() => deleteLinkIfThere(peerName, p.master.netns));
      const peer = getLink(peerName, p.master.netns);
      if (!peer) throw new IvbError('IPVLAN_E_IPROUTE', `veth peer ${peerName} vanished`);
      setupPeer(peerName, p.master.netns);
      // the kernel's dev_id link-local from the start (a veth would derive the
      // master's own from the shared MAC): no frame of the slave ever comes
      // from an address the datapath does not know. A slave moved to another
      // namespace loses it there; the agent gives it back when it comes up.
      // (where IPv6 is disabled there is none to give: the slave goes without)
      const linkLocal = slaveLinkLocal(masterMac, devId);
      // the alias, and ARP as the port's mode wants it (link add always sets the mode: l3 unless given)
      withRtnl(at, (w) => w.setLink(o.name, { alias: slaveAlias(p.portId, peerName), ...noarpFlags(o.mode ?? 'l3') }));
      const slaveLink = getLink(o.name, at);
      if (
        slaveLink &&
        giveSlaveLinkLocal({ netns: at, ifname: o.name, ifindex: slaveLink.ifindex, want: linkLocal, present: [] }) &&
        learnAddrIfRoom(p.portId, peer.ifindex, { family: 6, addr: linkLocal, prefixlen: 64 })
      ) {
        undo.push(() => unlearnAddr(p.portId, { family: 6, addr: linkLocal }));
      }
      if (ensureGuard()) setGuard(p.master.netnsIno, p.master.ifindex, p.portId, 0);
      const slaveNsIno = o.slaveNetns ? netnsInodeOfPath(o.slaveNetns.file) : nsIno(o.netns);
      if (slaveLink) setGuard(slaveNsIno, slaveLink.ifindex, p.portId, peer.ifindex);
      undo.push(() => clearGuard(p.portId, peer.ifindex));
      forgetUnowned(p.portId);
      const rec: SlaveRecord = { name: o.name, peerName, peerIfindex: peer.ifindex, devId, slot: p.slaves.length };
      writeSlaveEntry(p.portId, rec.peerIfindex, { devId, flags: slaveNsIno === p.master.netnsIno ? SLAVE_SAME_NETNS : 0, mtu });
      undo.push(() => deleteSlaveEntry(p.portId, rec.peerIfindex));
      writeFanoutSlot(p.portId, rec.slot, rec.peerIfindex);
      undo.push(() => deleteFanoutSlot(p.portId, rec.slot));
      attachPeer(p.portId, rec.peerIfindex, p.master.netns);
      undo.push(() => detachPeer(p.portId, rec.peerIfindex));
      p.slaves.push(rec);
      undo.push(() => removeForwardAccepts(p.master.netns, (peer) => peer === rec.peerName));
      syncForwardAccepts(p);
      p.nextDevId = devId + 1;
      // ipvlan_link_new always sets the port mode (l3 when none was sent); flags only when sent
      const modeBefore = p.mode;
      p.mode = o.mode ?? 'l3';
      if (o.typeArgs || created) p.flag = o.flag ?? 'bridge';
      const l3sBefore = p.l3s;
      undo.push(() => {
        if (!l3sBefore) leaveL3s(p);
      });
      applyModeHostnet(p);
      writePortEntry(p.portId, portEntryOf(p));
      writePort(p);
      // a mode change reaches every slave, wherever it lives; the new one has it already
      if (!created && p.mode !== modeBefore) applyNoarp(p, locateSlaves(p));
      return { port: p, slave: rec };
    } catch (e) {
      runUndo(undo);
      if (listPorts().length === 0) removeGuard();
      if (m.port) {
        // the port existed before: put its map entry back as recorded
        const before = readPort(m.port.portId);
        if (before) writePortEntry(before.portId, portEntryOf(before));
      }
      throw e;
    }
  });
}

/** What the port's mode needs in the master's namespace: l3s forwarding on or off (hostnet.ts), peer_egress on its peers or not. */
function applyModeHostnet(port: PortRecord): void {
  if (port.mode === 'l3s') enterL3s(port);
  else leaveL3s(port);
  setPeerEgress(
    port.portId,
    port.slaves.map((s) => s.peerIfindex),
    port.master.netns,
    port.mode === 'l3s',
  );
}

/** Removes one slave from its port (maps, link pin, fan-out slot); deletes the port with its last slave. */
function removeSlave(port: PortRecord, rec: SlaveRecord, deleteVeth: () => void): void {
  for (const a of portAddrs(port.portId)) {
    if (a.peerIfindex === rec.peerIfindex) unlearnAddr(port.portId, a);
  }
  detachPeer(port.portId, rec.peerIfindex);
  clearGuard(port.portId, rec.peerIfindex);
  deleteSlaveEntry(port.portId, rec.peerIfindex);
  // keep the fan-out list dense: the last slot moves into the hole
  const last = port.slaves[port.slaves.length - 1];
  port.slaves = port.slaves.filter((s) => s !== rec);
  if (last && last !== rec) {
    last.slot = rec.slot;
    writeFanoutSlot(port.portId, last.slot, last.peerIfindex);
  }
  deleteFanoutSlot(port.portId, port.slaves.length);
  removeForwardAccepts(port.master.netns, (peer) => peer === rec.peerName);
  // the peer's routes go with the device
  deleteVeth();
  if (port.slaves.length === 0) {
    teardownHostnet(port);
    destroyPortDatapath(port.portId);
    removePort(port.portId);
    if (listPorts().length === 0) removeGuard();
  } else {
    writePortEntry(port.portId, portEntryOf(port));
    writePort(port);
  }
}

export function linkDel(name: string, netns: string | null): void {
  checkNetns(netns);
  withLock(() => {
    const link = getLink(name, netns);
    if (!link) throw new IvbError('IPVLAN_E_NO_DEVICE', `Cannot find device "${name}"`, ENODEV);
    const found = identifySlave(name, netns, listPorts());
    if (!found) throw new IvbError('IPVLAN_E_NOT_IPVLAN', `${name} is not an ipvlan-bpf slave`, EINVAL);
    removeSlave(found.port, found.record, () => deleteLinkIfThere(name, netns));
  });
}

/**
 * Deletes a whole port: every slave, wherever it lives, as deleting the master
 * does in the kernel. Works from a fresh read under the lock. When the
 * master's namespace is gone (or its name now stands for another one), its
 * peers went with it: only our own state (pins, map entries, record) is left
 * to remove, and nothing is done in a namespace that is not the port's.
 */
export function portDelete(port: PortRecord): void {
  withLock(() => {
    const fresh = readPort(port.portId);
    if (!fresh || fresh.master.netnsIno !== port.master.netnsIno || fresh.master.ifindex !== port.master.ifindex) return;
    if (recordedNetnsReachable(fresh)) {
      for (const loc of locateSlaves(fresh)) {
        removeSlave(fresh, loc.record, () => {
          // only our own peer (a recreated namespace may reuse the name)
          if (loc.peer) deleteLinkIfThere(loc.record.peerName, fresh.master.netns);
        });
      }
      teardownHostnet(fresh);
    } else {
      for (const rec of [...fresh.slaves]) forgetSlave(fresh, rec);
    }
    destroyPortDatapath(fresh.portId);
    removePort(fresh.portId);
    if (listPorts().length === 0) removeGuard();
  });
}

/** A slave's map entries and pins, for a slave whose devices went with its master's namespace. */
function forgetSlave(port: PortRecord, rec: SlaveRecord): void {
  detachPeer(port.portId, rec.peerIfindex);
  clearGuard(port.portId, rec.peerIfindex);
  deleteSlaveEntry(port.portId, rec.peerIfindex);
  port.slaves = port.slaves.filter((s) => s !== rec);
}

/**
 * The master moved to another namespace (`ip link set MASTER netns X`): the
 * kernel keeps its slaves, and so do we. Our host-side peers must live beside
 * the master (the datapath redirects between them by ifindex), so they move
 * with it; their TCX links follow the devices. What the old namespace had of
 * the port (rules, routes, accepts, l3s) is put back there and made again in
 * the new one. A peer whose ifindex changed on the way gets its map entries
 * and pins re-keyed. Under the lock, from a fresh read. Returns what it did.
 */
export function followMasterMove(portId: number, to: { netns: string | null; netnsIno: number; link: IpLink }): string[] {
  return withLock(() => {
    const port = readPort(portId);
    // already followed (by gc or the agent, whichever came first)
    if (!port || (port.master.netnsIno === to.netnsIno && port.master.netns === to.netns && port.master.ifindex === to.link.ifindex)) return [];
    const done: string[] = [];
    const from = port.master.netns;
    const fromReachable = recordedNetnsReachable(port);
    if (fromReachable) {
      // the master's own sysctls left with it: only rules and accepts remain
      delete port.l3s;
      removePortRules(port.portId, from);
      removeForwardAccepts(from, (peer) => peer.startsWith(`ivb${port.portId}x`));
    }
    const before = port.slaves.map((s) => ({ ...s }));
    for (const rec of port.slaves) {
      if (fromReachable) {
        const peer = getLink(rec.peerName, from);
        if (peer && peer.ifindex === rec.peerIfindex) {
          withRtnl(from, (w) => w.moveLink(peer.ifindex, namespaceFile(to.netns), rec.peerName, `link set dev ${rec.peerName} netns ${to.netns ?? 'init'}`));
        }
      }
      const moved = getLink(rec.peerName, to.netns);
      if (!moved || moved.ifalias !== peerAlias()) continue;
      setupPeer(rec.peerName, to.netns);
      if (moved.ifindex !== rec.peerIfindex) {
        rekeyPeer(port.portId, rec.peerIfindex, moved.ifindex);
        done.push(`peer ${rec.peerName}: ifindex ${rec.peerIfindex} -> ${moved.ifindex}`);
        rec.peerIfindex = moved.ifindex;
      }
    }
    port.master = {
      ...port.master,
      name: to.link.ifname,
      ifindex: to.link.ifindex,
      netns: to.netns,
      netnsIno: to.netnsIno,
      mac: to.link.address ?? port.master.mac,
      mtu: to.link.mtu,
    };
    for (const rec of port.slaves) {
      const was = before.find((b) => b.peerName === rec.peerName);
      if (was && was.peerIfindex !== rec.peerIfindex) writeFanoutSlot(port.portId, rec.slot, rec.peerIfindex);
    }
    writePortEntry(port.portId, portEntryOf(port));
    ensurePortRules(port);
    syncForwardAccepts(port);
    applyModeHostnet(port);
    writePort(port);
    done.unshift(`master ${port.master.name} moved ${from ?? 'init'} -> ${to.netns ?? 'init'}: ${port.slaves.length} slave(s) kept, peers moved with it`);
    return done;
  });
}

/** A peer's ifindex changed (moved into a namespace where it was taken): its entries and pins follow. */
function rekeyPeer(portId: number, oldIfindex: number, newIfindex: number): void {
  const entry = readSlaveEntry(portId, oldIfindex);
  if (entry) writeSlaveEntry(portId, newIfindex, entry);
  for (const a of portAddrs(portId)) {
    if (a.peerIfindex === oldIfindex) learnAddr(portId, newIfindex, a);
  }
  deleteSlaveEntry(portId, oldIfindex);
  clearGuard(portId, oldIfindex);
  renamePeerPins(portId, oldIfindex, newIfindex);
}

export interface LinkSetOptions {
  name: string;
  netns: string | null;
  mode?: Mode;
  flag?: PortFlag;
  typeArgs: boolean;
  /** ours: `source-validation on|off` for the slave's whole port */
  sourceValidation?: boolean;
}

export function linkSet(o: LinkSetOptions): PortRecord {
  checkNetns(o.netns);
  return withLock(() => {
    if (!getLink(o.name, o.netns)) throw new IvbError('IPVLAN_E_NO_DEVICE', `Cannot find device "${o.name}"`, ENODEV);
    const found = identifySlave(o.name, o.netns, listPorts());
    if (!found) throw new IvbError('IPVLAN_E_NOT_IPVLAN', `${o.name} is not an ipvlan-bpf slave`, EINVAL);
    const port = found.port;
    if (o.sourceValidation !== undefined) {
      port.sourceValidation = o.sourceValidation;
      writePortEntry(port.portId, portEntryOf(port));
      writePort(port);
    }
    if (!o.typeArgs) return port;
    // iproute2 sends mode only when given, flags always once any ipvlan word is given
    if (o.mode) port.mode = o.mode;
    port.flag = o.flag ?? 'bridge';
    applyModeHostnet(port);
    writePortEntry(port.portId, portEntryOf(port));
    writePort(port);
    applyNoarp(port, locateSlaves(port));
    return port;
  });
}

export interface SlaveView {
  port: PortRecord;
  loc: SlaveLocation;
  addrs: Array<{ family: 4 | 6; addr: string; prefixlen: number }>;
}

/**
 * Slaves, as `ip link show`: `onlyNetns` (given with -n) restricts the list to
 * slaves that live in that namespace now; without it every slave is listed.
 */
export function linkShow(name: string | null, netns: string | null, onlyNetns = false): SlaveView[] {
  checkNetns(netns);
  const ports = listPorts();
  const out: SlaveView[] = [];
  let want: { portId: number; peerName: string } | null = null;
  if (name !== null) {
    const found = identifySlave(name, netns, ports);
    if (!found) {
      if (!getLink(name, netns)) throw new IvbError('IPVLAN_E_NO_DEVICE', `Device "${name}" does not exist.`, ENODEV);
      throw new IvbError('IPVLAN_E_NOT_IPVLAN', `${name} is not an ipvlan-bpf slave`, EINVAL);
    }
    want = { portId: found.port.portId, peerName: found.record.peerName };
  }
  for (const port of ports) {
    if (want && want.portId !== port.portId) continue;
    const addrs = portAddrs(port.portId);
    for (const loc of locateSlaves(port)) {
      if (want && loc.record.peerName !== want.peerName) continue;
      if (!want && onlyNetns && loc.netns !== netns) continue;
      out.push({
        port,
        loc,
        addrs: addrs
          .filter((a) => a.peerIfindex === loc.record.peerIfindex)
          .map((a) => ({ family: a.family, addr: a.addr, prefixlen: a.prefixlen })),
      });
    }
  }
  return out;
}

/** Forgets a slave whose veth pair is gone (its namespace was deleted). */
export function pruneSlave(portId: number, peerName: string, peerIfindex: number): void {
  withLock(() => {
    const port = readPort(portId);
    // by name and index: a slave deleted and made again gets the same peer name (its dev_id comes
    // back), and a prune decided from an older read must not take the new one
    const rec = port?.slaves.find((s) => s.peerName === peerName && s.peerIfindex === peerIfindex);
    if (!port || !rec) return;
    removeSlave(port, rec, () => deleteLinkIfThere(peerName, port.master.netns, peerIfindex));
  });
}
