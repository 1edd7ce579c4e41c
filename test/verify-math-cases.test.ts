// This project's grader cases (test/fixtures/math/grader-cases.jsonl), run the way math-verify runs its own:
// every case must agree. math-verify's own suite, which may not be copied into this repository, is checked by
// test-shared/math-verify-suite.test.ts (see test-shared/README.md).
import { describe, expect, it } from "vitest";
import { readCases, runCases } from "./helpers/math-cases.js";

describe("this project's grader cases (test/fixtures/math)", () => {
  const rows = readCases(new URL("./fixtures/math/grader-cases.jsonl", import.meta.url));
  it(`agrees on all ${rows.length} cases, using both the fast and the symbolic path`, async () => {
    const { misses, paths } = await runCases(rows);
    expect(misses.map((i) => `${rows[i]!.gold} vs ${rows[i]!.pred}: ${rows[i]!.comment}`)).toEqual([]);
    expect(paths.symbolic).toBeGreaterThanOrEqual(3);
    expect(new Set(rows.map((r) => r.expected))).toEqual(new Set([true, false]));
  });
});
