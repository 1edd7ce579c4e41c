// MinHash signatures over word sets (PromptCoT's, or with numbers and expressions: WordRule), an LSH index of band hashes, and exact Jaccard confirmation
// on the stored word sets (as 32-bit word hashes, sorted). LSH only proposes candidates; the verdict is the
// exact Jaccard, so the band layout trades speed against recall and never creates a false duplicate.
import { type WordRule, forEachRuleToken } from "./text.js";
import { U32MultiMap, U32Vec } from "./table.js";
import { UniversalHashes, murmur3String, murmur3Words } from "./hash.js";

export const NUM_PERM = 128;
const WORD_SEED = 0x5eed0001;

/** Probability that a pair with Jaccard j shares at least one band of r rows among b bands. */
export function lshRecall(j: number, bands: number, rows: number): number {
  return 1 - (1 - j ** rows) ** bands;
}

/**
 * The band layout for a threshold: the most rows per band (fewest false candidates to confirm) whose
 * recall at the threshold is still ≥ minRecall. At 0.8 with 128 permutations: 25 bands × 5 rows, recall
 * 0.99995 at J = 0.8 (PromptCoT 2.0's released checker uses 50 × 2, recall ≈ 1 at J ≥ 0.2, many more candidates).
 */
export function chooseBands(threshold: number, numPerm = NUM_PERM, minRecall = 0.999): { bands: number; rows: number } {
  for (let rows = numPerm; rows >= 1; rows--) {
    const bands = Math.floor(numPerm / rows);
    if (lshRecall(threshold, bands, rows) >= minRecall) return { bands, rows };
  }
  return { bands: numPerm, rows: 1 };
}

/** Sorted, distinct 32-bit hashes of the row's word set (lower-cased text in; see WordRule). */
export function wordSetHashes(lower: string, out: U32Vec, rule: WordRule = "math"): Uint32Array {
  out.length = 0;
  forEachRuleToken(lower, rule, (start, end, counts, canon) => {
    if (counts) out.push(canon === undefined ? murmur3String(lower, WORD_SEED, start, end) : murmur3String(canon, WORD_SEED));
  });
  const view = out.data.subarray(0, out.length).sort();
  let n = 0;
  for (let i = 0; i < view.length; i++) if (i === 0 || view[i] !== view[n - 1]) view[n++] = view[i]!;
  return view.subarray(0, n);
}

/** |A ∩ B| / |A ∪ B| of two sorted distinct arrays. */
export function jaccardSorted(a: Uint32Array, b: Uint32Array): number {
  let i = 0;
  let j = 0;
  let inter = 0;
  while (i < a.length && j < b.length) {
    if (a[i]! === b[j]!) {
      inter++;
      i++;
      j++;
    } else if (a[i]! < b[j]!) i++;
    else j++;
  }
  const union = a.length + b.length - inter;
  return union === 0 ? 0 : inter / union;
}

export class MinHasher {
  private readonly perms: UniversalHashes;
  readonly sig: Uint32Array;

  constructor(numPerm = NUM_PERM, seed = 1) {
    this.perms = new UniversalHashes(numPerm, seed);
    this.sig = new Uint32Array(numPerm);
  }

  /** The signature of a word set, in a buffer reused by the next call. */
  signature(words: Uint32Array): Uint32Array {
    this.sig.fill(0xffffffff);
    for (let w = 0; w < words.length; w++) this.perms.minInto(this.sig, words[w]!);
    return this.sig;
  }
}

export interface NearMatch {
  /** The id the entry was inserted with. */
  id: number;
  jaccard: number;
}

/**
 * Entries (id ≥ 0) with their word sets; query() returns the most similar entry whose exact Jaccard
 * reaches the threshold (ties: the earliest inserted), or null.
 */
export class LshIndex {
  readonly bands: number;
  readonly rows: number;
  private readonly buckets = new U32MultiMap();
  private readonly words = new U32Vec(1 << 14);
  private readonly offsets = new U32Vec();
  private readonly seen = new U32Vec(); // per entry: the last query that visited it
  private queries = 0;
  candidates = 0;

  constructor(bands: number, rows: number) {
    if (!(bands >= 1 && rows >= 1 && bands * rows <= NUM_PERM)) {
      throw new Error(`LSH layout ${bands} bands × ${rows} rows must use between 1 and ${NUM_PERM} permutations`);
    }
    this.bands = bands;
    this.rows = rows;
    this.offsets.push(0);
  }

  get size(): number {
    return this.offsets.length - 1;
  }

  get bytes(): number {
    return this.buckets.bytes + this.words.data.byteLength + this.offsets.data.byteLength + this.seen.data.byteLength;
  }

  /** Adds an entry; returns its id (0, 1, 2, … in insertion order). */
  insert(sig: Uint32Array, words: Uint32Array): number {
    const id = this.size;
    this.words.pushAll(words, words.length);
    this.offsets.push(this.words.length);
    this.seen.push(0);
    for (let b = 0; b < this.bands; b++) this.buckets.add(murmur3Words(sig, b * this.rows, this.rows, b), id + 1);
    return id;
  }

  query(sig: Uint32Array, words: Uint32Array, threshold: number): NearMatch | null {
    const stamp = ++this.queries;
    let best: NearMatch | null = null;
    const visit = (value: number): void => {
      const id = value - 1;
      if (this.seen.data[id] === stamp) return;
      this.seen.data[id] = stamp;
      this.candidates++;
      const j = jaccardSorted(words, this.words.data.subarray(this.offsets.data[id]!, this.offsets.data[id + 1]!));
      if (j >= threshold && (best === null || j > best.jaccard || (j === best.jaccard && id < best.id))) best = { id, jaccard: j };
    };
    for (let b = 0; b < this.bands; b++) this.buckets.find(murmur3Words(sig, b * this.rows, this.rows, b), visit);
    return best;
  }
}
