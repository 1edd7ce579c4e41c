// JSONL exports of journaled records with PromptCoT's field names. Derived data: rewritten whole
// (temp file + rename) from the journal, so they are never half-written and always match it.
import { mkdirSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { RunContext } from "./context.js";
import { iterTag } from "./ids.js";
import type { SampleRecord } from "../selfplay/generate-stage.js";
import type { GradeRecord } from "../selfplay/stages.js";
import type { Pair } from "../selfplay/pairs.js";

export function writeJsonl(path: string, rows: unknown[]): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, rows.map((r) => JSON.stringify(r)).join("\n") + (rows.length ? "\n" : ""));
  renameSync(tmp, path);
}

export function exportIteration(ctx: RunContext, iteration: number): void {
  const dir = join(ctx.runDir, "artifacts", iterTag(iteration));
  mkdirSync(dir, { recursive: true });
  const problems = new Map(ctx.problems.train.map((p) => [p.id, p]));
  const verdicts = new Map(ctx.journal.list<GradeRecord>("grade", iteration).map((g) => [g.result.sample_id, g.result]));
  const samples = ctx.journal.list<SampleRecord>("rollout", iteration);
  const byPrompt = new Map<string, typeof samples>();
  for (const s of samples) byPrompt.set(s.result.prompt_id, [...(byPrompt.get(s.result.prompt_id) ?? []), s]);
  writeJsonl(
    join(dir, "samples.jsonl"),
    [...byPrompt].map(([pid, ss]) => ({
      id: pid,
      prompt: problems.get(pid)?.prompt,
      answer: problems.get(pid)?.answer,
      source: problems.get(pid)?.source,
      completions: ss.map((s) => s.result.text),
      extracted: ss.map((s) => verdicts.get(s.id)?.extracted ?? null),
      verdicts: ss.map((s) => verdicts.get(s.id)?.verdict ?? null),
    })),
  );
  const text = new Map(samples.map((s) => [s.id, s.result.text]));
  const pairs = ctx.journal.get<{ pairs: Pair[] }>(`${iterTag(iteration)}/pairs`)?.pairs ?? [];
  writeJsonl(
    join(dir, "pairs.jsonl"),
    pairs.map((p) => ({ id: p.id, prompt: problems.get(p.prompt_id)?.prompt, chosen: text.get(p.chosen), rejected: text.get(p.rejected) })),
  );
}
