// SPDX-License-Identifier: GPL-2.0-only
/**
 * Finding slaves wherever they live. A slave is the user's end of a veth pair;
 * our end (the host-side peer) stays in the master's namespace and knows,
 * through IFLA_LINK_NETNSID and IFLA_LINK, which namespace and ifindex its
 * partner has now — so a slave moved with plain `ip link set netns` is found
 * again from the master's side.
 */
import { getLink, listLinks, type IpLink } from '../netlink/links.js';
import { nsidNames } from '../netlink/rtnl.js';
import { isIvbError } from '../errors.js';
import type { PortRecord, SlaveRecord } from '../state.js';

/** The alias we put on a slave: how a slave is recognised from inside its namespace. */
const ALIAS_PREFIX = 'ipvlan-bpf:';

export function slaveAlias(portId: number, peerName: string): string {
  return `${ALIAS_PREFIX}${portId}:${peerName}`;
}

export function parseAlias(alias: string | undefined): { portId: number; peerName: string } | null {
  if (!alias || !alias.startsWith(ALIAS_PREFIX)) return null;
  const m = alias.slice(ALIAS_PREFIX.length).match(/^(\d+):([^\s:]+)$/);
  if (!m || !m[1] || !m[2]) return null;
  return { portId: Number(m[1]), peerName: m[2] };
}

export interface SlaveLocation {
  record: SlaveRecord;
  /** namespace the slave is in now: a name, null for init; undefined when it cannot be named */
  netns: string | null | undefined;
  ifindex: number;
  /** current link of the slave end, when its namespace could be read */
  link: IpLink | null;
  /** our host-side peer as the master's namespace sees it */
  peer: IpLink | null;
}

/** Where every slave of a port is now (one dump of the master's namespace, one per slave namespace). */
export function locateSlaves(port: PortRecord): SlaveLocation[] {
  const masterNs = port.master.netns;
  const peers = new Map<number, IpLink>();
  for (const l of listLinks(masterNs)) peers.set(l.ifindex, l);
  const names = nsidNames(masterNs);
  const dumps = new Map<string, IpLink[]>();
  const out: SlaveLocation[] = [];
  for (const rec of port.slaves) {
    const peer = peers.get(rec.peerIfindex) ?? null;
    if (!peer || peer.ifname !== rec.peerName) {
      out.push({ record: rec, netns: undefined, ifindex: 0, link: null, peer: null });
      continue;
    }
    let netns: string | null | undefined;
    let ifindex = peer.link_index ?? 0;
    if (peer.link_netnsid === undefined) {
      // same namespace: iproute2 names the partner instead of giving its index
      netns = masterNs;
      if (!ifindex && peer.link) ifindex = [...peers.values()].find((l) => l.ifname === peer.link)?.ifindex ?? 0;
    } else netns = names.get(peer.link_netnsid);
    let link: IpLink | null = null;
    if (netns !== undefined) {
      const key = netns ?? '';
      let dump = dumps.get(key);
      if (!dump) {
        try {
          dump = listLinks(netns);
        } catch (e) {
          // deleted since its nsid was named: its slaves read as unreadable (link null), never as gone
          if (!isIvbError(e, 'IPVLAN_E_IPROUTE')) throw e;
          dump = [];
        }
        dumps.set(key, dump);
      }
      link = dump.find((l) => l.ifindex === ifindex) ?? null;
    }
    out.push({ record: rec, netns, ifindex, link, peer });
  }
  return out;
}

/** The slave named `name` in namespace `netns`, if it is one of ours. */
export function identifySlave(
  name: string,
  netns: string | null,
  ports: PortRecord[],
): { port: PortRecord; record: SlaveRecord; link: IpLink } | null {
  const link = getLink(name, netns);
  if (!link) return null;
  const a = parseAlias(link.ifalias);
  if (!a) return null;
  const port = ports.find((p) => p.portId === a.portId);
  const record = port?.slaves.find((s) => s.peerName === a.peerName);
  if (!port || !record) return null;
  // the alias is only a hint (a namespace's owner can write it): the veth peer must be ours
  if (link.link_index !== undefined ? link.link_index !== record.peerIfindex : link.link !== record.peerName) return null;
  const peer = getLink(record.peerName, port.master.netns);
  if (!peer || peer.ifindex !== record.peerIfindex) return null;
  return { port, record, link };
}
