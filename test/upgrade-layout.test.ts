// SPDX-License-Identifier: GPL-2.0-only
/*
 * `ipvlan-bpf upgrade` from the map layouts of earlier builds, each put back
 * in place under a live port with two slaves, and that build's own programs
 * (compiled from git history) put on the port's links:
 *  - "array-v2" (commit 04f7cd0): ivb_counters a per-CPU hash of rows keyed
 *    {port, ifindex, direction, action, reason}; one address table ivb_addrs
 *    for both families under a 24-byte key {port, family, pad, addr[16]}
 *    (ivb_local_addrs and ivb_unknown had that key order too);
 *  - "hash-v1" (commit cb51093): the same, and ivb_ports, ivb_slaves and
 *    ivb_fanout_slots hash maps, address values without a slave index, no
 *    ivb_slave_ids.
 * For each:
 *  - a command that needs the maps (link add) refuses them with one line
 *    naming `ipvlan-bpf upgrade`;
 *  - `upgrade` migrates them while a ping flow runs (the old programs keep
 *    forwarding until their links get the new ones) and replaces the programs;
 *  - afterwards the maps are this build's (arrays, two address tables, the
 *    counter blocks with the old rows' counts), nothing of the old layout is
 *    left pinned, and the port forwards: wire -> slave, slave -> slave, ARP
 *    broadcasts fanned out to both slaves, a third slave added and removed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BpfObject, closeFd, linkUpdate, mapInfo, mapKeys, mapLookup, mapLookupBatch, mapUpdate, objGet, perCpuValueSize } from '../native/libbpf.js';
import {
  IvbAction,
  IvbAddrOwnerLayout,
  IvbFanoutEntryLayout,
  IvbPortLayout,
  IvbSize,
  IvbSlaveLayout,
  decodeIvbAddrOwner,
  decodeIvbFanoutEntry,
  decodeIvbSlave,
  encodeIvbAddrOwner,
} from '../maps/generated.js';
import { ADDR_KEY_SIZE, decodeAddrKey } from '../controller/src/bpf/addr-key.js';
import { readCounterRows } from '../controller/src/stats/counters.js';
import { TestEnv, buildWire, configureSlave, ip, linkOf, must, ping, sleep, waitUntil, type Agent, type Wire } from './lib/topo.js';
import { pingFlow, startAgentPatient } from './lib/hard-topo.js';
import { repoRoot } from './lib/bpfprog.js';

const env = new TestEnv('upgrade-layout', 'ivbul');
let w: Wire;
let nsA: string;
let nsB: string;
let agent: Agent;

const A4 = '198.18.0.10';
const B4 = '198.18.0.11';

/** The earlier layouts: the last commit that had each, and the fingerprint it stamped into ivb_layout. */
const LAYOUTS = {
  'array-v2': { commit: '04f7cd0', fingerprint: '97c81d2d4092974b2c221a735608561a418d45e377b5e747ad171ee52445f53b' },
  'hash-v1': { commit: 'cb51093', fingerprint: '003ffcfe8c05895af6a64d289adafb41d2cdd1f6a2518c3baa394225ee2c2c79' },
} as const;
type Layout = keyof typeof LAYOUTS;

const BPF_MAP_TYPE_HASH = 1;
const BPF_MAP_TYPE_ARRAY = 2;
const BPF_MAP_TYPE_PERCPU_ARRAY = 6;
/** packets put on slave A's delivery row of the old counters: found again in its block after the upgrade */
const MARK_PACKETS = 1_000_000;
const built: string[] = [];

/** Compiles a commit's port programs from git history into a temporary folder. */
function buildPrograms(commit: string): string {
  const dir = mkdtempSync(join(tmpdir(), `ivb-${commit}-`));
  built.push(dir);
  execFileSync('bash', ['-c', `git -C "$1" archive ${commit} bpf maps | tar -x -C "$2"`, '-', repoRoot, dir]);
  execFileSync('make', ['-C', join(dir, 'bpf'), 'master_ingress.bpf.o', 'slave_egress.bpf.o', 'peer_egress.bpf.o'], { stdio: 'ignore' });
  return join(dir, 'bpf');
}

/** Puts an earlier build's programs on every link of the port (against that build's maps pinned now). */
function runOldPrograms(objDir: string, portId: number): void {
  const ports = join(env.pinDir, 'ports', String(portId));
  for (const [kind, prefix] of [
    ['master_ingress', 'link_master'],
    ['slave_egress', 'link_peer_'],
    ['peer_egress', 'link_pegress_'],
  ] as const) {
    const obj = BpfObject.open(join(objDir, `${kind}.bpf.o`), { pinRoot: join(env.pinDir, 'maps') });
    try {
      // as that build's loader did (matchPinnedSizes): the pinned maps' capacities, chosen when they were made
      for (const name of obj.mapNames()) if (!name.includes('.') && existsSync(pin(name))) obj.setMaxEntries(name, withMap(name, (fd) => mapInfo(fd).maxEntries));
      obj.setRodata('ivb_port_id', u32s(portId));
      obj.setRodata('ivb_counters_enabled', u32s(1));
      obj.load();
      const prog = obj.programFd(`ivb_${kind}`);
      for (const l of readdirSync(ports).filter((f) => (kind === 'master_ingress' ? f === prefix : f.startsWith(prefix)))) {
        const fd = objGet(join(ports, l));
        try {
          linkUpdate(fd, prog);
        } finally {
          closeFd(fd);
        }
      }
      rmSync(join(ports, kind));
      obj.pinProgram(`ivb_${kind}`, join(ports, kind));
    } finally {
      obj.close();
    }
  }
}

function pin(name: string): string {
  return join(env.pinDir, 'maps', name);
}

function withMap<T>(name: string, fn: (fd: number) => T): T {
  const fd = objGet(pin(name));
  try {
    return fn(fd);
  } finally {
    closeFd(fd);
  }
}

function u32s(...xs: number[]): Buffer {
  const b = Buffer.alloc(4 * xs.length);
  xs.forEach((x, i) => b.writeUInt32LE(x, 4 * i));
  return b;
}

/** Replaces (or makes) a pinned map by an empty one of an earlier build's shape, as that build's libbpf made it. */
function oldMap(name: string, type: 'hash' | 'lru_hash' | 'percpu_hash', keySize: number, valueSize: number, entries: number, noPrealloc: boolean): void {
  rmSync(pin(name), { force: true });
  must('bpftool', ['map', 'create', pin(name), 'type', type, 'key', String(keySize), 'value', String(valueSize), 'entries', String(entries), 'name', name, 'flags', noPrealloc ? '1' : '0']);
}

/** An address key of the earlier layouts: {port_id u32, family u8, pad[3], addr[16]}. */
function oldAddrKey(portId: number, family: 4 | 6, addr: Buffer): Buffer {
  const k = Buffer.alloc(24);
  k.writeUInt32LE(portId, 0);
  k[4] = family;
  addr.copy(k, 8);
  return k;
}

/**
 * What both earlier layouts had otherwise than this build, entries included:
 * one address table (values without a slave index for hash-v1), the older
 * order of the generic key in ivb_local_addrs and ivb_unknown, counters as
 * per-CPU rows (slave A's delivery row marked with MARK_PACKETS).
 */
function downgradeShared(slaveIndexes: boolean, portId: number, markPeer: number): { addrs: number } {
  const addrs = ([4, 6] as const).flatMap((family) =>
    withMap(`ivb_addrs${family}`, (fd) =>
      mapKeys(fd, ADDR_KEY_SIZE[family]).map((k) => ({ ...decodeAddrKey(family, k), family, owner: decodeIvbAddrOwner(mapLookup(fd, k, IvbAddrOwnerLayout.size)!) })),
    ),
  );
  const local = withMap('ivb_local_addrs', (fd) =>
    mapKeys(fd, 24).map((k) => ({ portId: k.readUInt32LE(4), family: k[0] as 4 | 6, addr: k.subarray(8, 24), value: mapLookup(fd, k, 8)! })),
  );
  const rows = readCounterRows(join(env.pinDir, 'maps'));
  oldMap('ivb_addrs', 'hash', 24, 8, 1 << 20, true);
  withMap('ivb_addrs', (fd) => addrs.forEach((a) => mapUpdate(fd, oldAddrKey(a.portId, a.family, a.addr), encodeIvbAddrOwner({ ...a.owner, slave: slaveIndexes ? a.owner.slave : 0 }))));
  rmSync(pin('ivb_addrs4'));
  rmSync(pin('ivb_addrs6'));
  oldMap('ivb_local_addrs', 'hash', 24, 8, 1024 * 64, true);
  withMap('ivb_local_addrs', (fd) => local.forEach((l) => mapUpdate(fd, oldAddrKey(l.portId, l.family, l.addr), l.value)));
  oldMap('ivb_unknown', 'lru_hash', 24, 8, 65536, false);
  // rows {port, ifindex, direction, action, reason, pad} -> {packets, bytes} per CPU (CPU 0 holds the sums here)
  oldMap('ivb_counters', 'percpu_hash', 12, 16, 65536, true);
  withMap('ivb_counters', (fd) => {
    const size = perCpuValueSize(16);
    const put = (r: { portId: number; ifindex: number; direction: number; action: number; reason: number; packets: number; bytes: number }): void => {
      const k = Buffer.alloc(12);
      k.writeUInt32LE(r.portId, 0);
      k.writeUInt32LE(r.ifindex, 4);
      [k[8], k[9], k[10]] = [r.direction, r.action, r.reason];
      const v = Buffer.alloc(size);
      v.writeBigUInt64LE(BigInt(r.packets), 0);
      v.writeBigUInt64LE(BigInt(r.bytes), 8);
      mapUpdate(fd, k, v);
    };
    const mark = rows.find((r) => r.ifindex === markPeer && r.direction === 0 && r.action === IvbAction.DELIVER);
    for (const r of rows) if (r !== mark) put(r);
    put({ portId, ifindex: markPeer, direction: 0, action: IvbAction.DELIVER, reason: 0, packets: (mark?.packets ?? 0) + MARK_PACKETS, bytes: (mark?.bytes ?? 0) + MARK_PACKETS * 64 });
  });
  return { addrs: addrs.length };
}

/** hash-v1 besides: ports, slaves and fan-out slots as hash maps, no ivb_slave_ids. */
function downgradeV1Arrays(): { ports: number; slaves: number; fanout: number } {
  const ports = withMap('ivb_ports', (fd) => mapLookupBatch(fd, 4, IvbPortLayout.size)).values.flatMap((v, i) => (v.readUInt32LE(0) !== 0 ? [{ id: i, v }] : []));
  const slaves = withMap('ivb_slaves', (fd) => mapLookupBatch(fd, 4, IvbSlaveLayout.size)).values.map((v) => decodeIvbSlave(v)).filter((s) => s.peerIfindex !== 0);
  const fanout = withMap('ivb_fanout_slots', (fd) => mapLookupBatch(fd, 4, IvbFanoutEntryLayout.size))
    .values.map((v, i) => ({ port: Math.floor(i / IvbSize.FANOUT_PER_PORT), slot: i % IvbSize.FANOUT_PER_PORT, e: decodeIvbFanoutEntry(v) }))
    .filter((f) => f.e.peerIfindex !== 0);
  // hash-v1 shapes: ports u32 -> ivb_port (20 bytes); slaves {port, peer} -> {dev_id, flags, mtu, pad}; fan-out {port, slot} -> {peer, pad}
  oldMap('ivb_ports', 'hash', 4, IvbPortLayout.size, 1024, false);
  oldMap('ivb_slaves', 'hash', 8, 16, 65536, true);
  oldMap('ivb_fanout_slots', 'hash', 8, 8, 65536, true);
  withMap('ivb_ports', (fd) => ports.forEach((p) => mapUpdate(fd, u32s(p.id), p.v)));
  withMap('ivb_slaves', (fd) => slaves.forEach((s) => mapUpdate(fd, u32s(s.portId, s.peerIfindex), u32s(s.devId, s.flags, s.mtu, 0))));
  withMap('ivb_fanout_slots', (fd) => fanout.forEach((f) => mapUpdate(fd, u32s(f.port, f.slot), u32s(f.e.peerIfindex, 0))));
  rmSync(pin('ivb_slave_ids'));
  return { ports: ports.length, slaves: slaves.length, fanout: fanout.length };
}

beforeAll(async () => {
  w = buildWire(env);
  nsA = env.netns('a');
  nsB = env.netns('b');
  for (const [name, ns] of [
    ['ipvl0', nsA],
    ['ipvl1', nsB],
  ] as const) {
    env.cliOk('-n', w.host, 'link', 'add', 'link', 'eth0m', 'name', name, 'type', 'ipvlan', 'mode', 'l2');
    ip(w.host, 'link', 'set', 'dev', name, 'netns', ns);
  }
  agent = await startAgentPatient(env);
  configureSlave(nsA, 'ipvl0', `${A4}/24`, '2001:db8::10/64', { gw4: w.routerV4, gw6: w.routerV6 });
  configureSlave(nsB, 'ipvl1', `${B4}/24`, '2001:db8::11/64', { gw4: w.routerV4, gw6: w.routerV6 });
  await waitUntil('A4 and B4 learned', () => env.learned('ipvl0').includes(A4) && env.learned('ipvl1').includes(B4), 10_000, 50);
  await waitUntil('router reaches ipvl0', () => ping(w.wire, A4), 5_000, 100);
}, 120_000);

afterAll(async () => {
  await env.cleanup();
  for (const d of built) rmSync(d, { recursive: true, force: true });
});

/** The whole story for one earlier layout; the port is this build's before and after. */
async function upgradeFrom(layout: Layout): Promise<void> {
  const { commit, fingerprint } = LAYOUTS[layout];
  const objDir = buildPrograms(commit);
  // the agent writes maps too: stopped while the pins are swapped, as on a host mid-upgrade
  await agent.stop();
  const portId = env.slave('ipvl0')!.ipvlan_bpf.port_id;
  const peerA = env.slave('ipvl0')!.ipvlan_bpf.peer_ifindex!;
  const v1 = layout === 'hash-v1';
  const shared = downgradeShared(!v1, portId, peerA);
  const arrays = v1 ? downgradeV1Arrays() : null;
  if (arrays) expect(arrays).toEqual({ ports: 1, slaves: 2, fanout: 2 });
  withMap('ivb_layout', (fd) => mapUpdate(fd, Buffer.alloc(4), Buffer.from(fingerprint, 'hex')));
  expect(withMap('ivb_addrs', (fd) => mapInfo(fd).type)).toBe(BPF_MAP_TYPE_HASH);
  runOldPrograms(objDir, portId);
  // the port runs on the earlier build's programs and maps now
  expect(ping(w.wire, A4)).toBe(true);
  expect(ping(nsA, B4)).toBe(true);

  const add = env.cli(['-n', w.host, 'link', 'add', 'link', 'eth0m', 'name', 'ipvl9', 'type', 'ipvlan', 'mode', 'l2']);
  console.log(`link add on ${layout} maps: exit ${add.status}: ${add.stderr.trim()}`);
  expect(add.status).not.toBe(0);
  expect(add.stderr.trim().split('\n')).toHaveLength(1);
  expect(linkOf(w.host, 'ipvl9')).toBeNull();
  expect(add.stderr).toMatch(new RegExp(`other map layouts \\(${fingerprint.slice(0, 12)}.*refusing to reuse them; .*"ipvlan-bpf upgrade" migrates them`));

  const flow = pingFlow(w.wire, A4, 300, 0.01);
  await sleep(500);
  const up = env.cli(['upgrade']);
  const r = await flow.done;
  console.log(`upgrade: exit ${up.status}\n${up.stdout.trim()}\n${up.stderr.trim()}\nflow: ${r.sent} sent, ${r.received} received`);
  expect(up.status, up.stderr).toBe(0);
  const what = [
    ...(v1 ? ['1 port\\(s\\), 2 slave\\(s\\), 2 fan-out slot\\(s\\) into arrays'] : []),
    `${shared.addrs} address\\(es\\) into ivb_addrs4/ivb_addrs6${v1 ? ` \\(${shared.addrs} given their slave index\\)` : ''}`,
    // the old programs count on until the upgrade: rows may have been added since the downgrade
    '\\d+ counter row\\(s\\) into device blocks',
  ].join('; ');
  expect(up.stdout).toMatch(new RegExp(`maps: migrated from layout ${fingerprint.slice(0, 12)} \\(${layout}\\): ${what}`));
  expect(up.stdout).toMatch(/ivb_master_ingress replaced on 1 link/);
  expect(up.stdout).toMatch(/ivb_slave_egress replaced on 2 link/);
  expect(r.sent).toBe(300);
  expect(r.received).toBeGreaterThanOrEqual(297);

  // this build's maps now: arrays, the slave index map, two address tables whose entries carry their slave's index
  expect(withMap('ivb_ports', (fd) => mapInfo(fd).type)).toBe(BPF_MAP_TYPE_ARRAY);
  expect(withMap('ivb_slaves', (fd) => mapInfo(fd).type)).toBe(BPF_MAP_TYPE_ARRAY);
  expect(withMap('ivb_fanout_slots', (fd) => mapInfo(fd).type)).toBe(BPF_MAP_TYPE_ARRAY);
  expect(withMap('ivb_counters', (fd) => mapInfo(fd).type)).toBe(BPF_MAP_TYPE_PERCPU_ARRAY);
  expect(withMap('ivb_slave_ids', (fd) => mapKeys(fd, 8).length)).toBe(2);
  expect(existsSync(pin('ivb_addrs'))).toBe(false);
  // the multicast filters (issue 14) are new too, and empty: every slave gets every copy until the agent reads its groups
  expect(withMap('ivb_mc_filters', (fd) => mapInfo(fd).type)).toBe(BPF_MAP_TYPE_ARRAY);
  const owners = ([4, 6] as const).flatMap((f) => withMap(`ivb_addrs${f}`, (fd) => mapKeys(fd, ADDR_KEY_SIZE[f]).map((k) => decodeIvbAddrOwner(mapLookup(fd, k, IvbAddrOwnerLayout.size)!))));
  expect(owners.length).toBe(shared.addrs);
  expect(owners.every((o) => o.slave !== 0)).toBe(true);
  // the old rows' counts are in the devices' blocks
  const delivered = readCounterRows(join(env.pinDir, 'maps')).find((x) => x.ifindex === peerA && x.direction === 0 && x.action === IvbAction.DELIVER);
  expect(delivered?.packets ?? 0).toBeGreaterThanOrEqual(MARK_PACKETS);
  expect(env.pinFiles().filter((f) => f.includes(layout))).toEqual([]);
  expect(env.cli(['link', 'show']).status).toBe(0);
  expect(existsSync(pin('ivb_layout'))).toBe(true);

  agent = await startAgentPatient(env);
  // wire -> slave, slave -> slave, slave -> wire
  expect(ping(w.wire, A4)).toBe(true);
  expect(ping(nsA, B4)).toBe(true);
  expect(ping(nsB, w.routerV4)).toBe(true);
  // an ARP broadcast from the wire reaches the slave through the fan-out list
  ip(w.wire, 'neigh', 'flush', 'all');
  expect(ping(w.wire, B4)).toBe(true);
  // the migrated slave indexes are in use: a third slave gets a free one, and goes again
  env.cliOk('-n', w.host, 'link', 'add', 'link', 'eth0m', 'name', 'ipvl2', 'type', 'ipvlan', 'mode', 'l2');
  expect(withMap('ivb_slave_ids', (fd) => mapKeys(fd, 8).map((k) => mapLookup(fd, k, 4)!.readUInt32LE(0)).sort())).toEqual([1, 2, 3]);
  env.cliOk('-n', w.host, 'link', 'del', 'ipvl2');
  expect(withMap('ivb_slave_ids', (fd) => mapKeys(fd, 8).length)).toBe(2);
  expect(ping(w.wire, A4)).toBe(true);
}

describe('upgrade from earlier map layouts', () => {
  it('array-v2 (04f7cd0): refused until upgrade, which migrates counters and addresses while traffic flows; the port then forwards as before', async () => {
    await upgradeFrom('array-v2');
  }, 180_000);

  it('hash-v1 (cb51093): the same, and ports, slaves and fan-out slots into arrays', async () => {
    await upgradeFrom('hash-v1');
  }, 180_000);
});
