// SPDX-License-Identifier: GPL-2.0-only
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // real namespaces, real BPF, real pings with short waits (the kernel
    // oracle uses 0.5 s): one file at a time, so no file's load (the fuzzer,
    // the soak) makes another's timing-sensitive cells flaky on two cores
    testTimeout: 120_000,
    hookTimeout: 600_000,
    fileParallelism: false,
    pool: 'forks',
  },
});
