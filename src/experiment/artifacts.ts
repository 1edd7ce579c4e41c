// JSONL exports of journaled records with PromptCoT's field names. Derived data: rewritten whole
// (temp file + rename) from the journal, so they are never half-written and always match it. Exports of an
// iteration stream: one prompt's samples in memory at a time.
import { closeSync, mkdirSync, openSync, renameSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import type { RunContext } from "./context.js";
import { iterTag, unitId } from "./ids.js";
import type { UnitRow } from "./journal.js";
import type { Problem } from "../data/problems.js";
import type { SampleRecord } from "../rollout/generate-stage.js";
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
  writeJsonlStream(join(dir, "samples.jsonl"), promptGroups(ctx, iteration, problems));
  const pairs = ctx.journal.get<{ pairs: Pair[] }>(`${iterTag(iteration)}/pairs`)?.pairs ?? [];
  const text = (id: string) => ctx.journal.get<SampleRecord>(id)?.text;
  writeJsonlStream(
    join(dir, "pairs.jsonl"),
    (function* () {
      for (const p of pairs) yield { id: p.id, prompt: problems.get(p.prompt_id)?.prompt, chosen: text(p.chosen), rejected: text(p.rejected) };
    })(),
  );
}

/** One line per prompt, read from the journal a page at a time (sample ids sort by prompt, then sample). */
function* promptGroups(ctx: RunContext, iteration: number, problems: Map<string, Problem>): Generator<unknown> {
  let group: UnitRow<SampleRecord>[] = [];
  const line = () => {
    const pid = group[0]!.result.prompt_id;
    const verdicts = group.map((s) => ctx.journal.get<GradeRecord>(unitId(iteration, "grade", pid, s.result.sample)));
    return {
      id: pid,
      prompt: problems.get(pid)?.prompt,
      answer: problems.get(pid)?.answer,
      source: problems.get(pid)?.source,
      completions: group.map((s) => s.result.text),
      extracted: verdicts.map((v) => v?.extracted ?? null),
      verdicts: verdicts.map((v) => v?.verdict ?? null),
      ...codeFields(problems.get(pid), verdicts),
    };
  };
  for (const s of ctx.journal.iterate<SampleRecord>("rollout", iteration)) {
    if (group.length > 0 && group[0]!.result.prompt_id !== s.result.prompt_id) {
      yield line();
      group = [];
    }
    group.push(s);
  }
  if (group.length > 0) yield line();
}

/** Like writeJsonl, for rows produced one at a time: written through a buffer, then renamed into place. */
export function writeJsonlStream(path: string, rows: Iterable<unknown>): void {
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, "w");
  try {
    let buf: string[] = [];
    let size = 0;
    for (const r of rows) {
      const line = JSON.stringify(r) + "\n";
      buf.push(line);
      size += line.length;
      if (size > 4 << 20) {
        writeSync(fd, buf.join(""));
        buf = [];
        size = 0;
      }
    }
    writeSync(fd, buf.join(""));
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}

/** A code problem's line also carries PromptCoT's `test_cases` and `test_results` (pass / fail / timeout per completion). */
function codeFields(p: Problem | undefined, verdicts: (GradeRecord | undefined)[]): Record<string, unknown> {
  if (p?.kind !== "code") return {};
  const result = (v: GradeRecord | undefined) => {
    const c = v?.code?.verdict;
    return c === undefined ? null : c === "AC" ? "pass" : c === "TLE" ? "timeout" : c === "error" ? "error" : "fail";
  };
  return { test_cases: p.tests, test_results: verdicts.map(result), sandbox_verdicts: verdicts.map((v) => v?.code?.verdict ?? null) };
}
