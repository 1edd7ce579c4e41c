// Pure parts of the code grader: which program a completion submits, how outputs are compared,
// how a raw run report becomes a verdict, and the runner frame protocol.
import { describe, expect, it } from "vitest";
import { compareOutputs, decimalEquals, extractCode, parseDecimal, pySplit, pyStrip, strippedLines } from "../src/verify/code/index.js";
import { judgeRun } from "../src/verify/code/judge.js";
import { DEFAULT_COMPARE, type CompareOptions } from "../src/verify/code/options.js";
import { decodeRunResult, encodeFrame, FrameDecoder, type RunResult } from "../src/verify/code/protocol.js";

const TOL: CompareOptions = DEFAULT_COMPARE;
const DEC: CompareOptions = { float: "decimal", tolerance: 0 };

describe("extractCode (LiveCodeBench's rule)", () => {
  it("takes the last fenced block after </think>", () => {
    const c = "<think>try ```python\nprint(0)\n``` no</think>\nAnswer:\n```python\nprint(1)\n```\nthen\n```python\nprint(2)\n```\n";
    expect(extractCode(c)).toBe("print(2)");
  });
  it("ignores code inside the thinking", () => {
    expect(extractCode("<think>\n```python\nprint(1)\n```\n</think>\nNo code, sorry.")).toBeNull();
  });
  it("has no answer when the completion stops inside <think>", () => {
    expect(extractCode("<think>\n```python\nprint(1)\n```\n")).toBeNull();
  });
  it("works without think tags, with any info string, and multi-line bodies", () => {
    expect(extractCode("Here:\n```py\nimport sys\nprint(sys.stdin.read())\n```")).toBe("import sys\nprint(sys.stdin.read())");
    expect(extractCode("```\nx=1\n```")).toBe("x=1");
  });
  it("returns null for one fence, no fence, or a blank block", () => {
    expect(extractCode("```python\nprint(1)")).toBeNull();
    expect(extractCode("print(1)")).toBeNull();
    expect(extractCode("```python\n   \n```")).toBeNull();
    expect(extractCode("")).toBeNull();
  });
  it("is linear on huge completions", () => {
    const big = `${"x".repeat(5_000_000)}\n\`\`\`python\nprint(1)\n\`\`\``;
    const t = performance.now();
    expect(extractCode(big)).toBe("print(1)");
    expect(performance.now() - t).toBeLessThan(2000);
  });
});

describe("compareOutputs", () => {
  it("strips the output and every line (Python's whitespace), keeps line structure", () => {
    expect(compareOutputs("  3 \r\n4\t\n\n", "3\n4", TOL).ok).toBe(true);
    expect(compareOutputs("3\u00a0\n4\u3000", "3\n4", TOL).ok).toBe(true);
    expect(compareOutputs("3 4", "3\n4", TOL).ok).toBe(false);
    expect(compareOutputs("", "", TOL).ok).toBe(true);
  });
  it("is WA when only the first line of a multi-line answer is printed", () => {
    const r = compareOutputs("1\n", "1\n2\n3\n", TOL);
    expect(r.ok).toBe(false);
    expect(r.reason).toMatch(/3 line/);
  });
  it("compares token by token, words exactly", () => {
    expect(compareOutputs("YES  1", "YES 1", TOL).ok).toBe(true);
    expect(compareOutputs("yes 1", "YES 1", TOL).ok).toBe(false);
    expect(compareOutputs("1 2 3", "1 2", TOL).ok).toBe(false);
  });
  it("compares integers exactly at any size", () => {
    expect(compareOutputs("50000000000000001", "50000000000000000", TOL).ok).toBe(false);
    expect(compareOutputs("007", "7", TOL).ok).toBe(true);
    expect(compareOutputs("-0", "0", TOL).ok).toBe(true);
    const big = "9".repeat(100_000);
    expect(compareOutputs(big, big.slice(0, -1) + "8", TOL).ok).toBe(false);
    expect(compareOutputs(`+${big}`, big, TOL).ok).toBe(true);
  });
  it("accepts floats within 1e-6 absolute or relative, configurable", () => {
    expect(compareOutputs("0.3333333333", "0.333333", TOL).ok).toBe(true);
    expect(compareOutputs("0.33334", "0.333333", TOL).ok).toBe(false);
    expect(compareOutputs("1000000.5", "1000000.0", TOL).ok).toBe(true); // relative 5e-7
    expect(compareOutputs("1e18", "1000000000000000000.0", TOL).ok).toBe(true);
    expect(compareOutputs("2", "2.0", TOL).ok).toBe(true);
    expect(compareOutputs("0.5", "0.6", { float: "tolerance", tolerance: 0.2 }).ok).toBe(true);
    expect(compareOutputs("nan", "NaN", TOL).ok).toBe(true);
    expect(compareOutputs("inf", "1e400", TOL).ok).toBe(false);
    expect(compareOutputs("1e400", "1E+400", TOL).ok).toBe(true);
  });
  it("requires an integer token, equal exactly, where the expected token is an integer", () => {
    // a float-printed modular answer one off must not pass under the relative tolerance
    expect(compareOutputs("500000003.0", "500000004", TOL).ok).toBe(false);
    expect(compareOutputs("500000004.0", "500000004", TOL).ok).toBe(false);
    expect(compareOutputs("2.0", "2", TOL).ok).toBe(false);
    expect(compareOutputs("5e8", "500000000", TOL).ok).toBe(false);
    expect(compareOutputs("1e18", "1000000000000000001", TOL).ok).toBe(false);
    expect(compareOutputs("3 2.0", "3 2", TOL).reason).toMatch(/line 1/);
    // the tolerance still applies where the expected token is a decimal, whatever the output token is
    expect(compareOutputs("500000003.0", "500000004.0", TOL).ok).toBe(true);
    expect(compareOutputs("3 2.0000001", "3 2.0", TOL).ok).toBe(true);
    expect(compareOutputs("4", "4.0000001", TOL).ok).toBe(true);
  });
  it("has LiveCodeBench's exact Decimal comparison as an option", () => {
    expect(compareOutputs("0.3333333333", "0.333333", DEC).ok).toBe(false);
    expect(compareOutputs("2.50 1e2", "2.5 100", DEC).ok).toBe(true);
    expect(compareOutputs("1_000", "1000", DEC).ok).toBe(true);
    // one non-number fails the line unless the line matches as text
    expect(compareOutputs("YES 1.0", "YES 1", DEC).ok).toBe(false);
    expect(compareOutputs("YES 1", "YES 1", DEC).ok).toBe(true);
    expect(compareOutputs("nan", "nan", DEC).ok).toBe(true); // equal as text
    expect(compareOutputs("nan", "NaN", DEC).ok).toBe(false); // Decimal NaN != NaN
  });
  it("never backtracks on adversarial whitespace", () => {
    const evil = `${" ".repeat(3_000_000)}x${" ".repeat(3_000_000)}`;
    const t = performance.now();
    expect(compareOutputs(evil, "y", TOL).ok).toBe(false);
    expect(performance.now() - t).toBeLessThan(2000);
  });
});

describe("Python string helpers", () => {
  it("match str.strip / str.split / get_stripped_lines", () => {
    expect(pyStrip("\x1c\x85 a b \u2028")).toBe("a b");
    expect(pySplit(" a\x0b b\u3000c ")).toEqual(["a", "b", "c"]);
    expect(pySplit("")).toEqual([]);
    expect(strippedLines("  \n a \n\n b \n\n")).toEqual(["a", "", "b"]);
  });
  it("parse Decimal syntax and compare like Decimal ==", () => {
    const eq = (a: string, b: string) => decimalEquals(parseDecimal(a)!, parseDecimal(b)!);
    expect(eq("1.0", "1")).toBe(true);
    expect(eq("-0.0", "0")).toBe(true);
    expect(eq("1e2", "100.00")).toBe(true);
    expect(eq(".5", "0.5")).toBe(true);
    expect(eq("5.", "5")).toBe(true);
    expect(eq("-Infinity", "-inf")).toBe(true);
    expect(eq("1e999999999999999999", "1e999999999999999999")).toBe(true);
    expect(eq("0.1", "0.10000000000000001")).toBe(false);
    for (const bad of ["", "1..2", "0x10", "1e", "e5", "1_", "_1", "--1", "1 2"]) expect(parseDecimal(bad)).toBeNull();
  });
});

function run(partial: Partial<RunResult>): RunResult {
  return {
    exitCode: 0,
    signal: 0,
    timedOut: false,
    outputLimit: null,
    memoryError: false,
    wallMs: 1,
    cpuMs: 1,
    maxRssKb: 1,
    stdout: Buffer.from(""),
    stderrTail: Buffer.from(""),
    ...partial,
  };
}

describe("judgeRun", () => {
  it("maps limits, crashes and output to verdicts, limits first", () => {
    expect(judgeRun(run({ stdout: Buffer.from("3\n") }), "3", TOL).verdict).toBe("AC");
    expect(judgeRun(run({ stdout: Buffer.from("4\n") }), "3", TOL).verdict).toBe("WA");
    expect(judgeRun(run({ timedOut: true, stdout: Buffer.from("3") }), "3", TOL).verdict).toBe("TLE");
    expect(judgeRun(run({ exitCode: null, signal: 24 }), "3", TOL).verdict).toBe("TLE");
    expect(judgeRun(run({ outputLimit: "stdout", stdout: Buffer.from("3") }), "3", TOL).verdict).toBe("OLE");
    expect(judgeRun(run({ exitCode: 113, memoryError: true }), "3", TOL).verdict).toBe("MLE");
    expect(judgeRun(run({ exitCode: 1, stderrTail: Buffer.from("MemoryError\n") }), "3", TOL).verdict).toBe("MLE");
    expect(judgeRun(run({ exitCode: null, signal: 9 }), "3", TOL, true).verdict).toBe("MLE");
    expect(judgeRun(run({ exitCode: null, signal: 9 }), "3", TOL, false).verdict).toBe("RE");
    expect(judgeRun(run({ exitCode: null, signal: 11, stdout: Buffer.from("3") }), "3", TOL).verdict).toBe("RE");
    expect(judgeRun(run({ exitCode: 1, stdout: Buffer.from("3") }), "3", TOL).verdict).toBe("RE");
  });
});

describe("runner frames", () => {
  it("reassemble across arbitrary chunk boundaries", () => {
    const frames = Buffer.concat([encodeFrame("K", Buffer.alloc(0)), encodeFrame("C", Buffer.from("0")), encodeFrame("R", Buffer.alloc(70000, 7))]);
    const d = new FrameDecoder(1 << 20);
    const got: string[] = [];
    for (let i = 0; i < frames.length; i += 333) for (const f of d.push(frames.subarray(i, i + 333))) got.push(`${f.kind}${f.payload.length}`);
    expect(got).toEqual(["K0", "C1", "R70000"]);
  });
  it("reject oversized frames and inconsistent results", () => {
    const d = new FrameDecoder(100);
    expect(() => d.push(encodeFrame("R", Buffer.alloc(101)))).toThrow(/limit/);
    expect(() => decodeRunResult(Buffer.alloc(10))).toThrow();
    const header = Buffer.alloc(31);
    header.writeUInt32BE(5, 23); // claims 5 stdout bytes, has none
    expect(() => decodeRunResult(header)).toThrow(/add up/);
  });
});

describe("seccomp filter", () => {
  it("is well-formed classic BPF ending in ALLOW then EPERM, and absent off x86_64", async () => {
    const { seccompFilter, DENIED_X86_64 } = await import("../src/verify/code/seccomp.js");
    const f = seccompFilter("x64")!;
    expect(f.length % 8).toBe(0);
    const n = f.length / 8;
    expect(n).toBe(5 + new Set(Object.values(DENIED_X86_64)).size + 2);
    expect(f.readUInt32LE((n - 2) * 8 + 4)).toBe(0x7fff0000); // ALLOW
    expect(f.readUInt32LE((n - 1) * 8 + 4)).toBe(0x00050001); // ERRNO(EPERM)
    for (const name of ["ptrace", "bpf", "io_uring_setup", "mount", "keyctl", "userfaultfd", "perf_event_open"]) {
      expect(DENIED_X86_64[name], name).toBeGreaterThan(0);
    }
    expect(seccompFilter("arm64")).toBeNull();
  });
});
