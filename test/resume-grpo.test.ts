// Exact resume of a GRPO run (2 iterations, a trainer and a rollout worker, dynamic sampling with refill
// rounds). One run is interrupted at every kind of point, in sequence:
//   1. the rollout worker is SIGKILLed mid-rollout of iteration 1 (the pool restarts it);
//   2. the trainer is SIGKILLed inside a TrainStep of iteration 1 (the update is abandoned and redone);
//   3. the controller is SIGKILLed while the trainer writes iteration 1's checkpoint (rerun);
//   4. the controller is SIGKILLed at the iteration boundary, right after iteration 1's update is journaled (rerun).
// The final weights and optimizer state must equal an uninterrupted run's bit for bit (CPU, one torch
// thread per worker, fixed decode width: the same float operations in the same order), and the journal
// must hold exactly the same units with the same results: nothing done twice, nothing skipped.
import { existsSync, mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { expectBitIdenticalCheckpoints, countUnits, events, processesOfRun, sleep, startRun, units, waitFor, workerLog, workerPids, VALIDITY_OFF_FOR_RANDOM_MODEL, stepLine } from "./helpers/run-harness.js";

const EXP = "test/fixtures/tiny-selfplay.yaml";
// A random-weight model is never right, so a length-based reward gives the groups signal. micro_batch_size 1
// makes a step last long enough to land a kill inside it; epochs 2 make the second pass off-policy (clipping acts).
const ARGS = [
  "--set", "train.algorithm=grpo", "--set", "train.grpo.reward=grpo-reward-by-length.ts#shortIsRight", "--set", 'rollout.stop=["ing"]',
  "--set", "iterations=2", "--set", "eval_every=0", "--set", "workers.count=2", "--set", "train.grpo.prompts_per_iteration=4",
  "--set", "train.batch_size=8", "--set", "train.micro_batch_size=1", "--set", "train.epochs=2", "--set", "train.learning_rate=0.001",
  ...VALIDITY_OFF_FOR_RANDOM_MODEL,
];
const root = mkdtempSync(join(tmpdir(), "pcot-grpo-kill-"));
const refDir = join(root, "ref");

beforeAll(async () => {
  const r = await startRun([EXP, ...ARGS, "--run-dir", refDir]).done;
  expect(r.code, r.out).toBe(0);
}, 600_000);


function rolloutWorkerPid(dir: string): number | undefined {
  return workerPids(dir).find((pid) => readFileSync(`/proc/${pid}/cmdline`, "latin1").includes("worker-1\0"));
}

async function waitForLine(dir: string, text: string): Promise<string> {
  let line: string | undefined;
  await waitFor(() => !!(line = workerLog(dir).split("\n").find((l) => l.includes(text))), 300_000, `'${text}' in the trainer log`);
  return line!;
}

const updates = (dir: string) =>
  [...units(dir, "update").values()].map((j) => JSON.parse(j) as { checkpoint: string; global_step: number }).sort((a, b) => a.global_step - b.global_step);

const norm = (json: string, runDir: string) =>
  JSON.parse(json.replaceAll(runDir, "<run>"), (k, v) => (/seconds|time/.test(k) ? undefined : v)) as unknown;

describe("GRPO resume", () => {
  it("the reference run trains both iterations, clips in its second epoch and syncs the rollout worker", () => {
    const ups = updates(refDir);
    expect(ups).toHaveLength(2);
    const metrics = readFileSync(join(refDir, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as Record<string, number | string>);
    const train = metrics.filter((m) => m.kind === "train");
    expect(train.some((m) => (m.clip_fraction as number) > 0)).toBe(true);
    const sync = metrics.filter((m) => m.kind === "sync");
    expect(sync.map((m) => m.weights_version)).toEqual(ups.map((u) => u.global_step));
    expect(sync.every((m) => m.workers === 1 && (m.seconds as number) >= 0)).toBe(true);
  });

  it("killed mid-rollout, mid-update, mid-checkpoint and at an iteration boundary: same weights, optimizer and units", async () => {
    const dir = join(root, "killed");
    const firstStep = updates(refDir)[0]!.global_step;
    const first = startRun([EXP, ...ARGS, "--run-dir", dir]);
    // 1. the rollout worker, mid-rollout of iteration 1
    await waitFor(() => countUnits(dir, "rollout") >= 3 && rolloutWorkerPid(dir) !== undefined, 300_000, "rollout in flight");
    process.kill(rolloutWorkerPid(dir)!, "SIGKILL");
    // 2. the trainer, inside step 1 of iteration 1's update (~40% into it, timed by step 0)
    const line = await waitForLine(dir, stepLine(1, 0));
    await sleep(Number(/'seconds': ([\d.]+)/.exec(line)![1]) * 400);
    expect(workerLog(dir)).not.toContain(stepLine(1, 1));
    process.kill(workerPids(dir).find((pid) => pid !== rolloutWorkerPid(dir))!, "SIGKILL");
    // 3. the controller, while the redone update writes its checkpoint
    const ckpts = join(dir, "checkpoints");
    await waitFor(() => existsSync(ckpts) && readdirSync(ckpts).some((f) => f.startsWith(`step-${firstStep}.tmp-`)), 300_000, "the checkpoint temp dir");
    first.child.kill("SIGKILL");
    await first.done;
    expect(countUnits(dir, "update")).toBe(0);
    expect(events(dir, "worker_restart")).toBe(2);
    await waitFor(() => processesOfRun(dir).length === 0, 15_000, "the orphaned workers to exit");
    // 4. the controller, at the iteration boundary
    const second = startRun([EXP, ...ARGS, "--run-dir", dir]);
    await waitFor(() => countUnits(dir, "update") >= 1, 300_000, "iteration 1's update");
    second.child.kill("SIGKILL");
    await second.done;
    await waitFor(() => processesOfRun(dir).length === 0, 15_000, "the orphaned workers to exit");
    const last = await startRun([EXP, ...ARGS, "--run-dir", dir]).done;
    expect(last.code, last.out).toBe(0);
    expect(last.out).toContain("resuming run");

    const want = updates(refDir).map((u) => `step-${u.global_step}`);
    expect(readdirSync(ckpts).sort()).toEqual(want.sort()); // no temp dirs left
    expectBitIdenticalCheckpoints(updates(refDir).at(-1)!.checkpoint, updates(dir).at(-1)!.checkpoint);
    const ref = units(refDir);
    const got = units(dir);
    expect([...got.keys()]).toEqual([...ref.keys()]);
    for (const [id, result] of ref) expect(norm(got.get(id)!, dir), id).toEqual(norm(result, refDir));
  }, 600_000);
});
