// SPDX-License-Identifier: GPL-2.0-only
/**
 * The `ipvlan-bpf` command: thin over the library (link manager, learner,
 * demo). Errors print as one line, `ipvlan-bpf: MESSAGE`, with exit status 1
 * (2 for usage errors), like iproute2.
 */
import { IvbError, errorLine } from '../errors.js';
import { parseDevOnly, parseGlobal, parseLinkAdd, parseLinkSet, type GlobalOptions } from './args.js';
import { linkAdd, linkDel, linkSet, linkShow } from '../link/manager.js';
import { toJson, toText } from './show.js';
import { describeCurrentNetns } from '../netlink/netns.js';
import { enterInitNetns } from '../netlink/context.js';

const HELP = `Usage: ipvlan-bpf [ OPTIONS ] OBJECT { COMMAND | help }
  ipvlan-bpf [-n NETNS] link add link MASTER name SLAVE [mtu MTU] [type ipvlan [mode l2|l3|l3s] [bridge|private|vepa]]
  ipvlan-bpf [-n NETNS] link set dev SLAVE [source-validation on|off] [type ipvlan [mode l2|l3|l3s] [bridge|private|vepa]]
  ipvlan-bpf [-n NETNS] link del [dev] SLAVE
  ipvlan-bpf [-n NETNS] [-j] link show [[dev] SLAVE]
  ipvlan-bpf agent          learn slave addresses (runs until stopped)
  ipvlan-bpf sync           one resync of every port's addresses and slaves
  ipvlan-bpf demo           the HOWTO's example in namespaces, with traffic, then cleanup
OPTIONS: -n NETNS (run in namespace NETNS, as ip -n) | -j (JSON) | -p (pretty JSON)
Defaults, as the kernel's: mode l3, flag bridge. Mode and flag are per master: the last writer wins.`;

function print(global: GlobalOptions, value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, global.pretty ? 2 : undefined) + '\n');
}

export async function main(argv: readonly string[]): Promise<number> {
  let global: GlobalOptions | null = null;
  try {
    const parsed = parseGlobal(argv);
    global = parsed.global;
    const words = parsed.words;
    // where the command runs: -n NETNS, else the namespace we were started in (ip netns exec, nsenter)
    const netns = global.netns ?? describeCurrentNetns().name;
    enterInitNetns();
    const [object, cmd, ...rest] = words;
    switch (object) {
      case undefined:
      case 'help':
        process.stdout.write(HELP + '\n');
        return object === undefined ? 2 : 0;
      case 'version':
        process.stdout.write('ipvlan-bpf 0.1.0\n');
        return 0;
      case 'link':
      case 'l':
        return runLink(global, netns, cmd, rest);
      case 'agent': {
        const { runAgent } = await import('../agent/agent.js');
        return runAgent();
      }
      case 'sync': {
        const { resyncOnce } = await import('../agent/learner.js');
        resyncOnce((l) => process.stderr.write(`ipvlan-bpf: ${l}\n`));
        return 0;
      }
      case 'demo': {
        const { runDemo } = await import('../demo/demo.js');
        return runDemo();
      }
      default:
        throw new IvbError('IPVLAN_E_USAGE', `Object "${object}" is unknown, try "ipvlan-bpf help".`);
    }
  } catch (e) {
    const msg = e instanceof IvbError || e instanceof Error ? errorLine(e) : String(e);
    process.stderr.write(`ipvlan-bpf: ${msg}\n`);
    if (process.env.IPVLAN_BPF_DEBUG && e instanceof Error) process.stderr.write(`${e.stack}\n`);
    return e instanceof IvbError && e.code === 'IPVLAN_E_USAGE' ? 2 : 1;
  }
}

function runLink(global: GlobalOptions, netns: string | null, cmd: string | undefined, rest: string[]): number {
  switch (cmd) {
    case 'add': {
      const a = parseLinkAdd(rest);
      linkAdd({ master: a.master, name: a.name, netns, mode: a.mode, flag: a.flag, typeArgs: a.typeArgs, mtu: a.mtu });
      return 0;
    }
    case 'set':
    case 'change': {
      const a = parseLinkSet(rest);
      linkSet({ name: a.name, netns, mode: a.mode, flag: a.flag, typeArgs: a.typeArgs, sourceValidation: a.sourceValidation });
      return 0;
    }
    case 'del':
    case 'delete': {
      linkDel(parseDevOnly(rest, true, 'link del')!, netns);
      return 0;
    }
    case undefined:
    case 'show':
    case 'list':
    case 'ls': {
      const name = parseDevOnly(rest, false, 'link show');
      const views = linkShow(name, netns, global.netns !== null);
      if (global.json) print(global, views.map(toJson));
      else if (views.length) process.stdout.write(views.map(toText).join('\n') + '\n');
      return 0;
    }
    case 'help':
      process.stdout.write(HELP + '\n');
      return 0;
    default:
      throw new IvbError('IPVLAN_E_USAGE', `Command "${cmd}" is unknown, try "ipvlan-bpf link help".`);
  }
}
