// SPDX-License-Identifier: GPL-2.0-only
/**
 * What each program costs the verifier (issue 12: at most 50 000 processed
 * instructions and 100 ms per program). Loads every port program of this
 * build in each of its load-time shapes (counters on/off, traced for tests
 * and explain) against maps pinned in a private bpffs folder, and prints
 * processed instructions (bpf_prog_info.verified_insns), the wall time of the
 * load (open + verify + JIT) and the program's size.
 *
 *   node dist/bench/verifier.js [--json] [--dir FOLDER_OF_OBJECTS]
 */
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { BpfObject, progInfo } from '../native/libbpf.js';
import { bpffsRoot, bpfObjectPath } from '../controller/src/paths.js';
import { u32 } from './lib/args.js';

interface Shape {
  name: string;
  rodata: Record<string, number>;
}

const SHAPES: Shape[] = [
  { name: 'counters on', rodata: { ivb_counters_enabled: 1 } },
  { name: 'counters off', rodata: {} },
  { name: 'traced (tests, explain)', rodata: { ivb_counters_enabled: 1, ivb_trace_enabled: 1 } },
];
const PROGRAMS = ['master_ingress', 'slave_egress', 'peer_egress'] as const;

export interface VerifierCost {
  program: string;
  shape: string;
  verifiedInsns: number | null;
  loadMs: number;
  xlatedInsns: number;
  jitedBytes: number;
}

function measureVerifier(objDir?: string): VerifierCost[] {
  const pins = join(bpffsRoot(), `ivb-verifier-${process.pid}`);
  mkdirSync(pins, { recursive: true });
  const out: VerifierCost[] = [];
  try {
    // the maps first, with no program (as the controller makes them): each load below is verify + JIT only
    const maps = BpfObject.open(objDir ? join(objDir, 'master_ingress.bpf.o') : bpfObjectPath('master_ingress.bpf.o'), { pinRoot: pins });
    try {
      for (const prog of maps.programNames()) maps.setAutoload(prog, false);
      maps.load();
    } finally {
      maps.close();
    }
    for (const program of PROGRAMS) {
      for (const shape of SHAPES) {
        const obj = BpfObject.open(objDir ? join(objDir, `${program}.bpf.o`) : bpfObjectPath(`${program}.bpf.o`), { pinRoot: pins });
        try {
          for (const [k, v] of Object.entries(shape.rodata)) obj.setRodata(k, u32(v));
          const t0 = performance.now();
          obj.load();
          const loadMs = performance.now() - t0;
          const info = progInfo(obj.programFd(`ivb_${program}`));
          out.push({
            program,
            shape: shape.name,
            verifiedInsns: info.verifiedInsns ?? null,
            loadMs,
            xlatedInsns: info.xlatedBytes / 8,
            jitedBytes: info.jitedBytes,
          });
        } finally {
          obj.close();
        }
      }
    }
  } finally {
    rmSync(pins, { recursive: true, force: true });
  }
  return out;
}

if (process.argv[1]?.endsWith('verifier.js')) {
  const d = process.argv.indexOf('--dir');
  const rows = measureVerifier(d >= 0 ? process.argv[d + 1] : undefined);
  if (process.argv.includes('--json')) {
    process.stdout.write(JSON.stringify(rows, null, 2) + '\n');
  } else {
    process.stdout.write('| program | shape | verified insns | load ms | xlated insns | JIT bytes |\n| --- | --- | ---: | ---: | ---: | ---: |\n');
    for (const r of rows) {
      process.stdout.write(`| ${r.program} | ${r.shape} | ${r.verifiedInsns ?? '?'} | ${r.loadMs.toFixed(0)} | ${r.xlatedInsns} | ${r.jitedBytes} |\n`);
    }
  }
}
