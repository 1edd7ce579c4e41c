// Think blocks left open: by a chat template that ends the prompt with "<think>" (Qwen3-Thinking,
// R1-distilled), or by the completion itself. A completion cut at max_tokens inside the reasoning must
// not have a \boxed{} (or a fenced program) from its reasoning graded as its answer.
import { afterAll, describe, expect, it } from "vitest";
import { extractCode } from "../src/verify/code/index.js";
import { createMathGrader, extractAnswer } from "../src/verify/math/index.js";
import { answerRegion } from "../src/verify/think.js";

const opens = { promptOpensThink: true };
const grader = createMathGrader({ fastPathOnly: true });
afterAll(() => grader.close());

describe("answerRegion", () => {
  it("is the text after the last </think>", () => {
    expect(answerRegion("a</think> b", opens).text).toBe(" b");
    expect(answerRegion("<think>a</think> b").text).toBe(" b");
  });
  it("is null while a block is open: opened by the prompt, or by the completion after its last close", () => {
    expect(answerRegion("reasoning \\boxed{3}", opens)).toEqual({ text: null, reason: expect.stringMatching(/prompt opened <think>/) });
    expect(answerRegion("<think>a</think> b <think> c \\boxed{3}").reason).toMatch(/completion opened <think>/);
    expect(answerRegion("<think> c \\boxed{3}").text).toBeNull();
  });
  it("is the whole completion when nothing opened a block", () => {
    expect(answerRegion("just \\boxed{3}").text).toBe("just \\boxed{3}");
  });
});

describe("math grader with a prompt that opened <think>", () => {
  it("a completion cut inside the reasoning is no_answer, even with a \\boxed{} in it", async () => {
    const cut = "Let me try 3. So \\boxed{3} maybe, but wait";
    expect(await grader.grade(cut, "3")).toMatchObject({ verdict: "correct" }); // what the template hides
    const v = await grader.grade(cut, "3", opens);
    expect(v.verdict).toBe("no_answer");
    expect(v.reason).toMatch(/never closed/);
  });
  it("grades only the text after </think>", async () => {
    expect((await grader.grade("try \\boxed{3}</think> The answer is \\boxed{4}.", "4", opens)).verdict).toBe("correct");
    expect((await grader.grade("try \\boxed{4}</think> The answer is \\boxed{3}.", "4", opens)).verdict).toBe("incorrect");
    expect((await grader.grade("\\boxed{4}</think> I cannot say.", "4", opens)).verdict).toBe("no_answer");
  });
  it("a completion that opens <think> again after closing one is no_answer", async () => {
    expect((await grader.grade("<think>a</think> \\boxed{4} <think> hmm", "4")).verdict).toBe("no_answer");
    expect(extractAnswer("a</think> \\boxed{4} <think> hmm")).toBeNull();
  });
  it("looks for </think> in the whole completion, not only the scanned tail", async () => {
    const long = `reasoning</think>${" ".repeat(300_000)} so \\boxed{7}`;
    expect((await grader.grade(long, "7", opens)).verdict).toBe("correct");
  });
});

describe("code extraction with a prompt that opened <think>", () => {
  const fenced = "```python\nprint(1)\n```";
  it("no code while the block is open", () => {
    expect(extractCode(`plan:\n${fenced}\n`)).toBe("print(1)");
    expect(extractCode(`plan:\n${fenced}\n`, opens)).toBeNull();
    expect(extractCode(`plan:\n${fenced}\n</think>\n\`\`\`python\nprint(2)\n\`\`\`\n`, opens)).toBe("print(2)");
    expect(extractCode(`${fenced}\n</think>\n${fenced}\n<think>\nmore`)).toBeNull();
  });
});
