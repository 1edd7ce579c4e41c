// Exact values for the fast path: rational functions whose "variables" are atoms —
//   symbols (x, a_3), pi and e (c:e), square roots of square-free integers (r:2 = sqrt 2), and opaque atoms
//   (sin(x), |x|, cube roots ...), each with an integer exponent (square roots only ever to the first power).
// With products of square roots reduced (sqrt2*sqrt6 = 2*sqrt3), the polynomial part is a canonical form:
// square roots of distinct square-free integers are linearly independent over Q(pi, symbols), so two values
// are equal exactly when their cross-multiplied difference has no terms. (pi and e are treated as
// algebraically independent: that is unproven, but no polynomial relation between them is known and none
// with answer-sized coefficients exists numerically.) Opaque atoms are not independent
// (sin^2 + cos^2 = 1), so with them only "equal" is certain and "different" is left to the symbolic path.
import { Bail, Q, bitLength, isqrt, squareFree } from "./rational.js";

/** A term budget per polynomial: beyond it the expression is not "simple" and goes to sympy. */
const MAX_TERMS = 64;

export type Mono = ReadonlyArray<readonly [string, number]>; // sorted by atom key, exponents != 0
export interface Term {
  mono: Mono;
  c: Q;
}
export type Poly = Map<string, Term>; // keyed by monoKey(mono)

export interface Value {
  num: Poly;
  den: Poly;
}

export function monoKey(m: Mono): string {
  return m.map(([a, e]) => (e === 1 ? a : `${a}^${e}`)).join("*");
}

const ONE_MONO: Mono = [];

function polyConst(q: Q): Poly {
  const p: Poly = new Map();
  if (!q.isZero()) p.set("", { mono: ONE_MONO, c: q });
  return p;
}

const POLY_ONE = polyConst(Q.ONE);

export function constant(q: Q): Value {
  return { num: polyConst(q), den: POLY_ONE };
}

export function atom(key: string): Value {
  const m: Mono = [[key, 1]];
  return { num: new Map([[monoKey(m), { mono: m, c: Q.ONE }]]), den: POLY_ONE };
}

/** sqrt of a non-negative rational, reduced: sqrt(8/3) = (2/3) sqrt 6. */
export function sqrtRational(q: Q): Value {
  if (q.sign() < 0) throw new Bail("sqrt of a negative number");
  if (q.isZero()) return constant(Q.ZERO);
  // sqrt(n/d) = sqrt(n d) / d
  const [s, f] = squareFree(q.n * q.d);
  const coef = Q.of(s, q.d);
  if (f === 1n) return constant(coef);
  const m: Mono = [[`r:${f}`, 1]];
  return { num: new Map([[monoKey(m), { mono: m, c: coef }]]), den: POLY_ONE };
}

function addTerm(p: Poly, mono: Mono, c: Q): void {
  if (c.isZero()) return;
  const k = monoKey(mono);
  const t = p.get(k);
  if (!t) {
    p.set(k, { mono, c });
    if (p.size > MAX_TERMS) throw new Bail("expression too large");
    return;
  }
  const s = t.c.add(c);
  if (s.isZero()) p.delete(k);
  else p.set(k, { mono, c: s });
}

function radicand(atomKey: string): bigint | null {
  return atomKey.startsWith("r:") ? BigInt(atomKey.slice(2)) : null;
}

/** Product of two monomials: [rational factor, monomial] (square-root products reduce to integers). */
function monoMul(a: Mono, b: Mono): [Q, Mono] {
  const exps = new Map<string, number>();
  for (const [k, e] of a) exps.set(k, (exps.get(k) ?? 0) + e);
  for (const [k, e] of b) exps.set(k, (exps.get(k) ?? 0) + e);
  let factor = Q.ONE;
  let rad = 1n;
  const out: [string, number][] = [];
  for (const [k, e] of exps) {
    const r = radicand(k);
    if (r !== null) {
      // sqrt(r)^e = r^floor(e/2) * sqrt(r)^(e mod 2)
      factor = factor.mul(Q.of(r).pow(BigInt(Math.floor(e / 2))));
      if (((e % 2) + 2) % 2 === 1) {
        const g = gcdBig(rad, r);
        factor = factor.mul(Q.of(g));
        rad = (rad / g) * (r / g);
      }
      continue;
    }
    if (e !== 0) out.push([k, e]);
  }
  if (rad > 1n) out.push([`r:${rad}`, 1]);
  out.sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0));
  return [factor, out];
}

function gcdBig(a: bigint, b: bigint): bigint {
  while (b !== 0n) [a, b] = [b, a % b];
  return a < 0n ? -a : a;
}

function polyAdd(a: Poly, b: Poly, sign = 1): Poly {
  const p: Poly = new Map(a);
  for (const t of b.values()) addTerm(p, t.mono, sign === 1 ? t.c : t.c.neg());
  return p;
}

function polyMul(a: Poly, b: Poly): Poly {
  if (a.size * b.size > MAX_TERMS * MAX_TERMS) throw new Bail("expression too large");
  const p: Poly = new Map();
  for (const x of a.values()) {
    for (const y of b.values()) {
      const [f, m] = monoMul(x.mono, y.mono);
      addTerm(p, m, x.c.mul(y.c).mul(f));
    }
  }
  return p;
}

function polyKey(p: Poly): string {
  return [...p.keys()].sort().map((k) => `${k}:${p.get(k)!.c}`).join("+");
}

function isOne(p: Poly): boolean {
  const t = p.get("");
  return p.size === 1 && t !== undefined && t.c.eq(Q.ONE);
}

/** Moves a single-term denominator into the numerator (1/(2 sqrt 3 pi) = sqrt3/6 * pi^-1). */
function normalize(v: Value): Value {
  if (v.num.size === 0) return { num: new Map(), den: POLY_ONE };
  if (v.den.size === 0) throw new Bail("division by zero");
  if (isOne(v.den)) return v;
  if (v.den.size === 1) {
    const t = v.den.values().next().value as Term;
    // inverse of c * prod(atom^e): (1/c) * prod(atom^-e), with 1/sqrt(r) = sqrt(r)/r
    let c = t.c.inv();
    const inv: [string, number][] = [];
    for (const [k, e] of t.mono) {
      const r = radicand(k);
      if (r !== null) {
        c = c.div(Q.of(r));
        inv.push([k, 1]);
      } else inv.push([k, -e]);
    }
    const num = polyMul(v.num, new Map([[monoKey(inv), { mono: inv, c }]]));
    return { num, den: POLY_ONE };
  }
  return v;
}

export function add(a: Value, b: Value): Value {
  if (polyKey(a.den) === polyKey(b.den)) return normalize({ num: polyAdd(a.num, b.num), den: a.den });
  return normalize({ num: polyAdd(polyMul(a.num, b.den), polyMul(b.num, a.den)), den: polyMul(a.den, b.den) });
}

export function neg(a: Value): Value {
  return { num: polyAdd(new Map(), a.num, -1), den: a.den };
}

export function sub(a: Value, b: Value): Value {
  return add(a, neg(b));
}

export function mul(a: Value, b: Value): Value {
  return normalize({ num: polyMul(a.num, b.num), den: polyMul(a.den, b.den) });
}

export function div(a: Value, b: Value): Value {
  if (b.num.size === 0) throw new Bail("division by zero");
  return normalize({ num: polyMul(a.num, b.den), den: polyMul(a.den, b.num) });
}

export function pow(a: Value, e: bigint): Value {
  if (e === 0n) return constant(Q.ONE);
  const q = asRational(a);
  if (q) return constant(q.pow(e));
  if (e < 0n) return div(constant(Q.ONE), pow(a, -e));
  if (e > 64n) throw new Bail("symbolic power too large");
  let result = constant(Q.ONE);
  let base = a;
  let k = e;
  while (k > 0n) {
    if (k & 1n) result = mul(result, base);
    k >>= 1n;
    if (k > 0n) base = mul(base, base);
  }
  return result;
}

/** The value as a rational number, or null when it involves any atom. */
export function asRational(v: Value): Q | null {
  if (!isOne(v.den)) return null;
  if (v.num.size === 0) return Q.ZERO;
  if (v.num.size !== 1) return null;
  const t = v.num.get("");
  return t ? t.c : null;
}

export function isZero(v: Value): boolean {
  return v.num.size === 0;
}

function atomsOf(v: Value): Set<string> {
  const s = new Set<string>();
  for (const p of [v.num, v.den]) for (const t of p.values()) for (const [k] of t.mono) s.add(k);
  return s;
}

export function hasOpaque(v: Value): boolean {
  for (const k of atomsOf(v)) if (k.startsWith("o:")) return true;
  return false;
}

export function hasSymbols(v: Value): boolean {
  for (const k of atomsOf(v)) if (k.startsWith("s:")) return true;
  return false;
}

/** Constant: no symbols and no opaque atoms (rationals, square roots, pi). */
export function isConstant(v: Value): boolean {
  for (const k of atomsOf(v)) if (k.startsWith("s:") || k.startsWith("o:")) return false;
  return true;
}

export type Tri = "T" | "F" | "U";

/** Exact equality: T/F when decidable here, U when opaque atoms make a difference inconclusive. */
export function equal(a: Value, b: Value): Tri {
  const d = polyAdd(polyMul(a.num, b.den), polyMul(b.num, a.den), -1);
  if (d.size === 0) return "T";
  return hasOpaque(a) || hasOpaque(b) ? "U" : "F";
}

/**
 * a = k * b for a non-zero rational k: returns k, or null when not proportional (or undecidable).
 * Used for equations (2x+4y-3=0 vs y=-x/2+3/4) and inequalities (where the sign of k matters).
 */
export function ratio(a: Value, b: Value): Q | null {
  // a.num/a.den = k b.num/b.den  <=>  a.num*b.den = k * b.num*a.den
  const l = polyMul(a.num, b.den);
  const r = polyMul(b.num, a.den);
  if (l.size === 0 || l.size !== r.size) return null;
  let k: Q | null = null;
  for (const [key, t] of l) {
    const u = r.get(key);
    if (!u) return null;
    const kk = t.c.div(u.c);
    if (k === null) k = kk;
    else if (!k.eq(kk)) return null;
  }
  return k;
}

/** A canonical string for a value whose denominator is 1 (opaque-atom keys are built from these). */
export function canonicalKey(v: Value): string {
  return `${polyKey(v.num)}|${polyKey(v.den)}`;
}

// ---- numeric evaluation of constants (for "0.3333 vs 1/3" style checks) ----

// 120 digits of pi, enough for every decimal the fast path compares (longer ones go to the symbolic path).
const PI_DIGITS =
  "3141592653589793238462643383279502884197169399375105820974944592307816406286208998628034825342117067982148086513282306647";
const PI_SCALE = PI_DIGITS.length - 1;

/**
 * The constant v as an integer approximation of v * 10^digits, with |error| < 10^(digits-20) ulps of
 * slack budgeted by the caller: evaluated at digits+25 then rounded down. Null when v is not constant,
 * is too big to evaluate cheaply, or needs more pi digits than stored.
 */
export function fixedPoint(v: Value, digits: number): bigint | null {
  if (!isConstant(v) || digits > 80) return null;
  const P = digits + 25;
  const scale = 10n ** BigInt(P);
  const evalPoly = (p: Poly): bigint | null => {
    let sum = 0n;
    for (const t of p.values()) {
      if (bitLength(t.c.n) > 256 || bitLength(t.c.d) > 256) return null;
      let x = (t.c.n * scale) / t.c.d;
      for (const [k, e] of t.mono) {
        if (k === "pi") {
          if (Math.abs(e) > 4 || P > PI_SCALE - 10) return null;
          const pi = BigInt(PI_DIGITS.slice(0, P + 1)); // pi * 10^P
          for (let i = 0; i < Math.abs(e); i++) x = e > 0 ? (x * pi) / scale : (x * scale) / pi;
        } else {
          const r = radicand(k);
          if (r === null) return null; // e and anything else: left to the symbolic path
          x = (x * isqrt(r * scale * scale)) / scale;
        }
      }
      sum += x;
    }
    return sum;
  };
  const n = evalPoly(v.num);
  const d = evalPoly(v.den);
  if (n === null || d === null || d === 0n) return null;
  const full = (n * scale) / d; // v * 10^P
  return full / 10n ** 25n;
}

/** Degree at most one in the symbols, polynomial (denominator 1), no opaque atoms: linear equations. */
export function isLinear(v: Value): boolean {
  if (!isOne(v.den)) return false;
  for (const t of v.num.values()) {
    let deg = 0;
    for (const [k, e] of t.mono) {
      if (k.startsWith("o:")) return false;
      if (k.startsWith("s:")) {
        if (e !== 1) return false;
        deg += 1;
      }
    }
    if (deg > 1) return false;
  }
  return true;
}

/** The sole symbol of a value of the form "x" (coefficient 1), or null. */
export function soleSymbol(v: Value): string | null {
  if (!isOne(v.den) || v.num.size !== 1) return null;
  const t = v.num.values().next().value as Term;
  if (!t.c.eq(Q.ONE) || t.mono.length !== 1) return null;
  const [k, e] = t.mono[0]!;
  return e === 1 && k.startsWith("s:") ? k : null;
}
