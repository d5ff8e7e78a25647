// SPDX-License-Identifier: GPL-2.0-only
/**
 * A port's identity is its master device, not the names in its record. The
 * TCX link pinned on the master (link_master) is bound to that very device:
 * it follows it into another namespace (reporting its ifindex there) and goes
 * defunct (ifindex 0) when the device is destroyed. So the pin says whether
 * the master lives, without trusting names, namespace inodes (the kernel
 * reuses them) or ifindexes (a recreated namespace hands out the same ones).
 * Where it lives is then found by that ifindex among the namespaces we can
 * name.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { closeFd } from '../../../native/libc.js';
import { linkInfo, objGet } from '../../../native/libbpf.js';
import { IvbError } from '../errors.js';
import { portPinDir } from '../paths.js';
import { listLinks, type IpLink } from '../netlink/links.js';
import { NETNS_RUN_DIR, initNetnsInode, netnsInodeOfPath, netnsPath } from '../netlink/netns.js';
import type { PortRecord } from '../state.js';
import { parseAlias } from './slaves.js';

export type MasterWhere =
  /** found: where it is now (netns/ifindex/name may differ from the record: it moved or was renamed) */
  | { state: 'here'; netns: string | null; netnsIno: number; link: IpLink }
  /** the device is destroyed (or the port never got its datapath): the port is to be deleted */
  | { state: 'gone'; why: string }
  /** alive, but in no namespace we can name (moved to an unnamed one): keep everything as it is */
  | { state: 'unreachable'; ifindex: number };

/** The ifindex the master's TCX link is attached to now: 0 when the device is gone, null without the pin. */
export function masterLinkIfindex(portId: number): number | null {
  const pin = join(portPinDir(portId), 'link_master');
  if (!existsSync(pin)) return null;
  let fd: number;
  try {
    fd = objGet(pin);
  } catch (e) {
    // removed between the check and the open (a concurrent delete)
    if (!existsSync(pin)) return null;
    throw e;
  }
  try {
    return linkInfo(fd).ifindex;
  } finally {
    closeFd(fd);
  }
}

/** Whether NETNS (a recorded name) still names the namespace whose inode was recorded. */
export function recordedNetnsReachable(port: PortRecord): boolean {
  const ns = port.master.netns;
  if (ns === null) return true;
  try {
    return netnsInodeOfPath(netnsPath(ns)) === port.master.netnsIno;
  } catch (e) {
    if (e instanceof IvbError && e.code === 'IPVLAN_E_NETNS') return false;
    throw e;
  }
}

function namedNamespaces(): string[] {
  try {
    return readdirSync(NETNS_RUN_DIR);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
}

/** The links of NS, or null when NS cannot be read (deleted meanwhile). */
function linksOf(ns: string | null): IpLink[] | null {
  try {
    return listLinks(ns);
  } catch (e) {
    if (e instanceof IvbError && e.code === 'IPVLAN_E_IPROUTE') return null;
    throw e;
  }
}

/** A device that may be the master: not one of our slaves or peers (they share its MAC). */
function candidate(l: IpLink, ifindex: number): boolean {
  return l.ifindex === ifindex && !parseAlias(l.ifalias) && !(l.ifalias ?? '').startsWith('ipvlan-bpf-peer:') && l.link_type === 'ether';
}

/** Where the port's master is now (see MasterWhere). */
export function locateMaster(port: PortRecord): MasterWhere {
  const ifindex = masterLinkIfindex(port.portId);
  if (ifindex === null) return { state: 'gone', why: 'its datapath pins are gone' };
  if (ifindex === 0) return { state: 'gone', why: 'the device was destroyed' };
  const order: Array<string | null> = [];
  if (recordedNetnsReachable(port)) order.push(port.master.netns);
  for (const ns of [null, ...namedNamespaces()]) if (!order.includes(ns)) order.push(ns);
  let fallback: MasterWhere | null = null;
  for (const ns of order) {
    const links = linksOf(ns);
    const found = links?.find((l) => candidate(l, ifindex));
    if (!found) continue;
    let ino: number;
    try {
      ino = ns === null ? initNetnsInode() : netnsInodeOfPath(netnsPath(ns));
    } catch (e) {
      if (e instanceof IvbError && e.code === 'IPVLAN_E_NETNS') continue;
      throw e;
    }
    const where: MasterWhere = { state: 'here', netns: ns, netnsIno: ino, link: found };
    // the same ifindex may exist in several namespaces: the recorded MAC
    // decides; only in its own namespace may the master have a new MAC
    // (followed by the learner), elsewhere a stranger must not be taken for it
    if (found.address === port.master.mac) return where;
    if (ns === port.master.netns && ino === port.master.netnsIno) fallback ??= where;
  }
  return fallback ?? { state: 'unreachable', ifindex };
}

/** Whether WHERE differs from the record's namespace (the master was moved). */
export function masterMoved(port: PortRecord, where: MasterWhere & { state: 'here' }): boolean {
  return where.netnsIno !== port.master.netnsIno || where.netns !== port.master.netns;
}
