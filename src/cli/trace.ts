// `promptcot trace ID`: a synthesized problem's whole history from its run's journal — the concepts it was
// written for, the rationale, the prompt model's weights and how they were trained, the sampling seed,
// the filters it passed or failed, and the dedup outcome — and, where a references / synth-tests run journaled
// them, its math reference and its tests (synthesis/trace-labels.ts). ID is the content hash or a prefix of
// it, or any other id those runs used (a row id such as p00003), matched exactly.
import { existsSync, readdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { Journal } from "../experiment/journal.js";
import { unitId } from "../experiment/ids.js";
import type { SftUpdateRecord } from "../train/sft.js";
import { updateStage } from "../synthesis/em.js";
import { GENERATE_STAGE, SCREEN_STAGE, type ScreenRecord } from "../synthesis/generate.js";
import type { GenerationRecord } from "../synthesis/provenance.js";
import { passRateLines, proposerGenerations, proposerScreen } from "../synthesis/proposer-trace.js";
import { labelledIds, renderLabels } from "../synthesis/trace-labels.js";

export interface TraceOptions {
  runDir?: string;
  root?: string;
}

export function traceCommand(id: string, o: TraceOptions, out: (s: string) => void = (s) => process.stdout.write(s)): number {
  const raw = id.trim();
  if (!raw || /\s/.test(raw)) {
    process.stderr.write(`trace: '${id}' is not a problem id (a content hash or a prefix of 4 to 16 hex digits, or a row id as in the "id" field)\n`);
    return 2;
  }
  const prefix = /^[0-9a-f]{4,16}$/i.test(raw) ? raw.toLowerCase() : undefined;
  const match = (pid: string) => pid === raw || (prefix !== undefined && pid.toLowerCase().startsWith(prefix));
  const dirs = o.runDir ? [resolve(o.runDir)] : runDirs(resolve(o.root ?? "runs"));
  if (o.runDir && !existsSync(join(dirs[0]!, "journal.sqlite"))) {
    process.stderr.write(`trace: no journal in ${dirs[0]} (pass the run directory that wrote the problem)\n`);
    return 2;
  }
  const found = dirs.flatMap((d) => traceIn(d, match));
  const ids = new Set(found.map((f) => `${f.dir}\0${f.id}`));
  if (ids.size === 0) {
    process.stderr.write(`trace: no problem with id ${raw}${prefix ? "…" : ""} (synthesized, with a reference or with tests) in ${o.runDir ? dirs[0] : `${dirs.length} run(s) under ${o.root ?? "runs"}`}\n`);
    return 1;
  }
  if (ids.size > 1) {
    process.stderr.write(`trace: ${raw} is ambiguous; it matches:\n${[...ids].map((k) => `  ${k.split("\0")[1]} in ${k.split("\0")[0]}`).join("\n")}\n`);
    return 2;
  }
  out(found[0]!.text);
  return 0;
}

function runDirs(root: string): string[] {
  if (!existsSync(root)) return [];
  return readdirSync(root).flatMap((name) => {
    const d = join(root, name);
    try {
      return readdirSync(d).map((h) => join(d, h)).filter((r) => existsSync(join(r, "journal.sqlite")));
    } catch {
      return [];
    }
  });
}

function traceIn(dir: string, match: (id: string) => boolean): { dir: string; id: string; text: string }[] {
  const journal = new Journal(join(dir, "journal.sqlite"));
  try {
    const gens = new Map<string, { unit: string; g: GenerationRecord }[]>();
    for (const row of journal.iterate<GenerationRecord>(GENERATE_STAGE, 0)) {
      if (row.result.id && match(row.result.id)) gens.set(row.result.id, [...(gens.get(row.result.id) ?? []), { unit: row.id, g: row.result }]);
    }
    for (const u of proposerGenerations(journal, match)) gens.set(u.g.id!, [...(gens.get(u.g.id!) ?? []), u]);
    const found = new Map([...gens].map(([id, units]) => [id, render(journal, dir, id, units)]));
    for (const id of labelledIds(journal, match)) {
      const labels = renderLabels(journal, id).join("\n");
      found.set(id, `${found.get(id) ?? `problem ${id}\nrun: ${dir}\n`}${labels.slice(1)}\n`);
    }
    return [...found].map(([id, text]) => ({ dir, id, text }));
  } finally {
    journal.close();
  }
}

function render(journal: Journal, dir: string, id: string, units: { unit: string; g: GenerationRecord }[]): string {
  const screens = units.map((u) => journal.get<ScreenRecord>(unitId(0, SCREEN_STAGE, u.unit.split("/").slice(-2).join("-"))) ?? proposerScreen(journal, u.unit));
  const kept = screens.some((s) => s?.kept);
  const first = units[0]!.g;
  const lines = [
    `problem ${id} — ${kept ? "KEPT (artifacts/synthesis/problems.jsonl)" : "dropped"}`,
    `run: ${dir}`,
    "",
    "problem:",
    indent(first.problem!),
    "",
    `concepts: ${first.concepts.join("; ")}${first.level ? ` (level ${first.level})` : ""}`,
    "rationale:",
    indent(first.rationale!),
    "",
  ];
  for (const [i, { unit, g }] of units.entries()) {
    const s = screens[i];
    lines.push(
      `generation ${unit}${units.length > 1 ? ` (${i + 1} of ${units.length} with this text)` : ""}`,
      `  written by: prompt model ${g.synthesizer.checkpoint ?? "base weights"} (optimizer step ${g.synthesizer.step}, after ${g.synthesizer.em_iteration} EM iteration(s))`,
      `  seeds: concept set ${g.concept_seed}, sampling ${g.sampling_seed}; finish ${g.finish_reason}`,
      `  filters: ${s ? `passed ${s.filters.passed.join(", ") || "none"}; failed ${s.filters.failed.map((f) => `${f.filter} (${f.reason})`).join(", ") || "none"}` : "not screened yet"}`,
      `  dedup: ${!s ? "not screened yet" : !s.dedup ? "not reached (dropped by a filter)" : s.dedup.kept ? "kept (first of its kind)" : `${s.dedup.kind}${s.dedup.duplicate_of ? ` of ${s.dedup.duplicate_of}` : ""}${s.dedup.detail ? ` (${s.dedup.detail})` : ""}`}`,
    );
  }
  lines.push("", "prompt model training history (up to the weights that wrote it):");
  for (const { iteration } of journal.countsByStage().filter((r) => r.stage === updateStage("prompt"))) {
    const u = journal.get<SftUpdateRecord>(unitId(iteration, updateStage("prompt")))!;
    if (u.global_step > first.synthesizer.step) break;
    const loss = u.steps.map((s) => s.loss ?? NaN);
    lines.push(`  ${iteration === 0 ? "warm start" : `EM ${iteration} M-step`}: ${u.steps.length} SFT steps on ${u.examples} examples, loss ${loss[0]?.toFixed(3)} → ${loss.at(-1)?.toFixed(3)}, checkpoint ${u.checkpoint} (step ${u.global_step})`);
  }
  lines.push(...passRateLines(journal, id));
  return `${lines.join("\n")}\n`;
}

const indent = (s: string) => s.split("\n").map((l) => `  ${l}`).join("\n");
