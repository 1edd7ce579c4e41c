// Exact rational arithmetic on BigInt with hard size caps. The fast path must do strictly bounded work in
// the controller's process, so every operation that can grow a number checks the cap and throws Bail;
// the caller then hands the comparison to the symbolic (Python) path instead.

/** Thrown when exact work would exceed its bounds; callers treat it as "undecided here". */
export class Bail extends Error {
  constructor(why: string) {
    super(why);
    this.name = "Bail";
  }
}

/** Largest magnitude (in bits) any numerator or denominator may reach. 2006! has ~19k bits. */
export const MAX_BITS = 40_000;
/** Largest integer exponent applied to a non-trivial base. */
export const MAX_EXPONENT = 4096;
/** Largest n for n! (exact). */
export const MAX_FACTORIAL = 3000;

export function bitLength(n: bigint): number {
  if (n < 0n) n = -n;
  return n === 0n ? 0 : n.toString(16).length * 4;
}

function checkBits(n: bigint): bigint {
  if (bitLength(n) > MAX_BITS) throw new Bail("number too large");
  return n;
}

export function gcd(a: bigint, b: bigint): bigint {
  if (a < 0n) a = -a;
  if (b < 0n) b = -b;
  while (b !== 0n) [a, b] = [b, a % b];
  return a;
}

export function abs(a: bigint): bigint {
  return a < 0n ? -a : a;
}

export class Q {
  readonly n: bigint;
  readonly d: bigint;
  private constructor(n: bigint, d: bigint) {
    this.n = n;
    this.d = d;
  }
  static of(n: bigint, d: bigint = 1n): Q {
    if (d === 0n) throw new Bail("division by zero");
    if (d < 0n) {
      n = -n;
      d = -d;
    }
    const g = gcd(n, d);
    if (g > 1n) {
      n /= g;
      d /= g;
    }
    return new Q(checkBits(n), checkBits(d));
  }
  static int(n: number | bigint): Q {
    return Q.of(BigInt(n));
  }
  static readonly ZERO = new Q(0n, 1n);
  static readonly ONE = new Q(1n, 1n);

  /** Parses "12", "-0.5", ".25", "1e3"-free decimal strings exactly. */
  static parseDecimal(s: string): Q {
    const m = /^([+-]?)(\d*)(?:\.(\d*))?$/.exec(s);
    if (!m || (m[2] === "" && (m[3] ?? "") === "")) throw new Bail(`not a number: ${s.slice(0, 40)}`);
    if (s.length > 2000) throw new Bail("number literal too long");
    const frac = m[3] ?? "";
    const digits = BigInt((m[2] || "0") + frac);
    const q = Q.of(digits, 10n ** BigInt(frac.length));
    return m[1] === "-" ? q.neg() : q;
  }

  isZero(): boolean {
    return this.n === 0n;
  }
  isInt(): boolean {
    return this.d === 1n;
  }
  sign(): number {
    return this.n === 0n ? 0 : this.n > 0n ? 1 : -1;
  }
  neg(): Q {
    return new Q(-this.n, this.d);
  }
  add(o: Q): Q {
    if (this.d === o.d) return Q.of(this.n + o.n, this.d);
    return Q.of(this.n * o.d + o.n * this.d, this.d * o.d);
  }
  sub(o: Q): Q {
    return this.add(o.neg());
  }
  mul(o: Q): Q {
    return Q.of(this.n * o.n, this.d * o.d);
  }
  div(o: Q): Q {
    if (o.n === 0n) throw new Bail("division by zero");
    return Q.of(this.n * o.d, this.d * o.n);
  }
  inv(): Q {
    return Q.ONE.div(this);
  }
  eq(o: Q): boolean {
    return this.n === o.n && this.d === o.d;
  }
  cmp(o: Q): number {
    const l = this.n * o.d;
    const r = o.n * this.d;
    return l === r ? 0 : l < r ? -1 : 1;
  }
  pow(e: bigint): Q {
    if (e === 0n) return Q.ONE;
    if (this.n === 0n) {
      if (e < 0n) throw new Bail("division by zero");
      return Q.ZERO;
    }
    if (abs(this.n) === 1n && this.d === 1n) return e % 2n === 0n ? Q.ONE : this;
    if (abs(e) > BigInt(MAX_EXPONENT)) throw new Bail("exponent too large");
    // Predict the size before computing so 999^999999 never gets built.
    const bits = Math.max(bitLength(this.n), bitLength(this.d)) * Number(abs(e));
    if (bits > MAX_BITS) throw new Bail("power too large");
    const p = e < 0n ? -e : e;
    const q = Q.of(this.n ** p, this.d ** p);
    return e < 0n ? q.inv() : q;
  }
  toString(): string {
    return this.d === 1n ? this.n.toString() : `${this.n}/${this.d}`;
  }
}

export function factorial(n: bigint): bigint {
  if (n < 0n) throw new Bail("factorial of a negative number");
  if (n > BigInt(MAX_FACTORIAL)) throw new Bail("factorial too large");
  let r = 1n;
  for (let i = 2n; i <= n; i++) r *= i;
  return r;
}

export function binomial(n: bigint, k: bigint): bigint {
  if (k < 0n || n < 0n || k > n) return 0n;
  if (n > BigInt(MAX_FACTORIAL) * 4n) throw new Bail("binomial too large");
  if (k > n - k) k = n - k;
  let r = 1n;
  for (let i = 1n; i <= k; i++) r = (r * (n - k + i)) / i;
  return checkBits(r);
}

/** floor(sqrt(n)) for n >= 0 (Newton's method on BigInt). */
export function isqrt(n: bigint): bigint {
  if (n < 0n) throw new Bail("sqrt of a negative number");
  if (n < 2n) return n;
  let x = 1n << BigInt(Math.ceil(bitLength(n) / 2) + 1);
  for (;;) {
    const y = (x + n / x) >> 1n;
    if (y >= x) return x;
    x = y;
  }
}

/** floor(n^(1/k)) for n >= 0. */
export function iroot(n: bigint, k: number): bigint {
  if (k === 2) return isqrt(n);
  if (n < 2n) return n;
  let lo = 0n;
  let hi = 1n << BigInt(Math.ceil(bitLength(n) / k) + 1);
  while (lo < hi) {
    const mid = (lo + hi + 1n) >> 1n;
    if (mid ** BigInt(k) <= n) lo = mid;
    else hi = mid - 1n;
  }
  return lo;
}

/** Trial division stops here; a radicand with a larger unfactored part is left to the symbolic path. */
const TRIAL_LIMIT = 20_000n;

/**
 * Writes n > 0 as s^2 * f with f square-free: returns [s, f]. Bails when n has a cofactor above
 * TRIAL_LIMIT^2 that trial division cannot settle (it could hide a square).
 */
export function squareFree(n: bigint): [bigint, bigint] {
  if (n <= 0n) throw new Bail("radicand must be positive");
  let s = 1n;
  let f = 1n;
  let m = n;
  for (let p = 2n; p * p <= m; p += p === 2n ? 1n : 2n) {
    if (p > TRIAL_LIMIT) {
      // m has no prime factor <= TRIAL_LIMIT. Below TRIAL_LIMIT^3 it has at most two prime factors, so it
      // is square-free unless it is the square of one prime; above that, give up.
      if (m >= TRIAL_LIMIT ** 3n) throw new Bail("radicand too hard to factor");
      const r = isqrt(m);
      if (r * r === m) return [s * r, f];
      return [s, f * m];
    }
    if (m % p !== 0n) continue;
    let e = 0;
    while (m % p === 0n) {
      m /= p;
      e++;
    }
    s *= p ** BigInt(Math.floor(e / 2));
    if (e % 2 === 1) f *= p;
  }
  return [s, f * m];
}
