// SPDX-License-Identifier: GPL-2.0-only
/**
 * `ipvlan-bpf explain --master M (--frame HEX | --src A --dst B [--proto icmp|udp|tcp|arp])
 *  [--from wire|SLAVE] [--src-mac MAC] [--dst-mac MAC] [--size N] [-j]`
 */
import { IvbError, EINVAL } from '../errors.js';
import { explain, formatExplain, parseHexFrame, type ExplainRequest } from './explain.js';
import type { Proto } from './frame.js';

const PROTOS: readonly Proto[] = ['icmp', 'udp', 'tcp', 'arp'];
const MAC = /^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/;

function parseExplainArgs(words: readonly string[], netns: string | null): { req: ExplainRequest; json: boolean } {
  let json = false;
  const req: Partial<ExplainRequest> & { from: string } = { from: 'wire' };
  if (netns !== null) req.netns = netns;
  const need = (w: string, v: string | undefined): string => {
    if (v === undefined || v === '') throw new IvbError('IPVLAN_E_USAGE', `explain: ${w} needs a value`, EINVAL);
    return v;
  };
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    switch (w) {
      case '-j':
      case '--json':
        json = true;
        break;
      case '--master':
      case 'master':
        req.master = need(w, words[++i]);
        break;
      case '--frame':
        req.frame = parseHexFrame(need(w, words[++i]));
        break;
      case '--src':
        req.src = need(w, words[++i]);
        break;
      case '--dst':
        req.dst = need(w, words[++i]);
        break;
      case '--proto': {
        const p = need(w, words[++i]);
        if (!PROTOS.includes(p as Proto)) throw new IvbError('IPVLAN_E_USAGE', `explain: --proto is one of ${PROTOS.join(', ')}`, EINVAL);
        req.proto = p as Proto;
        break;
      }
      case '--from':
        req.from = need(w, words[++i]);
        break;
      case '--src-mac':
      case '--dst-mac': {
        const m = need(w, words[++i]);
        if (!MAC.test(m)) throw new IvbError('IPVLAN_E_USAGE', `explain: ${w} takes a MAC address (aa:bb:cc:dd:ee:ff)`, EINVAL);
        if (w === '--src-mac') req.srcMac = m.toLowerCase();
        else req.dstMac = m.toLowerCase();
        break;
      }
      case '--size': {
        const n = Number(need(w, words[++i]));
        if (!Number.isInteger(n) || n < 14 || n > 65535) throw new IvbError('IPVLAN_E_USAGE', 'explain: --size is 14..65535 bytes', EINVAL);
        req.size = n;
        break;
      }
      default:
        throw new IvbError('IPVLAN_E_USAGE', `explain: unknown argument "${w}"`, EINVAL);
    }
  }
  if (!req.master) throw new IvbError('IPVLAN_E_USAGE', 'explain: --master MASTER is required', EINVAL);
  if (req.frame && (req.src || req.dst)) throw new IvbError('IPVLAN_E_USAGE', 'explain: give --frame or --src/--dst, not both', EINVAL);
  if (!req.frame && (!req.src || !req.dst)) throw new IvbError('IPVLAN_E_USAGE', 'explain: give --frame HEX, or both --src and --dst', EINVAL);
  return { req: req as ExplainRequest, json };
}

export function runExplain(words: readonly string[], netns: string | null, json: boolean, pretty: boolean): number {
  const p = parseExplainArgs(words, netns);
  const r = explain(p.req);
  process.stdout.write(p.json || json ? JSON.stringify(r, null, pretty ? 2 : undefined) + '\n' : formatExplain(r) + '\n');
  return 0;
}
