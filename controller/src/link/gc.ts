// SPDX-License-Identifier: GPL-2.0-only
/**
 * `ipvlan-bpf gc`: finds and removes what a crash can leave behind — pins of
 * ports that have no record, records of ports whose master is gone, slaves
 * whose veth pair is gone, map entries of unknown ports, and host-side peers
 * (ivb<port>x<dev_id>) that no record knows. Everything it removes is listed.
 */
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { mapDelete, mapKeys } from '../../../native/libbpf.js';
import { clearGuard, maps, mapsExist, removeGuard, destroyPortDatapath, sweepUnknownPorts } from '../bpf/datapath.js';
import { IvbGuardEntryLayout, IvbGuardKeyLayout, decodeIvbGuardEntry } from '../../../maps/generated.js';
import { mapLookup } from '../../../native/libbpf.js';
import { listLinks } from '../netlink/links.js';
import { NETNS_RUN_DIR } from '../netlink/netns.js';
import { listPorts, readPort, withLock } from '../state.js';
import { IvbError } from '../errors.js';
import { locateMaster, masterMoved } from './identity.js';
import { pinRoot } from '../paths.js';
import { deleteLinkIfThere, followMasterMove, peerAlias, portDelete, pruneSlave } from './manager.js';
import { locateSlaves } from './slaves.js';
import { gcHostnet } from './hostnet.js';

const PEER_NAME = /^ivb(\d+)x(\d+)$/;

export function gc(): string[] {
  const removed: string[] = [];
  withLock(() => {
    // ports whose master (or its namespace) is gone: the kernel deletes their slaves
    // (identity.ts: the master is the device our pinned link is on, not a name)
    for (const recorded of listPorts()) {
      let port = recorded;
      const where = locateMaster(port);
      if (where.state === 'gone') {
        portDelete(port);
        removed.push(`port ${port.portId}: master ${port.master.name} is gone, ${where.why} (record, pins, map entries, slaves)`);
        continue;
      }
      // alive in a namespace without a name: nothing can be judged, all is kept
      if (where.state === 'unreachable') continue;
      if (masterMoved(port, where)) {
        followMasterMove(port.portId, where);
        port = readPort(port.portId) ?? port;
      }
      for (const loc of locateSlaves(port)) {
        if (!loc.peer) {
          pruneSlave(port.portId, loc.record.peerName, loc.record.peerIfindex);
          removed.push(`slave ${loc.record.name} of ${port.master.name}: its veth pair is gone`);
        }
      }
    }
    const ports = listPorts();
    const known = new Set(ports.map((p) => p.portId));
    // pins of ports without a record
    const portsDir = join(pinRoot(), 'ports');
    if (existsSync(portsDir)) {
      for (const d of readdirSync(portsDir)) {
        if (!known.has(Number(d))) {
          destroyPortDatapath(Number(d));
          rmSync(join(portsDir, d), { recursive: true, force: true });
          removed.push(`pins of port ${d} (no record)`);
        }
      }
    }
    if (mapsExist()) {
      const m = maps();
      removed.push(...sweepUnknownPorts(known));
      let g = 0;
      for (const k of mapKeys(m.guard, IvbGuardKeyLayout.size)) {
        const v = mapLookup(m.guard, k, IvbGuardEntryLayout.size);
        if (v && !known.has(decodeIvbGuardEntry(v).portId)) {
          mapDelete(m.guard, k);
          g++;
        }
      }
      if (g) removed.push(`${g} ivb_guard entr${g === 1 ? 'y' : 'ies'} of unknown ports`);
      for (const p of ports) {
        // guard entries of slaves the record no longer has
        const peers = new Set(p.slaves.map((s) => s.peerIfindex));
        for (const k of mapKeys(m.guard, IvbGuardKeyLayout.size)) {
          const v = mapLookup(m.guard, k, IvbGuardEntryLayout.size);
          if (!v) continue;
          const e = decodeIvbGuardEntry(v);
          if (e.portId === p.portId && e.peerIfindex !== 0 && !peers.has(e.peerIfindex)) clearGuard(p.portId, e.peerIfindex);
        }
      }
    }
    if (ports.length === 0) {
      if (existsSync(join(pinRoot(), 'guard_link'))) {
        removeGuard();
        removed.push('the netlink guard link (no ports left)');
      }
    }
    // host-side peers nobody knows, in the init namespace and every named one
    const peerNames = new Set(ports.flatMap((p) => p.slaves.map((s) => `${p.master.netns ?? ''}/${s.peerName}`)));
    let spaces: Array<string | null> = [null];
    try {
      spaces = [null, ...readdirSync(NETNS_RUN_DIR)];
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    for (const ns of spaces) {
      let links;
      try {
        links = listLinks(ns);
      } catch (e) {
        // deleted since the directory was read
        if (e instanceof IvbError && e.code === 'IPVLAN_E_IPROUTE') continue;
        throw e;
      }
      // accept rules of peers that are gone, rules of masters that are gone (hostnet.ts)
      const live = new Set(links.map((l) => l.ifname).filter((n) => peerNames.has(`${ns ?? ''}/${n}`)));
      removed.push(...gcHostnet(ns, live));
      for (const l of links) {
        if (!PEER_NAME.test(l.ifname) || l.linkinfo?.info_kind !== 'veth') continue;
        if (peerNames.has(`${ns ?? ''}/${l.ifname}`)) continue;
        // only peers of this state (their alias names our pin subtree): other
        // subtrees (a demo, a test run) are not ours to judge
        if (l.ifalias !== peerAlias()) continue;
        deleteLinkIfThere(l.ifname, ns, l.ifindex);
        removed.push(`orphan peer ${l.ifname}${ns ? ` in netns ${ns}` : ''}`);
      }
    }
  });
  return removed;
}
