// Self-play on synthesized problems, end to end on tiny random-weight models and real worker processes:
// proposer warm start → per iteration synthesize → screen → teacher references → self-play → pass rates →
// proposer pairs → proposer DPO, with the twin. Then the controller is SIGKILLed inside the proposer's
// update and the run is started again: it finishes with the same journal as the uninterrupted run, without
// asking the prompt model or the teacher again for anything journaled before the kill.
import { existsSync, mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { beforeAll, describe, expect, it } from "vitest";
import { processesOfRun, sleep, startRun, units, waitFor } from "./helpers/run-harness.js";

const EXP = "test/fixtures/tiny-selfplay-synth.yaml";
const root = mkdtempSync(join(tmpdir(), "pcot-selfplay-synth-"));
const refDir = join(root, "ref");
let refOut = "";

beforeAll(async () => {
  const r = await startRun([EXP, "--run-dir", refDir]).done;
  refOut = r.out;
  expect(r.code, r.out).toBe(0);
}, 900_000);

const json = <T>(s: string) => JSON.parse(s) as T;
const ids = (dir: string, stage: string) => [...units(dir, stage).keys()];

function generateEvents(dir: string): string[] {
  const db = new Database(join(dir, "journal.sqlite"), { readonly: true });
  try {
    const rows = db.prepare("SELECT data FROM events WHERE kind IN ('synth_generate', 'ref_generate') ORDER BY seq").all() as { data: string }[];
    return rows.flatMap((r) => { const d = json<{ ids?: string[]; samples?: string[] }>(r.data); return d.ids ?? d.samples ?? []; });
  } finally {
    db.close();
  }
}

describe("self-play on synthesized problems (tiny models)", () => {
  it("journals every stage per iteration, updates the proposer, trains the twin and reports both", () => {
    expect(ids(refDir, "proposer/update")).toEqual(["it000/proposer/update", "it001/proposer/update"]); // warm start, then one DPO (none after the last)
    expect(ids(refDir, "proposer/problems")).toEqual(["it001/proposer/problems", "it002/proposer/problems"]);
    expect(ids(refDir, "proposer/generate")).toHaveLength(2 * 3 * 2);
    const pairs = json<{ pairs: unknown[] }>(units(refDir, "proposer/pairs").get("it001/proposer/pairs")!);
    expect(pairs.pairs.length).toBeGreaterThan(0);
    expect(ids(refDir, "proposer/ref")).toHaveLength(pairs.pairs.length);
    const upd = json<{ steps: unknown[]; checkpoint: string }>(units(refDir, "proposer/update").get("it001/proposer/update")!);
    expect(upd.steps).toHaveLength(2 * pairs.pairs.length); // epochs 2, batch 1
    expect(existsSync(upd.checkpoint)).toBe(true);
    // every problem rolled out has its pass rate journaled at its iteration
    for (const it of [1, 2]) {
      const probs = json<{ problems: { id: string }[] }>(units(refDir, "proposer/problems").get(`it00${it}/proposer/problems`)!).problems;
      for (const p of probs) expect(units(refDir, "passrate").has(`it00${it}/passrate/${p.id}`), p.id).toBe(true);
    }
    expect(existsSync(join(refDir, "twin", "journal.sqlite"))).toBe(true);
    const report = readFileSync(join(refDir, "report.md"), "utf8");
    expect(report).toContain("## Self-play on synthesized problems");
    expect(report).toContain("learnable yield [95% CI]");
    expect(report).toContain("## Synthesized vs seed problems");
    expect(refOut).toMatch(/synthesized − seed = -?\d+\.\d points, 95% CI/);
    const metrics = readFileSync(join(refDir, "metrics.jsonl"), "utf8").split("\n").filter(Boolean).map((l) => json<{ kind: string }>(l));
    expect(metrics.filter((m) => m.kind === "proposer")).toHaveLength(2);
  });

  it("a controller SIGKILLed inside the proposer update resumes without redoing finished units", async () => {
    const dir = join(root, "killed");
    const run = startRun([EXP, "--run-dir", dir]);
    const log = join(dir, "logs", "prompt", "worker-0.log");
    await waitFor(() => existsSync(log) && readFileSync(log, "utf8").includes("train step it001/proposer/update/step-0 "), 600_000, "the proposer's first DPO step");
    run.child.kill("SIGKILL");
    await run.done;
    await waitFor(() => processesOfRun(dir).length === 0, 60_000, "the killed run's workers to exit");
    expect(units(dir, "proposer/update").has("it001/proposer/update")).toBe(false);
    const before = units(dir);
    const asked = generateEvents(dir).length;

    const r = await startRun([EXP, "--run-dir", dir]).done;
    expect(r.code, r.out).toBe(0);
    // nothing journaled before the kill was asked for again
    const askedAgain = generateEvents(dir).slice(asked);
    for (const id of askedAgain) expect(before.has(id), id).toBe(false);
    // the same journal as the uninterrupted run (time fields aside)
    const norm = (s: string, d: string) => JSON.parse(s.replaceAll(d, "<run>"), (k, v) => (/seconds|time/.test(k) ? undefined : v)) as unknown;
    const want = units(refDir);
    const got = units(dir);
    expect([...got.keys()]).toEqual([...want.keys()]);
    for (const [id, v] of want) expect(norm(got.get(id)!, dir), id).toEqual(norm(v, refDir));
    expect(readdirSync(join(dir, "checkpoints", "proposer")).filter((f) => f.includes(".tmp-"))).toEqual([]);
    await sleep(0);
  }, 900_000);
});
