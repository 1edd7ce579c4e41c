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
