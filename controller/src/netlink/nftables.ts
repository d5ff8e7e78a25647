// SPDX-License-Identifier: GPL-2.0-only
/**
 * The nftables ruleset of a namespace as far as we judge it (chains with
 * their hook and policy, rules with their handle and comment), read over
 * NETLINK_NETFILTER from the process: what `nft -j list ruleset` gives for
 * these fields, without the two processes (`ip netns exec` + `nft`) it
 * costs on every `link add`. Changes stay with nft(8) (hostnet.ts): they
 * are rare (only where a drop-policy forward chain exists) and its rule
 * syntax is the user's. Message and attribute numbers from
 * include/uapi/linux/netfilter/{nfnetlink,nf_tables}.h; the comment is the
 * NFTNL_UDATA_RULE_COMMENT entry of the rule's user data (libnftnl's udata.h).
 */
import { LibcError } from '../../../native/libc.js';
import { IvbError } from '../errors.js';
import { dump } from './rtnl.js';

const NETLINK_NETFILTER = 12;
const NFNL_SUBSYS_NFTABLES = 10;
const NFT_MSG_NEWCHAIN = 3;
const NFT_MSG_GETCHAIN = 4;
const NFT_MSG_NEWRULE = 6;
const NFT_MSG_GETRULE = 7;
const NFTA_CHAIN_TABLE = 1;
const NFTA_CHAIN_NAME = 3;
const NFTA_CHAIN_HOOK = 4;
const NFTA_CHAIN_POLICY = 5;
const NFTA_HOOK_HOOKNUM = 1;
const NFTA_RULE_TABLE = 1;
const NFTA_RULE_CHAIN = 2;
const NFTA_RULE_HANDLE = 3;
const NFTA_RULE_USERDATA = 7;
const NFTNL_UDATA_RULE_COMMENT = 0;
const NF_DROP = 0;
const NF_ACCEPT = 1;

const FAMILIES: Record<number, string> = { 1: 'inet', 2: 'ip', 3: 'arp', 5: 'netdev', 7: 'bridge', 10: 'ip6' };
/** hook numbers of the families that see IP (NF_INET_*), as nft names them */
const INET_HOOKS = ['prerouting', 'input', 'forward', 'output', 'postrouting', 'ingress'];

export interface NftChain {
  family: string;
  table: string;
  name: string;
  hook?: string;
  policy?: string;
}

export interface NftRule {
  family: string;
  table: string;
  chain: string;
  handle: number;
  comment?: string;
}

export type NftItem = { chain?: NftChain; rule?: NftRule };

/** errnos that mean "no nftables here" (module absent or not built) */
const NO_NFTABLES = new Set([2 /* ENOENT */, 93 /* EPROTONOSUPPORT */, 95 /* EOPNOTSUPP */, 97 /* EAFNOSUPPORT */]);

function attrs(buf: Buffer, start: number): Map<number, Buffer> {
  const out = new Map<number, Buffer>();
  for (let off = start; off + 4 <= buf.length; ) {
    const len = buf.readUInt16LE(off);
    if (len < 4 || off + len > buf.length) break;
    out.set(buf.readUInt16LE(off + 2) & 0x3fff, buf.subarray(off + 4, off + len));
    off += (len + 3) & ~3;
  }
  return out;
}

function cstr(b: Buffer | undefined): string {
  if (!b) return '';
  const nul = b.indexOf(0);
  return b.subarray(0, nul < 0 ? b.length : nul).toString('utf8');
}

function comment(udata: Buffer | undefined): string | undefined {
  if (!udata) return undefined;
  for (let off = 0; off + 2 <= udata.length; ) {
    const type = udata[off]!;
    const len = udata[off + 1]!;
    if (off + 2 + len > udata.length) break;
    if (type === NFTNL_UDATA_RULE_COMMENT) return cstr(udata.subarray(off + 2, off + 2 + len));
    off += 2 + len;
  }
  return undefined;
}

/** A dump (GET) of every family; the answer's parts (NEW) decoded. */
function nftDump(get: number, answer: number, netns: string | null): Array<{ family: string; a: Map<number, Buffer> }> {
  // struct nfgenmsg: family (NFPROTO_UNSPEC: all), version, res_id
  const header = Buffer.alloc(4);
  return dump((NFNL_SUBSYS_NFTABLES << 8) | get, header, netns, NETLINK_NETFILTER)
    .filter((m) => m.type === ((NFNL_SUBSYS_NFTABLES << 8) | answer))
    .map((m) => ({ family: FAMILIES[m.body[0]!] ?? String(m.body[0]), a: attrs(m.body, 4) }));
}

/** The chains and rules of NETNS (null: init); null when it has no nftables (as when `nft` cannot list). */
export function nftRuleset(netns: string | null): NftItem[] | null {
  try {
    const items: NftItem[] = [];
    for (const { family, a } of nftDump(NFT_MSG_GETCHAIN, NFT_MSG_NEWCHAIN, netns)) {
      const chain: NftChain = { family, table: cstr(a.get(NFTA_CHAIN_TABLE)), name: cstr(a.get(NFTA_CHAIN_NAME)) };
      const hook = a.get(NFTA_CHAIN_HOOK);
      const num = hook ? attrs(hook, 0).get(NFTA_HOOK_HOOKNUM) : undefined;
      if (num && ['ip', 'ip6', 'inet', 'bridge'].includes(family)) chain.hook = INET_HOOKS[num.readUInt32BE(0)];
      const policy = a.get(NFTA_CHAIN_POLICY);
      if (policy) {
        const v = policy.readUInt32BE(0);
        chain.policy = v === NF_DROP ? 'drop' : v === NF_ACCEPT ? 'accept' : String(v);
      }
      items.push({ chain });
    }
    for (const { family, a } of nftDump(NFT_MSG_GETRULE, NFT_MSG_NEWRULE, netns)) {
      const rule: NftRule = {
        family,
        table: cstr(a.get(NFTA_RULE_TABLE)),
        chain: cstr(a.get(NFTA_RULE_CHAIN)),
        handle: Number(a.get(NFTA_RULE_HANDLE)?.readBigUInt64BE(0) ?? 0n),
      };
      const c = comment(a.get(NFTA_RULE_USERDATA));
      if (c !== undefined) rule.comment = c;
      items.push({ rule });
    }
    return items;
  } catch (e) {
    if (e instanceof LibcError && NO_NFTABLES.has(e.errno)) return null;
    if (e instanceof IvbError && e.errno !== undefined && NO_NFTABLES.has(e.errno)) return null;
    // the namespace went meanwhile: nothing there to accept in or to remove
    if (e instanceof IvbError && /Cannot open network namespace/.test(e.message)) return null;
    throw e;
  }
}
