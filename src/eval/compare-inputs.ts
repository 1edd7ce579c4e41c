// What `promptcot compare` accepts as one side: a results JSONL (from `promptcot eval` or any tool
// writing the same fields), an eval directory, a run directory (its held-out eval), or a run's checkpoint
// (the held-out eval after the iteration that wrote it).
import { existsSync, readFileSync, statSync } from "node:fs";
import { basename, join, resolve } from "node:path";
import Database from "better-sqlite3";
import { ConfigError } from "../config/errors.js";
import type { ResultRow } from "./compare.js";

export interface CompareSide {
  label: string;
  rows: ResultRow[];
  from: string;
}

const FIX = `each line is one JSON object {"benchmark": str, "problem_id": str, "sample_idx": int, "correct": bool, ` +
  `optional "extracted", "response_tokens", "finish_reason", "checkpoint"}`;

export function readResultsJsonl(path: string): ResultRow[] {
  const rows: ResultRow[] = [];
  readFileSync(path, "utf8").split("\n").forEach((line, i) => {
    if (line.trim()) rows.push(parseRow(line, `${path}:${i + 1}`));
  });
  if (rows.length === 0) throw new ConfigError(`no result rows; ${FIX}`, path);
  return rows;
}

function parseRow(line: string, where: string): ResultRow {
  const fail = (what: string) => new ConfigError(`${where}: ${what}; ${FIX}`);
  let r: Record<string, unknown>;
  try {
    r = JSON.parse(line) as Record<string, unknown>;
  } catch (e) {
    throw fail(`not valid JSON (${(e as Error).message})`);
  }
  if (typeof r !== "object" || r === null || Array.isArray(r)) throw fail("not a JSON object");
  if (typeof r.benchmark !== "string" || !r.benchmark) throw fail("'benchmark' missing or not a string");
  if (typeof r.problem_id !== "string" && typeof r.problem_id !== "number") throw fail("'problem_id' missing");
  if (!Number.isInteger(r.sample_idx) || (r.sample_idx as number) < 0) throw fail("'sample_idx' must be a whole number >= 0");
  const correct = r.correct === 1 ? true : r.correct === 0 ? false : r.correct;
  if (typeof correct !== "boolean") throw fail(`'correct' must be true/false (got ${JSON.stringify(r.correct)})`);
  const tokens = r.response_tokens;
  if (tokens !== undefined && tokens !== null && typeof tokens !== "number") throw fail("'response_tokens' must be a number");
  return {
    benchmark: r.benchmark, problem_id: String(r.problem_id), sample_idx: r.sample_idx as number, correct,
    extracted: typeof r.extracted === "string" ? r.extracted : null, response_tokens: (tokens as number | undefined) ?? null,
    finish_reason: typeof r.finish_reason === "string" ? r.finish_reason : null, checkpoint: typeof r.checkpoint === "string" ? r.checkpoint : null,
  };
}

/** One side of a comparison from a path; `run#N` picks a run's held-out eval after iteration N (0 = before training). */
export function loadSide(arg: string): CompareSide {
  const [path, iter] = /^(.*)#(\d+)$/.exec(arg)?.slice(1) ?? [arg, undefined];
  const p = resolve(path!);
  if (!existsSync(p)) throw new ConfigError(`not found; give a results .jsonl, an eval directory (from promptcot eval), a run directory or a run's checkpoint`, p);
  if (statSync(p).isFile()) return labelled(readResultsJsonl(p), basename(p).replace(/\.jsonl$/, ""), p);
  if (existsSync(join(p, "results.jsonl"))) return labelled(readResultsJsonl(join(p, "results.jsonl")), path!, p);
  if (existsSync(join(p, "journal.sqlite")) && existsSync(join(p, "run.json"))) return runEval(p, iter === undefined ? undefined : Number(iter), path!);
  const run = resolve(p, "..", "..");
  if (/^step-\d+$/.test(basename(p)) && existsSync(join(run, "journal.sqlite"))) return runEval(run, iterationOfCheckpoint(run, p), path!);
  throw new ConfigError(
    `neither a results file, an eval directory (no results.jsonl), a run directory (no journal.sqlite + run.json) nor a run's checkpoint; ` +
      `to compare a checkpoint on a benchmark, run promptcot eval CHECKPOINT --bench NAME --out DIR first and pass DIR`,
    p,
  );
}

function labelled(rows: ResultRow[], fallback: string, from: string): CompareSide {
  const named = [...new Set(rows.map((r) => r.checkpoint).filter(Boolean))];
  return { label: named.length === 1 ? named[0]! : fallback, rows, from };
}

interface RunEvalRecord {
  prompt_id: string;
  sample: number;
  verdict: string;
  extracted: string | null;
  finish_reason: string;
}

/** A run's held-out eval as rows (benchmark "heldout"); the last eval when no iteration is named. */
function runEval(run: string, iteration: number | undefined, label: string): CompareSide {
  const db = new Database(join(run, "journal.sqlite"), { readonly: true, fileMustExist: true });
  try {
    const its = (db.prepare("SELECT DISTINCT iteration FROM units WHERE stage = 'eval' ORDER BY iteration").all() as { iteration: number }[]).map((r) => r.iteration);
    const it = iteration ?? its.at(-1);
    if (it === undefined || !its.includes(it)) {
      throw new ConfigError(`this run has no held-out eval${it === undefined ? "" : ` after iteration ${it}`} (evals at iterations: ${its.join(", ") || "none"}); name one as RUN#N`, run);
    }
    const results = db.prepare("SELECT result FROM units WHERE stage = 'eval' AND iteration = ? ORDER BY id").all(it) as { result: string }[];
    const rows = results.map(({ result }) => {
      const r = JSON.parse(result) as RunEvalRecord;
      return { benchmark: "heldout", problem_id: r.prompt_id, sample_idx: r.sample, correct: r.verdict === "correct", extracted: r.extracted, response_tokens: null, finish_reason: r.finish_reason, checkpoint: `${label}#${it}` };
    });
    return { label: `${label.replace(/\/+$/, "")}#${it}`, rows, from: run };
  } finally {
    db.close();
  }
}

function iterationOfCheckpoint(run: string, ckpt: string): number {
  const db = new Database(join(run, "journal.sqlite"), { readonly: true, fileMustExist: true });
  try {
    const rows = db.prepare("SELECT iteration, result FROM units WHERE stage = 'update'").all() as { iteration: number; result: string }[];
    const hit = rows.find((r) => resolve(run, (JSON.parse(r.result) as { checkpoint: string }).checkpoint) === ckpt);
    if (!hit) throw new ConfigError(`no journaled update of ${run} wrote this checkpoint, so its held-out eval cannot be found; evaluate it with promptcot eval`, ckpt);
    return hit.iteration;
  } finally {
    db.close();
  }
}
