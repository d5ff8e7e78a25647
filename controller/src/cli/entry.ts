// SPDX-License-Identifier: GPL-2.0-only
/**
 * What bin/ipvlan-bpf.js runs: checks that the host has what the command
 * needs at run time (libbpf, iproute2, ...), naming the Debian package of
 * whatever is missing in one line, before the command's modules (and with
 * them libbpf through koffi) are imported. `version` and `cni install` run
 * on a host that lacks them.
 */
import { IvbError, errorLine } from '../errors.js';
import { parseGlobal, type Parsed } from './args.js';
import { cliRequirements, missingLine, missingRequirements } from '../platform/requirements.js';

export async function run(argv: readonly string[]): Promise<number> {
  // a reader that went away (`ipvlan-bpf demo | head`) must not kill a command
  // halfway: an unhandled EPIPE would skip the demo's cleanup and leave its namespaces
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EPIPE') throw e;
  });
  let parsed: Parsed | null = null;
  try {
    parsed = parseGlobal(argv);
  } catch {
    parsed = null; // a usage error: main() reports it
  }
  const object = parsed?.words[0];
  // the commands that must work on a host still missing libbpf or iproute2 (main.js loads both)
  if (parsed && (object === 'version' || object === 'cni')) {
    try {
      if (object === 'version') return await (await import('./version.js')).runVersion(parsed.global.json, parsed.global.pretty, parsed.words.slice(1));
      return await (await import('./cni-install.js')).runCni(parsed.words.slice(1));
    } catch (e) {
      process.stderr.write(`ipvlan-bpf: ${errorLine(e)}\n`);
      return e instanceof IvbError && e.code === 'IPVLAN_E_USAGE' ? 2 : 1;
    }
  }
  const missing = await missingRequirements(cliRequirements(object));
  if (missing.length) {
    process.stderr.write(`ipvlan-bpf: ${missingLine(missing)}\n`);
    return 1;
  }
  const { main } = await import('./main.js');
  return main(argv);
}
