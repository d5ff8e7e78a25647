// SPDX-License-Identifier: GPL-2.0-only
/*
 * The shape of the loaded programs, as the kernel runs them (bpftool's dump
 * of the translated instructions), for every load-time setting the agent
 * and the tests use:
 *  - one exit: every decision goes through one call of ivb_verdict (count,
 *    event, trace), the compiler having merged the return sites;
 *  - every map lookup inlined by the verifier: a lookup left as a call of
 *    the bpf_map_lookup_elem helper means the map was chosen at run time
 *    (clang merged two lookups into one call), an indirect call per frame.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { BpfObject } from '../native/libbpf.js';
import { makePinRoot, removePinRoot, repoRoot } from './lib/bpfprog.js';

let pinRoot = '';

beforeAll(() => {
  pinRoot = makePinRoot(`ivb-shape-${process.pid}`);
});

afterAll(() => {
  if (pinRoot) removePinRoot(pinRoot);
});

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
}

/** The translated instructions of a program loaded with these .rodata settings. */
function xlated(kind: 'master_ingress' | 'slave_egress', rodata: Record<string, number>): string {
  const obj = BpfObject.open(path.join(repoRoot, 'bpf', `${kind}.bpf.o`), { pinRoot });
  try {
    obj.setRodata('ivb_port_id', u32(1));
    for (const [k, v] of Object.entries(rodata)) obj.setRodata(k, u32(v));
    obj.load();
    const pin = path.join(pinRoot, `prog_${kind}`);
    obj.pinProgram(`ivb_${kind}`, pin);
    try {
      return execFileSync('bpftool', ['prog', 'dump', 'xlated', 'pinned', pin], { encoding: 'utf8' });
    } finally {
      execFileSync('rm', ['-f', pin]);
    }
  } finally {
    obj.close();
  }
}

const SETTINGS: Array<[string, Record<string, number>]> = [
  ['counters on', { ivb_counters_enabled: 1 }],
  ['counters off', {}],
  ['traced (tests, explain)', { ivb_counters_enabled: 1, ivb_trace_enabled: 1 }],
];

describe('program shape', () => {
  for (const kind of ['master_ingress', 'slave_egress'] as const) {
    for (const [name, rodata] of SETTINGS) {
      it(`${kind}, ${name}: one call of ivb_verdict, no lookup left to the helper`, () => {
        const text = xlated(kind, rodata);
        const main = text.slice(0, text.indexOf('int ivb_verdict(') > 0 ? text.indexOf('int ivb_verdict(') : undefined);
        expect((main.match(/call pc[+-]\d+#\S*_ivb_verdict/g) ?? []).length).toBe(1);
        expect(text.match(/.*call bpf_map_lookup_elem#.*/g) ?? []).toEqual([]);
      });
    }
  }
});
