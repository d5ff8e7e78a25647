#!/usr/bin/env node
// SPDX-License-Identifier: GPL-2.0-only
import { main } from '../dist/controller/src/cni/main.js';

main().then(
  (code) => {
    process.exitCode = code;
  },
  (e) => {
    process.stderr.write(`ipvlan-bpf-cni: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  },
);
