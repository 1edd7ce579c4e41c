// Benchmark loaders: chat templates stripped back to the problem, reference answers, code tests inline,
// compressed (LiveCodeBench) or in separate files, dataset directories, name resolution and its errors,
// and the released benchmark files when the shared data is present.
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadBenchmark, resolveBench, stripChatTemplate } from "../src/eval/benchmarks.js";

const tmp = () => mkdtempSync(join(tmpdir(), "bench-"));
const jsonl = (path: string, rows: object[]) => writeFileSync(path, rows.map((r) => JSON.stringify(r)).join("\n") + "\n");

// Generated with Python: base64(zlib(pickle.dumps(json.dumps(tests)))), LiveCodeBench's private-test form.
const LCB_PRIVATE = "eJxrYJlayQABPaXR1UqZeQWlJUpWCkqGCkYxeUo6Ckr5pSVQIWOIQElqcUlJZUEqSKi4JCUzT6lWRwFJp6mCKbpOQwOcWmOn6AEAk/gmmQ==";
// base64(zlib(pickle.dumps(os.system))): a pickle that would import and call a function.
const EVIL_PICKLE = "eJxrYJkqwgABPawF+cWZFVN62Iori0tSc6dMnqIHAHlUCaY=";

describe("chat templates", () => {
  it("recovers the user turn from ChatML, DeepSeek, Llama 3 and Gemma prompts", () => {
    expect(stripChatTemplate("<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nWhat is 1+1?<|im_end|>\n<|im_start|>assistant\n<think>\n")).toBe("What is 1+1?");
    expect(stripChatTemplate("<｜begin▁of▁sentence｜>Sys<｜User｜>Find x.<｜Assistant｜>")).toBe("Find x.");
    expect(stripChatTemplate("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nQ?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")).toBe("Q?");
    expect(stripChatTemplate("<start_of_turn>user\nQ2<end_of_turn>\n<start_of_turn>model\n")).toBe("Q2");
    expect(stripChatTemplate("  plain problem ")).toBe("plain problem");
    expect(() => stripChatTemplate("<|im_start|>assistant\nno user", "f:3")).toThrow(/f:3: .*no user turn/);
  });
});

describe("math benchmarks", () => {
  it("strips the template and the boxed instruction; answers from answer fields, '####' or \\boxed{}", () => {
    const d = tmp();
    jsonl(join(d, "aime24.jsonl"), [
      { idx: 0, prompt: "<|im_start|>user\nFind $m+n$.\nPlease reason step by step, and put your final answer within \\boxed{}.<|im_end|>\n<|im_start|>assistant\n<think>\n", reference_solution: "so $\\boxed{\\frac{1}{2}}$ is it\n#### 33" },
      { idx: 1, prompt: "<｜begin▁of▁sentence｜>Please reason step by step, and put your final answer within \\boxed{{}}.<｜User｜>Janet has 3 ducks.<｜Assistant｜>", reference_solution: "... $\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}$." },
      { id: "q3", problem: "Plain?", answer: 7 },
      { id: "q4", question: "GSM?", answer: "3 + 4 = 7\n#### 7" },
    ]);
    const b = loadBenchmark(join(d, "aime24.jsonl"));
    expect(b.name).toBe("aime24");
    expect(b.problems.map((p) => [p.id, p.kind, p.text, p.answer])).toEqual([
      ["0", "math", "Find $m+n$.", "33"],
      ["1", "math", "Janet has 3 ducks.", "\\left( 3, \\frac{\\pi}{2} \\right)"],
      ["q3", "math", "Plain?", "7"],
      ["q4", "math", "GSM?", "7"],
    ]);
  });

  it("names the file and line of a bad row", () => {
    const d = tmp();
    writeFileSync(join(d, "x.jsonl"), `{"problem": "a", "answer": "1"}\n{"problem": "b"}\n`);
    expect(() => loadBenchmark(join(d, "x.jsonl"))).toThrow(/x\.jsonl:2: no reference answer/);
    writeFileSync(join(d, "y.jsonl"), `{"problem": "a", "answer": "1", "id": 1}\n{"problem": "b", "answer": "2", "id": 1}\n`);
    expect(() => loadBenchmark(join(d, "y.jsonl"))).toThrow(/y\.jsonl:2: problem id '1' repeats .*y\.jsonl:1/);
  });

  it("reads a Hugging Face dataset directory, taking the test split", () => {
    const d = tmp();
    mkdirSync(join(d, "data"));
    jsonl(join(d, "data", "train-00000-of-00001.jsonl"), [{ problem: "train q", answer: "1", unique_id: "t/1" }]);
    jsonl(join(d, "data", "test-00000-of-00001.jsonl"), [{ problem: "test q", answer: "2", unique_id: "test/algebra/1.json" }]);
    writeFileSync(join(d, "dataset_info.json"), "{}");
    const b = loadBenchmark(d, "math500");
    expect(b.problems.map((p) => [p.id, p.text])).toEqual([["test/algebra/1.json", "test q"]]);
  });

  it("refuses Parquet with the conversion to run", () => {
    const d = tmp();
    writeFileSync(join(d, "math500.parquet"), "PAR1");
    expect(() => loadBenchmark(join(d, "math500.parquet"))).toThrow(/Parquet files are not read.*read_parquet.*to_json.*math500\.jsonl/);
  });
});

describe("code benchmarks", () => {
  it("reads Codeforces input_output, LiveCodeBench public + compressed private tests, and skips call-based ones", () => {
    const d = tmp();
    jsonl(join(d, "lcb.jsonl"), [
      { prompt: "<|im_start|>user\nRead two ints.<|im_end|>\n", input_output: JSON.stringify({ inputs: ["1 2\n"], outputs: ["3\n"] }) },
      { question_id: "abc1", question_content: "Sum.", public_test_cases: JSON.stringify([{ input: "0 0\n", output: "0\n", testtype: "stdin" }]), private_test_cases: LCB_PRIVATE },
      { question_id: "lc1", question_content: "Two sum.", public_test_cases: JSON.stringify([{ input: "[1]", output: "1", testtype: "functional" }]) },
    ]);
    const b = loadBenchmark(join(d, "lcb.jsonl"), "livecodebench");
    expect(b.problems.map((p) => [p.id, p.kind, p.text, p.tests])).toEqual([
      ["0", "code", "Read two ints.", [{ input: "1 2\n", output: "3\n" }]],
      ["abc1", "code", "Sum.", [{ input: "0 0\n", output: "0\n" }, { input: "1 2\n", output: "3\n" }, { input: "5 5\n", output: "10\n" }]],
    ]);
    expect(b.skipped).toEqual([{ id: "lc1", reason: expect.stringMatching(/functional/) }]);
  });

  it("never runs a pickle that is more than a string", () => {
    const d = tmp();
    jsonl(join(d, "evil.jsonl"), [{ id: "e", question_content: "x", private_test_cases: EVIL_PICKLE }]);
    expect(() => loadBenchmark(join(d, "evil.jsonl"))).toThrow(/evil\.jsonl:1: 'private_test_cases': pickle opcode .* refused/);
  });

  it("finds tests in separate files: tests_file, tests/<id>.json and tests/<id>/N.in + N.out", () => {
    const d = tmp();
    mkdirSync(join(d, "tests", "cf2"), { recursive: true });
    writeFileSync(join(d, "t1.json"), JSON.stringify({ inputs: ["a\n"], outputs: ["A\n"] }));
    writeFileSync(join(d, "tests", "cf3.json"), JSON.stringify([{ input: "c\n", output: "C\n" }]));
    for (const [n, i, o] of [["2", "y", "Y"], ["10", "z", "Z"], ["1", "x", "X"]]) {
      writeFileSync(join(d, "tests", "cf2", `${n}.in`), i!);
      writeFileSync(join(d, "tests", "cf2", `${n}.out`), o!);
    }
    jsonl(join(d, "cf.jsonl"), [{ id: "cf1", problem: "p1", tests_file: "t1.json" }, { id: "cf2", problem: "p2" }, { id: "cf3", problem: "p3" }]);
    const b = loadBenchmark(join(d, "cf.jsonl"), "codeforces");
    expect(b.problems.map((p) => p.tests)).toEqual([
      [{ input: "a\n", output: "A\n" }],
      [{ input: "x", output: "X" }, { input: "y", output: "Y" }, { input: "z", output: "Z" }],
      [{ input: "c\n", output: "C\n" }],
    ]);
  });
});

describe("--bench names", () => {
  it("resolves a name in data/benchmarks first, then the shared data, and lists where it looked", () => {
    const repo = tmp();
    mkdirSync(join(repo, "data", "benchmarks"), { recursive: true });
    jsonl(join(repo, "data", "benchmarks", "aime24.jsonl"), [{ problem: "p", answer: "1" }]);
    expect(resolveBench("AIME-2024", repo)).toEqual({ name: "aime24", path: join(repo, "data", "benchmarks", "aime24.jsonl") });
    expect(() => resolveBench("nosuch", repo)).toThrow(new RegExp(`benchmark 'nosuch' not found: .*in ${join(repo, "data", "benchmarks")}, ${join(repo, "..", "shared", "data", "benchmarks")}`));
  });
});
