// SPDX-License-Identifier: GPL-2.0-only
/**
 * What the monitor's events cost per frame, measured with BPF_PROG_TEST_RUN
 * (issue 4: counters and events at most 3% of the 64-byte path). One
 * master-ingress instance with counters on, in a private pin folder, runs the
 * same wire->slave frame with events off, with events on for drops only
 * (the frame is not a drop: the cost of the check), and with every decision
 * sent to the ring buffer (rate-limited per CPU: past the limit, the cost of
 * the limiter). Nothing reads the ring, as when no monitor keeps up.
 *
 *   node dist/bench/events-cost.js [--repeat 2000000] [--rounds 7]
 */
import { mkdirSync, rmSync } from 'node:fs';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BpfObject, mapUpdate, progTestRun } from '../native/libbpf.js';
import {
  encodeIvbAddrOwner,
  encodeIvbPort,
  encodeIvbPortKey,
  encodeIvbSettings,
  encodeIvbSlave,
} from '../maps/generated.js';
import { addrKeyOf } from '../controller/src/bpf/addr-key.js';
import { arg, u32 } from './lib/args.js';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** A 64-byte UDP frame from the wire to 198.18.0.10. */
function frame(): Buffer {
  const f = Buffer.alloc(64);
  Buffer.from([2, 0, 0, 0, 0, 1]).copy(f, 0);
  Buffer.from([2, 0, 0, 0, 0, 0x99]).copy(f, 6);
  f.writeUInt16BE(0x0800, 12);
  f[14] = 0x45;
  f.writeUInt16BE(50, 16);
  f[22] = 64;
  f[23] = 17;
  Buffer.from([198, 18, 0, 1]).copy(f, 26);
  Buffer.from([198, 18, 0, 10]).copy(f, 30);
  f.writeUInt16BE(9, 34);
  f.writeUInt16BE(9, 36);
  f.writeUInt16BE(30, 38);
  return f;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function main(): void {
  const repeat = arg('repeat', 2_000_000);
  const rounds = arg('rounds', 7);
  const pins = `/sys/fs/bpf/ivb-events-cost-${process.pid}`;
  mkdirSync(pins, { recursive: true });
  const obj = BpfObject.open(join(REPO, 'bpf', 'master_ingress.bpf.o'), { pinRoot: pins });
  try {
    obj.setRodata('ivb_port_id', u32(1));
    obj.setRodata('ivb_counters_enabled', u32(1));
    obj.load();
    const prog = obj.programFd('ivb_master_ingress');
    const masterMac = Buffer.from([2, 0, 0, 0, 0, 1]);
    mapUpdate(obj.mapFd('ivb_ports'), encodeIvbPortKey({ portId: 1 }), encodeIvbPort({ masterIfindex: 1, masterMac, mode: 0, flags: 0, nrSlaves: 1, options: 0 }));
    // the owner is "up" in a namespace test-run cannot redirect into: the verdict is what is measured
    mapUpdate(obj.mapFd('ivb_slaves'), u32(1), encodeIvbSlave({ devId: 1, flags: 1, mtu: 1500, peerIfindex: 1, portId: 1 }));
    const addr = Buffer.alloc(16);
    Buffer.from([198, 18, 0, 10]).copy(addr);
    const k = addrKeyOf(1, 4, addr);
    mapUpdate(obj.mapFd(k.map), k.key, encodeIvbAddrOwner({ peerIfindex: 1, prefixlen: 24, slave: 1 }));
    const settings = obj.mapFd('ivb_settings');
    const data = frame();
    const modes: Array<[string, number]> = [
      ['events off', 0],
      ['events: drops only', 1],
      ['events: every decision', 2],
    ];
    const results: Record<string, number[]> = {};
    for (let r = 0; r < rounds; r++) {
      for (const [name, events] of modes) {
        mapUpdate(settings, u32(0), encodeIvbSettings({ events, eventsPerSec: 0 }));
        const t = progTestRun(prog, { data, repeat });
        (results[name] ??= []).push(t.durationNs);
      }
    }
    mapUpdate(settings, u32(0), encodeIvbSettings({ events: 0, eventsPerSec: 0 }));
    const base = median(results['events off']!);
    console.log(`master_ingress, 64-byte wire->slave frame, counters on, ${rounds} rounds x ${repeat} runs (median ns/run):`);
    for (const [name] of modes) {
      const m = median(results[name]!);
      console.log(`  ${name.padEnd(24)} ${m.toFixed(1)} ns  (${(((m - base) / base) * 100).toFixed(1)}% vs events off)`);
    }
  } finally {
    obj.close();
    rmSync(pins, { recursive: true, force: true });
  }
}

main();
