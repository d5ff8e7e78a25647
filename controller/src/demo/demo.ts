// SPDX-License-Identifier: GPL-2.0-only
export async function runDemo(): Promise<number> {
  process.stderr.write('demo: not written yet\n');
  return 1;
}
