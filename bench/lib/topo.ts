// SPDX-License-Identifier: GPL-2.0-only
/**
 * The bench's namespaces and contenders. One veth pair wire0 (ns ivbb-w, the
 * external host/router) <-> m0 (ns ivbb-h, the master) is built once; each
 * contender then puts two slaves (ns ivbb-s1, ivbb-s2) behind m0 its own way
 * and takes them away again. Only 198.18.0.0/15 is used; eth0 and the init
 * namespace are never touched.
 *
 * Cores (this VM has 2): core 0 runs every generator / client (and, for
 * wire->slave, m0's veth NAPI: XDP frame -> skb, GRO); RPS on m0 steers every
 * received packet to core 1, which runs everything after that (TC program /
 * macvlan / bridge / routing, the slave's IP and UDP stack) and the servers.
 */
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { buildMasterWire } from '../../controller/src/lab/wire.js';
import { ip, ipTry, must, nsx, run, sysctl } from './sh.js';

export const W = 'ivbb-w';
export const H = 'ivbb-h';
export const S1 = 'ivbb-s1';
export const S2 = 'ivbb-s2';
export const MANY = 'ivbb-many';
export const ALL_NS = [W, H, S1, S2, MANY];
export const WIRE_MAC = '02:be:00:00:00:01';
export const M_MAC = '02:be:00:00:00:02';
export const WIRE_IP = '198.18.0.1';
export const M_IP = '198.18.0.254';
export const STATE_DIR = '/run/ivbb-state';
export const PIN_SUBDIR = 'ivbb-pins';
export const PIN_DIR = `/sys/fs/bpf/${PIN_SUBDIR}`;
export const CLI = join(process.cwd(), 'bin', 'ipvlan-bpf.js');

export function bpfEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { ...process.env, IPVLAN_BPF_STATE_DIR: STATE_DIR, IPVLAN_BPF_PIN_SUBDIR: PIN_SUBDIR, ...extra };
}

/** `ipvlan-bpf ARGS` with the bench's private state; returns wall ms. */
export function cli(args: string[], extra: Record<string, string> = {}): number {
  return must(process.execPath, [CLI, ...args], { env: bpfEnv(extra), timeoutMs: 120_000 }).ms;
}

export function cleanupAll(): void {
  for (const ns of ALL_NS) if (existsSync(`/run/netns/${ns}`)) run('ip', ['netns', 'del', ns]);
  rmSync(PIN_DIR, { recursive: true, force: true });
  rmSync(STATE_DIR, { recursive: true, force: true });
}

export function buildBase(): void {
  cleanupAll();
  for (const ns of [W, H, S1, S2]) {
    must('ip', ['netns', 'add', ns]);
    ip(ns, 'link', 'set', 'lo', 'up');
  }
  // the master m0, a veth to the wire (IPv4 only); permanent neighbours, so no ARP crosses m0 while a workload counts
  buildMasterWire(must, {
    host: H,
    wire: W,
    master: 'm0',
    peer: 'wire0',
    masterMac: M_MAC,
    peerMac: WIRE_MAC,
    masterAddrs: [`${M_IP}/24`],
    routerAddrs: [`${WIRE_IP}/24`],
    staticNeighbours: true,
  });
  // m0: NAPI with GRO (veth's receive ring), received packets steered to core 1
  nsx(H, 'ethtool', '-K', 'm0', 'gro', 'on');
  nsx(H, 'sh', '-c', 'echo 2 > /sys/class/net/m0/queues/rx-0/rps_cpus');
  ip(W, 'route', 'add', '198.18.1.0/24', 'via', M_IP);
  for (const ns of [W, H, S1, S2]) {
    sysctl(ns, 'net.ipv4.conf.all.rp_filter', '0');
    sysctl(ns, 'net.ipv4.conf.default.rp_filter', '0');
  }
  sysctl(H, 'net.ipv4.ip_forward', '1');
}

/** Where a contender's two slaves are, and how to reach them. */
export interface Slaves {
  ns: [string, string];
  ips: [string, string];
  /** destination MAC the wire uses for slave 1 */
  mac1: string;
  /** ifindexes in H of the host-side peers (ipvlan-bpf), for test runs */
  peers?: [number, number];
}

export interface Contender {
  id: string;
  label: string;
  note?: string;
  /** which workloads apply */
  has: { s2s: boolean; s2w: boolean; tcp: boolean; rr: boolean; w2s: boolean };
  setup(): Slaves;
  teardown(): void;
  /** wire->slave counting: UDP sink in slave 1 (default) or XDP drops on m0 */
  xdpDrop?: boolean;
  bpf?: { mode: 'l2' | 'l3' | 'l3s'; env: Record<string, string> };
}

function ifindex(ns: string, dev: string): number {
  return (JSON.parse(ip(ns, '-j', 'link', 'show', 'dev', dev)) as Array<{ ifindex: number }>)[0]!.ifindex;
}

function slaveUp(ns: string, dev: string, addr: string, neighs: Array<[string, string]>, routes: string[][] = []): void {
  ip(ns, 'link', 'set', dev, 'up');
  ip(ns, 'addr', 'add', addr, 'dev', dev);
  for (const [a, mac] of neighs) ip(ns, 'neigh', 'replace', a, 'lladdr', mac, 'dev', dev, 'nud', 'permanent');
  for (const r of routes) ip(ns, 'route', 'add', ...r);
}

const ALL = { s2s: true, s2w: true, tcp: true, rr: true, w2s: true };

/** timings of every CLI call the contenders made (control plane) */
export const cliTimes: { linkAdd: number[]; linkDel: number[]; sync: number[] } = { linkAdd: [], linkDel: [], sync: [] };

export function ipvlanBpf(id: string, label: string, mode: 'l2' | 'l3' | 'l3s', env: Record<string, string>, note?: string, udpOnly = false): Contender {
  const l3 = mode !== 'l2';
  const ips: [string, string] = l3 ? ['198.18.1.11', '198.18.1.12'] : ['198.18.0.11', '198.18.0.12'];
  return {
    id,
    label,
    note,
    has: udpOnly ? { ...ALL, tcp: false, rr: false } : ALL,
    bpf: { mode, env },
    setup() {
      const peers: number[] = [];
      [S1, S2].forEach((ns, i) => {
        const name = `sl${i + 1}`;
        cliTimes.linkAdd.push(cli(['-n', H, 'link', 'add', 'link', 'm0', 'name', name, 'type', 'ipvlan', 'mode', mode], env));
        peers.push(ifindex(H, `ivb${portId()}x${i + 1}`));
        ip(H, 'link', 'set', name, 'netns', ns);
        if (l3) slaveUp(ns, name, `${ips[i]}/24`, [], [['default', 'dev', name]]);
        else slaveUp(ns, name, `${ips[i]}/24`, [[WIRE_IP, WIRE_MAC], [ips[1 - i]!, M_MAC]]);
      });
      cliTimes.sync.push(cli(['sync']));
      if (!l3) ip(W, 'neigh', 'replace', ips[0], 'lladdr', M_MAC, 'dev', 'wire0', 'nud', 'permanent');
      return { ns: [S1, S2], ips, mac1: M_MAC, peers: [peers[0]!, peers[1]!] };
    },
    teardown() {
      [S1, S2].forEach((ns, i) => {
        cliTimes.linkDel.push(cli(['-n', ns, 'link', 'del', `sl${i + 1}`]));
      });
      ipTry(W, 'neigh', 'del', ips[0], 'dev', 'wire0');
    },
  };
}

/** the only port of the bench's private state */
export function portId(): number {
  const dir = join(PIN_DIR, 'ports');
  const ids = existsSync(dir) ? readdirSync(dir).map(Number).filter((n) => Number.isInteger(n)) : [];
  if (ids.length !== 1) throw new Error(`expected one ipvlan-bpf port, found ${ids.length}`);
  return ids[0]!;
}

export const macvlan: Contender = {
  id: 'macvlan',
  label: 'macvlan bridge',
  has: ALL,
  setup() {
    const ips: [string, string] = ['198.18.0.11', '198.18.0.12'];
    const macs = ['02:be:00:00:01:11', '02:be:00:00:01:12'];
    [S1, S2].forEach((ns, i) => {
      ip(H, 'link', 'add', 'link', 'm0', 'name', `sl${i + 1}`, 'address', macs[i]!, 'netns', ns, 'type', 'macvlan', 'mode', 'bridge');
      slaveUp(ns, `sl${i + 1}`, `${ips[i]}/24`, [[WIRE_IP, WIRE_MAC], [ips[1 - i]!, macs[1 - i]!]]);
    });
    ip(W, 'neigh', 'replace', ips[0], 'lladdr', macs[0]!, 'dev', 'wire0', 'nud', 'permanent');
    return { ns: [S1, S2], ips, mac1: macs[0]! };
  },
  teardown() {
    ipTry(S1, 'link', 'del', 'sl1');
    ipTry(S2, 'link', 'del', 'sl2');
    ipTry(W, 'neigh', 'del', '198.18.0.11', 'dev', 'wire0');
  },
};

export const vethBridge: Contender = {
  id: 'bridge',
  label: 'veth+bridge',
  has: ALL,
  setup() {
    const ips: [string, string] = ['198.18.0.11', '198.18.0.12'];
    const macs = ['02:be:00:00:01:11', '02:be:00:00:01:12'];
    ip(H, 'link', 'add', 'br0', 'address', M_MAC, 'type', 'bridge', 'stp_state', '0', 'forward_delay', '0');
    ip(H, 'addr', 'del', `${M_IP}/24`, 'dev', 'm0');
    ip(H, 'link', 'set', 'm0', 'master', 'br0');
    ip(H, 'link', 'set', 'br0', 'up');
    ip(H, 'addr', 'add', `${M_IP}/24`, 'dev', 'br0');
    [S1, S2].forEach((ns, i) => {
      ip(H, 'link', 'add', `h${i + 1}`, 'type', 'veth', 'peer', 'name', `sl${i + 1}`, 'address', macs[i]!, 'netns', ns);
      ip(H, 'link', 'set', `h${i + 1}`, 'master', 'br0');
      ip(H, 'link', 'set', `h${i + 1}`, 'up');
      must('bridge', ['-n', H, 'fdb', 'replace', macs[i]!, 'dev', `h${i + 1}`, 'master', 'static']);
      slaveUp(ns, `sl${i + 1}`, `${ips[i]}/24`, [[WIRE_IP, WIRE_MAC], [ips[1 - i]!, macs[1 - i]!]]);
    });
    must('bridge', ['-n', H, 'fdb', 'replace', WIRE_MAC, 'dev', 'm0', 'master', 'static']);
    ip(W, 'neigh', 'replace', ips[0], 'lladdr', macs[0]!, 'dev', 'wire0', 'nud', 'permanent');
    return { ns: [S1, S2], ips, mac1: macs[0]! };
  },
  teardown() {
    ipTry(H, 'link', 'del', 'h1');
    ipTry(H, 'link', 'del', 'h2');
    ipTry(H, 'link', 'del', 'br0');
    ipTry(H, 'addr', 'replace', `${M_IP}/24`, 'dev', 'm0');
    ipTry(H, 'neigh', 'replace', WIRE_IP, 'lladdr', WIRE_MAC, 'dev', 'm0', 'nud', 'permanent');
    ipTry(W, 'neigh', 'del', '198.18.0.11', 'dev', 'wire0');
  },
};

export const vethRouting: Contender = {
  id: 'routing',
  label: 'veth routing',
  has: ALL,
  setup() {
    const ips: [string, string] = ['198.18.1.11', '198.18.1.12'];
    const macs = ['02:be:00:00:01:11', '02:be:00:00:01:12'];
    const hmacs = ['02:be:00:00:02:11', '02:be:00:00:02:12'];
    [S1, S2].forEach((ns, i) => {
      const h = `h${i + 1}`;
      ip(H, 'link', 'add', h, 'address', hmacs[i]!, 'type', 'veth', 'peer', 'name', `sl${i + 1}`, 'address', macs[i]!, 'netns', ns);
      ip(H, 'link', 'set', h, 'up');
      ip(H, 'route', 'add', `${ips[i]}/32`, 'dev', h);
      ip(H, 'neigh', 'replace', ips[i]!, 'lladdr', macs[i]!, 'dev', h, 'nud', 'permanent');
      sysctl(H, `net.ipv4.conf.${h}.rp_filter`, '0');
      // Calico's shape: /32 on the slave, default route via a link-local gateway answered by the host side
      slaveUp(ns, `sl${i + 1}`, `${ips[i]}/32`, [['169.254.1.1', hmacs[i]!]], [['default', 'via', '169.254.1.1', 'dev', `sl${i + 1}`, 'onlink']]);
    });
    return { ns: [S1, S2], ips, mac1: M_MAC };
  },
  teardown() {
    ipTry(H, 'link', 'del', 'h1');
    ipTry(H, 'link', 'del', 'h2');
  },
};

/** the master namespace itself as the "slave": a plain veth pair, nothing in between (skb and TCP ceiling) */
export const vethPair: Contender = {
  id: 'vethpair',
  label: 'veth pair (ceiling)',
  note: 'UDP to the master namespace itself: NAPI+GRO on m0 and the IP/UDP stack, nothing else',
  has: { s2s: false, s2w: true, tcp: true, rr: true, w2s: true },
  setup() {
    return { ns: [H, H], ips: [M_IP, M_IP], mac1: M_MAC };
  },
  teardown() {},
};

export const xdpDrop: Contender = {
  id: 'xdpdrop',
  label: 'XDP_DROP on m0 (ceiling)',
  note: 'receive ceiling: frames dropped by XDP in m0 veth NAPI (runs on core 0, next to the generator)',
  has: { s2s: false, s2w: false, tcp: false, rr: false, w2s: true },
  xdpDrop: true,
  setup() {
    return { ns: [H, H], ips: [M_IP, M_IP], mac1: M_MAC };
  },
  teardown() {
    ipTry(H, 'link', 'set', 'dev', 'm0', 'xdp', 'off');
  },
};
