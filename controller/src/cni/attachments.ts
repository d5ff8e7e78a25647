// SPDX-License-Identifier: GPL-2.0-only
/**
 * What the plugin remembers per attachment (network, container, ifname):
 * the slave's port and host-side peer and the exact config ADD got. DEL
 * needs it when the container's namespace is already gone (the runtime may
 * pass no CNI_NETNS), and GC needs it to find attachments the runtime no
 * longer lists and to release their addresses with the config they were
 * allocated with. Kept beside the port records (per boot, as they are).
 */
import { isSysError } from '../errors.js';
import { readdirSync, readFileSync, renameSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ensureDir, stateDir } from '../paths.js';

export interface AttachmentRecord {
  network: string;
  containerId: string;
  ifname: string;
  /** CNI_NETNS as the runtime gave it */
  netns: string;
  portId: number;
  peerName: string;
  peerIfindex: number;
  /** the ADD's stdin, for IPAM DEL at GC time */
  config: string;
  ips: string[];
}

function networkDir(network: string): string {
  return join(stateDir(), 'cni', network);
}

function recordFile(network: string, containerId: string, ifname: string): string {
  return join(networkDir(network), `${containerId}@${ifname}.json`);
}

export function writeRecord(r: AttachmentRecord): void {
  ensureDir(networkDir(r.network));
  const f = recordFile(r.network, r.containerId, r.ifname);
  const tmp = `${f}.tmp${process.pid}`;
  writeFileSync(tmp, JSON.stringify(r, null, 1));
  renameSync(tmp, f);
}

export function readRecord(network: string, containerId: string, ifname: string): AttachmentRecord | null {
  let text: string;
  try {
    text = readFileSync(recordFile(network, containerId, ifname), 'utf8');
  } catch (e) {
    if (isSysError(e, 'ENOENT')) return null;
    throw e;
  }
  return JSON.parse(text) as AttachmentRecord;
}

export function removeRecord(network: string, containerId: string, ifname: string): void {
  rmSync(recordFile(network, containerId, ifname), { force: true });
  // an empty network folder is removed so that nothing is left once every attachment is gone
  for (const d of [networkDir(network), join(stateDir(), 'cni')]) {
    try {
      rmdirSync(d);
    } catch (e) {
      // still holds other attachments (or is gone already)
      if (isSysError(e, 'ENOTEMPTY', 'EEXIST', 'ENOENT')) break;
      throw e;
    }
  }
}

export function listRecords(network: string): AttachmentRecord[] {
  let names: string[];
  try {
    names = readdirSync(networkDir(network)).filter((n) => n.endsWith('.json'));
  } catch (e) {
    if (isSysError(e, 'ENOENT')) return [];
    throw e;
  }
  const out: AttachmentRecord[] = [];
  for (const n of names) {
    let text: string;
    try {
      text = readFileSync(join(networkDir(network), n), 'utf8');
    } catch (e) {
      // removed under us
      if (isSysError(e, 'ENOENT')) continue;
      throw e;
    }
    out.push(JSON.parse(text) as AttachmentRecord);
  }
  return out;
}
