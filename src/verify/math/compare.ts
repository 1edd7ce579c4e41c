// Structural comparison of a reference tree with a prediction tree, in three-valued logic:
// T (equal), F (different), U (undecided here). Every U records the symbolic query that would settle it;
// the grader sends those to the Python pool and runs the comparison again with the answers.
import { Q } from "./rational.js";
import * as V from "./exact-value.js";
import type { Tri } from "./exact-value.js";
import { type Leaf, type Node, type RelOp, isSymbolOnly, leaf, nodeKey } from "./answer-parse.js";

export interface CompareOptions {
  /** Fewest digits after the point for a decimal prediction to stand for an exact, non-decimal reference. */
  precision: number;
  /** Variables matter: f(x) and f(y) differ. */
  strict: boolean;
  /**
   * Also compare a set reference with a relation prediction (reference x in [-2,7], prediction -2 <= x <= 7).
   * A relation reference is always compared with a set prediction.
   */
  allowSetRelation: boolean;
}

export const DEFAULT_COMPARE: CompareOptions = { precision: 6, strict: true, allowSetRelation: true };

export type QueryOp = "expr" | "rel" | "relset" | "set";

/** One question for the symbolic path. gold/pred are normalized LaTeX. */
export interface SymbolicQuery {
  op: QueryOp;
  gold: string;
  pred: string;
  goldDec: number | null;
  predDec: number | null;
  precision: number;
  strict: boolean;
}

export function queryKey(q: SymbolicQuery): string {
  return `${q.op}\u0000${q.gold}\u0000${q.pred}\u0000${q.goldDec}\u0000${q.predDec}\u0000${q.precision}\u0000${q.strict}`;
}

type Thunk = () => Tri;

function and3(...fs: Thunk[]): Tri {
  let r: Tri = "T";
  for (const f of fs) {
    const v = f();
    if (v === "F") return "F";
    if (v === "U") r = "U";
  }
  return r;
}

function or3(...fs: Thunk[]): Tri {
  let r: Tri = "F";
  for (const f of fs) {
    const v = f();
    if (v === "T") return "T";
    if (v === "U") r = "U";
  }
  return r;
}

const FLIP: Record<RelOp, RelOp> = { "=": "=", "<": ">", ">": "<", le: "ge", ge: "le", ne: "ne", in: "in" };
const INEQ = new Set<RelOp>(["<", ">", "le", "ge"]);

function isColl(n: Node): n is Extract<Node, { kind: "list" | "set" }> {
  return n.kind === "list" || n.kind === "set";
}

function unwrapSingle(n: Node): Node {
  while (isColl(n) && n.items.length === 1) n = n.items[0]!;
  return n;
}

interface IntervalLike {
  lo: Node;
  hi: Node;
  loOpen: boolean;
  hiOpen: boolean;
}

function asInterval(n: Node): IntervalLike | null {
  if (n.kind === "interval") return n;
  if (n.kind === "tuple" && n.maybeInterval) return { lo: n.items[0]!, hi: n.items[1]!, loOpen: true, hiOpen: true };
  return null;
}

function isSetLike(n: Node): boolean {
  return n.kind === "interval" || n.kind === "union" || n.kind === "set" || (n.kind === "tuple" && n.maybeInterval);
}

function isInequalityChain(n: Node): n is Extract<Node, { kind: "rel" }> {
  return n.kind === "rel" && n.ops.every((o) => INEQ.has(o));
}

function isAssignment(n: Extract<Node, { kind: "rel" }>): boolean {
  const first = n.terms[0]!;
  if (n.ops.length === 1 && n.ops[0] === "in") return isSymbolOnly(first.src);
  return n.ops.every((o) => o === "=") && isSymbolOnly(first.src);
}

/** An equation chain whose terms before the last are constants: "5+5+1 = 11", "1/2 = 10/9". */
function isComputation(n: Extract<Node, { kind: "rel" }>): boolean {
  return n.terms.slice(0, -1).every((t) => t.kind === "expr" && t.inf === 0 && t.value !== null && V.isConstant(t.value));
}

function last(n: Extract<Node, { kind: "rel" }>): Node {
  return n.terms[n.terms.length - 1]!;
}

/**
 * Words for text answers: \text{Evelyn}, "odd", "(C)". Null when the node is not a word. Words compare
 * without case; a single letter keeps its case (X and x are different symbols, e is not E) unless it
 * is a multiple-choice letter (see sameWord).
 */
function wordOf(n: Node): string | null {
  if (n.kind === "text") return n.text.replace(/[\s()]/g, "").toLowerCase();
  if (n.kind === "expr" && /^\(?[a-zA-Z][a-zA-Z ]*\)?$/.test(n.src)) {
    const w = n.src.replace(/[\s()]/g, "");
    return w.length === 1 ? w : w.toLowerCase();
  }
  return null;
}

/** A reference that names a choice: an upper-case A-E, or any letter in parentheses ("(c)"). */
function isChoice(n: Node): boolean {
  return n.kind === "expr" && (/^[A-E]$/.test(n.src.trim()) || /^\(\s*[a-zA-Z]\s*\)$/.test(n.src.trim()));
}

function sameWord(g: Node, gw: string, pw: string): boolean {
  if (gw === pw) return true;
  return gw.length === 1 && pw.length === 1 && isChoice(g) && gw.toLowerCase() === pw.toLowerCase();
}

function scaled(l: Leaf, pct: boolean): Leaf {
  if (!pct) return { ...l, pct: false };
  return {
    ...l,
    src: `\\frac{${l.src}}{100}`,
    value: l.value ? V.div(l.value, V.constant(Q.int(100))) : null,
    dec: null,
    pct: false,
  };
}

export class Comparison {
  readonly pending = new Map<string, SymbolicQuery>();

  constructor(
    private readonly opts: CompareOptions,
    private readonly answers: ReadonlyMap<string, boolean> = new Map(),
  ) {}

  run(gold: Node, pred: Node): Tri {
    return this.cmp(gold, pred);
  }

  private ask(op: QueryOp, g: Node, p: Node): Tri {
    const q: SymbolicQuery = {
      op,
      gold: g.src,
      pred: p.src,
      goldDec: g.kind === "expr" ? g.dec : null,
      predDec: p.kind === "expr" ? p.dec : null,
      precision: this.opts.precision,
      strict: this.opts.strict,
    };
    const k = queryKey(q);
    const a = this.answers.get(k);
    if (a !== undefined) return a ? "T" : "F";
    this.pending.set(k, q);
    return "U";
  }

  private cmp(g: Node, p: Node): Tri {
    if (nodeKey(g) === nodeKey(p) && nodeKey(g) !== "") return "T";
    if (g.kind === "rel" || p.kind === "rel") return this.relations(g, p);
    g = unwrapSingle(g);
    p = unwrapSingle(p);
    if (nodeKey(g) === nodeKey(p) && nodeKey(g) !== "") return "T";

    const gw = wordOf(g);
    const pw = wordOf(p);
    if (gw !== null && pw !== null) {
      return sameWord(g, gw, pw) ? "T" : "F";
    }
    if (g.kind === "text" || p.kind === "text") {
      // \text{13} is a number in text clothing
      const gt = g.kind === "text" ? leaf(g.text) : g;
      const pt = p.kind === "text" ? leaf(p.text) : p;
      if (gt.kind === "expr" && pt.kind === "expr" && gt.value && pt.value) return this.leaves(gt, pt);
      return "F";
    }

    if (isColl(g) && isColl(p)) return this.unordered(g.items, p.items);
    if ((g.kind === "tuple" || isColl(g)) && (p.kind === "tuple" || isColl(p))) {
      const gi = g.kind === "tuple" ? g.items : (g as { items: Node[] }).items;
      const pi = p.kind === "tuple" ? p.items : (p as { items: Node[] }).items;
      return this.ordered(gi, pi);
    }
    if (g.kind === "union" || p.kind === "union") return this.unions(g, p);
    if (g.kind === "interval" || p.kind === "interval") {
      const a = asInterval(g);
      const b = asInterval(p);
      if (a && b) return this.intervals(a, b);
      return this.unparsedVsStructure(g, p);
    }
    if (g.kind === "matrix" && p.kind === "matrix") {
      if (g.rows.length !== p.rows.length || g.rows[0]!.length !== p.rows[0]!.length) return "F";
      return and3(...g.rows.flatMap((row, i) => row.map((c, j) => () => this.cmp(c, p.rows[i]![j]!))));
    }
    if (g.kind === "expr" && p.kind === "expr") return this.leaves(g, p);
    return this.unparsedVsStructure(g, p);
  }

  /** A leaf the fast parser could not read may still be a structure sympy can (a matrix product, -[0,1)). */
  private unparsedVsStructure(g: Node, p: Node): Tri {
    const unread = (n: Node) => n.kind === "expr" && n.value === null && n.inf === 0;
    if (unread(g) || unread(p)) return this.ask("expr", g, p);
    return "F";
  }

  private ordered(a: Node[], b: Node[]): Tri {
    if (a.length !== b.length) return "F";
    return and3(...a.map((x, i) => () => this.cmp(x, b[i]!)));
  }

  /** Set equality: a perfect matching between distinct items. */
  private unordered(a0: Node[], b0: Node[]): Tri {
    const dedupe = (xs: Node[]) => [...new Map(xs.map((x) => [nodeKey(x), x])).values()];
    const a = dedupe(a0);
    const b = dedupe(b0);
    if (a.length !== b.length) return "F";
    const m = a.map((x) => b.map((y) => this.cmp(x, y)));
    if (perfectMatching(m, (t) => t === "T")) return "T";
    if (!perfectMatching(m, (t) => t !== "F")) return "F";
    return "U";
  }

  private intervals(a: IntervalLike, b: IntervalLike): Tri {
    if (a.loOpen !== b.loOpen || a.hiOpen !== b.hiOpen) return "F";
    return and3(
      () => this.cmp(a.lo, b.lo),
      () => this.cmp(a.hi, b.hi),
    );
  }

  private unions(g: Node, p: Node): Tri {
    const gParts = g.kind === "union" ? g.parts : [g];
    const pParts = p.kind === "union" ? p.parts : [p];
    const gm = mergeIntervals(gParts);
    const pm = mergeIntervals(pParts);
    if (gm && pm) {
      if (gm.length !== pm.length) return "F";
      return and3(...gm.map((x, i) => () => this.intervals(x, pm[i]!)));
    }
    const r = this.unordered(gParts, pParts);
    return r === "F" ? this.ask("set", g, p) : r;
  }

  private leaves(g: Leaf, p: Leaf): Tri {
    if (g.inf !== 0 || p.inf !== 0) return g.inf === p.inf ? "T" : "F";
    if (g.numeral || p.numeral) return numerals(g, p);
    if (g.pct && !p.pct) {
      // a reference x% against a plain number: the number written without its unit, or its value x/100
      return or3(
        () => this.leafCore(scaled(g, false), p),
        () => this.leafCore(scaled(g, true), p),
      );
    }
    // a unit only the prediction has is not dropped: 0.5% is not 0.5 (but 50% is the value 0.5)
    if (p.pct && !g.pct) return this.leafCore(g, scaled(p, true));
    return this.leafCore(g, p);
  }

  private leafCore(g: Leaf, p: Leaf): Tri {
    if (!g.value || !p.value) return this.ask("expr", g, p);
    if (!this.opts.strict && (V.hasSymbols(g.value) || V.hasSymbols(p.value) || V.hasOpaque(g.value) || V.hasOpaque(p.value))) {
      return this.ask("expr", g, p);
    }
    if (g.dec !== null && p.dec === null) return this.approx(g, p, false);
    if (p.dec !== null && g.dec === null) return this.approx(p, g, true);
    const r = V.equal(g.value, p.value);
    return r === "U" ? this.ask("expr", g, p) : r;
  }

  /**
   * A decimal against an exact value that has no finite decimal expansion (1/3, 70/9, sqrt 17): equal when
   * the decimal is that value rounded or truncated to the decimal's own digits. A decimal prediction must
   * also show at least `precision` digits (0.33 does not stand for 1/3, 0.333333 does). Everything else —
   * two decimals, or a decimal against 49/20 — is compared exactly.
   */
  private approx(d: Leaf, x: Leaf, predIsDecimal: boolean): Tri {
    const dv = V.asRational(d.value!)!;
    const k = d.dec!;
    const xv = x.value!;
    const xq = V.asRational(xv);
    if (xq && xq.eq(dv)) return "T";
    if (xq && terminates(xq)) return "F";
    if (predIsDecimal && k < this.opts.precision) return "F";
    if (xq) return roundsTo(xq, dv, k) ? "T" : "F";
    if (!V.isConstant(xv)) return V.hasOpaque(xv) ? this.ask("expr", predIsDecimal ? x : d, predIsDecimal ? d : x) : "F";
    const extra = 6;
    const X = V.fixedPoint(xv, k + extra);
    if (X === null) return this.ask("expr", predIsDecimal ? x : d, predIsDecimal ? d : x);
    const D = dv.n * 10n ** BigInt(k + extra) / dv.d;
    const half = 5n * 10n ** BigInt(extra - 1);
    const unit = 10n ** BigInt(extra);
    const margin = 10n;
    const [xx, dd] = D < 0n ? [-X, -D] : [X, D];
    const lo = dd === 0n ? -unit : dd - half;
    const hi = dd + unit;
    if (xx >= lo + margin && xx < hi - margin) return "T";
    if (xx < lo - margin || xx >= hi + margin) return "F";
    return this.ask("expr", predIsDecimal ? x : d, predIsDecimal ? d : x);
  }

  private relations(g: Node, p: Node): Tri {
    const gRel = g.kind === "rel" ? g : null;
    const pRel = p.kind === "rel" ? p : null;
    if (gRel && pRel) {
      if (isAssignment(gRel) && isAssignment(pRel)) {
        return and3(
          () => this.sameSide(gRel.terms[0]!, pRel.terms[0]!),
          () => this.cmp(last(gRel), last(pRel)),
        );
      }
      return this.relCompare(gRel, pRel);
    }
    if (gRel) {
      if (isAssignment(gRel)) return this.cmp(last(gRel), p);
      if (isInequalityChain(gRel) && isSetLike(unwrapSingle(p))) return this.relSet(gRel, unwrapSingle(p));
      return "F";
    }
    const pr = pRel!;
    // a prediction "x = 3", "x \in [0,1]" or a computation "5+5+1 = 11" states its last term; an
    // equation in unknowns ("x+z = 1") states no value
    if (isAssignment(pr) || (pr.ops.every((o) => o === "=") && isComputation(pr))) return this.cmp(g, last(pr));
    if (isInequalityChain(pr) && isSetLike(unwrapSingle(g))) {
      return this.opts.allowSetRelation ? this.relSet(pr, unwrapSingle(g)) : "F";
    }
    return "F";
  }

  /** Left sides of two assignments: the same symbol(s). */
  private sameSide(a: Node, b: Node): Tri {
    if (nodeKey(a) === nodeKey(b)) return "T";
    return this.cmp(a, b);
  }

  private relCompare(g: Extract<Node, { kind: "rel" }>, p: Extract<Node, { kind: "rel" }>): Tri {
    const gIn = g.ops.includes("in");
    const pIn = p.ops.includes("in");
    if (gIn || pIn) {
      if (gIn && pIn) return and3(() => this.sameSide(g.terms[0]!, p.terms[0]!), () => this.cmp(last(g), last(p)));
      if (pIn && isInequalityChain(g)) return this.relSet(g, last(p));
      if (gIn && isInequalityChain(p)) return this.opts.allowSetRelation ? this.relSet(p, last(g)) : "F";
      return "F";
    }
    const leaves = [...g.terms, ...p.terms];
    const values = leaves.map((t) => (t.kind === "expr" && t.inf === 0 ? t.value : null));
    if (values.some((v) => v === null || V.hasOpaque(v)) || !this.opts.strict) return this.ask("rel", g, p);
    if (g.terms.length !== p.terms.length) return this.ask("rel", g, p);
    const gv = values.slice(0, g.terms.length) as V.Value[];
    const pv = values.slice(g.terms.length) as V.Value[];
    const forward = () => and3(...g.ops.map((op, i) => () => relPair(gv[i]!, op, gv[i + 1]!, pv[i]!, p.ops[i]!, pv[i + 1]!)));
    const backward = () => {
      const n = p.ops.length;
      return and3(...g.ops.map((op, i) => () => relPair(gv[i]!, op, gv[i + 1]!, pv[n - i]!, FLIP[p.ops[n - 1 - i]!], pv[n - 1 - i]!)));
    };
    const r = or3(forward, backward);
    return r === "U" ? this.ask("rel", g, p) : r;
  }

  /** An inequality chain in one symbol against a set: as intervals when simple, else sympy. */
  private relSet(rel: Extract<Node, { kind: "rel" }>, set: Node): Tri {
    const iv = chainToInterval(rel);
    const target = asInterval(set);
    if (iv && target) return this.intervals(iv, target);
    if (iv && set.kind === "union") return this.unions({ kind: "interval", src: rel.src, ...iv }, set);
    return this.ask("relset", rel, set);
  }
}

/**
 * A numeral in base n (1011_2) is the numeral, not its decimal value: a decimal with the same value ("11")
 * is an echo of the question, not the answer it asks for. Two numerals in the same base compare by value
 * (leading zeros do not count); a numeral against a bare integer compares digits (the base written on one
 * side only, as the problem states it). Anything else is different.
 */
function numerals(g: Leaf, p: Leaf): Tri {
  const plainDigits = (l: Leaf) => (!l.pct && /^\d+$/.test(l.src.trim()) ? l.src.trim() : null);
  const noZeros = (d: string) => d.replace(/^0+(?=\d)/, "");
  if (g.numeral && p.numeral) {
    if (g.numeral.base !== p.numeral.base || !g.value || !p.value) return "F";
    return V.equal(g.value, p.value) === "T" ? "T" : "F";
  }
  const [num, other] = g.numeral ? [g.numeral, p] : [p.numeral!, g];
  const digits = plainDigits(other);
  return digits !== null && noZeros(digits) === noZeros(num.digits) ? "T" : "F";
}

/** One relation a op b against c op2 d, both with exact values free of opaque atoms. */
function relPair(a: V.Value, op: RelOp, b: V.Value, c: V.Value, op2: RelOp, d: V.Value): Tri {
  const d1 = V.sub(a, b);
  const d2 = V.sub(c, d);
  const k = V.ratio(d1, d2);
  if (k !== null) {
    if (op === "=" || op === "ne") return op === op2 ? "T" : "F";
    if (op === op2 && k.sign() > 0) return "T";
    if (FLIP[op] === op2 && k.sign() < 0) return "T";
    return "F";
  }
  // two linear relations are equivalent only when proportional; beyond that, solution sets decide
  return V.isLinear(d1) && V.isLinear(d2) ? "F" : "U";
}

/** a < x <= b, x > a, 3 >= x ... with one symbol and constant bounds, as an interval. */
function chainToInterval(rel: Extract<Node, { kind: "rel" }>): IntervalLike | null {
  const vals = rel.terms.map((t) => (t.kind === "expr" ? t : null));
  if (vals.some((v) => v === null)) return null;
  const leaves = vals as Leaf[];
  const symIdx = leaves.findIndex((l) => l.value !== null && V.soleSymbol(l.value) !== null);
  if (symIdx < 0) return null;
  const others = leaves.filter((_, i) => i !== symIdx);
  if (others.some((l) => l.inf === 0 && (l.value === null || !V.isConstant(l.value)))) return null;
  const inf = (s: number): Leaf => ({ kind: "expr", src: s > 0 ? "\\infty" : "-\\infty", value: null, dec: null, pct: false, inf: s });
  let lo: Leaf = inf(-1);
  let hi: Leaf = inf(1);
  let loOpen = true;
  let hiOpen = true;
  const bound = (other: Leaf, op: RelOp, otherIsLeft: boolean) => {
    // normalise to "other op' x"
    const o = otherIsLeft ? op : FLIP[op];
    if (o === "<" || o === "le") {
      lo = other;
      loOpen = o === "<";
    } else if (o === ">" || o === "ge") {
      hi = other;
      hiOpen = o === ">";
    }
  };
  if (symIdx > 0) bound(leaves[symIdx - 1]!, rel.ops[symIdx - 1]!, true);
  if (symIdx < leaves.length - 1) bound(leaves[symIdx + 1]!, rel.ops[symIdx]!, false);
  if (leaves.length > 3 || rel.ops.some((o) => !INEQ.has(o))) return null;
  return { lo, hi, loOpen, hiOpen };
}

/** Union parts with rational or infinite endpoints, sorted and merged; null when that is not possible. */
function mergeIntervals(parts: Node[]): IntervalLike[] | null {
  type R = { lo: Q | null; hi: Q | null; loOpen: boolean; hiOpen: boolean };
  const rs: R[] = [];
  for (const p of parts) {
    const iv = asInterval(p);
    if (!iv) return null;
    // null is the infinite end on that side; undefined means "not a plain rational"
    const end = (n: Node, side: number): Q | null | undefined => {
      if (n.kind !== "expr") return undefined;
      if (n.inf !== 0) return n.inf === side ? null : undefined;
      return n.value ? (V.asRational(n.value) ?? undefined) : undefined;
    };
    const lo = end(iv.lo, -1);
    const hi = end(iv.hi, 1);
    if (lo === undefined || hi === undefined) return null;
    rs.push({ lo, hi, loOpen: iv.loOpen, hiOpen: iv.hiOpen });
  }
  rs.sort((a, b) => (a.lo === null ? (b.lo === null ? 0 : -1) : b.lo === null ? 1 : a.lo.cmp(b.lo)));
  const out: R[] = [];
  for (const r of rs) {
    const prev = out[out.length - 1];
    if (prev) {
      if (prev.hi === null) continue; // already reaches +infinity
      const c = r.lo === null ? 1 : prev.hi.cmp(r.lo);
      if (c > 0 || (c === 0 && (!prev.hiOpen || !r.loOpen))) {
        // overlapping or touching: extend the previous interval
        const h = r.hi === null ? 1 : r.hi.cmp(prev.hi);
        if (h > 0) {
          prev.hi = r.hi;
          prev.hiOpen = r.hiOpen;
        } else if (h === 0) prev.hiOpen = prev.hiOpen && r.hiOpen;
        continue;
      }
    }
    out.push({ ...r });
  }
  const mk = (q: Q | null, side: number): Leaf =>
    q === null
      ? { kind: "expr", src: side > 0 ? "\\infty" : "-\\infty", value: null, dec: null, pct: false, inf: side }
      : { kind: "expr", src: q.toString(), value: V.constant(q), dec: null, pct: false, inf: 0 };
  return out.map((r) => ({ lo: mk(r.lo, -1), hi: mk(r.hi, 1), loOpen: r.loOpen, hiOpen: r.hiOpen }));
}

/** Is there a perfect matching using only edges `ok(m[i][j])`? (Kuhn's augmenting paths.) */
function perfectMatching(m: Tri[][], ok: (t: Tri) => boolean): boolean {
  const n = m.length;
  const matchB = new Array<number>(n).fill(-1);
  const tryA = (i: number, seen: boolean[]): boolean => {
    for (let j = 0; j < n; j++) {
      if (seen[j] || !ok(m[i]![j]!)) continue;
      seen[j] = true;
      if (matchB[j] === -1 || tryA(matchB[j]!, seen)) {
        matchB[j] = i;
        return true;
      }
    }
    return false;
  };
  for (let i = 0; i < n; i++) if (!tryA(i, new Array<boolean>(n).fill(false))) return false;
  return true;
}

/** Has a finite decimal expansion: the reduced denominator is 2^a 5^b. */
export function terminates(q: Q): boolean {
  let d = q.d;
  while (d % 2n === 0n) d /= 2n;
  while (d % 5n === 0n) d /= 5n;
  return d === 1n;
}

/** x within [d - u/2, d + u) for u = 10^-k (rounded or truncated to k digits), mirrored for negatives. */
export function roundsTo(x: Q, d: Q, k: number): boolean {
  const u = Q.of(1n, 10n ** BigInt(k));
  const half = Q.of(1n, 2n * 10n ** BigInt(k));
  if (d.isZero()) return x.sign() >= 0 ? x.cmp(u) < 0 : x.neg().cmp(u) < 0;
  const [xx, dd] = d.sign() < 0 ? [x.neg(), d.neg()] : [x, d];
  return xx.cmp(dd.sub(half)) >= 0 && xx.cmp(dd.add(u)) < 0;
}
