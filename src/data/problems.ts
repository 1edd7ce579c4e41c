// Problems the self-play loop trains and evaluates on: a seeded arithmetic generator (the quickstart's
// data: easy sums and one-step word problems with known answers) or a user's JSONL file.
import { readFileSync } from "node:fs";
import { rng } from "../experiment/ids.js";

export interface Problem {
  id: string;
  prompt: string;
  answer: string;
  source: string;
}

type Make = (r: () => number) => { q: string; a: number };

const int = (r: () => number, lo: number, hi: number): number => lo + Math.floor(r() * (hi - lo + 1));
const NAMES = ["Tom", "Ana", "Li", "Sara", "Omar", "Mia", "Ben", "Zoe"];
const THINGS = ["apples", "pencils", "stickers", "marbles", "books", "coins"];

// A spread of difficulty so a 135M model passes some but not all: one-digit sums are easy,
// two-digit sums and word problems are not.
const MAKERS: Make[] = [
  (r) => { const a = int(r, 1, 9), b = int(r, 1, 9); return { q: `What is ${a} + ${b}?`, a: a + b }; },
  (r) => { const a = int(r, 10, 49), b = int(r, 2, 9); return { q: `What is ${a} + ${b}?`, a: a + b }; },
  (r) => { const a = int(r, 5, 19), b = int(r, 1, a - 1); return { q: `What is ${a} - ${b}?`, a: a - b }; },
  (r) => { const a = int(r, 2, 9), b = int(r, 2, 9); return { q: `What is ${a} * ${b}?`, a: a * b }; },
  (r) => {
    const n = NAMES[int(r, 0, NAMES.length - 1)]!, t = THINGS[int(r, 0, THINGS.length - 1)]!;
    const a = int(r, 2, 9), b = int(r, 1, 9);
    return { q: `${n} has ${a} ${t} and gets ${b} more. How many ${t} does ${n} have now?`, a: a + b };
  },
  (r) => {
    const n = NAMES[int(r, 0, NAMES.length - 1)]!, t = THINGS[int(r, 0, THINGS.length - 1)]!;
    const a = int(r, 6, 15), b = int(r, 1, 5);
    return { q: `${n} had ${a} ${t} and gave away ${b}. How many ${t} are left?`, a: a - b };
  },
];

function generate(seed: number, count: number, prefix: string, exclude: Set<string>): Problem[] {
  const r = rng(seed);
  const out: Problem[] = [];
  const seen = new Set(exclude);
  for (let tries = 0; out.length < count; tries++) {
    if (tries > count * 1000) throw new Error(`arithmetic generator could not find ${count} distinct problems`);
    const { q, a } = MAKERS[out.length % MAKERS.length]!(r);
    if (seen.has(q)) continue;
    seen.add(q);
    out.push({ id: `${prefix}${String(out.length).padStart(4, "0")}`, prompt: q, answer: String(a), source: "arithmetic" });
  }
  return out;
}

/** Train and held-out splits from one seed; held-out never repeats a train question. */
export function arithmeticSplits(seed: number, trainSize: number, heldoutSize: number): { train: Problem[]; heldout: Problem[] } {
  const train = generate(seed * 2 + 1, trainSize, "t", new Set());
  const heldout = generate(seed * 2 + 2, heldoutSize, "h", new Set(train.map((p) => p.prompt)));
  return { train, heldout };
}

/** Reads `{prompt, answer}` rows (PromptCoT field names); a bad row is reported with its line number. */
export function readProblemsJsonl(path: string, prefix: string): Problem[] {
  const lines = readFileSync(path, "utf8").split("\n");
  const out: Problem[] = [];
  lines.forEach((line, i) => {
    if (!line.trim()) return;
    let row: unknown;
    try {
      row = JSON.parse(line);
    } catch {
      throw new Error(`${path}:${i + 1}: not valid JSON`);
    }
    const { prompt, answer, source } = row as Record<string, unknown>;
    if (typeof prompt !== "string" || typeof answer !== "string") {
      throw new Error(`${path}:${i + 1}: each row needs string fields 'prompt' and 'answer'`);
    }
    out.push({ id: `${prefix}${String(out.length).padStart(4, "0")}`, prompt, answer, source: typeof source === "string" ? source : "jsonl" });
  });
  return out;
}
