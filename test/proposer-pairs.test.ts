// The proposer's pair rule, learnable yield and R-Zero reward on constructed pass rates.
import { describe, expect, it } from "vitest";
import {
  bandPairs, learnableYield, proposerPairBuilder, rejectReason, repetitionPenalties, rzeroReward, wilson,
  type BandOptions, type ProposerCandidate,
} from "../src/synthesis/proposer-pairs.js";

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

describe("builder by name", () => {
  it("finds the builtin and refuses an unknown name with the known ones", async () => {
    expect(await proposerPairBuilder("band", ".")).toBe(bandPairs);
    await expect(proposerPairBuilder("nope", ".")).rejects.toThrow(/known: band/);
  });
});
