// SPDX-License-Identifier: GPL-2.0-only
/** `ipvlan-bpf gc` and `ipvlan-bpf upgrade`: keeping a host's state healthy. */
import { IvbError } from '../errors.js';
import { gc } from '../link/gc.js';
import { upgradePorts } from '../bpf/datapath.js';
import { upgradePeerForwarding } from '../link/manager.js';
import { listPorts, withLock } from '../state.js';

export function runGc(json: boolean): number {
  const removed = gc();
  if (json) process.stdout.write(JSON.stringify({ removed }) + '\n');
  else if (removed.length === 0) process.stdout.write('gc: nothing to remove\n');
  else for (const r of removed) process.stdout.write(`gc: removed ${r}\n`);
  return 0;
}

export function runUpgrade(words: readonly string[], json: boolean): number {
  if (words.length > 0) throw new IvbError('IPVLAN_E_USAGE', `upgrade: unknown argument "${words[0]}"`);
  const done = withLock(() => {
    const ports = listPorts();
    return [...upgradePorts(ports), ...upgradePeerForwarding(ports)];
  });
  if (json) process.stdout.write(JSON.stringify({ upgraded: done }) + '\n');
  else for (const d of done) process.stdout.write(`upgrade: ${d}\n`);
  return 0;
}
