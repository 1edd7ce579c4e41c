// Throughput of the code sandbox: isolated test executions per second for a trivial program, against a
// naive harness measured in the same run (one `python3 -S` subprocess per test, no isolation at all).
// Usage: npx tsx bench/code-sandbox.ts [--tests N] [--programs N] [--repeats N] [--concurrency N]
// Prints a table of medians over the repeats and the isolated/naive ratio. Not a test: numbers depend
// on the machine; the goal on 2 cores is >= 150 isolated executions/s.
import { spawn } from "node:child_process";
import os from "node:os";
import { compareOutputs, createCodeGrader, DEFAULT_COMPARE } from "../src/verify/code/index.js";
import type { CodeTest } from "../src/verify/types.js";

const args = process.argv.slice(2);
function flag(name: string, dflt: number): number {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : dflt;
}
const REPEATS = flag("repeats", 5);
const CONCURRENCY = flag("concurrency", Math.min(2, os.availableParallelism()));
const PROGRAM = "a, b = map(int, input().split())\nprint(a + b)\n";
const SHAPES = args.includes("--tests") ? [flag("tests", 10)] : [1, 10, 50];
const EXECUTIONS = flag("executions", 600); // per measurement

function tests(n: number, seed: number): CodeTest[] {
  return Array.from({ length: n }, (_, i) => ({ input: `${seed} ${i}\n`, output: `${seed + i}\n` }));
}

async function pool<T>(items: T[], width: number, fn: (t: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

/** Isolated: the real grader; each program gets its own sandbox, each test a forked child. */
async function isolated(testsPerProgram: number): Promise<number> {
  const grader = createCodeGrader({ concurrency: CONCURRENCY, limits: { timeLimitMs: 5000 } });
  const programs = Math.max(1, Math.round(EXECUTIONS / testsPerProgram));
  // Warm-up: fill the pool of started sandboxes, as in a long grading run.
  await grader.grade({ code: PROGRAM }, tests(1, 0));
  const t0 = performance.now();
  let bad = 0;
  await pool(
    Array.from({ length: programs }, (_, i) => i),
    CONCURRENCY,
    async (i) => {
      const v = await grader.grade({ code: PROGRAM }, tests(testsPerProgram, i));
      if (v.verdict !== "AC") bad++;
    },
  );
  const secs = (performance.now() - t0) / 1000;
  await grader.close();
  if (bad) throw new Error(`isolated: ${bad} program(s) not AC`);
  return (programs * testsPerProgram) / secs;
}

function runNaive(t: CodeTest): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const p = spawn("/usr/bin/python3", ["-S", "-c", PROGRAM], { stdio: ["pipe", "pipe", "ignore"] });
    let out = "";
    p.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
    p.on("error", reject);
    p.on("close", (code) => resolve(code === 0 && compareOutputs(out, t.output, DEFAULT_COMPARE).ok));
    p.stdin.end(t.input);
  });
}

/** Naive: one plain subprocess per test, no sandbox, no limits (the reference). */
async function naive(testsPerProgram: number): Promise<number> {
  const programs = Math.max(1, Math.round(EXECUTIONS / testsPerProgram));
  const all = Array.from({ length: programs }, (_, i) => tests(testsPerProgram, i));
  const t0 = performance.now();
  let bad = 0;
  await pool(all, CONCURRENCY, async (ts) => {
    for (const t of ts) if (!(await runNaive(t))) bad++;
  });
  const secs = (performance.now() - t0) / 1000;
  if (bad) throw new Error(`naive: ${bad} test(s) failed`);
  return (programs * testsPerProgram) / secs;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

console.log(
  `code sandbox throughput: ${os.availableParallelism()} cores, concurrency ${CONCURRENCY}, ${REPEATS} repeats, ` +
    `~${EXECUTIONS} executions per measurement, node ${process.version}`,
);
console.log("tests/program | isolated exec/s (median) | naive exec/s (median) | ratio | isolated runs | naive runs");
for (const n of SHAPES) {
  const iso: number[] = [];
  const nai: number[] = [];
  for (let r = 0; r < REPEATS; r++) {
    // Interleaved so drift in machine load hits both sides alike.
    iso.push(await isolated(n));
    nai.push(await naive(n));
  }
  const fmt = (xs: number[]) => xs.map((x) => x.toFixed(0)).join(" ");
  console.log(
    `${String(n).padStart(13)} | ${median(iso).toFixed(1).padStart(24)} | ${median(nai).toFixed(1).padStart(21)} | ` +
      `${(median(iso) / median(nai)).toFixed(2).padStart(5)} | ${fmt(iso)} | ${fmt(nai)}`,
  );
}
