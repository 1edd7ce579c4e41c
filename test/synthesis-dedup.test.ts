// Dedup and decontamination (src/synthesis/dedup): the kept set against an independent brute-force
// implementation of the same rules, input order, benchmark overlap after light rewording, and the CLI's
// handling of bad input (exit 2, file:line, nothing written).
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { BenchmarkIndex, Deduplicator, dedupJsonlFile, dedupRows, loadBenchmarks, chooseBands, lshRecall } from "../src/synthesis/dedup/index.js";
import { UniversalHashes, murmur3Bytes, murmur3String, seededU32 } from "../src/synthesis/dedup/hash.js";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const FIX = join(ROOT, "test", "fixtures", "dedup");
const BENCH = [join(FIX, "benchmarks-chat.jsonl"), join(FIX, "benchmarks-plain.jsonl")];

// ---- an independent statement of the rules: string sets, no hashing, every pair compared ----
const SYMBOLS = "+-*/=^<>()[]{}|!%_×÷·⋅≤≥≠±∓√∑∏∫∞∈∪∩⊂⊆≡≈∘′";
/** The "math" rule by regex: words, and runs of numbers and symbols joined across spaces (a space kept between two numbers). */
function naiveMathTokens(text: string): { text: string; math: boolean }[] {
  const parts = text.toLowerCase().match(/[\p{L}\p{N}]+(?:\.[0-9]+)*|\s+|./gsu) ?? [];
  const out: { text: string; math: boolean }[] = [];
  let run: string[] = [];
  const flush = () => {
    const t = run.join("").replace(/\s+/g, "").replace(/\u0001/g, " ");
    if (run.length && !/^[()[\]{}|_-]*$/.test(t)) out.push({ text: t, math: true });
    run = [];
  };
  for (const p of parts) {
    const num = /^[0-9]+(?:\.[0-9]+)*$/.test(p);
    if (num || SYMBOLS.includes(p)) run.push(num && run.length && /[0-9]$/.test(run.filter((x) => !/^\s+$/.test(x)).at(-1)!) && /^\s+$/.test(run.at(-1)!) ? `\u0001${p}` : p);
    else if (/^\s+$/.test(p)) { if (run.length) run.push(p); }
    else {
      flush();
      if (/^[\p{L}\p{N}]/u.test(p)) out.push({ text: p.replace(/\./g, " ").split(" ")[0]!, math: false });
    }
  }
  flush();
  return out;
}
function naiveWords(text: string, rule: "math" | "promptcot" = "math"): Set<string> {
  if (rule === "math") return new Set(naiveMathTokens(text).filter((t) => t.math || [...t.text].length >= 4).map((t) => t.text));
  return new Set(text.toLowerCase().split(/[^\p{L}\p{N}]+/u).filter((w) => [...w].length >= 4 && !/^[0-9]+$/.test(w)));
}
function naiveJaccard(a: Set<string>, b: Set<string>): number {
  let inter = 0;
  for (const w of a) if (b.has(w)) inter++;
  const union = a.size + b.size - inter;
  return union === 0 ? 0 : inter / union;
}
function naiveKept(texts: string[], threshold = 0.8, rule: "math" | "promptcot" = "math"): number[] {
  const kept: number[] = [];
  const keys = new Set<string>();
  for (let i = 0; i < texts.length; i++) {
    const key = texts[i]!.toLowerCase().replace(/\s+/g, " ").trim();
    if (keys.has(key)) continue;
    const w = naiveWords(texts[i]!, rule);
    if (w.size > 0 && kept.some((k) => naiveJaccard(w, naiveWords(texts[k]!, rule)) >= threshold)) continue;
    kept.push(i);
    keys.add(key);
  }
  return kept;
}

const BASE = [
  "A rectangular garden measures twelve meters by eighteen meters. Gardeners plant roses along every border, spacing plants exactly half meter apart. How many roses are needed around the whole garden?",
  "Compute the remainder when the product of the first twenty positive integers is divided by the prime seventeen, using Wilson's theorem where helpful.",
  "Three friends share a pizza: Alice eats one third, Boris eats one quarter of the remainder, and Chloe eats everything left. What fraction did Chloe receive?",
  "Find all real values of the parameter such that the quadratic equation has two distinct positive roots whose product equals their sum.",
  "A train leaves the station travelling north at sixty kilometres per hour; another train follows thirty minutes later travelling faster. When does the second catch the first?",
];
// A rewording that keeps most of BASE[0]'s words: below the threshold, but LSH will propose it.
const SIMILAR_BELOW = "A rectangular garden measures twelve meters by eighteen meters. Volunteers plant tulips along each fence, spacing bulbs about half meter apart. How many tulips are required for this garden?";
const ROWS: { id: string; prompt: string; expect: "keep" | "exact_duplicate" | "near_duplicate"; of?: string }[] = [
  { id: "r0", prompt: BASE[0]!, expect: "keep" },
  { id: "r1", prompt: BASE[1]!, expect: "keep" },
  { id: "r2", prompt: `  ${BASE[0]!.toUpperCase().replace(/ /g, "   ")}\n`, expect: "exact_duplicate", of: "r0" },
  { id: "r3", prompt: BASE[1]!.replace("prime seventeen", "prime nineteen"), expect: "near_duplicate", of: "r1" },
  { id: "r4", prompt: BASE[2]!, expect: "keep" },
  { id: "r5", prompt: BASE[2]!.replace("Chloe eats", "Chloe takes"), expect: "near_duplicate", of: "r4" },
  { id: "r6", prompt: BASE[3]!.replace("distinct", "different"), expect: "keep" },
  { id: "r7", prompt: BASE[3]!, expect: "near_duplicate", of: "r6" },
  { id: "r8", prompt: SIMILAR_BELOW, expect: "keep" },
  { id: "r9", prompt: BASE[4]!, expect: "keep" },
  { id: "r10", prompt: BASE[4]!.replace("another train", "a second train").replace("sixty", "seventy"), expect: "near_duplicate", of: "r9" },
  { id: "r11", prompt: "What is 37 + 41?", expect: "keep" },
  { id: "r12", prompt: "what is  37 + 41?", expect: "exact_duplicate", of: "r11" },
];

function tmp(): string {
  return mkdtempSync(join(tmpdir(), "dedup-test-"));
}
function writeRows(dir: string, rows: object[], name = "in.jsonl"): string {
  const p = join(dir, name);
  writeFileSync(p, rows.map((r) => JSON.stringify(r)).join("\n") + "\n");
  return p;
}
function readJsonl(p: string): Record<string, unknown>[] {
  return readFileSync(p, "utf8").trim().split("\n").filter(Boolean).map((l) => JSON.parse(l));
}

describe("hashing", () => {
  it("murmur3_32 matches the reference vectors, and the ASCII fast path equals hashing the UTF-8 bytes", () => {
    expect(murmur3String("", 0)).toBe(0);
    expect(murmur3String("", 1)).toBe(0x514e28b7);
    expect(murmur3String("test", 0)).toBe(0xba6bd213);
    expect(murmur3String("Hello, world!", 0x9747b28c)).toBe(0x24884cba);
    expect(murmur3String("The quick brown fox jumps over the lazy dog", 0x9747b28c)).toBe(0x2fa826cd);
    for (const s of ["Gödel", "平面", "x²", "🙂 ok"]) {
      const bytes = new TextEncoder().encode(s);
      expect(murmur3String(s, 7)).toBe(murmur3Bytes(bytes, bytes.length, 7));
    }
    expect(murmur3String("xxabcdyy", 3, 2, 6)).toBe(murmur3String("abcd", 3));
  });

  it("the universal hashes equal ((a·x + b) mod 2^64) >> 32 computed with BigInt", () => {
    const h = new UniversalHashes(16, 42);
    const next = seededU32(42);
    const r = seededU32(9);
    for (let i = 0; i < 16; i++) {
      const aHi = BigInt(next());
      const aLo = BigInt((next() | 1) >>> 0);
      const bHi = BigInt(next());
      const bLo = BigInt(next());
      const a = (aHi << 32n) | aLo;
      const b = (bHi << 32n) | bLo;
      for (const x of [0, 1, 0xffffffff, 0x80000000, r(), r(), r()]) {
        const want = Number((((a * BigInt(x) + b) & ((1n << 64n) - 1n)) >> 32n));
        expect(h.hash(i, x)).toBe(want);
      }
    }
  });

  it("chooses 25 bands × 5 rows at 0.8 (recall ≥ 0.999 at the threshold)", () => {
    expect(chooseBands(0.8)).toEqual({ bands: 25, rows: 5 });
    expect(lshRecall(0.8, 25, 5)).toBeGreaterThan(0.999);
    expect(lshRecall(0.8, 21, 6)).toBeLessThan(0.999);
  });
});

describe("dedup", () => {
  it("keeps exactly the distinct rows of a constructed set, in input order, naming what each drop duplicates", async () => {
    // The labels are checked against the independent rule first, so the set really has the shape claimed.
    const texts = ROWS.map((r) => r.prompt);
    expect(naiveKept(texts).map((i) => ROWS[i]!.id)).toEqual(ROWS.filter((r) => r.expect === "keep").map((r) => r.id));
    expect(naiveJaccard(naiveWords(SIMILAR_BELOW), naiveWords(BASE[0]!))).toBeGreaterThan(0.4);
    expect(naiveJaccard(naiveWords(SIMILAR_BELOW), naiveWords(BASE[0]!))).toBeLessThan(0.8);

    const dir = tmp();
    const inPath = writeRows(dir, ROWS.map(({ id, prompt }) => ({ id, prompt, extra: { n: 1 } })));
    const s = await dedupJsonlFile({ inPath, outPath: join(dir, "out.jsonl"), reportPath: join(dir, "report.jsonl") });
    const out = readJsonl(join(dir, "out.jsonl"));
    expect(out.map((r) => r.id)).toEqual(ROWS.filter((r) => r.expect === "keep").map((r) => r.id));
    expect(out[0]).toEqual({ id: "r0", prompt: BASE[0], extra: { n: 1 } });
    const report = readJsonl(join(dir, "report.jsonl"));
    const dropped = ROWS.map((r, i) => ({ ...r, index: i })).filter((r) => r.expect !== "keep");
    expect(report.map((r) => [r.id, r.reason, (r.of as { id: string }).id])).toEqual(dropped.map((r) => [r.id, r.expect, r.of]));
    expect(report[0]).toMatchObject({ index: 2, line: 3, of: { index: 0, line: 1, id: "r0" } });
    expect(report.find((r) => r.id === "r5")!.jaccard).toBeCloseTo(naiveJaccard(naiveWords(ROWS[5]!.prompt), naiveWords(ROWS[4]!.prompt)), 12);
    expect(s).toMatchObject({ rows: 13, kept: 7, dropped: { exact_duplicate: 2, near_duplicate: 4, contaminated: 0 } });
    expect(s.candidates).toBeGreaterThanOrEqual(4); // r8 vs r0 was proposed by LSH and rejected by Jaccard
  });

  it("agrees with brute force on 600 generated rows with planted exact and near duplicates", () => {
    const rnd = seededU32(11);
    const vocab = Array.from({ length: 400 }, (_, i) => `w${i.toString(36)}ord${"abcdefgh"[i % 8]}`);
    const texts: string[] = [];
    for (let i = 0; i < 600; i++) {
      const kind = rnd() % 10;
      if (texts.length > 0 && kind < 2) texts.push(texts[rnd() % texts.length]!.toUpperCase());
      else if (texts.length > 0 && kind < 5) {
        const words = texts[rnd() % texts.length]!.split(" ");
        for (let k = 0; k <= kind - 2; k++) words[rnd() % words.length] = vocab[rnd() % vocab.length]!;
        texts.push(words.join(" "));
      } else texts.push(Array.from({ length: 12 + (rnd() % 10) }, () => `${vocab[rnd() % 40]} ${rnd() % 100}`).join(" "));
    }
    for (const words of ["math", "promptcot"] as const) {
      const d = new Deduplicator({ words });
      const kept = texts.flatMap((t, i) => (d.check(t, { index: i, line: i + 1 }).keep ? [i] : []));
      const want = naiveKept(texts, 0.8, words);
      expect(want.length, words).toBeLessThan(500);
      expect(want.length, words).toBeGreaterThan(200);
      expect(kept, words).toEqual(want);
    }
  });

  it("streams: dedupRows yields each row with its verdict as it arrives", async () => {
    async function* gen() {
      for (const r of ROWS.slice(0, 6)) yield r;
    }
    const seen: string[] = [];
    for await (const { row, verdict } of dedupRows(gen(), (r) => r.prompt, { id: (r) => r.id })) {
      seen.push(`${row.id}:${verdict.keep ? "keep" : verdict.reason}`);
    }
    expect(seen).toEqual(["r0:keep", "r1:keep", "r2:exact_duplicate", "r3:near_duplicate", "r4:keep", "r5:near_duplicate"]);
  });
});

describe("decontamination", () => {
  const rows = [
    // BENCH chat #0 with its last two sentences reworded: a 13-gram at the start survives.
    { id: "c-ngram", prompt: "A bakery sells muffins for $3 each and cookies for $2 each. On Monday Maria bought 4 muffins and twice as many cookies as muffins. She paid using a $50 note. What change was she given?\nPlease reason step by step, and put your final answer within \\boxed{}." },
    // BENCH chat #2 (ChatML template in the benchmark file): the question reworded.
    { id: "c-template", prompt: "A circle of radius 5 is inscribed in a right triangle whose hypotenuse has length 26. Determine the triangle's perimeter." },
    // BENCH plain b-0, rearranged so no 13 consecutive words are shared; the word set is the same.
    { id: "c-jaccard", prompt: "For every positive integer $n$, the first $n$ terms of an arithmetic sequence add to $3n^2+5n$. What is the tenth term of the sequence?" },
    // Only the sentence that two benchmark items share, plus the instruction suffix: not contamination.
    { id: "clean-shared", prompt: "A spinner has eight equal sectors numbered one through eight. What is the chance of landing on a prime? Express your answer as a common fraction in lowest terms with the numerator written before the denominator.\nPlease reason step by step, and put your final answer within \\boxed{}." },
    { id: "c-short", prompt: "Compute $7+8$." },
    { id: "clean", prompt: "Tom and Jerry collect stamps; together they own ninety stamps and Tom owns twice as many. How many stamps does Jerry own?" },
  ];

  it("catches lightly reworded benchmark problems, names the item, and ignores shared template phrasing", async () => {
    const dir = tmp();
    const inPath = writeRows(dir, rows);
    const s = await dedupJsonlFile({ inPath, outPath: join(dir, "out.jsonl"), reportPath: join(dir, "report.json"), against: BENCH });
    expect(readJsonl(join(dir, "out.jsonl")).map((r) => r.id)).toEqual(["clean-shared", "clean"]);
    const report = JSON.parse(readFileSync(join(dir, "report.json"), "utf8"));
    const by = Object.fromEntries(report.dropped.map((r: { id: string }) => [r.id, r]));
    expect(by["c-ngram"]).toMatchObject({ reason: "contaminated", match: "ngram", item: { file: BENCH[0], line: 1, id: "0" } });
    expect(by["c-ngram"].ngram.split(" ")).toHaveLength(13);
    expect(by["c-template"]).toMatchObject({ match: "ngram", item: { file: BENCH[0], line: 3, id: "2" } });
    expect(by["c-template"].ngram).toBe("a circle of radius 5 is inscribed in a right triangle whose hypotenuse");
    expect(by["c-jaccard"]).toMatchObject({ match: "jaccard", item: { file: BENCH[1], line: 1, id: "b-0" }, jaccard: 1 });
    expect(by["c-short"]).toMatchObject({ match: "ngram", item: { id: "b-3" } });
    expect(report.summary).toMatchObject({ rows: 6, kept: 2, benchmarkItems: 8, dropped: { contaminated: 4 } });
  });

});

describe("numbers and expressions (word rule \"math\")", () => {
  const index = (texts: string[], words: "math" | "promptcot" = "math") => {
    const b = new BenchmarkIndex(0.8, 1, words);
    texts.forEach((text, i) => b.add({ file: "held-out", line: i + 1, text }));
    return b;
  };
  const check = (bench: string[], row: string, words: "math" | "promptcot" = "math") =>
    new Deduplicator({ words, benchmarks: index(bench, words) }).check(row, { index: 0, line: 1 });
  const SHOP = "A shop sells pens at 3 dollars each and notebooks at 5 dollars each. Ana buys 2 pens and 4 notebooks. How much does she pay?";

  it("compares expressions without their spacing, in order, a decimal as one number", () => {
    const w = (t: string) => [...naiveWords(t)].sort();
    expect(w("What is 3 + 4 * 2?")).toEqual(["3+4*2", "what"]);
    expect(w("what is 3+4*2")).toEqual(w("What is 3 + 4 * 2?"));
    expect(w("What is 4 + 3 * 2?")).not.toEqual(w("What is 3 + 4 * 2?"));
    expect(w("What is (3 + 4) * 2?")).not.toEqual(w("What is 3 + (4 * 2)?"));
    expect(w("Take 1 000 apples")).not.toEqual(w("Take 1000 apples"));
    expect(w("Pour 3.5 liters, a well-known trick (in liters)")).toEqual(["3.5", "known", "liters", "pour", "take", "trick", "well"].filter((x) => x !== "take"));
    // the library's word sets are the regex statement's: Jaccard over them decides, so compare verdicts
    const d = new Deduplicator({ threshold: 1 });
    const texts = ["What is 3 + 4 * 2?", "what is 3+4*2", "What is 4 + 3 * 2?", "What is (3 + 4) * 2?", "Take 1 000 apples", "Take 1000 apples", "Pour 3.5 liters"];
    expect(texts.filter((t, i) => d.check(t, { index: i, line: i + 1 }).keep)).toEqual(texts.filter((_, i) => naiveKept(texts, 1).includes(i)));
  });

  it("does not flag a held-out problem's template with other numbers (PromptCoT's word rule did, at Jaccard 1)", () => {
    const pairs: [string, string][] = [
      ["What is 5 + 1 * 7?", "What is 3 + 4 * 2?"],
      ["What is 3 + 4 * 2?", "What is 4 + 3 * 2?"],
      ["What is 6 + 8?", "What is 7 + 5?"],
      [SHOP, SHOP.replace("at 3", "at 6").replace("at 5", "at 8").replace("buys 2", "buys 3").replace("and 4", "and 7")],
    ];
    for (const [held, row] of pairs) {
      expect(check([held], row), row).toEqual({ keep: true });
      expect(check([held], row, "promptcot"), row).toMatchObject({ keep: false, reason: "contaminated", match: "jaccard", jaccard: 1 });
    }
    // among synthesized problems alike: two arithmetic questions are two problems
    const d = new Deduplicator();
    expect(d.check("What is 3 + 4 * 2?", { index: 0, line: 1 })).toEqual({ keep: true });
    expect(d.check("What is 5 + 1 * 7?", { index: 1, line: 2 })).toEqual({ keep: true });
  });

  it("still flags the same problem re-spaced, re-cased or re-worded", () => {
    expect(check(["What is 3 + 4 * 2?"], "what is 3+4*2")).toMatchObject({ keep: false, reason: "contaminated", match: "ngram", ngram: "what is 3+4*2" });
    expect(check(["What is 3 + 4 * 2?"], "WHAT IS 3 +4 * 2 ?")).toMatchObject({ keep: false, reason: "contaminated" });
    expect(check([SHOP], SHOP.replace("A shop", "A store").replace("pay?", "pay in total?"))).toMatchObject({ keep: false, reason: "contaminated" });
    // short words changed throughout: no 13 tokens in a row survive, the word set (with the numbers) does
    expect(check([SHOP], SHOP.replace(/ at /g, " for ").replace(/ and /g, " & "))).toMatchObject({ keep: false, reason: "contaminated", match: "jaccard", jaccard: 1 });
    const d = new Deduplicator();
    d.check("What is 3 + 4 * 2?", { index: 0, line: 1, id: "a" });
    expect(d.check("what is 3+4*2 ?", { index: 1, line: 2 })).toMatchObject({ keep: false, reason: "near_duplicate", of: { id: "a" }, jaccard: 1 });
  });

  it("refuses a benchmark index built with another word rule", () => {
    expect(() => new Deduplicator({ words: "math", benchmarks: index([], "promptcot") })).toThrow(/same rule/);
  });
});

describe("promptcot dedup (CLI)", () => {
  const cli = (args: string[]) => spawnSync(process.execPath, [join(ROOT, "bin", "promptcot.mjs"), "dedup", ...args], { encoding: "utf8", cwd: ROOT });

  it("reports bad JSON and a missing field with file:line, exits 2 and writes nothing", () => {
    const dir = tmp();
    const bad = join(dir, "bad.jsonl");
    writeFileSync(bad, `${JSON.stringify({ prompt: "one" })}\n\n{"prompt": "two",\n`);
    const r = cli(["--in", bad, "--out", join(dir, "out.jsonl"), "--report", join(dir, "rep.jsonl")]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(`${bad}:3`);
    expect(r.stderr).toMatch(/not valid JSON/);
    const missing = join(dir, "missing.jsonl");
    writeFileSync(missing, `${JSON.stringify({ prompt: "one" })}\n${JSON.stringify({ problem: "two" })}\n`);
    const m = cli(["--in", missing, "--out", join(dir, "out.jsonl")]);
    expect(m.status).toBe(2);
    expect(m.stderr).toContain(`${missing}:2`);
    expect(m.stderr).toMatch(/no string field 'prompt'.*--field/);
    const badBench = join(dir, "bench.jsonl");
    writeFileSync(badBench, `${JSON.stringify({ text: "x" })}\n`);
    const b = cli(["--in", missing, "--out", join(dir, "out.jsonl"), "--field", "prompt", "--against", badBench]);
    expect(b.status).toBe(2);
    expect(b.stderr).toContain(`${badBench}:1`);
    expect(readdirSync(dir).sort()).toEqual(["bad.jsonl", "bench.jsonl", "missing.jsonl"]);
  });

  it("dedups a file end to end with --field, --threshold and --against", () => {
    const dir = tmp();
    const inPath = writeRows(dir, ROWS.map(({ id, prompt }) => ({ id, problem: prompt })));
    const r = cli(["--in", inPath, "--out", join(dir, "out.jsonl"), "--field", "problem", "--threshold", "0.4", "--against", ...BENCH, "--report", join(dir, "r.jsonl")]);
    expect(r.status).toBe(0);
    expect(r.stderr).toMatch(/dedup: 13 rows, kept \d+; dropped 2 exact/);
    const want = naiveKept(ROWS.map((x) => x.prompt), 0.4).map((i) => ROWS[i]!.id);
    expect(readJsonl(join(dir, "out.jsonl")).map((x) => x.id)).toEqual(want);
    expect(want).not.toContain("r8"); // at 0.4 the similar rewording (Jaccard 0.43) is a duplicate
    const bad = cli(["--in", inPath, "--out", join(dir, "o2.jsonl"), "--threshold", "1.5"]);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/--threshold must be a number in \(0, 1\]/);
  });

  it("--words promptcot compares PromptCoT's word sets (template arithmetic collapses); a bad rule exits 2", () => {
    const dir = tmp();
    const inPath = writeRows(dir, [{ id: "a", prompt: "What is 3 + 4 * 2?" }, { id: "b", prompt: "What is 5 + 1 * 7?" }]);
    const kept = (words: string[]) => {
      const r = cli(["--in", inPath, "--out", join(dir, "o.jsonl"), ...words]);
      expect(r.status, r.stderr).toBe(0);
      return readJsonl(join(dir, "o.jsonl")).map((x) => x.id);
    };
    expect(kept([])).toEqual(["a", "b"]);
    expect(kept(["--words", "promptcot"])).toEqual(["a"]);
    const bad = cli(["--in", inPath, "--out", join(dir, "o.jsonl"), "--words", "letters"]);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/--words must be one of math, promptcot, got 'letters'/);
  });
});
