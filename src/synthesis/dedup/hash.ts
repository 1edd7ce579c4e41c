// Non-cryptographic hashing for dedup, all in 32-bit integer arithmetic (Math.imul): BigInt is an order of
// magnitude too slow for hashing every word of a million prompts. murmur3 (x86, 32-bit) over UTF-8 bytes
// gives word, key and band hashes; two seeds give a 64-bit key where 32 bits would collide at scale.

const C1 = 0xcc9e2d51;
const C2 = 0x1b873593;

function mixK(k: number): number {
  k = Math.imul(k, C1);
  k = (k << 15) | (k >>> 17);
  return Math.imul(k, C2);
}

function mixH(h: number, k: number): number {
  h ^= mixK(k);
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

/** murmur3's finaliser: every input bit affects every output bit. */
export function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** murmur3_32 of bytes[0..len). */
export function murmur3Bytes(bytes: Uint8Array, len: number, seed: number): number {
  let h = seed | 0;
  const blocks = len & ~3;
  for (let i = 0; i < blocks; i += 4) {
    h = mixH(h, bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24));
  }
  let k = 0;
  switch (len & 3) {
    case 3:
      k ^= bytes[blocks + 2]! << 16;
    // falls through
    case 2:
      k ^= bytes[blocks + 1]! << 8;
    // falls through
    case 1:
      k ^= bytes[blocks]!;
      h ^= mixK(k);
  }
  return fmix32(h ^ len);
}

const encoder = new TextEncoder();
let scratch = new Uint8Array(1024);

/**
 * murmur3_32 of the UTF-8 bytes of s[start..end). ASCII text (almost all of a math prompt) is hashed
 * straight from its char codes, with no substring or byte buffer.
 */
export function murmur3String(s: string, seed: number, start = 0, end = s.length): number {
  for (let i = start; i < end; i++) {
    if (s.charCodeAt(i) > 0x7f) return murmur3Utf8(s.slice(start, end), seed);
  }
  let h = seed | 0;
  const len = end - start;
  const blocks = start + (len & ~3);
  let i = start;
  for (; i < blocks; i += 4) {
    h = mixH(h, s.charCodeAt(i) | (s.charCodeAt(i + 1) << 8) | (s.charCodeAt(i + 2) << 16) | (s.charCodeAt(i + 3) << 24));
  }
  let k = 0;
  switch (len & 3) {
    case 3:
      k ^= s.charCodeAt(i + 2) << 16;
    // falls through
    case 2:
      k ^= s.charCodeAt(i + 1) << 8;
    // falls through
    case 1:
      k ^= s.charCodeAt(i);
      h ^= mixK(k);
  }
  return fmix32(h ^ len);
}

function murmur3Utf8(s: string, seed: number): number {
  if (scratch.length < s.length * 3) scratch = new Uint8Array(s.length * 3);
  const { written } = encoder.encodeInto(s, scratch);
  return murmur3Bytes(scratch, written, seed);
}

/** murmur3_32 over 32-bit words values[start..start+n) (band keys, n-gram keys). */
export function murmur3Words(values: ArrayLike<number>, start: number, n: number, seed: number): number {
  let h = seed | 0;
  for (let i = start; i < start + n; i++) h = mixH(h, values[i]! | 0);
  return fmix32(h ^ (n * 4));
}

/** A JavaScript number that holds 53 bits of a 64-bit hash (h1, h2): exact as a Map key, no BigInt. */
export function key53(h1: number, h2: number): number {
  return (h1 >>> 0) * 2097152 + (h2 >>> 11);
}

/** splitmix32: a seeded generator for the universal-hash coefficients (same seed, same permutations). */
export function seededU32(seed: number): () => number {
  let s = seed | 0;
  return () => {
    s = (s + 0x9e3779b9) | 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
}

/**
 * A family of strongly universal hash functions of 32-bit keys (Dietzfelbinger's multiply-add-shift):
 * h_i(x) = ((a_i·x + b_i) mod 2^64) >> 32, with random 64-bit a_i, b_i. Each h_i stands in for one MinHash
 * permutation. The 64-bit product is built from 16×32-bit partial products, each exact in a double.
 */
export class UniversalHashes {
  readonly count: number;
  private readonly aHi: Int32Array;
  private readonly aLo0: Float64Array; // low 16 bits of a's low word
  private readonly aLo1: Float64Array; // high 16 bits of a's low word
  private readonly bHi: Float64Array;
  private readonly bLo: Float64Array;

  constructor(count: number, seed: number) {
    this.count = count;
    const next = seededU32(seed);
    this.aHi = new Int32Array(count);
    this.aLo0 = new Float64Array(count);
    this.aLo1 = new Float64Array(count);
    this.bHi = new Float64Array(count);
    this.bLo = new Float64Array(count);
    for (let i = 0; i < count; i++) {
      this.aHi[i] = next() | 0;
      const aLo = next() | 1; // odd multiplier
      this.aLo0[i] = aLo & 0xffff;
      this.aLo1[i] = aLo >>> 16;
      this.bHi[i] = next();
      this.bLo[i] = next();
    }
  }

  hash(i: number, x: number): number {
    const s = this.aLo0[i]! * x + this.bLo[i]!; // < 2^49
    const carry = Math.floor((this.aLo1[i]! * x + Math.floor(s * 1.52587890625e-5)) * 1.52587890625e-5);
    return (Math.imul(this.aHi[i]!, x) + carry + this.bHi[i]!) >>> 0;
  }

  /** sig[i] = min(sig[i], h_i(x)) for every i: one word's contribution to a MinHash signature. */
  minInto(sig: Uint32Array, x: number): void {
    const { aHi, aLo0, aLo1, bHi, bLo } = this;
    for (let i = 0; i < this.count; i++) {
      const s = aLo0[i]! * x + bLo[i]!;
      const carry = Math.floor((aLo1[i]! * x + Math.floor(s * 1.52587890625e-5)) * 1.52587890625e-5);
      const h = (Math.imul(aHi[i]!, x) + carry + bHi[i]!) >>> 0;
      if (h < sig[i]!) sig[i] = h;
    }
  }
}
