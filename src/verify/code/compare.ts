// Output comparison, outside the sandbox. Compatible with LiveCodeBench's stdin/stdout judging:
// both outputs are stripped, split on "\n", each line stripped; line counts must agree; a line matches
// when equal as text, otherwise token by token with numbers compared numerically.
// "decimal" mode is LiveCodeBench exactly (tokens equal as Python Decimals); "tolerance" mode (default)
// accepts floats within an absolute-or-relative tolerance where the expected token is a decimal, and
// requires an integer token, equal exactly, where the expected token is an integer.
// Whitespace is Python's (str.strip/str.split), written as loops so no input can make a regex backtrack.
import type { CompareOptions } from "./options.js";

export interface CompareResult {
  ok: boolean;
  /** Why not, short enough for a report. */
  reason?: string;
}

export function compareOutputs(actual: string, expected: string, opts: CompareOptions): CompareResult {
  const got = strippedLines(actual);
  const want = strippedLines(expected);
  if (got.length !== want.length) {
    return { ok: false, reason: `expected ${want.length} line(s), got ${got.length}` };
  }
  for (let i = 0; i < want.length; i++) {
    const g = got[i]!;
    const w = want[i]!;
    if (g === w) continue;
    if (!lineMatches(g, w, opts)) {
      return { ok: false, reason: `line ${i + 1}: expected ${clip(w)}, got ${clip(g)}` };
    }
  }
  return { ok: true };
}

function lineMatches(got: string, want: string, opts: CompareOptions): boolean {
  const g = pySplit(got);
  const w = pySplit(want);
  if (g.length !== w.length) return false;
  if (opts.float === "decimal") {
    // LiveCodeBench converts every token of the line; one non-number fails the whole line.
    const gd = g.map(parseDecimal);
    const wd = w.map(parseDecimal);
    if (gd.some((d) => d === null) || wd.some((d) => d === null)) return false;
    return gd.every((d, i) => decimalEquals(d!, wd[i]!));
  }
  for (let i = 0; i < w.length; i++) {
    if (g[i] !== w[i] && !numbersClose(g[i]!, w[i]!, opts.tolerance)) return false;
  }
  return true;
}

const INTEGER = /^[+-]?\d+$/;

/**
 * Two tokens that are both numbers and equal. An expected integer asks for an integer printed exactly:
 * within a relative tolerance "500000003.0" would pass for 500000004 (a wrong answer mod 1e9+7), so the
 * tolerance applies only where the expected token itself is a decimal (a point, an exponent, inf/nan).
 */
export function numbersClose(got: string, want: string, tolerance: number): boolean {
  if (INTEGER.test(want)) return INTEGER.test(got) && canonicalInteger(got) === canonicalInteger(want);
  const gd = parseDecimal(got);
  const wd = parseDecimal(want);
  if (gd === null || wd === null) return false;
  if (gd.kind === "nan" || wd.kind === "nan") return gd.kind === wd.kind;
  const a = toNumber(gd);
  const b = toNumber(wd);
  if (Number.isFinite(a) && Number.isFinite(b)) {
    const diff = Math.abs(a - b);
    return diff <= tolerance || diff <= tolerance * Math.abs(b);
  }
  // Beyond double range (or infinities): only an exact match counts.
  return decimalEquals(gd, wd);
}

// Integers of any length, compared as text (BigInt parsing of huge tokens is quadratic).
function canonicalInteger(s: string): string {
  const negative = s.startsWith("-");
  const body = s.replace(/^[+-]/, "").replace(/^0+/, "");
  if (body === "") return "0";
  return negative ? `-${body}` : body;
}

// ---- Python's whitespace -------------------------------------------------------------------------

function isPySpace(c: number): boolean {
  if (c <= 0x20) return c === 0x20 || (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x1f);
  if (c < 0x85) return false;
  return (
    c === 0x85 ||
    c === 0xa0 ||
    c === 0x1680 ||
    (c >= 0x2000 && c <= 0x200a) ||
    c === 0x2028 ||
    c === 0x2029 ||
    c === 0x202f ||
    c === 0x205f ||
    c === 0x3000
  );
}

/** Python's str.strip(). */
export function pyStrip(s: string): string {
  let a = 0;
  let b = s.length;
  while (a < b && isPySpace(s.charCodeAt(a))) a++;
  while (b > a && isPySpace(s.charCodeAt(b - 1))) b--;
  return a === 0 && b === s.length ? s : s.slice(a, b);
}

/** Python's str.split() with no separator. */
export function pySplit(s: string): string[] {
  const out: string[] = [];
  let i = 0;
  const n = s.length;
  while (i < n) {
    while (i < n && isPySpace(s.charCodeAt(i))) i++;
    if (i >= n) break;
    const start = i;
    while (i < n && !isPySpace(s.charCodeAt(i))) i++;
    out.push(s.slice(start, i));
  }
  return out;
}

/** LiveCodeBench's get_stripped_lines: strip, split on "\n", strip each line. */
export function strippedLines(s: string): string[] {
  return pyStrip(s).split("\n").map(pyStrip);
}

// ---- Python's Decimal (constructor syntax and == semantics) --------------------------------------

export type Decimal =
  | { kind: "finite"; negative: boolean; digits: string; exponent: bigint } // value = digits * 10^exponent
  | { kind: "inf"; negative: boolean }
  | { kind: "nan" };

const DIGITS = "\\d(?:_?\\d)*";
const FINITE = new RegExp(`^([+-]?)(?:(${DIGITS})(?:\\.(${DIGITS})?)?|\\.(${DIGITS}))(?:[eE]([+-]?${DIGITS}))?$`);
const SPECIAL = /^([+-]?)(inf|infinity|s?nan(?:\d*))$/i;

/** Parse a token the way decimal.Decimal(token) does (ASCII digits only); null when it would raise. */
export function parseDecimal(token: string): Decimal | null {
  if (token.length > 100_000) return null;
  const m = FINITE.exec(token);
  if (m) {
    const negative = m[1] === "-";
    const intPart = (m[2] ?? "").replaceAll("_", "");
    const fracPart = (m[3] ?? m[4] ?? "").replaceAll("_", "");
    const exp = m[5] ? BigInt(m[5].replaceAll("_", "")) : 0n;
    let digits = (intPart + fracPart).replace(/^0+/, "");
    let exponent = exp - BigInt(fracPart.length);
    if (digits === "") return { kind: "finite", negative, digits: "0", exponent: 0n };
    const trimmed = digits.replace(/0+$/, "");
    exponent += BigInt(digits.length - trimmed.length);
    digits = trimmed;
    return { kind: "finite", negative, digits, exponent };
  }
  const s = SPECIAL.exec(token);
  if (!s) return null;
  const word = s[2]!.toLowerCase();
  if (word.startsWith("inf")) return { kind: "inf", negative: s[1] === "-" };
  return { kind: "nan" };
}

/** Decimal ==: numeric equality; NaN equals nothing; 0 == -0. */
export function decimalEquals(a: Decimal, b: Decimal): boolean {
  if (a.kind === "nan" || b.kind === "nan") return false;
  if (a.kind === "inf" || b.kind === "inf") return a.kind === b.kind && a.negative === b.negative;
  if (a.digits === "0" && b.digits === "0") return true;
  return a.negative === b.negative && a.digits === b.digits && a.exponent === b.exponent;
}

function toNumber(d: Decimal): number {
  if (d.kind === "nan") return NaN;
  if (d.kind === "inf") return d.negative ? -Infinity : Infinity;
  const magnitude = BigInt(d.digits.length) + d.exponent; // value ~ 10^magnitude
  if (magnitude > 400n) return d.negative ? -Infinity : Infinity;
  if (magnitude < -400n) return 0;
  return Number(`${d.negative ? "-" : ""}${d.digits}e${d.exponent}`);
}

function clip(s: string): string {
  return JSON.stringify(s.length > 60 ? `${s.slice(0, 60)}…` : s);
}
