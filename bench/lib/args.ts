// SPDX-License-Identifier: GPL-2.0-only
/** What the in-process bench scripts (test-run cost, events cost, verifier) share. */

/** `--NAME N` from the command line, or DFLT. */
export function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
}

/** A map key or value of one little-endian u32. */
export function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
}
