// Benchmark loaders: math sets with reference answers (AIME, HMMT, MATH-500, GSM8K) and code sets with
// stdin/stdout tests (Codeforces-style, LiveCodeBench), from JSONL/JSON files or a Hugging Face dataset
// directory. Prompts that arrive with a chat template baked in are reduced to the problem text, so the
// evaluated model's own template is applied at generation time.
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { basename, dirname, extname, join, relative, resolve } from "node:path";
import { inflateSync } from "node:zlib";
import { REPO_ROOT } from "../cluster/python-env.js";
import { ConfigError } from "../config/errors.js";
import type { CodeTest } from "../verify/types.js";
import { decodePickledString } from "./pickle-string.js";

export interface BenchProblem {
  id: string;
  /** The problem as a user would write it: no chat template, no answer-format instruction (math). */
  text: string;
  kind: "math" | "code";
  /** Math: the reference answer. */
  answer?: string;
  /** Code: stdin/stdout tests. */
  tests?: CodeTest[];
}

export interface Benchmark {
  name: string;
  /** Files the problems came from. */
  files: string[];
  problems: BenchProblem[];
  /** Problems that cannot be graded here (e.g. LiveCodeBench's call-based tests), with why. */
  skipped: { id: string; reason: string }[];
}

/** Bad benchmark input: exit 2 like a config error; the message names the file (and line). */
export class BenchmarkError extends ConfigError {
  override name = "BenchmarkError";

  override format(): string {
    return `error: ${this.message}`;
  }
}

// Names users type for the same set; the canonical name is the file stem looked up.
const ALIASES: Record<string, string> = {
  "aime-24": "aime24", aime2024: "aime24", "aime-2024": "aime24",
  "aime-25": "aime25", aime2025: "aime25", "aime-2025": "aime25",
  hmmt: "hmmt25", "hmmt-feb25": "hmmt25", hmmt_feb25: "hmmt25", hmmt_feb_2025: "hmmt25", "hmmt-feb-2025": "hmmt25",
  "math-500": "math500", math_500: "math500",
  "gsm-8k": "gsm8k",
  cf: "codeforces",
  lcb: "livecodebench", "live-code-bench": "livecodebench",
};

export const canonicalBenchName = (name: string): string => ALIASES[name.toLowerCase()] ?? name.toLowerCase();

/** Where `--bench NAME` is looked up, in order: the repository's data/benchmarks, then the shared data. */
export function benchSearchDirs(repoRoot = REPO_ROOT): string[] {
  const dirs = [join(repoRoot, "data", "benchmarks"), resolve(repoRoot, "..", "shared", "data", "benchmarks")];
  if (process.env.PROMPTCOT_SHARED_DATA) dirs.push(join(resolve(process.env.PROMPTCOT_SHARED_DATA), "benchmarks"));
  return [...new Set(dirs)];
}

const DATA_EXTS = [".jsonl", ".json", ".parquet"];

/** A path (file or dataset directory) as given, else a name resolved against benchSearchDirs. */
export function resolveBench(nameOrPath: string, repoRoot = REPO_ROOT): { name: string; path: string } {
  if (existsSync(nameOrPath)) {
    const stem = basename(resolve(nameOrPath)).replace(/\.(jsonl|json|parquet)$/i, "");
    return { name: canonicalBenchName(stem), path: resolve(nameOrPath) };
  }
  const name = canonicalBenchName(nameOrPath);
  const stems = [...new Set([name, nameOrPath])];
  const tried: string[] = [];
  for (const dir of benchSearchDirs(repoRoot)) {
    for (const stem of stems) {
      for (const candidate of [...DATA_EXTS.map((e) => join(dir, stem + e)), join(dir, stem)]) {
        tried.push(candidate);
        if (existsSync(candidate)) return { name, path: candidate };
      }
    }
  }
  const dirs = benchSearchDirs(repoRoot);
  throw new BenchmarkError(
    `benchmark '${nameOrPath}' not found: looked for ${stems.map((s) => `${s}{${DATA_EXTS.join(",")}} or ${s}/`).join(", ")} in ` +
      `${dirs.join(", ")}. Pass a path to a JSONL/JSON file or a dataset directory instead, or put the file in ${dirs[0]}`,
  );
}

export function loadBenchmark(path: string, name = resolveBench(path).name): Benchmark {
  const files = statSync(path).isDirectory() ? datasetFiles(path) : [path];
  const bench: Benchmark = { name, files, problems: [], skipped: [] };
  const seen = new Map<string, string>();
  for (const file of files) {
    readRows(file).forEach(({ row, where }, index) => {
      const p = rowToProblem(row, index, where, dirname(file));
      if ("skip" in p) return void bench.skipped.push({ id: p.id, reason: p.skip });
      if (seen.has(p.id)) throw new BenchmarkError(`${where}: problem id '${p.id}' repeats ${seen.get(p.id)}; ids must be unique within a benchmark`);
      seen.set(p.id, where);
      bench.problems.push(p);
    });
  }
  if (bench.problems.length === 0) throw new BenchmarkError(`${path}: no gradable problems${bench.skipped.length ? ` (${bench.skipped.length} skipped: ${bench.skipped[0]!.reason})` : ""}`);
  return bench;
}

/**
 * The data files of a Hugging Face dataset directory (a hub snapshot: data/test-*.parquet, or *.jsonl
 * files). With several splits, the test split is the benchmark.
 */
function datasetFiles(dir: string): string[] {
  const found: string[] = [];
  const walk = (d: string, depth: number) => {
    for (const e of readdirSync(d, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const p = join(d, e.name);
      if (e.isDirectory() && depth < 3 && !e.name.startsWith(".") && e.name !== "tests") walk(p, depth + 1);
      else if (e.isFile() && (DATA_EXTS.includes(extname(e.name).toLowerCase()) || e.name.endsWith(".arrow"))) found.push(p);
    }
  };
  walk(dir, 0);
  const data = found.filter((f) => !/(^|\/)(dataset_info|state|dataset_dict)\.json$/.test(f));
  if (data.length === 0) throw new BenchmarkError(`${dir}: no data files (.jsonl, .json, .parquet) in this directory or its subdirectories`);
  const split = (s: string) => data.filter((f) => new RegExp(`(^|[/_.-])${s}([/_.-]|$)`).test(relative(dir, f)));
  const test = split("test");
  return test.length ? test : data;
}

interface RawRow {
  row: Record<string, unknown>;
  where: string;
}

function readRows(file: string): RawRow[] {
  const ext = extname(file).toLowerCase();
  if (ext === ".parquet" || file.endsWith(".arrow")) {
    throw new BenchmarkError(
      `${file}: ${ext === ".parquet" ? "Parquet" : "Arrow"} files are not read (no Node library this project depends on reads them well); ` +
        `convert to JSONL once, e.g. python -c "import pandas as pd; pd.read_${ext === ".parquet" ? "parquet" : "feather"}('${file}').to_json('${file.replace(/\.(parquet|arrow)$/, ".jsonl")}', orient='records', lines=True, force_ascii=False)" ` +
        `(needs pandas and pyarrow), then point --bench at the .jsonl`,
    );
  }
  const text = readFileSync(file, "utf8").replace(/^\uFEFF/, "");
  const asObject = (v: unknown, where: string): RawRow => {
    if (typeof v !== "object" || v === null || Array.isArray(v)) throw new BenchmarkError(`${where}: a row must be a JSON object`);
    return { row: v as Record<string, unknown>, where };
  };
  if (ext === ".json") {
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch (e) {
      throw new BenchmarkError(`${file}: not valid JSON (${(e as Error).message}); a .json benchmark is an array of rows (use .jsonl for one row per line)`);
    }
    const rows = Array.isArray(v) ? v : (v as { data?: unknown })?.data;
    if (!Array.isArray(rows)) throw new BenchmarkError(`${file}: expected a JSON array of rows (or {"data": [...]})`);
    return rows.map((r, i) => asObject(r, `${file}: row ${i}`));
  }
  const out: RawRow[] = [];
  text.split("\n").forEach((line, i) => {
    if (!line.trim()) return;
    try {
      out.push(asObject(JSON.parse(line), `${file}:${i + 1}`));
    } catch (e) {
      if (e instanceof BenchmarkError) throw e;
      throw new BenchmarkError(`${file}:${i + 1}: not valid JSON (${(e as Error).message})`);
    }
  });
  return out;
}

/** A field by any of its usual names, case-insensitively. */
function field(row: Record<string, unknown>, names: string[]): unknown {
  const lower = new Map(Object.entries(row).map(([k, v]) => [k.toLowerCase(), v]));
  for (const n of names) if (lower.has(n) && lower.get(n) !== null && lower.get(n) !== "") return lower.get(n);
  return undefined;
}

const ID_FIELDS = ["id", "idx", "problem_id", "question_id", "unique_id", "task_id"];
const TEXT_FIELDS = ["problem", "question", "question_content"];
const ANSWER_FIELDS = ["answer", "final_answer", "expected_answer", "gold", "target"];
const SOLUTION_FIELDS = ["reference_solution", "solution"];
const TEST_FIELDS = ["input_output", "test_cases", "public_test_cases", "private_test_cases", "tests_file", "tests"];

function rowToProblem(row: Record<string, unknown>, index: number, where: string, dir: string): BenchProblem | { id: string; skip: string } {
  const rawId = field(row, ID_FIELDS);
  const id = rawId === undefined ? String(index) : String(rawId);
  const isCode = TEST_FIELDS.some((f) => field(row, [f]) !== undefined) || existsSync(join(dir, "tests", id)) || existsSync(join(dir, "tests", `${id}.json`));
  const direct = field(row, TEXT_FIELDS);
  const prompt = field(row, ["prompt"]);
  if (typeof direct !== "string" && typeof prompt !== "string") {
    throw new BenchmarkError(`${where}: no problem text: expected a string field ${[...TEXT_FIELDS, "prompt"].join(", ")}`);
  }
  let text = typeof direct === "string" ? direct : stripChatTemplate(prompt as string, where);
  if (!isCode) text = stripAnswerInstruction(text);
  if (isCode) {
    const tests = codeTests(row, id, where, dir);
    if ("skip" in tests) return { id, skip: tests.skip };
    return { id, text, kind: "code", tests: tests.tests };
  }
  return { id, text, kind: "math", answer: referenceAnswer(row, where) };
}

/**
 * The user turn of a prompt that already has a chat template applied (ChatML, Llama 3, DeepSeek, Gemma,
 * Mistral), the last one when there are several. A system turn is dropped: in the released files it only
 * holds the answer-format instruction. Plain text comes back trimmed.
 */
export function stripChatTemplate(prompt: string, where = "prompt"): string {
  const patterns = [
    /<\|im_start\|>user\s*\n([\s\S]*?)<\|im_end\|>/g,
    /<\|start_header_id\|>user<\|end_header_id\|>\s*([\s\S]*?)<\|eot_id\|>/g,
    /<｜User｜>([\s\S]*?)(?=<｜Assistant｜>|<｜User｜>|$)/g,
    /<start_of_turn>user\s*\n([\s\S]*?)<end_of_turn>/g,
    /\[INST\]([\s\S]*?)\[\/INST\]/g,
  ];
  for (const re of patterns) {
    const turns = [...prompt.matchAll(re)];
    if (turns.length) return turns.at(-1)![1]!.trim();
  }
  if (/<\|im_start\|>|<｜|<\|start_header_id\|>|<start_of_turn>/.test(prompt)) {
    throw new BenchmarkError(`${where}: the prompt has chat-template markers but no user turn could be found; give the plain problem in a 'problem' field instead`);
  }
  return prompt.trim();
}

// The answer-format instruction the released math prompts carry; the eval adds its own (--instruction).
const BOXED_INSTRUCTION = /\s*Please reason step by step,? and put your final answer within \\boxed\{\{?\}?\}\.?\s*/g;

export const stripAnswerInstruction = (text: string): string => text.replace(BOXED_INSTRUCTION, "\n").trim();

/** The reference: an answer field, else what follows the last "####" of a solution, else its last \boxed{}. */
function referenceAnswer(row: Record<string, unknown>, where: string): string {
  const direct = field(row, ANSWER_FIELDS);
  const sol = field(row, SOLUTION_FIELDS);
  for (const v of [direct, sol]) {
    if (typeof v === "number") return String(v);
    if (typeof v !== "string") continue;
    const hashes = v.lastIndexOf("####");
    if (hashes >= 0) return v.slice(hashes + 4).trim();
    const boxed = lastBoxed(v);
    if (boxed !== null) return boxed;
    if (v === direct) return v.trim();
  }
  throw new BenchmarkError(`${where}: no reference answer: expected ${ANSWER_FIELDS.join(", ")}, or a solution (${SOLUTION_FIELDS.join(", ")}) ending in '#### ANSWER' or containing \\boxed{ANSWER}`);
}

/** Contents of the last \boxed{...}, braces balanced. */
export function lastBoxed(s: string): string | null {
  const at = s.lastIndexOf("\\boxed{");
  if (at < 0) return null;
  let depth = 0;
  for (let i = at + 6; i < s.length; i++) {
    if (s[i] === "{") depth++;
    else if (s[i] === "}" && --depth === 0) return s.slice(at + 7, i).trim();
  }
  return null;
}

type TestsOrSkip = { tests: CodeTest[] } | { skip: string };

function codeTests(row: Record<string, unknown>, id: string, where: string, dir: string): TestsOrSkip {
  const tests: CodeTest[] = [];
  const io = field(row, ["input_output"]);
  if (io !== undefined) {
    const v = parseMaybeJson(io, where, "input_output") as { inputs?: unknown; outputs?: unknown; fn_name?: unknown };
    if (v.fn_name) return { skip: `call-based tests (fn_name ${String(v.fn_name)}): only stdin/stdout is graded` };
    tests.push(...pairLists(v.inputs, v.outputs, where, "input_output"));
  }
  for (const f of ["test_cases", "tests", "public_test_cases", "private_test_cases"]) {
    const raw = field(row, [f]);
    if (raw === undefined) continue;
    const list = parseMaybeJson(f === "private_test_cases" ? decodeLcbBlob(raw, where) : raw, where, f);
    if (!Array.isArray(list)) throw new BenchmarkError(`${where}: '${f}' must be a list of {input, output}`);
    for (const t of list as { input?: unknown; output?: unknown; testtype?: unknown }[]) {
      if (t.testtype === "functional") return { skip: `LiveCodeBench functional (call-based) tests: only stdin/stdout is graded` };
      tests.push(oneTest(t, where, f));
    }
  }
  const file = field(row, ["tests_file", "tests_path"]);
  if (typeof file === "string") tests.push(...testsFromFile(resolve(dir, file), where));
  if (tests.length === 0) tests.push(...testsBeside(dir, id));
  if (tests.length === 0) {
    throw new BenchmarkError(`${where}: code problem '${id}' has no tests: give input_output, test_cases, public/private_test_cases or tests_file, or put them in ${join(dir, "tests", id)}/ as N.in/N.out pairs or ${join(dir, "tests", `${id}.json`)}`);
  }
  return { tests };
}

function parseMaybeJson(v: unknown, where: string, key: string): unknown {
  if (typeof v !== "string") return v;
  try {
    return JSON.parse(v);
  } catch (e) {
    throw new BenchmarkError(`${where}: '${key}' is a string but not valid JSON (${(e as Error).message})`);
  }
}

function pairLists(inputs: unknown, outputs: unknown, where: string, key: string): CodeTest[] {
  if (!Array.isArray(inputs) || !Array.isArray(outputs) || inputs.length !== outputs.length) {
    throw new BenchmarkError(`${where}: '${key}' needs equally long 'inputs' and 'outputs' lists`);
  }
  return inputs.map((input, i) => oneTest({ input, output: outputs[i] }, where, key));
}

function oneTest(t: { input?: unknown; output?: unknown }, where: string, key: string): CodeTest {
  const s = (v: unknown) => (Array.isArray(v) ? v.join("\n") : v);
  const [input, output] = [s(t.input), s(t.output)];
  if (typeof input !== "string" || typeof output !== "string") throw new BenchmarkError(`${where}: a test in '${key}' lacks string 'input' and 'output'`);
  return { input, output };
}

/**
 * LiveCodeBench ships private tests as base64(zlib(pickle(json string))). Only a pickled plain string is
 * accepted (decodePickledString refuses every other opcode), so no pickle is ever executed.
 */
function decodeLcbBlob(raw: unknown, where: string): unknown {
  if (typeof raw !== "string" || raw.trimStart().startsWith("[")) return raw;
  let bytes: Buffer;
  try {
    bytes = inflateSync(Buffer.from(raw, "base64"));
  } catch {
    throw new BenchmarkError(`${where}: 'private_test_cases' is neither JSON nor base64+zlib (LiveCodeBench's compressed form)`);
  }
  if (bytes[0] !== 0x80) return bytes.toString("utf8");
  try {
    return decodePickledString(bytes);
  } catch (e) {
    throw new BenchmarkError(`${where}: 'private_test_cases': ${(e as Error).message}`);
  }
}

function testsFromFile(path: string, where: string): CodeTest[] {
  if (!existsSync(path)) throw new BenchmarkError(`${where}: tests_file ${path} not found (a relative path resolves against the benchmark file's directory)`);
  const text = readFileSync(path, "utf8");
  const v: unknown = path.endsWith(".jsonl") ? text.split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l)) : JSON.parse(text);
  if (Array.isArray(v)) return v.map((t) => oneTest(t as { input?: unknown; output?: unknown }, path, "tests"));
  const o = v as { inputs?: unknown; outputs?: unknown };
  return pairLists(o.inputs, o.outputs, path, "tests");
}

/** Codeforces-style tests beside the benchmark: tests/<id>.json, or tests/<id>/ with N.in + N.out (or N.ans). */
function testsBeside(dir: string, id: string): CodeTest[] {
  const json = join(dir, "tests", `${id}.json`);
  if (existsSync(json)) return testsFromFile(json, json);
  const d = join(dir, "tests", id);
  if (!existsSync(d)) return [];
  const names = readdirSync(d).filter((n) => n.endsWith(".in")).sort((a, b) => a.localeCompare(b, "en", { numeric: true }));
  return names.map((n) => {
    const stem = join(d, n.slice(0, -3));
    const out = [`${stem}.out`, `${stem}.ans`].find((p) => existsSync(p));
    if (!out) throw new BenchmarkError(`${join(d, n)}: no matching ${basename(stem)}.out or .ans`);
    return { input: readFileSync(join(d, n), "utf8"), output: readFileSync(out, "utf8") };
  });
}
