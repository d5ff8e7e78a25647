// SPDX-License-Identifier: GPL-2.0-only
/**
 * Runtime checks shared by the codecs in maps/generated.ts. They live here,
 * not in the generated file, so that the generated code stays one line per
 * field and a fix to a check does not need a regeneration.
 *
 * Byte order: the codecs write little-endian, because BPF maps hold keys and
 * values in host order and every host this project targets (x86_64, arm64)
 * is little-endian.
 */

/**
 * Fails unless `buffer` holds `size` bytes from `offset`: Buffer's own
 * readers would fail too, but only at the first field past the end and with
 * a message that does not name the struct.
 */
export function requireSpan(typeName: string, buffer: Buffer, offset: number, size: number): void {
  if (!Number.isInteger(offset) || offset < 0 || offset + size > buffer.length) {
    throw new RangeError(
      `${typeName}: needs ${size} bytes at offset ${offset}, buffer has ${buffer.length}`,
    );
  }
}

/**
 * Returns `bytes` after checking it is exactly `length` long: a fixed C array
 * silently truncated or zero-extended (a 4-byte address in a 16-byte slot
 * given as 4 bytes, say) would be a wrong key rather than an error.
 *
 * Typed on Buffer, not Uint8Array: with TypeScript 5.9's generic Uint8Array
 * the project's @types/node Buffer is not assignable to Uint8Array.
 */
export function requireLength(fieldName: string, bytes: Buffer, length: number): Buffer {
  if (bytes.length !== length) {
    throw new RangeError(`${fieldName}: expected ${length} bytes, got ${bytes.length}`);
  }
  return bytes;
}

/**
 * A copy of `length` bytes at `start`, so a decoded value does not change
 * when the caller reuses the buffer it decoded from (as map iteration does).
 */
export function copyBytes(buffer: Buffer, start: number, length: number): Buffer {
  const copy = Buffer.alloc(length);
  copy.set(buffer.subarray(start, start + length));
  return copy;
}

/** How one member of a struct is stored; 'pad' members are zero on encode and skipped on decode. */
export type FieldKind = 'u8' | 'u16' | 'u32' | 'u64' | 'i8' | 'i16' | 'i32' | 'i64' | 'bytes' | 'pad';

export interface FieldLayout {
  readonly offset: number;
  readonly size: number;
  readonly kind: FieldKind;
}

/** The shape every generated `Ivb*Layout` satisfies, for code that handles any map generically. */
export interface StructLayout {
  /** the C struct's name, as in maps/layout.h */
  readonly name: string;
  readonly size: number;
  readonly fields: { readonly [field: string]: FieldLayout };
}
