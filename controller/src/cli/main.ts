// SPDX-License-Identifier: GPL-2.0-only
/**
 * The `ipvlan-bpf` command: thin over the library (link manager, learner,
 * demo). Errors print as one line, `ipvlan-bpf: MESSAGE`, with exit status 1
 * (2 for usage errors), like iproute2.
 */
import { IvbError, errorLine } from '../errors.js';
import { parseDevOnly, parseGlobal, parseLinkAdd, parseLinkSet, type GlobalOptions } from './args.js';
// everything else is loaded by the command that needs it (start-up time: `version` loads no binding at all)

const HELP = `Usage: ipvlan-bpf [ OPTIONS ] OBJECT { COMMAND | help }
  ipvlan-bpf [-n NETNS] link add link MASTER name SLAVE [mtu MTU] [type ipvlan [mode l2|l3|l3s] [bridge|private|vepa]]
  ipvlan-bpf [-n NETNS] link set dev SLAVE [source-validation on|off] [type ipvlan [mode l2|l3|l3s] [bridge|private|vepa]]
  ipvlan-bpf [-n NETNS] link del [dev] SLAVE
  ipvlan-bpf [-n NETNS] [-j] link show [[dev] SLAVE]
  ipvlan-bpf stats [[dev] DEVICE] [-j] [--watch [SECONDS]]
                            counters per slave and master (iproute2 stats64 names), drops by reason
  ipvlan-bpf monitor [--drops] [-j] [--rate N]
                            live datapath decisions (sampled; events are on only while it runs)
  ipvlan-bpf explain --master MASTER (--frame HEX | --src A --dst B [--proto icmp|udp|tcp|arp])
                     [--from wire|SLAVE] [--src-mac MAC] [--dst-mac MAC] [--size N] [-j]
                            what the datapath would do with a frame, and why
  ipvlan-bpf agent [--metrics 127.0.0.1:PORT] [--api SOCKET]
                            learn slave addresses (runs until stopped); Prometheus metrics; control API
  ipvlan-bpf sync           one resync of every port's addresses and slaves
  ipvlan-bpf gc             remove what a crash left behind (pins, map entries, peers, records)
  ipvlan-bpf upgrade        replace every port's programs with this build's, atomically per hook
  ipvlan-bpf demo           the HOWTO's example in namespaces, with traffic, then cleanup
  ipvlan-bpf cni install [--dir DIR] [--force]
                            put the CNI plugin in DIR (default /opt/cni/bin); idempotent
  ipvlan-bpf [-j] version   package version, BPF objects' build id, kernel features, missing packages
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
    const [object, cmd, ...rest] = words;
    let netns: string | null = null;
    if (object !== undefined && object !== 'help' && object !== 'version') {
      const { describeCurrentNetns } = await import('../netlink/netns.js');
      const { enterInitNetns } = await import('../netlink/context.js');
      // where the command runs: -n NETNS, else the namespace we were started in (ip netns exec, nsenter)
      netns = global.netns ?? describeCurrentNetns().name;
      enterInitNetns();
    }
    switch (object) {
      case undefined:
      case 'help':
        process.stdout.write(HELP + '\n');
        return object === undefined ? 2 : 0;
      case 'version': {
        const { runVersion } = await import('./version.js');
        return runVersion(global.json, global.pretty, words.slice(1));
      }
      case 'cni': {
        const { runCni } = await import('./cni-install.js');
        return runCni(words.slice(1));
      }
      case 'link':
      case 'l':
        if ((cmd === undefined || ['show', 'list', 'ls'].includes(cmd)) && (await linkShowViaApi(global, netns, rest))) return 0;
        return await runLink(global, netns, cmd, rest);
      case 'stats': {
        const { parseStatsArgs, runStats } = await import('../stats/command.js');
        return runStats(parseStatsArgs(words.slice(1), global.json, global.pretty));
      }
      case 'monitor': {
        const { parseMonitorArgs, runMonitor } = await import('../monitor/command.js');
        return runMonitor(parseMonitorArgs(words.slice(1), global.json));
      }
      case 'explain': {
        const { runExplain } = await import('../explain/command.js');
        return runExplain(words.slice(1), global.netns, global.json, global.pretty);
      }
      case 'agent': {
        const { parseAgentArgs, runAgent } = await import('../agent/agent.js');
        return await runAgent(parseAgentArgs(words.slice(1)));
      }
      case 'sync': {
        const { resyncOnce } = await import('../agent/learner.js');
        resyncOnce((l) => process.stderr.write(`ipvlan-bpf: ${l}\n`));
        return 0;
      }
      case 'gc': {
        const { runGc } = await import('./maintenance.js');
        return runGc(global.json);
      }
      case 'upgrade': {
        const { runUpgrade } = await import('./maintenance.js');
        return runUpgrade([cmd, ...rest].filter((w): w is string => w !== undefined), global.json);
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

/**
 * `link show` through the agent's API when it serves one (same output as
 * the direct path); false when there is no agent to ask.
 */
const API_SHOW_TIMEOUT_MS = 5_000;

async function linkShowViaApi(global: GlobalOptions, netns: string | null, rest: string[]): Promise<boolean> {
  const name = parseDevOnly(rest, false, 'link show');
  // loaded here only: protobufjs is for the API, not for every command
  const { ApiClient } = await import('../api/client.js');
  const { linkFromMsg, linkMsgText } = await import('../api/convert.js');
  const client = await ApiClient.tryConfigured();
  if (!client) return false;
  try {
    let r;
    try {
      r = await client.call({ linkList: { ...(name === null ? {} : { name }), netns: netns ?? '', onlyNetns: global.netns !== null } }, API_SHOW_TIMEOUT_MS);
    } catch (e) {
      // an agent too busy to answer: the same view, read directly
      if (e instanceof IvbError && e.code === 'IPVLAN_E_AGENT' && !process.env.IPVLAN_BPF_API) return false;
      throw e;
    }
    const links = r.linkList?.links ?? [];
    if (global.json) print(global, links.map(linkFromMsg));
    else if (links.length) process.stdout.write(links.map(linkMsgText).join('\n') + '\n');
    return true;
  } finally {
    client.close();
  }
}

async function runLink(global: GlobalOptions, netns: string | null, cmd: string | undefined, rest: string[]): Promise<number> {
  const { linkAdd, linkDel, linkSet, linkShow } = await import('../link/manager.js');
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
      const { toJson, toText } = await import('./show.js');
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
