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

function stripMarkedUnits(s: string): string {
  // A marked text after something containing a digit (or a closing bracket) is an annotation: unit, currency, words.
  s = s.replace(/\u0001([^\u0001\u0002]*)\u0002(\s*\^\s*\{?[23]\}?)?/g, (all, inner: string, _p, offset: number, whole: string) => {
    const before = whole.slice(0, offset);
    const after = whole.slice(offset + all.length);
    const inText = inner.trim();
    if (/^\(?[A-Ea-e]\)?$/.test(inText)) return inText; // (C) answer choices stay
    const quantityBefore = /[\d)\]}]\s*$/.test(before) || /\d/.test(before.replace(/\\[a-zA-Z]+/g, ""));
    const isWords = /^[a-zA-Z\s.]+$/.test(inText) && inText.length > 0;
    if (isWords && quantityBefore && !/\d/.test(after.replace(/\u0001[^\u0002]*\u0002/g, ""))) return "";
    if (/^[a-zA-Z\s]+$/.test(inText) && before.trim() === "" && after.trim() === "") return `\\text{${inText}}`;
    return inner;
  });
  return s;
}

/** Plain trailing words after a quantity ("125 miles", "35 cm^2", "3 hours ago") are units or prose. */
function stripTrailingWords(s: string): string {
  const m = /^(.*?[\d)\]}])\s*([a-zA-Z][a-zA-Z\s.]*(?:\^\s*\{?[23]\}?|[²³])?)$/.exec(s);
  if (!m) return s;
  const words = m[2]!.trim();
  if (!/\s/.test(m[0].slice(m[1]!.length, m[1]!.length + 1)) && words.length < 2) return s; // "5m" is 5*m
  const first = words.split(/\s+/)[0]!.toLowerCase().replace(/[.^²³].*$/, "");
  if (first.length < 2 || FUNCTION_WORDS.has(first)) return s;
  if (!UNIT_WORD.test(words)) return s;
  return m[1]!;
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
  // degrees, primes of units, currency
  s = s.replace(/\^\s*\{\s*\\circ\s*\}|\^\s*\\circ|\\circ|°|\\degree(?![a-zA-Z])|\^\s*\{\s*\\text\{\s*o\s*\}\s*\}/g, "");
  s = s.replace(/[€£¥₹₽₩]|\\euro(?![a-zA-Z])|\\pounds(?![a-zA-Z])/g, " ");
  s = s.replace(/\\pmod\s*\{[^{}]*\}|\(\s*mod\s*\d+\s*\)/g, "");
  s = rewriteTextCommands(s);
  s = stripMarkedUnits(s);
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
  s = stripTrailingWords(s);
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
