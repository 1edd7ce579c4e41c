import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import type { CodeVerdictKind, MathVerdictKind } from "../verify/types.js";
import { countInvalid, emptyValidityCounts, type InvalidReason, type ValidityCounts } from "./validity.js";

// Chosen/rejected pairs the PromptCoT 2.0 way: keep prompts whose pass rate is in (min, max];
// chosen = passing samples, rejected = failing ones, each de-duplicated by text;
// n = min(#chosen, #rejected) pairs per prompt, matched in sample order (deterministic).
// Samples the grader could not judge (timeout, error) and samples cut at max_tokens are set aside before
// any builder sees the groups (countableGroups): they are neither chosen, nor rejected, nor counted.
// Invalid completions (validity.ts) are never chosen: with pairs.validity.invalid "drop" (PromptCoT 2.0)
// they leave the pool and the pass rate; with "reject" they stay as failed samples, so a correct but
// unboxed answer can teach the format as a rejected one.

export interface GradedSample {
  id: string;
  text: string;
  passed: boolean;
}

/** One rollout sample with its grader verdict, before the samples that cannot be counted are set aside. */
export interface SampleOutcome {
  id: string;
  promptId: string;
  text: string;
  verdict: MathVerdictKind;
  finishReason: string;
  /** Why the completion is not valid (validity.ts); absent or empty when it is. */
  invalid?: InvalidReason[];
  /** The problem's kind (absent: math) and, for code, the sandbox's verdict behind `verdict`. */
  kind?: "math" | "code";
  codeVerdict?: CodeVerdictKind;
}

/** Samples set aside per iteration; none of them is chosen, rejected, or counted in a pass rate. */
export interface ExcludedCounts {
  /** The grader ran out of time (sympy was slow): says nothing about the answer. */
  timeout: number;
  /** The grader failed (crash, memory limit, bad reference): says nothing about the answer. */
  error: number;
  /** Cut at max_tokens: its grade measures the token budget, not the answer (counted even when also timeout/error). */
  truncated: number;
  /** Samples excluded for any of the reasons above. */
  excluded: number;
}

const GRADER_FAILURE = new Set<MathVerdictKind>(["timeout", "error"]);

/**
 * Prompt groups of the samples that can be counted: graded to a verdict about the answer, and not cut at
 * max_tokens. A timeout would otherwise push down a right answer sympy was slow on; a truncated sample
 * would be rejected for its length or chosen for a box in unfinished reasoning. Builders see only these.
 */
export function countableGroups(
  outcomes: SampleOutcome[],
  invalidAs: "drop" | "reject" = "drop",
): { groups: PromptGroup[]; excluded: ExcludedCounts; validity: ValidityCounts } {
  const excluded: ExcludedCounts = { timeout: 0, error: 0, truncated: 0, excluded: 0 };
  const validity = emptyValidityCounts();
  const groups = new Map<string, PromptGroup>();
  for (const o of outcomes) {
    const g = groups.get(o.promptId) ?? { promptId: o.promptId, samples: [] };
    groups.set(o.promptId, g);
    const failed = GRADER_FAILURE.has(o.verdict);
    const truncated = o.finishReason === "length";
    if (o.verdict === "timeout") excluded.timeout++;
    if (o.verdict === "error") excluded.error++;
    if (truncated) excluded.truncated++;
    if (failed || truncated) {
      excluded.excluded++;
      continue;
    }
    const invalid = o.invalid ?? [];
    countInvalid(validity, invalid);
    if (invalid.length > 0 && invalidAs === "drop") continue;
    // text stays a read-through (it may live in a shard): a stage's texts are never all in memory at once
    g.samples.push(Object.defineProperty({ id: o.id, passed: o.verdict === "correct" && invalid.length === 0 }, "text", { enumerable: true, get: () => o.text }) as GradedSample);
  }
  return { groups: [...groups.values()], excluded, validity };
}

export interface PromptGroup {
  promptId: string;
  samples: GradedSample[];
}

export interface Pair {
  id: string;
  prompt_id: string;
  chosen: string; // sample unit id
  rejected: string; // sample unit id
}

export interface PairOptions {
  min_pass_rate: number;
  max_pass_rate: number;
  max_pairs_per_prompt?: number | undefined;
}

export type PairBuilder = (groups: PromptGroup[], opts: PairOptions) => Pair[];

function dedupByText(samples: GradedSample[]): GradedSample[] {
  const seen = new Set<string>();
  return samples.filter((s) => (seen.has(s.text) ? false : (seen.add(s.text), true)));
}

export const passRatePairs: PairBuilder = (groups, opts) => {
  const pairs: Pair[] = [];
  for (const g of groups) {
    if (g.samples.length === 0) continue;
    const rate = g.samples.filter((s) => s.passed).length / g.samples.length;
    if (!(rate > opts.min_pass_rate && rate <= opts.max_pass_rate)) continue;
    const chosen = dedupByText(g.samples.filter((s) => s.passed));
    const rejected = dedupByText(g.samples.filter((s) => !s.passed));
    let n = Math.min(chosen.length, rejected.length);
    if (opts.max_pairs_per_prompt !== undefined) n = Math.min(n, opts.max_pairs_per_prompt);
    for (let i = 0; i < n; i++) {
      pairs.push({ id: `${g.promptId}-${i}`, prompt_id: g.promptId, chosen: chosen[i]!.id, rejected: rejected[i]!.id });
    }
  }
  return pairs;
};

/** Extension point: pair builders by the name in config (pairs.builder). */
export const PAIR_BUILDERS: Record<string, PairBuilder> = { passrate: passRatePairs };

/**
 * A builtin name ("passrate"), or "path/to/module.ts#exportName" (relative to the experiment file) for a
 * plain function of the PairBuilder type written by the user.
 */
export async function pairBuilder(name: string, baseDir: string): Promise<PairBuilder> {
  const hash = name.indexOf("#");
  if (hash < 0) {
    const b = PAIR_BUILDERS[name];
    if (!b) throw new Error(`unknown pair builder '${name}' (known: ${Object.keys(PAIR_BUILDERS).join(", ")}, or "file.ts#export")`);
    return b;
  }
  const file = resolve(baseDir, name.slice(0, hash));
  const mod = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
  const fn = mod[name.slice(hash + 1)];
  if (typeof fn !== "function") throw new Error(`pairs.builder '${name}': ${file} has no exported function '${name.slice(hash + 1)}'`);
  return fn as PairBuilder;
}
