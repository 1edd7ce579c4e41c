import { afterAll, describe, expect, it } from "vitest";
import { createMathGrader } from "../src/verify/math/index.js";

const grader = createMathGrader({ timeoutMs: 10_000, poolSize: 1 });
afterAll(() => grader.close());

async function verdict(answer: string, reference: string): Promise<string> {
  return (await grader.grade(`\\boxed{${answer}}`, reference)).verdict;
}

async function expectSame(pairs: [string, string][], want: "correct" | "incorrect") {
  for (const [a, r] of pairs) expect([a, r, await verdict(a, r)]).toEqual([a, r, want]);
}

describe("math equivalence", () => {
  it("numbers: leading zeros, thousands separators, trailing zeros, signs", async () => {
    await expectSame(
      [["070", "70"], ["1,000", "1000"], ["11,\\!111", "11111"], ["14{,}916", "14916"], ["2.50", "2.5"], ["1000.0", "1000"],
       ["-5", "-5"], [".4", "0.4"], ["+7", "7"]],
      "correct",
    );
    await expectSame([["32, 349", "32349"], ["-5", "5"], ["2.51", "2.5"]], "incorrect");
  });

  it("fractions, percentages, radicals, pi, powers, binomials, logs", async () => {
    await expectSame(
      [["\\dfrac{3}{4}", "3/4"], ["\\frac34", "0.75"], ["\\tfrac{6}{8}", "\\frac{3}{4}"], ["75\\%", "\\frac{3}{4}"], ["75", "75\\%"],
       ["28 \\text{ percent}", "28\\%"], ["2\\sqrt{3}", "\\sqrt{12}"], ["\\frac{\\sqrt{2}}{2}", "\\frac{1}{\\sqrt{2}}"],
       ["3\\sqrt{13}", "\\sqrt{117}"], ["\\frac94\\pi", "\\frac{9\\pi}{4}"], ["2^{10}", "1024"], ["\\binom{10}{3}", "120"],
       ["\\log_2 8", "3"], ["8^{2/3}", "4"], ["\\sqrt[3]{27}", "3"], ["5!", "120"], ["204_5", "204_{5}"]],
      "correct",
    );
    await expectSame([["2\\sqrt{3}", "3\\sqrt{2}"], ["3.14", "\\pi"], ["75", "0.75"]], "incorrect");
    await expectSame([["\\pi", "3.14"]], "correct"); // a rounded reference accepts the exact value
  });

  it("intervals, sets, tuples (ordered), matrices", async () => {
    await expectSame(
      [["[0, 1)", "[0,1)"], ["(-\\infty, -3] \\cup [2, \\infty)", "(-\\infty,-3]\\cup[2,+\\infty)"], ["[0,1) \\cup [1,2]", "[0,2]"],
       ["\\{2, 1\\}", "\\{1,2\\}"], ["1, 2", "2, 1"], ["(1, 2)", "(1,2)"], ["1 \\pm \\sqrt{19}", "1+\\sqrt{19}, 1-\\sqrt{19}"],
       ["\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}", "\\begin{bmatrix}1 & 2 \\\\ 3 & 4\\end{bmatrix}"]],
      "correct",
    );
    await expectSame(
      [["(1, 2)", "(2, 1)"], ["[0, 1]", "[0,1)"], ["\\begin{pmatrix}1&2\\\\3&5\\end{pmatrix}", "\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}"],
       ["(1, 2, 3)", "(1, 2)"]],
      "incorrect",
    );
  });

  it("x = 3 against 3, relations, text and units, degrees, currency", async () => {
    await expectSame(
      [["x = 3", "3"], ["3", "x=3"], ["(p,q)=(3,2)", "(3,2)"], ["x \\geq 5", "5 \\le x"], ["-x > -1", "x < 1"],
       ["y=-\\frac{1}{2}x+\\frac{3}{4}", "2x+4y-3=0"], ["\\text{Evelyn}", "Evelyn"], ["\\text{(C)}", "C"], ["15\\mbox{ cm}^2", "15"],
       ["125\\textnormal{ miles}", "125"], ["90^\\circ", "90"], ["\\$16,\\!386.20", "16386.2"], ["x \\in [-2, 7]", "[-2,7]"]],
      "correct",
    );
    await expectSame([["x > 5", "x < 5"], ["0", "a + 3z = 0"], ["\\text{odd}", "\\text{even}"]], "incorrect");
  });

  it("does not repeat the known false positives", async () => {
    await expectSame(
      [["\\frac{1}{2^{99}}", "\\frac{1}{2^{98}}"], ["\\frac{1}{2004!}", "\\frac{1}{2006!}"], ["0.1234567", "0.1234568"], ["0.5", "50"],
       ["50", "0.5"], ["10001", "10000"], ["3, 5, 7", "5"], ["3 \\text{ or } 5", "5"], ["0.33", "\\frac{1}{3}"], ["0.3333334", "\\frac{1}{3}"]],
      "incorrect",
    );
    expect((await grader.grade("", "")).verdict).toBe("error");
    expect((await grader.grade("\\boxed{}", "")).verdict).toBe("error");
    expect((await grader.grade("\\boxed{5}", "  ")).verdict).toBe("error");
    expect((await grader.grade("maybe 3 or 5 or 7", "5")).verdict).toBe("no_answer");
  });

  it("drops a percent sign from the reference only; a percent sign only the answer has scales it", async () => {
    // [answer, reference]
    await expectSame([["50", "50\\%"], ["0.5", "50\\%"], ["50\\%", "0.5"], ["\\frac{1}{2}", "50\\%"], ["12.5\\%", "\\frac18"]], "correct");
    await expectSame([["0.5\\%", "0.5"], ["75\\%", "75"], ["50\\%", "50"], ["5\\%", "50\\%"]], "incorrect");
  });

  it("folds fullwidth digits and signs (CJK input) to ASCII", async () => {
    await expectSame([["５０", "50"], ["50", "５０"], ["－３", "-3"], ["（１，２）", "(1, 2)"], ["１／２", "0.5"], ["３．５", "3.5"]], "correct");
    await expectSame([["５１", "50"]], "incorrect");
  });

  it("an equation in unknowns is not a number, either way round; a computation or an assignment states its value", async () => {
    await expectSame([["1", "x+z=1"], ["x+z=1", "1"], ["x - y = 2", "2"], ["z = 1 - x", "x + 2z = 1"]], "incorrect");
    await expectSame([["z = 1 - x", "x + z = 1"], ["x+z=1", "2x + 2z = 2"], ["5+5+1 = 11", "11"], ["y = 2x+1", "2x+1"], ["f(x-1) = 3", "3"]], "correct");
  });

  it("a single letter keeps its case, except a multiple-choice letter; words ignore case", async () => {
    await expectSame([["x", "X"], ["X", "x"], ["E", "e"], ["n", "N"], ["2x", "2X"], ["x^2+1", "X^2+1"], ["\\delta", "\\Delta"]], "incorrect");
    await expectSame([["2X", "2X"], ["X^2 + 2X + 1", "(X+1)^2"], ["\\Delta", "\\Delta"]], "correct");
    await expectSame([["a", "A"], ["c", "(C)"], ["(b)", "B"], ["C", "(c)"], ["Odd", "odd"], ["YES", "\\text{yes}"], ["\\text{evelyn}", "Evelyn"], ["X", "X"]], "correct");
  });

  it("accepts a decimal only as the exact value rounded or truncated to its digits", async () => {
    await expectSame(
      [["0.333333", "\\frac13"], ["0.3333333", "\\frac13"], ["0.0833333333333333", "\\frac{1}{12}"], ["4.123105625617661", "\\sqrt{17}"],
       ["\\frac{70}{9}", "7.78"], ["\\sqrt{2}", "1.41"], ["0.5", "\\frac{1}{2}"]],
      "correct",
    );
    await expectSame([["1.414214", "\\sqrt{3}"], ["7.77", "\\frac{70}{9}"]], "incorrect");
  });

  it("settles symbolic identities on the Python path", async () => {
    const v = await grader.gradeWith("\\boxed{\\sec^2(y)}", "\\tan^2(y)+1", {});
    expect(v.verdict).toBe("correct");
    expect(v.path).toBe("symbolic");
    await expectSame([["\\sin^2 x + \\cos^2 x", "1"], ["\\frac{1}{3x^{2/3}}", "\\frac{1}{3\\sqrt[3]{x}^2}"]], "correct");
    await expectSame([["f(y)", "f(x)"], ["1 + \\frac{1}{e}", "1 - \\frac{1}{e}"]], "incorrect");
  });

  it("rejects malformed input without throwing", async () => {
    expect((await grader.grade(`\\boxed{${"9".repeat(5000)}}`, "9")).verdict).toBe("no_answer");
    expect((await grader.grade(`\\boxed{${"1+".repeat(900)}1}`, "901")).verdict).toMatch(/correct|incorrect/);
    expect((await grader.grade("\\boxed{\\frac{1}{0}}", "1")).verdict).toBe("incorrect");
    expect((await grader.grade("\\boxed{)(}", "1")).verdict).toBe("incorrect");
    expect((await grader.grade(42 as unknown as string, "1")).verdict).toBe("error");
    expect((await grader.grade("\\boxed{1}", null as unknown as string)).verdict).toBe("error");
  });
});

describe("four classes a held-out check found (issue 18)", () => {
  it("units: conflicting units are different; a unit on one side only, or spelled another way, is not", async () => {
    // [answer, reference]
    await expectSame(
      [["5\\text{ m}", "5\\text{ cm}"], ["5 meters", "5 cm"], ["5\\text{ cm}", "5\\text{ m}"], ["5 \\text{ kg}", "5 \\text{ g}"],
       ["15 \\text{ cm}^2", "15 \\text{ cm}"], ["3 \\text{ hours}", "3 \\text{ minutes}"], ["12 \\text{ inches}", "12 \\text{ feet}"],
       ["7 \\text{ cm}", "5 \\text{ cm}"]],
      "incorrect",
    );
    await expectSame(
      [["5\\text{ cm}", "5 cm"], ["5", "5 cm"], ["5 cm", "5"], ["5 centimeters", "5\\text{ cm}"], ["15\\mbox{ cm}^2", "15 \\text{cm}^{2}"],
       ["125 miles", "125\\textnormal{ miles}"], ["3 \\text{ hours}", "3 hours"], ["1 \\text{ hour}", "1 \\text{ hours}"], ["8 \\text{ ft}", "8 feet"]],
      "correct",
    );
  });

  it("a base-n numeral matches the same numeral, not its decimal value", async () => {
    await expectSame(
      [["11", "1011_2"], ["27", "123_{4}"], ["1011_2", "11"], ["204_5", "54"], ["21_5", "1011_2"], ["1011_3", "1011_2"]],
      "incorrect",
    );
    await expectSame(
      [["1011_2", "1011_2"], ["1011_{2}", "1011_2"], ["01011_2", "1011_2"], ["1011", "1011_2"], ["11_{10}", "11"], ["(1011_2, 12_3)", "(1011_2, 12_3)"]],
      "correct",
    );
  });

  it("repeating decimals are exact values", async () => {
    await expectSame(
      [["0.\\overline{3}", "\\frac13"], ["\\frac16", "0.1\\overline{6}"], ["0.(3)", "1/3"], ["0.\\overline{142857}", "\\frac17"],
       ["1.\\overline{6}", "\\frac53"], ["0.\\dot{3}", "\\frac{1}{3}"], ["0.1\\dot{6}", "\\frac{1}{6}"], ["-0.\\overline{3}", "-\\frac13"],
       ["0.333333", "0.\\overline{3}"], ["0.\\overline{9}", "1"], ["0.\\overline{3}", "0.\\overline{33}"], ["0.\\bar{3}", "\\frac13"]],
      "correct",
    );
    await expectSame(
      [["0.3", "0.\\overline{3}"], ["0.33", "0.\\overline{3}"], ["0.\\overline{3}", "\\frac{1}{6}"], ["0.1\\overline{6}", "0.\\overline{16}"]],
      "incorrect",
    );
  });

  it("the empty set and 'no solution' are one answer; neither is 0 or a set with an element", async () => {
    await expectSame(
      [["\\emptyset", "\\varnothing"], ["\\{\\}", "\\emptyset"], ["\\text{no solution}", "\\emptyset"], ["no solutions", "\\varnothing"],
       ["none", "\\text{No solution}"], ["\\varnothing", "\\{ \\}"], ["\\text{no real solutions}", "\\emptyset"], ["∅", "\\emptyset"]],
      "correct",
    );
    await expectSame(
      [["\\emptyset", "0"], ["0", "\\text{no solution}"], ["\\emptyset", "\\{0\\}"], ["\\{0\\}", "\\emptyset"], ["\\emptyset", "(1, 2)"]],
      "incorrect",
    );
  });
});

describe("decimal references", () => {
  it("read a short decimal as exact when the other side has a finite decimal expansion", async () => {
    const g = createMathGrader({ fastPathOnly: true });
    expect((await g.grade("\\boxed{\\frac{49}{20}}", "2.5")).verdict).toBe("incorrect");
    expect((await g.grade("\\boxed{\\frac{21}{20}}", "1.0")).verdict).toBe("incorrect");
    expect((await g.grade("\\boxed{\\frac{5}{2}}", "2.5")).verdict).toBe("correct");
    expect((await g.grade("\\boxed{\\frac{70}{9}}", "7.78")).verdict).toBe("correct");
    await g.close();
  });
});
