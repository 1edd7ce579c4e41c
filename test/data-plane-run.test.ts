// The same small self-play run (tiny random model, 2 iterations with DPO updates) through the old inline
// journal and the shard data plane: identical units (read back), artifacts, pairs and final weights. On the
// shard plane the (local) trainer reads reference-scoring and DPO token ids from the shards itself (ShardRef);
// on the inline plane rows have no refs and the ids go inline.
import { existsSync, mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { compareCheckpoints, lastCheckpoint, normalizedUnit, shardReadLines, startRun, units, VALIDITY_OFF_FOR_RANDOM_MODEL, workerLog } from "./helpers/run-harness.js";

const EXP = "test/fixtures/tiny-selfplay.yaml";
const ARGS = [
  "--set", "pairs.builder=pairs-by-length.ts#shortVsLong", "--set", 'rollout.stop=["ing"]', ...VALIDITY_OFF_FOR_RANDOM_MODEL,
  "--set", "iterations=2", "--set", "eval_every=0", "--set", "train.batch_size=8", "--set", "train.learning_rate=0.001",
];
const root = mkdtempSync(join(tmpdir(), "pcot-dp-run-"));

async function runWith(plane: "inline" | "shards"): Promise<string> {
  const dir = join(root, plane);
  const r = await startRun([EXP, ...ARGS, "--run-dir", dir], { PROMPTCOT_DATA_PLANE: plane }).done;
  expect(r.code, r.out).toBe(0);
  return dir;
}

describe("inline journal vs shard data plane", () => {
  it("a run gives the same units, pairs, artifacts and final weights on both", async () => {
    const [inline, shards] = await Promise.all([runWith("inline"), runWith("shards")]);
    expect(existsSync(join(inline, "shards"))).toBe(false);
    expect(readdirSync(join(shards, "shards", "rollout"))).toEqual(["it001", "it002"]);
    expect(readdirSync(join(shards, "shards")).sort()).toEqual(["eval", "rollout"]);
    const want = units(inline);
    const got = units(shards);
    expect([...got.keys()]).toEqual([...want.keys()]);
    for (const [id, result] of want) expect(normalizedUnit(got.get(id)!, shards), id).toEqual(normalizedUnit(result, inline));
    const pairs = JSON.parse(want.get("it001/pairs")!) as { pairs: unknown[] };
    expect(pairs.pairs.length).toBeGreaterThan(0);
    for (const it of ["it001", "it002"]) {
      for (const f of ["samples.jsonl", "pairs.jsonl"]) {
        expect(readFileSync(join(shards, "artifacts", it, f), "utf8"), `${it}/${f}`).toBe(readFileSync(join(inline, "artifacts", it, f), "utf8"));
      }
    }
    expect(shardReadLines(inline)).toEqual([]);
    const reads = shardReadLines(shards);
    expect(reads.some((l) => l.includes("score:")) && reads.some((l) => l.includes("train step:")), workerLog(shards).slice(-3000)).toBe(true);
    const cmp = compareCheckpoints(lastCheckpoint(inline), lastCheckpoint(shards));
    for (const part of [cmp.weights, cmp.optimizer]) {
      expect(part.mismatch).toBeUndefined();
      expect(part.tensors).toBeGreaterThan(0);
      expect(part.max_abs_diff, part.worst_key).toBe(0);
    }
  }, 900_000);
});
