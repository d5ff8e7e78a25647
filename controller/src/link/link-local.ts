// SPDX-License-Identifier: GPL-2.0-only
/**
 * A slave's IPv6 link-local, as the kernel driver gives it, and the one
 * fix-up that puts it on a veth slave wherever it lives.
 *
 * An ipvlan slave shares its master's MAC, and the kernel folds the slave's
 * dev_id into its EUI-64 (addrconf_ifid_eui48 with dev_id), so slaves still
 * get distinct link-locals. A veth would derive the master's own from the
 * shared MAC: we stop address generation on it and give it the kernel's.
 * `link add`, the CNI plugin and the agent (a slave that came up in another
 * namespace, or was given the master's by the kernel) all do it here.
 */
import { addrBytes, bytesToAddr } from '../netlink/addr.js';
import { EADDRNOTAVAIL, EEXIST, isIvbError } from '../errors.js';
import { tolerating, withRtnl } from '../netlink/rtnl.js';
import type { NetnsRef } from '../netlink/netns.js';

function macOctets(mac: string): number[] {
  const m = mac.split(':').map((x) => parseInt(x, 16));
  if (m.length !== 6 || m.some((x) => Number.isNaN(x))) throw new Error(`bad MAC ${mac}`);
  return m;
}

/** IPv6 link-local the kernel gives slave `devId` (EUI-64 with dev_id instead of ff:fe, no U/L flip). */
export function slaveLinkLocal(mac: string, devId: number): string {
  const m = macOctets(mac);
  const g = [
    (m[0]! << 8) | m[1]!,
    (m[2]! << 8) | ((devId >> 8) & 0xff),
    ((devId & 0xff) << 8) | m[3]!,
    (m[4]! << 8) | m[5]!,
  ];
  return linkLocalText(g);
}

/** fe80::/64 with interface id groups G, in the kernel's (RFC 5952) text */
function linkLocalText(g: number[]): string {
  const b = Buffer.alloc(16);
  b.writeUInt16BE(0xfe80, 0);
  g.forEach((x, i) => b.writeUInt16BE(x, 8 + 2 * i));
  return bytesToAddr(6, b);
}

/** The EUI-64 link-local a device with this MAC and dev_id 0 gets (the master's). */
export function masterLinkLocal(mac: string): string {
  const m = macOctets(mac);
  const g = [((m[0]! ^ 2) << 8) | m[1]!, (m[2]! << 8) | 0xff, (0xfe << 8) | m[3]!, (m[4]! << 8) | m[5]!];
  return linkLocalText(g);
}

export interface LinkLocalTarget {
  /** where the slave lives */
  netns: NetnsRef;
  ifname: string;
  ifindex: number;
  /** the link-local it should hold (slaveLinkLocal) */
  want: string;
  /** the fe80:: addresses it holds now, as a dump showed them ([] for a link just made) */
  present: readonly string[];
  /** its address generation is already off (no need to ask again) */
  genModeNone?: boolean;
}

/**
 * Makes T's link-locals exactly `want`: address generation off (so the
 * kernel does not derive the master's again when it comes up), every other
 * link-local removed, `want` added without DAD. One rtnetlink socket in the
 * slave's namespace, no process. False where the kernel refuses (IPv6
 * disabled there: the slave goes without, as an ipvlan slave would).
 */
export function giveSlaveLinkLocal(t: LinkLocalTarget): boolean {
  const present = t.present.map((a) => a.toLowerCase());
  if (present.length === 1 && present[0] === t.want && t.genModeNone) return true;
  try {
    withRtnl(t.netns, (w) => {
      if (!t.genModeNone) w.setLink(t.ifname, { addrGenModeNone: true });
      for (const a of present) {
        // gone meanwhile: done already
        if (a !== t.want) tolerating(() => w.delAddr(t.ifindex, 6, addrBytes(6, a), 64, `addr del ${a}/64 dev ${t.ifname}`), EADDRNOTAVAIL);
      }
      if (!present.includes(t.want)) {
        // there already: another writer (the agent, a second command) was first
        tolerating(() => w.addAddr(t.ifindex, 6, addrBytes(6, t.want), 64, { nodad: true, linkScope: true, what: `addr add ${t.want}/64 dev ${t.ifname}` }), EEXIST);
      }
    });
    return true;
  } catch (e) {
    if (isIvbError(e, 'IPVLAN_E_IPROUTE')) return false;
    throw e;
  }
}
