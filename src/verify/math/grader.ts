// The math grader: extract -> normalize -> parse -> compare in-process (exact, bounded), and only the
// questions the fast path cannot settle go to the Python pool, batched per grade call, under a hard time
// bound. A symbolic overrun is a "timeout" verdict; a crashed worker is an "error" verdict; never a hang.
import { answerRegion } from "../think.js";
import type { GradeContext, MathGrader, MathVerdict } from "../types.js";
import { AnswerParser, type Node, leaf } from "./answer-parse.js";
import { type CompareOptions, Comparison, DEFAULT_COMPARE, type SymbolicQuery, queryKey } from "./compare.js";
import { type ExtractOptions, MAX_ANSWER, findAnswer, findReference } from "./extract.js";
import { normalizeAnswer, normalizeWithUnits } from "./latex-normalize.js";
import { Bail } from "./rational.js";
import { SymbolicPool } from "./symbolic-pool.js";

export interface MathGraderOptions {
  /** Hard bound for the symbolic work of one grade call, in ms (default 5000). */
  timeoutMs?: number;
  /** Address-space limit of each Python worker, in MiB (default 2048). */
  memoryMb?: number;
  /** Python worker processes, started on first need (default 2). */
  poolSize?: number;
  /** Python interpreter override (default: PROMPTCOT_PYTHON or the project virtualenv). */
  python?: string;
  /** Answer the fast path alone; questions it cannot settle count as "incorrect" (tests, benchmarks). */
  fastPathOnly?: boolean;
}

export interface EquivalenceResult {
  verdict: "correct" | "incorrect" | "timeout" | "error";
  reason?: string;
  /** Where the decision was made. */
  path: "fast" | "symbolic";
}

export interface FullMathGrader extends MathGrader {
  /** Grade with explicit extraction/comparison settings (math-verify compatible runs, tests). */
  gradeWith(
    completion: string,
    reference: string,
    opts: { extract?: ExtractOptions; referenceAsCompletion?: boolean; compare?: Partial<CompareOptions> },
  ): Promise<MathVerdict & { path?: "fast" | "symbolic" }>;
  /** Are two already-extracted answers equivalent? (majority voting) */
  equivalent(reference: string, answer: string, compare?: Partial<CompareOptions>): Promise<EquivalenceResult>;
  readonly pool: SymbolicPool;
}

const MAX_ROUNDS = 3;
const CACHE_LIMIT = 5000;

/** The overwhelmingly common case (AIME-style integers, "$70$", "070") skips the parser entirely. */
const PLAIN_INTEGER = /^\s*\$?\s*([+-]?\d{1,400})\s*\.?\s*\$?\s*$/;

function plainInteger(s: string): bigint | null {
  const m = PLAIN_INTEGER.exec(s);
  return m ? BigInt(m[1]!) : null;
}

interface Parsed {
  norm: string;
  /** Recognized units cut off the answer, canonical (latex-normalize.ts). */
  units: string[];
  node: Node;
}

/**
 * Two answers whose units conflict ("5 cm" and "5 m", "15 cm^2" and "15 cm") are different whatever their
 * numbers; a unit on one side only, or a word that is not a unit, decides nothing (docs/MATH_GRADER.md, "Units").
 */
export function unitConflict(a: string[], b: string[]): string | null {
  if (a.length === 0 || b.length === 0) return null;
  if (a.length === b.length && a.every((u, i) => u === b[i])) return null;
  return `units differ: ${a.join(", ")} vs ${b.join(", ")}`;
}

/** A small LRU of normalized and parsed answers: references recur (k samples per prompt, votes). */
class ParseCache {
  private readonly map = new Map<string, Parsed>();
  constructor(private readonly parser: AnswerParser, private readonly limit = 2000) {}
  get(raw: string): Parsed {
    let hit = this.map.get(raw);
    if (hit) {
      this.map.delete(raw);
      this.map.set(raw, hit);
      return hit;
    }
    const { norm, units } = normalizeWithUnits(raw);
    hit = { norm, units, node: norm === "" ? leaf("") : parseOrLeaf(this.parser, norm) };
    if (this.map.size >= this.limit) this.map.delete(this.map.keys().next().value as string);
    this.map.set(raw, hit);
    return hit;
  }
}

function parseOrLeaf(parser: AnswerParser, s: string): Node {
  try {
    return parser.parse(s);
  } catch (e) {
    if (e instanceof Bail) return leaf(s);
    throw e;
  }
}

export function createMathGrader(opts: MathGraderOptions = {}): FullMathGrader {
  const pool = new SymbolicPool({
    size: opts.poolSize,
    timeoutMs: opts.timeoutMs,
    memoryMb: opts.memoryMb,
    python: opts.python,
  });
  const parsed = new ParseCache(new AnswerParser());
  // answers to symbolic questions; equal questions recur (majority votes, repeated references)
  const answers = new Map<string, boolean>();
  let closed = false;

  function remember(q: SymbolicQuery, value: boolean): void {
    if (answers.size >= CACHE_LIMIT) answers.delete(answers.keys().next().value as string);
    answers.set(queryKey(q), value);
  }

  async function equivalent(gold: string, pred: string, compare: Partial<CompareOptions> = {}): Promise<EquivalenceResult> {
    const o: CompareOptions = { ...DEFAULT_COMPARE, ...compare };
    const gi = plainInteger(gold);
    const pi = gi === null ? null : plainInteger(pred);
    if (gi !== null && pi !== null) return { verdict: gi === pi ? "correct" : "incorrect", path: "fast" };
    const { norm: g, node: gn, units: gu } = parsed.get(gold);
    const { norm: p, node: pn, units: pu } = parsed.get(pred);
    if (g === "") return { verdict: "error", reason: "empty reference", path: "fast" };
    if (p === "") return { verdict: "incorrect", reason: "empty answer", path: "fast" };
    const units = unitConflict(gu, pu);
    if (units) return { verdict: "incorrect", reason: units, path: "fast" };
    let path: "fast" | "symbolic" = "fast";
    for (let round = 0; round < MAX_ROUNDS; round++) {
      const cmp = new Comparison(o, answers);
      const t = cmp.run(gn, pn);
      if (t !== "U") return { verdict: t === "T" ? "correct" : "incorrect", path };
      if (opts.fastPathOnly) return { verdict: "incorrect", reason: "undecided without the symbolic path", path };
      if (closed) return { verdict: "error", reason: "grader closed", path };
      path = "symbolic";
      const queries = [...cmp.pending.values()];
      const r = await pool.ask(queries);
      if (r.kind !== "ok") return { verdict: r.kind, reason: r.reason, path };
      queries.forEach((q, i) => remember(q, r.results[i]!));
    }
    return { verdict: "error", reason: "comparison did not settle", path };
  }

  async function gradeWith(
    completion: string,
    reference: string,
    o: { extract?: ExtractOptions; referenceAsCompletion?: boolean; compare?: Partial<CompareOptions> },
  ): Promise<MathVerdict & { path?: "fast" | "symbolic" }> {
    if (typeof completion !== "string") return { verdict: "error", extracted: null, reason: "completion is not a string" };
    if (typeof reference !== "string") return { verdict: "error", extracted: null, reason: "reference is not a string" };
    const ref = o.referenceAsCompletion ? findAnswer(reference, { ...o.extract, promptOpensThink: false }) : findReference(reference);
    if (!ref || normalizeAnswer(ref.text) === "") return { verdict: "error", extracted: null, reason: "empty reference" };
    const ex = o.extract ?? {};
    if (ex.afterThink ?? true) {
      const region = answerRegion(completion, ex);
      if (region.text === null) return { verdict: "no_answer", extracted: null, reason: region.reason };
    }
    const ans = findAnswer(completion, ex);
    if (!ans) return { verdict: "no_answer", extracted: null, reason: "no final answer found" };
    if (ans.text.length > MAX_ANSWER) return { verdict: "no_answer", extracted: null, reason: "answer too long" };
    const r = await equivalent(ref.text, ans.text, o.compare);
    if (r.verdict === "incorrect" && r.reason === "empty answer") {
      return { verdict: "no_answer", extracted: ans.text, reason: "empty answer" };
    }
    return { verdict: r.verdict, extracted: ans.text, ...(r.reason ? { reason: r.reason } : {}), path: r.path };
  }

  return {
    pool,
    equivalent,
    gradeWith,
    async grade(completion: string, reference: string, context: GradeContext = {}): Promise<MathVerdict> {
      const { path: _path, ...v } = await gradeWith(completion, reference, { extract: { promptOpensThink: context.promptOpensThink ?? false } });
      return v;
    },
    async close(): Promise<void> {
      closed = true;
      await pool.close();
    },
  };
}
