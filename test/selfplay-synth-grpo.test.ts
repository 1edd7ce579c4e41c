// proposer.algorithm: grpo inside the whole self-play pipeline (tiny random models, real workers): the GRPO
// proposer journals its rewards, old log-probs and update; a controller SIGKILLed inside that update resumes
// without asking the prompt model or the teacher again for anything journaled, redoes the update pass from
// its starting checkpoint, and ends with the same journal as the uninterrupted run. The tiny fixture's signal
// is R-Zero's repetition penalty (its prompt model mostly repeats memorised problems).
import { existsSync, mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { beforeAll, describe, expect, it } from "vitest";
import { processesOfRun, startRun, units, waitFor } from "./helpers/run-harness.js";

const ARGS = ["test/fixtures/tiny-selfplay-synth.yaml", "--set", "proposer.algorithm=grpo", "--set", "proposer.twin=false"];
const root = mkdtempSync(join(tmpdir(), "pcot-selfplay-synth-grpo-"));
const refDir = join(root, "ref");

beforeAll(async () => {
  const r = await startRun([...ARGS, "--run-dir", refDir]).done;
  expect(r.code, r.out).toBe(0);
}, 600_000);

function asked(dir: string): string[] {
  const db = new Database(join(dir, "journal.sqlite"), { readonly: true });
  try {
    const rows = db.prepare("SELECT data FROM events WHERE kind IN ('synth_generate', 'ref_generate') ORDER BY seq").all() as { data: string }[];
    return rows.flatMap((r) => { const d = JSON.parse(r.data) as { ids?: string[]; samples?: string[] }; return d.ids ?? d.samples ?? []; });
  } finally {
    db.close();
  }
}

describe("GRPO proposer in the self-play loop (tiny models)", () => {
  it("journals rewards, old log-probs and a GRPO update of the prompt model", () => {
    const groups = JSON.parse(units(refDir, "proposer/groups").get("it001/proposer/groups")!) as { groups: { set: number; samples: { advantage: number }[] }[] };
    expect(groups.groups.length).toBeGreaterThan(0);
    for (const g of groups.groups) expect(g.samples.reduce((a, x) => a + x.advantage, 0)).toBeCloseTo(0, 9);
    expect([...units(refDir, "proposer/old").keys()]).toEqual(groups.groups.map((g) => `it001/proposer/old/set-${String(g.set).padStart(3, "0")}`));
    expect([...units(refDir, "proposer/pairs").keys()]).toEqual(["it001/proposer/pairs", "it002/proposer/pairs"]); // the yield is still reported
    const upd = JSON.parse(units(refDir, "proposer/update").get("it001/proposer/update")!) as { steps: { clip_fraction?: number }[]; checkpoint: string };
    const samples = groups.groups.reduce((a, g) => a + g.samples.length, 0);
    expect(upd.steps).toHaveLength(2 * samples); // epochs 2, batch 1
    expect(upd.steps.every((s) => s.clip_fraction !== undefined)).toBe(true); // the GRPO loss ran
    expect(existsSync(upd.checkpoint)).toBe(true);
    expect(readFileSync(join(refDir, "report.md"), "utf8")).toContain("## Self-play on synthesized problems");
  });

  it("a controller SIGKILLed inside the GRPO proposer update resumes to the same journal", async () => {
    const dir = join(root, "killed");
    const run = startRun([...ARGS, "--run-dir", dir]);
    const log = join(dir, "logs", "prompt", "worker-0.log");
    await waitFor(() => existsSync(log) && readFileSync(log, "utf8").includes("train step it001/proposer/update/step-0 "), 300_000, "the proposer's first GRPO step");
    run.child.kill("SIGKILL");
    await run.done;
    await waitFor(() => processesOfRun(dir).length === 0, 60_000, "the killed run's workers to exit");
    expect(units(dir, "proposer/update").has("it001/proposer/update")).toBe(false);
    const before = units(dir);
    const n = asked(dir).length;
    const r = await startRun([...ARGS, "--run-dir", dir]).done;
    expect(r.code, r.out).toBe(0);
    for (const id of asked(dir).slice(n)) expect(before.has(id), id).toBe(false);
    const norm = (s: string, d: string) => JSON.parse(s.replaceAll(d, "<run>"), (k, v) => (/seconds|time/.test(k) ? undefined : v)) as unknown;
    const want = units(refDir);
    const got = units(dir);
    expect([...got.keys()]).toEqual([...want.keys()]);
    for (const [id, v] of want) expect(norm(got.get(id)!, dir), id).toEqual(norm(v, refDir));
    expect(readdirSync(join(dir, "checkpoints", "proposer")).filter((f) => f.includes(".tmp-"))).toEqual([]);
  }, 600_000);
});
