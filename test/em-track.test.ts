// The pieces of the comparable EM figures (src/synthesis/em-track.ts) on constructed inputs: the importance
// bound's log-mean-exp (a malformed sample weighs 0, not "skipped") and the content span of x's tokens.
import { describe, expect, it } from "vitest";
import { contentSpan, logMeanExp } from "../src/synthesis/em-track.js";

describe("EM tracking pieces", () => {
  it("logMeanExp averages over every sample, a malformed one counting as weight 0; all malformed → null", () => {
    expect(logMeanExp([Math.log(2), Math.log(4)])).toBeCloseTo(Math.log(3), 12);
    expect(logMeanExp([Math.log(2), null])).toBeCloseTo(Math.log(1), 12);
    expect(logMeanExp([-1000, -1001])).toBeCloseTo(-1000 + Math.log((1 + Math.exp(-1)) / 2), 9); // no underflow
    expect(logMeanExp([null, null])).toBeNull();
  });

  it("contentSpan strips the open marker's prefix and the close marker's suffix, nothing else", () => {
    expect(contentSpan([1, 2, 3, 7, 8, 9, 4, 5], [1, 2, 3], [4, 5])).toEqual([3, 6]);
    // a boundary token merged with x does not match the marker: it counts as content
    expect(contentSpan([1, 2, 30, 8, 4, 5], [1, 2, 3], [4, 5])).toEqual([2, 4]);
    expect(contentSpan([1, 2, 3, 4, 5], [1, 2, 3], [4, 5])).toEqual([3, 3]);
  });
});
