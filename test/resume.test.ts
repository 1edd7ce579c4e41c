// The run survives a SIGKILL of the controller and of a worker: re-running the same command
// produces exactly the units an uninterrupted run produces (same seeds; nothing lost or doubled).
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { countUnits, events, processesOfRun, startRun, units, waitFor, VALIDITY_OFF_FOR_RANDOM_MODEL } from "./helpers/run-harness.js";

const EXP = "test/fixtures/tiny-selfplay.yaml";
const TOTAL_ROLLOUT = 16 * 4;
const root = mkdtempSync(join(tmpdir(), "pcot-resume-"));
let reference: Map<string, string>;

beforeAll(async () => {
  const { done } = startRun([EXP, "--run-dir", join(root, "ref")]);
  const r = await done;
  expect(r.code, r.out).toBe(0);
  reference = units(join(root, "ref"));
}, 600_000);

function expectSameUnits(runDir: string): void {
  const got = units(runDir);
  expect([...got.keys()]).toEqual([...reference.keys()]);
  for (const [id, result] of reference) expect(got.get(id), id).toBe(result);
}

describe("resume", () => {
  it("the reference run journals every rollout sample once", () => {
    expect([...reference.keys()].filter((k) => k.includes("/rollout/"))).toHaveLength(TOTAL_ROLLOUT);
  });

  it("controller SIGKILLed mid-rollout, then re-run: identical units, no orphan workers", async () => {
    const dir = join(root, "killed");
    const first = startRun([EXP, "--run-dir", dir]);
    await waitFor(() => countUnits(dir, "rollout") >= 6, 300_000, "some rollout units");
    first.child.kill("SIGKILL");
    await first.done;
    const partial = countUnits(dir, "rollout");
    expect(partial).toBeGreaterThanOrEqual(6);
    expect(partial).toBeLessThan(TOTAL_ROLLOUT);
    await waitFor(() => processesOfRun(dir).length === 0, 15_000, "the orphaned worker to exit");
    const second = await startRun([EXP, "--run-dir", dir]).done;
    expect(second.code, second.out).toBe(0);
    expect(second.out).toContain("resuming run");
    expectSameUnits(dir);
  });

  it("worker SIGKILLed mid-Generate is restarted; its units are redone without duplicates", async () => {
    const dir = join(root, "worker-killed");
    const run = startRun([EXP, "--run-dir", dir]);
    await waitFor(() => countUnits(dir, "rollout") >= 3 && processesOfRun(dir).length > 0, 300_000, "rollout in flight");
    for (const pid of processesOfRun(dir)) process.kill(pid, "SIGKILL");
    const r = await run.done;
    expect(r.code, r.out).toBe(0);
    expect(events(dir, "worker_restart")).toBeGreaterThanOrEqual(1);
    expectSameUnits(dir);
    expect(processesOfRun(dir)).toEqual([]);
  });

  it("Ctrl-C (SIGINT) stops the run with exit 130, leaves no worker behind, and the run resumes", async () => {
    const dir = join(root, "interrupted");
    const run = startRun([EXP, "--run-dir", dir]);
    await waitFor(() => countUnits(dir, "eval") >= 1 && processesOfRun(dir).length > 0, 300_000, "the run to get going");
    run.child.kill("SIGINT");
    const r = await run.done;
    expect(r.code).toBe(130);
    expect(r.out).toContain("run the same command again to resume");
    await waitFor(() => processesOfRun(dir).length === 0, 15_000, "workers to exit after Ctrl-C");
    const again = await startRun([EXP, "--run-dir", dir]).done;
    expect(again.code, again.out).toBe(0);
    expectSameUnits(dir);
  });

  it("controller SIGKILLed during the update, then re-run: same pairs, same trained weights, same eval", async () => {
    // The stop string ends most samples early: samples cut at max_tokens never enter pairs.
    const withPairs = ["--set", "pairs.builder=pairs-by-length.ts#shortVsLong", "--set", 'rollout.stop=["ing"]',
      ...VALIDITY_OFF_FOR_RANDOM_MODEL];
    const ref = await startRun([EXP, ...withPairs, "--run-dir", join(root, "train-ref")]).done;
    expect(ref.code, ref.out).toBe(0);
    const dir = join(root, "train-killed");
    const first = startRun([EXP, ...withPairs, "--run-dir", dir]);
    await waitFor(() => countUnits(dir, "ref") >= 1, 300_000, "reference log-probs to start");
    first.child.kill("SIGKILL");
    await first.done;
    expect(countUnits(dir, "update")).toBe(0); // the kill landed before the update was journaled
    await waitFor(() => processesOfRun(dir).length === 0, 15_000, "the orphaned worker to exit");
    const second = await startRun([EXP, ...withPairs, "--run-dir", dir]).done;
    expect(second.code, second.out).toBe(0);
    // Update records hold wall times and the run's own checkpoint path; everything else must be equal.
    const norm = (json: string, runDir: string) =>
      JSON.parse(json.replaceAll(runDir, "<run>"), (k, v) => (/seconds|time/.test(k) ? undefined : v)) as unknown;
    const want = units(join(root, "train-ref"));
    const got = units(dir);
    expect([...got.keys()]).toEqual([...want.keys()]);
    expect([...want.keys()].some((k) => k.endsWith("/update"))).toBe(true);
    for (const [id, result] of want) {
      if (id.endsWith("/update")) expect(norm(got.get(id)!, dir), id).toEqual(norm(result, join(root, "train-ref")));
      else expect(got.get(id), id).toBe(result);
    }
  });
});
