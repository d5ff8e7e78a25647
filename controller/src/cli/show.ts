// SPDX-License-Identifier: GPL-2.0-only
/** `link show` output: iproute2's text layout and its JSON key names, so jq recipes carry over. */
import type { SlaveView } from '../link/manager.js';

export interface LinkJson {
  ifindex: number;
  ifname: string;
  link: string;
  flags: string[];
  mtu: number;
  operstate?: string;
  link_type: 'ether';
  address: string;
  link_netns?: string;
  linkinfo: {
    info_kind: 'ipvlan';
    info_data: { mode: string; bridge?: true; private?: true; vepa?: true };
  };
  ipvlan_bpf: {
    master_netns: string | null;
    port_id: number;
    dev_id: number;
    peer: string;
    peer_ifindex: number;
    netns: string | null;
    learned: Array<{ family: 'inet' | 'inet6'; local: string; prefixlen: number }>;
  };
}

export function toJson(v: SlaveView): LinkJson {
  const l = v.loc.link;
  const info_data: LinkJson['linkinfo']['info_data'] = { mode: v.port.mode };
  info_data[v.port.flag] = true;
  const j: LinkJson = {
    ifindex: v.loc.ifindex,
    ifname: l?.ifname ?? v.loc.record.name,
    link: v.port.master.name,
    flags: l?.flags ?? [],
    mtu: l?.mtu ?? 0,
    operstate: l?.operstate,
    link_type: 'ether',
    address: l?.address ?? v.port.master.mac,
    linkinfo: { info_kind: 'ipvlan', info_data },
    ipvlan_bpf: {
      master_netns: v.port.master.netns,
      port_id: v.port.portId,
      dev_id: v.loc.record.devId,
      peer: v.loc.record.peerName,
      peer_ifindex: v.loc.record.peerIfindex,
      netns: v.loc.netns ?? null,
      learned: v.addrs.map((a) => ({ family: a.family === 4 ? 'inet' : 'inet6', local: a.addr, prefixlen: a.prefixlen })),
    },
  };
  if (v.loc.netns !== v.port.master.netns && v.loc.netns) j.link_netns = v.loc.netns;
  return j;
}

export function toText(v: SlaveView): string {
  const j = toJson(v);
  const where = j.link_netns ? ` link-netns ${j.link_netns}` : '';
  const lines = [
    `${j.ifindex}: ${j.ifname}@${j.link}: <${j.flags.join(',')}> mtu ${j.mtu} state ${j.operstate ?? 'UNKNOWN'}${where}`,
    `    link/ether ${j.address}`,
    `    ipvlan  mode ${v.port.mode} ${v.port.flag}  dev_id ${j.ipvlan_bpf.dev_id} peer ${j.ipvlan_bpf.peer}` +
      `${j.ipvlan_bpf.netns === null && v.loc.netns === undefined ? ' (namespace unknown)' : ''}`,
  ];
  for (const a of j.ipvlan_bpf.learned) lines.push(`    learned ${a.family} ${a.local}/${a.prefixlen}`);
  return lines.join('\n');
}
