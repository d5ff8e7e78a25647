// SPDX-License-Identifier: GPL-2.0-only
/**
 * rtnetlink from the process: dumps of links (RTM_GETLINK) and addresses
 * (RTM_GETADDR) of one namespace, decoded into the same shape iproute2's
 * `ip -j -d link show` / `ip -j addr show` give (links.ts), and the writes
 * `link add` makes (a veth pair with its peer created straight in its
 * namespace, link settings, an address, a link deleted), each acked by the
 * kernel; without a process per read or write. A hand-written codec of the few messages and attributes
 * we use (include/uapi/linux/{netlink,rtnetlink,if_link,if_addr,veth}.h): no
 * library covers exactly this (libnl-route would need a binding per getter,
 * the npm `netlink` package is unmaintained since 2020), and the
 * message format is a stable kernel ABI. The socket is opened inside the
 * namespace (setns on this thread) and closed before returning: nothing
 * holds the namespace afterwards.
 */
import { LibcError, closeFd, describeErrno, netlinkRecv, netlinkSend, netlinkSocket, openRdonly, setNetlinkExtAck, setRecvTimeout } from '../../../native/libc.js';
import { withNetns } from '../../../native/libbpf.js';
import { EINVAL, IvbError, isIvbError, isSysError } from '../errors.js';
import { bytesToAddr, type Family } from './addr.js';
import { NETNS_RUN_DIR, initNetnsPath, netnsRefFile, type NetnsRef } from './netns.js';
import { readdirSync } from 'node:fs';
import type { IpAddrInfo, IpAddrLink, IpLink } from './links.js';

const NETLINK_ROUTE = 0;
const NLMSG_ERROR = 2;
const NLMSG_DONE = 3;
const NLM_F_REQUEST = 0x1;
const NLM_F_ACK = 0x4;
const NLM_F_DUMP = 0x300;
const NLM_F_EXCL = 0x200;
const NLM_F_CREATE = 0x400;
/** in an ack: the request was not copied back (NLM_F_CAPPED) / extended-ack attributes follow (NLM_F_ACK_TLVS) */
const NLM_F_CAPPED = 0x100;
const NLM_F_ACK_TLVS = 0x200;
const NLMSGERR_ATTR_MSG = 1;
const NLA_F_NESTED = 0x8000;
export const RTM_NEWLINK = 16;
export const RTM_DELLINK = 17;
const RTM_GETLINK = 18;
export const RTM_NEWADDR = 20;
export const RTM_DELADDR = 21;
const RTM_GETADDR = 22;
const RTM_NEWROUTE = 24;
const RTM_DELROUTE = 25;
const RTM_GETROUTE = 26;
const NLM_F_REPLACE = 0x100;
const RTM_NEWNSID = 88;
const RTM_GETNSID = 90;
const NETNSA_NSID = 1;
const NETNSA_FD = 3;
const RTM_NEWRULE = 32;
const RTM_DELRULE = 33;
const RTM_GETRULE = 34;
const FRA_IIFNAME = 3;
const FRA_PRIORITY = 6;
const FRA_TABLE = 15;
/** fib_rule_hdr.action */
const FR_ACT_TO_TBL = 1;
const FR_ACT_BLACKHOLE = 6;
/** fib_rule_hdr.flags: the rule's iif device does not exist (ip shows iif_detached) */
const FIB_RULE_IIF_DETACHED = 0x8;
const RT_SCOPE_NOWHERE = 255;
const AF_UNSPEC = 0;
const AF_INET = 2;
const AF_INET6 = 10;

const IFLA_ADDRESS = 1;
const IFLA_IFNAME = 3;
const IFLA_MTU = 4;
const IFLA_LINK = 5;
const IFLA_MASTER = 10;
const IFLA_OPERSTATE = 16;
const IFLA_LINKINFO = 18;
const IFLA_IFALIAS = 20;
const IFLA_AF_SPEC = 26;
const IFLA_EXT_MASK = 29;
const IFLA_LINK_NETNSID = 37;
const IFLA_NET_NS_FD = 28;
const IFLA_INFO_KIND = 1;
const IFLA_INFO_DATA = 2;
const VETH_INFO_PEER = 1;
const IFLA_INFO_SLAVE_KIND = 4;
const IFLA_INET6_ADDR_GEN_MODE = 8;
/** RTEXT_FILTER_SKIP_STATS: no per-link statistics in the dump (we read none) */
const RTEXT_FILTER_SKIP_STATS = 1 << 3;

const IFA_ADDRESS = 1;
const IFA_LOCAL = 2;
const IFA_FLAGS = 8;
const RTA_DST = 1;
const RTA_OIF = 4;
const RTA_GATEWAY = 5;
const RTA_PRIORITY = 6;
const RTA_METRICS = 8;
const RTA_TABLE = 15;
const RTAX_MTU = 2;
const RTAX_ADVMSS = 8;
export const RT_TABLE_MAIN = 254;
const RTPROT_BOOT = 3;
const RTN_UNICAST = 1;
const RT_SCOPE_UNIVERSE = 0;
const IFA_F_NODAD = 0x02;
const RT_SCOPE_LINK = 253;
export const IFF_UP = 0x1;
export const IFF_NOARP = 0x80;
const IFA_F_DADFAILED = 0x08;
const IFA_F_TENTATIVE = 0x40;

/** iproute2's names of the IFF_* flags it prints, in its order */
const IFF_NAMES: Array<[number, string]> = [
  [0x2, 'BROADCAST'],
  [0x4, 'DEBUG'],
  [0x8, 'LOOPBACK'],
  [0x10, 'POINTOPOINT'],
  [0x20, 'NOTRAILERS'],
  [0x80, 'NOARP'],
  [0x100, 'PROMISC'],
  [0x200, 'ALLMULTI'],
  [0x400, 'MASTER'],
  [0x800, 'SLAVE'],
  [0x1000, 'MULTICAST'],
  [0x2000, 'PORTSEL'],
  [0x4000, 'AUTOMEDIA'],
  [0x8000, 'DYNAMIC'],
  [0x1, 'UP'],
  [0x10000, 'LOWER_UP'],
  [0x20000, 'DORMANT'],
  [0x40000, 'ECHO'],
];
const OPERSTATES = ['UNKNOWN', 'NOTPRESENT', 'DOWN', 'LOWERLAYERDOWN', 'TESTING', 'DORMANT', 'UP'];
const ADDR_GEN_MODES = ['eui64', 'none', 'stable_secret', 'random'];
const ARPHRD: Record<number, string> = { 1: 'ether', 772: 'loopback', 65534: 'none' };

let seq = 0;
const DUMP_TIMEOUT_MS = 5_000;
const EAGAIN = 11;

/** The attributes of one message part: type -> payload (the last one wins, as the kernel sends each once). */
function attrs(buf: Buffer, start: number, end: number): Map<number, Buffer> {
  const out = new Map<number, Buffer>();
  let off = start;
  while (off + 4 <= end) {
    const len = buf.readUInt16LE(off);
    const type = buf.readUInt16LE(off + 2) & 0x3fff; // without NLA_F_NESTED / NLA_F_NET_BYTEORDER
    if (len < 4 || off + len > end) break;
    out.set(type, buf.subarray(off + 4, off + len));
    off += (len + 3) & ~3;
  }
  return out;
}

function cstr(b: Buffer | undefined): string | undefined {
  if (!b) return undefined;
  const nul = b.indexOf(0);
  return b.subarray(0, nul < 0 ? b.length : nul).toString('utf8');
}

function mac(b: Buffer): string {
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

/**
 * Sends a dump request (HEADER: the family message after nlmsghdr) on a
 * netlink socket of PROTOCOL in NETNS and returns every message part of the answer.
 */
export function dump(type: number, header: Buffer, netns: NetnsRef, protocol = NETLINK_ROUTE): Array<{ type: number; body: Buffer }> {
  const run = (): Array<{ type: number; body: Buffer }> => {
    const fd = netlinkSocket(protocol);
    try {
      // a dump the kernel does not finish must not hang the caller for ever
      setRecvTimeout(fd, DUMP_TIMEOUT_MS);
      const s = ++seq;
      const msg = Buffer.alloc(16 + header.length);
      msg.writeUInt32LE(msg.length, 0);
      msg.writeUInt16LE(type, 4);
      msg.writeUInt16LE(NLM_F_REQUEST | NLM_F_DUMP, 6);
      msg.writeUInt32LE(s, 8);
      header.copy(msg, 16);
      netlinkSend(fd, msg);
      const out: Array<{ type: number; body: Buffer }> = [];
      const buf = Buffer.alloc(64 * 1024);
      for (;;) {
        const n = netlinkRecv(fd, buf);
        let off = 0;
        while (off + 16 <= n) {
          const len = buf.readUInt32LE(off);
          const mtype = buf.readUInt16LE(off + 4);
          if (len < 16 || off + len > n) throw new IvbError('IPVLAN_E_IPROUTE', 'rtnetlink: truncated message');
          if (buf.readUInt32LE(off + 8) === s) {
            if (mtype === NLMSG_DONE) return out;
            if (mtype === NLMSG_ERROR) {
              const errno = -buf.readInt32LE(off + 16);
              if (errno === 0) return out;
              throw new IvbError('IPVLAN_E_IPROUTE', `netlink dump: ${describeErrno(errno)}`, errno);
            }
            // a copy: the receive buffer is reused
            out.push({ type: mtype, body: Buffer.from(buf.subarray(off + 16, off + len)) });
          }
          off += (len + 3) & ~3;
        }
      }
    } finally {
      closeFd(fd);
    }
  };
  // one more try when the kernel did not answer in time (EAGAIN from the receive timeout)
  const runOnce = run;
  const runTwice = (): Array<{ type: number; body: Buffer }> => {
    try {
      return runOnce();
    } catch (e) {
      if (!(e instanceof LibcError) || e.errno !== EAGAIN) throw e;
      try {
        return runOnce();
      } catch (e2) {
        if (e2 instanceof LibcError && e2.errno === EAGAIN) {
          throw new IvbError('IPVLAN_E_IPROUTE', `rtnetlink dump: no answer from the kernel in ${DUMP_TIMEOUT_MS} ms, twice`);
        }
        throw e2;
      }
    }
  };
  return inNamespace(netns, runTwice);
}

/** Runs FN on this thread in NETNS (null: where the process works, the init namespace: context.ts). */
function inNamespace<T>(netns: NetnsRef, fn: () => T): T {
  const file = netnsRefFile(netns);
  if (file === null) return fn();
  try {
    return withNetns(file, fn);
  } catch (e) {
    // as `ip -n NAME` says it
    const code = (e as { code?: unknown }).code;
    const which = typeof netns === 'string' ? netns : file;
    if (code === 'ENOENT') throw new IvbError('IPVLAN_E_IPROUTE', `Cannot open network namespace "${which}": No such file or directory`);
    // a file that is no namespace: one being deleted (`ip netns del`
    // unmounts, then unlinks) is gone as much as one already unlinked
    if (code === 'EINVAL') throw new IvbError('IPVLAN_E_IPROUTE', `Cannot open network namespace "${which}": not a network namespace (any more)`);
    throw e;
  }
}

/** An RTM_NEWLINK/RTM_DELLINK body (master and lower device as ifindexes: no dump to name them from). */
export function decodeLink(body: Buffer): IpLink {
  // struct ifinfomsg: family u8, pad u8, type u16, index i32, flags u32, change u32
  const arphrd = body.readUInt16LE(2);
  const ifindex = body.readInt32LE(4);
  const iff = body.readUInt32LE(8);
  const a = attrs(body, 16, body.length);
  const flags = IFF_NAMES.filter(([bit]) => iff & bit).map(([, name]) => name);
  if (iff & 0x1 && !(iff & 0x10000)) flags.unshift('NO-CARRIER');
  const link: IpLink = {
    ifindex,
    ifname: cstr(a.get(IFLA_IFNAME)) ?? '',
    flags,
    mtu: a.get(IFLA_MTU)?.readUInt32LE(0) ?? 0,
    link_type: ARPHRD[arphrd] ?? String(arphrd),
  };
  const op = a.get(IFLA_OPERSTATE);
  if (op) link.operstate = OPERSTATES[op[0]!] ?? 'UNKNOWN';
  const address = a.get(IFLA_ADDRESS);
  if (address && address.length === 6) link.address = mac(address);
  const lower = a.get(IFLA_LINK);
  if (lower) link.link_index = lower.readInt32LE(0);
  const nsid = a.get(IFLA_LINK_NETNSID);
  if (nsid) link.link_netnsid = nsid.readInt32LE(0);
  const master = a.get(IFLA_MASTER);
  if (master) link.master = String(master.readUInt32LE(0));
  const alias = cstr(a.get(IFLA_IFALIAS));
  if (alias) link.ifalias = alias;
  const info = a.get(IFLA_LINKINFO);
  if (info) {
    const ia = attrs(info, 0, info.length);
    link.linkinfo = {};
    const kind = cstr(ia.get(IFLA_INFO_KIND));
    const slaveKind = cstr(ia.get(IFLA_INFO_SLAVE_KIND));
    if (kind) link.linkinfo.info_kind = kind;
    if (slaveKind) link.linkinfo.info_slave_kind = slaveKind;
  }
  const spec = a.get(IFLA_AF_SPEC);
  if (spec) {
    const inet6 = attrs(spec, 0, spec.length).get(AF_INET6);
    const mode = inet6 ? attrs(inet6, 0, inet6.length).get(IFLA_INET6_ADDR_GEN_MODE) : undefined;
    if (mode) link.inet6_addr_gen_mode = ADDR_GEN_MODES[mode[0]!] ?? String(mode[0]);
  }
  return link;
}

/** Every link of NETNS (null: init), as `ip -j -d link show` has them (master and same-namespace link by name). */
export function rtnlLinks(netns: NetnsRef): IpLink[] {
  const req = Buffer.alloc(16 + 8);
  req.writeUInt8(AF_UNSPEC, 0);
  // IFLA_EXT_MASK u32
  req.writeUInt16LE(8, 16);
  req.writeUInt16LE(IFLA_EXT_MASK, 18);
  req.writeUInt32LE(RTEXT_FILTER_SKIP_STATS, 20);
  const links = dump(RTM_GETLINK, req, netns)
    .filter((m) => m.type === RTM_NEWLINK)
    .map((m) => decodeLink(m.body));
  const byIndex = new Map(links.map((l) => [l.ifindex, l]));
  for (const l of links) {
    if (l.master !== undefined) l.master = byIndex.get(Number(l.master))?.ifname ?? l.master;
    // iproute2 names the lower device when it is in the same namespace
    if (l.link_index !== undefined && l.link_netnsid === undefined) l.link = byIndex.get(l.link_index)?.ifname ?? null;
  }
  return links;
}

/** An RTM_NEWADDR/RTM_DELADDR body: the link's ifindex and the address, or null for a family we do not key. */
export function decodeAddr(body: Buffer): { ifindex: number; info: IpAddrInfo } | null {
  // struct ifaddrmsg: family u8, prefixlen u8, flags u8, scope u8, index u32
  const family = body.readUInt8(0);
  if (family !== AF_INET && family !== AF_INET6) return null;
  const a = attrs(body, 8, body.length);
  const raw = a.get(IFA_LOCAL) ?? a.get(IFA_ADDRESS);
  if (!raw) return null;
  const ifaFlags = a.get(IFA_FLAGS)?.readUInt32LE(0) ?? body.readUInt8(2);
  const padded = Buffer.alloc(16);
  raw.copy(padded, 0, 0, Math.min(raw.length, 16));
  const info: IpAddrInfo = {
    family: family === AF_INET ? 'inet' : 'inet6',
    local: bytesToAddr(family === AF_INET ? 4 : 6, padded),
    prefixlen: body.readUInt8(1),
  };
  if (ifaFlags & IFA_F_TENTATIVE) info.tentative = true;
  if (ifaFlags & IFA_F_DADFAILED) info.dadfailed = true;
  return { ifindex: body.readUInt32LE(4), info };
}

/** Every address of NETNS, per link, as `ip -j addr show` has them. */
export function rtnlAddrs(netns: NetnsRef, links: IpLink[] = rtnlLinks(netns)): IpAddrLink[] {
  const byIndex = new Map<number, IpAddrLink>(links.map((l) => [l.ifindex, { ...l, addr_info: [] }]));
  const req = Buffer.alloc(8);
  req.writeUInt8(AF_UNSPEC, 0);
  for (const m of dump(RTM_GETADDR, req, netns)) {
    if (m.type !== RTM_NEWADDR) continue;
    const d = decodeAddr(m.body);
    const owner = d ? byIndex.get(d.ifindex) : undefined;
    if (d && owner) owner.addr_info.push(d.info);
  }
  return [...byIndex.values()];
}

/** One route of a table, as a dump gives it: destination (null: default), prefix length, output link. */
export interface RtnlRoute {
  dst: string | null;
  dstLen: number;
  oif: number | null;
  gateway: string | null;
  /** RTN_*: 1 unicast, 6 blackhole, ... */
  type: number;
}

/**
 * The unicast routes of TABLE for FAMILY in NETNS (with ALLTYPES: blackhole,
 * unreachable and the rest too), from an RTM_GETROUTE dump kept by table
 * here (the kernel's filter needs strict checking). A table never used is
 * simply empty; a failed dump throws, never "no routes".
 */
export function rtnlRoutes(netns: NetnsRef, family: Family, table: number, allTypes = false): RtnlRoute[] {
  const req = Buffer.alloc(12);
  req.writeUInt8(family === 4 ? AF_INET : AF_INET6, 0);
  const out: RtnlRoute[] = [];
  for (const m of dump(RTM_GETROUTE, req, netns)) {
    if (m.type !== RTM_NEWROUTE || m.body.length < 12) continue;
    const a = attrs(m.body, 12, m.body.length);
    const t = a.get(RTA_TABLE)?.readUInt32LE(0) ?? m.body.readUInt8(4);
    const type = m.body.readUInt8(7);
    if (t !== table || (!allTypes && type !== RTN_UNICAST)) continue;
    const text = (raw: Buffer | undefined): string | null => {
      if (!raw) return null;
      const padded = Buffer.alloc(16);
      raw.copy(padded, 0, 0, Math.min(raw.length, 16));
      return bytesToAddr(family, padded);
    };
    out.push({
      dst: text(a.get(RTA_DST)),
      dstLen: m.body.readUInt8(1),
      oif: a.get(RTA_OIF)?.readUInt32LE(0) ?? null,
      gateway: text(a.get(RTA_GATEWAY)),
      type,
    });
  }
  return out;
}

/** One policy rule, as a dump gives it. */
export interface RtnlRule {
  priority: number;
  iifname?: string;
  table: number;
  action: number;
  /** the iif device does not exist (any more) */
  iifDetached: boolean;
}

/** The policy rules of FAMILY in NETNS (RTM_GETRULE dump); a failed dump throws. */
export function rtnlRules(netns: NetnsRef, family: Family): RtnlRule[] {
  const req = Buffer.alloc(12);
  req.writeUInt8(family === 4 ? AF_INET : AF_INET6, 0);
  const out: RtnlRule[] = [];
  for (const m of dump(RTM_GETRULE, req, netns)) {
    if (m.type !== RTM_NEWRULE || m.body.length < 12) continue;
    const a = attrs(m.body, 12, m.body.length);
    const iifname = cstr(a.get(FRA_IIFNAME));
    out.push({
      priority: a.get(FRA_PRIORITY)?.readUInt32LE(0) ?? 0,
      ...(iifname !== undefined ? { iifname } : {}),
      table: a.get(FRA_TABLE)?.readUInt32LE(0) ?? m.body.readUInt8(4),
      action: m.body.readUInt8(7),
      iifDetached: (m.body.readUInt32LE(8) & FIB_RULE_IIF_DETACHED) !== 0,
    });
  }
  return out;
}

/**
 * nsid (as NETNS sees them) -> name, for the namespaces named under
 * /run/netns that NETNS has an id for (`ip netns list-id`): one RTM_GETNSID
 * per named namespace, over one socket in NETNS. Asking assigns no id.
 */
export function nsidNames(netns: NetnsRef): Map<number, string> {
  const out = new Map<number, string>();
  let names: string[];
  try {
    names = readdirSync(NETNS_RUN_DIR);
  } catch (e) {
    if (isSysError(e, 'ENOENT')) return out; // no namespace was ever named
    throw e;
  }
  if (names.length === 0) return out;
  withRtnl(netns, (w) => {
    for (const name of names) {
      let nsFd: number;
      try {
        nsFd = openRdonly(`${NETNS_RUN_DIR}/${name}`);
      } catch (e) {
        // deleted since it was listed, or not a namespace file
        if (e instanceof LibcError) continue;
        throw e;
      }
      try {
        // struct rtgenmsg (family, padded to 4), then NETNSA_FD
        let reply: Buffer | null;
        try {
          reply = w.request(RTM_GETNSID, 0, Buffer.concat([Buffer.alloc(4), u32(NETNSA_FD, nsFd)]), `netns id of ${name}`, RTM_NEWNSID);
        } catch (e) {
          // EINVAL: the file is no namespace (any more): `ip netns del`
          // unmounts before it unlinks, and a namespace going away anywhere
          // on the host must not fail the question for the others
          if (refusedWith(e, EINVAL)) continue;
          throw e;
        }
        const id = reply ? attrs(reply, 4, reply.length).get(NETNSA_NSID)?.readInt32LE(0) : undefined;
        if (id !== undefined && id >= 0) out.set(id, name);
      } finally {
        closeFd(nsFd);
      }
    }
  });
  return out;
}

// ---- writes ----

function align4(n: number): number {
  return (n + 3) & ~3;
}

/** One attribute (type, payload), padded to 4 bytes. */
function attr(type: number, payload: Buffer): Buffer {
  const out = Buffer.alloc(align4(4 + payload.length));
  out.writeUInt16LE(4 + payload.length, 0);
  out.writeUInt16LE(type, 2);
  payload.copy(out, 4);
  return out;
}

function nest(type: number, ...children: Buffer[]): Buffer {
  return attr(type | NLA_F_NESTED, Buffer.concat(children));
}

function u32(type: number, v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0, 0);
  return attr(type, b);
}

function u8(type: number, v: number): Buffer {
  return attr(type, Buffer.from([v]));
}

function str(type: number, v: string): Buffer {
  return attr(type, Buffer.concat([Buffer.from(v, 'utf8'), Buffer.alloc(1)]));
}

function macAttr(type: number, text: string): Buffer {
  const b = Buffer.from(text.split(':').map((x) => parseInt(x, 16)));
  if (b.length !== 6 || [...b].some((x) => Number.isNaN(x))) throw new IvbError('IPVLAN_E_IPROUTE', `bad MAC address ${text}`);
  return attr(type, b);
}

/** struct ifinfomsg: family, type, index, flags, change */
function ifinfomsg(ifindex: number, flags = 0, change = 0): Buffer {
  const b = Buffer.alloc(16);
  b.writeInt32LE(ifindex, 4);
  b.writeUInt32LE(flags >>> 0, 8);
  b.writeUInt32LE(change >>> 0, 12);
  return b;
}

/** A refused request: the kernel's extended-ack text where it gave one (as iproute2 prints it), else strerror. */
function refusal(what: string, errno: number, extack: string | undefined): IvbError {
  return new IvbError('IPVLAN_E_IPROUTE', `${what}: ${extack ? `Error: ${extack}` : describeErrno(errno)}`, errno);
}

/** E is the kernel's refusal of a request with one of ERRNOS (a dump or write here that it answered so). */
export function refusedWith(e: unknown, ...errnos: number[]): e is IvbError {
  return isIvbError(e, 'IPVLAN_E_IPROUTE') && e.errno !== undefined && errnos.includes(e.errno);
}

/** Runs FN; a refusal with one of ERRNOS means what it asked for is so already, and is no error. */
export function tolerating(fn: () => void, ...errnos: number[]): void {
  try {
    fn();
  } catch (e) {
    if (!refusedWith(e, ...errnos)) throw e;
  }
}

/** The extended-ack message of an NLMSG_ERROR part (BUF[OFF..END]), if the kernel sent one. */
function extackMessage(buf: Buffer, off: number, end: number): string | undefined {
  const flags = buf.readUInt16LE(off + 6);
  if (!(flags & NLM_F_ACK_TLVS)) return undefined;
  // struct nlmsgerr: error i32, then the request's nlmsghdr (and its payload unless capped)
  const reqLen = flags & NLM_F_CAPPED ? 16 : buf.readUInt32LE(off + 20);
  const start = off + 16 + 4 + align4(reqLen);
  return cstr(attrs(buf, start, end).get(NLMSGERR_ATTR_MSG));
}

/**
 * Requests against one namespace over one rtnetlink socket: each is sent
 * with NLM_F_ACK and waited for; a refusal throws an IvbError naming the
 * operation and the device (`what`) with the kernel's reason and errno.
 */
export class RtnlWriter {
  private readonly buf = Buffer.alloc(8192);

  constructor(private readonly fd: number) {}

  /**
   * Sends one request and waits for its ack; with REPLYTYPE, the body of the
   * kernel's answer of that type (sent before the ack) is returned.
   */
  request(type: number, flags: number, body: Buffer, what: string, replyType?: number): Buffer | null {
    const s = ++seq;
    let reply: Buffer | null = null;
    const msg = Buffer.alloc(16 + body.length);
    msg.writeUInt32LE(msg.length, 0);
    msg.writeUInt16LE(type, 4);
    msg.writeUInt16LE(NLM_F_REQUEST | NLM_F_ACK | flags, 6);
    msg.writeUInt32LE(s, 8);
    body.copy(msg, 16);
    netlinkSend(this.fd, msg);
    for (;;) {
      let n: number;
      try {
        n = netlinkRecv(this.fd, this.buf);
      } catch (e) {
        if (e instanceof LibcError && e.errno === EAGAIN) {
          throw new IvbError('IPVLAN_E_IPROUTE', `${what}: no answer from the kernel in ${DUMP_TIMEOUT_MS} ms`);
        }
        throw e;
      }
      for (let off = 0; off + 16 <= n; ) {
        const len = this.buf.readUInt32LE(off);
        if (len < 16 || off + len > n) throw new IvbError('IPVLAN_E_IPROUTE', `${what}: truncated netlink answer`);
        if (this.buf.readUInt32LE(off + 8) === s) {
          const mtype = this.buf.readUInt16LE(off + 4);
          if (mtype === NLMSG_ERROR) {
            const errno = -this.buf.readInt32LE(off + 16);
            if (errno === 0) return reply;
            throw refusal(what, errno, extackMessage(this.buf, off, off + len));
          }
          // a copy: the receive buffer is reused
          if (mtype === replyType) reply = Buffer.from(this.buf.subarray(off + 16, off + len));
        }
        off += align4(len);
      }
    }
  }

  /**
   * A veth pair: NAME here, its peer PEER.name in PEER.netnsPath (the
   * namespace's file; absent: here), created by one request so that no half
   * of it ever exists where it should not.
   */
  addVeth(
    name: string,
    self: { mtu: number; mac: string; flags?: number },
    peer: { name: string; mtu: number; mac: string; flags?: number; netnsPath?: string },
  ): void {
    const nsFd = peer.netnsPath === undefined ? -1 : openRdonly(peer.netnsPath);
    try {
      const peerMsg = Buffer.concat([
        ifinfomsg(0, peer.flags ?? 0, peer.flags ?? 0),
        str(IFLA_IFNAME, peer.name),
        u32(IFLA_MTU, peer.mtu),
        macAttr(IFLA_ADDRESS, peer.mac),
        ...(nsFd >= 0 ? [u32(IFLA_NET_NS_FD, nsFd)] : []),
      ]);
      const body = Buffer.concat([
        ifinfomsg(0, self.flags ?? 0, self.flags ?? 0),
        str(IFLA_IFNAME, name),
        u32(IFLA_MTU, self.mtu),
        macAttr(IFLA_ADDRESS, self.mac),
        nest(IFLA_LINKINFO, str(IFLA_INFO_KIND, 'veth'), nest(IFLA_INFO_DATA, attr(VETH_INFO_PEER, peerMsg))),
      ]);
      this.request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, body, `link add ${name} type veth peer ${peer.name}`);
    } finally {
      if (nsFd >= 0) closeFd(nsFd);
    }
  }

  /**
   * Changes link NAME as `ip link set` would: the IFF_* bits of MASK to
   * those of FLAGS (UP, NOARP), its alias, its IPv6 address generation mode
   * (the kernel applies them in that order, as one `ip link set` line).
   */
  setLink(name: string, o: { flags?: number; mask?: number; alias?: string; addrGenModeNone?: boolean; address?: string; mtu?: number }): void {
    const body = Buffer.concat([
      ifinfomsg(0, o.flags ?? 0, o.mask ?? 0),
      str(IFLA_IFNAME, name),
      ...(o.address !== undefined ? [macAttr(IFLA_ADDRESS, o.address)] : []),
      ...(o.mtu !== undefined ? [u32(IFLA_MTU, o.mtu)] : []),
      ...(o.alias !== undefined ? [str(IFLA_IFALIAS, o.alias)] : []),
      ...(o.addrGenModeNone ? [nest(IFLA_AF_SPEC, nest(AF_INET6, u8(IFLA_INET6_ADDR_GEN_MODE, 1)))] : []),
    ]);
    const parts = [
      o.address !== undefined ? `address ${o.address}` : '',
      o.mtu !== undefined ? `mtu ${o.mtu}` : '',
      o.alias !== undefined ? 'alias' : '',
      o.mask ? 'flags' : '',
      o.addrGenModeNone ? 'addrgenmode none' : '',
    ].filter(Boolean);
    this.request(RTM_NEWLINK, 0, body, `link set dev ${name} ${parts.join(', ')}`);
  }

  /** Adds ADDR/PREFIXLEN to the link IFINDEX; NODAD: no duplicate detection (IPv6). */
  addAddr(ifindex: number, family: Family, addr: Buffer, prefixlen: number, o: { nodad?: boolean; linkScope?: boolean; what: string }): void {
    // struct ifaddrmsg: family, prefixlen, flags, scope, index
    const head = Buffer.alloc(8);
    head.writeUInt8(family === 4 ? AF_INET : AF_INET6, 0);
    head.writeUInt8(prefixlen, 1);
    head.writeUInt8(o.nodad ? IFA_F_NODAD : 0, 2);
    head.writeUInt8(o.linkScope ? RT_SCOPE_LINK : 0, 3);
    head.writeUInt32LE(ifindex, 4);
    const bytes = addr.subarray(0, family === 4 ? 4 : 16);
    const body = Buffer.concat([head, attr(IFA_LOCAL, bytes), attr(IFA_ADDRESS, bytes), ...(o.nodad ? [u32(IFA_FLAGS, IFA_F_NODAD)] : [])]);
    this.request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, body, o.what);
  }

  /** Deletes ADDR/PREFIXLEN from the link IFINDEX. */
  delAddr(ifindex: number, family: Family, addr: Buffer, prefixlen: number, what: string): void {
    const head = Buffer.alloc(8);
    head.writeUInt8(family === 4 ? AF_INET : AF_INET6, 0);
    head.writeUInt8(prefixlen, 1);
    head.writeUInt32LE(ifindex, 4);
    const bytes = addr.subarray(0, family === 4 ? 4 : 16);
    this.request(RTM_DELADDR, 0, Buffer.concat([head, attr(IFA_LOCAL, bytes), attr(IFA_ADDRESS, bytes)]), what);
  }

  /**
   * Moves link IFINDEX into the namespace of the file NSFILE and names it
   * NEWNAME there, by one request. Not atomic: the kernel (6.18, measured)
   * moves the link first, so when NEWNAME is taken there the request fails
   * with EEXIST and the link is already there under its old name.
   */
  moveLink(ifindex: number, nsFile: string, newName: string, what: string): void {
    const nsFd = openRdonly(nsFile);
    try {
      this.request(RTM_NEWLINK, 0, Buffer.concat([ifinfomsg(ifindex), u32(IFLA_NET_NS_FD, nsFd), str(IFLA_IFNAME, newName)]), what);
    } finally {
      closeFd(nsFd);
    }
  }

  /**
   * Adds a unicast route as `ip route add` does (protocol boot): DST/DSTLEN
   * out of OIF, via GATEWAY when given; without one the route is link-scoped
   * unless SCOPE says otherwise. TABLE defaults to main.
   */
  addRoute(r: {
    family: Family;
    dst: Buffer;
    dstLen: number;
    oif: number;
    gateway?: Buffer;
    priority?: number;
    table?: number;
    scope?: number;
    mtu?: number;
    advmss?: number;
    /** `ip route replace`: create, or replace the route to the same destination */
    replace?: boolean;
    what: string;
  }): void {
    const len = r.family === 4 ? 4 : 16;
    const table = r.table ?? RT_TABLE_MAIN;
    // struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags u32
    const head = Buffer.alloc(12);
    head.writeUInt8(r.family === 4 ? AF_INET : AF_INET6, 0);
    head.writeUInt8(r.dstLen, 1);
    head.writeUInt8(table < 256 ? table : 0, 4);
    head.writeUInt8(RTPROT_BOOT, 5);
    head.writeUInt8(r.scope ?? (r.gateway ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK), 6);
    head.writeUInt8(RTN_UNICAST, 7);
    const metrics = [
      ...(r.mtu !== undefined ? [u32(RTAX_MTU, r.mtu)] : []),
      ...(r.advmss !== undefined ? [u32(RTAX_ADVMSS, r.advmss)] : []),
    ];
    const body = Buffer.concat([
      head,
      u32(RTA_TABLE, table),
      ...(r.dstLen > 0 ? [attr(RTA_DST, r.dst.subarray(0, len))] : []),
      ...(r.gateway ? [attr(RTA_GATEWAY, r.gateway.subarray(0, len))] : []),
      u32(RTA_OIF, r.oif),
      ...(r.priority !== undefined ? [u32(RTA_PRIORITY, r.priority)] : []),
      ...(metrics.length ? [nest(RTA_METRICS, ...metrics)] : []),
    ]);
    this.request(RTM_NEWROUTE, NLM_F_CREATE | (r.replace ? NLM_F_REPLACE : NLM_F_EXCL), body, r.what);
  }

  /** Deletes the route to DST/DSTLEN in TABLE (out of OIF when given), as `ip route del` matches it. */
  delRoute(r: { family: Family; dst: Buffer; dstLen: number; table: number; oif?: number; type?: number; what: string }): void {
    const len = r.family === 4 ? 4 : 16;
    const head = Buffer.alloc(12);
    head.writeUInt8(r.family === 4 ? AF_INET : AF_INET6, 0);
    head.writeUInt8(r.dstLen, 1);
    head.writeUInt8(r.table < 256 ? r.table : 0, 4);
    head.writeUInt8(RT_SCOPE_NOWHERE, 6);
    head.writeUInt8(r.type ?? 0, 7);
    const body = Buffer.concat([
      head,
      u32(RTA_TABLE, r.table),
      ...(r.dstLen > 0 ? [attr(RTA_DST, r.dst.subarray(0, len))] : []),
      ...(r.oif ? [u32(RTA_OIF, r.oif)] : []),
    ]);
    this.request(RTM_DELROUTE, 0, body, r.what);
  }

  /** `ip rule add pref PRIORITY iif IIFNAME lookup TABLE` (or `blackhole`). */
  addRule(r: { family: Family; priority: number; iifname: string; table?: number; blackhole?: boolean; what: string }): void {
    // struct fib_rule_hdr: family, dst_len, src_len, tos, table, res1, res2, action, flags u32
    const head = Buffer.alloc(12);
    head.writeUInt8(r.family === 4 ? AF_INET : AF_INET6, 0);
    const table = r.blackhole ? 0 : (r.table ?? RT_TABLE_MAIN);
    head.writeUInt8(table < 256 ? table : 0, 4);
    head.writeUInt8(r.blackhole ? FR_ACT_BLACKHOLE : FR_ACT_TO_TBL, 7);
    const body = Buffer.concat([
      head,
      u32(FRA_PRIORITY, r.priority),
      str(FRA_IIFNAME, r.iifname),
      ...(r.blackhole ? [] : [u32(FRA_TABLE, table)]),
    ]);
    this.request(RTM_NEWRULE, NLM_F_CREATE | NLM_F_EXCL, body, r.what);
  }

  /** `ip rule del pref PRIORITY`: one rule of that preference, whatever else it says. */
  delRule(r: { family: Family; priority: number; what: string }): void {
    const head = Buffer.alloc(12);
    head.writeUInt8(r.family === 4 ? AF_INET : AF_INET6, 0);
    this.request(RTM_DELRULE, 0, Buffer.concat([head, u32(FRA_PRIORITY, r.priority)]), r.what);
  }

  /** Deletes link NAME (a veth takes its peer with it). */
  delLink(name: string): void {
    this.request(RTM_DELLINK, 0, Buffer.concat([ifinfomsg(0), str(IFLA_IFNAME, name)]), `link del ${name}`);
  }
}

/** Runs FN with a writer on an rtnetlink socket of NETNS (null: init); the socket is closed afterwards. */
export function withRtnl<T>(netns: NetnsRef, fn: (w: RtnlWriter) => T): T {
  return inNamespace(netns, () => {
    const fd = netlinkSocket(NETLINK_ROUTE);
    try {
      setRecvTimeout(fd, DUMP_TIMEOUT_MS);
      setNetlinkExtAck(fd);
      return fn(new RtnlWriter(fd));
    } finally {
      closeFd(fd);
    }
  });
}

/** The file a namespace is reached by: /run/netns/NAME, or the init namespace's through /proc. */
export function namespaceFile(netns: string | null): string {
  return netnsRefFile(netns) ?? initNetnsPath();
}
