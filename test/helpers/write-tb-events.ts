// Writes metrics through MetricsSink (metrics.jsonl + events/) for the TensorBoard read-back tests:
// `tsx test/helpers/write-tb-events.ts DIR`. The records and their expected scalars are printed as JSON.
import { join } from "node:path";
import { MetricsSink } from "../../src/telemetry/metrics.js";

const dir = process.argv[2];
if (!dir) throw new Error("usage: write-tb-events.ts DIR");
const records = [
  { iteration: 0, kind: "eval", avg_at_k: 0.25, ci_lo: 0.1, ci_hi: 0.4, problems: 32 },
  { iteration: 1, kind: "eval", avg_at_k: 0.375, ci_lo: 0.2, ci_hi: 0.55, problems: 32 },
  { global_step: 7, kind: "train", loss: 0.6931, accuracy: 0.5, kl: -0.125, note: "text is not a scalar" },
  { global_step: 1_000_000_000_123, kind: "train", loss: 1e-8 },
];
const sink = new MetricsSink(join(dir, "metrics.jsonl"));
for (const r of records) sink.write(r);
process.stdout.write(JSON.stringify(records));
