// SPDX-License-Identifier: GPL-2.0-only
/**
 * Addresses as text and as the 16 bytes the datapath keys them by (IPv4 in
 * the first 4). Node has no inet_pton; this is the one copy.
 */

export type Family = 4 | 6;

/** IPv4/IPv6 text -> 16 bytes as the datapath keys them (IPv4 in the first 4). */
export function addrBytes(family: Family, text: string): Buffer {
  const out = Buffer.alloc(16);
  if (family === 4) {
    const p = text.split('.').map((x) => Number(x));
    if (p.length !== 4 || p.some((x) => !Number.isInteger(x) || x < 0 || x > 255)) {
      throw new Error(`bad IPv4 address ${text}`);
    }
    Buffer.from(p).copy(out, 0);
    return out;
  }
  let t = text.toLowerCase();
  const pct = t.indexOf('%');
  if (pct >= 0) t = t.slice(0, pct);
  let tail: number[] = [];
  const v4 = t.match(/(\d+\.\d+\.\d+\.\d+)$/);
  if (v4 && v4[1]) {
    const q = v4[1].split('.').map(Number);
    tail = [((q[0] ?? 0) << 8) | (q[1] ?? 0), ((q[2] ?? 0) << 8) | (q[3] ?? 0)];
    t = t.slice(0, t.length - v4[1].length) + (t.endsWith(':' + v4[1]) ? '0:0' : '');
    if (t.endsWith(':0:0')) t = t.slice(0, -4);
  }
  const halves = t.split('::');
  if (halves.length > 2) throw new Error(`bad IPv6 address ${text}`);
  const head = halves[0] ? halves[0].split(':') : [];
  const rest = halves.length === 2 && halves[1] ? halves[1].split(':') : [];
  const groups = [...head, ...rest].map((g) => parseInt(g, 16));
  const total = groups.length + tail.length;
  const zeros = halves.length === 2 ? 8 - total : 0;
  if (total + zeros !== 8 || groups.some((g) => Number.isNaN(g) || g < 0 || g > 0xffff)) {
    throw new Error(`bad IPv6 address ${text}`);
  }
  const all = [...head.map((g) => parseInt(g, 16)), ...new Array<number>(zeros).fill(0), ...rest.map((g) => parseInt(g, 16)), ...tail];
  all.forEach((g, i) => out.writeUInt16BE(g, i * 2));
  return out;
}

export function bytesToAddr(family: Family, b: Buffer): string {
  if (family === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  const g: string[] = [];
  for (let i = 0; i < 8; i++) g.push(b.readUInt16BE(i * 2).toString(16));
  // RFC 5952: the longest run of zero groups (2 or more) becomes ::
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (g[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === '0') j++;
    if (j - i > bestLen && j - i >= 2) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (best < 0) return g.join(':');
  return `${g.slice(0, best).join(':')}::${g.slice(best + bestLen).join(':')}`;
}
