// SPDX-License-Identifier: GPL-2.0-only
/**
 * maps/generated.ts against the compiler's truth: the BTF of
 * bpf/layout.bpf.o, read here with our own few lines of bpftool JSON walking
 * rather than the generator's, so that a generator bug cannot hide itself.
 * Also fails when maps/layout.h changed and nobody regenerated.
 */
import { execFileSync, execSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import * as generated from '../maps/generated.js';
import type { FieldLayout, StructLayout } from '../maps/codec.js';
import { main, parseReasons } from '../maps/gen-layouts.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const objectPath = path.join(repoRoot, 'bpf/layout.bpf.o');
const checkedInPath = path.join(repoRoot, 'maps/generated.ts');
/** bpf/layout.bpf.c's holder of every type; not a map key or value */
const ANCHOR = 'ivb_layout_anchor';

interface RawMember { name: string; type_id: number; bits_offset: number; bitfield_size?: number }
interface RawType {
  id: number;
  kind: string;
  name: string;
  size?: number;
  type_id?: number;
  nr_elems?: number;
  members?: RawMember[];
  values?: { name: string; val: number }[];
}

type Encoder = (value: Record<string, unknown>) => Buffer;
type Decoder = (buffer: Buffer, offset?: number) => Record<string, unknown>;

const exportsByName = generated as unknown as Record<string, unknown>;

let typesById: Map<number, RawType>;
let btfStructs: RawType[];
let btfEnums: RawType[];

function typeById(id: number): RawType {
  const type = typesById.get(id);
  if (type === undefined) throw new Error(`BTF id ${id} missing`);
  return type;
}

/** Bytes a member occupies: typedefs and qualifiers followed down to an int, enum or array. */
function byteSize(id: number): number {
  const type = typeById(id);
  if (['TYPEDEF', 'CONST', 'VOLATILE', 'RESTRICT', 'TYPE_TAG'].includes(type.kind)) {
    return byteSize(type.type_id ?? -1);
  }
  if (type.kind === 'ARRAY') return (type.nr_elems ?? 0) * byteSize(type.type_id ?? -1);
  if (type.size === undefined) throw new Error(`BTF ${type.kind} ${type.name} has no size`);
  return type.size;
}

function camel(cName: string): string {
  return cName.replace(/^_+/, '').replace(/_([a-z0-9])/g, (_m, c: string) => c.toUpperCase());
}

function pascal(cName: string): string {
  const c = camel(cName);
  return c[0].toUpperCase() + c.slice(1);
}

function layoutFor(struct: RawType): StructLayout {
  const layout = exportsByName[`${pascal(struct.name)}Layout`];
  expect(layout, `maps/generated.ts lacks ${pascal(struct.name)}Layout for struct ${struct.name}`).toBeDefined();
  return layout as StructLayout;
}

/**
 * A value with a different, recognisable number in every field, sized to the
 * field so that it survives the encode (a u8 gets 0..255, and so on).
 */
function sampleValue(layout: StructLayout, seed: number): Record<string, unknown> {
  const value: Record<string, unknown> = {};
  let n = seed;
  for (const [name, field] of Object.entries(layout.fields)) {
    n += 1;
    switch (field.kind) {
      case 'pad': break;
      case 'bytes': value[name] = Buffer.from(Array.from({ length: field.size }, (_x, i) => (n * 31 + i * 7) & 0xff)); break;
      case 'u64': value[name] = 0x0123_4567_89ab_cdefn + BigInt(n); break;
      case 'i64': value[name] = -0x0123_4567_89abn - BigInt(n); break;
      default: {
        const bits = field.size * 8;
        const top = 2 ** bits - 1;
        // the high byte set, to catch a writer that drops or swaps bytes
        const unsigned = top - ((n * 0x0101) % top);
        value[name] = field.kind.startsWith('i') && unsigned >= 2 ** (bits - 1) ? unsigned - 2 ** bits : unsigned;
      }
    }
  }
  return value;
}

/** What a field's bytes in an encoding hold, read without the generated decoder. */
function readField(buffer: Buffer, field: FieldLayout): unknown {
  switch (field.kind) {
    case 'bytes': return Buffer.from(buffer.subarray(field.offset, field.offset + field.size));
    case 'u64': return buffer.readBigUInt64LE(field.offset);
    case 'i64': return buffer.readBigInt64LE(field.offset);
    case 'pad': return buffer.subarray(field.offset, field.offset + field.size).every((byte) => byte === 0);
    default:
      return field.kind.startsWith('i')
        ? buffer.readIntLE(field.offset, field.size)
        : buffer.readUIntLE(field.offset, field.size);
  }
}

beforeAll(() => {
  execSync('make -C bpf layout.bpf.o', { cwd: repoRoot, stdio: 'pipe' });
  const json = execFileSync('bpftool', ['btf', 'dump', 'file', objectPath, 'format', 'raw', '-j'], {
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  const types = (JSON.parse(json) as { types: RawType[] }).types;
  typesById = new Map(types.map((t) => [t.id, t]));
  btfStructs = types.filter((t) => t.kind === 'STRUCT' && t.name.startsWith('ivb_') && t.name !== ANCHOR);
  btfEnums = types.filter((t) => (t.kind === 'ENUM' || t.kind === 'ENUM64') && t.name.startsWith('ivb_'));
}, 60_000);

describe('layouts match BTF', () => {
  it('finds the structs and enums of maps/layout.h', () => {
    const names = btfStructs.map((s) => s.name);
    for (const expected of ['ivb_port_key', 'ivb_port', 'ivb_addr_key', 'ivb_addr_owner', 'ivb_slave_key', 'ivb_slave', 'ivb_fanout_key', 'ivb_fanout_entry']) {
      expect(names).toContain(expected);
    }
    expect(btfEnums.map((e) => e.name)).toEqual(expect.arrayContaining(['ivb_mode', 'ivb_port_flags', 'ivb_family', 'ivb_slave_flags']));
  });

  it('has the BTF size, and every member at its BTF offset and size', () => {
    for (const struct of btfStructs) {
      const layout = layoutFor(struct);
      expect(layout.name).toBe(struct.name);
      expect(layout.size, `${struct.name} size`).toBe(struct.size);
      const members = struct.members ?? [];
      expect(Object.keys(layout.fields).sort(), `${struct.name} members`).toEqual(members.map((m) => camel(m.name)).sort());
      for (const member of members) {
        const field = layout.fields[camel(member.name)];
        expect(field, `${struct.name}.${member.name} missing from layout`).toBeDefined();
        expect(member.bitfield_size ?? 0, `${struct.name}.${member.name} is a bitfield`).toBe(0);
        expect(field.offset, `${struct.name}.${member.name} offset`).toBe(member.bits_offset / 8);
        expect(field.size, `${struct.name}.${member.name} size`).toBe(byteSize(member.type_id));
        expect(field.kind === 'pad', `${struct.name}.${member.name} pad-ness`).toBe(/^_*pad\d*$/.test(member.name));
      }
    }
  });

  it('has no holes: maps/layout.h pads every struct explicitly', () => {
    // a hole is bytes the C side may leave uninitialised in a map key
    for (const struct of btfStructs) {
      const fields = Object.values(layoutFor(struct).fields).sort((a, b) => a.offset - b.offset);
      let end = 0;
      for (const field of fields) {
        expect(field.offset, `${struct.name}: hole before offset ${field.offset}`).toBe(end);
        end = field.offset + field.size;
      }
      expect(end, `${struct.name}: hole at the end`).toBe(struct.size);
    }
  });

  it('exports nothing for a struct that is no longer in BTF', () => {
    const btfNames = new Set(btfStructs.map((s) => `${pascal(s.name)}Layout`));
    const layoutExports = Object.keys(exportsByName).filter((name) => /^Ivb\w+Layout$/.test(name));
    expect(layoutExports.sort()).toEqual([...btfNames].sort());
  });

  it('has every enum with the BTF values, keyed by the member name minus the shared prefix', () => {
    for (const btfEnum of btfEnums) {
      const generatedEnum = exportsByName[pascal(btfEnum.name)] as Record<string, number> | undefined;
      expect(generatedEnum, `maps/generated.ts lacks ${pascal(btfEnum.name)}`).toBeDefined();
      const entries = Object.entries(generatedEnum ?? {});
      const values = btfEnum.values ?? [];
      expect(entries.length, `enum ${btfEnum.name} member count`).toBe(values.length);
      for (const [i, v] of values.entries()) {
        const [key, value] = entries[i];
        expect(v.name.endsWith(key), `${btfEnum.name}: ${key} is not a suffix of ${v.name}`).toBe(true);
        expect(value, `${v.name}`).toBe(v.val);
      }
    }
    expect(generated.IvbMode).toEqual({ L2: 0, L3: 1, L3S: 2 });
    expect(generated.IvbPortFlags).toEqual({ PRIVATE: 1, VEPA: 2 });
    expect(generated.IvbFamily).toEqual({ INET: 4, INET6: 6 });
    expect(generated.IvbSlaveFlags).toEqual({ UP: 1, SAME_NETNS: 2 });
  });
});

describe('codecs', () => {
  it('round-trips a sample of every struct, with fields at their layout offsets and pads zero', () => {
    for (const [index, struct] of btfStructs.entries()) {
      const name = pascal(struct.name);
      const layout = layoutFor(struct);
      const encode = exportsByName[`encode${name}`] as Encoder;
      const decode = exportsByName[`decode${name}`] as Decoder;
      const value = sampleValue(layout, index * 10);

      const encoded = encode(value);
      expect(encoded.length, `${name} encoded length`).toBe(layout.size);
      for (const [fieldName, field] of Object.entries(layout.fields)) {
        const expected = field.kind === 'pad' ? true : value[fieldName];
        expect(readField(encoded, field), `${name}.${fieldName} bytes`).toEqual(expected);
      }
      expect(decode(encoded), `${name} round trip`).toEqual(value);

      // at an offset inside a bigger buffer, as when decoding a batch of values
      const batch = Buffer.concat([Buffer.alloc(3, 0xee), encoded, Buffer.alloc(5, 0xee)]);
      expect(decode(batch, 3), `${name} at offset 3`).toEqual(value);
      expect(() => decode(batch, batch.length - layout.size + 1), `${name} past the end`).toThrow(RangeError);
    }
  });

  it('encodes struct ivb_port as the C side lays it out', () => {
    const port = {
      masterIfindex: 0x04030201,
      masterMac: Buffer.from([0x02, 0x00, 0x5e, 0x10, 0x20, 0x30]),
      mode: generated.IvbMode.L3S,
      flags: generated.IvbPortFlags.PRIVATE | generated.IvbPortFlags.VEPA,
      nrSlaves: 7,
    };
    expect(generated.encodeIvbPort(port).toString('hex')).toBe('01020304' + '02005e102030' + '02' + '03' + '07000000' + '00000000');
  });

  it('decodes byte arrays as copies, not views of the input', () => {
    const encoded = generated.encodeIvbAddrKey({ portId: 1, family: generated.IvbFamily.INET6, addr: Buffer.alloc(16, 0xab) });
    const decoded = generated.decodeIvbAddrKey(encoded);
    encoded.fill(0);
    expect(decoded.addr).toEqual(Buffer.alloc(16, 0xab));
  });

  it('refuses byte arrays of the wrong length and out-of-range integers', () => {
    expect(() => generated.encodeIvbAddrKey({ portId: 1, family: 4, addr: Buffer.from([10, 0, 0, 1]) })).toThrow(RangeError);
    expect(() => generated.encodeIvbPortKey({ portId: 2 ** 32 })).toThrow(RangeError);
    expect(() => generated.encodeIvbAddrOwner({ peerIfindex: 1, prefixlen: 256 })).toThrow(RangeError);
    expect(() => generated.decodeIvbSlave(Buffer.alloc(15))).toThrow(RangeError);
  });
});

describe('reason table (maps/drop_reasons.def)', () => {
  const defPath = path.join(repoRoot, 'maps/drop_reasons.def');

  it('has one entry per BTF enum ivb_drop_reason member, same number, same name', () => {
    const btf = btfEnums.find((e) => e.name === 'ivb_drop_reason');
    expect(btf).toBeDefined();
    const fromBtf = (btf?.values ?? []).map((v) => [v.val, v.name.replace(/^IVB_DROP_/, '')]);
    expect(generated.IvbDropReasonTable.map((r) => [r.value, r.name])).toEqual(fromBtf);
    for (const r of generated.IvbDropReasonTable) {
      expect((generated.IvbDropReason as Record<string, number>)[r.name]).toBe(r.value);
    }
  });

  it('carries the labels and texts of the .def file, labels usable as metric label values', () => {
    // read here with a plain split, not the generator's parser
    const lines = readFileSync(defPath, 'utf8').split('\n').filter((l) => l.startsWith('IVB_REASON('));
    expect(generated.IvbDropReasonTable.length).toBe(lines.length);
    for (const [i, line] of lines.entries()) {
      const r = generated.IvbDropReasonTable[i]!;
      expect(line).toContain(`"${r.label}"`);
      expect(line).toContain(`"${r.text}"`);
      expect(r.label).toMatch(/^[a-z][a-z0-9_]*$/);
    }
    expect(new Set(generated.IvbDropReasonTable.map((r) => r.label)).size).toBe(lines.length);
  });

  it('refuses a reused number, a duplicate label and a malformed line', () => {
    expect(() => parseReasons('IVB_REASON(1, A, "a", "x")\nIVB_REASON(1, B, "b", "y")\n', 't.def')).toThrow(/number 1/);
    expect(() => parseReasons('IVB_REASON(1, A, "a", "x")\nIVB_REASON(2, B, "a", "y")\n', 't.def')).toThrow(/label a/);
    expect(() => parseReasons('IVB_REASON(1, A, "Bad Label", "x")\n', 't.def')).toThrow(/label/);
    expect(() => parseReasons('IVB_REASON(1, A)\n', 't.def')).toThrow(/t.def:1/);
    expect(parseReasons('/* c\n * d */\nIVB_REASON(3, C, "c", "it\'s")\n', 't.def')).toEqual([{ value: 3, name: 'C', label: 'c', text: "it's" }]);
  });
});

describe('generator', () => {
  let workDir: string;

  beforeAll(() => {
    workDir = mkdtempSync(path.join(tmpdir(), 'ivb-layout-'));
  });
  afterAll(() => {
    rmSync(workDir, { recursive: true, force: true });
  });

  it('regenerates exactly the checked-in maps/generated.ts (run npm run gen:maps after editing maps/layout.h)', () => {
    const outPath = path.join(workDir, 'generated.ts');
    // relative, as `npm run gen:maps` names it: the path appears in the header comment
    const objectArg = path.relative(process.cwd(), objectPath);
    const log = vi.spyOn(console, 'log').mockImplementation(() => undefined);
    try {
      expect(main([objectArg, outPath])).toBe(0);
      expect(log.mock.calls.at(-1)?.[0]).toMatch(/wrote/);
      expect(readFileSync(outPath, 'utf8')).toBe(readFileSync(checkedInPath, 'utf8'));

      // a second run with nothing changed must leave the file alone
      const before = statSync(outPath).mtimeMs;
      expect(main([objectArg, outPath])).toBe(0);
      expect(log.mock.calls.at(-1)?.[0]).toMatch(/up to date/);
      expect(statSync(outPath).mtimeMs).toBe(before);
    } finally {
      log.mockRestore();
    }
  });

  it('says clearly when bpftool is missing', () => {
    const savedPath = process.env.PATH;
    const error = vi.spyOn(console, 'error').mockImplementation(() => undefined);
    try {
      process.env.PATH = path.join(workDir, 'no-such-dir');
      expect(main([objectPath, path.join(workDir, 'unused.ts')])).toBe(1);
      expect(error.mock.calls.at(-1)?.[0]).toMatch(/bpftool not found/);
    } finally {
      process.env.PATH = savedPath;
      error.mockRestore();
    }
  });
});
