// SPDX-License-Identifier: GPL-2.0-only
/** Typed views of `ip -j -d link show` and `ip -j addr show`, as iproute2 names the keys. */
import { ipJson, ipTry } from './exec.js';

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

export function listLinks(netns?: string | null): IpLink[] {
  return ipJson<IpLink[]>(['-d', 'link', 'show'], netns);
}

export function getLink(name: string, netns?: string | null): IpLink | null {
  const r = ipTry(['-j', '-d', 'link', 'show', 'dev', name], netns);
  if (r.status !== 0) return null;
  const arr = JSON.parse(r.stdout) as IpLink[];
  return arr[0] ?? null;
}

export function getLinkByIndex(ifindex: number, netns?: string | null): IpLink | null {
  return listLinks(netns).find((l) => l.ifindex === ifindex) ?? null;
}

export function listAddrs(netns?: string | null): IpAddrLink[] {
  return ipJson<IpAddrLink[]>(['-d', 'addr', 'show'], netns);
}

export function isUp(l: IpLink): boolean {
  return l.flags.includes('UP');
}
