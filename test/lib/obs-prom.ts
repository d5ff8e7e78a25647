// SPDX-License-Identifier: GPL-2.0-only
/**
 * A line-oriented parser of the Prometheus text exposition format (0.0.4):
 * `# HELP` / `# TYPE` lines, and samples `name{label="value",...} value
 * [timestamp]` with the format's escapes (\\, \", \n) in label values. Enough
 * to read what prom-client writes, strict enough to fail on what it should
 * not write.
 */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Exposition {
  samples: Sample[];
  types: Map<string, string>;
  help: Map<string, string>;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*/;

function parseValue(s: string, line: string): number {
  if (s === '+Inf') return Infinity;
  if (s === '-Inf') return -Infinity;
  if (s === 'NaN') return NaN;
  const v = Number(s);
  if (s === '' || Number.isNaN(v)) throw new Error(`bad sample value "${s}" in: ${line}`);
  return v;
}

export function parseExposition(text: string): Exposition {
  const out: Exposition = { samples: [], types: new Map(), help: new Map() };
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
      if (m) (m[1] === 'TYPE' ? out.types : out.help).set(m[2]!, m[3]!);
      continue;
    }
    const nm = NAME.exec(line);
    if (!nm) throw new Error(`no metric name in: ${line}`);
    let i = nm[0].length;
    const labels: Record<string, string> = {};
    if (line[i] === '{') {
      i++;
      for (;;) {
        while (line[i] === ' ') i++;
        if (line[i] === '}') {
          i++;
          break;
        }
        const lm = LABEL.exec(line.slice(i));
        if (!lm) throw new Error(`bad label name at ${i} in: ${line}`);
        i += lm[0].length;
        if (line[i] !== '=' || line[i + 1] !== '"') throw new Error(`expected =" at ${i} in: ${line}`);
        i += 2;
        let v = '';
        for (;;) {
          const c = line[i];
          if (c === undefined) throw new Error(`unterminated label value in: ${line}`);
          if (c === '"') {
            i++;
            break;
          }
          if (c === '\\') {
            const n = line[i + 1];
            v += n === 'n' ? '\n' : n === '\\' ? '\\' : n === '"' ? '"' : (() => {
              throw new Error(`bad escape \\${n} in: ${line}`);
            })();
            i += 2;
            continue;
          }
          v += c;
          i++;
        }
        if (lm[0] in labels) throw new Error(`label ${lm[0]} twice in: ${line}`);
        labels[lm[0]] = v;
        if (line[i] === ',') i++;
      }
    }
    if (line[i] !== ' ') throw new Error(`expected a space before the value in: ${line}`);
    const rest = line.slice(i + 1).trim().split(/\s+/);
    if (rest.length < 1 || rest.length > 2) throw new Error(`bad value/timestamp in: ${line}`);
    out.samples.push({ name: nm[0], labels, value: parseValue(rest[0]!, line) });
  }
  return out;
}

/** The one sample of NAME whose labels include WANT (0 when absent: a counter never incremented). */
export function sampleValue(e: Exposition, name: string, want: Record<string, string>): number {
  const found = e.samples.filter((s) => s.name === name && Object.entries(want).every(([k, v]) => s.labels[k] === v));
  if (found.length > 1) throw new Error(`${name} ${JSON.stringify(want)} matches ${found.length} samples`);
  return found[0]?.value ?? 0;
}
