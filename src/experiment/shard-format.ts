// The shard format (docs/DATA_PLANE.md): append-only files of framed records holding the bulky parts of
// samples (texts, token ids), so journal rows stay small. Self-describing and versioned, readable without
// our code (Python: struct, zlib, json): a 16-byte header, then records [u32 length][u32 crc32][payload]; a payload is a JSON meta block
// followed by the sections it lists. A torn tail (crash mid-write) fails its length or crc check.
import { brotliDecompressSync, deflateSync, inflateSync } from "node:zlib";

export const MAGIC = Buffer.from("PCSHARD\0", "latin1");
/** Bumped on any change a reader of the previous version could not parse; readers accept 1..FORMAT_VERSION. */
export const FORMAT_VERSION = 1;
export const HEADER_BYTES = 16;
export const FRAME_BYTES = 8;

/**
 * zlib (deflate with its header) at level 1: ~1.1 bytes per token for text and for varint token ids on real
 * tokenized text, ~2 ms per 16k-token sample, and Python's standard library reads it (brotli was ~5% smaller
 * and 3x slower, and needs a package). Readers also accept brotli sections, for a later writer.
 */
const DEFLATE = { level: 1 };

export type SectionEncoding = "utf8+zlib" | "varint+zlib" | "f32le+zlib" | "f64le+zlib" | "utf8+brotli" | "varint+brotli";

/** Float arrays (per-token log-probs) are tagged by the caller; token ids are any other number arrays. */
export class Floats {
  constructor(readonly values: readonly number[]) {}
}

export interface SectionMeta {
  name: string;
  enc: SectionEncoding;
  /** Bytes of the section in the payload. */
  bytes: number;
  /** Decoded element count: characters for text, ids for token ids. */
  count: number;
}

export interface RecordMeta {
  /** The journal unit id (a sample) or prompt key (a prompt) the record belongs to. */
  key: string;
  kind: "sample" | "prompt";
  sections: SectionMeta[];
}

export type SectionValue = string | number[] | Floats;

export function fileHeader(): Buffer {
  const h = Buffer.alloc(HEADER_BYTES);
  MAGIC.copy(h, 0);
  h.writeUInt16LE(FORMAT_VERSION, 8);
  return h;
}

/** The header's format version; throws on a file that is not a shard or is from a newer version. */
export function readHeader(h: Buffer, where: string): number {
  if (h.length < HEADER_BYTES || !h.subarray(0, 8).equals(MAGIC)) throw new Error(`${where}: not a promptcot shard (bad magic)`);
  const version = h.readUInt16LE(8);
  if (version < 1 || version > FORMAT_VERSION) {
    throw new Error(`${where}: shard format version ${version}, this build reads 1..${FORMAT_VERSION}; upgrade promptcot to read it`);
  }
  return version;
}

export function encodeVarints(ids: readonly number[]): Buffer {
  const out = Buffer.allocUnsafe(ids.length * 5);
  let n = 0;
  for (const id of ids) {
    if (!Number.isInteger(id) || id < 0 || id > 0xffffffff) throw new Error(`token id ${id} is not a uint32`);
    let v = id;
    while (v >= 0x80) {
      out[n++] = (v & 0x7f) | 0x80;
      v = Math.floor(v / 128);
    }
    out[n++] = v;
  }
  return out.subarray(0, n);
}

export function decodeVarints(b: Buffer, count: number): number[] {
  const ids = new Array<number>(count);
  let p = 0;
  for (let i = 0; i < count; i++) {
    let v = 0;
    let mul = 1;
    for (;;) {
      const byte = b[p++]!;
      v += (byte & 0x7f) * mul;
      if (byte < 0x80) break;
      mul *= 128;
    }
    ids[i] = v;
  }
  return ids;
}

function encodeSection(name: string, value: SectionValue): { meta: SectionMeta; bytes: Buffer } {
  if (typeof value === "string") {
    const bytes = deflateSync(Buffer.from(value, "utf8"), DEFLATE);
    return { meta: { name, enc: "utf8+zlib", bytes: bytes.length, count: value.length }, bytes };
  }
  if (value instanceof Floats) return encodeFloats(name, value.values);
  const bytes = deflateSync(encodeVarints(value), DEFLATE);
  return { meta: { name, enc: "varint+zlib", bytes: bytes.length, count: value.length }, bytes };
}

/** float32 when every value is one (log-probs from the proto's `repeated float` are), else float64: exact either way. */
function encodeFloats(name: string, values: readonly number[]): { meta: SectionMeta; bytes: Buffer } {
  const f32 = values.every((v) => Math.fround(v) === v || Number.isNaN(v));
  const arr = f32 ? Float32Array.from(values) : Float64Array.from(values);
  const le = Buffer.from(arr.buffer, arr.byteOffset, arr.byteLength); // x86/ARM are little-endian
  const bytes = deflateSync(le, DEFLATE);
  return { meta: { name, enc: f32 ? "f32le+zlib" : "f64le+zlib", bytes: bytes.length, count: values.length }, bytes };
}

export function decodeSection(meta: SectionMeta, bytes: Buffer): number[] | string {
  const [kind, codec] = meta.enc.split("+");
  if (codec !== "zlib" && codec !== "brotli") throw new Error(`unknown shard section encoding '${meta.enc}'`);
  const raw = codec === "zlib" ? inflateSync(bytes) : brotliDecompressSync(bytes);
  if (kind === "utf8") return raw.toString("utf8");
  if (kind === "varint") return decodeVarints(raw, meta.count);
  if (kind === "f32le" || kind === "f64le") {
    const width = kind === "f32le" ? 4 : 8;
    const copy = new Uint8Array(raw); // aligned
    return Array.from(width === 4 ? new Float32Array(copy.buffer, 0, meta.count) : new Float64Array(copy.buffer, 0, meta.count));
  }
  throw new Error(`unknown shard section encoding '${meta.enc}'`);
}

/** One framed record: [u32 payload length][u32 crc32(payload)][u32 meta length][meta JSON][sections...]. */
export function encodeRecord(key: string, kind: RecordMeta["kind"], sections: Record<string, SectionValue>): Buffer {
  const parts = Object.entries(sections).map(([name, v]) => encodeSection(name, v));
  const meta = Buffer.from(JSON.stringify({ key, kind, sections: parts.map((p) => p.meta) } satisfies RecordMeta), "utf8");
  const metaLen = Buffer.alloc(4);
  metaLen.writeUInt32LE(meta.length);
  const payload = Buffer.concat([metaLen, meta, ...parts.map((p) => p.bytes)]);
  const frame = Buffer.alloc(FRAME_BYTES);
  frame.writeUInt32LE(payload.length, 0);
  frame.writeUInt32LE(crc32(payload), 4);
  return Buffer.concat([frame, payload]);
}

/** Splits a verified payload into its meta and the raw bytes of each section (decoded on demand). */
export function parsePayload(payload: Buffer): { meta: RecordMeta; sections: Map<string, { meta: SectionMeta; bytes: Buffer }> } {
  const metaLen = payload.readUInt32LE(0);
  const meta = JSON.parse(payload.subarray(4, 4 + metaLen).toString("utf8")) as RecordMeta;
  const sections = new Map<string, { meta: SectionMeta; bytes: Buffer }>();
  let p = 4 + metaLen;
  for (const s of meta.sections) {
    sections.set(s.name, { meta: s, bytes: payload.subarray(p, p + s.bytes) });
    p += s.bytes;
  }
  return { meta, sections };
}

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32 (IEEE, as zlib.crc32 in Python), so a reader without our code can check records. */
export function crc32(b: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < b.length; i++) c = CRC_TABLE[(c ^ b[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
