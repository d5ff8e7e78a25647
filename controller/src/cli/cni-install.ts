// SPDX-License-Identifier: GPL-2.0-only
/**
 * `ipvlan-bpf cni install [--dir DIR] [--force]`: puts the CNI plugin where
 * runtimes look for plugins (CNI_PATH; /opt/cni/bin by default) as a small
 * executable that runs this installation's plugin with this node. Runtimes
 * exec plugins with their own, often minimal, environment, so the wrapper
 * names node and the plugin by absolute path instead of relying on PATH.
 *
 * Idempotent: the same installation writes the same bytes, and a file that
 * already has them is left alone. The file is written next to its place and
 * renamed over it, so a runtime never executes a half-written plugin. A file
 * of that name we did not write is refused unless --force.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, realpathSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { EEXIST, EINVAL, IvbError } from '../errors.js';
import { repoRoot } from '../paths.js';
import { CNI_NEEDS, missingLine, missingRequirements } from '../platform/requirements.js';
import { packageVersion } from './version.js';

const DEFAULT_CNI_BIN_DIR = '/opt/cni/bin';
const CNI_PLUGIN_NAME = 'ipvlan-bpf-cni';
/** where Debian's containernetworking-plugins puts the IPAM plugins */
const DEBIAN_CNI_DIR = '/usr/lib/cni';
const IPAM_PLUGINS = ['host-local', 'dhcp', 'static'];
/** the wrapper's second line: how a later install knows the file is ours */
const MARKER = `# ${CNI_PLUGIN_NAME}: written by "ipvlan-bpf cni install"`;

export interface CniInstallOptions {
  dir: string;
  force: boolean;
}

export type CniInstallOutcome = 'installed' | 'replaced' | 'unchanged';

function parseCniInstallArgs(words: readonly string[]): CniInstallOptions {
  const o: CniInstallOptions = { dir: DEFAULT_CNI_BIN_DIR, force: false };
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    if (w === '--dir' || w === 'dir') {
      const v = words[++i];
      if (!v) throw new IvbError('IPVLAN_E_USAGE', `cni install: "${w}" needs a directory`, EINVAL);
      o.dir = v;
    } else if (w === '--force') o.force = true;
    else throw new IvbError('IPVLAN_E_USAGE', `cni install: unknown argument "${w}" (--dir DIR, --force)`, EINVAL);
  }
  return o;
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** The plugin executable's text for this installation (node and the package, by real path). */
function cniWrapper(): string {
  const plugin = realpathSync(join(repoRoot(), 'bin', 'ipvlan-bpf-cni.js'));
  const { version } = packageVersion();
  return [
    '#!/bin/sh',
    `${MARKER} (ipvlan-bpf ${version})`,
    `exec ${shellQuote(realpathSync(process.execPath))} ${shellQuote(plugin)} "$@"`,
    '',
  ].join('\n');
}

/** Writes DIR/ipvlan-bpf-cni; what it did, and the path. */
function installCniPlugin(o: CniInstallOptions): { path: string; outcome: CniInstallOutcome } {
  const path = join(o.dir, CNI_PLUGIN_NAME);
  const text = cniWrapper();
  let outcome: CniInstallOutcome = 'installed';
  if (existsSync(path)) {
    const old = readFileSync(path, 'utf8');
    if (old === text) return { path, outcome: 'unchanged' };
    if (!old.split('\n')[1]?.startsWith(MARKER) && !o.force) {
      throw new IvbError('IPVLAN_E_EXISTS', `${path} exists and was not written by "ipvlan-bpf cni install": remove it, or use --force to replace it`, EEXIST);
    }
    outcome = 'replaced';
  }
  mkdirSync(o.dir, { recursive: true, mode: 0o755 });
  const tmp = join(o.dir, `.${CNI_PLUGIN_NAME}.${process.pid}.tmp`);
  try {
    writeFileSync(tmp, text, { mode: 0o755 });
    chmodSync(tmp, 0o755); // whatever the umask
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw new IvbError('IPVLAN_E_STATE', `cni install: cannot write ${path}: ${(e as Error).message}`);
  }
  return { path, outcome };
}

async function runCniInstall(words: readonly string[]): Promise<number> {
  const o = parseCniInstallArgs(words);
  const { path, outcome } = installCniPlugin(o);
  process.stdout.write(outcome === 'unchanged' ? `${path} is up to date\n` : `${outcome} ${path}\n`);
  // what the plugin will need when a runtime calls it: said now, not at the first pod
  const missing = await missingRequirements(CNI_NEEDS);
  if (missing.length) process.stderr.write(`ipvlan-bpf: note: the plugin will fail until installed: ${missingLine(missing)}\n`);
  const ipam = [o.dir, DEBIAN_CNI_DIR].some((d) => IPAM_PLUGINS.some((p) => existsSync(join(d, p))));
  if (!ipam) {
    process.stderr.write(`ipvlan-bpf: note: no IPAM plugin (${IPAM_PLUGINS.join(', ')}) in ${o.dir} or ${DEBIAN_CNI_DIR}: apt-get install containernetworking-plugins, and put ${DEBIAN_CNI_DIR} in the runtime's CNI_PATH\n`);
  }
  return 0;
}

/** `ipvlan-bpf cni SUBCOMMAND`. */
export async function runCni(words: readonly string[]): Promise<number> {
  const [sub, ...rest] = words;
  if (sub === 'install') return runCniInstall(rest);
  throw new IvbError('IPVLAN_E_USAGE', `cni: unknown command "${sub ?? ''}" (ipvlan-bpf cni install [--dir DIR] [--force])`, EINVAL);
}
