#!/usr/bin/env node
// SPDX-License-Identifier: GPL-2.0-only
import { run } from '../dist/controller/src/cli/entry.js';

run(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e) => {
    process.stderr.write(`ipvlan-bpf: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  },
);
