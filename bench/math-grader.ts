// Throughput of the math grader against math-verify, measured in the same run on the same machine.
//   (a) AIME-style checks: boxed integer answers built from shared/data/benchmarks/aime24+25 answers, half of
//       them correct, inside think-style completions;
//   (b) the 270-case mix of math-verify's own test suite, each case run the way math-verify runs it.
// math-verify runs in one Python process (bench/math-grader-mv.py, parse()/verify()), a fresh process per
// repeat; ours is a fresh grader per repeat with its Python workers started and warmed up before timing
// (as in a long grading run; see docs/MATH_GRADER.md for the cold-worker figure). Prints medians over the repeats and the ratios. Not a test: numbers depend on the machine.
// Usage: npx tsx bench/math-grader.ts [--repeats 5] [--concurrency 4] [--data DIR]
// DIR holds benchmarks/aime24.jsonl, benchmarks/aime25.jsonl and graders/math_verify_cases.jsonl (the
// shared data set, not in this repository); default $PROMPTCOT_SHARED_DATA, else ../shared/data.
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { type MathVerifyCase, createMathGrader, mathVerifyCaseOptions, pythonPath } from "../src/verify/math/index.js";

const HERE = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const DATA = resolve(args.includes("--data") ? args[args.indexOf("--data") + 1]! : (process.env.PROMPTCOT_SHARED_DATA ?? join(HERE, "..", "..", "shared", "data")));
const NEEDED = ["benchmarks/aime24.jsonl", "benchmarks/aime25.jsonl", "graders/math_verify_cases.jsonl"];
const absent = NEEDED.filter((f) => !existsSync(join(DATA, f)));
if (absent.length) {
  process.stderr.write(
    `bench/math-grader.ts: ${absent.join(", ")} not found under ${DATA}.\n` +
      `Pass --data DIR (or set PROMPTCOT_SHARED_DATA=DIR) where DIR holds ${NEEDED.join(", ")}: ` +
      `PromptCoT's released AIME 2024/2025 sets (MIT) and the cases of huggingface/Math-Verify's test suite (Apache-2.0).\n`,
  );
  process.exit(2);
}
const flag = (name: string, dflt: number) => (args.includes(`--${name}`) ? Number(args[args.indexOf(`--${name}`) + 1]) : dflt);
const REPEATS = flag("repeats", 5);
const CONCURRENCY = flag("concurrency", 4);

interface Check extends Partial<MathVerifyCase> {
  gold: string;
  pred: string;
  expected: boolean;
}

/** mulberry32: a tiny seeded generator so the data set is the same on every run. */
function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function reasoning(r: () => number): string {
  const parts: string[] = [];
  for (let i = 0; i < 14; i++) {
    const a = Math.floor(r() * 900) + 2;
    const b = Math.floor(r() * 90) + 2;
    const pick = Math.floor(r() * 5);
    if (pick === 0) parts.push(`Let $x = ${a}$ and $y = ${b}$. Then $x + y = ${a + b}$ and $\\frac{x}{y} \\approx ${(a / b).toFixed(3)}$.`);
    else if (pick === 1) parts.push(`Wait, maybe the answer is \\boxed{${a}}? No, that ignores the case $n \\equiv ${b % 7} \\pmod 7$.`);
    else if (pick === 2) parts.push(`We need $\\sum_{k=1}^{${b}} k = ${(b * (b + 1)) / 2}$, which is ${a % 2 ? "odd" : "even"}.`);
    else if (pick === 3) parts.push(`Hmm, so the number of pairs is ${a} minus ${b}, that is ${a - b}. Let me double-check that.`);
    else parts.push(`Consider the polynomial $p(t) = t^2 - ${b}t + ${a}$ with discriminant $${b * b - 4 * a}$.`);
  }
  return parts.join(" ");
}

function finalLine(v: string, style: number): string {
  switch (style) {
    case 0:
      return `Therefore the answer is $\\boxed{${v}}$.`;
    case 1:
      return `**Final Answer**\n\\[\n\\boxed{${v}}\n\\]`;
    case 2:
      return `The final answer is $${v}$. I hope it is correct.`;
    case 3:
      return `So $m + n = \\boxed{${v.padStart(3, "0")}}$.`;
    default:
      return `\\boxed{${v}}`;
  }
}

function aimeChecks(): Check[] {
  const r = rng(2025);
  const checks: Check[] = [];
  for (const file of ["aime24.jsonl", "aime25.jsonl"]) {
    for (const line of readFileSync(join(DATA, "benchmarks", file), "utf8").trim().split("\n")) {
      const row = JSON.parse(line) as { reference_solution: string };
      const answer = row.reference_solution.slice(row.reference_solution.lastIndexOf("#### ") + 5).trim();
      const value = Number.parseInt(answer, 10);
      for (let k = 0; k < 8; k++) {
        const correct = k % 2 === 0;
        const v = correct ? String(value) : String(value + 1 + Math.floor(r() * 50));
        const completion = `<think>\n${reasoning(r)}\n</think>\n\nWe computed the required quantity above.\n\n${finalLine(v, k % 5)}`;
        checks.push({ gold: `$${answer}$`, pred: completion, expected: correct });
      }
    }
  }
  return checks;
}

function caseChecks(): Check[] {
  return readFileSync(join(DATA, "graders", "math_verify_cases.jsonl"), "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as Check);
}

/** Known false positives of numeric-tolerance graders, plus true twins so strictness does not pass for free. */
function falsePositiveChecks(): Check[] {
  const c = (gold: string, pred: string, expected: boolean): Check => ({ gold, pred, expected });
  return [
    c("$\\frac{1}{2^{99}}$", "\\boxed{\\frac{1}{2^{98}}}", false),
    c("$\\frac{1}{2004!}$", "\\boxed{\\frac{1}{2006!}}", false),
    c("$0.1234567$", "\\boxed{0.1234568}", false),
    c("$0.5$", "\\boxed{50}", false),
    c("$10000$", "\\boxed{10001}", false),
    c("", "", false),
    c("$5$", "\\boxed{3, 5, 7}", false),
    c("$7$", "maybe 3 or 5 or 7", false),
    c("$\\frac{1}{3}$", "\\boxed{0.3333334}", false),
    c("$1 - \\frac{1}{\\mathrm{e}}$", "\\boxed{1 + \\frac{1}{\\mathrm{e}}}", false),
    c("$\\frac{1}{2^{99}}$", "\\boxed{2^{-99}}", true),
    c("$\\frac{1}{3}$", "\\boxed{0.333333}", true),
    c("$50\\%$", "\\boxed{0.5}", true),
    c("$7$", "The final answer is $7$.", true),
  ];
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function runMathVerify(file: string, harness: boolean): { rate: number; warmRate: number; agree: number } {
  const res = spawnSync(pythonPath(), [join(HERE, "math-grader-mv.py"), "--data", file, ...(harness ? ["--harness"] : [])], {
    encoding: "utf8",
    maxBuffer: 1 << 24,
  });
  if (res.status !== 0) throw new Error(`math-verify runner failed: ${res.stderr}`);
  const out = JSON.parse(res.stdout.trim().split("\n").pop()!);
  return { rate: out.checks / out.seconds, warmRate: out.checks / out.seconds_warm, agree: out.agree };
}

async function runOurs(checks: Check[], harness: boolean, width: number, minSeconds: number): Promise<{ rate: number; agree: number }> {
  const grader = createMathGrader();
  try {
    await grader.pool.warmUp();
    let done = 0;
    let agree = 0;
    const t0 = performance.now();
    // (a) is all fast path: repeat passes until the clock has something to measure
    do {
      let next = 0;
      let passAgree = 0;
      await Promise.all(
        Array.from({ length: width }, async () => {
          while (next < checks.length) {
            const c = checks[next++]!;
            const v = harness
              ? await grader.gradeWith(c.pred, c.gold, mathVerifyCaseOptions(c as MathVerifyCase))
              : await grader.grade(c.pred, c.gold);
            if ((v.verdict === "correct") === c.expected) passAgree++;
          }
        }),
      );
      done += checks.length;
      agree = passAgree;
    } while (performance.now() - t0 < minSeconds * 1000);
    return { rate: done / ((performance.now() - t0) / 1000), agree };
  } finally {
    await grader.close();
  }
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "math-grader-bench-"));
  const sets = [
    { name: "(a) AIME boxed integers", checks: aimeChecks(), harness: false, minSeconds: 1.5 },
    { name: "(b) math-verify 270-case mix", checks: caseChecks(), harness: true, minSeconds: 0 },
  ];
  const rows: string[][] = [];
  for (const set of sets) {
    const file = join(dir, `${set.harness ? "b" : "a"}.jsonl`);
    writeFileSync(file, set.checks.map((c) => JSON.stringify(c)).join("\n"));
    const mv: number[] = [];
    const mvWarm: number[] = [];
    const ours: number[] = [];
    const oursSeq: number[] = [];
    let mvAgree = 0;
    let ourAgree = 0;
    for (let rep = 0; rep < REPEATS; rep++) {
      // interleaved, so both see the same machine load
      const m = runMathVerify(file, set.harness);
      mv.push(m.rate);
      mvWarm.push(m.warmRate);
      mvAgree = m.agree;
      const o = await runOurs(set.checks, set.harness, CONCURRENCY, set.minSeconds);
      ours.push(o.rate);
      ourAgree = o.agree;
      oursSeq.push((await runOurs(set.checks, set.harness, 1, set.minSeconds)).rate);
      process.stderr.write(`${set.name}: repeat ${rep + 1}/${REPEATS} mv ${m.rate.toFixed(0)}/s ours ${o.rate.toFixed(0)}/s\n`);
    }
    const n = set.checks.length;
    rows.push([
      set.name,
      String(n),
      median(mv).toFixed(0),
      median(mvWarm).toFixed(0),
      median(ours).toFixed(0),
      median(oursSeq).toFixed(0),
      `${(median(ours) / median(mv)).toFixed(1)}x`,
      `${(median(oursSeq) / median(mv)).toFixed(1)}x`,
      `${mvAgree}/${n}`,
      `${ourAgree}/${n}`,
    ]);
  }
  const head = [
    "set",
    "checks",
    "math-verify/s",
    "math-verify warm/s",
    `ours/s (x${CONCURRENCY})`,
    "ours seq/s",
    "ratio",
    "ratio seq",
    "math-verify right",
    "ours right",
  ];
  // (c) correctness only: the known false positives
  const fp = falsePositiveChecks();
  const fpFile = join(dir, "c.jsonl");
  writeFileSync(fpFile, fp.map((c) => JSON.stringify(c)).join("\n"));
  const fpOurs = await runOurs(fp, false, 1, 0);
  rows.push(["(c) known false positives", String(fp.length), "-", "-", "-", "-", "-", "-", `${runMathVerify(fpFile, false).agree}/${fp.length}`, `${fpOurs.agree}/${fp.length}`]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const fmt = (r: string[]) => `| ${r.map((c, i) => c.padEnd(widths[i]!)).join(" | ")} |`;
  console.log(`\nmedians over ${REPEATS} repeats; "right" = verdict matches the label (a: by construction, b: the suite's label)`);
  console.log(fmt(head));
  console.log(`|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`);
  for (const r of rows) console.log(fmt(r));
  console.log(
    "\nmath-verify: fresh process per repeat, first pass after a one-check warm-up; 'warm' is a second pass in the same process." +
      `\nours: fresh grader per repeat, workers started and warmed up before timing; x${CONCURRENCY} = that many grade calls in flight, seq = one at a time.`,
  );
}

await main();
