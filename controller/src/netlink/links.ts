// SPDX-License-Identifier: GPL-2.0-only
/**
 * Typed views of links and addresses, as `ip -j -d link show` and `ip -j
 * addr show` name the keys; read through rtnetlink from the process
 * (rtnl.ts), not through a process per read.
 */
import { isIvbError } from '../errors.js';
import { rtnlAddrs, rtnlLinks } from './rtnl.js';
import type { NetnsRef } from './netns.js';

export interface IpLink {
  ifindex: number;
  ifname: string;
  flags: string[];
  mtu: number;
  operstate?: string;
  link_type?: string;
  address?: string;
  link?: string | null;
  link_index?: number;
  link_netnsid?: number;
  master?: string;
  ifalias?: string;
  linkinfo?: {
    info_kind?: string;
    info_slave_kind?: string;
  };
  inet6_addr_gen_mode?: string;
}

export interface IpAddrInfo {
  family: 'inet' | 'inet6';
  local: string;
  prefixlen: number;
  scope?: string;
  broadcast?: string;
  tentative?: boolean;
  dadfailed?: boolean;
}

export interface IpAddrLink extends IpLink {
  addr_info: IpAddrInfo[];
}

export function listLinks(netns?: NetnsRef): IpLink[] {
  return rtnlLinks(netns ?? null);
}

/** The link named NAME in NETNS; null when there is none (or the namespace is gone, as `ip -n` fails then). */
export function getLink(name: string, netns?: NetnsRef): IpLink | null {
  try {
    return rtnlLinks(netns ?? null).find((l) => l.ifname === name) ?? null;
  } catch (e) {
    if (isIvbError(e, 'IPVLAN_E_IPROUTE') && /Cannot open network namespace/.test(e.message)) return null;
    throw e;
  }
}

export function listAddrs(netns?: NetnsRef): IpAddrLink[] {
  return rtnlAddrs(netns ?? null);
}

export function isUp(l: IpLink): boolean {
  return l.flags.includes('UP');
}
