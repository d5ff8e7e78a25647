#!/usr/bin/env node
// SPDX-License-Identifier: GPL-2.0-only
// The last build step (after make -C bpf and tsc): records the objects' build
// id, commit and compiler in dist/build-info.json (controller/src/platform/build-info.ts),
// and the map layout fingerprint in dist/layout-fingerprint.json (controller/src/bpf/fingerprint-cache.ts).
import { recordBuild } from '../dist/controller/src/platform/build-info.js';

const rec = recordBuild();
process.stderr.write(`[build] BPF objects ${rec.buildId} (${rec.commit ?? 'no commit'}, ${rec.clang ?? 'clang unknown'})\n`);
try {
  // needs libbpf (it reads the maps the object declares); without it every command computes the fingerprint itself
  const { layoutFingerprint } = await import('../dist/controller/src/bpf/datapath.js');
  const { recordFingerprint } = await import('../dist/controller/src/bpf/fingerprint-cache.js');
  recordFingerprint(layoutFingerprint(true));
} catch (e) {
  process.stderr.write(`[build] layout fingerprint not recorded (${e instanceof Error ? e.message.split('\n')[0] : String(e)}): commands compute it at start\n`);
}
