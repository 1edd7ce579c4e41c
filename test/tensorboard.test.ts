// TensorBoard event files: CRC32C against its published check value, TFRecord framing and the Event
// protobuf decoded by an independent reader (@bufbuild/protobuf's wire reader), MetricsSink writing
// events/ beside metrics.jsonl, and a read-back by TensorBoard's own EventAccumulator when installed.
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BinaryReader } from "@bufbuild/protobuf/wire";
import { describe, expect, it } from "vitest";
import { pythonPath } from "../src/cluster/python-env.js";
import { MetricsSink } from "../src/telemetry/metrics.js";
import { crc32c, encodeEvent, maskedCrc32c, recordScalars, tfRecord } from "../src/telemetry/tensorboard.js";

/** Splits a file into TFRecord payloads, checking both masked CRCs of every record. */
function readRecords(buf: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0; at < buf.length; ) {
    const len = Number(buf.readBigUInt64LE(at));
    expect(buf.readUInt32LE(at + 8)).toBe(maskedCrc32c(buf.subarray(at, at + 8)));
    const data = buf.subarray(at + 12, at + 12 + len);
    expect(buf.readUInt32LE(at + 12 + len)).toBe(maskedCrc32c(data));
    out.push(data);
    at += 16 + len;
  }
  return out;
}

interface Decoded { wallTime?: number; step: bigint; fileVersion?: string; values: [string, number][] }

function decodeEvent(data: Uint8Array): Decoded {
  const r = new BinaryReader(data);
  const e: Decoded = { step: 0n, values: [] };
  while (r.pos < r.len) {
    const [field, wire] = r.tag();
    if (field === 1) e.wallTime = r.double();
    else if (field === 2) e.step = BigInt(r.int64());
    else if (field === 3) e.fileVersion = r.string();
    else if (field === 5) {
      const s = new BinaryReader(r.bytes());
      while (s.pos < s.len) {
        s.tag();
        const v = new BinaryReader(s.bytes());
        let tag = "", value = NaN;
        while (v.pos < v.len) {
          const [f] = v.tag();
          if (f === 1) tag = v.string();
          else value = v.float();
        }
        e.values.push([tag, value]);
      }
    } else r.skip(wire);
  }
  return e;
}

describe("TensorBoard event files", () => {
  it("CRC32C matches the Castagnoli check value and the TFRecord mask", () => {
    expect(crc32c(Buffer.from("123456789"))).toBe(0xe3069283);
    const c = 0xe3069283;
    expect(maskedCrc32c(Buffer.from("123456789"))).toBe(((((c >>> 15) | (c << 17)) >>> 0) + 0xa282ead8) >>> 0);
  });

  it("frames an Event that an independent protobuf reader decodes", () => {
    const rec = tfRecord(encodeEvent({ wallTime: 1700000000.25, step: 3_000_000_000, scalars: [["eval/avg_at_k", 0.375], ["train/kl", -1.5]] }));
    const [data] = readRecords(rec);
    expect(decodeEvent(data!)).toEqual({ wallTime: 1700000000.25, step: 3_000_000_000n, values: [["eval/avg_at_k", 0.375], ["train/kl", -1.5]] });
  });

  it("turns a metrics record into kind/key scalars at its step", () => {
    expect(recordScalars({ time: "t", iteration: 2, kind: "eval", avg_at_k: 0.5, ok: true, name: "x", bad: NaN })).toEqual({
      step: 2, values: [["eval/avg_at_k", 0.5], ["eval/ok", 1]],
    });
    expect(recordScalars({ iteration: 2, global_step: 40, loss: 1 }).step).toBe(40);
  });

  it("MetricsSink writes events/ beside metrics.jsonl, first the file version, then one event per record", () => {
    const dir = mkdtempSync(join(tmpdir(), "tb-"));
    const sink = new MetricsSink(join(dir, "metrics.jsonl"));
    expect(existsSync(join(dir, "events"))).toBe(false);
    sink.write({ iteration: 1, kind: "eval", avg_at_k: 0.25 });
    sink.write({ global_step: 9, kind: "train", loss: 0.5 });
    const files = readdirSync(join(dir, "events"));
    expect(files).toHaveLength(1);
    expect(files[0]).toMatch(/^events\.out\.tfevents\.\d+\./);
    const events = readRecords(readFileSync(join(dir, "events", files[0]!))).map(decodeEvent);
    expect(events.map((e) => [e.fileVersion, e.step, e.values])).toEqual([
      ["brain.Event:2", 0n, []],
      [undefined, 1n, [["eval/avg_at_k", 0.25]]],
      [undefined, 9n, [["train/loss", 0.5]]],
    ]);
    expect(readFileSync(join(dir, "metrics.jsonl"), "utf8").trim().split("\n")).toHaveLength(2);
  });

  // TensorBoard is not in the worker venv by default; this runs where it is importable (PYTHONPATH counts).
  const py = pythonPath();
  const hasTb = spawnSync(py, ["-c", "import tensorboard"], { env: process.env }).status === 0;
  it.skipIf(!hasTb)("TensorBoard's EventAccumulator reads the scalars back (python-workers/tests/test_tensorboard_read.py)", () => {
    const out = execFileSync(py, ["-m", "pytest", "python-workers/tests/test_tensorboard_read.py", "-q", "-p", "no:cacheprovider"], {
      encoding: "utf8", env: { ...process.env, PYTHONPATH: ["python-workers", process.env.PYTHONPATH].filter(Boolean).join(":") },
    });
    expect(out).toMatch(/2 passed/);
  });
});
