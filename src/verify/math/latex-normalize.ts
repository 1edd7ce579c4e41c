// String-level clean-up of an extracted answer before it is parsed: delimiters, spacing commands, text and
// units, degrees, currency, thousands separators, relation spellings and connectives ("and", "or").
// Every rule here is a bounded regex pass over a string whose length the caller has capped.

/** Commands whose double-escaped form (\\frac, from doubly JSON-escaped text) is collapsed to one backslash. */
const ESCAPED_COMMANDS =
  "boxed|fbox|frac|dfrac|tfrac|cfrac|left|right|sqrt|pi|text|textbf|mathrm|mbox|le|leq|ge|geq|ne|neq|lt|gt|cdot|times|" +
  "infty|cup|cap|in|pm|mp|circ|begin|end|sin|cos|tan|log|ln|approx|quad|qquad|dots|ldots|cdots|binom|alpha|beta|gamma|" +
  "theta|angle|overline|mathbf|displaystyle|sum|prod|int|lim|%";
const DOUBLE_ESCAPE_RE = new RegExp(`(?<!\\\\)\\\\\\\\(?=(?:${ESCAPED_COMMANDS})(?![a-zA-Z]))`, "g");

export function collapseDoubleEscapes(s: string): string {
  return s.includes("\\\\") ? s.replace(DOUBLE_ESCAPE_RE, "\\") : s;
}

/** Index just past the "}" matching the "{" at `open`, or -1. */
export function matchBrace(s: string, open: number): number {
  let depth = 0;
  for (let i = open; i < s.length; i++) {
    const c = s[i];
    if (c === "\\") {
      i++; // skip escaped character (\{ and \} do not count)
      continue;
    }
    if (c === "{") depth++;
    else if (c === "}") {
      depth--;
      if (depth === 0) return i + 1;
    }
  }
  return -1;
}

/** Replaces \cmd{arg} (balanced) using fn(arg); leaves unbalanced occurrences alone. */
export function replaceCommandArg(s: string, cmd: RegExp, fn: (arg: string) => string): string {
  let out = "";
  let pos = 0;
  const re = new RegExp(cmd.source, "g");
  for (let m = re.exec(s); m; m = re.exec(s)) {
    if (m.index < pos) continue;
    let open = m.index + m[0].length;
    while (s[open] === " ") open++;
    if (s[open] !== "{") continue;
    const end = matchBrace(s, open);
    if (end < 0) continue;
    out += s.slice(pos, m.index) + fn(s.slice(open + 1, end - 1));
    pos = end;
    re.lastIndex = end;
  }
  return out + s.slice(pos);
}

const UNIT_WORD =
  /^(?:[a-zA-Z]+\.?|[a-zA-Z]+\s*\^?\s*\{?[23]\}?|[a-zA-Z]+\/[a-zA-Z]+|[a-zA-Z]+²|[a-zA-Z]+³)(?:\s+[a-zA-Z]+\.?)*$/;
const CONNECTIVE = /^\s*(?:and|or|,)\s*$/i;
const FUNCTION_WORDS = new Set(["sin", "cos", "tan", "cot", "sec", "csc", "log", "ln", "exp", "mod", "gcd", "lcm", "max", "min", "det"]);

/** \text{...}-like wrappers: connectives become commas, units after a quantity vanish, the rest is inlined. */
function rewriteTextCommands(s: string): string {
  // math fonts hold math: their content is inlined as is (\mathrm{e} is e, \operatorname{lcm} is \lcm)
  s = replaceCommandArg(s, /\\operatorname\*?(?![a-zA-Z])/, (arg) => (/^[a-zA-Z]+$/.test(arg) ? `\\${arg} ` : arg));
  s = replaceCommandArg(s, /\\(?:mathrm|mathit|mathbf|mathsf|mathtt|rm|bf|it)(?![a-zA-Z])/, (arg) => `{${arg}}`);
  const textCmd = /\\(?:text|textbf|textit|textrm|textnormal|textsf|texttt|mbox|emph|hbox)(?![a-zA-Z])\s*/;
  return replaceCommandArg(s, textCmd, (arg) => {
    if (CONNECTIVE.test(arg)) return arg.trim() === "," ? "," : ", ";
    return `\u0001${arg}\u0002`; // marked so units can be recognised in context below
  });
}

function stripMarkedUnits(s: string, units: string[]): string {
  // A marked text after something containing a digit (or a closing bracket) is an annotation: unit, currency, words.
  s = s.replace(/\u0001([^\u0001\u0002]*)\u0002(\s*\^\s*\{?[23]\}?)?/g, (all, inner: string, _p, offset: number, whole: string) => {
    const before = whole.slice(0, offset);
    const after = whole.slice(offset + all.length);
    const inText = inner.trim();
    if (/^\(?[A-Ea-e]\)?$/.test(inText)) return inText; // (C) answer choices stay
    const quantityBefore = /[\d)\]}]\s*$/.test(before) || /\d/.test(before.replace(/\\[a-zA-Z]+/g, ""));
    const isWords = /^[a-zA-Z\s.]+$/.test(inText) && inText.length > 0;
    if (isWords && quantityBefore && !/\d/.test(after.replace(/\u0001[^\u0002]*\u0002/g, ""))) {
      units.push(inText + (_p ?? ""));
      return "";
    }
    if (/^[a-zA-Z\s]+$/.test(inText) && before.trim() === "" && after.trim() === "") return `\\text{${inText}}`;
    return inner;
  });
  return s;
}

/** Plain trailing words after a quantity ("125 miles", "35 cm^2", "3 hours ago") are units or prose. */
function stripTrailingWords(s: string, units: string[]): string {
  const m = /^(.*?[\d)\]}])\s*([a-zA-Z][a-zA-Z\s.]*(?:\^\s*\{?[23]\}?|[²³])?)$/.exec(s);
  if (!m) return s;
  const words = m[2]!.trim();
  if (!/\s/.test(m[0].slice(m[1]!.length, m[1]!.length + 1)) && words.length < 2) return s; // "5m" is 5*m
  const first = words.split(/\s+/)[0]!.toLowerCase().replace(/[.^²³].*$/, "");
  if (first.length < 2 || FUNCTION_WORDS.has(first)) return s;
  if (!UNIT_WORD.test(words)) return s;
  units.push(words);
  return m[1]!;
}

/**
 * Repeating decimals as exact fractions: 0.\overline{3}, 0.1\overline{6}, 0.\bar{3}, 0.(3), 0.\dot{3},
 * 0.\dot{1}4\dot{2} (dots over the first and last repeating digit) -> \frac{N}{D}, reduced.
 */
const REPEATING_RE = new RegExp(
  [
    String.raw`(?<![\d.])(\d*)\.(\d*)\\(?:overline|bar)\s*(?:\{\s*(\d{1,60})\s*\}|(\d))`,
    String.raw`(?<![\d.])(\d+)\.(\d*)\((\d{1,60})\)`,
    String.raw`(?<![\d.])(\d*)\.(\d*)\\dot\s*(?:\{\s*(\d)\s*\}|(\d))(?:(\d{0,58})\\dot\s*(?:\{\s*(\d)\s*\}|(\d)))?`,
  ].join("|"),
  "g",
);

function gcd(a: bigint, b: bigint): bigint {
  while (b !== 0n) [a, b] = [b, a % b];
  return a;
}

export function repeatingDecimals(s: string): string {
  if (!/\\(?:overline|bar|dot)|\.\d*\(/.test(s)) return s;
  return s.replace(REPEATING_RE, (all, ...g: (string | undefined)[]) => {
    let int: string;
    let fixed: string;
    let rep: string;
    if (g[0] !== undefined) [int, fixed, rep] = [g[0], g[1]!, g[2] ?? g[3]!];
    else if (g[4] !== undefined) [int, fixed, rep] = [g[4], g[5]!, g[6]!];
    else {
      int = g[7]!;
      fixed = g[8]!;
      const first = g[9] ?? g[10]!;
      rep = g[11] !== undefined ? first + g[11] + (g[12] ?? g[13]!) : first;
    }
    if (int.length + fixed.length > 60 || rep.length === 0) return all;
    // x = (int.fixed rep - int.fixed) / (10^|fixed| (10^|rep| - 1))
    const whole = BigInt(int + fixed + rep || "0");
    const head = BigInt(int + fixed || "0");
    let n = whole - head;
    let d = 10n ** BigInt(fixed.length) * (10n ** BigInt(rep.length) - 1n);
    const k = gcd(n, d);
    n /= k;
    d /= k;
    return d === 1n ? ` ${n} ` : `\\frac{${n}}{${d}}`;
  });
}

/** "No solution" in words: the empty set (docs/MATH_GRADER.md, "The empty set"). */
const EMPTY_WORDS =
  /^\s*(?:(?:there\s+(?:are|is)\s+)?no\s+(?:real\s+|integer\s+|integral\s+)?(?:solutions?|roots?)(?:\s+exists?)?|none)\s*$/i;

/**
 * Unit names, singular and lower case, to one symbol. Only these count as units: other words after a
 * quantity ("apples", "ways", "hours ago", "units") are prose and never make two answers differ.
 */
const UNIT_ALIASES: Record<string, string> = {};
for (const [sym, names] of Object.entries({
  mm: "mm millimeter millimetre",
  cm: "cm centimeter centimetre",
  m: "m meter metre",
  km: "km kilometer kilometre",
  in: "in inch inche",
  ft: "ft foot feet",
  yd: "yd yard",
  mi: "mi mile",
  mg: "mg milligram",
  g: "g gm gram gramme",
  kg: "kg kilogram kilo",
  t: "t ton tonne",
  lb: "lb pound",
  oz: "oz ounce",
  ml: "ml milliliter millilitre cc",
  l: "l liter litre",
  gal: "gal gallon",
  s: "s sec second",
  min: "min minute",
  h: "h hr hour",
  day: "day",
  week: "week wk",
  month: "month",
  year: "year yr",
  dollar: "dollar usd buck",
  cent: "cent",
  euro: "euro",
  yuan: "yuan rmb",
  rad: "rad radian",
  deg: "deg degree",
  acre: "acre",
  ha: "ha hectare",
  "mi/h": "mph",
  "km/h": "kph kmh",
  n: "n newton",
  j: "j joule",
  w: "w watt",
  v: "v volt",
  a: "a amp ampere",
})) {
  for (const name of names.split(" ")) UNIT_ALIASES[name] = sym;
}

function unitWord(w: string): string | null {
  const x = w.toLowerCase().replace(/\.$/, "");
  return UNIT_ALIASES[x] ?? (x.length > 2 && x.endsWith("s") ? (UNIT_ALIASES[x.slice(0, -1)] ?? null) : null);
}

/**
 * A unit as written after a quantity ("cm", " square centimeters", "cm^{2}", "km/h", "miles per hour")
 * as one canonical spelling ("cm^2", "km/h", "mi/h"), or null when a word in it is not a known unit.
 */
export function canonicalUnit(text: string): string | null {
  let t = text.trim().replace(/\s+/g, " ");
  if (t === "" || t.length > 60) return null;
  t = t.replace(/\s*\^\s*\{?\s*([23])\s*\}?/g, "^$1").replace(/²/g, "^2").replace(/³/g, "^3");
  const parts = t.split(/\s*\/\s*|\s+per\s+/i);
  if (parts.length > 2) return null;
  const out: string[] = [];
  for (const part of parts) {
    let words = part.split(" ").filter((w) => w !== "");
    let power = "";
    const lead = words[0]?.toLowerCase().replace(/\.$/, "");
    if (lead === "square" || lead === "sq") [power, words] = ["^2", words.slice(1)];
    else if (lead === "cubic" || lead === "cu") [power, words] = ["^3", words.slice(1)];
    const tail = words[words.length - 1]?.toLowerCase();
    if (!power && (tail === "squared" || tail === "cubed")) [power, words] = [tail === "squared" ? "^2" : "^3", words.slice(0, -1)];
    if (words.length !== 1) return null;
    const m = /^([a-zA-Z.]+)(\^[23])?$/.exec(words[0]!);
    if (!m) return null;
    const sym = unitWord(m[1]!);
    if (sym === null || (power && m[2])) return null;
    out.push(sym + (power || m[2] || ""));
  }
  return out.join("/");
}

const REL_REPLACEMENTS: [RegExp, string][] = [
  [/\\(?:leqslant|leq|le)(?![a-zA-Z])|≤|<=/g, " \\le "],
  [/\\(?:geqslant|geq|ge)(?![a-zA-Z])|≥|>=/g, " \\ge "],
  [/\\(?:neq|ne)(?![a-zA-Z])|≠|!=/g, " \\ne "],
  [/\\lt(?![a-zA-Z])/g, " < "],
  [/\\gt(?![a-zA-Z])/g, " > "],
  [/\\(?:approx|simeq|thickapprox)(?![a-zA-Z])|≈/g, " \\approx "],
];

/**
 * Normalizes an extracted answer. The result keeps LaTeX structure (\frac, \sqrt, intervals, matrices) with a
 * canonical spelling so that identical answers compare equal as strings and the parsers see few variants.
 */
/**
 * Fullwidth ASCII variants (U+FF01-FF5E: "５０", "（１，２）", "Ｘ") as ASCII, and the ideographic space as a
 * space: they are the same characters in another width (CJK input methods), never other symbols.
 */
export function foldFullwidth(s: string): string {
  if (!/[\uff01-\uff5e\u3000]/.test(s)) return s;
  return s.replace(/[\uff01-\uff5e]/g, (c) => String.fromCharCode(c.charCodeAt(0) - 0xfee0)).replace(/\u3000/g, " ");
}

export function normalizeAnswer(input: string): string {
  return normalizeWithUnits(input).norm;
}

/** A normalized answer and the units that were cut off it, canonical (see canonicalUnit). */
export interface Normalized {
  norm: string;
  /** Recognized units that followed a quantity ("cm^2", "km/h"), canonical and sorted; words that are not units are left out. */
  units: string[];
}

export function normalizeWithUnits(input: string): Normalized {
  const cut: string[] = [];
  const norm = normalizeCore(input, cut);
  const units = [...new Set(cut.map(canonicalUnit).filter((u): u is string => u !== null))].sort();
  return { norm, units };
}

function normalizeCore(input: string, units: string[]): string {
  let s = collapseDoubleEscapes(foldFullwidth(input));
  s = s.replace(/\r\n?/g, "\n");
  // math delimiters and boxes
  s = s.replace(/\\\$/g, " ").replace(/\$/g, " ");
  s = s.replace(/\\\[|\\\]|\\\(|\\\)/g, " ");
  s = replaceCommandArg(s, /\\(?:boxed|fbox|framebox)/, (a) => a);
  // thousands separators written with spacing commands or braces: 14{,}916, 11,\!111, 1\,000
  s = s.replace(/(\d)\s*\{\s*,\s*\}\s*(?=\d)/g, "$1");
  s = s.replace(/(\d),\s*\\!\s*(?=\d{3}(?!\d))/g, "$1");
  s = s.replace(/(\d)\\[,!]\s*(?=\d{3}(?!\d))/g, "$1");
  // sizing and spacing
  s = s.replace(/\\(?:left|right|bigl|bigr|Bigl|Bigr|biggl|biggr|big|Big|bigg|Bigg|middle)(?![a-zA-Z])\s*\.?/g, "");
  s = s.replace(/\\(?:displaystyle|textstyle|scriptstyle|limits|nolimits|bm|boldsymbol|mathbb|mathcal|vec)(?![a-zA-Z])/g, "");
  s = s.replace(/\\(?:hspace|vspace|phantom|hphantom)\*?\s*\{[^{}]*\}/g, " ");
  s = s.replace(/\\q?quad/g, " ");
  s = s.replace(/(?<!\\)\\[,;:! ]|~/g, " ");
  s = s.replace(/\\(?:dfrac|tfrac|cfrac)(?![a-zA-Z])/g, "\\frac");
  s = repeatingDecimals(s);
  // the empty set: \varnothing, ∅ and \{\} are \emptyset
  s = s.replace(/\\varnothing(?![a-zA-Z])|∅|\\\{\s*\\\}/g, "\\emptyset ");
  // degrees, primes of units, currency
  s = s.replace(/\^\s*\{\s*\\circ\s*\}|\^\s*\\circ|\\circ|°|\\degree(?![a-zA-Z])|\^\s*\{\s*\\text\{\s*o\s*\}\s*\}/g, "");
  s = s.replace(/[€£¥₹₽₩]|\\euro(?![a-zA-Z])|\\pounds(?![a-zA-Z])/g, " ");
  s = s.replace(/\\pmod\s*\{[^{}]*\}|\(\s*mod\s*\d+\s*\)/g, "");
  s = rewriteTextCommands(s);
  s = stripMarkedUnits(s, units);
  s = s.replace(/[\u0001\u0002]/g, "");
  // malformed fractions and roots: \frac12, \frac1{3}, \frac{1}3, \sqrt3, \sqrt 2
  s = s.replace(/\\frac\s*(\d)\s*(\d)/g, "\\frac{$1}{$2}");
  s = s.replace(/\\frac\s*(\d)\s*\{/g, "\\frac{$1}{");
  s = s.replace(/\\frac\s*(\{[^{}]*\})\s*(\d)/g, "\\frac$1{$2}");
  s = s.replace(/\\sqrt\s*(\d+|[a-zA-Z])(?![a-zA-Z])/g, "\\sqrt{$1}");
  // percent spelled out
  s = s.replace(/\s*(?:\\?%|\bpercentage\b|\bpercent\b|\bpct\b)/g, "\\%");
  // operators and relations
  s = s.replace(/\\(?:cdot|times|ast)(?![a-zA-Z])|×|·/g, "*").replace(/\\div(?![a-zA-Z])|÷/g, "/");
  s = s.replace(/\\(?:dots|ldots|cdots)(?![a-zA-Z])|…/g, " ");
  for (const [re, rep] of REL_REPLACEMENTS) s = s.replace(re, rep);
  s = s.replace(/−/g, "-").replace(/π/g, "\\pi ").replace(/∞/g, "\\infty ");
  // connectives between items: "1 and 2", "(1,2) or (2,1)", "19, 46, and 82"
  s = s.replace(/,?\s+(?:and|or)\s+/gi, ", ");
  s = s.replace(/(?<=[)\]}])\s*(?:and|or)\s*(?=[-(\[{\\\d])/gi, ", ");
  s = s.replace(/\s+/g, " ").trim();
  s = s.replace(/^(?:[,;:]|=)\s*/, "").replace(/[\s.,;:]+$/, "");
  s = stripTrailingWords(s, units);
  if (EMPTY_WORDS.test(s.replace(/^\\text\{([^{}]*)\}$/, "$1"))) return "\\emptyset";
  // a whole-number answer written with thousands separators
  if (/^-?[1-9]\d{0,2}(?:,\d{3})+(?:\.\d+)?$/.test(s) || /^-?[1-9]\d{0,2}(?: \d{3})+(?:\.\d+)?$/.test(s)) s = s.replace(/[, ]/g, "");
  return s;
}

/**
 * A crude signature of a normalized answer used to detect identical answers (spaces and braces vary).
 * Case is kept: X and x are different symbols (words are compared without case later, in compare.ts).
 */
export function compactForm(s: string): string {
  return s.replace(/\s+/g, "").replace(/\\left|\\right/g, "");
}
