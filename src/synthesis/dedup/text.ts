// Text rules shared by dedup and decontamination. PromptCoT 2.0's word set: lower-case, punctuation and
// operators become spaces, keep non-numeric words of at least 4 characters. Tokens are scanned in place
// (start/end offsets) so no per-word substring is made on the hot path.

/** Instruction text that PromptCoT appends to every prompt; shared by all rows, so it would only inflate overlap. */
const BOILERPLATE: RegExp[] = [
  /Please reason step by step,? and put your final answer within \\boxed\{+\}+\.?/gi,
  /You will be given a question \(problem specification\) and will generate a correct Python program that matches the specification and passes all tests\./gi,
  /Read the inputs from stdin,? solve the problem and write the answer to stdout[\s\S]*?# YOUR CODE HERE\s*```/gi,
];

/**
 * The problem text inside a chat-templated prompt (the released benchmarks have ChatML or DeepSeek
 * templates baked in); text without a template is returned unchanged.
 */
export function stripChatTemplate(text: string): string {
  let t = text;
  const chatml = t.indexOf("<|im_start|>user");
  if (chatml >= 0) {
    t = t.slice(chatml + "<|im_start|>user".length);
    const end = t.indexOf("<|im_end|>");
    if (end >= 0) t = t.slice(0, end);
  }
  const ds = t.indexOf("<｜User｜>");
  if (ds >= 0) {
    t = t.slice(ds + "<｜User｜>".length);
    const end = t.indexOf("<｜Assistant｜>");
    if (end >= 0) t = t.slice(0, end);
  }
  return t.replace(/^\s*Question:\s*/, "");
}

/** Problem text with chat template and PromptCoT's fixed instructions removed: what dedup compares. */
export function problemText(text: string): string {
  let t = stripChatTemplate(text);
  for (const re of BOILERPLATE) t = t.replace(re, " ");
  return t;
}

/** Exact-duplicate key: lower-case, whitespace runs collapsed to one space, trimmed. */
export function exactKey(text: string): string {
  return text.toLowerCase().replace(/\s+/g, " ").trim();
}

// 0 = not yet classified, 1 = letter or number, 2 = anything else (punctuation, operators, space).
const bmpClass = new Uint8Array(65536);
const ALNUM = /[\p{L}\p{N}]/u;
for (let c = 0; c < 128; c++) bmpClass[c] = (c >= 48 && c <= 57) || (c >= 97 && c <= 122) || (c >= 65 && c <= 90) ? 1 : 2;

function isTokenChar(s: string, i: number): boolean {
  const c = s.charCodeAt(i);
  if (c >= 0xd800 && c <= 0xdfff) return ALNUM.test(String.fromCodePoint(s.codePointAt(i) ?? c));
  let k = bmpClass[c];
  if (k === 0) k = bmpClass[c] = ALNUM.test(String.fromCharCode(c)) ? 1 : 2;
  return k === 1;
}

/**
 * Calls fn(start, end, numeric, length) for each maximal run of letters and numbers in s (already
 * lower-cased). length counts code points (as Python's len does); numeric: all ASCII digits.
 */
export function forEachToken(s: string, fn: (start: number, end: number, numeric: boolean, length: number) => void): void {
  const n = s.length;
  let i = 0;
  while (i < n) {
    while (i < n && !isTokenChar(s, i)) i++;
    if (i >= n) return;
    const start = i;
    let numeric = true;
    let length = 0;
    while (i < n && isTokenChar(s, i)) {
      const c = s.charCodeAt(i);
      if (c < 48 || c > 57) numeric = false;
      if (c >= 0xd800 && c <= 0xdbff) i++; // a surrogate pair is one character
      i++;
      length++;
    }
    fn(start, i, numeric, length);
  }
}

/** PromptCoT's word rule: a word counts for near-duplicate Jaccard when non-numeric and ≥ minLength long. */
export const MIN_WORD_LENGTH = 4;

/**
 * How a text becomes the tokens dedup and decontamination compare. "promptcot": PromptCoT 2.0's rule
 * (letters-and-digits runs; the word set keeps non-numeric words of ≥ 4 characters), so "What is 3 + 4 * 2?"
 * and "What is 5 + 1 * 7?" are one word set {what}. "math" (default): also numbers and expressions, so
 * those two differ while "what is 3+4*2" (re-spaced, re-cased) is still the same problem.
 */
export type WordRule = "math" | "promptcot";
export const WORD_RULES: readonly WordRule[] = ["math", "promptcot"];

// Characters that shape an expression. Brackets, hyphens, bars and underscores alone are prose punctuation
// ("well-known", "(in cm)"), so a run of only those is not a token; with a digit or operator it is.
const MATH_SYMBOLS = new Set("+-*/=^<>()[]{}|!%_×÷·⋅≤≥≠±∓√∑∏∫∞∈∪∩⊂⊆≡≈∘′");
const PROSE_ONLY = /^[\s()[\]{}|_-]*$/;
const isDigit = (c: number) => c >= 48 && c <= 57;
const isSpace = (c: number) => c === 32 || (c >= 9 && c <= 13) || c === 0xa0;

/** An expression's compared text: whitespace removed, except one space between two numbers ("1 000" ≠ "1000"). */
function compactMath(span: string): string {
  return span.replace(/\s+/g, (m: string, off: number) => (isDigit(span.charCodeAt(off - 1)) && isDigit(span.charCodeAt(off + m.length)) ? " " : ""));
}

/**
 * The "math" rule's tokens of s (already lower-cased), in order: words (letters-and-digits runs that are not
 * plain numbers) and expressions — maximal runs of numbers (decimals included) and MATH_SYMBOLS with only
 * whitespace between them, compared without that whitespace ("3 + 4*2" = "3+4*2"). fn gets the span, whether
 * it is an expression, its length in code points, and its compared text when that is not s.slice(start, end).
 */
export function forEachMathToken(s: string, fn: (start: number, end: number, math: boolean, length: number, canon?: string) => void): void {
  const n = s.length;
  let runStart = -1;
  let runEnd = -1;
  let spaced = false;
  const flush = (): void => {
    if (runStart < 0) return;
    const span = s.slice(runStart, runEnd);
    if (!PROSE_ONLY.test(span)) {
      const canon = spaced ? compactMath(span) : undefined;
      fn(runStart, runEnd, true, [...(canon ?? span)].length, canon);
    }
    runStart = -1;
    spaced = false;
  };
  const extend = (start: number, end: number): void => {
    if (runStart < 0) runStart = start;
    else if (runEnd < start) spaced = true;
    runEnd = end;
  };
  let i = 0;
  while (i < n) {
    const c = s.charCodeAt(i);
    if (isTokenChar(s, i)) {
      const start = i;
      let numeric = true;
      let length = 0;
      while (i < n && isTokenChar(s, i)) {
        const d = s.charCodeAt(i);
        if (!isDigit(d)) numeric = false;
        if (d >= 0xd800 && d <= 0xdbff) i++;
        i++;
        length++;
        // a decimal point inside a number belongs to it: "3.5" is one number, not 3 and 5
        if (numeric && s.charCodeAt(i) === 46 && isDigit(s.charCodeAt(i + 1))) i++;
      }
      if (numeric) extend(start, i);
      else {
        flush();
        fn(start, i, false, length);
      }
    } else if (MATH_SYMBOLS.has(s[i]!)) {
      extend(i, i + 1);
      i++;
    } else {
      if (!isSpace(c)) flush();
      i++;
    }
  }
  flush();
}

/**
 * Calls fn(start, end, counts, canon?) for each compared token of s (lower-cased) under a rule; counts:
 * the token belongs in the near-duplicate word set (a word of ≥ MIN_WORD_LENGTH that is not a number, or,
 * under "math", any number or expression).
 */
export function forEachRuleToken(s: string, rule: WordRule, fn: (start: number, end: number, counts: boolean, canon?: string) => void): void {
  if (rule === "promptcot") forEachToken(s, (start, end, numeric, length) => fn(start, end, !numeric && length >= MIN_WORD_LENGTH));
  else forEachMathToken(s, (start, end, math, length, canon) => fn(start, end, math || length >= MIN_WORD_LENGTH, canon));
}
