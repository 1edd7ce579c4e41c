// The same self-play run on the old inline journal and on the shard data plane (with workers reading token
// ids from the shards), compared: units read back, pairs, artifacts, final weights and optimizer state.
// test/data-plane-run.test.ts does this on a tiny random model; this runs it on a real config (default: the
// quickstart with the real SmolLM2-135M), one plane after the other so they do not share the CPUs.
//
//   npx tsx bench/data-plane-identity.ts [--config experiments/quickstart.yaml] [--set key=value ...] [--out DIR] [--reuse]
// (--reuse compares the finished runs already in --out DIR instead of running them again)
import { mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { compareCheckpoints, lastCheckpoint, normalizedUnit, shardReadLines, startRun, units } from "../test/helpers/run-harness.js";

const { values: args } = parseArgs({
  options: {
    config: { type: "string", default: "experiments/quickstart.yaml" },
    set: { type: "string", multiple: true, default: [] },
    out: { type: "string" },
    reuse: { type: "boolean", default: false },
  },
});
const root = args.out ?? mkdtempSync(join(tmpdir(), "pcot-dp-identity-"));

async function runOn(plane: "inline" | "shards"): Promise<{ dir: string; seconds: number }> {
  const dir = join(root, plane);
  if (args.reuse) return { dir, seconds: Number.NaN };
  const t0 = performance.now();
  // the worker engine: its samples replay exactly, so the two planes must journal identical units (vLLM's need not)
  const r = await startRun([args.config!, "--set", "engine.type=worker", ...args.set!.flatMap((s) => ["--set", s]), "--run-dir", dir], { PROMPTCOT_DATA_PLANE: plane }).done;
  if (r.code !== 0) throw new Error(`${plane} run failed (${r.code}):\n${r.out.slice(-3000)}`);
  return { dir, seconds: (performance.now() - t0) / 1000 };
}

const inline = await runOn("inline");
const shards = await runOn("shards");
// Records read back from shards list their fields in another order than inline rows: compare with sorted keys.
const sorted = (v: unknown): unknown =>
  Array.isArray(v) ? v.map(sorted) : v && typeof v === "object" ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, x]) => [k, sorted(x)])) : v;
const norm = (json: string, runDir: string) => JSON.stringify(sorted(normalizedUnit(json, runDir)));
const want = units(inline.dir);
const got = units(shards.dir);
const differing = [...want].filter(([id, r]) => !got.has(id) || norm(got.get(id)!, shards.dir) !== norm(r, inline.dir)).map(([id]) => id);
const extra = [...got.keys()].filter((id) => !want.has(id));
const stages = new Map<string, number>();
for (const id of want.keys()) stages.set(id.split("/")[1]!, (stages.get(id.split("/")[1]!) ?? 0) + 1);
const pairs = [...want].filter(([id]) => id.endsWith("/pairs")).map(([, r]) => (JSON.parse(r) as { pairs: unknown[] }).pairs.length);
const artifacts = readdirSync(join(inline.dir, "artifacts")).filter((d) => d.startsWith("it")).flatMap((it) =>
  ["samples.jsonl", "pairs.jsonl"].map((f) => ({ f: `${it}/${f}`, same: readFileSync(join(inline.dir, "artifacts", it, f), "utf8") === readFileSync(join(shards.dir, "artifacts", it, f), "utf8") })));
const reads = shardReadLines(shards.dir).length;
const cmp = compareCheckpoints(lastCheckpoint(inline.dir), lastCheckpoint(shards.dir));
const report = {
  config: args.config, set: args.set, runs: { inline: inline.dir, shards: shards.dir }, wall_s: { inline: inline.seconds, shards: shards.seconds },
  units: want.size, units_by_stage: Object.fromEntries(stages), pairs_per_iteration: pairs, differing_units: differing, extra_units: extra,
  artifacts, worker_shard_reads: reads, final_checkpoint: lastCheckpoint(inline.dir).split("/").at(-1), weights: cmp.weights, optimizer: cmp.optimizer,
};
process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
const same = differing.length === 0 && extra.length === 0 && artifacts.every((a) => a.same) && cmp.weights.max_abs_diff === 0 && cmp.optimizer.max_abs_diff === 0;
process.stdout.write(same ? "IDENTICAL: same units, pairs, artifacts, final weights and optimizer state\n" : "DIFFERENT (see above)\n");
process.exit(same ? 0 : 1);
