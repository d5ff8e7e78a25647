// SPDX-License-Identifier: GPL-2.0-only
/**
 * `ipvlan-bpf explain`: what the datapath would do with a frame, decided by
 * the datapath itself. A fresh instance of the port's program (master
 * ingress for a frame from the wire, slave egress for one a slave sends) is
 * loaded against the live pinned maps with ivb_trace on and counters off,
 * the frame is run through it with BPF_PROG_TEST_RUN, and ivb_trace says
 * what it decided. Nothing live is changed: the attached programs are not
 * touched, counters are compiled out of the instance.
 *
 * Two side effects test-run cannot avoid, and how we avoid them:
 *  - bpf_clone_redirect really transmits: a broadcast/multicast frame would
 *    put real copies into the slaves. Such frames run in a scratch network
 *    namespace where no slave's ifindex exists, so the clones go nowhere
 *    (ivb_trace still counts the copies attempted). Their decisions do not
 *    depend on the FIB, which is the only thing the namespace changes.
 *  - a monitor that is on sees the test-run decision as an event.
 */
import { execFileSync } from 'node:child_process';
import { encodeSkbCtx, mapLookup, mapUpdate, progTestRun, withNetns } from '../../../native/libbpf.js';
import { IvbDecisionLayout, decodeIvbDecision, type IvbDecision } from '../../../maps/generated.js';
import { IvbError, EINVAL, ENODEV } from '../errors.js';
import { listPorts, type PortRecord } from '../state.js';
import { initNetnsPath, netnsPath } from '../netlink/netns.js';
import { loadPortInstance, portAddrs } from '../bpf/datapath.js';
import { actionName } from '../monitor/events.js';
import { summarizeFrame } from '../monitor/summary.js';
import { reasonLabel, reasonText } from '../stats/counters.js';
import { buildFrame, groupMac, isIpv6, parseHexFrame, type Proto } from './frame.js';

const TC_VERDICT: Record<number, string> = { [-1]: 'TC_ACT_UNSPEC', 0: 'TC_ACT_OK', 2: 'TC_ACT_SHOT', 7: 'TC_ACT_REDIRECT' };

/** A MAC no device of ours has: the "other host" on the wire or the next hop. */
const EXTERNAL_MAC = '02:00:5e:00:53:01';

export interface ExplainRequest {
  master: string;
  /** the master's namespace, when several masters share a name */
  netns?: string | null;
  /** "wire" or a slave's name */
  from: string;
  frame?: Buffer;
  src?: string;
  dst?: string;
  proto?: Proto;
  srcMac?: string;
  dstMac?: string;
  size?: number;
}

export interface ExplainResult {
  master: string;
  port_id: number;
  from: string;
  program: 'master_ingress' | 'slave_egress';
  /** enum ivb_action, lower case: pass, deliver, to_wire, to_master, route, route_pinned, drop */
  verdict: string;
  /** the slave it goes to ("" when none), or the master's name for to_wire/to_master/route_pinned */
  target: string;
  target_ifindex: number;
  reason: string;
  reason_text: string;
  /** broadcast/multicast copies the datapath would make */
  fanout_copies: number;
  tc_return: string;
  frame: string;
  summary: string;
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0, 0);
  return b;
}

function findPort(master: string, netns?: string | null): PortRecord {
  const ports = listPorts().filter((p) => p.master.name === master && (netns === undefined || p.master.netns === netns));
  if (ports.length === 0) throw new IvbError('IPVLAN_E_NO_DEVICE', `explain: "${master}" is not the master of any ipvlan-bpf slave`, ENODEV);
  if (ports.length > 1) throw new IvbError('IPVLAN_E_USAGE', `explain: several masters are named "${master}": say which namespace with -n`, EINVAL);
  return ports[0]!;
}

/** The frame the request describes, with the MACs the sender would use. */
function requestFrame(port: PortRecord, req: ExplainRequest): Buffer {
  if (req.frame) return req.frame;
  if (!req.src || !req.dst) throw new IvbError('IPVLAN_E_USAGE', 'explain: give --frame HEX, or --src and --dst', EINVAL);
  const proto = req.proto ?? 'icmp';
  const fromWire = req.from === 'wire';
  const masterMac = port.master.mac;
  let dstMac = req.dstMac;
  if (!dstMac) {
    const owners = portAddrs(port.portId);
    const owner = owners.find((a) => a.addr === req.dst && a.family === (isIpv6(req.dst!) ? 6 : 4));
    const srcOwner = owners.find((a) => a.addr === req.src);
    const group = proto === 'arp' ? 'ff:ff:ff:ff:ff:ff' : groupMac(req.dst, srcOwner?.prefixlen);
    if (group) dstMac = group;
    else if (fromWire) dstMac = masterMac; // the shared MAC: a slave's or the master's address
    // from a slave: a sibling's address resolves to the shared MAC (the kernel's "local" frame), anything else to a neighbour
    else dstMac = owner ? masterMac : EXTERNAL_MAC;
  }
  const srcMac = req.srcMac ?? (fromWire ? EXTERNAL_MAC : masterMac);
  return buildFrame({ src: req.src, dst: req.dst, proto, srcMac, dstMac, size: req.size });
}

let scratchSeq = 0;

/** Runs fn in an empty, throw-away network namespace (no device but lo). */
function inScratchNetns<T>(fn: (path: string) => T): T {
  const name = `ivb-explain-${process.pid}-${scratchSeq++}`;
  execFileSync('ip', ['netns', 'add', name], { stdio: 'ignore' });
  try {
    return withNetns(netnsPath(name), () => fn(netnsPath(name)));
  } finally {
    // a failure here is the command's failure: a scratch namespace must not stay behind
    execFileSync('ip', ['netns', 'del', name], { stdio: 'ignore' });
  }
}

/** Loads a traced, uncounted instance of the port's program against the live maps and runs the frame. */
function runTrace(
  port: PortRecord,
  kind: 'master_ingress' | 'slave_egress',
  frame: Buffer,
  ctx: { ifindex: number; ingressIfindex: number },
): { retval: number; decision: IvbDecision; scratch: boolean } {
  // traced, never counted (the live counters are what traffic did), copies not sent
  const obj = loadPortInstance(kind, port.portId, { trace: true, counters: false, dryRun: true });
  try {
    const prog = obj.programFd(`ivb_${kind}`);
    const trace = obj.mapFd('ivb_trace');
    mapUpdate(trace, u32(0), Buffer.alloc(IvbDecisionLayout.size));
    const group = (frame[0]! & 1) === 1;
    const exec = (ifindex: number): number =>
      progTestRun(prog, { data: frame, ctxIn: encodeSkbCtx({ ifindex, ingressIfindex: ctx.ingressIfindex }) }).retval;
    let retval: number;
    if (group) {
      // clones must not reach the real slaves (see the header comment): lo of an empty namespace
      retval = inScratchNetns(() => exec(1));
    } else {
      retval = withNetns(port.master.netns === null ? initNetnsPath() : netnsPath(port.master.netns), () => exec(ctx.ifindex));
    }
    const v = mapLookup(trace, u32(0), IvbDecisionLayout.size);
    if (!v) throw new IvbError('IPVLAN_E_BPF', 'explain: the instance left no trace');
    return { retval, decision: decodeIvbDecision(v), scratch: group };
  } finally {
    obj.close();
  }
}

function nameOf(port: PortRecord, ifindex: number): string {
  if (ifindex === 0) return '';
  if (ifindex === port.master.ifindex) return port.master.name;
  return port.slaves.find((s) => s.peerIfindex === ifindex)?.name ?? `if${ifindex}`;
}

export function explain(req: ExplainRequest): ExplainResult {
  const port = findPort(req.master, req.netns);
  let kind: 'master_ingress' | 'slave_egress';
  let ctx: { ifindex: number; ingressIfindex: number };
  if (req.from === 'wire') {
    kind = 'master_ingress';
    ctx = { ifindex: port.master.ifindex, ingressIfindex: port.master.ifindex };
  } else {
    const slave = port.slaves.find((s) => s.name === req.from || s.peerName === req.from);
    if (!slave) {
      throw new IvbError('IPVLAN_E_NO_DEVICE', `explain: "${req.from}" is not a slave of ${port.master.name} (say --from wire or a slave's name)`, ENODEV);
    }
    kind = 'slave_egress';
    ctx = { ifindex: slave.peerIfindex, ingressIfindex: slave.peerIfindex };
  }
  const frame = requestFrame(port, req);
  const { retval, decision } = runTrace(port, kind, frame, ctx);
  return {
    master: port.master.name,
    port_id: port.portId,
    from: req.from,
    program: kind,
    verdict: actionName(decision.action),
    target: nameOf(port, decision.targetIfindex),
    target_ifindex: decision.targetIfindex,
    reason: reasonLabel(decision.reason),
    reason_text: reasonText(decision.reason),
    fanout_copies: decision.fanout,
    tc_return: TC_VERDICT[retval] ?? String(retval),
    frame: frame.toString('hex'),
    summary: summarizeFrame(frame, frame.length),
  };
}

const VERDICT_TEXT: Record<string, string> = {
  pass: "to the master's own stack",
  deliver: 'delivered into the slave',
  to_wire: 'out of the master onto the wire',
  to_master: "into the master's stack, as if received on it",
  route: "routed by the master namespace's stack",
  route_pinned: 'routed out of the master (oif-pinned lookup)',
  drop: 'dropped',
  held: "held for the agent's slow path (sent again once the agent has re-read the port)",
};

export function formatExplain(r: ExplainResult): string {
  const lines = [
    `frame:   ${r.summary}`,
    `from:    ${r.from === 'wire' ? `the wire, into ${r.master}` : `slave ${r.from} (master ${r.master})`} [${r.program}]`,
    `verdict: ${r.verdict} (${VERDICT_TEXT[r.verdict] ?? r.verdict})${r.tc_return ? `, ${r.tc_return}` : ''}`,
  ];
  if (r.target) lines.push(`target:  ${r.target}`);
  if (r.reason !== 'none') lines.push(`reason:  ${r.reason}: ${r.reason_text}`);
  if (r.fanout_copies > 0) lines.push(`copies:  ${r.fanout_copies} broadcast/multicast cop${r.fanout_copies === 1 ? 'y' : 'ies'} to slaves`);
  return lines.join('\n');
}

export { parseHexFrame };
