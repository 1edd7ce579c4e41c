// Turns a normalized answer string into a small tree: lists, tuples, intervals, unions, sets, matrices,
// relation chains and leaves. Leaves carry their LaTeX (for the symbolic path) and, when the fast parser
// understands them, an exact value. Structure is found by splitting at top-level separators only.
import { Bail } from "./rational.js";
import type { Value } from "./exact-value.js";
import { div as divide } from "./exact-value.js";
import { parseExpression } from "./expr-parse.js";
import { compactForm } from "./latex-normalize.js";

export type RelOp = "=" | "<" | ">" | "le" | "ge" | "ne" | "in";

export interface Leaf {
  kind: "expr";
  src: string;
  value: Value | null;
  /** Digits after the decimal point when the whole leaf is a plain decimal literal (0.33 -> 2). */
  dec: number | null;
  /** Written with a trailing percent sign. */
  pct: boolean;
  /** +1 / -1 for (+/-) infinity. */
  inf: number;
  /** Why the fast parser gave up, when it did. */
  why?: string;
  /** The whole leaf is a numeral in a base other than 10 (1011_2, 123_{4}): its digits and base. */
  numeral?: { digits: string; base: number };
}

export type Node =
  | Leaf
  | { kind: "text"; src: string; text: string }
  | { kind: "tuple"; src: string; items: Node[]; maybeInterval: boolean }
  | { kind: "interval"; src: string; lo: Node; hi: Node; loOpen: boolean; hiOpen: boolean }
  | { kind: "union"; src: string; parts: Node[] }
  | { kind: "set"; src: string; items: Node[] }
  | { kind: "list"; src: string; items: Node[] }
  | { kind: "matrix"; src: string; rows: Node[][] }
  | { kind: "rel"; src: string; terms: Node[]; ops: RelOp[] };

const MAX_ITEMS = 200;
const MAX_DEPTH = 12;

interface Cut {
  at: number;
  len: number;
  tok: string;
}

const OPENERS = new Set(["(", "[", "{"]);
const ENV_TAG = /^\\(begin|end)\{[a-zA-Z*]*\}/;
const CLOSERS = new Set([")", "]", "}"]);

/**
 * Positions of `seps` at bracket depth 0. Brackets of any kind nest together so half-open intervals
 * like [0,1) balance; \{ \} and \begin \end count as brackets too.
 */
function topLevelCuts(s: string, seps: RegExp): Cut[] {
  const cuts: Cut[] = [];
  let depth = 0;
  const re = sticky(seps);
  for (let i = 0; i < s.length; ) {
    const env = ENV_TAG.exec(s.slice(i, i + 40));
    if (env) {
      depth += env[1] === "begin" ? 1 : -1;
      i += env[0].length;
      continue;
    }
    if (s.startsWith("\\{", i)) {
      depth++;
      i += 2;
      continue;
    }
    if (s.startsWith("\\}", i)) {
      depth--;
      i += 2;
      continue;
    }
    const c = s[i]!;
    if (depth === 0) {
      re.lastIndex = i;
      const m = re.exec(s);
      if (m && m[0].length > 0) {
        cuts.push({ at: i, len: m[0].length, tok: m[0] });
        i += m[0].length;
        continue;
      }
    }
    if (c === "\\") {
      const m = /^\\[a-zA-Z]+|^\\./.exec(s.slice(i, i + 30));
      i += m ? m[0].length : 1;
      continue;
    }
    if (OPENERS.has(c)) depth++;
    else if (CLOSERS.has(c)) depth--;
    i++;
  }
  return cuts;
}

const STICKY = new Map<string, RegExp>();
function sticky(re: RegExp): RegExp {
  let s = STICKY.get(re.source);
  if (!s) STICKY.set(re.source, (s = new RegExp(re.source, "y")));
  return s;
}

function splitAt(s: string, cuts: Cut[]): string[] {
  const parts: string[] = [];
  let pos = 0;
  for (const c of cuts) {
    parts.push(s.slice(pos, c.at).trim());
    pos = c.at + c.len;
  }
  parts.push(s.slice(pos).trim());
  return parts;
}

/** Index of the bracket closing the one at `open` (any bracket kind, as in topLevelCuts), or -1. */
function closingIndex(s: string, open: number): number {
  let depth = 0;
  for (let i = open; i < s.length; i++) {
    const env = ENV_TAG.exec(s.slice(i, i + 40));
    if (env) {
      depth += env[1] === "begin" ? 1 : -1;
      i += env[0].length - 1;
      continue;
    }
    if (s.startsWith("\\{", i)) {
      depth++;
      i++;
      continue;
    }
    if (s.startsWith("\\}", i)) {
      depth--;
      if (depth === 0) return i;
      i++;
      continue;
    }
    const c = s[i]!;
    if (c === "\\") {
      i++;
      continue;
    }
    if (OPENERS.has(c)) depth++;
    else if (CLOSERS.has(c)) {
      depth--;
      if (depth === 0) return i;
    }
  }
  return -1;
}

const REL_RE = /=|<|>|\\le(?![a-zA-Z])|\\ge(?![a-zA-Z])|\\ne(?![a-zA-Z])|\\approx(?![a-zA-Z])|\\in(?![a-zA-Z])/;
const REL_OPS: Record<string, RelOp | "approx"> = {
  "=": "=",
  "<": "<",
  ">": ">",
  "\\le": "le",
  "\\ge": "ge",
  "\\ne": "ne",
  "\\in": "in",
  "\\approx": "approx",
};

/** Commands the symbolic parser may know; a relation term with any other command is treated as noise. */
const KNOWN_COMMANDS = new Set([
  "frac", "sqrt", "pi", "infty", "sum", "prod", "int", "lim", "log", "ln", "exp", "sin", "cos", "tan", "cot", "sec",
  "csc", "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh", "binom", "cup", "cap", "pm", "mp", "le", "ge", "ne",
  "in", "text", "begin", "end", "alpha", "beta", "gamma", "delta", "epsilon", "varepsilon", "theta", "lambda", "mu",
  "sigma", "tau", "phi", "varphi", "omega", "rho", "psi", "chi", "eta", "zeta", "xi", "nu", "kappa", "iota",
  "Gamma", "Delta", "Theta", "Lambda", "Sigma", "Phi", "Omega", "Psi", "Xi", "overline", "angle", "triangle",
  "max", "min", "gcd", "lcm", "det", "approx", "mathrm", "operatorname", "lfloor", "rfloor", "lceil", "rceil",
  "setminus", "emptyset", "varnothing", "mathbb", "overrightarrow", "vec", "hat", "bar", "tilde", "prime",
]);

function hasUnknownCommand(s: string): boolean {
  for (const m of s.matchAll(/\\([a-zA-Z]+)/g)) if (!KNOWN_COMMANDS.has(m[1]!)) return true;
  return false;
}

/** The left side of an assignment: only symbols (x, a_3, (p,q), f(x), |AB|, NO/BO, S_{ABC}:S), no digits. */
export function isSymbolOnly(src: string): boolean {
  // A sum or difference is not a name: "x+z = 1" is an equation (a plane), not a value for "x+z".
  // Function arguments may hold anything: f(x-1) is a name.
  const t = src
    .replace(/_\{[^{}]*\}|_[a-zA-Z0-9]/g, "")
    .replace(/([a-zA-Z])\s*\([^()]*\)/g, "$1")
    .replace(/\\(?:frac|overline|angle|triangle|mathrm|text|operatorname|vec|overrightarrow)(?![a-zA-Z])/g, "")
    .replace(/\\[a-zA-Z]+/g, "a")
    .replace(/[\s{}()[\]|,:/*']/g, "");
  return t.length > 0 && /^[a-zA-Z]+$/.test(t);
}

const MATRIX_ENV = /^\\begin\{(pmatrix|bmatrix|Bmatrix|matrix|smallmatrix|array)\}((?:(?!\\begin\{|\\end\{)[\s\S])*)\\end\{\1\}$/;

export function leaf(src: string): Leaf {
  let s = src.trim();
  let pct = false;
  if (/\\%$/.test(s)) {
    pct = true;
    s = s.slice(0, -2).trim();
  }
  const inf = /^\+?\s*\\infty$/.test(s) ? 1 : /^-\s*\\infty$/.test(s) ? -1 : 0;
  const decM = /^-?\d*\.(\d+)$/.exec(s);
  const node: Leaf = { kind: "expr", src: s, value: null, dec: decM ? decM[1]!.length : null, pct, inf };
  if (inf !== 0 || s === "") return node;
  const num = /^(\d+)\s*_\s*(?:\{\s*(\d+)\s*\}|(\d))$/.exec(s);
  if (num && Number(num[2] ?? num[3]) !== 10) node.numeral = { digits: num[1]!, base: Number(num[2] ?? num[3]) };
  try {
    const ratio = topLevelCuts(s, /:/);
    if (ratio.length === 1) {
      const [a, b] = splitAt(s, ratio);
      const va = parseExpression(a!);
      const vb = parseExpression(b!);
      node.value = divide(va, vb);
    } else if (ratio.length === 0) {
      node.value = parseExpression(s);
    } else throw new Bail("several colons");
  } catch (e) {
    if (!(e instanceof Bail)) throw e;
    node.why = e.message;
  }
  return node;
}

function expandPlusMinus(s: string): string[] | null {
  const m = /\\(pm|mp)(?![a-zA-Z])/.exec(s);
  if (!m) return null;
  const out: string[] = [];
  for (const sign of m[1] === "pm" ? ["+", "-"] : ["-", "+"]) {
    const v = s.slice(0, m.index) + sign + s.slice(m.index + m[0].length);
    out.push(...(expandPlusMinus(v) ?? [v]));
    if (out.length > 8) throw new Bail("too many plus-minus signs");
  }
  return out;
}

export class AnswerParser {
  parse(src: string): Node {
    return this.node(src.trim(), 0);
  }

  private node(s: string, depth: number): Node {
    if (depth > MAX_DEPTH) return leaf(s);
    // lists: ";" binds looser than ","
    const semi = topLevelCuts(s, /;/);
    if (semi.length > 0) return this.list(s, splitAt(s, semi), depth);
    const commas = topLevelCuts(s, /,/);
    if (commas.length > 0) {
      const parts = splitAt(s, commas).filter((p) => p !== "");
      if (parts.length === 1) return this.node(parts[0]!, depth + 1);
      const assigned = this.assignedList(s, parts, depth);
      if (assigned) return assigned;
      return this.list(s, parts, depth);
    }
    return this.item(s, depth);
  }

  private list(src: string, parts: string[], depth: number): Node {
    if (parts.length > MAX_ITEMS) throw new Bail("too many items");
    const items: Node[] = [];
    for (const p of parts) {
      if (p === "") continue;
      const n = this.node(p, depth + 1);
      // a +/- item inside a list contributes both of its values
      if (n.kind === "set" && n.src === p && /\\(?:pm|mp)/.test(p) && !p.startsWith("\\{")) items.push(...n.items);
      else items.push(n);
    }
    if (items.length === 1) return items[0]!;
    return { kind: "list", src, items };
  }

  /** "n = 1, 2, 3" and "(x,y) = (5,8), (8,5)": the first item assigns, the rest are more values. */
  private assignedList(src: string, parts: string[], depth: number): Node | null {
    const first = parts[0]!;
    const rel = topLevelCuts(first, REL_RE);
    if (rel.length !== 1 || (rel[0]!.tok !== "=" && rel[0]!.tok !== "\\in")) return null;
    const [lhs, rhs] = splitAt(first, rel);
    if (!lhs || !rhs || !isSymbolOnly(lhs)) return null;
    if (parts.slice(1).some((p) => topLevelCuts(p, REL_RE).length > 0)) return null;
    const values = this.list(src.slice(src.indexOf(rhs)), [rhs, ...parts.slice(1)], depth);
    return { kind: "rel", src, terms: [this.node(lhs, depth + 1), values], ops: ["="] };
  }

  private item(s: string, depth: number): Node {
    const relCuts = topLevelCuts(s, REL_RE);
    if (relCuts.length > 0) return this.relation(s, relCuts, depth);
    const cup = topLevelCuts(s, /\\cup(?![a-zA-Z])/);
    if (cup.length > 0) {
      return { kind: "union", src: s, parts: splitAt(s, cup).map((p) => this.item(p, depth + 1)) };
    }
    const pm = expandPlusMinus(s);
    if (pm) return { kind: "set", src: s, items: pm.map((v) => this.item(v, depth + 1)) };
    return this.bracketed(s, depth) ?? this.textOrLeaf(s);
  }

  private relation(s: string, cuts: Cut[], depth: number): Node {
    let terms = splitAt(s, cuts);
    let ops = cuts.map((c) => REL_OPS[c.tok.trim()]!);
    // "x = 5+5+1 = 1/3 \approx 0.33": approximations after an exact value are dropped;
    // a lone "x \approx 11" states the value.
    const firstApprox = ops.indexOf("approx");
    if (firstApprox >= 0) {
      if (ops.some((o) => o !== "approx")) {
        terms = terms.slice(0, firstApprox + 1);
        ops = ops.slice(0, firstApprox);
      }
      ops = ops.map((o) => (o === "approx" ? "=" : o));
    }
    if (terms.some((t) => t === "")) return leaf(s);
    // "1 = \zzz = x = 0": an equality chain with a term nobody can parse keeps only its final value
    if (ops.every((o) => o === "=") && terms.some(hasUnknownCommand)) return this.node(terms[terms.length - 1]!, depth + 1);
    if (terms.length === 1) return this.node(terms[0]!, depth + 1);
    return { kind: "rel", src: s, terms: terms.map((t) => this.node(t, depth + 1)), ops: ops as RelOp[] };
  }

  private bracketed(s: string, depth: number): Node | null {
    if (/^\\emptyset$/.test(s)) return { kind: "set", src: s, items: [] }; // \varnothing, ∅ and \{\} normalize to it
    const mm = MATRIX_ENV.exec(s);
    if (mm) return this.matrix(s, mm[1]!, mm[2]!, depth);
    if (s.startsWith("\\{") && s.endsWith("\\}") && closingIndex(s, 0) === s.length - 2) {
      const inner = s.slice(2, -2).trim();
      if (inner === "") return { kind: "set", src: s, items: [] };
      const n = this.node(inner, depth + 1);
      return { kind: "set", src: s, items: n.kind === "list" ? n.items : [n] };
    }
    const open = s[0];
    if (open !== "(" && open !== "[" && open !== "{") return null;
    if (closingIndex(s, 0) !== s.length - 1) return null;
    const close = s[s.length - 1]!;
    const inner = s.slice(1, -1).trim();
    if (open === "{") return close === "}" ? this.node(inner, depth + 1) : null; // plain grouping braces
    const cuts = topLevelCuts(inner, /[,;]/);
    if (cuts.length === 0) {
      if ((open === "(" && close === ")") || (open === "[" && close === "]")) {
        const n = this.item(inner, depth + 1);
        return n.kind === "expr" ? leaf(s) : n; // keep "(x+1)" as one leaf; unwrap "(matrix)" or "((1,2))"
      }
      return null;
    }
    const items = splitAt(inner, cuts).map((p) => this.node(p, depth + 1));
    if (items.length === 2 && (open === "[" || close === "]")) {
      return { kind: "interval", src: s, lo: items[0]!, hi: items[1]!, loOpen: open === "(", hiOpen: close === ")" };
    }
    if (open === "(" && close === ")") return { kind: "tuple", src: s, items, maybeInterval: items.length === 2 };
    if (open === "[" && close === "]") return { kind: "tuple", src: s, items, maybeInterval: false };
    return null;
  }

  private matrix(src: string, env: string, body: string, depth: number): Node {
    if (env === "array") body = body.replace(/^\s*\{[^{}]*\}/, "");
    const rows = body
      .split(/\\\\/)
      .map((r) => r.trim())
      .filter((r) => r !== "" && !/^\\hline$/.test(r))
      .map((r) => r.split("&").map((c) => this.node(c.trim(), depth + 1)));
    if (rows.length === 0 || rows.length * rows[0]!.length > MAX_ITEMS) return leaf(src);
    if (rows.some((r) => r.length !== rows[0]!.length)) return leaf(src);
    return { kind: "matrix", src, rows };
  }

  private textOrLeaf(s: string): Node {
    const t = /^\\text\{([^{}]*)\}$/.exec(s);
    if (t) return { kind: "text", src: s, text: t[1]! };
    return leaf(s);
  }
}

/** A compact identity key for a node (spacing and case do not matter). */
export function nodeKey(n: Node): string {
  // a leaf's src has its percent sign cut off: 0.5% and 0.5 must not look identical
  return compactForm(n.src) + (n.kind === "expr" && n.pct ? "\\%" : "");
}
