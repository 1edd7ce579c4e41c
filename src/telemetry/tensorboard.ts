// Scalars as TensorBoard event files, written by hand: no maintained JavaScript writer exists, and the
// format is small. A file is a sequence of TFRecords (uint64 LE length, masked CRC32C of the length,
// the bytes, masked CRC32C of the bytes), each holding one serialized tensorflow.Event protobuf.
import { appendFileSync, mkdirSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";

const CRC32C_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1; // Castagnoli, reflected
    t[i] = c >>> 0;
  }
  return t;
})();

export function crc32c(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC32C_TABLE[(c ^ b) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** TFRecord's mask, so a CRC stored inside CRC'd data does not collide with the data's own. */
export function maskedCrc32c(bytes: Uint8Array): number {
  const c = crc32c(bytes);
  return ((((c >>> 15) | (c << 17)) >>> 0) + 0xa282ead8) >>> 0;
}

export function tfRecord(data: Uint8Array): Buffer {
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(data.length));
  const out = Buffer.alloc(8 + 4 + data.length + 4);
  len.copy(out, 0);
  out.writeUInt32LE(maskedCrc32c(len), 8);
  Buffer.from(data).copy(out, 12);
  out.writeUInt32LE(maskedCrc32c(data), 12 + data.length);
  return out;
}

// --- the few protobuf fields an Event with scalars needs (field numbers from tensorflow's event.proto
// and summary.proto): Event{1 wall_time double, 2 step int64, 3 file_version string, 5 summary},
// Summary{1 repeated value}, Summary.Value{1 tag string, 2 simple_value float}.

function varint(n: bigint): number[] {
  const out: number[] = [];
  let v = BigInt.asUintN(64, n); // negative int64 steps are ten bytes, as protobuf encodes them
  do {
    let byte = Number(v & 0x7fn);
    v >>= 7n;
    if (v) byte |= 0x80;
    out.push(byte);
  } while (v);
  return out;
}

const key = (field: number, wire: number) => varint(BigInt((field << 3) | wire));

function bytesField(field: number, data: Uint8Array): number[] {
  return [...key(field, 2), ...varint(BigInt(data.length)), ...data];
}

function doubleField(field: number, x: number): number[] {
  const b = Buffer.alloc(8);
  b.writeDoubleLE(x);
  return [...key(field, 1), ...b];
}

function floatField(field: number, x: number): number[] {
  const b = Buffer.alloc(4);
  b.writeFloatLE(x);
  return [...key(field, 5), ...b];
}

export function encodeEvent(e: { wallTime: number; step: number; fileVersion?: string; scalars?: [string, number][] }): Uint8Array {
  const out = [...doubleField(1, e.wallTime), ...key(2, 0), ...varint(BigInt(Math.trunc(e.step)))];
  if (e.fileVersion !== undefined) out.push(...bytesField(3, Buffer.from(e.fileVersion, "utf8")));
  if (e.scalars?.length) {
    const values = e.scalars.map(([tag, v]) => bytesField(1, Uint8Array.from([...bytesField(1, Buffer.from(tag, "utf8")), ...floatField(2, v)])));
    out.push(...bytesField(5, Uint8Array.from(values.flat())));
  }
  return Uint8Array.from(out);
}

let fileCounter = 0;

/** Appends scalar events to one new file per writer (TensorBoard reads every file in the directory). */
export class TensorBoardWriter {
  readonly path: string;

  constructor(dir: string) {
    mkdirSync(dir, { recursive: true });
    // The name TensorBoard globs for; pid and a counter keep two writers in one second apart.
    this.path = join(dir, `events.out.tfevents.${Math.floor(Date.now() / 1000)}.${hostname()}.${process.pid}.${fileCounter++}`);
    appendFileSync(this.path, tfRecord(encodeEvent({ wallTime: Date.now() / 1000, step: 0, fileVersion: "brain.Event:2" })));
  }

  scalars(step: number, values: [string, number][], wallTime = Date.now() / 1000): void {
    if (values.length) appendFileSync(this.path, tfRecord(encodeEvent({ wallTime, step, scalars: values })));
  }
}

// Keys that place a record rather than measure something.
const STEP_KEYS = ["global_step", "step", "iteration"];
const NOT_SCALARS = new Set(["time", "kind", ...STEP_KEYS]);

/**
 * A metrics.jsonl record as TensorBoard scalars: every finite number (and boolean) becomes `kind/key`,
 * at the record's global_step, else step, else iteration.
 */
export function recordScalars(record: Record<string, unknown>): { step: number; values: [string, number][] } {
  const stepKey = STEP_KEYS.find((k) => typeof record[k] === "number");
  const step = stepKey ? (record[stepKey] as number) : 0;
  const prefix = typeof record.kind === "string" && record.kind ? `${record.kind}/` : "";
  const values: [string, number][] = [];
  for (const [k, v] of Object.entries(record)) {
    if (NOT_SCALARS.has(k)) continue;
    if (typeof v === "number" && Number.isFinite(v)) values.push([prefix + k, v]);
    else if (typeof v === "boolean") values.push([prefix + k, v ? 1 : 0]);
  }
  return { step, values };
}
