// SPDX-License-Identifier: GPL-2.0-only
/**
 * One line about a frame from its first bytes (an event's head[], at most 64
 * bytes): Ethernet, one VLAN tag, ARP, IPv4 / IPv6 with ICMP, UDP, TCP. Only
 * what the bytes show: a truncated header says so instead of guessing.
 */
import { bytesToAddr } from '../netlink/addr.js';

function macText(b: Buffer, off: number): string {
  return [...b.subarray(off, off + 6)].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

function ip4Text(b: Buffer, off: number): string {
  return `${b[off]}.${b[off + 1]}.${b[off + 2]}.${b[off + 3]}`;
}

/** RFC 5952 text of 16 bytes (the datapath's own formatter). */
function ip6Text(b: Buffer, off: number): string {
  return bytesToAddr(6, b.subarray(off, off + 16));
}

const ICMP4: Record<number, string> = { 0: 'echo reply', 3: 'unreachable', 8: 'echo request', 11: 'time exceeded' };
const ICMP6: Record<number, string> = {
  1: 'unreachable',
  2: 'packet too big',
  3: 'time exceeded',
  128: 'echo request',
  129: 'echo reply',
  133: 'router solicitation',
  134: 'router advertisement',
  135: 'neighbour solicitation',
  136: 'neighbour advertisement',
  143: 'mld2 report',
};

function l4(b: Buffer, off: number, proto: number, v6: boolean): string {
  const need = (n: number): boolean => b.length >= off + n;
  switch (proto) {
    case 1:
      return need(1) ? `icmp ${ICMP4[b[off]!] ?? `type ${b[off]}`}` : 'icmp (truncated)';
    case 58:
      return need(1) ? `icmp6 ${ICMP6[b[off]!] ?? `type ${b[off]}`}` : 'icmp6 (truncated)';
    case 6:
      return need(4) ? `tcp ${b.readUInt16BE(off)} > ${b.readUInt16BE(off + 2)}` : 'tcp (truncated)';
    case 17:
      return need(4) ? `udp ${b.readUInt16BE(off)} > ${b.readUInt16BE(off + 2)}` : 'udp (truncated)';
    default:
      return `${v6 ? 'next header' : 'proto'} ${proto}`;
  }
}

/** e.g. "02:00:00:00:00:02 > ff:ff:ff:ff:ff:ff arp who-has 198.18.0.10 tell 198.18.0.1" */
export function summarizeFrame(head: Buffer, len?: number): string {
  if (head.length < 14) return `${len ?? head.length} bytes (no Ethernet header)`;
  const macs = `${macText(head, 6)} > ${macText(head, 0)}`;
  let type = head.readUInt16BE(12);
  let off = 14;
  let vlan = '';
  if ((type === 0x8100 || type === 0x88a8) && head.length >= 18) {
    vlan = ` vlan ${head.readUInt16BE(14) & 0xfff}`;
    type = head.readUInt16BE(16);
    off = 18;
  }
  const size = len !== undefined ? ` len ${len}` : '';
  let body: string;
  if (type === 0x0806) {
    if (head.length < off + 28) body = 'arp (truncated)';
    else {
      const op = head.readUInt16BE(off + 6);
      const spa = ip4Text(head, off + 14);
      const tpa = ip4Text(head, off + 24);
      body = op === 1 ? `arp who-has ${tpa} tell ${spa}` : op === 2 ? `arp reply ${spa} is-at ${macText(head, off + 8)}` : `arp op ${op}`;
    }
  } else if (type === 0x0800) {
    if (head.length < off + 20) body = 'ip (truncated)';
    else {
      const ihl = (head[off]! & 0xf) * 4;
      const proto = head[off + 9]!;
      body = `ip ${ip4Text(head, off + 12)} > ${ip4Text(head, off + 16)} ttl ${head[off + 8]} ${l4(head, off + ihl, proto, false)}`;
    }
  } else if (type === 0x86dd) {
    if (head.length < off + 40) {
      // 64 bytes hold the whole IPv6 header only without a VLAN tag beyond 24 bytes of it
      body = head.length >= off + 24 ? `ip6 ${ip6Text(head, off + 8)} > (truncated)` : 'ip6 (truncated)';
    } else {
      body = `ip6 ${ip6Text(head, off + 8)} > ${ip6Text(head, off + 24)} hlim ${head[off + 7]} ${l4(head, off + 40, head[off + 6]!, true)}`;
    }
  } else {
    body = `ethertype 0x${type.toString(16).padStart(4, '0')}`;
  }
  return `${macs}${vlan} ${body}${size}`;
}
