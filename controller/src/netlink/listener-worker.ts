// SPDX-License-Identifier: GPL-2.0-only
/**
 * The rtnetlink listener's thread (listener.ts): one socket per watched
 * namespace, subscribed to link and address notifications with
 * NETLINK_LISTEN_ALL_NSID (so the namespaces its slaves were moved to are
 * heard too), all in one poll(2) loop. Each wake-up's messages are decoded
 * and posted as one batch. Control messages (watch/unwatch/stop) arrive on a
 * MessagePort read synchronously between polls.
 */
import { receiveMessageOnPort, parentPort, workerData, type MessagePort } from 'node:worker_threads';
import { closeFd, netlinkAddMembership, netlinkListener, netlinkRecvNsid, pollReadable } from '../../../native/libc.js';
import { withNetns } from '../../../native/libbpf.js';
import { errorLine } from '../errors.js';
import { RTM_DELADDR, RTM_DELLINK, RTM_NEWADDR, RTM_NEWLINK, decodeAddr, decodeLink } from './rtnl.js';
import type { ListenerControl, ListenerReport, RtnlEvent } from './listener.js';

const NETLINK_ROUTE = 0;
/** RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR */
const GROUPS = 0x1 | 0x10 | 0x100;
const POLL_MS = 50;
/** RTNLGRP_IPV4_MCADDR, RTNLGRP_IPV6_MCADDR (kernel 6.13+): a device joined or left an IP group */
const MCADDR_GROUPS = [37, 38];
/** RTM_NEWMULTICAST, RTM_DELMULTICAST: an ifaddrmsg whose ifa_index is the device */
const RTM_NEWMULTICAST = 56;
const RTM_DELMULTICAST = 57;

const control = (workerData as { port: MessagePort }).port;
const byKey = new Map<string, number>();
const buf = Buffer.alloc(256 * 1024);
const idle = new Int32Array(new SharedArrayBuffer(4));

function report(r: ListenerReport): void {
  parentPort!.postMessage(r);
}

function close(key: string): void {
  const fd = byKey.get(key);
  if (fd === undefined) return;
  byKey.delete(key);
  closeFd(fd);
}

function decode(data: Buffer, nsid: number | null): RtnlEvent[] {
  const out: RtnlEvent[] = [];
  const where = nsid === null ? 'current' : String(nsid);
  for (let off = 0; off + 16 <= data.length; ) {
    const len = data.readUInt32LE(off);
    if (len < 16 || off + len > data.length) break;
    const type = data.readUInt16LE(off + 4);
    const body = data.subarray(off + 16, off + len);
    if (type === RTM_NEWLINK || type === RTM_DELLINK) {
      const l = decodeLink(body);
      out.push({
        nsid: where,
        deleted: type === RTM_DELLINK,
        ifindex: l.ifindex,
        kind: 'link',
        ifname: l.ifname,
        flags: l.flags,
        mtu: l.mtu,
        ...(l.address ? { mac: l.address } : {}),
        ...(l.ifalias ? { alias: l.ifalias } : {}),
      });
    } else if (type === RTM_NEWADDR || type === RTM_DELADDR) {
      const a = decodeAddr(body);
      if (a) {
        out.push({
          nsid: where,
          deleted: type === RTM_DELADDR,
          ifindex: a.ifindex,
          kind: 'addr',
          family: a.info.family === 'inet' ? 4 : 6,
          addr: a.info.local,
          prefixlen: a.info.prefixlen,
        });
      }
    } else if ((type === RTM_NEWMULTICAST || type === RTM_DELMULTICAST) && body.length >= 8) {
      out.push({ nsid: where, deleted: type === RTM_DELMULTICAST, ifindex: body.readUInt32LE(4), kind: 'mcast' });
    }
    off += (len + 3) & ~3;
  }
  return out;
}

/** Group joins and leaves too, where the kernel has them (a feature probe: older ones refuse the groups). */
function subscribeMulticast(fd: number): boolean {
  try {
    for (const g of MCADDR_GROUPS) netlinkAddMembership(fd, g);
    return true;
  } catch (e) {
    if ((e as { code?: string }).code === 'EINVAL') return false;
    throw e;
  }
}

function onControl(m: ListenerControl): boolean {
  if (m.op === 'stop') return false;
  close(m.key);
  if (m.op === 'watch') {
    try {
      const fd = withNetns(m.path, () => netlinkListener(NETLINK_ROUTE, GROUPS));
      byKey.set(m.key, fd);
      report({ key: m.key, ready: true, multicastEvents: subscribeMulticast(fd) });
    } catch (e) {
      report({ key: m.key, error: errorLine(e) });
    }
  }
  return true;
}

for (let running = true; running; ) {
  for (let m = receiveMessageOnPort(control); m; m = receiveMessageOnPort(control)) {
    if (!onControl(m.message as ListenerControl)) running = false;
  }
  if (!running) break;
  if (byKey.size === 0) {
    Atomics.wait(idle, 0, 0, POLL_MS);
    continue;
  }
  const keys = new Map([...byKey].map(([k, fd]) => [fd, k]));
  for (const fd of pollReadable([...keys.keys()], POLL_MS)) {
    const key = keys.get(fd)!;
    const events: RtnlEvent[] = [];
    try {
      for (let r = netlinkRecvNsid(fd, buf); r; r = netlinkRecvNsid(fd, buf)) events.push(...decode(buf.subarray(0, r.length), r.nsid));
    } catch (e) {
      // ENOBUFS: the kernel dropped notifications; the learner resyncs
      if (events.length) report({ key, events });
      report({ key, overflow: errorLine(e) });
      continue;
    }
    if (events.length) report({ key, events });
  }
}
for (const key of [...byKey.keys()]) close(key);
