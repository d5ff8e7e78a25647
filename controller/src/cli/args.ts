// SPDX-License-Identifier: GPL-2.0-only
/** iproute2-style argument parsing: global options, then OBJECT COMMAND ARGS. */
import { IvbError, EINVAL } from '../errors.js';
import type { Mode, PortFlag } from '../state.js';

export interface GlobalOptions {
  netns: string | null;
  json: boolean;
  pretty: boolean;
  details: boolean;
}

export interface Parsed {
  global: GlobalOptions;
  words: string[];
}

/** Global options, as `ip` takes them (-n NETNS, -j/-json, -p/-pretty, -d/-details). */
export function parseGlobal(argv: readonly string[]): Parsed {
  const global: GlobalOptions = { netns: null, json: false, pretty: false, details: false };
  let i = 0;
  for (; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('-') || a === '-') break;
    if (a === '-n' || a === '-netns' || a === '--netns') {
      const v = argv[++i];
      if (!v) throw new IvbError('IPVLAN_E_USAGE', `option "${a}" needs a network namespace name`, EINVAL);
      global.netns = v;
    } else if (a === '-j' || a === '-json' || a === '--json') global.json = true;
    else if (a === '-p' || a === '-pretty' || a === '--pretty') global.pretty = true;
    else if (a === '-d' || a === '-details' || a === '--details') global.details = true;
    else if (a === '-h' || a === '-help' || a === '--help') return { global, words: ['help'] };
    else if (a === '-V' || a === '-Version' || a === '--version') return { global, words: ['version'] };
    else throw new IvbError('IPVLAN_E_USAGE', `Option "${a}" is unknown, try "ipvlan-bpf help".`, EINVAL);
  }
  return { global, words: argv.slice(i) };
}

export interface IpvlanArgs {
  mode?: Mode;
  flag?: PortFlag;
  /** any ipvlan word was given (iproute2 then sends the flags attribute) */
  typeArgs: boolean;
}

/** `[mode l2|l3|l3s] [bridge|private|vepa]`, as iproute2's ipvlan_parse_opt. */
function parseIpvlanArgs(words: readonly string[]): IpvlanArgs {
  const out: IpvlanArgs = { typeArgs: false };
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    if (w === 'mode') {
      const v = words[++i];
      if (v !== 'l2' && v !== 'l3' && v !== 'l3s') {
        throw new IvbError('IPVLAN_E_MODE', `ipvlan: unknown mode "${v ?? ''}" (l2, l3 or l3s)`, EINVAL);
      }
      out.mode = v;
      out.typeArgs = true;
    } else if (w === 'bridge' || w === 'private' || w === 'vepa') {
      if (out.flag && out.flag !== w) {
        throw new IvbError('IPVLAN_E_FLAG', `ipvlan: "${out.flag}" and "${w}" cannot be combined: choose one of bridge, private, vepa`, EINVAL);
      }
      out.flag = w;
      out.typeArgs = true;
    } else {
      throw new IvbError('IPVLAN_E_USAGE', `ipvlan: unknown option "${w}"? (mode l2|l3|l3s, bridge|private|vepa)`, EINVAL);
    }
  }
  return out;
}

export interface LinkAddArgs extends IpvlanArgs {
  master: string;
  name: string;
  mtu?: number;
}

/** `link add link MASTER name SLAVE [mtu N] [type ipvlan [ARGS]]` (words after "add"). */
export function parseLinkAdd(words: readonly string[]): LinkAddArgs {
  let master: string | undefined;
  let name: string | undefined;
  let mtu: number | undefined;
  let typeAt = -1;
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    if (w === 'link') master = need(words, ++i, 'link');
    else if (w === 'name' || w === 'dev') name = need(words, ++i, w);
    else if (w === 'mtu') {
      const v = need(words, ++i, 'mtu');
      mtu = Number(v);
      if (!Number.isInteger(mtu) || mtu < 68 || mtu > 65535) {
        throw new IvbError('IPVLAN_E_USAGE', `Invalid "mtu" value "${v}" (68..65535)`, EINVAL);
      }
    } else if (w === 'type') {
      const t = need(words, ++i, 'type');
      if (t !== 'ipvlan') throw new IvbError('IPVLAN_E_USAGE', `type "${t}" is not supported: only "type ipvlan"`, EINVAL);
      typeAt = i + 1;
      break;
    } else if (name === undefined && !w.startsWith('-')) name = w;
    else throw new IvbError('IPVLAN_E_USAGE', `link add: unknown argument "${w}"`, EINVAL);
  }
  if (!master) throw new IvbError('IPVLAN_E_USAGE', 'link add: "link MASTER" is required', EINVAL);
  if (!name) throw new IvbError('IPVLAN_E_USAGE', 'link add: "name SLAVE" is required', EINVAL);
  const ip = parseIpvlanArgs(typeAt >= 0 ? words.slice(typeAt) : []);
  return { master, name, mtu, ...ip };
}

/** `link set dev SLAVE [source-validation on|off] [type ipvlan [ARGS]]` */
export function parseLinkSet(words: readonly string[]): { name: string; sourceValidation?: boolean } & IpvlanArgs {
  let name: string | undefined;
  let typeAt = -1;
  let sourceValidation: boolean | undefined;
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    if (w === 'dev' || w === 'name') name = need(words, ++i, w);
    else if (w === 'source-validation') {
      const v = need(words, ++i, w);
      if (v !== 'on' && v !== 'off') {
        throw new IvbError('IPVLAN_E_USAGE', `source-validation takes "on" or "off", not "${v}"`, EINVAL);
      }
      sourceValidation = v === 'on';
    }
    else if (w === 'type') {
      const t = need(words, ++i, 'type');
      if (t !== 'ipvlan') throw new IvbError('IPVLAN_E_USAGE', `type "${t}" is not supported: only "type ipvlan"`, EINVAL);
      typeAt = i + 1;
      break;
    } else if (name === undefined) name = w;
    else throw new IvbError('IPVLAN_E_USAGE', `link set: unknown argument "${w}"`, EINVAL);
  }
  if (!name) throw new IvbError('IPVLAN_E_USAGE', 'link set: "dev SLAVE" is required', EINVAL);
  return { name, sourceValidation, ...parseIpvlanArgs(typeAt >= 0 ? words.slice(typeAt) : []) };
}

/** `link del [dev] SLAVE` / `link show [dev] [SLAVE]` */
export function parseDevOnly(words: readonly string[], required: boolean, what: string): string | null {
  let name: string | null = null;
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    if (w === 'dev' || w === 'name') name = need(words, ++i, w);
    else if (name === null) name = w;
    else throw new IvbError('IPVLAN_E_USAGE', `${what}: unknown argument "${w}"`, EINVAL);
  }
  if (required && name === null) throw new IvbError('IPVLAN_E_USAGE', `${what}: "dev SLAVE" is required`, EINVAL);
  return name;
}

function need(words: readonly string[], i: number, what: string): string {
  const v = words[i];
  if (v === undefined || v === '') throw new IvbError('IPVLAN_E_USAGE', `"${what}" needs an argument`, EINVAL);
  return v;
}
