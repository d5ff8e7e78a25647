// SPDX-License-Identifier: GPL-2.0-only
/** Between the CLI's JSON shapes (link show, stats, monitor) and the API's messages, both ways, losslessly. */
import type { LinkJson } from '../cli/show.js';
import type { MonitorEvent } from '../monitor/events.js';
import type { DeviceStats, DirStats, StatsSnapshot } from '../stats/snapshot.js';
import type { DeviceStatsMsg, DirStatsMsg, EventMsg, LinkMsg, StatsSnapshotMsg } from './proto.js';

/** `netnsUnknown`: the slave's namespace could not be named (SlaveLocation.netns undefined). */
export function linkToMsg(j: LinkJson, netnsUnknown = false): LinkMsg {
  const d = j.linkinfo.info_data;
  const flag = d.private ? 'private' : d.vepa ? 'vepa' : 'bridge';
  const m: LinkMsg = {
    ifindex: j.ifindex,
    ifname: j.ifname,
    link: j.link,
    flags: [...j.flags],
    mtu: j.mtu,
    address: j.address,
    mode: d.mode,
    flag,
    portId: j.ipvlan_bpf.port_id,
    devId: j.ipvlan_bpf.dev_id,
    peer: j.ipvlan_bpf.peer,
    peerIfindex: j.ipvlan_bpf.peer_ifindex,
    learned: j.ipvlan_bpf.learned.map((a) => ({ ...a })),
    netnsUnknown,
  };
  if (j.operstate !== undefined) m.operstate = j.operstate;
  if (j.link_netns !== undefined) m.linkNetns = j.link_netns;
  if (j.ipvlan_bpf.master_netns !== null) m.masterNetns = j.ipvlan_bpf.master_netns;
  if (j.ipvlan_bpf.netns !== null) m.netns = j.ipvlan_bpf.netns;
  return m;
}

export function linkFromMsg(m: LinkMsg): LinkJson {
  const info_data: LinkJson['linkinfo']['info_data'] = { mode: m.mode };
  if (m.flag === 'private' || m.flag === 'vepa' || m.flag === 'bridge') info_data[m.flag] = true;
  const j: LinkJson = {
    ifindex: m.ifindex,
    ifname: m.ifname,
    link: m.link,
    flags: m.flags,
    mtu: m.mtu,
    operstate: m.operstate,
    link_type: 'ether',
    address: m.address,
    linkinfo: { info_kind: 'ipvlan', info_data },
    ipvlan_bpf: {
      master_netns: m.masterNetns ?? null,
      port_id: m.portId,
      dev_id: m.devId,
      peer: m.peer,
      peer_ifindex: m.peerIfindex,
      netns: m.netns ?? null,
      learned: m.learned.map((a) => ({ family: a.family === 'inet6' ? 'inet6' : 'inet', local: a.local, prefixlen: a.prefixlen })),
    },
  };
  if (m.operstate === undefined) delete j.operstate;
  if (m.linkNetns !== undefined) j.link_netns = m.linkNetns;
  return j;
}

/** `link show` text from the API's message: the same lines cli/show.ts toText() prints. */
export function linkMsgText(m: LinkMsg): string {
  const j = linkFromMsg(m);
  const where = j.link_netns ? ` link-netns ${j.link_netns}` : '';
  const lines = [
    `${j.ifindex}: ${j.ifname}@${j.link}: <${j.flags.join(',')}> mtu ${j.mtu} state ${j.operstate ?? 'UNKNOWN'}${where}`,
    `    link/ether ${j.address}`,
    `    ipvlan  mode ${m.mode} ${m.flag}  dev_id ${j.ipvlan_bpf.dev_id} peer ${j.ipvlan_bpf.peer}` +
      `${j.ipvlan_bpf.netns === null && m.netnsUnknown ? ' (namespace unknown)' : ''}`,
  ];
  for (const a of j.ipvlan_bpf.learned) lines.push(`    learned ${a.family} ${a.local}/${a.prefixlen}`);
  return lines.join('\n');
}

function dirToMsg(d: DirStats): DirStatsMsg {
  return { ...d };
}

function deviceToMsg(d: DeviceStats): DeviceStatsMsg {
  return {
    ifname: d.ifname,
    role: d.role,
    link: d.link,
    portId: d.port_id,
    ifindex: d.ifindex,
    rx: dirToMsg(d.stats64.rx),
    tx: dirToMsg(d.stats64.tx),
    drops: { ...d.drops },
    siblingTx: d.ipvlan_bpf.sibling_tx,
    toStack: d.ipvlan_bpf.to_stack,
    toWire: d.ipvlan_bpf.to_wire,
    held: d.ipvlan_bpf.held,
  };
}

function deviceFromMsg(m: DeviceStatsMsg): DeviceStats {
  const dir = (x: DirStatsMsg | undefined): DirStats => ({
    packets: x?.packets ?? 0,
    bytes: x?.bytes ?? 0,
    dropped: x?.dropped ?? 0,
    multicast: x?.multicast ?? 0,
  });
  return {
    ifname: m.ifname,
    role: m.role === 'master' ? 'master' : 'slave',
    link: m.link,
    port_id: m.portId,
    ifindex: m.ifindex,
    stats64: { rx: dir(m.rx), tx: dir(m.tx) },
    drops: { ...m.drops },
    ipvlan_bpf: { sibling_tx: m.siblingTx, to_stack: m.toStack, to_wire: m.toWire, held: m.held ?? 0 },
  };
}

export function statsToMsg(s: StatsSnapshot): StatsSnapshotMsg {
  return {
    timeMs: s.time_ms,
    ports: s.ports.map((p) => {
      const m: StatsSnapshotMsg['ports'][number] = {
        portId: p.port_id,
        master: p.master,
        siblingDeliveries: p.sibling_deliveries,
        devices: p.devices.map(deviceToMsg),
      };
      if (p.master_netns !== null) m.masterNetns = p.master_netns;
      return m;
    }),
  };
}

export function statsFromMsg(m: StatsSnapshotMsg): StatsSnapshot {
  return {
    time_ms: m.timeMs,
    ports: m.ports.map((p) => ({
      port_id: p.portId,
      master: p.master,
      master_netns: p.masterNetns ?? null,
      sibling_deliveries: p.siblingDeliveries,
      devices: p.devices.map(deviceFromMsg),
    })),
  };
}

export function eventToMsg(e: MonitorEvent): EventMsg {
  return {
    time: e.time,
    tsNs: Number(e.ts_ns),
    portId: e.port_id,
    master: e.master,
    slave: e.slave,
    ifindex: e.ifindex,
    direction: e.direction,
    action: e.action,
    reason: e.reason,
    target: e.target,
    targetIfindex: e.target_ifindex,
    len: e.len,
    summary: e.summary,
    head: Buffer.from(e.head, 'hex'),
  };
}

export function eventFromMsg(m: EventMsg): MonitorEvent {
  return {
    time: m.time,
    ts_ns: String(m.tsNs),
    port_id: m.portId,
    master: m.master,
    slave: m.slave,
    ifindex: m.ifindex,
    direction: m.direction === 'from_slave' ? 'from_slave' : 'from_wire',
    action: m.action,
    reason: m.reason,
    target: m.target,
    target_ifindex: m.targetIfindex,
    len: m.len,
    summary: m.summary,
    head: Buffer.from(m.head).toString('hex'),
  };
}
