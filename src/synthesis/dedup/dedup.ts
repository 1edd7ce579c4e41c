// The dedup stage, one row at a time and in input order: a row is dropped as an exact duplicate of an
// earlier kept row (same text after lower-casing and collapsing whitespace), as contaminated (overlaps a
// benchmark problem), or as a near duplicate of an earlier kept row (word-set Jaccard ≥ threshold, found
// through MinHash LSH). Only kept rows are remembered, and only as hashes, signatures' band keys and word
// sets in typed arrays: never the rows themselves.
import { BenchmarkIndex, type BenchmarkRef, type Contamination } from "./decontaminate.js";
import { U32MultiMap, U32Vec } from "./table.js";
import { LshIndex, MinHasher, NUM_PERM, chooseBands, wordSetHashes } from "./minhash.js";
import { type WordRule, exactKey, problemText } from "./text.js";
import { murmur3String } from "./hash.js";

export interface DedupOptions {
  /** Word-set Jaccard at or above which two rows are near duplicates (default 0.8). */
  threshold?: number;
  /** LSH layout; default: chooseBands(threshold). */
  bands?: number;
  rows?: number;
  /** Seed of the MinHash permutations. */
  seed?: number;
  /** How texts become word sets (default "math": numbers and expressions count); benchmarks must use the same. */
  words?: WordRule;
  benchmarks?: BenchmarkIndex;
}

/** Where a row is: 0-based index among rows, 1-based line in its file, and its id if it has one. */
export interface RowRef {
  index: number;
  line: number;
  id?: string;
}

export type Verdict =
  | { keep: true }
  | { keep: false; reason: "exact_duplicate"; of: RowRef }
  | { keep: false; reason: "near_duplicate"; of: RowRef; jaccard: number }
  | ({ keep: false; reason: "contaminated" } & Contamination);

export type DropReason = "exact_duplicate" | "near_duplicate" | "contaminated";

export interface DedupStats {
  rows: number;
  kept: number;
  dropped: Record<DropReason, number>;
  /** LSH candidates whose Jaccard was computed. */
  candidates: number;
  bands: number;
  rowsPerBand: number;
  threshold: number;
}

const EXACT_SEED_A = 0x0e1ac7a;
const EXACT_SEED_B = 0x0e1ac7b;

export class Deduplicator {
  readonly threshold: number;
  readonly words: WordRule;
  private readonly lsh: LshIndex;
  private readonly hasher: MinHasher;
  private readonly benchmarks?: BenchmarkIndex;
  /** exact key's first hash → kept ordinal + 1; the second hash confirms. */
  private readonly exact = new U32MultiMap();
  private readonly exactB = new U32Vec();
  /** Per kept row: index, line, and the LSH entry (0 = none: empty word set, else entry + 1). */
  private readonly keptIndex = new U32Vec();
  private readonly keptLine = new U32Vec();
  private readonly lshEntryToKept = new U32Vec();
  private readonly keptIds = new Map<number, string>();
  private readonly wordBuf = new U32Vec();
  private readonly counts: Record<DropReason, number> = { exact_duplicate: 0, near_duplicate: 0, contaminated: 0 };
  private rowsSeen = 0;

  constructor(o: DedupOptions = {}) {
    this.threshold = o.threshold ?? 0.8;
    if (!(this.threshold > 0 && this.threshold <= 1)) throw new Error(`threshold must be in (0, 1], got ${this.threshold}`);
    const layout = o.bands !== undefined || o.rows !== undefined ? completeLayout(o.bands, o.rows) : chooseBands(this.threshold);
    this.lsh = new LshIndex(layout.bands, layout.rows);
    this.hasher = new MinHasher(NUM_PERM, o.seed ?? 1);
    this.words = o.words ?? "math";
    if (o.benchmarks && o.benchmarks.rule !== this.words) {
      throw new Error(`the benchmark index uses the "${o.benchmarks.rule}" word rule but dedup uses "${this.words}": build both with the same rule`);
    }
    this.benchmarks = o.benchmarks;
  }

  /** Decides one row (rows must come in input order); a kept row is remembered for the rows after it. */
  check(text: string, ref: RowRef): Verdict {
    this.rowsSeen++;
    const verdict = this.decide(text, ref);
    if (!verdict.keep) this.counts[verdict.reason]++;
    return verdict;
  }

  stats(): DedupStats {
    const dropped = { ...this.counts };
    return {
      rows: this.rowsSeen,
      kept: this.keptIndex.length,
      dropped,
      candidates: this.lsh.candidates,
      bands: this.lsh.bands,
      rowsPerBand: this.lsh.rows,
      threshold: this.threshold,
    };
  }

  private decide(text: string, ref: RowRef): Verdict {
    const key = exactKey(text);
    const a = murmur3String(key, EXACT_SEED_A);
    const b = murmur3String(key, EXACT_SEED_B);
    let exactOf = -1;
    this.exact.find(a, (v) => (this.exactB.data[v - 1] === b ? ((exactOf = v - 1), true) : false));
    if (exactOf >= 0) return { keep: false, reason: "exact_duplicate", of: this.keptRef(exactOf) };

    const lower = problemText(text).toLowerCase();
    const words = wordSetHashes(lower, this.wordBuf, this.words);
    const sig = words.length > 0 ? this.hasher.signature(words) : null;
    const hit = this.benchmarks?.check(lower, words, sig);
    if (hit) return { keep: false, reason: "contaminated", ...hit };
    if (sig) {
      const near = this.lsh.query(sig, words, this.threshold);
      if (near) return { keep: false, reason: "near_duplicate", of: this.keptRef(this.lshEntryToKept.data[near.id]!), jaccard: near.jaccard };
    }
    this.remember(ref, a, b, words, sig);
    return { keep: true };
  }

  private remember(ref: RowRef, a: number, b: number, words: Uint32Array, sig: Uint32Array | null): void {
    const ordinal = this.keptIndex.length;
    this.keptIndex.push(ref.index);
    this.keptLine.push(ref.line);
    if (ref.id !== undefined) this.keptIds.set(ordinal, ref.id);
    this.exactB.push(b);
    this.exact.add(a, ordinal + 1);
    if (sig) {
      this.lsh.insert(sig, words);
      this.lshEntryToKept.push(ordinal);
    }
  }

  private keptRef(ordinal: number): RowRef {
    const id = this.keptIds.get(ordinal);
    return { index: this.keptIndex.data[ordinal]!, line: this.keptLine.data[ordinal]!, ...(id !== undefined ? { id } : {}) };
  }
}

function completeLayout(bands?: number, rows?: number): { bands: number; rows: number } {
  if (bands !== undefined && rows !== undefined) return { bands, rows };
  if (bands !== undefined) return { bands, rows: Math.floor(NUM_PERM / bands) };
  return { bands: Math.floor(NUM_PERM / rows!), rows: rows! };
}

export interface DedupItem<T> {
  row: T;
  verdict: Verdict;
}

/**
 * The streaming form for the synthesis pipeline: yields every row with its verdict, in input order,
 * holding none of them. text(row) gives the text compared; id(row) (optional) names it in verdicts.
 */
export async function* dedupRows<T>(
  rows: AsyncIterable<T> | Iterable<T>,
  text: (row: T) => string,
  o: DedupOptions & { id?: (row: T) => string | undefined } = {},
): AsyncGenerator<DedupItem<T>> {
  const d = new Deduplicator(o);
  let index = 0;
  for await (const row of rows) {
    const id = o.id?.(row);
    yield { row, verdict: d.check(text(row), { index, line: index + 1, ...(id !== undefined ? { id } : {}) }) };
    index++;
  }
}

export type { BenchmarkRef };
