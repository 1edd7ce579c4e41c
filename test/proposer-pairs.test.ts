// The proposer's pair rule, learnable yield and R-Zero reward on constructed pass rates.
import { describe, expect, it } from "vitest";
import {
  bandPairs, learnableYield, proposerGroups, proposerPairBuilder, rejectReason, repetitionPenalties, rzeroReward, wilson,
  type BandOptions, type ProposerCandidate,
} from "../src/synthesis/proposer-pairs.js";
import { proposerBatches, proposerGrpoExamples } from "../src/synthesis/proposer-stages.js";

const O: BandOptions = { min_pass_rate: 0, max_pass_rate: 0.5, low_agreement: 0.75, max_pairs_per_set: 3 };
let n = 0;
const cand = (set: number, c: Partial<ProposerCandidate>): ProposerCandidate => ({
  id: `it001/proposer/generate/set-${String(set).padStart(3, "0")}/${String(n++).padStart(3, "0")}`,
  set, text: `problem ${n}`, outcome: "kept", agreement: 1, ...c,
});

describe("proposer band rule", () => {
  it("chooses an in-band problem and rejects one of each kind, recording the reason", () => {
    n = 0;
    const learnable = cand(0, { pass_rate: 0.25 });
    const easy = cand(0, { pass_rate: 1 });
    const unsolvedShaky = cand(0, { pass_rate: 0, agreement: 0.5 });
    const malformed = cand(0, { outcome: "malformed", detail: "truncated" });
    const pairs = bandPairs([malformed, unsolvedShaky, easy, learnable], O);
    expect(pairs.map((p) => [p.chosen, p.rejected, p.reason])).toEqual([
      [learnable.id, easy.id, "solved_always"],
      [learnable.id, unsolvedShaky.id, "unsolved_low_agreement"],
      [learnable.id, malformed.id, "malformed"],
    ]);
    expect(pairs.every((p) => p.chosen_pass_rate === 0.25)).toBe(true);
  });

  it("band edges: 1/2 is inside, 0 and 0.75 are not; never-solved with sound references is not rejected", () => {
    n = 0;
    const half = cand(0, { pass_rate: 0.5 });
    const zeroSound = cand(0, { pass_rate: 0, agreement: 1 });
    const high = cand(0, { pass_rate: 0.75 });
    expect(bandPairs([half, zeroSound, high], O)).toEqual([]); // nothing to reject: 0.75 is neither band nor always solved
    expect(bandPairs([zeroSound, cand(0, { pass_rate: 1 })], O)).toEqual([]); // no chosen
    expect(rejectReason(zeroSound, O)).toBeUndefined();
    expect(rejectReason(cand(0, { outcome: "low_agreement", agreement: 0.25 }), O)).toBe("unsolved_low_agreement");
    expect(rejectReason(cand(0, { outcome: "duplicate" }), O)).toBe("duplicate");
  });

  it("pairs stay within a concept set, prefer the chosen nearest 1/2, rotate chosen, cap per set", () => {
    n = 0;
    const a = cand(1, { pass_rate: 0.125 });
    const b = cand(1, { pass_rate: 0.5 });
    const other = cand(2, { pass_rate: 1 }); // set 2 has no chosen
    const easy = cand(1, { pass_rate: 1 });
    const dup = cand(1, { outcome: "contaminated" });
    const pairs = bandPairs([a, b, other, easy, dup], { ...O, max_pairs_per_set: 2 });
    expect(pairs.map((p) => [p.set, p.chosen, p.rejected, p.reason])).toEqual([
      [1, b.id, easy.id, "solved_always"],
      [1, a.id, dup.id, "contaminated"],
    ]);
  });

  it("a rejected duplicate with the chosen's own text is skipped", () => {
    n = 0;
    const c = cand(0, { pass_rate: 0.25, text: "same" });
    const d = cand(0, { outcome: "duplicate", text: "same" });
    expect(bandPairs([c, d], O)).toEqual([]);
  });
});

describe("learnable yield", () => {
  it("counts kept in-band problems over every generated one, with a Wilson CI", () => {
    n = 0;
    const cs = [cand(0, { pass_rate: 0.25 }), cand(0, { pass_rate: 1 }), cand(0, { outcome: "malformed" }), cand(1, { pass_rate: 0.5 })];
    const y = learnableYield(cs, O);
    expect([y.learnable, y.total, y.rate]).toEqual([2, 4, 0.5]);
    expect(y.ci.lo).toBeCloseTo(0.15004, 4); // Wilson, k = 2, n = 4
    expect(y.ci.hi).toBeCloseTo(0.84996, 4);
  });

  it("Wilson interval: closed forms and bad input", () => {
    const w = wilson(0, 10);
    expect(w.lo).toBe(0);
    expect(w.hi).toBeCloseTo(0.27753, 4);
    expect(Number.isNaN(wilson(0, 0).lo)).toBe(true);
    expect(() => wilson(3, 2)).toThrow(/0 <= k <= n/);
  });
});

describe("R-Zero proposer reward", () => {
  it("is min(p, 1 - p) minus the repetition penalty", () => {
    expect(rzeroReward(0.5, 0)).toBe(0.5);
    expect(rzeroReward(0.25, 0.1)).toBeCloseTo(0.15);
    expect(rzeroReward(1, 0)).toBe(0);
    expect(() => rzeroReward(1.5, 0)).toThrow(/pass rate/);
  });

  it("penalises a problem by the share of near-copies in its batch", () => {
    const p = repetitionPenalties(["add two and three", "add two and three now", "a completely different question here"], { repetition_weight: 1, similarity: 0.5 });
    expect(p).toEqual([0.5, 0.5, 0]);
  });
});

describe("GRPO proposer: reward → advantage → batch", () => {
  const R = { repetition_weight: 1, similarity: 0.5 };
  const g = (set: number, j: number, c: Partial<ProposerCandidate>): ProposerCandidate => ({
    id: `it001/proposer/generate/set-00${set}/00${j}`, set, text: `<!-- markers --> raw ${set} ${j}`, outcome: "kept", ...c,
  });

  it("rewards min(p, 1 − p) − repetition (0 without a pass rate) and normalises advantages within a concept set", () => {
    const cands = [
      g(0, 0, { problem: "What is 12 + 30?", pass_rate: 0.5 }),
      g(0, 1, { problem: "Find the area of a square with side 7.", pass_rate: 1 }),
      g(0, 2, { outcome: "malformed", detail: "truncated" }), // no pass rate: reward 0
      g(1, 0, { problem: "How many primes are below 20?", pass_rate: 0.25 }),
      g(1, 1, { problem: "How many primes are below 20 today?", outcome: "duplicate" }), // a near copy of 1/0: both penalised
      g(2, 0, { problem: "Solve 2x = 8.", pass_rate: 1 }),
      g(2, 1, { problem: "Compute 9 * 9.", pass_rate: 0 }), // all rewards equal: no signal, dropped
    ];
    const { groups, dropped } = proposerGroups(cands, R, "mean_std");
    expect(dropped).toBe(1);
    expect(groups.map((x) => x.set)).toEqual([0, 1]);
    const [s0, s1] = groups;
    expect(s0!.samples.map((x) => x.reward)).toEqual([0.5, 0, 0]);
    expect(s0!.samples.map((x) => x.pass_rate)).toEqual([0.5, 1, null]);
    // mean 1/6, sample std sqrt(1/12): (r − mean) / std
    const std = Math.sqrt(((0.5 - 1 / 6) ** 2 + 2 * (1 / 6) ** 2) / 2);
    s0!.samples.forEach((x, i) => expect(x.advantage).toBeCloseTo(([0.5, 0, 0][i]! - 1 / 6) / std, 5));
    const pen = 1 / 6; // one near copy among the other six of the batch
    expect(s1!.samples.map((x) => x.penalty)).toEqual([pen, pen]);
    expect(s1!.samples.map((x) => x.reward)).toEqual([0.25 - pen, -pen]);
    expect(s1!.samples[0]!.advantage).toBeGreaterThan(0);
    expect(s1!.samples[0]!.advantage + s1!.samples[1]!.advantage).toBeCloseTo(0, 12);
    // the markers around p's raw text are not what the penalty compares
    expect(s0!.samples.every((x) => x.penalty === 0)).toBe(true);
    expect(proposerGroups(cands, R, "mean").groups[0]!.samples.map((x) => x.advantage)).toEqual([0.5 - 1 / 6, -1 / 6, -1 / 6]);
  });

  it("builds one GRPO example per sample with its advantage and old log-probs, and seeded epoch batches", () => {
    const { groups } = proposerGroups([g(0, 0, { problem: "a b c", pass_rate: 0.5 }), g(0, 1, { problem: "x y z", pass_rate: 1 })], R, "mean");
    const tok = new Map(groups[0]!.samples.map((x, i) => [x.id, { prompt: [1, 2], completion: i === 0 ? [3, 4, 5] : [6] }]));
    const old = () => Object.fromEntries(groups[0]!.samples.map((x, i) => [x.id, i === 0 ? [-1, -2, -3] : [-4]]));
    const ex = proposerGrpoExamples(groups, tok, old, false);
    expect(ex.map((e) => [e.completionTokenIds, e.advantage, e.oldLogprobs, e.refLogprobs])).toEqual([
      [[3, 4, 5], 0.25, [-1, -2, -3], []],
      [[6], -0.25, [-4], []],
    ]);
    expect(proposerGrpoExamples(groups, tok, old, true)[0]!.refLogprobs).toEqual([-1, -2, -3]);
    expect(() => proposerGrpoExamples(groups, tok, () => ({}), false)).toThrow(/no old log-probs for 3 tokens/);
    const batches = proposerBatches([1, 2, 3], { epochs: 2, batch_size: 4 }, 7, 1);
    expect(batches.map((b) => b.length)).toEqual([4, 2]);
    expect(batches.flat().sort()).toEqual([1, 1, 2, 2, 3, 3]);
    expect(proposerBatches([1, 2, 3], { epochs: 2, batch_size: 4 }, 7, 1)).toEqual(batches);
  });
});

describe("builder by name", () => {
  it("finds the builtin and refuses an unknown name with the known ones", async () => {
    expect(await proposerPairBuilder("band", ".")).toBe(bandPairs);
    await expect(proposerPairBuilder("nope", ".")).rejects.toThrow(/known: band/);
  });
});
