// Writes heldout-96.jsonl and train-96.jsonl: 96 grade-school problems each in the style of the seeds (8
// kinds, 12 of each), from a fixed seed, with their answers. A problem already written, a seed or a row of
// heldout.jsonl is skipped, so all sets stay disjoint. train-96 is the seed-problem arm's pool (the twin of
// experiments/selfplay-synth-power.yaml). Run: node experiments/data/selfplay-synth/make-problems.mjs
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
// mulberry32: a small generator whose low bits do not cycle (an LCG's do, which repeats problems)
let state = 20261207;
const rand = (lo, hi) => {
  state = (state + 0x6d2b79f5) >>> 0;
  let t = state;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  const u = ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  return lo + Math.floor(u * (hi - lo + 1));
};
const names = ["Tom", "Ana", "Ben", "Mia", "Zoe", "Leo", "Ivy", "Sam"];
const things = ["apples", "pencils", "stickers", "coins", "books", "shells"];
const kinds = [
  () => { const a = rand(2, 49), b = rand(2, 49); return [`What is ${a} + ${b}?`, a + b]; },
  () => { const a = rand(10, 60), b = rand(2, a - 1); return [`What is ${a} - ${b}?`, a - b]; },
  () => { const a = rand(2, 12), b = rand(2, 12); return [`What is ${a} * ${b}?`, a * b]; },
  () => { const b = rand(2, 9), q = rand(2, 12); return [`What is ${b * q} / ${b}?`, q]; },
  () => { const n = names[rand(0, 7)], t = things[rand(0, 5)], a = rand(3, 30), b = rand(2, 20); return [`${n} has ${a} ${t} and gets ${b} more. How many ${t} does ${n} have now?`, a + b]; },
  () => { const n = names[rand(0, 7)], t = things[rand(0, 5)], a = rand(10, 40), b = rand(2, a - 1); return [`${n} had ${a} ${t} and gave ${b} away. How many ${t} does ${n} have left?`, a - b]; },
  () => { const a = rand(2, 9), b = rand(2, 9), c = rand(2, 9); return [`What is ${a} + ${b} * ${c}?`, a + b * c]; },
  () => { const a = rand(2, 9), b = rand(2, 9), c = rand(2, 6); return [`What is (${a} + ${b}) * ${c}?`, (a + b) * c]; },
];
const taken = new Set(["seeds.jsonl", "heldout.jsonl"].flatMap((f) => readFileSync(join(here, f), "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l).prompt)));
function problems() {
  const rows = [];
  for (const kind of kinds) {
    for (let n = 0, tries = 0; n < 12; ) {
      if (++tries > 10_000) throw new Error("make-problems: cannot find 12 new problems of a kind");
      const [prompt, answer] = kind();
      if (taken.has(prompt)) continue;
      taken.add(prompt);
      rows.push({ prompt, answer: String(answer) });
      n++;
    }
  }
  return rows;
}
for (const name of ["heldout-96.jsonl", "train-96.jsonl"]) {
  const rows = problems();
  writeFileSync(join(here, name), rows.map((r) => JSON.stringify(r)).join("\n") + "\n");
  console.log(`${name}: ${rows.length} problems`);
}
