// Seed problems for synthesis: a seeded generator of short word problems whose concepts and answers are
// known (so the CPU experiment needs no data), or a user's JSONL (prompt, answer?, concepts?, level?).
import { createReadStream, existsSync } from "node:fs";
import { resolve } from "node:path";
import { createInterface } from "node:readline";
import { ConfigError } from "../config/errors.js";
import { rng } from "../experiment/ids.js";

export interface SeedProblem {
  id: string;
  prompt: string;
  answer?: string;
  /** Known concepts (generator, or the JSONL row's own): cold start keeps them and asks only for a rationale. */
  concepts?: string[];
  level?: string;
}

type R = () => number;
type Make = (r: R) => { prompt: string; answer: number; concepts: string[]; level: string };

const int = (r: R, lo: number, hi: number): number => lo + Math.floor(r() * (hi - lo + 1));
const pick = <T>(r: R, xs: readonly T[]): T => xs[int(r, 0, xs.length - 1)]!;
const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));
const NAMES = ["Tom", "Ana", "Li", "Sara", "Omar", "Mia", "Ben", "Zoe"];

// Each maker is one problem family with its concept set; answers are exact integers by construction.
const MAKERS: Make[] = [
  (r) => {
    const p = pick(r, [10, 20, 25, 40, 50]), n = int(r, 2, 9) * 20;
    return { prompt: `A shop sells ${n} shirts a week. ${p}% of them are blue. How many blue shirts does it sell a week?`, answer: (n * p) / 100, concepts: ["percentages", "multiplication"], level: "easy" };
  },
  (r) => {
    const a = int(r, 2, 9), b = int(r, 2, 9) + a;
    return { prompt: `One bus leaves every ${a} minutes and another every ${b} minutes. Both leave now. In how many minutes do they next leave together?`, answer: (a * b) / gcd(a, b), concepts: ["least common multiple", "divisibility"], level: "medium" };
  },
  (r) => {
    const w = int(r, 3, 12), h = int(r, 3, 12);
    return { prompt: `A rectangular garden is ${w} m wide and ${h} m long. What is its area in square metres?`, answer: w * h, concepts: ["area of a rectangle", "multiplication"], level: "easy" };
  },
  (r) => {
    const w = int(r, 3, 15), h = int(r, 3, 15);
    return { prompt: `A rectangle is ${w} cm by ${h} cm. What is its perimeter in centimetres?`, answer: 2 * (w + h), concepts: ["perimeter of a rectangle", "addition"], level: "easy" };
  },
  (r) => {
    const g = int(r, 2, 6), a = g * int(r, 2, 7), b = g * int(r, 8, 13);
    return { prompt: `${pick(r, NAMES)} has ${a} red and ${b} blue beads and wants identical bags using all beads. What is the largest number of bags?`, answer: gcd(a, b), concepts: ["greatest common divisor", "divisibility"], level: "medium" };
  },
  (r) => {
    const a = int(r, 2, 5), b = int(r, 2, 5), k = int(r, 2, 6);
    return { prompt: `Boys and girls in a club are in the ratio ${a}:${b}. There are ${a * k} boys. How many girls are there?`, answer: b * k, concepts: ["ratios", "proportional reasoning"], level: "medium" };
  },
  (r) => {
    const x = int(r, 2, 12), a = int(r, 2, 9), b = int(r, 1, 20);
    return { prompt: `Solve for x: ${a}x + ${b} = ${a * x + b}.`, answer: x, concepts: ["linear equations", "inverse operations"], level: "easy" };
  },
  (r) => {
    const a = int(r, 1, 9), d = int(r, 2, 6), n = int(r, 5, 12);
    return { prompt: `An arithmetic sequence starts ${a}, ${a + d}, ${a + 2 * d}, ... What is its ${n}th term?`, answer: a + (n - 1) * d, concepts: ["arithmetic sequences", "linear patterns"], level: "medium" };
  },
  (r) => {
    const k = int(r, 2, 6), xs = Array.from({ length: 4 }, () => int(r, 1, 9) * k);
    const fix = 4 * Math.ceil(xs.reduce((s, x) => s + x, 0) / 4) - xs.reduce((s, x) => s + x, 0);
    xs[3] = xs[3]! + fix;
    return { prompt: `The scores of four tests are ${xs.join(", ")}. What is the average score?`, answer: xs.reduce((s, x) => s + x, 0) / 4, concepts: ["averages", "addition"], level: "easy" };
  },
  (r) => {
    const v = int(r, 3, 12) * 5, t = int(r, 2, 6);
    return { prompt: `A train travels at ${v} km per hour for ${t} hours. How many kilometres does it travel?`, answer: v * t, concepts: ["speed, distance and time", "multiplication"], level: "easy" };
  },
  (r) => {
    const p = int(r, 2, 10) * 100, rate = pick(r, [2, 4, 5, 10]), y = int(r, 2, 5);
    return { prompt: `$${p} is invested at ${rate}% simple interest per year. How many dollars of interest are earned in ${y} years?`, answer: (p * rate * y) / 100, concepts: ["simple interest", "percentages"], level: "medium" };
  },
  (r) => {
    const d = pick(r, [2, 3, 4, 5]), m = int(r, 2, 6) * d;
    return { prompt: `${pick(r, NAMES)} eats 1/${d} of a bag of ${m} sweets. How many sweets are eaten?`, answer: m / d, concepts: ["fractions of a quantity", "division"], level: "easy" };
  },
];

/** `count` problems cycling through every family, so each concept appears; ids s0000, s0001, ... */
export function generatedSeeds(seed: number, count: number): SeedProblem[] {
  const r = rng(seed ^ 0x5eed);
  return Array.from({ length: count }, (_, i) => {
    const m = MAKERS[i % MAKERS.length]!(r);
    return { id: `s${String(i).padStart(4, "0")}`, prompt: m.prompt, answer: String(m.answer), concepts: m.concepts, level: m.level };
  });
}

/** Streams a JSONL of seed problems, validating each row; errors name file:line. */
export async function* readSeedsJsonl(path: string, limit: number): AsyncGenerator<SeedProblem> {
  const file = resolve(path);
  if (!existsSync(file)) throw new ConfigError("seed file not found (synthesis.seeds.path)", file);
  const lines = createInterface({ input: createReadStream(file, "utf8"), crlfDelay: Infinity });
  let n = 0;
  let lineNo = 0;
  for await (const line of lines) {
    lineNo++;
    if (!line.trim()) continue;
    if (n >= limit) break;
    yield seedFromRow(line, file, lineNo, n++);
  }
}

function seedFromRow(line: string, file: string, lineNo: number, index: number): SeedProblem {
  let row: Record<string, unknown>;
  try {
    row = JSON.parse(line) as Record<string, unknown>;
  } catch {
    throw new ConfigError("not valid JSON", file, lineNo);
  }
  const bad = (what: string) => new ConfigError(`${what} (expected {"prompt": string, "answer"?: string, "concepts"?: string[], "level"?: string})`, file, lineNo);
  if (typeof row.prompt !== "string" || !row.prompt.trim()) throw bad("missing or empty 'prompt'");
  if (row.answer !== undefined && typeof row.answer !== "string" && typeof row.answer !== "number") throw bad("'answer' must be a string or number");
  const concepts = row.concepts;
  if (concepts !== undefined && (!Array.isArray(concepts) || concepts.some((c) => typeof c !== "string" || !c.trim()))) throw bad("'concepts' must be a list of non-empty strings");
  if (row.level !== undefined && typeof row.level !== "string") throw bad("'level' must be a string");
  return {
    id: typeof row.id === "string" && /^[\w.-]{1,64}$/.test(row.id) ? row.id : `s${String(index).padStart(4, "0")}`,
    prompt: row.prompt,
    answer: row.answer === undefined ? undefined : String(row.answer),
    concepts: (concepts as string[] | undefined)?.length ? (concepts as string[]).map((c) => c.trim()) : undefined,
    level: row.level as string | undefined,
  };
}
