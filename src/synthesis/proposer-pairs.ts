// What the proposer (the prompt model p) learns from after a self-play iteration: per concept set, a problem
// the policy can learn from (pass rate inside the learnable band, the same band as self-play pairs) is
// preferred over one it cannot — solved every time, never solved while the teacher's answers disagree, or one
// that never reached the policy (malformed, filtered, duplicate, contaminated). Pure functions: the pipeline
// (proposer-stages.ts) builds candidates from the journal and journals the pairs.
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { type AdvantageKind, groupAdvantages } from "../train/grpo.js";

/** What became of one generation unit of the prompt model. */
export type CandidateOutcome = "kept" | "malformed" | "filtered" | "duplicate" | "contaminated" | "low_agreement";

export interface ProposerCandidate {
  /** The generation unit id (itNNN/proposer/generate/set-SSS/JJJ). */
  id: string;
  /** Concept-set index within the iteration: pairs never mix sets. */
  set: number;
  /** What p wrote, exactly (DPO trains on p's own text). */
  text: string;
  /** The parsed problem, when p's text parsed: what the repetition penalty compares (not the markers). */
  problem?: string;
  outcome: CandidateOutcome;
  /** Parse reason, failed filter, duplicate-of, contamination detail. */
  detail?: string;
  problem_id?: string;
  /** Share of the teacher's samples in the voted answer's class; absent when never voted. */
  agreement?: number;
  /** The policy's pass rate over countable samples; absent when never rolled out or nothing was countable. */
  pass_rate?: number;
}

export type RejectReason = "solved_always" | "unsolved_low_agreement" | "malformed" | "filtered" | "duplicate" | "contaminated";

export interface ProposerPair {
  id: string;
  set: number;
  chosen: string;
  rejected: string;
  reason: RejectReason;
  chosen_pass_rate: number;
}

export interface BandOptions {
  min_pass_rate: number;
  max_pass_rate: number;
  /** Never-solved problems are rejected only below this teacher agreement. */
  low_agreement: number;
  max_pairs_per_set: number;
}

export type ProposerPairBuilder = (candidates: ProposerCandidate[], o: BandOptions) => ProposerPair[];

export const inBand = (p: number, o: Pick<BandOptions, "min_pass_rate" | "max_pass_rate">): boolean => p > o.min_pass_rate && p <= o.max_pass_rate;

/** A kept problem the policy rolled out whose pass rate lies in the band. */
export const isLearnable = (c: ProposerCandidate, o: BandOptions): boolean => c.outcome === "kept" && c.pass_rate !== undefined && inBand(c.pass_rate, o);

/** Why a candidate is a rejected one, or undefined when it is not (learnable, or hard but sound, or unknown). */
export function rejectReason(c: ProposerCandidate, o: BandOptions): RejectReason | undefined {
  if (c.outcome === "low_agreement") return (c.agreement ?? 0) < o.low_agreement ? "unsolved_low_agreement" : undefined;
  if (c.outcome !== "kept") return c.outcome;
  if (c.pass_rate === undefined) return undefined;
  if (c.pass_rate === 1) return "solved_always";
  if (c.pass_rate === 0 && (c.agreement ?? 0) < o.low_agreement) return "unsolved_low_agreement";
  return undefined;
}

/** Rejected categories in the order pairs are made: one rejected problem of each, as far as max_pairs_per_set goes. */
const CATEGORIES: RejectReason[][] = [["solved_always"], ["unsolved_low_agreement"], ["malformed", "filtered", "duplicate", "contaminated"]];

/**
 * The band rule: per concept set, chosen = learnable problems, closest to a 1/2 pass rate first (ties by id);
 * one rejected of each category (first in unit order), each paired with the next chosen in turn. A rejected
 * text equal to its chosen text (a duplicate of it) is skipped: the pair would carry no preference.
 */
export const bandPairs: ProposerPairBuilder = (candidates, o) => {
  const pairs: ProposerPair[] = [];
  for (const [set, cands] of bySet(candidates)) {
    const chosen = cands.filter((c) => isLearnable(c, o)).sort((a, b) => Math.abs(a.pass_rate! - 0.5) - Math.abs(b.pass_rate! - 0.5) || a.id.localeCompare(b.id));
    if (chosen.length === 0) continue;
    let made = 0;
    for (const category of CATEGORIES) {
      if (made >= o.max_pairs_per_set) break;
      const c = chosen[made % chosen.length]!;
      const r = cands.find((x) => x.text !== c.text && category.includes(rejectReason(x, o)!));
      if (!r) continue;
      pairs.push({ id: `set-${String(set).padStart(3, "0")}-${made++}`, set, chosen: c.id, rejected: r.id, reason: rejectReason(r, o)!, chosen_pass_rate: c.pass_rate! });
    }
  }
  return pairs;
};

function bySet(candidates: ProposerCandidate[]): Map<number, ProposerCandidate[]> {
  const out = new Map<number, ProposerCandidate[]>();
  for (const c of [...candidates].sort((a, b) => a.id.localeCompare(b.id))) out.set(c.set, [...(out.get(c.set) ?? []), c]);
  return new Map([...out].sort((a, b) => a[0] - b[0]));
}

export interface Yield {
  learnable: number;
  total: number;
  rate: number;
  /** Wilson score 95% interval. */
  ci: { lo: number; hi: number };
}

/** Learnable yield: the share of the iteration's generated problems (every generation unit) inside the band. */
export function learnableYield(candidates: ProposerCandidate[], o: BandOptions): Yield {
  const learnable = candidates.filter((c) => isLearnable(c, o)).length;
  return { learnable, total: candidates.length, rate: candidates.length ? learnable / candidates.length : NaN, ci: wilson(learnable, candidates.length) };
}

/** Wilson score interval for k successes in n trials (z = 1.96: 95%); NaN bounds when n = 0. */
export function wilson(k: number, n: number, z = 1.959963984540054): { lo: number; hi: number } {
  if (!Number.isInteger(k) || !Number.isInteger(n) || k < 0 || k > n) throw new Error(`wilson: need integers 0 <= k <= n (got k=${k}, n=${n})`);
  if (n === 0) return { lo: NaN, hi: NaN };
  const p = k / n;
  const z2 = z * z;
  const centre = (p + z2 / (2 * n)) / (1 + z2 / n);
  const half = (z / (1 + z2 / n)) * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n));
  return { lo: Math.max(0, centre - half), hi: Math.min(1, centre + half) };
}

/**
 * R-Zero's proposer reward for a GRPO-trained proposer: min(p, 1 − p) (highest at a 1/2 pass rate) minus a
 * repetition penalty. `penalty` comes from repetitionPenalties over the same batch.
 */
export function rzeroReward(passRate: number, penalty: number): number {
  if (!(passRate >= 0 && passRate <= 1)) throw new Error(`rzeroReward: pass rate must be in [0, 1] (got ${passRate})`);
  return Math.min(passRate, 1 - passRate) - penalty;
}

const words = (s: string): Set<string> => new Set(s.toLowerCase().match(/[a-z0-9]+/g) ?? []);

function jaccard(a: Set<string>, b: Set<string>): number {
  if (a.size === 0 && b.size === 0) return 1;
  let inter = 0;
  for (const w of a) if (b.has(w)) inter++;
  return inter / (a.size + b.size - inter);
}

/** Per problem: weight × the share of the batch's other problems within `similarity` word Jaccard of it. */
export function repetitionPenalties(texts: string[], o: { repetition_weight: number; similarity: number }): number[] {
  const sets = texts.map(words);
  return sets.map((s, i) => {
    if (texts.length < 2) return 0;
    const near = sets.filter((t, j) => j !== i && jaccard(s, t) >= o.similarity).length;
    return (o.repetition_weight * near) / (texts.length - 1);
  });
}

export interface ProposerGrpoSample {
  /** The generation unit (what p wrote is trained on, as in the DPO proposer). */
  id: string;
  pass_rate: number | null;
  penalty: number;
  reward: number;
  advantage: number;
}

export interface ProposerGrpoGroup {
  /** Concept-set index: the samples p wrote from one prompt. */
  set: number;
  samples: ProposerGrpoSample[];
}

/**
 * R-Zero's proposer rewards and GRPO advantages over one iteration's generation units. The repetition
 * penalty's batch is every unit of the iteration; a unit with no pass rate (malformed, filtered, duplicate,
 * contaminated, dropped by the vote, nothing countable) scores 0 before the penalty, as R-Zero scores a
 * question that fails its format check. Advantages are normalised within a concept set (one prompt of p);
 * a set whose rewards are all equal has no signal and is dropped (counted).
 */
export function proposerGroups(
  cands: readonly ProposerCandidate[],
  o: { repetition_weight: number; similarity: number },
  kind: AdvantageKind,
): { groups: ProposerGrpoGroup[]; dropped: number } {
  const penalties = repetitionPenalties(cands.map((c) => c.problem ?? c.text), o);
  const bySet = new Map<number, ProposerGrpoSample[]>();
  cands.forEach((c, i) => {
    const rate = c.pass_rate ?? null;
    const reward = rate === null ? 0 - penalties[i]! : rzeroReward(rate, penalties[i]!);
    const list = bySet.get(c.set) ?? [];
    list.push({ id: c.id, pass_rate: rate, penalty: penalties[i]!, reward, advantage: 0 });
    bySet.set(c.set, list);
  });
  const groups: ProposerGrpoGroup[] = [];
  let dropped = 0;
  for (const [set, samples] of [...bySet].sort((a, b) => a[0] - b[0])) {
    if (samples.every((x) => x.reward === samples[0]!.reward)) {
      dropped++;
      continue;
    }
    const adv = groupAdvantages(samples.map((x) => x.reward), kind);
    groups.push({ set, samples: samples.map((x, i) => ({ ...x, advantage: adv[i]! })) });
  }
  return { groups, dropped };
}

export const PROPOSER_PAIR_BUILDERS: Record<string, ProposerPairBuilder> = { band: bandPairs };

/** A builtin name ("band") or "file.ts#export" (relative to the experiment file), as pairs.builder. */
export async function proposerPairBuilder(name: string, baseDir: string): Promise<ProposerPairBuilder> {
  const hash = name.indexOf("#");
  if (hash < 0) {
    const b = PROPOSER_PAIR_BUILDERS[name];
    if (!b) throw new Error(`proposer.pairs.builder: unknown builder '${name}' (known: ${Object.keys(PROPOSER_PAIR_BUILDERS).join(", ")}, or "file.ts#export")`);
    return b;
  }
  const file = resolve(baseDir, name.slice(0, hash));
  const fn = ((await import(pathToFileURL(file).href)) as Record<string, unknown>)[name.slice(hash + 1)];
  if (typeof fn !== "function") throw new Error(`proposer.pairs.builder '${name}': ${file} has no exported function '${name.slice(hash + 1)}'`);
  return fn as ProposerPairBuilder;
}
