// The synthesis pipeline end to end through the real CLI, real workers and the tiny random model:
// the E-step's pick checked against independently computed log-probs, a controller SIGKILL inside an
// E-step that resumes redoing only unfinished units, malformed generations dropped and counted, and
// `trace` on a finished run.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { beforeAll, describe, expect, it } from "vitest";
import { LocalWorker } from "../src/cluster/local-launcher.js";
import { SYNTH_TEMPLATE_DEFAULTS } from "../src/config/schema.js";
import { promptInput, promptTargetParts } from "../src/synthesis/templates.js";
import { countUnits, processesOfRun, startRun, units, waitFor } from "./helpers/run-harness.js";

const EXP = "test/fixtures/tiny-synthesis.yaml";
const root = mkdtempSync(join(tmpdir(), "pcot-synth-"));
const done = join(root, "done");
const parse = <T>(s: string) => JSON.parse(s) as T;

interface Cand { z: string; ok: boolean; R?: number; logp_z?: number; logp_x?: number }
interface EStep { seed_id: string; concepts: string[]; level?: string; candidates: Cand[]; best: number; z: string; R: number | null }

let finished: { code: number | null; out: string };
beforeAll(async () => {
  finished = await startRun([EXP, "--run-dir", done]).done;
}, 600_000);

function events(dir: string): { seq: number; kind: string; data: { stage?: string; ids?: string[] } }[] {
  const db = new Database(join(dir, "journal.sqlite"), { readonly: true });
  try {
    return (db.prepare("SELECT seq, kind, data FROM events ORDER BY seq").all() as { seq: number; kind: string; data: string }[]).map((e) => ({ ...e, data: parse(e.data) }));
  } finally {
    db.close();
  }
}

describe("synthesis pipeline (tiny model)", () => {
  it("runs cold start → warm start → EM → generate → filters → dedup and writes problems and report", () => {
    expect(finished.code, finished.out).toBe(0);
    const report = parse<{ em: { iteration: number }[]; counts: { generated: number; parsed: number; kept: number; deduped: Record<string, number> } }>(
      readFileSync(join(done, "report.json"), "utf8"),
    );
    expect(report.em.map((e) => e.iteration)).toEqual([1]);
    expect(report.counts.generated).toBe(6);
    const rows = readFileSync(join(done, "artifacts", "synthesis", "problems.jsonl"), "utf8").trim().split("\n").filter(Boolean).map((l) => parse<Record<string, unknown>>(l));
    expect(rows.length).toBe(report.counts.kept);
    expect(report.counts.parsed - report.counts.kept).toBe(Object.values(report.counts.deduped).reduce((a, b) => a + b, 0));
    for (const r of rows) {
      expect(r.id).toMatch(/^[0-9a-f]{16}$/);
      expect(r.prompt).toContain(SYNTH_TEMPLATE_DEFAULTS.math_suffix);
      expect(r).toHaveProperty("concepts");
      expect(r).toHaveProperty("rationale");
    }
  });

  it("the E-step keeps the candidate with the highest log p(z, x | c), checked by scoring each candidate on a separate worker", async () => {
    const estep = [...units(done, "synth/estep").values()].map((s) => parse<EStep>(s));
    const warm = parse<{ checkpoint: string }>(units(done, "synth/update/prompt").get("it000/synth/update/prompt")!);
    const seeds = new Map([...units(done, "synth/seed").values()].map((s) => parse<{ id: string; prompt: string }>(s)).map((s) => [s.id, s.prompt]));
    const judge = new LocalWorker("judge", { modelSource: "tiny-random-llama", dtype: "float32", device: "cpu", trainableLayers: 0, decodeWidth: 2, seed: 1, threads: 1, startupTimeoutS: 300, logDir: join(root, "judge") });
    await judge.start(warm.checkpoint);
    try {
      let distinct = 0;
      for (const u of estep) {
        const ok = u.candidates.map((c, k) => ({ c, k })).filter(({ c }) => c.ok);
        if (new Set(ok.map(({ c }) => c.z)).size > 1) distinct++;
        const items = ok.flatMap(({ c, k }) => {
          const parts = promptTargetParts(c.z, seeds.get(u.seed_id)!);
          const text = promptInput(SYNTH_TEMPLATE_DEFAULTS as never, u.concepts, u.level);
          return [{ id: `${k}z`, text, completion: parts.rationale }, { id: `${k}x`, text, completion: parts.problem }];
        });
        if (items.length === 0) {
          expect(u.best).toBe(-1);
          continue;
        }
        const tok = new Map((await judge.rpc!.tokenize({ items }, 60_000)).items.map((t) => [t.id, t]));
        const score = await judge.rpc!.score({
          items: ok.map(({ k }) => ({ id: String(k), promptTokenIds: tok.get(`${k}z`)!.promptTokenIds, completionTokenIds: [...tok.get(`${k}z`)!.completionTokenIds, ...tok.get(`${k}x`)!.completionTokenIds] })),
        }, 60_000);
        const R = new Map(score.results.map((r) => [Number(r.id), r.sumLogprob]));
        for (const { c, k } of ok) expect(c.R, `${u.seed_id} candidate ${k}`).toBeCloseTo(R.get(k)!, 3);
        const want = ok.reduce((b, { k }) => (R.get(k)! > R.get(b)! ? k : b), ok[0]!.k);
        expect(u.best, u.seed_id).toBe(want);
        expect(u.z).toBe(u.candidates[want]!.z);
      }
      expect(distinct, "some E-step unit must have distinct well-formed candidates, or the argmax check is empty").toBeGreaterThan(0);
    } finally {
      await judge.stop();
    }
  }, 300_000);

  it("trace prints a kept problem's history; a prefix works; an unknown id exits 1, a malformed one 2", () => {
    const row = parse<{ id: string }>(readFileSync(join(done, "artifacts", "synthesis", "problems.jsonl"), "utf8").split("\n")[0]!);
    const out = execFileSync("node", ["bin/promptcot.mjs", "trace", row.id.slice(0, 6), "--run-dir", done], { encoding: "utf8" });
    expect(out).toContain(`problem ${row.id} — KEPT`);
    for (const s of ["concepts:", "rationale:", "written by: prompt model", "seeds: concept set", "filters: passed proof, ill_posed", "dedup: kept", "warm start:", "EM 1 M-step:"]) expect(out).toContain(s);
    const status = (id: string) => {
      try {
        execFileSync("node", ["bin/promptcot.mjs", "trace", id, "--run-dir", done], { stdio: "pipe" });
        return 0;
      } catch (e) {
        return (e as { status: number }).status;
      }
    };
    // a non-hex id is a row id (references / synth-tests runs), matched exactly: none here
    expect(status("not-hex")).toBe(1);
    expect(status("not an id")).toBe(2);
  });

  it("controller SIGKILLed inside an E-step: the resumed run redoes only the unfinished units; malformed generations are dropped by reason", async () => {
    const dir = join(root, "killed");
    // Generated seeds (longer problems) and a short warm start: more E-step units, and p too weak to write the format.
    const args = [EXP, "--run-dir", dir, "--set", "synthesis.seeds.kind=generated", "--set", "synthesis.seeds.count=10", "--set", "synthesis.warm_start.epochs=1"];
    const first = startRun(args);
    await waitFor(() => countUnits(dir, "synth/estep") >= 3, 300_000, "some E-step units");
    first.child.kill("SIGKILL");
    await first.done;
    const before = units(dir, "synth/estep");
    expect(before.size).toBeGreaterThanOrEqual(3);
    expect(before.size).toBeLessThan(10);
    await waitFor(() => processesOfRun(dir).length === 0, 15_000, "the orphaned workers to exit");
    const second = await startRun(args).done;
    expect(second.code, second.out).toBe(0);
    expect(second.out).toContain("resuming synthesis run");

    const ev = events(dir);
    const resumedAt = ev.find((e) => e.kind === "run_resumed")!.seq;
    const redone = ev.filter((e) => e.seq > resumedAt && e.kind === "synth_generate" && e.data.stage === "synth/estep").flatMap((e) => e.data.ids!);
    const after = units(dir, "synth/estep");
    expect(after.size).toBe(10);
    expect(redone.sort()).toEqual([...after.keys()].filter((id) => !before.has(id)).sort());
    for (const [id, result] of before) expect(after.get(id), id).toBe(result);

    const report = parse<{ counts: { generated: number; parsed: number; malformed: Record<string, number>; kept: number } }>(readFileSync(join(dir, "report.json"), "utf8"));
    const gens = [...units(dir, "synth/generate").values()].map((s) => parse<{ ok: boolean; reason?: string }>(s));
    const byReason: Record<string, number> = {};
    for (const g of gens) if (!g.ok) byReason[g.reason!] = (byReason[g.reason!] ?? 0) + 1;
    expect(report.counts.generated).toBe(gens.length);
    expect(report.counts.malformed).toEqual(byReason);
    expect(Object.values(byReason).reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
    expect(report.counts.parsed).toBe(gens.length - Object.values(byReason).reduce((a, b) => a + b, 0));
    const kept = readFileSync(join(dir, "artifacts", "synthesis", "problems.jsonl"), "utf8").trim();
    expect(kept ? kept.split("\n").length : 0).toBe(report.counts.kept);
  }, 600_000);
});

