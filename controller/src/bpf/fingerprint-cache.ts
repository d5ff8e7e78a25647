// SPDX-License-Identifier: GPL-2.0-only
/**
 * The layout fingerprint (datapath.ts `layoutFingerprint`) as the build
 * recorded it (scripts/record-build.mjs), so that a command that opens the
 * maps does not open and parse the BPF object (libbpf, BTF) to know which
 * layouts it was built with: ~10 ms of every `link add`. The record names
 * the two inputs it was computed from (the generated layouts and the object
 * declaring the maps) by size and modification time; any rebuild changes
 * one of them, and a record that does not match is not used (the
 * fingerprint is computed as before).
 */
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isSysError } from '../errors.js';
import { repoRoot } from '../paths.js';

interface FingerprintRecord {
  fingerprint: string;
  inputs: Record<string, string>;
}

function recordPath(): string {
  return join(repoRoot(), 'dist', 'layout-fingerprint.json');
}

/** size and mtime of each input, or null when one is missing */
function inputStamps(): Record<string, string> | null {
  const out: Record<string, string> = {};
  for (const rel of ['dist/maps/generated.js', 'bpf/master_ingress.bpf.o']) {
    try {
      const st = statSync(join(repoRoot(), rel));
      out[rel] = `${st.size}:${st.mtimeMs}`;
    } catch (e) {
      if (isSysError(e, 'ENOENT')) return null;
      throw e;
    }
  }
  return out;
}

/** The recorded fingerprint when it was computed from the inputs now present; else null. */
export function recordedFingerprint(): Buffer | null {
  let rec: FingerprintRecord;
  try {
    rec = JSON.parse(readFileSync(recordPath(), 'utf8')) as FingerprintRecord;
  } catch (e) {
    // not recorded (a build without the last step), or a torn write: compute it
    if (isSysError(e, 'ENOENT') || e instanceof SyntaxError) return null;
    throw e;
  }
  const now = inputStamps();
  if (!now || typeof rec.fingerprint !== 'string' || JSON.stringify(rec.inputs) !== JSON.stringify(now)) return null;
  return Buffer.from(rec.fingerprint, 'hex');
}

/** Records FINGERPRINT, computed from the inputs now present (the build's last step). */
export function recordFingerprint(fingerprint: Buffer): void {
  const inputs = inputStamps();
  if (!inputs) return;
  writeFileSync(recordPath(), JSON.stringify({ fingerprint: fingerprint.toString('hex'), inputs }, null, 2) + '\n');
}
