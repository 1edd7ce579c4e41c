// A small LaTeX expression parser for the fast path: numbers, + - * / ^, implicit products, \frac, \sqrt,
// \binom, n!, pi, symbols, base-n literals (204_5), and functions kept as opaque atoms. It evaluates
// straight into exact values; anything it does not understand throws Bail and the leaf goes to sympy.
import { Bail, Q, binomial, factorial, iroot } from "./rational.js";
import * as V from "./exact-value.js";
import type { Value } from "./exact-value.js";

interface Tok {
  t: "num" | "id" | "cmd" | "op";
  v: string;
}

const MAX_TOKENS = 4000;
/** Bracket/argument nesting beyond this is not an answer; it also keeps recursion far from the stack limit. */
const MAX_NESTING = 200;

export function tokenize(s: string): Tok[] {
  const out: Tok[] = [];
  let i = 0;
  while (i < s.length) {
    const c = s[i]!;
    if (c === " " || c === "\n" || c === "\t") {
      i++;
      continue;
    }
    if (/[0-9.]/.test(c)) {
      const m = /^(?:\d+(?:\.\d+)?|\.\d+)/.exec(s.slice(i, i + 2100));
      if (!m) throw new Bail("stray dot");
      out.push({ t: "num", v: m[0] });
      i += m[0].length;
    } else if (/[a-zA-Z]/.test(c)) {
      out.push({ t: "id", v: c });
      i++;
    } else if (c === "\\") {
      const m = /^\\([a-zA-Z]+)/.exec(s.slice(i, i + 40));
      if (m) {
        out.push({ t: "cmd", v: m[1]! });
        i += m[0].length;
      } else {
        const n = s[i + 1];
        if (n === "{" || n === "}" || n === "%" || n === "|") out.push({ t: "op", v: n === "{" || n === "}" ? `\\${n}` : n });
        else throw new Bail(`unknown escape \\${n ?? ""}`);
        i += 2;
      }
    } else if ("+-*/^_!()[]{}|,:=<>&'".includes(c)) {
      out.push({ t: "op", v: c });
      i++;
    } else {
      throw new Bail(`unexpected character ${c}`);
    }
    if (out.length > MAX_TOKENS) throw new Bail("expression too long");
  }
  return out;
}

const GREEK = new Set([
  "alpha", "beta", "gamma", "delta", "epsilon", "varepsilon", "zeta", "eta", "theta", "vartheta", "iota", "kappa",
  "lambda", "mu", "nu", "xi", "rho", "sigma", "tau", "upsilon", "phi", "varphi", "chi", "psi", "omega",
  "Gamma", "Delta", "Theta", "Lambda", "Xi", "Sigma", "Upsilon", "Phi", "Psi", "Omega",
]);
const FUNCS = new Set([
  "sin", "cos", "tan", "cot", "sec", "csc", "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh", "ln", "log", "exp",
  "max", "min", "gcd", "lcm", "det", "arg", "floor", "ceil", "lfloor", "lceil",
]);

/** i may be the imaginary unit or an index; leave it to sympy. */
const AMBIGUOUS_LETTERS = new Set(["i"]);

class Parser {
  private p = 0;
  private depth = 0;
  constructor(private readonly toks: Tok[]) {}

  private peek(off = 0): Tok | undefined {
    return this.toks[this.p + off];
  }
  private isOp(v: string, off = 0): boolean {
    const t = this.peek(off);
    return t !== undefined && t.t === "op" && t.v === v;
  }
  private expectOp(v: string): void {
    if (!this.isOp(v)) throw new Bail(`expected ${v}`);
    this.p++;
  }

  parseAll(): Value {
    const v = this.sum();
    if (this.p !== this.toks.length) throw new Bail(`trailing input at ${this.peek()?.v}`);
    return v;
  }

  private sum(): Value {
    if (++this.depth > MAX_NESTING) throw new Bail("nesting too deep");
    try {
      return this.sumInner();
    } finally {
      this.depth--;
    }
  }

  private sumInner(): Value {
    let v = this.signed();
    for (;;) {
      if (this.isOp("+")) {
        this.p++;
        v = V.add(v, this.signed());
      } else if (this.isOp("-")) {
        this.p++;
        v = V.sub(v, this.signed());
      } else return v;
    }
  }

  private signed(): Value {
    if (this.isOp("-")) {
      this.p++;
      return V.neg(this.signed());
    }
    if (this.isOp("+")) {
      this.p++;
      return this.signed();
    }
    return this.product();
  }

  private startsAtom(): boolean {
    const t = this.peek();
    if (!t) return false;
    if (t.t === "num" || t.t === "id") return true;
    if (t.t === "cmd") return t.v !== "pm" && t.v !== "mp";
    return t.v === "(" || t.v === "{" || t.v === "[";
  }

  private product(): Value {
    let v = this.power();
    for (;;) {
      if (this.isOp("*")) {
        this.p++;
        v = V.mul(v, this.signedPower());
      } else if (this.isOp("/")) {
        this.p++;
        v = V.div(v, this.signedPower());
      } else if (this.isOp("%")) {
        this.p++;
        v = V.div(v, V.constant(Q.int(100)));
      } else if (this.startsAtom()) {
        v = V.mul(v, this.power());
      } else return v;
    }
  }

  private signedPower(): Value {
    if (this.isOp("-")) {
      this.p++;
      return V.neg(this.signedPower());
    }
    return this.power();
  }

  private power(): Value {
    const base = this.postfix();
    if (!this.isOp("^")) return base;
    this.p++;
    const exp = this.exponent();
    return this.raise(base, exp);
  }

  private exponent(): Value {
    // x^23 is x^2 * 3 in LaTeX: a bare exponent is one digit or one symbol
    const t = this.peek();
    if (t?.t === "num") {
      this.p++;
      if (t.v.length > 1 && !t.v.includes(".")) {
        this.toks.splice(this.p, 0, { t: "num", v: t.v.slice(1) });
        return V.constant(Q.parseDecimal(t.v[0]!));
      }
      return V.constant(Q.parseDecimal(t.v));
    }
    if (this.isOp("-")) {
      this.p++;
      return V.neg(this.exponent());
    }
    return this.postfix();
  }

  private raise(base: Value, exp: Value): Value {
    const q = V.asRational(exp);
    if (q === null) return this.opaque("pow", [base, exp]);
    if (q.isInt()) return V.pow(base, q.n);
    // rational exponent: exact only for rational bases with exact roots (8^{2/3} = 4), sqrt otherwise
    const b = V.asRational(base);
    if (b !== null && q.d <= 12n && b.sign() >= 0) {
      const root = exactRoot(b, Number(q.d));
      if (root) return V.constant(root.pow(q.n));
      if (q.d === 2n) return V.pow(V.sqrtRational(b), q.n);
    }
    return this.opaque("pow", [base, exp]);
  }

  private postfix(): Value {
    let v = this.atom();
    while (this.isOp("!")) {
      this.p++;
      const q = V.asRational(v);
      if (q === null || !q.isInt()) throw new Bail("factorial of a non-integer");
      v = V.constant(Q.of(factorial(q.n)));
    }
    if (this.isOp("'")) throw new Bail("prime notation");
    return v;
  }

  private group(): Value {
    // {...} argument or a single token
    if (this.isOp("{")) {
      this.p++;
      const v = this.sum();
      this.expectOp("}");
      return v;
    }
    const t = this.peek();
    if (t?.t === "num" && t.v.length > 1 && !t.v.includes(".")) {
      // \frac12 style single digits
      this.p++;
      this.toks.splice(this.p, 0, { t: "num", v: t.v.slice(1) });
      return V.constant(Q.parseDecimal(t.v[0]!));
    }
    return this.atom();
  }

  private opaque(name: string, args: Value[]): Value {
    return V.atom(`o:${name}(${args.map(V.canonicalKey).join(";")})`);
  }

  private subscript(): string {
    // _5, _{12}, _x, _{n-k-1}: returns a canonical text
    if (!this.isOp("_")) return "";
    this.p++;
    if (this.isOp("{")) {
      const start = this.p;
      let depth = 0;
      for (; this.p < this.toks.length; this.p++) {
        const t = this.toks[this.p]!;
        if (t.t === "op" && t.v === "{") depth++;
        if (t.t === "op" && t.v === "}") {
          depth--;
          if (depth === 0) {
            this.p++;
            break;
          }
        }
      }
      return this.toks.slice(start + 1, this.p - 1).map((t) => t.v).join("");
    }
    const t = this.peek();
    if (!t) throw new Bail("dangling subscript");
    this.p++;
    return t.t === "num" ? t.v[0]! : t.v;
  }

  private atom(): Value {
    const t = this.peek();
    if (!t) throw new Bail("unexpected end");
    if (t.t === "num") {
      this.p++;
      const sub = this.subscript();
      if (sub) return V.constant(baseLiteral(t.v, sub));
      return V.constant(Q.parseDecimal(t.v));
    }
    if (t.t === "id") {
      this.p++;
      if (AMBIGUOUS_LETTERS.has(t.v)) throw new Bail("i");
      // a bare e is Euler's number, as sympy reads it: an independent transcendental atom like pi
      if (t.v === "e" && !this.isOp("_") && !this.isOp("(")) return V.atom("c:e");
      // case is kept: X and x are different symbols (docs/MATH_GRADER.md, "Letter case")
      const name = t.v + (this.isOp("_") ? `_${this.subscript()}` : "");
      if (this.isOp("(")) return this.call(name); // f(x): an undefined function, kept opaque
      return V.atom(`s:${name}`);
    }
    if (t.t === "op") {
      if (t.v === "(" || t.v === "[") {
        this.p++;
        const v = this.sum();
        if (!this.isOp(t.v === "(" ? ")" : "]")) throw new Bail("unbalanced parenthesis");
        this.p++;
        return v;
      }
      if (t.v === "{") {
        this.p++;
        const v = this.sum();
        this.expectOp("}");
        return v;
      }
      if (t.v === "|") {
        this.p++;
        const v = this.sum();
        this.expectOp("|");
        const q = V.asRational(v);
        if (q !== null) return V.constant(q.sign() < 0 ? q.neg() : q);
        return this.opaque("abs", [v]);
      }
      throw new Bail(`unexpected ${t.v}`);
    }
    // commands
    this.p++;
    const c = t.v;
    if (c === "frac") {
      const a = this.group();
      const b = this.group();
      return V.div(a, b);
    }
    if (c === "sqrt") {
      let n = 2;
      if (this.isOp("[")) {
        this.p++;
        const idx = V.asRational(this.sum());
        this.expectOp("]");
        if (idx === null || !idx.isInt() || idx.n < 2n || idx.n > 12n) throw new Bail("odd root index");
        n = Number(idx.n);
      }
      const a = this.group();
      const q = V.asRational(a);
      if (q !== null && q.sign() >= 0) {
        const root = exactRoot(q, n);
        if (root) return V.constant(root);
        if (n === 2) return V.sqrtRational(q);
      }
      return this.opaque(`root${n}`, [a]);
    }
    if (c === "binom" || c === "dbinom" || c === "tbinom") {
      const a = V.asRational(this.group());
      const b = V.asRational(this.group());
      if (a === null || b === null || !a.isInt() || !b.isInt()) throw new Bail("symbolic binomial");
      return V.constant(Q.of(binomial(a.n, b.n)));
    }
    if (c === "pi") return V.atom("pi");
    if (GREEK.has(c)) return V.atom(`s:${c}`); // \Delta and \delta are different symbols
    if (FUNCS.has(c)) return this.func(c);
    if (c === "infty") throw new Bail("infinity in an expression");
    throw new Bail(`unsupported command \\${c}`);
  }

  private call(name: string): Value {
    this.expectOp("(");
    const args = [this.sum()];
    while (this.isOp(",")) {
      this.p++;
      args.push(this.sum());
    }
    this.expectOp(")");
    return this.opaque(`call:${name}`, args);
  }

  private func(name: string): Value {
    let sub: Value | null = null;
    let pw: Value | null = null;
    for (let k = 0; k < 2; k++) {
      if (this.isOp("_")) {
        this.p++;
        sub = this.group();
      } else if (this.isOp("^")) {
        this.p++;
        pw = this.exponent();
      }
    }
    let arg: Value;
    if (this.isOp("(")) {
      this.p++;
      arg = this.sum();
      this.expectOp(")");
    } else {
      arg = this.power();
    }
    let v: Value;
    const exact = name === "log" && sub ? exactLog(arg, sub) : null;
    if (exact) v = exact;
    else v = this.opaque(name + (sub ? `_${V.canonicalKey(sub)}` : ""), [arg]);
    // \sin^{-1} is arcsin, not 1/sin
    if (pw) {
      const q = V.asRational(pw);
      if (q !== null && q.eq(Q.int(-1))) throw new Bail("inverse function notation");
      v = this.raise(v, pw);
    }
    return v;
  }
}

/** Exact n-th root of a non-negative rational, or null when it is irrational. */
function exactRoot(q: Q, n: number): Q | null {
  const rn = iroot(q.n, n);
  const rd = iroot(q.d, n);
  if (rn ** BigInt(n) === q.n && rd ** BigInt(n) === q.d) return Q.of(rn, rd);
  return null;
}

/** log_b(a) when a is an exact integer power of b (log_2 8 = 3), else null. */
function exactLog(arg: Value, base: Value): Value | null {
  const a = V.asRational(arg);
  const b = V.asRational(base);
  if (a === null || b === null || a.sign() <= 0 || b.sign() <= 0 || b.eq(Q.ONE)) return null;
  let p = Q.ONE;
  for (let k = 0; k <= 64; k++) {
    if (p.eq(a)) return V.constant(Q.int(k));
    if (p.inv().eq(a)) return V.constant(Q.int(-k));
    p = p.mul(b);
  }
  return null;
}

/** 204_5 = 54: digits in a base from 2 to 36 (a base-10 subscript is just the number). */
function baseLiteral(digits: string, sub: string): Q {
  if (!/^\d+$/.test(sub) || digits.includes(".")) throw new Bail("odd subscript on a number");
  const base = Number(sub);
  if (base < 2 || base > 36) throw new Bail("bad base");
  let v = 0n;
  for (const ch of digits) {
    const d = Number(ch);
    if (d >= base) throw new Bail("digit out of range for base");
    v = v * BigInt(base) + BigInt(d);
  }
  return Q.of(v);
}

/** Parses a normalized LaTeX expression into an exact value, or throws Bail. */
export function parseExpression(s: string): Value {
  const toks = tokenize(s);
  if (toks.length === 0) throw new Bail("empty expression");
  return new Parser(toks).parseAll();
}
