// SPDX-License-Identifier: GPL-2.0-only
/**
 * rtnetlink dumps from the process: links (RTM_GETLINK) and addresses
 * (RTM_GETADDR) of one namespace, decoded into the same shape iproute2's
 * `ip -j -d link show` / `ip -j addr show` give (links.ts), without a
 * process per read. A hand-written codec of the few messages and attributes
 * we read (include/uapi/linux/{netlink,rtnetlink,if_link,if_addr}.h): no
 * library covers exactly this (libnl-route would need a binding per getter,
 * the npm `netlink` package is unmaintained since 2020), and the
 * message format is a stable kernel ABI. The socket is opened inside the
 * namespace (setns on this thread) and closed before returning: nothing
 * holds the namespace afterwards.
 */
import { LibcError, closeFd, netlinkRecv, netlinkSend, netlinkSocket, setRecvTimeout } from '../../../native/libc.js';
import { withNetns } from '../../../native/libbpf.js';
import { IvbError } from '../errors.js';
import { bytesToAddr } from './addr.js';
import { netnsPath } from './netns.js';
import type { IpAddrInfo, IpAddrLink, IpLink } from './links.js';

const NETLINK_ROUTE = 0;
const NLMSG_ERROR = 2;
const NLMSG_DONE = 3;
const NLM_F_REQUEST = 0x1;
const NLM_F_DUMP = 0x300;
export const RTM_NEWLINK = 16;
export const RTM_DELLINK = 17;
const RTM_GETLINK = 18;
export const RTM_NEWADDR = 20;
export const RTM_DELADDR = 21;
const RTM_GETADDR = 22;
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
const IFLA_INFO_KIND = 1;
const IFLA_INFO_SLAVE_KIND = 4;
const IFLA_INET6_ADDR_GEN_MODE = 8;
/** RTEXT_FILTER_SKIP_STATS: no per-link statistics in the dump (we read none) */
const RTEXT_FILTER_SKIP_STATS = 1 << 3;

const IFA_ADDRESS = 1;
const IFA_LOCAL = 2;
const IFA_FLAGS = 8;
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

/** Sends a dump request (HEADER: the family message after nlmsghdr) and returns every message part of the answer. */
function dump(type: number, header: Buffer, netns: string | null): Array<{ type: number; body: Buffer }> {
  const run = (): Array<{ type: number; body: Buffer }> => {
    const fd = netlinkSocket(NETLINK_ROUTE);
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
              throw new IvbError('IPVLAN_E_IPROUTE', `rtnetlink dump: errno ${errno}`);
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
  if (netns === null) return runTwice();
  try {
    return withNetns(netnsPath(netns), runTwice);
  } catch (e) {
    // as `ip -n NAME` says it
    if ((e as { code?: unknown }).code === 'ENOENT') {
      throw new IvbError('IPVLAN_E_IPROUTE', `Cannot open network namespace "${netns}": No such file or directory`);
    }
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
export function rtnlLinks(netns: string | null): IpLink[] {
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
export function rtnlAddrs(netns: string | null, links: IpLink[] = rtnlLinks(netns)): IpAddrLink[] {
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
