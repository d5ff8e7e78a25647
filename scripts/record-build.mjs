#!/usr/bin/env node
// SPDX-License-Identifier: GPL-2.0-only
// The last build step (after make -C bpf and tsc): records the objects' build
// id, commit and compiler in dist/build-info.json (controller/src/platform/build-info.ts),
// and the map layout fingerprint in dist/layout-fingerprint.json (controller/src/bpf/fingerprint-cache.ts).
import { recordBuild } from '../dist/controller/src/platform/build-info.js';
import { layoutFingerprint } from '../dist/controller/src/bpf/datapath.js';
import { recordFingerprint } from '../dist/controller/src/bpf/fingerprint-cache.js';

const rec = recordBuild();
recordFingerprint(layoutFingerprint(true));
process.stderr.write(`[build] BPF objects ${rec.buildId} (${rec.commit ?? 'no commit'}, ${rec.clang ?? 'clang unknown'})\n`);
