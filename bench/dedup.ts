// Dedup throughput and peak memory: `promptcot dedup` against PromptCoT 2.0's rule in Python with datasketch
// (bench/dedup_reference.py: MinHash 128 permutations, MinHashLSH with the same threshold and band layout,
// exact Jaccard confirmation on the same word sets), on the same seeded data in the same run. Each side runs
// as its own process under /usr/bin/time -v (peak RSS); rows/s is over each program's own timer (reading the
// input through writing the output, process start-up excluded; wall time is printed too). Medians of the
// repeats. The reference runs in its own venv (~/.cache/promptcot/bench-venv, bench/requirements.txt).
// Not a test: numbers depend on the machine.
// Usage: npx tsx bench/dedup.ts [--rows 100000] [--repeats 3] [--threshold 0.8] [--no-reference] [--data FILE]
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chooseBands } from "../src/synthesis/dedup/index.js";
import { seededU32 } from "../src/synthesis/dedup/hash.js";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);
const flag = (name: string, dflt: number) => (args.includes(`--${name}`) ? Number(args[args.indexOf(`--${name}`) + 1]) : dflt);
const ROWS = flag("rows", 100_000);
const REPEATS = flag("repeats", 3);
const THRESHOLD = flag("threshold", 0.8);
const REFERENCE = !args.includes("--no-reference");
const DATA = args.includes("--data") ? args[args.indexOf("--data") + 1] : undefined; // keep the generated data here
const VENV = join(homedir(), ".cache", "promptcot", "bench-venv");

// ---- seeded math-problem-like text with planted exact and near duplicates ----
const NAMES = ["Alice", "Boris", "Chen", "Dalia", "Emeka", "Farah", "Gustav", "Hana", "Ivan", "Jasmine", "Kofi", "Lena", "Mateo", "Nadia", "Omar", "Priya"];
const THINGS = ["marbles", "apples", "stamps", "coins", "books", "tickets", "pencils", "cookies", "tiles", "bricks", "seeds", "shells"];
const SHAPES = ["triangle", "rectangle", "hexagon", "circle", "trapezoid", "square", "pentagon", "rhombus", "parallelogram", "ellipse"];
const QUANT = ["perimeter", "area", "diagonal", "radius", "height", "median", "altitude", "circumference", "inradius", "volume"];
const TEMPLATES = [
  "{N} has {k} {T} and buys {k} more {T} every {D}.",
  "A {S} named {P} has sides of length {k}, {k} and {k} {U}.",
  "The {Q} of the {S} is twice the {Q} of a smaller {S}.",
  "Each {P} costs {k} dollars, while each {P} costs {k} dollars more.",
  "{N} shares the {T} equally among {k} friends and keeps the remainder.",
  "Let the sequence satisfy a recurrence where each term is {k} times the previous term plus {k}.",
  "In the town of {P}, {k} percent of the {T} are {A} and the rest are {A}.",
  "A polynomial with {A} coefficients has roots {k}, {k} and {P}.",
  "{N} walks {k} {U} to the {P} and then rides {k} {U} back.",
  "The {A} {T} are arranged in a grid with {k} rows and {k} columns.",
  "A bag holds {k} {A} {T} and {k} {A} {T}; two are drawn without replacement.",
  "The factory {P} produces {k} {T} per hour during the {A} shift.",
];
const QUESTIONS = [
  "How many {T} does {N} have after {k} {D}s?",
  "What is the {Q} of the {S}?",
  "Find the probability that both are {A}.",
  "Compute the sum of the first {k} terms.",
  "Determine the smallest possible value of the {Q}.",
  "How many {U} does {N} travel in total?",
];
const SYL = ["ka", "ro", "mi", "tel", "van", "shu", "por", "den", "lix", "ga", "nor", "bi", "zen", "qua", "fe", "lum"];

function makeGenerator(seed: number) {
  const r = seededU32(seed);
  const pick = <X>(xs: X[]) => xs[r() % xs.length]!;
  const pseudo = Array.from({ length: 6000 }, () => Array.from({ length: 2 + (r() % 3) }, () => pick(SYL)).join(""));
  const adjectives = pseudo.slice(0, 3000).map((w) => `${w}ish`);
  const fill = (t: string) =>
    t.replace(/\{(\w)\}/g, (_, s: string) => {
      switch (s) {
        case "N": return pick(NAMES);
        case "T": return pick(THINGS);
        case "S": return pick(SHAPES);
        case "Q": return pick(QUANT);
        case "P": return pick(pseudo).replace(/^./, (c) => c.toUpperCase());
        case "A": return pick(adjectives);
        case "U": return pick(["meters", "kilometers", "miles", "inches"]);
        case "D": return pick(["day", "week", "month"]);
        default: return String(r() % 200);
      }
    });
  const fresh = () => [...Array.from({ length: 2 + (r() % 3) }, () => fill(pick(TEMPLATES))), fill(pick(QUESTIONS))].join(" ");
  const recent: string[] = [];
  return (): { prompt: string; kind: string } => {
    const roll = r() % 100;
    let prompt: string;
    let kind = "fresh";
    if (recent.length > 100 && roll < 8) {
      kind = "exact";
      prompt = pick(recent).toUpperCase().replace(/ /g, r() % 2 ? "  " : " \t");
    } else if (recent.length > 100 && roll < 16) {
      kind = "near";
      const words = pick(recent).split(" ");
      for (let k = 1 + (r() % 2); k > 0; k--) words[r() % words.length] = pick(adjectives);
      prompt = words.join(" ");
    } else prompt = fresh();
    if (recent.length < 5000) recent.push(prompt);
    else recent[r() % recent.length] = prompt;
    return { prompt, kind };
  };
}

function writeData(file: string, rows: number): Record<string, number> {
  const next = makeGenerator(2025);
  const kinds: Record<string, number> = {};
  const lines: string[] = [];
  for (let i = 0; i < rows; i++) {
    const { prompt, kind } = next();
    kinds[kind] = (kinds[kind] ?? 0) + 1;
    lines.push(JSON.stringify({ id: `p${String(i).padStart(7, "0")}`, prompt }));
    if (lines.length === 10_000 || i === rows - 1) writeFileSync(file, `${lines.splice(0).join("\n")}\n`, { flag: "a" });
  }
  return kinds;
}

// ---- running and measuring ----
interface Run {
  seconds: number; // the program's own timer
  wall: number;
  rssMiB: number;
}

function timed(cmd: string, argv: string[]): { run: Run; stdout: string; stderr: string } {
  const p = spawnSync("/usr/bin/time", ["-v", cmd, ...argv], { encoding: "utf8", cwd: ROOT, maxBuffer: 64 << 20 });
  if (p.status !== 0) throw new Error(`${cmd} ${argv.join(" ")} failed (${p.status}):\n${p.stderr}`);
  const rss = Number(/Maximum resident set size \(kbytes\): (\d+)/.exec(p.stderr)?.[1]);
  const w = /Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):([\d.]+)/.exec(p.stderr)!;
  const wall = Number(w[1] ?? 0) * 3600 + Number(w[2]) * 60 + Number(w[3]);
  return { run: { seconds: NaN, wall, rssMiB: rss / 1024 }, stdout: p.stdout, stderr: p.stderr };
}

function runOurs(inPath: string, outPath: string, bands: number, rows: number): Run {
  const r = timed(process.execPath, [join(ROOT, "bin", "promptcot.mjs"), "dedup", "--in", inPath, "--out", outPath, "--threshold", String(THRESHOLD), "--bands", String(bands), "--rows", String(rows), "--words", "promptcot"]);
  r.run.seconds = Number(/; ([\d.]+) s, \d+ rows\/s/.exec(r.stderr)![1]);
  return r.run;
}

function runReference(py: string, inPath: string, outPath: string, bands: number, rows: number): Run {
  const r = timed(py, [join(ROOT, "bench", "dedup_reference.py"), "--in", inPath, "--out", outPath, "--threshold", String(THRESHOLD), "--bands", String(bands), "--rows", String(rows)]);
  r.run.seconds = (JSON.parse(r.stdout.trim().split("\n").pop()!) as { seconds: number }).seconds;
  return r.run;
}

function benchPython(): string {
  const py = join(VENV, "bin", "python");
  const ok = () => existsSync(py) && spawnSync(py, ["-c", "import datasketch"]).status === 0;
  if (!ok()) {
    process.stderr.write(`creating ${VENV} (bench/requirements.txt) …\n`);
    for (const [cmd, argv] of [["python3", ["-m", "venv", VENV]], [py, ["-m", "pip", "install", "-q", "-r", join(ROOT, "bench", "requirements.txt")]]] as const) {
      const p = spawnSync(cmd, [...argv], { stdio: "inherit" });
      if (p.status !== 0) throw new Error(`${cmd} ${argv.join(" ")} failed`);
    }
  }
  return py;
}

const ids = (file: string) => readFileSync(file, "utf8").trim().split("\n").map((l) => (JSON.parse(l) as { id: string }).id);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

function summarize(name: string, runs: Run[]): { name: string; seconds: number; rowsPerS: number; wall: number; rssMiB: number } {
  const seconds = median(runs.map((r) => r.seconds));
  return { name, seconds, rowsPerS: ROWS / seconds, wall: median(runs.map((r) => r.wall)), rssMiB: median(runs.map((r) => r.rssMiB)) };
}

function main(): void {
  const dir = mkdtempSync(join(tmpdir(), "bench-dedup-"));
  const inPath = DATA ?? join(dir, "prompts.jsonl");
  rmSync(inPath, { force: true });
  const kinds = writeData(inPath, ROWS);
  const { bands, rows } = chooseBands(THRESHOLD);
  console.log(`data: ${ROWS} rows (${JSON.stringify(kinds)} planted), threshold ${THRESHOLD}, LSH ${bands}×${rows}, ${REPEATS} repeats, node ${process.version}`);
  const py = REFERENCE ? benchPython() : "";
  const ours: Run[] = [];
  const ref: Run[] = [];
  for (let i = 0; i < REPEATS; i++) {
    ours.push(runOurs(inPath, join(dir, "ours.jsonl"), bands, rows));
    if (REFERENCE) ref.push(runReference(py, inPath, join(dir, "ref.jsonl"), bands, rows));
  }
  const table = [summarize("promptcot dedup (TypeScript)", ours), ...(REFERENCE ? [summarize("datasketch 1.6.5 reference (Python)", ref)] : [])];
  console.log("| implementation | median s (own timer) | rows/s | median wall s | peak RSS MiB |\n| --- | --- | --- | --- | --- |");
  for (const t of table) console.log(`| ${t.name} | ${t.seconds.toFixed(2)} | ${Math.round(t.rowsPerS)} | ${t.wall.toFixed(2)} | ${t.rssMiB.toFixed(0)} |`);
  const keptOurs = ids(join(dir, "ours.jsonl"));
  console.log(`kept by ours: ${keptOurs.length}`);
  if (REFERENCE) {
    const keptRef = ids(join(dir, "ref.jsonl"));
    const a = new Set(keptOurs);
    const b = new Set(keptRef);
    const onlyOurs = keptOurs.filter((x) => !b.has(x));
    const onlyRef = keptRef.filter((x) => !a.has(x));
    console.log(`kept by reference: ${keptRef.length}; identical kept sets: ${onlyOurs.length === 0 && onlyRef.length === 0}` +
      (onlyOurs.length + onlyRef.length ? `; only ours kept ${onlyOurs.length} (e.g. ${onlyOurs.slice(0, 5).join(", ")}), only the reference kept ${onlyRef.length} (e.g. ${onlyRef.slice(0, 5).join(", ")})` : ""));
    console.log(`throughput ratio (ours / reference, own timers): ${(table[0]!.rowsPerS / table[1]!.rowsPerS).toFixed(1)}×; wall: ${(table[1]!.wall / table[0]!.wall).toFixed(1)}×`);
  }
  rmSync(dir, { recursive: true, force: true });
}

main();
