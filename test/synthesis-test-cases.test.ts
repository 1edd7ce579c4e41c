// Test-case synthesis for code problems with canned model replies: one test per round as fenced JSON,
// strict parsing, dedup and conflict removal, problems without tests dropped, seeds per round.
import { describe, expect, it } from "vitest";
import {
  buildRoundPrompts,
  buildTestCasePrompt,
  dedupTestCases,
  mergeTestCases,
  parseTestCase,
  synthesizeTestCases,
  testCasePromptId,
  type TestCasePrompt,
} from "../src/synthesis/test-cases.js";

const fence = (body: string, info = "json") => `Here is a test.\n\`\`\`${info}\n${body}\n\`\`\`\n`;

describe("parseTestCase (strict)", () => {
  it("accepts exactly {input: string, output: string} in the last json/plain fence after </think>", () => {
    expect(parseTestCase(fence('{"input": "1 2\\n", "output": "3\\n"}'))).toEqual({ input: "1 2\n", output: "3\n" });
    expect(parseTestCase(fence('{"output": "3", "input": "1 2"}', ""))).toEqual({ input: "1 2\n", output: "3" });
    const twoBlocks = fence('{"input": "1", "output": "1"}') + "Better:\n" + fence('{"input": "2", "output": "4"}');
    expect(parseTestCase(twoBlocks)).toEqual({ input: "2\n", output: "4" });
    const thinking = `<think>${fence('{"input": "9", "output": "81"}')}</think>${fence('{"input": "3", "output": "9"}')}`;
    expect(parseTestCase(thinking)).toEqual({ input: "3\n", output: "9" });
    // a python block after the json one is not a test case: the json block still counts
    expect(parseTestCase(fence('{"input": "5", "output": "25"}') + fence("print(25)", "python"))).toEqual({ input: "5\n", output: "25" });
  });

  it("rejects everything else", () => {
    const bad = [
      "no fence at all",
      '{"input": "1", "output": "1"}', // unfenced
      fence('{"input": "1", "output": "1"'), // broken JSON
      fence('{"input": 1, "output": "1"}'), // number
      fence('{"input": "1", "output": ["1"]}'), // array
      fence('{"input": "1", "output": null}'),
      fence('{"input": "1"}'), // missing field
      fence('{"input": "1", "output": "1", "explanation": "x"}'), // extra field
      fence('[{"input": "1", "output": "1"}]'), // not an object
      fence('"just a string"'),
      fence('{"input": "1", "output": "   "}'), // nothing to compare against
      fence('{"input": "1", "output": "1"}', "python"), // not a json fence
      `<think>${fence('{"input": "1", "output": "1"}')}`, // cut off while thinking
      "",
    ];
    for (const reply of bad) expect(parseTestCase(reply), reply).toBeNull();
  });

  it("rejects fields over the size limit and absurdly long replies quickly", () => {
    expect(parseTestCase(fence(JSON.stringify({ input: "x".repeat(200), output: "1" })), 100)).toBeNull();
    const t = performance.now();
    expect(parseTestCase("```json\n" + "a".repeat(10_000_000))).toBeNull();
    expect(parseTestCase("```".repeat(100_000), 1000)).toBeNull();
    expect(performance.now() - t).toBeLessThan(2000);
  });
});

describe("dedup and merge", () => {
  it("keeps the first of equal tests (whitespace-insensitive) and drops inputs with conflicting outputs", () => {
    const m = mergeTestCases(
      [
        { input: "1 2\n", output: "3\n" },
        { input: "5\n", output: "25\n" },
      ],
      [
        { input: "1 2  \n", output: "3" }, // duplicate of the first
        { input: "5\n", output: "26\n" }, // conflict: 5 is dropped entirely
        { input: "7\n", output: "49\n" },
        { input: "5\n", output: "25\n" }, // stays dropped
      ],
    );
    expect(m.tests).toEqual([
      { input: "1 2\n", output: "3\n" },
      { input: "7\n", output: "49\n" },
    ]);
    expect(m.duplicates).toBe(1);
    expect(m.conflicts).toBe(1);
    expect(dedupTestCases([{ input: "a", output: "b" }, { input: "a\n", output: "b\n" }])).toEqual([{ input: "a", output: "b" }]);
  });
});

describe("prompts", () => {
  it("ask for ONE fenced JSON test case, vary by round, and carry deterministic per-round seeds", () => {
    const msgs = buildTestCasePrompt({ prompt: "Read two integers and print their sum." }, 0);
    expect(msgs.map((m) => m.role)).toEqual(["system", "user"]);
    expect(msgs[1]!.content).toContain("Read two integers and print their sum.");
    expect(msgs[1]!.content).toMatch(/ONE test case/);
    expect(msgs[1]!.content).toContain("```json");
    expect(buildTestCasePrompt({ prompt: "p" }, 1)[1]!.content).not.toBe(msgs[1]!.content);

    const problems = [
      { id: "a", prompt: "p" },
      { id: "b", prompt: "q" },
    ];
    const r0 = buildRoundPrompts(problems, 0, 42);
    const r1 = buildRoundPrompts(problems, 1, 42);
    expect(r0.map((p) => p.id)).toEqual(["a#tc0", "b#tc0"]);
    expect(new Set([...r0, ...r1].map((p) => p.seed)).size).toBe(4);
    expect(buildRoundPrompts(problems, 0, 42)).toEqual(r0);
    expect(buildRoundPrompts(problems, 0, 43)[0]!.seed).not.toBe(r0[0]!.seed);
    expect(testCasePromptId("x/y", 3)).toBe("x/y#tc3");
  });
});

describe("synthesizeTestCases", () => {
  it("runs the rounds, keeps problems with at least one good test, drops the rest", async () => {
    const problems = [
      { id: "sum", prompt: "Print a+b.", source: "synthetic" },
      { id: "square", prompt: "Print n*n." },
      { id: "hopeless", prompt: "Nobody can test this." },
      { id: "conflicted", prompt: "Print n+1." },
    ];
    // Canned replies per round: good, duplicate, malformed, conflicting, missing.
    const canned: Record<string, string[]> = {
      sum: [fence('{"input": "1 2", "output": "3"}'), fence('{"input": "1 2\\n", "output": "3\\n"}'), fence('{"input": "10 5", "output": "15"}')],
      square: ["<think>let me see</think>" + fence('{"input": "4", "output": "16"}'), "I cannot.", fence('{"input": "3", "output": "9", "why": "x"}')],
      hopeless: ["no idea", fence('{"input": 1, "output": 1}'), ""],
      conflicted: [fence('{"input": "1", "output": "2"}'), fence('{"input": "1", "output": "3"}'), "MISSING"],
    };
    const calls: TestCasePrompt[][] = [];
    const result = await synthesizeTestCases(problems, 3, async (prompts) => {
      calls.push(prompts);
      return prompts
        .map((p) => {
          const [id, round] = p.id.split("#tc") as [string, string];
          return { id: p.id, text: canned[id]![Number(round)]! };
        })
        .filter((r) => r.text !== "MISSING")
        .concat([{ id: "stranger#tc0", text: fence('{"input": "1", "output": "1"}') }]); // unknown ids are ignored
    }, { seed: 7 });

    expect(calls).toHaveLength(3); // one generate call per round
    expect(calls.every((c) => c.length === 4)).toBe(true);
    expect(new Set(calls.flat().map((p) => p.seed)).size).toBe(12);
    expect(result.problems).toEqual([
      {
        id: "sum",
        prompt: "Print a+b.",
        source: "synthetic",
        test_cases: [
          { input: "1 2\n", output: "3" },
          { input: "10 5\n", output: "15" },
        ],
      },
      { id: "square", prompt: "Print n*n.", test_cases: [{ input: "4\n", output: "16" }] },
    ]);
    expect(result.dropped).toEqual(["hopeless", "conflicted"]);
    expect(result.stats).toEqual({
      prompts: 12,
      parsed: 6,
      malformed: 5,
      missing: 1,
      duplicates: 1,
      conflicts: 1,
      keptProblems: 2,
      droppedProblems: 2,
    });
  });

  it("validates its arguments", async () => {
    const gen = async () => [];
    await expect(synthesizeTestCases([{ id: "a", prompt: "p" }], 0, gen)).rejects.toThrow(/rounds/);
    await expect(synthesizeTestCases([{ id: "a", prompt: "p" }, { id: "a", prompt: "q" }], 1, gen)).rejects.toThrow(/duplicate/);
    expect((await synthesizeTestCases([], 2, gen)).problems).toEqual([]);
  });
});
