// SPDX-License-Identifier: GPL-2.0-only
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // real namespaces, real BPF: slow setup, and two cores
    testTimeout: 120_000,
    hookTimeout: 600_000,
    maxWorkers: 2,
    pool: 'forks',
  },
});
