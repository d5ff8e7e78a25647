// SPDX-License-Identifier: GPL-2.0-only
/** Statistics, the Markdown table and the PNG chart (bars with min-max whiskers, a tiny built-in font). */
import { writeFileSync } from 'node:fs';
import { PNG } from 'pngjs';

export interface Stat {
  n: number;
  median: number;
  min: number;
  max: number;
  /** (max - min) / median, in % */
  spreadPct: number;
  samples: number[];
}

export function stat(samples: number[]): Stat | null {
  const s = samples.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!s.length) return null;
  const mid = s.length >> 1;
  const median = s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
  return { n: s.length, median, min: s[0]!, max: s[s.length - 1]!, spreadPct: median ? ((s[s.length - 1]! - s[0]!) / median) * 100 : 0, samples };
}

export function fmt(x: number | undefined | null, digits = 2): string {
  if (x === undefined || x === null || !Number.isFinite(x)) return '–';
  if (Math.abs(x) >= 100) return x.toFixed(0);
  if (Math.abs(x) >= 10) return x.toFixed(1);
  return x.toFixed(digits);
}

export function cell(s: Stat | null | undefined, digits = 2): string {
  if (!s) return '–';
  return `${fmt(s.median, digits)} (±${s.spreadPct.toFixed(0)}%)`;
}

// ---------------------------------------------------------------------------
// 5x7 bitmap font: uppercase, digits and a few signs (text is upper-cased)

const GLYPHS: Record<string, string> = {
  A: '01110100011000111111100011000110001', B: '11110100011000111110100011000111110', C: '01110100011000010000100001000101110',
  D: '11110100011000110001100011000111110', E: '11111100001000011110100001000011111', F: '11111100001000011110100001000010000',
  G: '01110100011000010111100011000101111', H: '10001100011000111111100011000110001', I: '01110001000010000100001000010001110',
  J: '00111000100001000010000101001001100', K: '10001100101010011000101001001010001', L: '10000100001000010000100001000011111',
  M: '10001110111010110101100011000110001', N: '10001110011010110011100011000110001', O: '01110100011000110001100011000101110',
  P: '11110100011000111110100001000010000', Q: '01110100011000110001101011001001101', R: '11110100011000111110101001001010001',
  S: '01111100001000001110000010000111110', T: '11111001000010000100001000010000100', U: '10001100011000110001100011000101110',
  V: '10001100011000110001100010101000100', W: '10001100011000110101101011010101010', X: '10001100010101000100010101000110001',
  Y: '10001100010101000100001000010000100', Z: '11111000010001000100010001000011111',
  '0': '01110100011001110101110011000101110', '1': '00100011000010000100001000010001110', '2': '01110100010000100010001000100011111',
  '3': '11111000100010000010000011000101110', '4': '00010001100101010010111110001000010', '5': '11111100001111000001000011000101110',
  '6': '00110010001000011110100011000101110', '7': '11111000010001000100010000100001000', '8': '01110100011000101110100011000101110',
  '9': '01110100011000101111000010001001100', '.': '00000000000000000000000000110001100', ',': '00000000000000000000001100010001000',
  '-': '00000000000000011111000000000000000', '+': '00000001000010011111001000010000000', '/': '00000000010001000100010001000000000',
  '(': '00010001000100001000010000010000010', ')': '01000001000001000010000100010001000', ':': '00000011000110000000011000110000000',
  '%': '11000110010001000100010001001100011', '=': '00000000001111100000111110000000000', '>': '10000010000010000010001000100010000',
  '_': '00000000000000000000000000000011111', '±': '00100001001111100100001000000011111', '*': '00000001001010101110101010010000000',
};

type RGB = [number, number, number];

class Canvas {
  readonly png: PNG;
  constructor(readonly w: number, readonly h: number) {
    this.png = new PNG({ width: w, height: h });
    this.rect(0, 0, w, h, [255, 255, 255]);
  }
  px(x: number, y: number, c: RGB): void {
    if (x < 0 || y < 0 || x >= this.w || y >= this.h) return;
    const i = (y * this.w + x) * 4;
    this.png.data[i] = c[0];
    this.png.data[i + 1] = c[1];
    this.png.data[i + 2] = c[2];
    this.png.data[i + 3] = 255;
  }
  rect(x: number, y: number, w: number, h: number, c: RGB): void {
    for (let j = Math.round(y); j < Math.round(y + h); j++) for (let i = Math.round(x); i < Math.round(x + w); i++) this.px(i, j, c);
  }
  text(x: number, y: number, s: string, c: RGB = [0, 0, 0], scale = 1): number {
    for (const ch of s.toUpperCase()) {
      const g = GLYPHS[ch];
      if (g) for (let k = 0; k < 35; k++) if (g[k] === '1') this.rect(x + (k % 5) * scale, y + Math.floor(k / 5) * scale, scale, scale, c);
      x += 6 * scale;
    }
    return x;
  }
}

const PALETTE: RGB[] = [
  [31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189], [140, 86, 75], [227, 119, 194], [127, 127, 127], [188, 189, 34], [23, 190, 207],
];

export interface Panel {
  title: string;
  unit: string;
  bars: Array<{ label: string; stat: Stat | null; color: number }>;
}

/** One horizontal-bar panel per workload; whiskers from min to max, value = median. */
export function drawChart(path: string, title: string, panels: Panel[]): void {
  const barH = 12;
  const gap = 4;
  const labelW = 200;
  const plotW = 420;
  const width = labelW + plotW + 110;
  const heights = panels.map((p) => 22 + p.bars.length * (barH + gap) + 10);
  const height = 30 + heights.reduce((a, b) => a + b, 0);
  const c = new Canvas(width, height);
  c.text(8, 8, title, [0, 0, 0], 2);
  let y = 30;
  panels.forEach((p, pi) => {
    c.text(8, y + 4, `${p.title} (${p.unit})`, [0, 0, 0]);
    const max = Math.max(1e-9, ...p.bars.map((b) => b.stat?.max ?? 0));
    let by = y + 18;
    for (const b of p.bars) {
      c.text(8, by + 3, b.label.slice(0, 32), [60, 60, 60]);
      const x0 = labelW;
      c.rect(x0, by, 1, barH, [0, 0, 0]);
      if (b.stat) {
        const scale = plotW / max;
        c.rect(x0, by + 1, b.stat.median * scale, barH - 2, PALETTE[b.color % PALETTE.length]!);
        const xmin = x0 + b.stat.min * scale;
        const xmax = x0 + b.stat.max * scale;
        c.rect(xmin, by + barH / 2, Math.max(1, xmax - xmin), 1, [0, 0, 0]);
        c.rect(xmin, by + 2, 1, barH - 4, [0, 0, 0]);
        c.rect(xmax, by + 2, 1, barH - 4, [0, 0, 0]);
        c.text(Math.max(xmax, x0 + b.stat.median * scale) + 4, by + 3, fmt(b.stat.median), [0, 0, 0]);
      } else {
        c.text(x0 + 4, by + 3, 'N/A', [150, 150, 150]);
      }
      by += barH + gap;
    }
    y += heights[pi]!;
    c.rect(0, y - 4, width, 1, [220, 220, 220]);
  });
  writeFileSync(path, PNG.sync.write(c.png));
}

// ---------------------------------------------------------------------------
// progress bar on stderr

export class Progress {
  private done = 0;
  private readonly t0 = performance.now();
  constructor(private total: number) {}
  grow(n: number): void {
    this.total += n;
  }
  tick(what: string): void {
    this.done++;
    const w = 30;
    const f = Math.min(w, Math.round((this.done / Math.max(1, this.total)) * w));
    const el = (performance.now() - this.t0) / 1000;
    const eta = this.done ? (el / this.done) * (this.total - this.done) : 0;
    const line = `[${'#'.repeat(f)}${'.'.repeat(w - f)}] ${this.done}/${this.total} ${el.toFixed(0)}s eta ${eta.toFixed(0)}s ${what}`;
    process.stderr.write(process.stderr.isTTY ? `\r${line.padEnd(110).slice(0, 110)}` : `${line}\n`);
  }
  end(): void {
    if (process.stderr.isTTY) process.stderr.write('\n');
  }
}
