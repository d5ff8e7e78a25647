// SPDX-License-Identifier: GPL-2.0-only
/**
 * What the programs cost per frame with counters on and off, measured with
 * BPF_PROG_TEST_RUN in one process (same-run figures: the machine is noisy,
 * so instances alternate round by round and the median is kept). Issue 12's
 * target: master_ingress, 64-byte unicast delivery, counters on, <= 80 ns.
 *
 * Each instance runs against maps in a private pin folder: a port (id 1, l2,
 * source validation on) with two up slaves owning 198.18.0.10 and
 * 198.18.0.11. Cases: a wire frame for slave 1 (master_ingress), slave 1's
 * frame to the wire (slave_egress; the sender's source is its own).
 *
 * With `--against DIR` the same cases run, rounds alternating, on the
 * objects of another build (DIR: its bpf/ folder, e.g. an earlier commit
 * built with `git archive COMMIT bpf maps | tar -x -C /tmp/x && make -C
 * /tmp/x/bpf`), against maps of its own: same-run before/after figures.
 * Builds before issue 12's second part had one address table (ivb_addrs,
 * 24-byte key {port, family, pad, addr[16]}); that is detected by name.
 *
 *   node dist/bench/testrun-cost.js [--repeat 1000000] [--rounds 7] [--against DIR]
 */
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BpfObject, encodeSkbCtx, mapUpdate, objGet, progTestRun } from '../native/libbpf.js';
import { encodeIvbAddrOwner, encodeIvbPort, encodeIvbPortKey, encodeIvbSlave, encodeIvbSlaveKey } from '../maps/generated.js';
import { addrKeyOf } from '../controller/src/bpf/addr-key.js';
import { arg, u32 } from './lib/args.js';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

const MASTER_MAC = [2, 0, 0, 0, 0, 1];
const WIRE_MAC = [2, 0, 0, 0, 0, 0x99];

/** A 64-byte UDP frame. */
function frame(dstMac: number[], srcMac: number[], src: number[], dst: number[]): Buffer {
  const f = Buffer.alloc(64);
  Buffer.from(dstMac).copy(f, 0);
  Buffer.from(srcMac).copy(f, 6);
  f.writeUInt16BE(0x0800, 12);
  f[14] = 0x45;
  f.writeUInt16BE(50, 16);
  f[22] = 64;
  f[23] = 17;
  Buffer.from(src).copy(f, 26);
  Buffer.from(dst).copy(f, 30);
  f.writeUInt16BE(9, 34);
  f.writeUInt16BE(9, 36);
  f.writeUInt16BE(30, 38);
  return f;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** The address key of builds with one table for both families: {port u32, family u8, pad[3], addr[16]}. */
function oneTableKey(portId: number, addr: Buffer): Buffer {
  const k = Buffer.alloc(24);
  k.writeUInt32LE(portId, 0);
  k[4] = 4;
  addr.copy(k, 8);
  return k;
}

/** The port's entries, written once into the private maps (this build's layout, or the one-table one). */
function fillMaps(pins: string): void {
  const fd = (name: string): number => objGet(join(pins, name));
  const oneTable = existsSync(join(pins, 'ivb_addrs'));
  mapUpdate(fd('ivb_ports'), encodeIvbPortKey({ portId: 1 }), encodeIvbPort({ masterIfindex: 1, masterMac: Buffer.from(MASTER_MAC), mode: 0, flags: 0, nrSlaves: 2, options: 1 }));
  for (const [index, peer, last] of [
    [1, 101, 10],
    [2, 102, 11],
  ] as const) {
    mapUpdate(fd('ivb_slaves'), u32(index), encodeIvbSlave({ devId: index, flags: 1, mtu: 1500, peerIfindex: peer, portId: 1 }));
    mapUpdate(fd('ivb_slave_ids'), encodeIvbSlaveKey({ portId: 1, peerIfindex: peer }), u32(index));
    const a = Buffer.from([198, 18, 0, last]);
    const k = oneTable ? { map: 'ivb_addrs', key: oneTableKey(1, a) } : addrKeyOf(1, 4, a);
    mapUpdate(fd(k.map), k.key, encodeIvbAddrOwner({ peerIfindex: peer, prefixlen: 24, slave: index }));
  }
}

function main(): void {
  const repeat = arg('repeat', 1_000_000);
  const rounds = arg('rounds', 7);
  const a = process.argv.indexOf('--against');
  const builds: Array<[string, string]> = [['', join(REPO, 'bpf')]];
  if (a >= 0) builds.unshift(['before: ', resolve(process.argv[a + 1]!)]);
  const objs: BpfObject[] = [];
  const pinDirs: string[] = [];
  try {
    const cases: Array<{ name: string; prog: number; data: Buffer; ctx: { ifindex: number; ingressIfindex: number } }> = [];
    for (const [label, dir] of builds) {
      const pins = `/sys/fs/bpf/ivb-testrun-cost-${process.pid}-${pinDirs.length}`;
      mkdirSync(pins, { recursive: true });
      pinDirs.push(pins);
      const load = (kind: string, counters: number): number => {
        const obj = BpfObject.open(join(dir, `${kind}.bpf.o`), { pinRoot: pins });
        objs.push(obj);
        obj.setRodata('ivb_port_id', u32(1));
        obj.setRodata('ivb_counters_enabled', u32(counters));
        obj.load();
        return obj.programFd(`ivb_${kind}`);
      };
      const toSlave = frame(MASTER_MAC, WIRE_MAC, [198, 18, 0, 1], [198, 18, 0, 10]);
      const toWire = frame(WIRE_MAC, MASTER_MAC, [198, 18, 0, 10], [198, 18, 0, 1]);
      const fromWire = { ifindex: 1, ingressIfindex: 0 };
      const fromSlave = { ifindex: 1, ingressIfindex: 101 };
      cases.push(
        { name: `${label}master_ingress wire->slave, counters on`, prog: load('master_ingress', 1), data: toSlave, ctx: fromWire },
        { name: `${label}master_ingress wire->slave, counters off`, prog: load('master_ingress', 0), data: toSlave, ctx: fromWire },
        { name: `${label}slave_egress slave->wire, counters on`, prog: load('slave_egress', 1), data: toWire, ctx: fromSlave },
        { name: `${label}slave_egress slave->wire, counters off`, prog: load('slave_egress', 0), data: toWire, ctx: fromSlave },
      );
      fillMaps(pins);
    }
    const results: Record<string, number[]> = {};
    for (let r = 0; r < rounds; r++) {
      for (const c of cases) {
        const t = progTestRun(c.prog, { data: c.data, ctxIn: encodeSkbCtx(c.ctx), repeat });
        (results[c.name] ??= []).push(t.durationNs);
      }
    }
    const load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
    console.log(`64-byte frames, ${rounds} rounds x ${repeat} runs (median ns/run, [min..max] of the rounds); load average ${load}:`);
    for (const c of cases) {
      const xs = results[c.name]!;
      console.log(`  ${c.name.padEnd(50)} ${median(xs).toFixed(1)} ns  [${Math.min(...xs)}..${Math.max(...xs)}]`);
    }
  } finally {
    for (const o of objs) o.close();
    for (const p of pinDirs) rmSync(p, { recursive: true, force: true });
  }
}

main();
