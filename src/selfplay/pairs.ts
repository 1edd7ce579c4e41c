import { resolve } from "node:path";
import { pathToFileURL } from "node:url";

// Chosen/rejected pairs the PromptCoT 2.0 way: keep prompts whose pass rate is in (min, max];
// chosen = passing samples, rejected = failing ones, each de-duplicated by text;
// n = min(#chosen, #rejected) pairs per prompt, matched in sample order (deterministic).

export interface GradedSample {
  id: string;
  text: string;
  passed: boolean;
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
