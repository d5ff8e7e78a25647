// SPDX-License-Identifier: GPL-2.0-only
/*
 * `ipvlan-bpf upgrade` from the map layout of the build before issue 12
 * ("hash-v1", commit cb51093: ivb_ports, ivb_slaves and ivb_fanout_slots
 * were hash maps, ivb_addrs values had no slave index, no ivb_slave_ids). A
 * live port with two slaves is put back into that build's state: the three
 * maps re-created with bpftool as hash maps of the old key and value sizes
 * and filled with the old encoding of the port's entries, the slave index
 * cleared from each address entry, ivb_slave_ids removed, the old
 * fingerprint stamped, and that build's own programs (compiled from git
 * history) put on the port's links. Then:
 *  - a command that needs the maps (link add) refuses them with one line naming
 *    `ipvlan-bpf upgrade`;
 *  - `upgrade` migrates them while a ping flow runs (the old programs keep
 *    forwarding until their links get the new ones) and replaces the programs;
 *  - afterwards the maps are this build's (arrays, fingerprint), nothing of
 *    the old layout is left pinned, and the port forwards: wire -> slave,
 *    slave -> slave, ARP broadcasts fanned out to both slaves, a third slave
 *    added and removed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BpfObject, closeFd, linkUpdate, mapInfo, mapKeys, mapLookup, mapLookupBatch, mapUpdate, objGet } from '../native/libbpf.js';
import {
  IvbAddrKeyLayout,
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
/** the fingerprint the build before issue 12 stamped into ivb_layout */
const V1_FINGERPRINT = '003ffcfe8c05895af6a64d289adafb41d2cdd1f6a2518c3baa394225ee2c2c79';
/** the last commit with the hash-v1 layout */
const V1_COMMIT = 'cb51093';
const BPF_MAP_TYPE_HASH = 1;
let v1Dir = '';

/** Compiles hash-v1's port programs from git history into a temporary folder. */
function buildV1Programs(): string {
  const dir = mkdtempSync(join(tmpdir(), 'ivb-v1-'));
  execFileSync('bash', ['-c', `git -C "$1" archive ${V1_COMMIT} bpf maps | tar -x -C "$2"`, '-', repoRoot, dir]);
  execFileSync('make', ['-C', join(dir, 'bpf'), 'master_ingress.bpf.o', 'slave_egress.bpf.o', 'peer_egress.bpf.o'], { stdio: 'ignore' });
  return join(dir, 'bpf');
}

/** Puts hash-v1's programs on every link of the port (against the hash-v1 maps pinned now). */
function runV1Programs(portId: number): void {
  const ports = join(env.pinDir, 'ports', String(portId));
  for (const [kind, prefix] of [
    ['master_ingress', 'link_master'],
    ['slave_egress', 'link_peer_'],
    ['peer_egress', 'link_pegress_'],
  ] as const) {
    const obj = BpfObject.open(join(v1Dir, `${kind}.bpf.o`), { pinRoot: join(env.pinDir, 'maps') });
    try {
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
const BPF_MAP_TYPE_ARRAY = 2;

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

/** Replaces a pinned map by an empty hash map of hash-v1's shape (as that build's libbpf made it). */
function v1Hash(name: string, keySize: number, valueSize: number, entries: number, noPrealloc: boolean): void {
  rmSync(pin(name));
  must('bpftool', ['map', 'create', pin(name), 'type', 'hash', 'key', String(keySize), 'value', String(valueSize), 'entries', String(entries), 'name', name, 'flags', noPrealloc ? '1' : '0']);
}

/** Puts the pinned maps back into the layout of the build before issue 12, entries included. */
function downgradeToV1(): { ports: number; slaves: number; fanout: number } {
  const ports = withMap('ivb_ports', (fd) => mapLookupBatch(fd, 4, IvbPortLayout.size)).values.flatMap((v, i) => (v.readUInt32LE(0) !== 0 ? [{ id: i, v }] : []));
  const slaves = withMap('ivb_slaves', (fd) => mapLookupBatch(fd, 4, IvbSlaveLayout.size)).values.map((v) => decodeIvbSlave(v)).filter((s) => s.peerIfindex !== 0);
  const fanout = withMap('ivb_fanout_slots', (fd) => mapLookupBatch(fd, 4, IvbFanoutEntryLayout.size))
    .values.map((v, i) => ({ port: Math.floor(i / IvbSize.FANOUT_PER_PORT), slot: i % IvbSize.FANOUT_PER_PORT, e: decodeIvbFanoutEntry(v) }))
    .filter((f) => f.e.peerIfindex !== 0);
  // hash-v1 shapes: ports u32 -> ivb_port (20 bytes); slaves {port, peer} -> {dev_id, flags, mtu, pad}; fan-out {port, slot} -> {peer, pad}
  v1Hash('ivb_ports', 4, IvbPortLayout.size, 1024, false);
  v1Hash('ivb_slaves', 8, 16, 65536, true);
  v1Hash('ivb_fanout_slots', 8, 8, 65536, true);
  withMap('ivb_ports', (fd) => ports.forEach((p) => mapUpdate(fd, u32s(p.id), p.v)));
  withMap('ivb_slaves', (fd) => slaves.forEach((s) => mapUpdate(fd, u32s(s.portId, s.peerIfindex), u32s(s.devId, s.flags, s.mtu, 0))));
  withMap('ivb_fanout_slots', (fd) => fanout.forEach((f) => mapUpdate(fd, u32s(f.port, f.slot), u32s(f.e.peerIfindex, 0))));
  // hash-v1 address values: {peer, prefixlen, pad[3]}, no slave index
  withMap('ivb_addrs', (fd) => {
    for (const k of mapKeys(fd, IvbAddrKeyLayout.size)) {
      const v = mapLookup(fd, k, IvbAddrOwnerLayout.size);
      if (v) mapUpdate(fd, k, encodeIvbAddrOwner({ ...decodeIvbAddrOwner(v), slave: 0 }));
    }
  });
  rmSync(pin('ivb_slave_ids'));
  withMap('ivb_layout', (fd) => mapUpdate(fd, Buffer.alloc(4), Buffer.from(V1_FINGERPRINT, 'hex')));
  return { ports: ports.length, slaves: slaves.length, fanout: fanout.length };
}

beforeAll(async () => {
  v1Dir = buildV1Programs();
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
  if (v1Dir) rmSync(join(v1Dir, '..'), { recursive: true, force: true });
});

describe('upgrade from the hash-v1 map layout', () => {
  it('refuses the old maps until upgrade, which migrates them while traffic flows; the port then forwards as before', async () => {
    // the agent writes maps too: stopped while the pins are swapped, as on a host mid-upgrade
    await agent.stop();
    const portId = env.slave('ipvl0')!.ipvlan_bpf.port_id;
    const old = downgradeToV1();
    expect(old).toEqual({ ports: 1, slaves: 2, fanout: 2 });
    expect(withMap('ivb_ports', (fd) => mapInfo(fd).type)).toBe(BPF_MAP_TYPE_HASH);
    runV1Programs(portId);
    // the port runs on hash-v1's programs and maps now
    expect(ping(w.wire, A4)).toBe(true);
    expect(ping(nsA, B4)).toBe(true);

    const add = env.cli(['-n', w.host, 'link', 'add', 'link', 'eth0m', 'name', 'ipvl9', 'type', 'ipvlan', 'mode', 'l2']);
    console.log(`link add on hash-v1 maps: exit ${add.status}: ${add.stderr.trim()}`);
    expect(add.status).not.toBe(0);
    expect(add.stderr.trim().split('\n')).toHaveLength(1);
    expect(linkOf(w.host, 'ipvl9')).toBeNull();
    expect(add.stderr).toMatch(/other map layouts \(003ffcfe8c05.*refusing to reuse them; .*"ipvlan-bpf upgrade" migrates them/);

    const flow = pingFlow(w.wire, A4, 300, 0.01);
    await sleep(500);
    const up = env.cli(['upgrade']);
    const r = await flow.done;
    console.log(`upgrade: exit ${up.status}\n${up.stdout.trim()}\n${up.stderr.trim()}\nflow: ${r.sent} sent, ${r.received} received`);
    expect(up.status, up.stderr).toBe(0);
    expect(up.stdout).toMatch(/maps: migrated from layout 003ffcfe8c05 \(hash-v1\): 1 port\(s\), 2 slave\(s\), 2 fan-out slot\(s\) into arrays; \d+ address\(es\) given their slave index/);
    expect(up.stdout).toMatch(/ivb_master_ingress replaced on 1 link/);
    expect(up.stdout).toMatch(/ivb_slave_egress replaced on 2 link/);
    expect(r.sent).toBe(300);
    expect(r.received).toBeGreaterThanOrEqual(297);

    // this build's maps now: arrays, the slave index map, every address entry with its slave's index
    expect(withMap('ivb_ports', (fd) => mapInfo(fd).type)).toBe(BPF_MAP_TYPE_ARRAY);
    expect(withMap('ivb_slaves', (fd) => mapInfo(fd).type)).toBe(BPF_MAP_TYPE_ARRAY);
    expect(withMap('ivb_fanout_slots', (fd) => mapInfo(fd).type)).toBe(BPF_MAP_TYPE_ARRAY);
    expect(withMap('ivb_slave_ids', (fd) => mapKeys(fd, 8).length)).toBe(2);
    const owners = withMap('ivb_addrs', (fd) => mapKeys(fd, IvbAddrKeyLayout.size).map((k) => decodeIvbAddrOwner(mapLookup(fd, k, IvbAddrOwnerLayout.size)!)));
    expect(owners.length).toBeGreaterThan(0);
    expect(owners.every((o) => o.slave !== 0)).toBe(true);
    expect(env.pinFiles().filter((f) => f.includes('hash-v1'))).toEqual([]);
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
  }, 120_000);
});
