// SPDX-License-Identifier: GPL-2.0-only
/*
 * `ipvlan-bpf demo`, the README's first command, run as a user runs it: a
 * child process on the real kernel. It must pass every path, read as a short
 * report, and leave nothing behind — after a full run and after Ctrl-C.
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it, expect } from 'vitest';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const CLI = join(REPO, 'bin', 'ipvlan-bpf.js');

interface DemoRun {
  pid: number;
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** IPVLAN_BPF_TIME_SCALE: slow machines (the TCG VM of scripts/vm) get longer */
const TIME_SCALE = Math.max(1, Number(process.env.IPVLAN_BPF_TIME_SCALE) || 1);
const DEMO_LIMIT_MS = 90_000 * TIME_SCALE;
const TEST_LIMIT_MS = DEMO_LIMIT_MS + 30_000;

/** Runs the demo; INTERRUPTWHEN, when given, sends SIGINT as soon as stdout matches it. */
function runDemo(interruptWhen?: RegExp): Promise<DemoRun> {
  const t0 = performance.now();
  const child = spawn(process.execPath, [CLI, 'demo'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  let interrupted = false;
  child.stdout.on('data', (b: Buffer) => {
    stdout += b.toString();
    if (interruptWhen && !interrupted && interruptWhen.test(stdout)) {
      interrupted = true;
      child.kill('SIGINT');
    }
  });
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  // a hung demo must not hang the suite; SIGKILL skips its cleanup, which the assertions then report
  const guard = setTimeout(() => child.kill('SIGKILL'), DEMO_LIMIT_MS);
  return new Promise((res) => {
    child.once('exit', (status, signal) => {
      clearTimeout(guard);
      res({ pid: child.pid ?? -1, status, signal, stdout, stderr, ms: performance.now() - t0 });
    });
  });
}

/** What a demo run could leave behind: its namespaces, its state folder, its pin subtree. */
function leftovers(): string[] {
  const netns = existsSync('/run/netns') ? readdirSync('/run/netns').filter((n) => n.startsWith('ivbdemo-')) : [];
  const state = readdirSync('/run').filter((n) => n.startsWith('ipvlan-bpf-demo-')).map((n) => `/run/${n}`);
  const pins = existsSync('/sys/fs/bpf')
    ? readdirSync('/sys/fs/bpf').filter((n) => n.startsWith('ipvlan-bpf-demo-')).map((n) => `/sys/fs/bpf/${n}`)
    : [];
  return [...netns.map((n) => `netns ${n}`), ...state, ...pins];
}

const FINAL = /^demo: (\d+)\/(\d+) paths as the kernel's ipvlan would do them$/;

function expectCleanRun(r: DemoRun): void {
  const lines = r.stdout.trimEnd().split('\n');
  expect(r.status, r.stderr).toBe(0);
  const m = lines[lines.length - 1]?.match(FINAL);
  expect(m, r.stdout).not.toBeNull();
  expect(m?.[1]).toBe(m?.[2]);
  expect(Number(m?.[2])).toBeGreaterThanOrEqual(20);
  expect(lines.filter((l) => / FAIL( |$)/.test(l))).toEqual([]);
  // a report a person reads: short, and every mode shown
  expect(lines.length).toBeLessThanOrEqual(60);
  for (const mode of ['l2 bridge', 'l2 private', 'l3 bridge']) expect(r.stdout).toContain(`\n${mode}:`);
  expect(r.ms).toBeLessThan(30_000 * TIME_SCALE);
}

describe('ipvlan-bpf demo', { timeout: TEST_LIMIT_MS }, () => {
  it('passes every path and leaves nothing behind', async () => {
    const r = await runDemo();
    expectCleanRun(r);
    expect(leftovers()).toEqual([]);
  });

  it('does so again (nothing from the first run gets in the way)', async () => {
    const r = await runDemo();
    expectCleanRun(r);
    expect(leftovers()).toEqual([]);
  });

  it('cleans up on Ctrl-C in the middle of a run', async () => {
    const r = await runDemo(/\nl2 private:/);
    expect(r.status, r.stderr).toBe(130);
    expect(r.stderr).toMatch(/SIGINT: cleaning up/);
    expect(leftovers()).toEqual([]);
  });
});
