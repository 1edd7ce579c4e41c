// Problems the self-play loop trains and evaluates on: a seeded arithmetic generator (the quickstart's
// data: easy sums and one-step word problems with known answers) or a user's JSONL file.
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { ConfigError } from "../config/errors.js";
import type { Experiment } from "../config/schema.js";
import { rng } from "../experiment/ids.js";
import type { CodeTest } from "../verify/types.js";

export type ProblemKind = "math" | "code";

/**
 * A math problem is graded against `answer`; a code problem (kind "code") runs its program on `tests`
 * (stdin/stdout) in the sandbox and has answer "". A problem without a kind is math, so older run copies read the same.
 */
export interface Problem {
  id: string;
  prompt: string;
  answer: string;
  source: string;
  kind?: ProblemKind;
  tests?: CodeTest[];
}

export const problemKind = (p: Pick<Problem, "kind">): ProblemKind => p.kind ?? "math";

type Make = (r: () => number) => { q: string; a: number };

const int = (r: () => number, lo: number, hi: number): number => lo + Math.floor(r() * (hi - lo + 1));
const NAMES = ["Tom", "Ana", "Li", "Sara", "Omar", "Mia", "Ben", "Zoe"];
const THINGS = ["apples", "pencils", "stickers", "marbles", "books", "coins"];

// A spread of difficulty so a 135M model passes some but not all: one-digit sums are easy,
// two-digit sums and word problems are not.
const MAKERS: Make[] = [
  (r) => { const a = int(r, 1, 9), b = int(r, 1, 9); return { q: `What is ${a} + ${b}?`, a: a + b }; },
  (r) => { const a = int(r, 10, 49), b = int(r, 2, 9); return { q: `What is ${a} + ${b}?`, a: a + b }; },
  (r) => { const a = int(r, 5, 19), b = int(r, 1, a - 1); return { q: `What is ${a} - ${b}?`, a: a - b }; },
  (r) => { const a = int(r, 2, 9), b = int(r, 2, 9); return { q: `What is ${a} * ${b}?`, a: a * b }; },
  (r) => {
    const n = NAMES[int(r, 0, NAMES.length - 1)]!, t = THINGS[int(r, 0, THINGS.length - 1)]!;
    const a = int(r, 2, 9), b = int(r, 1, 9);
    return { q: `${n} has ${a} ${t} and gets ${b} more. How many ${t} does ${n} have now?`, a: a + b };
  },
  (r) => {
    const n = NAMES[int(r, 0, NAMES.length - 1)]!, t = THINGS[int(r, 0, THINGS.length - 1)]!;
    const a = int(r, 6, 15), b = int(r, 1, 5);
    return { q: `${n} had ${a} ${t} and gave away ${b}. How many ${t} are left?`, a: a - b };
  },
];

function generate(seed: number, count: number, prefix: string, exclude: Set<string>): Problem[] {
  const r = rng(seed);
  const out: Problem[] = [];
  const seen = new Set(exclude);
  for (let tries = 0; out.length < count; tries++) {
    if (tries > count * 1000) throw new Error(`arithmetic generator could not find ${count} distinct problems`);
    const { q, a } = MAKERS[out.length % MAKERS.length]!(r);
    if (seen.has(q)) continue;
    seen.add(q);
    out.push({ id: `${prefix}${String(out.length).padStart(4, "0")}`, prompt: q, answer: String(a), source: "arithmetic" });
  }
  return out;
}

/** Train and held-out splits from one seed; held-out never repeats a train question. */
export function arithmeticSplits(seed: number, trainSize: number, heldoutSize: number): { train: Problem[]; heldout: Problem[] } {
  const train = generate(seed * 2 + 1, trainSize, "t", new Set());
  const heldout = generate(seed * 2 + 2, heldoutSize, "h", new Set(train.map((p) => p.prompt)));
  return { train, heldout };
}

/**
 * Reads math rows `{prompt, answer}` and code rows `{prompt, test_cases: [{input, output}]}` (PromptCoT field
 * names; `tests` is accepted for `test_cases`; `kind` may say which). Ids are row positions (`t0003` = the fourth
 * non-blank row): a run's fingerprint of the loaded problems, not the ids, guards against an edited file.
 * Any bad row is a ConfigError naming file:line and the fix, so it stops the run before anything is written.
 */
export function readProblemsJsonl(path: string, prefix: string, key = "data.train_path"): Problem[] {
  const out: Problem[] = [];
  readText(path, key).split("\n").forEach((line, i) => {
    if (!line.trim()) return;
    const row = parseRow(line, path, i + 1);
    out.push({ id: `${prefix}${String(out.length).padStart(4, "0")}`, ...row, source: row.source ?? "jsonl" });
  });
  return out;
}

function readText(path: string, key: string): string {
  try {
    return readFileSync(path, "utf8").replace(/^\uFEFF/, "");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const what = code === "ENOENT" ? "file not found" : code === "EISDIR" ? "is a directory, not a JSONL file" : `cannot read (${code})`;
    throw new ConfigError(`${what}; fix ${key} (a relative path resolves against the experiment file's directory)`, path, undefined, key);
  }
}

const FIX =
  `each line must be one JSON object: a math problem {"prompt": "What is 2 + 3?", "answer": "5"} or a code problem ` +
  `{"prompt": "Read a and b, print a + b.", "test_cases": [{"input": "1 2\\n", "output": "3\\n"}]} (optional "kind": "math" | "code")`;

type Row = Omit<Problem, "id" | "source"> & { source?: string };

function parseRow(line: string, path: string, lineNo: number): Row {
  const fail = (what: string) => new ConfigError(`${what}; ${FIX}`, path, lineNo);
  let row: unknown;
  try {
    row = JSON.parse(line);
  } catch (e) {
    throw fail(`not valid JSON (${(e as Error).message})`);
  }
  if (typeof row !== "object" || row === null || Array.isArray(row)) throw fail(`row is ${describe(row)}, not a JSON object`);
  const r = row as Record<string, unknown>;
  requireString(r, "prompt", fail);
  if (r.source !== undefined && typeof r.source !== "string") throw fail(`'source' is ${describe(r.source)}; when present it must be a string`);
  if ("test_cases" in r && "tests" in r) throw fail(`row has both 'test_cases' and 'tests'; keep one`);
  const testsKey = "test_cases" in r ? "test_cases" : "tests" in r ? "tests" : undefined;
  if (r.kind !== undefined && r.kind !== "math" && r.kind !== "code") throw fail(`'kind' is ${describe(r.kind)}; it must be "math" or "code"`);
  const kind: ProblemKind = (r.kind as ProblemKind | undefined) ?? (testsKey ? "code" : "math");
  const base = { prompt: r.prompt as string, source: r.source as string | undefined };
  if (kind === "math") {
    if (testsKey) throw fail(`a math row (kind "math") carries '${testsKey}'; drop them, or set "kind": "code"`);
    requireString(r, "answer", fail);
    return { ...base, answer: r.answer as string };
  }
  if (!testsKey) throw fail(`a code row (kind "code") has no 'test_cases'`);
  return { ...base, answer: "", kind: "code", tests: parseTests(r[testsKey], testsKey, fail) };
}

function requireString(r: Record<string, unknown>, k: string, fail: (what: string) => Error): void {
  if (!(k in r)) throw fail(`row has no '${k}' field`);
  if (typeof r[k] !== "string") throw fail(`'${k}' is ${describe(r[k])}, not a string${typeof r[k] === "number" ? ` (write it as "${r[k]}")` : ""}`);
  if (!(r[k] as string).trim()) throw fail(`'${k}' is empty`);
}

function parseTests(v: unknown, key: string, fail: (what: string) => Error): CodeTest[] {
  if (!Array.isArray(v)) throw fail(`'${key}' is ${describe(v)}, not an array of {"input", "output"} objects`);
  if (v.length === 0) throw fail(`'${key}' is empty: a code problem needs at least one test`);
  return v.map((t: unknown, i) => {
    if (typeof t !== "object" || t === null || Array.isArray(t)) throw fail(`'${key}[${i}]' is ${describe(t)}, not an {"input", "output"} object`);
    const o = t as Record<string, unknown>;
    for (const f of ["input", "output"]) {
      if (typeof o[f] !== "string") throw fail(`'${key}[${i}].${f}' is ${f in o ? describe(o[f]) : "missing"}; it must be a string (stdin / expected stdout)`);
    }
    return { input: o.input as string, output: o.output as string };
  });
}

function describe(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  return typeof v === "object" ? "an object" : `a ${typeof v} (${JSON.stringify(v)})`;
}

/**
 * The problems a run uses: the seeded generator, or the first train_size / heldout_size rows of the JSONL
 * files. A file with fewer rows than asked for is an error, not a silently smaller run.
 */
export function loadProblems(cfg: Experiment, configDir: string): { train: Problem[]; heldout: Problem[] } {
  const d = cfg.data;
  if (d.kind === "arithmetic") return arithmeticSplits(cfg.seed, d.train_size, d.heldout_size);
  return {
    train: takeRows(resolve(configDir, d.train_path!), "t", "train", d.train_size),
    heldout: takeRows(resolve(configDir, d.heldout_path!), "h", "heldout", d.heldout_size),
  };
}

function takeRows(path: string, prefix: string, split: "train" | "heldout", size: number): Problem[] {
  const rows = readProblemsJsonl(path, prefix, `data.${split}_path`);
  if (rows.length < size) {
    throw new ConfigError(
      `has ${rows.length} problem rows but data.${split}_size is ${size}; set data.${split}_size: ${rows.length} or add rows`,
      path,
      undefined,
      `data.${split}_size`,
    );
  }
  return rows.slice(0, size);
}
