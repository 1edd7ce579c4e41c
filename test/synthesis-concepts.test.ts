// Concept pools and samplers: loader errors, counts, and the samplers' statistics on constructed pools,
// with probabilities worked out by hand; embedConcepts against a real worker, resumed from the journal.
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WorkerPool } from "../src/cluster/pool.js";
import { ConfigError } from "../src/config/errors.js";
import { Journal } from "../src/experiment/journal.js";
import type { WorkerRpc } from "../src/rpc/worker-client.js";
import {
  conceptPoolFromSets,
  embedConcepts,
  EMBED_STAGE,
  expectedInclusion,
  promptcotSampler,
  readConceptPool,
  uniformSampler,
  type EmbedContext,
} from "../src/synthesis/concepts.js";

const dir = mkdtempSync(join(tmpdir(), "pcot-concepts-"));
const file = (name: string, text: string) => {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
};
const sets = (...groups: [string[], number][]) => groups.flatMap(([c, k]) => Array.from({ length: k }, () => ({ concepts: c })));
const vec = (...x: number[]) => Float32Array.from(x);
/** |observed - p| within 4 binomial standard deviations over n trials. */
const nearBinomial = (hits: number, n: number, p: number) => expect(Math.abs(hits / n - p)).toBeLessThan(4 * Math.sqrt((p * (1 - p)) / n));

function draws(sampler: { sample(s: number): { concepts: string[] } }, n: number, offset = 0): string[][] {
  return Array.from({ length: n }, (_, i) => sampler.sample(offset + i).concepts);
}

describe("readConceptPool", () => {
  it("reads both row shapes: frequencies, co-occurrence, levels; blank lines skipped", async () => {
    const p = await readConceptPool(
      file("pool.jsonl", [
        '{"concepts": ["primes", "modular arithmetic"], "level": "AIME"}',
        "",
        '{"concepts": ["primes", "modular arithmetic", " divisors "], "level": "AMC12"}',
        '{"concept": "primes"}',
        '{"concepts": ["divisors", "divisors"], "level": "AIME"}',
      ].join("\n")),
    );
    expect(p.concepts).toEqual(["primes", "modular arithmetic", "divisors"]);
    expect([...p.freq]).toEqual([3, 2, 2]);
    const [primes, mod, div] = [0, 1, 2];
    expect(p.cooc(primes, mod)).toBe(2);
    expect(p.cooc(mod, primes)).toBe(2);
    expect(p.cooc(primes, div)).toBe(1);
    expect(p.cooc(div, div)).toBe(0); // repeated within a row: not a co-occurrence, counted once in freq
    expect(p.levels).toEqual(["AIME", "AMC12"]);
    expect(p.sets).toBe(4);
    expect([...p.neighbours(div)]).toEqual([[primes, 1], [mod, 1]]);
  });

  it.each([
    ['{"concept": "a"}\n{"concept": "b"\n', 2, "not valid JSON"],
    ['{"concept": "a"}\n\n{"topic": "b"}\n', 3, "no 'concept' or 'concepts' key"],
    ['{"concepts": ["a", 3]}\n', 1, "'concepts[1]' must be a non-empty string"],
    ['{"concepts": []}\n', 1, "'concepts' is empty"],
    ['{"concept": "  "}\n', 1, "'concept' must be a non-empty string"],
    ['{"concept": "a", "level": 5}\n', 1, "'level' must be a non-empty string"],
    ['["a"]\n', 1, "not a JSON object"],
  ])("rejects a bad row with file:line (%#)", async (text, line, what) => {
    const path = file(`bad-${line}-${what.length}.jsonl`, text);
    const err = await readConceptPool(path).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).format()).toContain(`${path}:${line}: ${what}`);
    expect((err as ConfigError).exitCode).toBe(2);
  });

  it("rejects a missing or empty file", async () => {
    await expect(readConceptPool(join(dir, "nope.jsonl"))).rejects.toThrow(/not found/);
    await expect(readConceptPool(file("empty.jsonl", "\n\n"))).rejects.toThrow(/no rows/);
  });
});

describe("promptcotSampler", () => {
  it("draws the first concept by frequency (binomial tolerance)", () => {
    const pool = conceptPoolFromSets(sets([["a"], 6], [["b"], 3], [["c"], 1]));
    const first = draws(promptcotSampler(pool, null, { size: 1, tau: 0.2 }), 10_000).map((s) => s[0]);
    nearBinomial(first.filter((c) => c === "a").length, first.length, 0.6);
    nearBinomial(first.filter((c) => c === "c").length, first.length, 0.1);
  });

  it("with small tau the next concept follows co-occurrence; with large tau it does not", () => {
    const pool = conceptPoolFromSets(sets([["a", "b"], 3], [["c", "d"], 3], [["e", "f"], 3]));
    const partner: Record<string, string> = { a: "b", b: "a", c: "d", d: "c", e: "f", f: "e" };
    const paired = (tau: number) => draws(promptcotSampler(pool, null, { size: 2, tau }), 2000).filter(([x, y]) => partner[x!] === y).length;
    expect(paired(0.05)).toBe(2000);
    nearBinomial(paired(100), 2000, 0.2); // 3/100 is tiny next to 1: close to uniform over the other five
  });

  it("without co-occurrence the next concept follows embedding similarity", () => {
    const pool = conceptPoolFromSets(sets([["a"], 1], [["b"], 1], [["c"], 1], [["d"], 1]));
    // cos(a,b) = cos(c,d) = 0.95, every other pair 0.
    const emb = [vec(1, 0, 0, 0), vec(0.95, 0.31225, 0, 0), vec(0, 0, 1, 0), vec(0, 0, 0.95, 0.31225)];
    const partner: Record<string, string> = { a: "b", b: "a", c: "d", d: "c" };
    const out = draws(promptcotSampler(pool, emb, { size: 2, tau: 0.02 }), 1000);
    expect(out.every(([x, y]) => partner[x!] === y)).toBe(true);
    const unguided = draws(promptcotSampler(pool, null, { size: 2, tau: 0.02 }), 1000);
    nearBinomial(unguided.filter(([x, y]) => partner[x!] === y).length, 1000, 1 / 3);
  });

  it("adds co-occurrence and cosine: P(x | a) = e / (1 + e) when x scores 1 + 0 and y 0 + 0.95 at tau 0.05", () => {
    const pool = conceptPoolFromSets([{ concepts: ["a", "x"] }, { concepts: ["y"] }]);
    const emb = [vec(1, 0, 0), vec(0, 1, 0), vec(0.95, 0, 0.31225)];
    const afterA = draws(promptcotSampler(pool, emb, { size: 2, tau: 0.05 }), 9000).filter((s) => s[0] === "a");
    expect(afterA.length).toBeGreaterThan(2500);
    nearBinomial(afterA.filter((s) => s[1] === "x").length, afterA.length, Math.E / (1 + Math.E));
  });

  it("sums co-occurrence over all chosen concepts: P(c | {a,b}) = e^2 / (e^2 + e^1) at tau 1", () => {
    // cooc(c,a) = cooc(c,b) = 1 (sum 2); cooc(d,a) = 1, cooc(d,b) = 0 (sum 1). Max would give 1/2, mean e^.5/(1+e^.5).
    const pool = conceptPoolFromSets([...sets([["a", "b"], 3]), { concepts: ["a", "c"] }, { concepts: ["b", "c"] }, { concepts: ["a", "d"] }]);
    const out = draws(promptcotSampler(pool, null, { size: 3, tau: 1 }), 12_000).filter((s) => new Set(s.slice(0, 2)).has("a") && new Set(s.slice(0, 2)).has("b"));
    expect(out.length).toBeGreaterThan(3000);
    nearBinomial(out.filter((s) => s[2] === "c").length, out.length, Math.E / (1 + Math.E));
  });

  it("never repeats a concept, is deterministic per seed, and tags a level from the pool", () => {
    const names = Array.from({ length: 12 }, (_, i) => `k${i}`);
    const pool = conceptPoolFromSets(Array.from({ length: 40 }, (_, i) => ({ concepts: [names[i % 12]!, names[(i * 5) % 12]!, names[(i * 7 + 1) % 12]!], level: i % 2 ? "AIME" : "AMC12" })));
    const emb = names.map((_, i) => vec(Math.cos(i), Math.sin(i), 0.1 * i));
    const s = promptcotSampler(pool, emb, { size: 5, tau: 0.2 });
    const out = draws(s, 500);
    for (const set of out) expect(new Set(set).size).toBe(5);
    expect(draws(s, 50)).toEqual(out.slice(0, 50));
    expect(new Set(out.map((x) => x.join("|"))).size).toBeGreaterThan(20);
    expect(s.sample(2 ** 40 + 3)).not.toEqual(s.sample(3)); // the high bits of a 48-bit unit seed count
    const levels = new Set(Array.from({ length: 100 }, (_, i) => s.sample(i).level));
    expect(levels).toEqual(new Set(["AIME", "AMC12"]));
  });

  it("refuses a set larger than the pool, a bad tau, and embeddings that do not fit the pool", () => {
    const pool = conceptPoolFromSets([{ concepts: ["a", "b"] }]);
    expect(() => promptcotSampler(pool, null, { size: 3, tau: 0.2 })).toThrow(/exceeds the pool's 2 distinct concepts/);
    expect(() => promptcotSampler(pool, null, { size: 2, tau: 0 })).toThrow(/tau must be > 0/);
    expect(() => promptcotSampler(pool, [vec(1, 0)], { size: 2, tau: 0.2 })).toThrow(/1 embeddings for 2 concepts/);
    expect(() => promptcotSampler(pool, [vec(1, 0), vec(1)], { size: 2, tau: 0.2 })).toThrow(/embedding 1 has 1 values/);
  });
});

describe("uniformSampler", () => {
  it("gives each concept the same inclusion share, size/n, with no repeats", () => {
    const pool = conceptPoolFromSets(sets([["a", "b"], 50], [["c"], 1], [["d", "e"], 1]));
    const s = uniformSampler(pool, 2);
    const share = expectedInclusion(pool, s, 10_000);
    for (const x of share) nearBinomial(x * 10_000, 10_000, 2 / 5);
    for (const set of draws(s, 200)) expect(new Set(set).size).toBe(2);
    expect(s.sample(9)).toEqual(s.sample(9));
  });
});

describe("embedConcepts (real worker)", () => {
  const pool = conceptPoolFromSets([{ concepts: ["primes", "divisors", "graphs"] }, { concepts: ["parity", "invariants"] }]);
  let workers: WorkerPool;

  beforeAll(async () => {
    workers = new WorkerPool(1, {
      modelSource: "tiny-random-llama", dtype: "float32", device: "cpu", trainableLayers: 0, decodeWidth: 1, seed: 3, threads: 1,
      startupTimeoutS: 300, logDir: join(dir, "logs"),
    }, 0);
    await workers.start();
  }, 300_000);
  afterAll(async () => workers.stop());

  /** The real pool, counting Embed calls, optionally failing after `failAfter` of them. */
  function counting(failAfter = Infinity): EmbedContext["pool"] & { calls: number } {
    const c = {
      calls: 0,
      size: workers.size,
      run: <T>(i: number, fn: (rpc: WorkerRpc) => Promise<T>) => {
        if (c.calls >= failAfter) return Promise.reject(new Error("killed"));
        c.calls++;
        return workers.run(i, fn);
      },
    };
    return c;
  }

  it("embeds in journaled batches; a rerun embeds nothing and a resumed run only what is missing", async () => {
    const full = new Journal(join(dir, "full.sqlite"));
    const first = counting();
    const vectors = await embedConcepts({ journal: full, pool: first, batchSize: 2 }, pool);
    expect(first.calls).toBe(3);
    expect(full.count(EMBED_STAGE)).toBe(3);
    expect(vectors).toHaveLength(5);
    for (const v of vectors) expect(Math.hypot(...v)).toBeCloseTo(1, 5);
    const again = counting();
    expect(await embedConcepts({ journal: full, pool: again, batchSize: 2 }, pool)).toEqual(vectors);
    expect(again.calls).toBe(0);

    const partial = new Journal(join(dir, "partial.sqlite"));
    await expect(embedConcepts({ journal: partial, pool: counting(1), batchSize: 2 }, pool)).rejects.toThrow(/killed/);
    expect(partial.count(EMBED_STAGE)).toBe(1);
    const resumed = counting();
    expect(await embedConcepts({ journal: partial, pool: resumed, batchSize: 2 }, pool)).toEqual(vectors);
    expect(resumed.calls).toBe(2);
  }, 120_000);

  it("a changed pool gets new units instead of stale vectors", async () => {
    const j = new Journal(join(dir, "changed.sqlite"));
    await embedConcepts({ journal: j, pool: counting(), batchSize: 2 }, pool);
    const other = conceptPoolFromSets([{ concepts: ["primes", "divisors", "lattices"] }, { concepts: ["parity", "invariants"] }]);
    const c = counting();
    const v = await embedConcepts({ journal: j, pool: c, batchSize: 2 }, other);
    expect(c.calls).toBe(1); // only the batch holding "lattices" changed
    expect(v).toHaveLength(5);
  }, 120_000);
});
