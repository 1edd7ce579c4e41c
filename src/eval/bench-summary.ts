// One benchmark's eval summary: avg@k, unbiased pass@k and maj@k, each with a percentile-bootstrap CI
// over problems, and the counts that qualify them (grader timeouts, truncated samples).
import { majorityVote, type Equivalence } from "../verify/math/vote.js";
import type { Benchmark } from "./benchmarks.js";
import { bootstrapMeanCI, type Estimate, mean, passAtKEstimate, reportedKs } from "./stats.js";

export interface BenchSummary {
  benchmark: string;
  problems: number;
  samples: number;
  k: number;
  /** avg@k: mean over problems of the fraction of correct samples (= unbiased pass@1). */
  avg: Estimate;
  pass_at: ({ k: number } & Estimate)[];
  /** maj@k: the majority answer (equivalence-clustered) is correct; null for code benchmarks. */
  maj: Estimate | null;
  /** Samples by verdict (timeouts and errors are counted as not correct, and shown here). */
  verdicts: Record<string, number>;
  truncated: number;
  mean_response_tokens: number;
  skipped: number;
}

interface Rec {
  problem_id: string;
  sample_idx: number;
  correct: boolean;
  extracted?: string | null;
  verdict: string;
  finish_reason?: string | null;
  response_tokens?: number | null;
}

/** Every problem must have exactly k samples: a gap is an error, never a 0 (rerun to finish the eval). */
export async function summarizeBenchmark(records: Rec[], bench: Benchmark, k: number, seed: number, eq: Equivalence): Promise<BenchSummary> {
  const byProblem = new Map(bench.problems.map((p) => [p.id, [] as Rec[]]));
  for (const r of records) byProblem.get(r.problem_id)?.push(r);
  const short = [...byProblem].filter(([, rs]) => rs.length !== k);
  if (short.length) {
    throw new Error(`${bench.name}: ${short.length} problem(s) lack samples (${short.slice(0, 5).map(([id, rs]) => `${id}: ${rs.length}/${k}`).join(", ")}); rerun the same command to finish`);
  }
  const groups = [...byProblem.values()].map((rs) => rs.sort((a, b) => a.sample_idx - b.sample_idx));
  const scores = groups.map((rs) => mean(rs.map((r) => (r.correct ? 1 : 0))));
  const counts = groups.map((rs) => ({ n: k, c: rs.filter((r) => r.correct).length }));
  const isMath = bench.problems.every((p) => p.kind === "math");
  const all = groups.flat();
  const verdicts: Record<string, number> = {};
  for (const r of all) verdicts[r.verdict] = (verdicts[r.verdict] ?? 0) + 1;
  return {
    benchmark: bench.name,
    problems: groups.length,
    samples: all.length,
    k,
    avg: { value: mean(scores), ci: bootstrapMeanCI(scores, seed) },
    pass_at: reportedKs(k).map((kk) => ({ k: kk, ...passAtKEstimate(counts, kk, seed) })),
    maj: isMath ? await majAtK(groups, seed, eq) : null,
    verdicts,
    truncated: all.filter((r) => r.finish_reason === "length").length,
    mean_response_tokens: mean(all.map((r) => r.response_tokens ?? 0)),
    skipped: bench.skipped.length,
  };
}

async function majAtK(groups: Rec[][], seed: number, eq: Equivalence): Promise<Estimate> {
  const hits: number[] = [];
  for (const rs of groups) {
    const vote = await majorityVote(rs.map((r) => r.extracted), eq);
    const top = vote.clusters[0];
    hits.push(top && rs[top.members[0]!]!.correct ? 1 : 0);
  }
  return { value: mean(hits), ci: bootstrapMeanCI(hits, seed) };
}

const pct = (e: Estimate) => `${(100 * e.value).toFixed(1)} [${(100 * e.ci.lo).toFixed(1)}, ${(100 * e.ci.hi).toFixed(1)}]`;

export function summaryMarkdown(label: string, summaries: BenchSummary[], o?: { temperature: number; topP: number; maxTokens: number; seed: number }): string {
  const ks = [...new Set(summaries.flatMap((s) => s.pass_at.map((p) => p.k)))].sort((a, b) => a - b);
  const head = ["benchmark", "problems × k", "avg@k", ...ks.map((k) => `pass@${k}`), "maj@k", "truncated", "grader timeout/error", "mean tokens"];
  const rows = summaries.map((s) => [
    s.benchmark, `${s.problems} × ${s.k}${s.skipped ? ` (${s.skipped} skipped)` : ""}`, pct(s.avg),
    ...ks.map((k) => { const p = s.pass_at.find((x) => x.k === k); return p ? pct(p) : ""; }),
    s.maj ? pct(s.maj) : "n/a", String(s.truncated), `${s.verdicts.timeout ?? 0}/${s.verdicts.error ?? 0}`, s.mean_response_tokens.toFixed(0),
  ]);
  return [
    `# eval: ${label}`,
    "",
    o ? `sampling: T=${o.temperature}, top-p=${o.topP}, max tokens ${o.maxTokens}, seed ${o.seed}. ` : "",
    "Percentages with 95% percentile-bootstrap CIs over problems; pass@k is the unbiased estimator; grader timeouts and errors count as not correct.",
    "",
    `| ${head.join(" | ")} |`,
    `| ${head.map(() => "---").join(" | ")} |`,
    ...rows.map((r) => `| ${r.join(" | ")} |`),
    "",
  ].join("\n");
}
