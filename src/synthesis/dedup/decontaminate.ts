// Benchmark decontamination: a problem is contaminated when it shares any 13-word sequence with a benchmark
// problem (so a light rewording elsewhere in the text is still caught), or when its word set is a near
// duplicate (Jaccard ≥ threshold) of one (rewording spread across the text). Both sides are compared as
// problem text: chat template and PromptCoT's fixed instructions removed, lower-case, punctuation to spaces;
// under the default "math" word rule numbers and expressions are tokens too (text.ts WordRule), so a
// template-identical problem with other numbers is not flagged.
import { type WordRule, forEachRuleToken, problemText } from "./text.js";
import { key53, murmur3String, murmur3Words } from "./hash.js";
import { LshIndex, MinHasher, type NearMatch, chooseBands, wordSetHashes } from "./minhash.js";
import { U32Vec } from "./table.js";

export const NGRAM = 13;
const TOKEN_SEED = 0x13a11;
const NGRAM_SEED_A = 0x7e57a;
const NGRAM_SEED_B = 0x7e57b;

export interface BenchmarkItem {
  /** Where it came from: the file and 1-based line. */
  file: string;
  line: number;
  id?: string;
  text: string;
}

export interface BenchmarkRef {
  file: string;
  line: number;
  id?: string;
}

export type Contamination =
  | { match: "ngram"; item: BenchmarkRef; ngram: string }
  | { match: "jaccard"; item: BenchmarkRef; jaccard: number };

/** Token hashes and spans of a problem text (lower-cased), in reusable buffers. */
export class Tokens {
  hashes = new Uint32Array(256);
  starts = new Uint32Array(256);
  ends = new Uint32Array(256);
  length = 0;
  text = "";
  /** Compared text of the tokens that are not a plain slice of `text` (spaced expressions), by position. */
  private readonly canon = new Map<number, string>();

  constructor(readonly rule: WordRule = "math") {}

  scan(lower: string): this {
    this.text = lower;
    this.length = 0;
    this.canon.clear();
    forEachRuleToken(lower, this.rule, (start, end, _counts, canon) => {
      if (this.length === this.hashes.length) this.grow();
      if (canon !== undefined) this.canon.set(this.length, canon);
      this.hashes[this.length] = canon === undefined ? murmur3String(lower, TOKEN_SEED, start, end) : murmur3String(canon, TOKEN_SEED);
      this.starts[this.length] = start;
      this.ends[this.length++] = end;
    });
    return this;
  }

  /** 53 bits of the 64-bit hash of tokens[from..from+n). */
  key(from: number, n: number): number {
    return key53(murmur3Words(this.hashes, from, n, NGRAM_SEED_A + n), murmur3Words(this.hashes, from, n, NGRAM_SEED_B + n));
  }

  words(from: number, n: number): string {
    const out: string[] = [];
    for (let i = from; i < from + n; i++) out.push(this.canon.get(i) ?? this.text.slice(this.starts[i], this.ends[i]));
    return out.join(" ");
  }

  private grow(): void {
    const grow = (a: Uint32Array) => {
      const b = new Uint32Array(a.length * 2);
      b.set(a);
      return b;
    };
    this.hashes = grow(this.hashes);
    this.starts = grow(this.starts);
    this.ends = grow(this.ends);
  }
}

/**
 * Built once from the benchmark files (small: thousands of problems), then asked about each row.
 * Memory is proportional to the benchmarks, never to the rows checked.
 */
export class BenchmarkIndex {
  readonly items: BenchmarkRef[] = [];
  /**
   * n-gram key → item index, or -1 when two or more benchmark items share it: such an n-gram is template
   * phrasing ("the first line contains a single integer t …"), not the content of one problem.
   */
  private readonly ngrams = new Map<number, number>();
  /** Whole-text key of items shorter than NGRAM tokens → item index (matched only by a whole row). */
  private readonly short = new Map<number, number>();
  private readonly lsh: LshIndex;
  private readonly hasher: MinHasher;
  private readonly tokens: Tokens;
  private readonly wordBuf = new U32Vec();

  /** rule: how problems become tokens; rows checked against the index must use the same rule. */
  constructor(readonly threshold = 0.8, seed = 1, readonly rule: WordRule = "math") {
    const { bands, rows } = chooseBands(threshold);
    this.lsh = new LshIndex(bands, rows);
    this.hasher = new MinHasher(undefined, seed);
    this.tokens = new Tokens(rule);
  }

  get size(): number {
    return this.items.length;
  }

  add(item: BenchmarkItem): void {
    const index = this.items.length;
    this.items.push({ file: item.file, line: item.line, ...(item.id !== undefined ? { id: item.id } : {}) });
    const lower = problemText(item.text).toLowerCase();
    const t = this.tokens.scan(lower);
    if (t.length < NGRAM) {
      if (t.length > 0) this.short.set(t.key(0, t.length), index);
    } else {
      for (let i = 0; i + NGRAM <= t.length; i++) {
        const k = t.key(i, NGRAM);
        const prev = this.ngrams.get(k);
        if (prev === undefined) this.ngrams.set(k, index);
        else if (prev !== index) this.ngrams.set(k, -1);
      }
    }
    const words = wordSetHashes(lower, this.wordBuf, this.rule);
    if (words.length > 0) this.lsh.insert(this.hasher.signature(words), words);
  }

  /**
   * lower: the row's problem text, lower-cased; words/sig: its word set and signature (from a MinHasher
   * with the same seed). Returns the first benchmark item it overlaps, or null.
   */
  check(lower: string, words: Uint32Array, sig: Uint32Array | null): Contamination | null {
    const t = this.tokens.scan(lower);
    if (t.length < NGRAM) {
      const hit = t.length > 0 ? this.short.get(t.key(0, t.length)) : undefined;
      if (hit !== undefined) return { match: "ngram", item: this.items[hit]!, ngram: t.words(0, t.length) };
    }
    for (let i = 0; i + NGRAM <= t.length; i++) {
      const hit = this.ngrams.get(t.key(i, NGRAM));
      if (hit !== undefined && hit >= 0) return { match: "ngram", item: this.items[hit]!, ngram: t.words(i, NGRAM) };
    }
    if (sig !== null && words.length > 0) {
      const near: NearMatch | null = this.lsh.query(sig, words, this.threshold);
      if (near) return { match: "jaccard", item: this.items[near.id]!, jaccard: near.jaccard };
    }
    return null;
  }
}
