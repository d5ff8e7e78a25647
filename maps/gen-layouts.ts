// SPDX-License-Identifier: GPL-2.0-only
/**
 * Generates maps/generated.ts (TypeScript types, layouts and codecs for every
 * `ivb_*` struct and enum) from the BTF of bpf/layout.bpf.o, and the reason
 * table (labels and texts) from maps/drop_reasons.def.
 *
 *   node dist/maps/gen-layouts.js [object.o] [out.ts] [reasons.def]
 *
 * Reading BTF rather than parsing maps/layout.h means the offsets are the
 * compiler's, not our guess of them: whatever clang laid out for the BPF
 * programs is what the controller encodes. bpftool does the BTF decoding;
 * its `format raw -j` output is stable JSON.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { FieldKind } from './codec.js';

export const DEFAULT_OBJECT_PATH = 'bpf/layout.bpf.o';
export const DEFAULT_OUTPUT_PATH = 'maps/generated.ts';
/** The one table of reasons (number, NAME, label, text); the C enum comes from it through maps/layout.h. */
export const DEFAULT_REASONS_PATH = 'maps/drop_reasons.def';
/** The C enum the .def file expands into (maps/layout.h): checked against BTF so the two cannot drift. */
const REASON_ENUM = 'ivb_drop_reason';
const REASON_PREFIX = 'IVB_DROP_';

/** Only these names are generated: the project's own types, not libbpf's or the kernel's. */
const TYPE_PREFIX = 'ivb_';

/**
 * The struct in bpf/layout.bpf.c that exists only to pull every type into
 * BTF; it is not a map key or value, and its members are whole structs.
 */
const ANCHOR_STRUCT = 'ivb_layout_anchor';

/** Members with these names exist to make the layout explicit; they carry no value. */
const PAD_MEMBER = /^_*pad\d*$/;

// --- bpftool's JSON, as far as we read it -----------------------------------

export interface BtfMember {
  name: string;
  type_id: number;
  bits_offset: number;
  /** present (non-zero) only for bitfields */
  bitfield_size?: number;
}

export interface BtfEnumValue {
  name: string;
  val: number;
}

export interface BtfType {
  id: number;
  kind: string;
  name: string;
  size?: number;
  type_id?: number;
  nr_elems?: number;
  encoding?: string;
  nr_bits?: number;
  bits_offset?: number;
  members?: BtfMember[];
  values?: BtfEnumValue[];
}

export interface BtfDump {
  types: BtfType[];
}

/** Runs bpftool on an object and returns its BTF as parsed JSON. */
export function readBtf(objectPath: string): BtfDump {
  if (!existsSync(objectPath)) {
    throw new Error(`${objectPath}: no such file (build it first: make -C bpf)`);
  }
  const result = spawnSync('bpftool', ['btf', 'dump', 'file', objectPath, 'format', 'raw', '-j'], {
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
  });
  if (result.error) {
    const missing = (result.error as NodeJS.ErrnoException).code === 'ENOENT';
    throw new Error(
      missing
        ? 'bpftool not found in PATH: it is needed to read BTF (install bpftool / linux-tools)'
        : `bpftool: ${result.error.message}`,
    );
  }
  if (result.status !== 0) {
    const firstLine = result.stderr.split('\n').find((line) => line.trim().length > 0) ?? '';
    throw new Error(`bpftool btf dump file ${objectPath}: ${firstLine.trim() || `exit ${result.status}`}`);
  }
  const parsed: unknown = JSON.parse(result.stdout);
  if (typeof parsed !== 'object' || parsed === null || !Array.isArray((parsed as BtfDump).types)) {
    throw new Error(`bpftool btf dump file ${objectPath}: JSON without a "types" array`);
  }
  return parsed as BtfDump;
}

// --- from BTF to a plan of what to emit -------------------------------------

interface FieldPlan {
  cName: string;
  tsName: string;
  /** C spelling of the member, for the comment next to the TypeScript field */
  cDecl: string;
  offset: number;
  size: number;
  kind: FieldKind;
}

interface StructPlan {
  cName: string;
  tsName: string;
  size: number;
  fields: FieldPlan[];
}

interface EnumPlan {
  cName: string;
  tsName: string;
  members: { key: string; cName: string; value: number }[];
}

/** ivb_port -> IvbPort */
export function pascalCase(cName: string): string {
  return cName
    .split('_')
    .filter((part) => part.length > 0)
    .map((part) => part[0].toUpperCase() + part.slice(1))
    .join('');
}

/** master_ifindex -> masterIfindex */
export function camelCase(cName: string): string {
  const pascal = pascalCase(cName);
  return pascal.length === 0 ? pascal : pascal[0].toLowerCase() + pascal.slice(1);
}

/**
 * Strips the prefix all members share up to an underscore (IVB_MODE_L2 ->
 * L2), backing off where that would leave a key empty or starting with a
 * digit, which would not be a usable property name.
 */
export function enumMemberKeys(names: readonly string[]): string[] {
  let common = names[0] ?? '';
  for (const name of names) {
    let i = 0;
    while (i < common.length && i < name.length && common[i] === name[i]) i++;
    common = common.slice(0, i);
  }
  let prefix = common.slice(0, common.lastIndexOf('_') + 1);
  const usable = (p: string): boolean => names.every((n) => /^[A-Za-z_]/.test(n.slice(p.length)));
  while (prefix.length > 0 && !usable(prefix)) {
    prefix = prefix.slice(0, prefix.slice(0, -1).lastIndexOf('_') + 1);
  }
  return names.map((n) => n.slice(prefix.length));
}

class BtfIndex {
  private readonly byId = new Map<number, BtfType>();

  constructor(dump: BtfDump) {
    for (const type of dump.types) this.byId.set(type.id, type);
  }

  get(id: number): BtfType {
    const type = this.byId.get(id);
    if (type === undefined) throw new Error(`BTF type id ${id} is referenced but not present`);
    return type;
  }

  /** Follows typedefs and qualifiers to the type that decides the storage. */
  resolve(id: number): BtfType {
    let type = this.get(id);
    while (['TYPEDEF', 'CONST', 'VOLATILE', 'RESTRICT', 'TYPE_TAG'].includes(type.kind)) {
      type = this.get(requireNumber(type, 'type_id'));
    }
    return type;
  }

  /** The name a C programmer wrote for a type: the typedef's if there is one (__u32, not unsigned int). */
  spelling(id: number): string {
    const type = this.get(id);
    if (type.kind === 'ENUM' || type.kind === 'ENUM64') return `enum ${type.name}`;
    if (type.kind === 'STRUCT' || type.kind === 'UNION') return `${type.kind.toLowerCase()} ${type.name}`;
    if (type.kind === 'CONST' || type.kind === 'VOLATILE') {
      return `${type.kind.toLowerCase()} ${this.spelling(requireNumber(type, 'type_id'))}`;
    }
    return type.name;
  }
}

function requireNumber(type: BtfType, key: 'size' | 'type_id' | 'nr_elems'): number {
  const value = type[key];
  if (typeof value !== 'number') throw new Error(`BTF ${type.kind} ${type.name} (id ${type.id}) has no ${key}`);
  return value;
}

function intKind(size: number, signed: boolean, where: string): FieldKind {
  switch (size) {
    case 1: return signed ? 'i8' : 'u8';
    case 2: return signed ? 'i16' : 'u16';
    case 4: return signed ? 'i32' : 'u32';
    case 8: return signed ? 'i64' : 'u64';
    default: throw new Error(`${where}: ${size}-byte integers are not supported`);
  }
}

function planField(btf: BtfIndex, structName: string, member: BtfMember): FieldPlan {
  const where = `struct ${structName}.${member.name}`;
  if (member.bitfield_size !== undefined && member.bitfield_size !== 0) {
    throw new Error(`${where}: bitfields are not supported (use whole integers in maps/layout.h)`);
  }
  if (member.bits_offset % 8 !== 0) throw new Error(`${where}: not byte-aligned`);
  const offset = member.bits_offset / 8;
  const storage = btf.resolve(member.type_id);
  const isPad = PAD_MEMBER.test(member.name);
  let kind: FieldKind;
  let size: number;
  let cDecl: string;

  if (storage.kind === 'INT' || storage.kind === 'ENUM' || storage.kind === 'ENUM64') {
    size = requireNumber(storage, 'size');
    // enums are stored with the signedness BTF records; ints say SIGNED, unsigned ints say (none)
    kind = intKind(size, storage.encoding === 'SIGNED', where);
    cDecl = `${btf.spelling(member.type_id)} ${member.name}`;
  } else if (storage.kind === 'ARRAY') {
    const element = btf.resolve(requireNumber(storage, 'type_id'));
    if (element.kind !== 'INT' || element.size !== 1) {
      throw new Error(`${where}: only arrays of 1-byte integers (byte strings) are supported`);
    }
    size = requireNumber(storage, 'nr_elems');
    kind = 'bytes';
    cDecl = `${btf.spelling(requireNumber(storage, 'type_id'))} ${member.name}[${size}]`;
  } else {
    throw new Error(`${where}: ${storage.kind} members are not supported (map keys and values are flat)`);
  }
  return { cName: member.name, tsName: camelCase(member.name), cDecl, offset, size, kind: isPad ? 'pad' : kind };
}

function planStruct(btf: BtfIndex, type: BtfType): StructPlan {
  const fields = (type.members ?? []).map((member) => planField(btf, type.name, member));
  const seen = new Map<string, string>();
  for (const field of fields) {
    const clash = seen.get(field.tsName);
    if (clash !== undefined) {
      throw new Error(`struct ${type.name}: members ${clash} and ${field.cName} both become ${field.tsName}`);
    }
    seen.set(field.tsName, field.cName);
  }
  return { cName: type.name, tsName: pascalCase(type.name), size: requireNumber(type, 'size'), fields };
}

function planEnum(type: BtfType): EnumPlan {
  const values = type.values ?? [];
  const keys = enumMemberKeys(values.map((v) => v.name));
  const members = values.map((v, i) => {
    // bpftool's JSON prints a negative value sign-extended to 64 bits, which JSON.parse cannot hold exactly
    if (!Number.isSafeInteger(v.val) || v.val < 0) {
      throw new Error(`enum ${type.name}: ${v.name} = ${v.val}: only non-negative values below 2^53 are supported`);
    }
    return { key: keys[i], cName: v.name, value: v.val };
  });
  return { cName: type.name, tsName: pascalCase(type.name), members };
}

/** Every `ivb_*` struct and enum of the object, in BTF order (which is declaration order). */
function plan(dump: BtfDump): { enums: EnumPlan[]; structs: StructPlan[] } {
  const btf = new BtfIndex(dump);
  const ours = (type: BtfType): boolean => type.name.startsWith(TYPE_PREFIX);
  const enums = dump.types
    .filter((t) => (t.kind === 'ENUM' || t.kind === 'ENUM64') && ours(t))
    .map(planEnum);
  const structs = dump.types
    .filter((t) => t.kind === 'STRUCT' && ours(t) && t.name !== ANCHOR_STRUCT)
    .map((t) => planStruct(btf, t));
  if (structs.length === 0) throw new Error(`no ${TYPE_PREFIX}* structs in BTF: is this bpf/layout.bpf.o?`);

  // every export name must be unique across enums and structs
  const exportNames = new Map<string, string>();
  const claim = (name: string, owner: string): void => {
    const previous = exportNames.get(name);
    if (previous !== undefined) throw new Error(`${owner} and ${previous} would both export ${name}`);
    exportNames.set(name, owner);
  };
  for (const e of enums) claim(e.tsName, `enum ${e.cName}`);
  for (const s of structs) {
    for (const name of [s.tsName, `${s.tsName}Layout`, `encode${s.tsName}`, `decode${s.tsName}`]) {
      claim(name, `struct ${s.cName}`);
    }
  }
  return { enums, structs };
}

// --- the reason table -------------------------------------------------------

export interface ReasonRow {
  value: number;
  name: string;
  label: string;
  text: string;
}

const REASON_LINE = /^IVB_REASON\(\s*(\d+)\s*,\s*([A-Z][A-Z0-9_]*)\s*,\s*"([^"\\]*)"\s*,\s*"((?:[^"\\]|\\.)*)"\s*\)\s*$/;

/**
 * Parses maps/drop_reasons.def. Only IVB_REASON(...) lines count; C comments
 * and blank lines are skipped. Labels become Prometheus label values and JSON
 * keys, so they are restricted to [a-z0-9_]; numbers, names and labels must be
 * unique (numbers are never reused: they are counter keys).
 */
export function parseReasons(text: string, where: string): ReasonRow[] {
  const rows: ReasonRow[] = [];
  let inComment = false;
  for (const [i, raw] of text.split('\n').entries()) {
    let line = raw.trim();
    if (inComment) {
      const end = line.indexOf('*/');
      if (end < 0) continue;
      inComment = false;
      line = line.slice(end + 2).trim();
    }
    if (line.startsWith('/*')) {
      const end = line.indexOf('*/', 2);
      if (end < 0) {
        inComment = true;
        continue;
      }
      line = line.slice(end + 2).trim();
    }
    if (line === '' || line.startsWith('//')) continue;
    const m = REASON_LINE.exec(line);
    if (!m) throw new Error(`${where}:${i + 1}: not an IVB_REASON(number, NAME, "label", "text") line: ${line}`);
    const row = { value: Number(m[1]), name: m[2]!, label: m[3]!, text: m[4]!.replace(/\\(.)/g, '$1') };
    if (!/^[a-z][a-z0-9_]*$/.test(row.label)) throw new Error(`${where}:${i + 1}: label "${row.label}" must match [a-z][a-z0-9_]*`);
    for (const other of rows) {
      if (other.value === row.value) throw new Error(`${where}:${i + 1}: number ${row.value} is used twice (${other.name}, ${row.name})`);
      if (other.name === row.name) throw new Error(`${where}:${i + 1}: name ${row.name} is used twice`);
      if (other.label === row.label) throw new Error(`${where}:${i + 1}: label ${row.label} is used twice`);
    }
    rows.push(row);
  }
  if (rows.length === 0) throw new Error(`${where}: no IVB_REASON lines`);
  return rows;
}

/** The compiled enum must say exactly what the table says (a stale object, or a hand edit of one side). */
function checkReasonsAgainstBtf(rows: readonly ReasonRow[], enums: readonly EnumPlan[], where: string): void {
  const e = enums.find((x) => x.cName === REASON_ENUM);
  if (!e) throw new Error(`enum ${REASON_ENUM} is not in BTF: is this bpf/layout.bpf.o?`);
  const btf = new Map(e.members.map((m) => [m.cName, m.value]));
  for (const row of rows) {
    const v = btf.get(`${REASON_PREFIX}${row.name}`);
    if (v !== row.value) {
      throw new Error(`${where}: ${row.name} = ${row.value}, but BTF has ${REASON_PREFIX}${row.name} = ${v ?? 'nothing'} (rebuild: make -C bpf)`);
    }
  }
  if (btf.size !== rows.length) throw new Error(`${where}: ${rows.length} reasons, BTF enum ${REASON_ENUM} has ${btf.size}`);
}

function tsString(s: string): string {
  return `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

function emitReasons(rows: readonly ReasonRow[], label: string): string {
  const lines = [
    `/** ${label}: every reason's stable number, NAME (IvbDropReason), label (metric label, JSON key) and text */`,
    'export interface IvbDropReasonEntry {',
    '  readonly value: number;',
    '  readonly name: string;',
    '  readonly label: string;',
    '  readonly text: string;',
    '}',
    '',
    'export const IvbDropReasonTable: readonly IvbDropReasonEntry[] = [',
  ];
  for (const r of rows) {
    lines.push(`  { value: ${r.value}, name: ${tsString(r.name)}, label: ${tsString(r.label)}, text: ${tsString(r.text)} },`);
  }
  lines.push('];');
  return lines.join('\n');
}

// --- emitting TypeScript ----------------------------------------------------

const WRITERS: Record<Exclude<FieldKind, 'bytes' | 'pad'>, { write: string; read: string; tsType: string }> = {
  u8: { write: 'writeUInt8', read: 'readUInt8', tsType: 'number' },
  u16: { write: 'writeUInt16LE', read: 'readUInt16LE', tsType: 'number' },
  u32: { write: 'writeUInt32LE', read: 'readUInt32LE', tsType: 'number' },
  u64: { write: 'writeBigUInt64LE', read: 'readBigUInt64LE', tsType: 'bigint' },
  i8: { write: 'writeInt8', read: 'readInt8', tsType: 'number' },
  i16: { write: 'writeInt16LE', read: 'readInt16LE', tsType: 'number' },
  i32: { write: 'writeInt32LE', read: 'readInt32LE', tsType: 'number' },
  i64: { write: 'writeBigInt64LE', read: 'readBigInt64LE', tsType: 'bigint' },
};

function emitEnum(e: EnumPlan): string {
  const lines = [`/** enum ${e.cName} */`, `export const ${e.tsName} = {`];
  for (const m of e.members) lines.push(`  ${m.key}: ${m.value}, // ${m.cName}`);
  lines.push('} as const;', `export type ${e.tsName} = (typeof ${e.tsName})[keyof typeof ${e.tsName}];`);
  return lines.join('\n');
}

function emitStruct(s: StructPlan): string {
  const valueFields = s.fields.filter((f) => f.kind !== 'pad');
  const at = (f: FieldPlan): string => (f.offset === 0 ? 'offset' : `offset + ${f.offset}`);
  const lines: string[] = [];

  lines.push(`/** struct ${s.cName} (${s.size} bytes) */`, `export interface ${s.tsName} {`);
  for (const f of valueFields) {
    const tsType = f.kind === 'bytes' ? 'Buffer' : WRITERS[f.kind as keyof typeof WRITERS].tsType;
    const note = f.kind === 'bytes' ? `, exactly ${f.size} bytes` : '';
    lines.push(`  /** ${f.cDecl}${note} */`, `  ${f.tsName}: ${tsType};`);
  }
  lines.push('}', '');

  lines.push(`export const ${s.tsName}Layout = {`, `  name: '${s.cName}',`, `  size: ${s.size},`, '  fields: {');
  for (const f of s.fields) {
    lines.push(`    ${f.tsName}: { offset: ${f.offset}, size: ${f.size}, kind: '${f.kind}' },`);
  }
  lines.push('  },', '} as const satisfies StructLayout;', '');

  lines.push(`export function encode${s.tsName}(v: ${s.tsName}): Buffer {`);
  lines.push('  // zero-filled: pad members go out as 0, and the kernel compares keys byte for byte');
  lines.push(`  const b = Buffer.alloc(${s.size});`);
  for (const f of valueFields) {
    if (f.kind === 'bytes') {
      lines.push(`  b.set(requireLength('${s.tsName}.${f.tsName}', v.${f.tsName}, ${f.size}), ${f.offset});`);
    } else {
      lines.push(`  b.${WRITERS[f.kind as keyof typeof WRITERS].write}(v.${f.tsName}, ${f.offset});`);
    }
  }
  lines.push('  return b;', '}', '');

  lines.push(`export function decode${s.tsName}(b: Buffer, offset = 0): ${s.tsName} {`);
  lines.push(`  requireSpan('${s.tsName}', b, offset, ${s.size});`);
  lines.push('  return {');
  for (const f of valueFields) {
    if (f.kind === 'bytes') {
      lines.push(`    ${f.tsName}: copyBytes(b, ${at(f)}, ${f.size}),`);
    } else {
      lines.push(`    ${f.tsName}: b.${WRITERS[f.kind as keyof typeof WRITERS].read}(${at(f)}),`);
    }
  }
  lines.push('  };', '}');
  return lines.join('\n');
}

function render(
  { enums, structs }: { enums: EnumPlan[]; structs: StructPlan[] },
  sourceLabel: string,
  reasons?: { rows: ReasonRow[]; label: string },
): string {
  const parts = [
    [
      '// SPDX-License-Identifier: GPL-2.0-only',
      `// generated from ${sourceLabel} by maps/gen-layouts.ts — do not edit`,
      '// (edit maps/layout.h, then: make -C bpf && npm run build:ts && npm run gen:maps)',
      "import { copyBytes, requireLength, requireSpan, type StructLayout } from './codec.js';",
    ].join('\n'),
    ...enums.map(emitEnum),
    ...structs.map(emitStruct),
    // last, so that everything above stays byte-identical to what the generator wrote before the table existed
    ...(reasons ? [emitReasons(reasons.rows, reasons.label)] : []),
  ];
  return parts.join('\n\n') + '\n';
}

export interface GenerateResult {
  outPath: string;
  changed: boolean;
  structs: number;
  enums: number;
}

/**
 * Regenerates `outPath` from `objectPath`, writing only when the text
 * differs so that an unchanged layout leaves the file's mtime alone and a
 * build does not rebuild everything downstream.
 */
export function generateLayouts(
  objectPath: string,
  outPath: string,
  sourceLabel = posixRelative(objectPath),
  reasonsPath: string = DEFAULT_REASONS_PATH,
): GenerateResult {
  const planned = plan(readBtf(objectPath));
  if (!existsSync(reasonsPath)) throw new Error(`${reasonsPath}: no such file (the reason table)`);
  const reasons = { rows: parseReasons(readFileSync(reasonsPath, 'utf8'), reasonsPath), label: posixRelative(reasonsPath) };
  checkReasonsAgainstBtf(reasons.rows, planned.enums, reasons.label);
  const text = render(planned, sourceLabel, reasons);
  const previous = existsSync(outPath) ? readFileSync(outPath, 'utf8') : undefined;
  const changed = previous !== text;
  if (changed) writeFileSync(outPath, text);
  return { outPath, changed, structs: planned.structs.length, enums: planned.enums.length };
}

/** The object as the header should name it: relative to where the generator runs, with / on every OS. */
function posixRelative(file: string): string {
  return path.relative(process.cwd(), path.resolve(file)).split(path.sep).join('/');
}

/** Command-line entry: `[object.o] [out.ts] [reasons.def]`; returns the exit status. */
export function main(argv: readonly string[] = process.argv.slice(2)): number {
  if (argv.length > 3 || argv.includes('-h') || argv.includes('--help')) {
    console.error('usage: node dist/maps/gen-layouts.js [object.o] [out.ts] [reasons.def]');
    return argv.length > 3 ? 2 : 0;
  }
  const objectPath = argv[0] ?? DEFAULT_OBJECT_PATH;
  const outPath = argv[1] ?? DEFAULT_OUTPUT_PATH;
  const reasonsPath = argv[2] ?? DEFAULT_REASONS_PATH;
  try {
    const result = generateLayouts(objectPath, outPath, undefined, reasonsPath);
    const what = `${result.structs} structs, ${result.enums} enums from ${objectPath}`;
    console.log(result.changed ? `gen-layouts: wrote ${outPath} (${what})` : `gen-layouts: ${outPath} up to date (${what})`);
    return 0;
  } catch (err) {
    console.error(`gen-layouts: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  }
}

// run only as a script, not when a test imports main()
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  process.exitCode = main();
}
