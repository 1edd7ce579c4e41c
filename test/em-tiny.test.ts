// EM on the tiny random model through the real CLI and workers (issue 19): the E-step's candidate K+1 is the
// previous kept rationale, so with a fixed p the kept R cannot fall; the comparable figures on a fixed set of
// (c, x) are journaled, in metrics and the report each iteration, and the content-token NLL agrees with a
// separate worker's scoring; the `em.estep: fixed` ablation keeps the cold-start rationales and never asks q.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { LocalWorker } from "../src/cluster/local-launcher.js";
import { SYNTH_TEMPLATE_DEFAULTS } from "../src/config/schema.js";
import { logMeanExp, type EmTrack } from "../src/synthesis/em-track.js";
import { MARK, promptInput, promptTargetParts } from "../src/synthesis/templates.js";
import { startRun, units } from "./helpers/run-harness.js";

const root = mkdtempSync(join(tmpdir(), "pcot-em-"));
const sampled = join(root, "sample");
const fixed = join(root, "fixed");
// Two EM iterations, a short warm start and one generation: this test is about EM, not about parseable problems.
const args = (dir: string, ...more: string[]) => ["test/fixtures/tiny-synthesis.yaml", "--run-dir", dir, "--set", "synthesis.em.iterations=2", "--set", "synthesis.warm_start.epochs=30",
  "--set", "synthesis.generate.count=1", "--set", "synthesis.generate.samples_per_set=1", ...more];
const parse = <T>(s: string) => JSON.parse(s) as T;
const byId = <T>(dir: string, stage: string) => new Map([...units(dir, stage)].map(([k, v]) => [k, parse<T>(v)]));

interface Cand { z: string; ok: boolean; R?: number; previous?: boolean }
interface EStep { seed_id: string; candidates: Cand[]; best: number; z: string; R: number | null }

function generateStages(dir: string): string[] {
  const db = new Database(join(dir, "journal.sqlite"), { readonly: true });
  try {
    return (db.prepare("SELECT data FROM events WHERE kind = 'synth_generate'").all() as { data: string }[]).map((r) => parse<{ stage: string }>(r.data).stage);
  } finally {
    db.close();
  }
}

let runs: { code: number | null; out: string }[];
let failed = false;
afterEach((c) => void (c.task.result?.state === "fail" && (failed = true)));
// A passing run removes its directories; a failing one keeps them and says where.
afterAll(() => (failed ? console.error(`em-tiny: run directories kept in ${root}`) : rmSync(root, { recursive: true, force: true })));
beforeAll(async () => {
  runs = await Promise.all([startRun(args(sampled)).done, startRun(args(fixed, "--set", "synthesis.em.estep=fixed")).done]);
}, 1_200_000);

describe("EM on the tiny model", () => {
  it("candidate K+1 is the previous kept rationale, so the kept R is never below its R under the same p", () => {
    expect(runs[0]!.code, runs[0]!.out).toBe(0);
    const cold = byId<{ rationale: string }>(sampled, "synth/annotate");
    const es = byId<EStep>(sampled, "synth/estep");
    expect(es.size).toBe(8);
    for (const [id, u] of es) {
      const e = Number(id.slice(2, 5));
      const prev = e === 1 ? cold.get(`it000/synth/annotate/${u.seed_id}`)!.rationale : es.get(`it001/synth/estep/${u.seed_id}`)!.z;
      expect(u.candidates.length, id).toBe(4); // k = 3 samples + the previous
      const last = u.candidates.at(-1)!;
      expect(last).toMatchObject({ z: prev, ok: true, previous: true });
      expect(u.candidates.slice(0, -1).some((c) => c.previous)).toBe(false);
      expect(u.R!).toBeGreaterThanOrEqual(last.R!);
      expect(u.z).toBe(u.candidates[u.best]!.z);
    }
  });

  it("the fixed set is journaled once; figures after warm start and each iteration in the journal, metrics and report", () => {
    const set = parse<{ seed_ids: string[] }>(units(sampled, "synth/em/track-set").get("it000/synth/em/track-set")!).seed_ids;
    expect(set.length).toBe(2); // em.track.count in the fixture
    const track = [0, 1, 2].map((e) => parse<EmTrack>(units(sampled, "synth/em/track").get(`it00${e}/synth/em/track`)!));
    for (const t of track) {
      expect(t.per_item.map((i) => i.seed_id).sort()).toEqual([...set].sort());
      expect(t.samples).toBe(2);
      for (const i of t.per_item) {
        expect(i.samples.length).toBe(2);
        expect(i.bound).toBe(logMeanExp(i.samples.map((s) => (s ? s.logp - s.logq : null))));
        expect(Number.isFinite(i.nll_cold) && i.nll_cold > 0).toBe(true);
      }
    }
    const metrics = readFileSync(join(sampled, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => parse<{ kind: string; iteration: number }>(l)).filter((m) => m.kind === "em_track");
    expect(metrics.map((m) => m.iteration)).toEqual([0, 1, 2]);
    const report = parse<{ em_track: EmTrack[] }>(readFileSync(join(sampled, "report.json"), "utf8"));
    expect(report.em_track.map((t) => t.iteration)).toEqual([0, 1, 2]);
    const md = readFileSync(join(sampled, "report.md"), "utf8");
    expect(md).toContain("### EM on a fixed set of 2 (c, x)");
    for (const row of ["| warm start |", "| EM 1 |", "| EM 2 |"]) expect(md).toContain(row);
  });

  it("NLL per content token of x given the cold-start z matches a separate worker's scoring of x's own tokens under the final p", async () => {
    const t2 = parse<EmTrack>(units(sampled, "synth/em/track").get("it002/synth/em/track")!);
    const p2 = parse<{ checkpoint: string }>(units(sampled, "synth/update/prompt").get("it002/synth/update/prompt")!);
    const cold = byId<{ rationale: string; concepts: string[]; level?: string }>(sampled, "synth/annotate");
    const seeds = byId<{ prompt: string }>(sampled, "synth/seed");
    const judge = new LocalWorker("judge", { modelSource: "tiny-random-llama", dtype: "float32", device: "cpu", trainableLayers: 0, decodeWidth: 2, seed: 1, threads: 1, startupTimeoutS: 300, logDir: join(root, "judge") });
    await judge.start(p2.checkpoint);
    try {
      for (const item of t2.per_item) {
        const a = cold.get(`it000/synth/annotate/${item.seed_id}`)!;
        const x = seeds.get(`it000/synth/seed/${item.seed_id}`)!.prompt;
        const text = promptInput(SYNTH_TEMPLATE_DEFAULTS as never, a.concepts, a.level);
        const parts = promptTargetParts(a.rationale, x);
        const tok = (await judge.rpc!.tokenize({ items: [parts.rationale, parts.problem, `${MARK.problemOpen}\n`, x.trim()].map((completion, j) => ({ id: String(j), text, completion })) }, 60_000)).items;
        const [z, block, open, content] = tok.map((t) => t.completionTokenIds) as [number[], number[], number[], number[]];
        expect(item.n_content, item.seed_id).toBe(content.length);
        const lp = (await judge.rpc!.score({ items: [{ id: "s", promptTokenIds: tok[0]!.promptTokenIds, completionTokenIds: [...z, ...block] }], returnTokenLogprobs: true }, 60_000)).results[0]!.tokenLogprobs;
        const span = lp.slice(z.length + open.length, z.length + open.length + content.length);
        expect(item.nll_cold, item.seed_id).toBeCloseTo(-span.reduce((s, v) => s + v, 0) / span.length, 3);
      }
    } finally {
      await judge.stop();
    }
  }, 300_000);

  it("em.estep: fixed keeps the cold-start rationales, trains p on them and never samples or updates q during EM", () => {
    expect(runs[1]!.code, runs[1]!.out).toBe(0);
    const cold = byId<{ rationale: string }>(fixed, "synth/annotate");
    const ms = byId<{ seed_id: string; z: string }>(fixed, "synth/mstep");
    expect(ms.size).toBe(8);
    for (const m of ms.values()) expect(m.z).toBe(cold.get(`it000/synth/annotate/${m.seed_id}`)!.rationale);
    expect(generateStages(fixed).filter((s) => s === "synth/estep" || s === "synth/mstep")).toEqual([]);
    expect([...units(fixed, "synth/update/rationale").keys()]).toEqual(["it000/synth/update/rationale"]);
    expect(readFileSync(join(fixed, "report.md"), "utf8")).toContain("E-step: fixed");
    const em = parse<{ em: { kept_previous: number; no_valid_candidate: number; q_update: { steps: number } }[] }>(readFileSync(join(fixed, "report.json"), "utf8")).em;
    expect(em.map((e) => [e.kept_previous, e.no_valid_candidate, e.q_update.steps])).toEqual([[4, 0, 0], [4, 0, 0]]);
  });
});
