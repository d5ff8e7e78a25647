// SPDX-License-Identifier: GPL-2.0-only
/**
 * The control API's messages, from proto/ipvlan_bpf.proto at run time
 * (protobufjs reflection: the .proto stays the one definition, and a client
 * in another language is generated from the same file).
 *
 * The TypeScript shapes below are what toObject() gives with the options in
 * DECODE (longs as numbers, defaults filled, the set oneof member named):
 * typed at this boundary so that nothing else handles protobufjs objects.
 */
import { join } from 'node:path';
import protobuf from 'protobufjs';
import { repoRoot } from '../paths.js';

const PROTO_PATH = join(repoRoot(), 'proto', 'ipvlan_bpf.proto');
/** The largest request the agent reads; bigger ones are refused (the connection is closed). */
export const MAX_REQUEST_BYTES = 64 * 1024;
/** The largest response a client accepts (a stats snapshot of many slaves). */
export const MAX_RESPONSE_BYTES = 64 * 1024 * 1024;

export interface LearnedAddrMsg {
  family: string;
  local: string;
  prefixlen: number;
}

export interface LinkMsg {
  ifindex: number;
  ifname: string;
  link: string;
  flags: string[];
  mtu: number;
  operstate?: string;
  address: string;
  linkNetns?: string;
  mode: string;
  flag: string;
  masterNetns?: string;
  portId: number;
  devId: number;
  peer: string;
  peerIfindex: number;
  netns?: string;
  learned: LearnedAddrMsg[];
  netnsUnknown: boolean;
}

export interface DirStatsMsg {
  packets: number;
  bytes: number;
  dropped: number;
  multicast: number;
}

export interface DeviceStatsMsg {
  ifname: string;
  role: string;
  link: string;
  portId: number;
  ifindex: number;
  rx: DirStatsMsg;
  tx: DirStatsMsg;
  drops: Record<string, number>;
  siblingTx: number;
  toStack: number;
  toWire: number;
  held: number;
}

export interface PortStatsMsg {
  portId: number;
  master: string;
  masterNetns?: string;
  siblingDeliveries: number;
  devices: DeviceStatsMsg[];
}

export interface StatsSnapshotMsg {
  timeMs: number;
  ports: PortStatsMsg[];
}

export interface EventMsg {
  time: string;
  tsNs: number;
  portId: number;
  master: string;
  slave: string;
  ifindex: number;
  direction: string;
  action: string;
  reason: string;
  target: string;
  targetIfindex: number;
  len: number;
  summary: string;
  head: Buffer;
}

export interface ErrorMsg {
  code: string;
  message: string;
  errno: number;
}

export interface RequestMsg {
  id: number;
  op?: 'linkList' | 'linkAdd' | 'linkDel' | 'stats' | 'events';
  linkList?: { name?: string; netns: string; onlyNetns: boolean };
  linkAdd?: { master: string; name: string; netns: string; mode?: string; flag?: string; typeArgs: boolean; mtu?: number };
  linkDel?: { name: string; netns: string };
  stats?: { device?: string };
  events?: { dropsOnly: boolean; perSec: number };
}

export interface ResponseMsg {
  id: number;
  result?: 'error' | 'linkList' | 'linkAdd' | 'linkDel' | 'stats' | 'event';
  error?: ErrorMsg;
  linkList?: { links: LinkMsg[] };
  linkAdd?: { portId: number; devId: number; peer: string; peerIfindex: number };
  linkDel?: Record<string, never>;
  stats?: StatsSnapshotMsg;
  event?: EventMsg;
}

const DECODE: protobuf.IConversionOptions = { longs: Number, enums: String, bytes: Buffer, defaults: true, arrays: true, objects: true, oneofs: true };

let root: protobuf.Root | null = null;

function types(): { Request: protobuf.Type; Response: protobuf.Type } {
  if (!root) root = protobuf.loadSync(PROTO_PATH);
  return { Request: root.lookupType('ipvlan_bpf.v1.Request'), Response: root.lookupType('ipvlan_bpf.v1.Response') };
}

function encodeWith(t: protobuf.Type, value: object): Buffer {
  const err = t.verify(value);
  if (err) throw new TypeError(`${t.name}: ${err}`);
  return Buffer.from(t.encodeDelimited(t.fromObject(value)).finish());
}

/** proto3 `optional` fields that are unset stay absent (defaults apply to plain fields only). */
function decodeWith<T>(t: protobuf.Type, body: Buffer): T {
  const msg = t.decode(body);
  return t.toObject(msg, DECODE) as T;
}

export function encodeRequest(r: RequestMsg): Buffer {
  return encodeWith(types().Request, stripOneofTag(r, 'op'));
}

export function encodeResponse(r: ResponseMsg): Buffer {
  return encodeWith(types().Response, stripOneofTag(r, 'result'));
}

/** Decodes one message body (without its length prefix); throws on bytes that are not a Request. */
export function decodeRequest(body: Buffer): RequestMsg {
  return decodeWith<RequestMsg>(types().Request, body);
}

export function decodeResponse(body: Buffer): ResponseMsg {
  return decodeWith<ResponseMsg>(types().Response, body);
}

/** fromObject takes the set member itself, not the virtual oneof name */
function stripOneofTag<T extends object>(r: T, tag: string): object {
  const copy: Record<string, unknown> = { ...(r as Record<string, unknown>) };
  delete copy[tag];
  return copy;
}

/**
 * Length-delimited frame reader: feed bytes, get whole message bodies.
 * `tooBig` is called (and reading stops) when a frame announces more than
 * `max` bytes, before any of it is buffered.
 */
export class FrameReader {
  private buf: Buffer = Buffer.alloc(0);
  private dead = false;

  constructor(private readonly max: number) {}

  push(chunk: Buffer): { bodies: Buffer[]; tooBig: number | null; badPrefix: boolean } {
    const bodies: Buffer[] = [];
    if (this.dead) return { bodies, tooBig: null, badPrefix: false };
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    for (;;) {
      let len = 0;
      let shift = 0;
      let i = 0;
      let complete = false;
      while (i < this.buf.length && i < 5) {
        const b = this.buf[i]!;
        len += (b & 0x7f) * 2 ** shift;
        shift += 7;
        i++;
        if ((b & 0x80) === 0) {
          complete = true;
          break;
        }
      }
      if (!complete) {
        if (i >= 5) {
          // a varint longer than 5 bytes announces more than 2^32: not a frame of ours
          this.dead = true;
          return { bodies, tooBig: null, badPrefix: true };
        }
        return { bodies, tooBig: null, badPrefix: false };
      }
      if (len > this.max) {
        this.dead = true;
        return { bodies, tooBig: len, badPrefix: false };
      }
      if (this.buf.length < i + len) return { bodies, tooBig: null, badPrefix: false };
      bodies.push(Buffer.from(this.buf.subarray(i, i + len)));
      this.buf = this.buf.subarray(i + len);
    }
  }
}
