// SPDX-License-Identifier: GPL-2.0-only
/**
 * `ipvlan-bpf-cni`: the CNI entry point. Reads CNI_* from the environment
 * and the network configuration from stdin, writes a result (ADD, VERSION)
 * or the spec's error JSON to stdout, logs to stderr, and exits 0 or 1.
 *
 * Start-up is part of every pod's creation: this module loads only the
 * config parser; the link manager (and with it libbpf through koffi) is
 * imported for the commands that need it, so VERSION and config errors
 * cost node's own start-up and nothing more.
 */
import { readFileSync } from 'node:fs';
import {
  CNI_E,
  CURRENT_VERSION,
  CniError,
  SUPPORTED_VERSIONS,
  isSupportedVersion,
  parseNetConf,
  resultForVersion,
  type CniErrorJson,
  type CniResult,
} from './types.js';
import { CNI_NEEDS, missingLine, missingRequirements } from '../platform/requirements.js';

const COMMANDS = ['ADD', 'DEL', 'CHECK', 'GC', 'STATUS', 'VERSION'] as const;
type Command = (typeof COMMANDS)[number];

/** The spec's container ID: alphanumerics, then also "_", "." and "-" (it becomes a file name). */
const CONTAINER_ID_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

function log(line: string): void {
  process.stderr.write(`ipvlan-bpf-cni: ${line}\n`);
}

function readStdin(): string {
  try {
    return readFileSync(0, 'utf8');
  } catch (e) {
    // no stdin at all (closed): VERSION accepts that, the others fail on parsing
    if ((e as NodeJS.ErrnoException).code === 'EAGAIN' || (e as NodeJS.ErrnoException).code === 'EOF') return '';
    throw new CniError(CNI_E.IO_FAILURE, 'failed to read the network configuration from stdin', (e as Error).message);
  }
}

function needEnv(name: string): string {
  const v = process.env[name];
  if (v === undefined || v === '') throw new CniError(CNI_E.INVALID_ENV, `required env variable ${name} missing`);
  return v;
}

function checkIfname(name: string): void {
  if (Buffer.byteLength(name) > 15 || name === '.' || name === '..' || /[/:\s]/.test(name)) {
    throw new CniError(CNI_E.INVALID_ENV, `CNI_IFNAME ${JSON.stringify(name)} is not a valid interface name`);
  }
}

function checkContainerId(id: string): void {
  if (!CONTAINER_ID_RE.test(id)) {
    throw new CniError(CNI_E.INVALID_ENV, `CNI_CONTAINERID ${JSON.stringify(id)} may hold only letters, digits, "_", "." and "-"`);
  }
}

/** The config's version when it is one we speak (errors are written in it), before any validation. */
function askedVersion(stdin: string): string | null {
  try {
    const v = (JSON.parse(stdin) as { cniVersion?: unknown }).cniVersion;
    if (typeof v === 'string' && isSupportedVersion(v)) return v;
  } catch (e) {
    // not JSON: answered in our own version
    if (!(e instanceof SyntaxError)) throw e;
  }
  return null;
}

function versionReply(stdin: string): string {
  return JSON.stringify({ cniVersion: askedVersion(stdin) ?? CURRENT_VERSION, supportedVersions: SUPPORTED_VERSIONS });
}

export async function main(): Promise<number> {
  const t0 = performance.now();
  let version: string = CURRENT_VERSION;
  try {
    const command = process.env.CNI_COMMAND ?? '';
    if (!(COMMANDS as readonly string[]).includes(command)) {
      throw new CniError(CNI_E.INVALID_ENV, command === '' ? 'required env variable CNI_COMMAND missing' : `unknown CNI_COMMAND: ${command}`);
    }
    const cmd = command as Command;
    const stdin = readStdin();
    version = askedVersion(stdin) ?? version;
    if (cmd === 'VERSION') {
      process.stdout.write(versionReply(stdin) + '\n');
      return 0;
    }
    // the environment first, as libcni's skel: a runtime's mistake is reported as such
    const cniPath = needEnv('CNI_PATH');
    let containerId = '';
    let ifname = '';
    let netns = '';
    if (cmd === 'ADD' || cmd === 'DEL' || cmd === 'CHECK') {
      containerId = needEnv('CNI_CONTAINERID');
      checkContainerId(containerId);
      ifname = needEnv('CNI_IFNAME');
      checkIfname(ifname);
      netns = cmd === 'DEL' ? (process.env.CNI_NETNS ?? '') : needEnv('CNI_NETNS');
    }
    const conf = parseNetConf(stdin);
    version = conf.cniVersion;
    // libbpf and the tools, before commands.js loads libbpf: one line naming the Debian package
    const missing = await missingRequirements(CNI_NEEDS);
    if (missing.length) throw new CniError(cmd === 'STATUS' ? CNI_E.NOT_AVAILABLE : CNI_E.INTERNAL, missingLine(missing));
    const c = await import('./commands.js');
    switch (cmd) {
      case 'ADD': {
        const r = c.cmdAdd(conf, { containerId, netns, ifname, cniPath }, log);
        process.stdout.write(JSON.stringify(resultForVersion(r as CniResult, conf.cniVersion)) + '\n');
        break;
      }
      case 'DEL':
        c.cmdDel(conf, { containerId, ifname, cniPath, ...(netns ? { netns } : {}) }, log);
        break;
      case 'CHECK':
        c.cmdCheck(conf, { containerId, netns, ifname, cniPath }, log);
        break;
      case 'GC':
        c.cmdGc(conf, cniPath, log);
        break;
      case 'STATUS':
        c.cmdStatus(conf, cniPath, log);
        break;
    }
    if (process.env.IPVLAN_BPF_CNI_TIMING) log(`${cmd} took ${(performance.now() - t0).toFixed(1)} ms`);
    return 0;
  } catch (e) {
    const err = toCniError(e);
    const out: CniErrorJson = { cniVersion: version, code: err.code, msg: err.message };
    if (err.details !== undefined) out.details = err.details;
    process.stdout.write(JSON.stringify(out) + '\n');
    log(`error ${err.code}: ${err.message}${err.details ? ` (${err.details})` : ''}`);
    if (process.env.IPVLAN_BPF_DEBUG && e instanceof Error) process.stderr.write(`${e.stack}\n`);
    return 1;
  }
}

/** Any failure as a CNI error: ours keep their code; the rest (iproute2, libbpf, the lock) are "internal". */
function toCniError(e: unknown): CniError {
  if (e instanceof CniError) return e;
  if (e instanceof Error) {
    const code = (e as { code?: unknown }).code;
    // a held state lock is transient: the runtime may try again
    if (code === 'IPVLAN_E_LOCK') return new CniError(CNI_E.TRY_AGAIN, e.message);
    return new CniError(CNI_E.INTERNAL, e.message.split('\n')[0] ?? e.message);
  }
  return new CniError(CNI_E.INTERNAL, String(e));
}
