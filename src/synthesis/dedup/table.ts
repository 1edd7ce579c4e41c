// Compact growable containers of 32-bit numbers. A million prompts × 25 LSH bands is 25M entries: as
// JavaScript objects or Map entries that is gigabytes, as typed arrays a few hundred megabytes.

/** A growable Uint32Array. */
export class U32Vec {
  data: Uint32Array;
  length = 0;

  constructor(capacity = 1024) {
    this.data = new Uint32Array(capacity);
  }

  push(v: number): void {
    if (this.length === this.data.length) this.grow(this.length + 1);
    this.data[this.length++] = v;
  }

  /** Appends values[0..n). */
  pushAll(values: Uint32Array, n: number): void {
    if (this.length + n > this.data.length) this.grow(this.length + n);
    this.data.set(values.subarray(0, n), this.length);
    this.length += n;
  }

  private grow(min: number): void {
    let cap = this.data.length * 2;
    while (cap < min) cap *= 2;
    const next = new Uint32Array(cap);
    next.set(this.data.subarray(0, this.length));
    this.data = next;
  }
}

/**
 * Open-addressing multimap from 32-bit keys (already hash outputs, so their low bits index the table
 * directly) to non-zero 32-bit values; a key may hold many values. Linear probing, load ≤ 0.7.
 */
export class U32MultiMap {
  private keys: Uint32Array;
  private vals: Uint32Array;
  private mask: number;
  size = 0;

  constructor(capacityPow2 = 1 << 12) {
    this.keys = new Uint32Array(capacityPow2);
    this.vals = new Uint32Array(capacityPow2);
    this.mask = capacityPow2 - 1;
  }

  add(key: number, value: number): void {
    if (value === 0) throw new Error("U32MultiMap: value 0 marks an empty slot");
    if ((this.size + 1) * 10 > this.keys.length * 7) this.rehash(this.keys.length * 2);
    this.place(key >>> 0, value);
    this.size++;
  }

  /** Calls fn(value) for every value stored under key; stops early when fn returns true. */
  find(key: number, fn: (value: number) => boolean | void): void {
    const k = key >>> 0;
    const { keys, vals, mask } = this;
    for (let i = k & mask; vals[i] !== 0; i = (i + 1) & mask) {
      if (keys[i] === k && fn(vals[i]!) === true) return;
    }
  }

  get bytes(): number {
    return this.keys.byteLength + this.vals.byteLength;
  }

  private place(k: number, value: number): void {
    const { keys, vals, mask } = this;
    let i = k & mask;
    while (vals[i] !== 0) i = (i + 1) & mask;
    keys[i] = k;
    vals[i] = value;
  }

  private rehash(capacity: number): void {
    const { keys, vals } = this;
    this.keys = new Uint32Array(capacity);
    this.vals = new Uint32Array(capacity);
    this.mask = capacity - 1;
    for (let i = 0; i < keys.length; i++) if (vals[i] !== 0) this.place(keys[i]!, vals[i]!);
  }
}
