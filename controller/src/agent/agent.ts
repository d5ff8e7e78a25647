// SPDX-License-Identifier: GPL-2.0-only
/** `ipvlan-bpf agent`: the long-running learner. Forwarding does not depend on it being up. */
import { writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Learner } from './learner.js';
import { ensureDir, stateDir } from '../paths.js';

export async function runAgent(): Promise<number> {
  const log = (line: string): void => {
    process.stdout.write(`${new Date().toISOString()} ipvlan-bpf agent: ${line}\n`);
  };
  ensureDir(stateDir());
  const pidFile = join(stateDir(), 'agent.pid');
  writeFileSync(pidFile, String(process.pid));
  const learner = new Learner(log);
  learner.start();
  log('started');
  return new Promise<number>((resolve) => {
    const stop = (): void => {
      learner.stop();
      rmSync(pidFile, { force: true });
      log('stopped');
      resolve(0);
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
}
