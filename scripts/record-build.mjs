#!/usr/bin/env node
// SPDX-License-Identifier: GPL-2.0-only
// The last build step (after make -C bpf and tsc): records the objects' build
// id, commit and compiler in dist/build-info.json (controller/src/platform/build-info.ts).
import { recordBuild } from '../dist/controller/src/platform/build-info.js';

const rec = recordBuild();
process.stderr.write(`[build] BPF objects ${rec.buildId} (${rec.commit ?? 'no commit'}, ${rec.clang ?? 'clang unknown'})\n`);
