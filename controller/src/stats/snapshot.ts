// SPDX-License-Identifier: GPL-2.0-only
/**
 * From counter rows to device statistics in iproute2's stats64 terms.
 *
 * How the datapath's decisions map onto a device's counters (the kernel's
 * ipvlan counts rx on the slave when it hands a frame up, tx when the slave
 * transmits):
 *
 *  slave rx   frames the master ingress program handed to this slave: rows
 *             (direction 0, this slave's peer ifindex, DELIVER or
 *             FANOUT_COPY). rx.multicast is the FANOUT_COPY part.
 *             Frames from a sibling slave: rows (direction 2, the receiver's
 *             peer ifindex, DELIVER or FANOUT_COPY); they are also in the
 *             sender's tx and ipvlan_bpf.sibling_tx, and per port in
 *             sibling_deliveries.
 *             rx.dropped is 0: nothing is dropped on the way from the wire
 *             to a slave (a frame no slave takes goes to the master's stack).
 *  slave tx   frames the slave sent that left it somewhere: rows (direction 1,
 *             its peer ifindex) except DROP and FANOUT_COPY (a copy is not
 *             another frame sent). tx.dropped is its DROP rows; tx.multicast
 *             the broadcast/multicast copies its frames gave siblings.
 *  master rx  every frame the master ingress program saw once: direction-0
 *             rows except FANOUT_COPY. rx.dropped its DROP rows (none today:
 *             the master ingress hands everything it does not deliver to the
 *             master's stack). rx.multicast: frames copied to slaves is all
 *             the datapath knows, not the frame count, so it is 0.
 *  master tx  frames slaves sent out of the master: direction-1 TO_WIRE and
 *             ROUTE_PINNED rows of the port (ROUTE goes through the master
 *             namespace's routing, which may pick another device).
 *  drops      every row with a reason other than "none", by reason label:
 *             real drops and the reasons a frame went to the master's stack
 *             (no_owner, slave_down, slave_gone) or was hairpinned
 *             (vepa_hairpin). The master's are its direction-0 rows.
 */
import { IvbAction } from '../../../maps/generated.js';
import type { PortRecord } from '../state.js';
import { reasonLabel, type CounterRow } from './counters.js';

export interface DirStats {
  packets: number;
  bytes: number;
  dropped: number;
  multicast: number;
}

export interface DeviceStats {
  ifname: string;
  /** "master" or "slave" */
  role: 'master' | 'slave';
  /** the master's name (for a master: itself) */
  link: string;
  port_id: number;
  /** slave: its host-side peer ifindex; master: its ifindex in its namespace */
  ifindex: number;
  stats64: { rx: DirStats; tx: DirStats };
  /** packets by reason label (reason "none" never appears) */
  drops: Record<string, number>;
  ipvlan_bpf: {
    /** slave: frames it sent to a sibling; master: frames from slaves to siblings (all slaves) */
    sibling_tx: number;
    /** frames handed to the master's stack (master: from the wire; slave: TO_MASTER + ROUTE) */
    to_stack: number;
    /** frames sent out of the master (TO_WIRE, ROUTE_PINNED; vepa hairpins included) */
    to_wire: number;
    /** frames held for the agent's slow path (HELD): counted again, with their fate, when sent again */
    held: number;
  };
}

export interface PortStats {
  port_id: number;
  master: string;
  master_netns: string | null;
  /** DELIVER rows from slaves: sibling-to-sibling frames (receivers unknown, see above) */
  sibling_deliveries: number;
  devices: DeviceStats[];
}

export interface StatsSnapshot {
  /** milliseconds since the epoch when the counters were read */
  time_ms: number;
  ports: PortStats[];
}

function emptyDir(): DirStats {
  return { packets: 0, bytes: 0, dropped: 0, multicast: 0 };
}

function emptyDevice(ifname: string, role: 'master' | 'slave', link: string, portId: number, ifindex: number): DeviceStats {
  return {
    ifname,
    role,
    link,
    port_id: portId,
    ifindex,
    stats64: { rx: emptyDir(), tx: emptyDir() },
    drops: {},
    ipvlan_bpf: { sibling_tx: 0, to_stack: 0, to_wire: 0, held: 0 },
  };
}

function addDrop(d: DeviceStats, reason: number, packets: number): void {
  if (reason === 0) return;
  const label = reasonLabel(reason);
  d.drops[label] = (d.drops[label] ?? 0) + packets;
}

/** Statistics of every port in PORTS from ROWS; rows of unknown ports or devices are left out of the devices. */
export function buildSnapshot(ports: readonly PortRecord[], rows: readonly CounterRow[], timeMs = Date.now()): StatsSnapshot {
  const out: PortStats[] = [];
  for (const port of ports) {
    const master = emptyDevice(port.master.name, 'master', port.master.name, port.portId, port.master.ifindex);
    const slaves = new Map<number, DeviceStats>();
    for (const s of port.slaves) slaves.set(s.peerIfindex, emptyDevice(s.name, 'slave', port.master.name, port.portId, s.peerIfindex));
    let siblingDeliveries = 0;
    for (const r of rows) {
      if (r.portId !== port.portId) continue;
      if (r.direction === 0) {
        if (r.action !== IvbAction.FANOUT_COPY) {
          master.stats64.rx.packets += r.packets;
          master.stats64.rx.bytes += r.bytes;
        }
        if (r.action === IvbAction.DROP) master.stats64.rx.dropped += r.packets;
        if (r.action === IvbAction.PASS) master.ipvlan_bpf.to_stack += r.packets;
        const slave = slaves.get(r.ifindex);
        if (slave && (r.action === IvbAction.DELIVER || r.action === IvbAction.FANOUT_COPY)) {
          slave.stats64.rx.packets += r.packets;
          slave.stats64.rx.bytes += r.bytes;
          if (r.action === IvbAction.FANOUT_COPY) slave.stats64.rx.multicast += r.packets;
        } else if (r.ifindex === 0) {
          addDrop(master, r.reason, r.packets);
        }
        continue;
      }
      if (r.direction === 2) {
        // the receiving side of a slave-to-slave frame
        const rcv = slaves.get(r.ifindex);
        if (rcv && (r.action === IvbAction.DELIVER || r.action === IvbAction.FANOUT_COPY)) {
          rcv.stats64.rx.packets += r.packets;
          rcv.stats64.rx.bytes += r.bytes;
          if (r.action === IvbAction.FANOUT_COPY) rcv.stats64.rx.multicast += r.packets;
        }
        continue;
      }
      // direction 1: keyed by the sending slave
      if (r.action === IvbAction.TO_WIRE || r.action === IvbAction.ROUTE_PINNED) {
        master.stats64.tx.packets += r.packets;
        master.stats64.tx.bytes += r.bytes;
        master.ipvlan_bpf.to_wire += r.packets;
      }
      if (r.action === IvbAction.DELIVER) {
        siblingDeliveries += r.packets;
        master.ipvlan_bpf.sibling_tx += r.packets;
      }
      const slave = slaves.get(r.ifindex);
      if (!slave) continue;
      if (r.action === IvbAction.HELD) {
        slave.ipvlan_bpf.held += r.packets;
        continue;
      }
      addDrop(slave, r.reason, r.packets);
      switch (r.action) {
        case IvbAction.DROP:
          slave.stats64.tx.dropped += r.packets;
          break;
        case IvbAction.FANOUT_COPY:
          slave.stats64.tx.multicast += r.packets;
          break;
        default:
          slave.stats64.tx.packets += r.packets;
          slave.stats64.tx.bytes += r.bytes;
          if (r.action === IvbAction.DELIVER) slave.ipvlan_bpf.sibling_tx += r.packets;
          if (r.action === IvbAction.TO_MASTER || r.action === IvbAction.ROUTE) slave.ipvlan_bpf.to_stack += r.packets;
          if (r.action === IvbAction.TO_WIRE || r.action === IvbAction.ROUTE_PINNED) slave.ipvlan_bpf.to_wire += r.packets;
      }
    }
    out.push({
      port_id: port.portId,
      master: port.master.name,
      master_netns: port.master.netns,
      sibling_deliveries: siblingDeliveries,
      devices: [master, ...slaves.values()],
    });
  }
  return { time_ms: timeMs, ports: out };
}

/** Every device of the snapshot, masters first within each port (the order `stats` prints). */
export function devicesOf(s: StatsSnapshot): DeviceStats[] {
  return s.ports.flatMap((p) => p.devices);
}

/** Per-second rates between two snapshots of the same devices (devices new in `now` count from 0). */
export function rates(prev: StatsSnapshot, now: StatsSnapshot): DeviceStats[] {
  const seconds = Math.max(0.001, (now.time_ms - prev.time_ms) / 1000);
  const before = new Map(devicesOf(prev).map((d) => [`${d.port_id}/${d.role}/${d.ifindex}`, d]));
  const rate = (a: number, b: number): number => Math.max(0, Math.round(((a - b) / seconds) * 10) / 10);
  return devicesOf(now).map((d) => {
    const p = before.get(`${d.port_id}/${d.role}/${d.ifindex}`);
    const dir = (k: 'rx' | 'tx'): DirStats => ({
      packets: rate(d.stats64[k].packets, p?.stats64[k].packets ?? 0),
      bytes: rate(d.stats64[k].bytes, p?.stats64[k].bytes ?? 0),
      dropped: rate(d.stats64[k].dropped, p?.stats64[k].dropped ?? 0),
      multicast: rate(d.stats64[k].multicast, p?.stats64[k].multicast ?? 0),
    });
    const drops: Record<string, number> = {};
    for (const [k, v] of Object.entries(d.drops)) {
      const r = rate(v, p?.drops[k] ?? 0);
      if (r > 0) drops[k] = r;
    }
    return {
      ...d,
      stats64: { rx: dir('rx'), tx: dir('tx') },
      drops,
      ipvlan_bpf: {
        sibling_tx: rate(d.ipvlan_bpf.sibling_tx, p?.ipvlan_bpf.sibling_tx ?? 0),
        to_stack: rate(d.ipvlan_bpf.to_stack, p?.ipvlan_bpf.to_stack ?? 0),
        to_wire: rate(d.ipvlan_bpf.to_wire, p?.ipvlan_bpf.to_wire ?? 0),
        held: rate(d.ipvlan_bpf.held, p?.ipvlan_bpf.held ?? 0),
      },
    };
  });
}
