// The sample browser: one stage of one iteration, a page at a time. Rollout and eval units are grouped
// by prompt with their verdicts (rollout verdicts live in the grade stage), pair roles and, for code, the
// first failing test; synthesis generations show their provenance (as `promptcot trace` reads it).
import { existsSync, readFileSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import type Database from "better-sqlite3";
import type { GenerationRecord } from "../synthesis/provenance.js";
import { GENERATE_STAGE, SCREEN_STAGE, type ScreenRecord } from "../synthesis/generate.js";
import { unitId } from "../experiment/ids.js";
import { inlineJson } from "../experiment/payload.js";
import { SampleStore } from "../experiment/sample-store.js";
import { esc, fmtNum, page, pill, q } from "./html.js";
import type { RunReader } from "./run-reader.js";
import type { Found } from "./runs.js";

const PROMPTS_PER_PAGE = 8;
const ROWS_PER_PAGE = 20;

interface Problem {
  id: string;
  prompt?: string;
  answer?: string;
  test_cases?: { input: string; output: string }[];
}

interface Unit {
  id: string;
  result: Record<string, unknown>;
}

const problemCache = new Map<string, { mtime: number; map: Map<string, Problem> }>();

/** The run's problem copies (train and held-out), keyed by id; re-read when a file changes. */
function problems(dir: string): Map<string, Problem> {
  const out = new Map<string, Problem>();
  for (const split of ["train", "heldout"]) {
    const file = join(dir, "artifacts", `problems.${split}.jsonl`);
    if (!existsSync(file)) continue;
    const mtime = statSync(file).mtimeMs;
    let hit = problemCache.get(file);
    if (hit?.mtime !== mtime) {
      const map = new Map<string, Problem>();
      for (const line of readFileSync(file, "utf8").split("\n")) {
        try {
          const p = JSON.parse(line) as Problem;
          if (p && typeof p.id === "string") map.set(p.id, p);
        } catch {
          /* blank or partial line */
        }
      }
      problemCache.set(file, (hit = { mtime, map }));
    }
    for (const [k, v] of hit.map) out.set(k, v);
  }
  return out;
}

/** Rows with shard-held fields (rollout text and token ids, docs/DATA_PLANE.md) read back in. */
function units(db: Database.Database, sql: string, ...args: unknown[]): Unit[] {
  const store = new SampleStore(join(dirname(db.name), "shards"));
  try {
    return (db.prepare(sql).all(...args) as { id: string; result: string }[]).map((r) => ({ id: r.id, result: JSON.parse(inlineJson(store, r.result)) as Record<string, unknown> }));
  } finally {
    store.close();
  }
}

export function samplesPage(f: Found, r: RunReader, stage: string, iteration: number, pageNo: number): string {
  const db = r.journal;
  const first = units(db, "SELECT id, result FROM units WHERE stage = ? AND iteration = ? ORDER BY id LIMIT 1", stage, iteration)[0];
  const title = `${stage} · iteration ${iteration}`;
  const back = `<p><a href="/run?${q({ run: f.id })}">← ${esc(f.id)}</a></p><h1>${esc(title)}</h1>`;
  if (!first) return page(title, `${back}<p class="mut">no units in this stage and iteration</p>`);
  let body: string;
  if (stage === GENERATE_STAGE) body = generations(f, db, iteration, pageNo);
  else if (typeof first.result.prompt_id === "string" && typeof first.result.text === "string") body = byPrompt(f, r, stage, iteration, pageNo);
  else body = generic(f, db, stage, iteration, pageNo);
  return page(title, back + body);
}

function pager(f: Found, stage: string, iteration: number, pageNo: number, hasMore: boolean, total: string): string {
  const link = (p: number, label: string) => `<a href="/samples?${q({ run: f.id, stage, it: iteration, page: p })}">${label}</a>`;
  return `<p class="mut">${total} · page ${pageNo + 1} ${pageNo > 0 ? link(pageNo - 1, "← previous") : ""} ${hasMore ? link(pageNo + 1, "next →") : ""}</p>`;
}

function byPrompt(f: Found, r: RunReader, stage: string, iteration: number, pageNo: number): string {
  const db = r.journal;
  const ids = (db.prepare("SELECT DISTINCT json_extract(result, '$.prompt_id') AS p FROM units WHERE stage = ? AND iteration = ? ORDER BY p").all(stage, iteration) as { p: string }[]).map((x) => x.p);
  const shown = ids.slice(pageNo * PROMPTS_PER_PAGE, (pageNo + 1) * PROMPTS_PER_PAGE);
  const rows = units(db, `SELECT id, result FROM units WHERE stage = ? AND iteration = ? AND json_extract(result, '$.prompt_id') IN (${shown.map(() => "?").join(",") || "NULL"}) ORDER BY id`, stage, iteration, ...shown);
  const grades = new Map(rows.length && stage === "rollout"
    ? units(db, `SELECT id, result FROM units WHERE id IN (${rows.map(() => "?").join(",")})`, ...rows.map((u) => u.id.replace("/rollout/", "/grade/"))).map((g) => [String(g.result.sample_id), g.result])
    : []);
  const roles = pairRoles(db, iteration);
  const probs = problems(f.dir);
  const cards = shown.map((pid) => {
    const p = probs.get(pid);
    const samples = rows.filter((u) => u.result.prompt_id === pid).map((u) => completion(u, grades.get(u.id) ?? u.result, roles.get(u.id), p));
    return `<div class="card sample" data-prompt="${esc(pid)}"><h3>${esc(pid)}${p?.answer !== undefined ? ` <span class="mut">answer: ${esc(p.answer)}</span>` : ""}</h3>` +
      `<div class="mut">prompt</div><pre class="prompt">${esc(p?.prompt ?? "(prompt text not in artifacts/problems.*.jsonl)")}</pre>${samples.join("")}</div>`;
  });
  return pager(f, stage, iteration, pageNo, ids.length > (pageNo + 1) * PROMPTS_PER_PAGE, `${ids.length} prompts`) + cards.join("");
}

function pairRoles(db: Database.Database, iteration: number): Map<string, string> {
  const row = db.prepare("SELECT result FROM units WHERE stage = 'pairs' AND iteration = ?").get(iteration) as { result: string } | undefined;
  const roles = new Map<string, string>();
  if (!row) return roles;
  for (const p of (JSON.parse(row.result) as { pairs?: { chosen: string; rejected: string }[] }).pairs ?? []) {
    roles.set(p.chosen, "chosen");
    roles.set(p.rejected, "rejected");
  }
  return roles;
}

function completion(u: Unit, verdict: Record<string, unknown>, role: string | undefined, p: Problem | undefined): string {
  const v = typeof verdict.verdict === "string" ? verdict.verdict : "not graded yet";
  const meta = [
    pill(v),
    role ? pill(role, role === "chosen" ? "correct" : "incorrect") : "",
    verdict.extracted != null ? `extracted <span class="mono">${esc(verdict.extracted)}</span>` : "",
    `finish ${esc(u.result.finish_reason ?? "?")}`,
    Array.isArray(u.result.token_ids) ? `${u.result.token_ids.length} tokens` : "",
    verdict.reason ? `<span class="mut">${esc(verdict.reason)}</span>` : "",
  ].filter(Boolean).join(" · ");
  return `<div class="completion" data-sample="${esc(u.id)}" data-verdict="${esc(v)}"><div>sample ${esc(u.result.sample)} · ${meta}</div>` +
    `<pre class="text">${esc(u.result.text)}</pre>${failingTest(verdict, p)}</div>`;
}

/** For a code verdict: the first failing test (input, expected output) and the program's stderr tail. */
function failingTest(v: Record<string, unknown>, p: Problem | undefined): string {
  if (typeof v.failed_test !== "number") return "";
  const t = p?.test_cases?.[v.failed_test];
  return `<div class="mut">failing test #${v.failed_test}</div>` +
    (t ? `<div class="mut">input</div><pre>${esc(t.input)}</pre><div class="mut">expected</div><pre>${esc(t.output)}</pre>` : "") +
    (v.stderr ? `<div class="mut">stderr</div><pre>${esc(v.stderr)}</pre>` : "");
}

function generations(f: Found, db: Database.Database, iteration: number, pageNo: number): string {
  const total = (db.prepare("SELECT COUNT(*) AS n FROM units WHERE stage = ? AND iteration = ?").get(GENERATE_STAGE, iteration) as { n: number }).n;
  const rows = units(db, "SELECT id, result FROM units WHERE stage = ? AND iteration = ? ORDER BY id LIMIT ? OFFSET ?", GENERATE_STAGE, iteration, ROWS_PER_PAGE, pageNo * ROWS_PER_PAGE);
  const cards = rows.map((u) => {
    const g = u.result as unknown as GenerationRecord;
    const screenId = unitId(0, SCREEN_STAGE, u.id.split("/").slice(-2).join("-"));
    const s = (db.prepare("SELECT result FROM units WHERE id = ?").get(screenId) as { result: string } | undefined);
    const screen = s ? (JSON.parse(s.result) as ScreenRecord) : undefined;
    const fate = !g.ok ? pill(`unparsed: ${g.reason ?? "?"}`, "error") : !screen ? pill("not screened yet", "no_answer") : pill(screen.kept ? "kept" : "dropped");
    const filters = screen ? `passed ${screen.filters.passed.map(esc).join(", ") || "none"}; failed ${screen.filters.failed.map((x) => `${esc(x.filter)} (${esc(x.reason)})`).join(", ") || "none"}` : "–";
    const dedup = !screen?.dedup ? "–" : screen.dedup.kept ? "kept (first of its kind)" : `${esc(screen.dedup.kind)}${screen.dedup.duplicate_of ? ` of ${esc(screen.dedup.duplicate_of)}` : ""}`;
    return `<div class="card sample generation" data-unit="${esc(u.id)}"><h3>${esc(g.id ?? u.id)} ${fate}</h3>` +
      `<div class="mut">problem</div><pre class="text">${esc(g.problem ?? g.text)}</pre>` +
      (g.rationale ? `<div class="mut">rationale</div><pre>${esc(g.rationale)}</pre>` : "") +
      `<table><tr><th>concepts</th><td>${esc(g.concepts?.join("; "))}${g.level ? ` (level ${esc(g.level)})` : ""}</td></tr>` +
      `<tr><th>written by</th><td>prompt model ${esc(g.synthesizer?.checkpoint ?? "base weights")} (step ${esc(g.synthesizer?.step)}, after ${esc(g.synthesizer?.em_iteration)} EM iteration(s))</td></tr>` +
      `<tr><th>seeds</th><td>concept set ${esc(g.concept_seed)}, sampling ${esc(g.sampling_seed)}; finish ${esc(g.finish_reason)}</td></tr>` +
      `<tr><th>filters</th><td>${filters}</td></tr><tr><th>dedup</th><td>${dedup}</td></tr></table>` +
      (g.id ? `<p class="mut">full history: <span class="mono">npx promptcot trace ${esc(g.id)} --run-dir ${esc(f.dir)}</span></p>` : "") + `</div>`;
  });
  return pager(f, GENERATE_STAGE, iteration, pageNo, total > (pageNo + 1) * ROWS_PER_PAGE, `${total} generations`) + cards.join("");
}

/** Any other stage: its units' results as JSON, bulky token arrays summarised. */
function generic(f: Found, db: Database.Database, stage: string, iteration: number, pageNo: number): string {
  const total = (db.prepare("SELECT COUNT(*) AS n FROM units WHERE stage = ? AND iteration = ?").get(stage, iteration) as { n: number }).n;
  const rows = units(db, "SELECT id, result FROM units WHERE stage = ? AND iteration = ? ORDER BY id LIMIT ? OFFSET ?", stage, iteration, ROWS_PER_PAGE, pageNo * ROWS_PER_PAGE);
  const shrink = (_k: string, v: unknown) => (Array.isArray(v) && v.length > 16 && v.every((x) => typeof x === "number") ? `[${v.length} numbers: ${v.slice(0, 4).map((x) => fmtNum(x)).join(", ")}, …]` : v);
  const cards = rows.map((u) => {
    const json = JSON.stringify(u.result, shrink, 2);
    return `<div class="card sample"><h3 class="mono">${esc(u.id)}</h3><pre>${esc(json.length > 6000 ? `${json.slice(0, 6000)}\n…` : json)}</pre></div>`;
  });
  return pager(f, stage, iteration, pageNo, total > (pageNo + 1) * ROWS_PER_PAGE, `${total} units`) + cards.join("");
}
