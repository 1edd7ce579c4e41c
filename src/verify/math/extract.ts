// Finding the answer in a completion: the text after the last </think> (none while a think block is
// open, including one the prompt opened), the last \boxed{...} (with the
// boxes right before it when they read as one answer: "\boxed{1} and \boxed{2}"), or an anchored phrase
// ("final answer is ...", "Answer: ...") written after the last box. A bare list of guesses is never an
// answer. Work is linear in the input, which is capped.
import { afterThinking } from "../think.js";
import { collapseDoubleEscapes } from "./latex-normalize.js";

export interface ExtractOptions {
  /** Only look after the last </think>; an unfinished <think> block has no answer. Default true. */
  afterThink?: boolean;
  /** The prompt opened a <think> block: a completion without "</think>" has no answer (with afterThink). */
  promptOpensThink?: boolean;
  /** Accept a final "\boxed{..." cut off before its closing brace (math-verify compatibility). Default false. */
  unclosedBox?: boolean;
  /** Fall back to the last LaTeX environment ($...$, \[...\]) anywhere in the text. Default false. */
  lastLatex?: boolean;
  /** Fall back to the last number (or a/b) anywhere in the text. Default false. */
  lastNumber?: boolean;
}

export interface Extracted {
  text: string;
  how: "boxed" | "anchor" | "whole" | "hash" | "latex" | "number";
}

/** Completions longer than this are read from their last MAX_SCAN characters (answers sit at the end). */
export const MAX_SCAN = 256_000;
/** Fallback scans over the tail only; their regexes have bounded lookahead but run at every position. */
const TAIL_SCAN = 20_000;
/** An extracted answer longer than this is not an answer. */
export const MAX_ANSWER = 4_000;

interface Box {
  start: number;
  end: number; // past the closing brace (or the text end when unclosed)
  content: string;
  closed: boolean;
}

/** Matching "}" for every "{" in one linear pass (escaped braces ignored). */
function braceMatches(s: string): Int32Array {
  const match = new Int32Array(s.length).fill(-1);
  const stack: number[] = [];
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 92 /* \ */) {
      const n = s[i + 1];
      if (n === "{" || n === "}") i++;
      continue;
    }
    if (c === 123 /* { */) stack.push(i);
    else if (c === 125 /* } */ && stack.length) match[stack.pop()!] = i;
  }
  return match;
}

function findBoxes(s: string, unclosed: boolean): Box[] {
  const re = /\\(?:boxed|fbox)\s*\{/g;
  const match = braceMatches(s);
  const boxes: Box[] = [];
  for (let m = re.exec(s); m; m = re.exec(s)) {
    const open = m.index + m[0].length - 1;
    const close = match[open]!;
    if (close >= 0) {
      boxes.push({ start: m.index, end: close + 1, content: s.slice(open + 1, close), closed: true });
      re.lastIndex = close + 1;
    } else if (unclosed) {
      const rest = s.slice(open + 1, open + 1 + 300).replace(/(?:\s|\$|\\\]|\\\)|[.}])+$/, "");
      boxes.push({ start: m.index, end: s.length, content: rest, closed: false });
    }
  }
  return boxes;
}

/** Text between two boxes that still reads as one answer: punctuation, math delimiters, "and"/"or". */
function joins(gap: string): boolean {
  if (gap.length > 80) return false;
  const t = gap
    .replace(/\\text\{([^{}]*)\}/g, " $1 ")
    .replace(/\$|\\\[|\\\]|\\\(|\\\)|\\q?quad|\\[,;:! ]|~|\*\*/g, " ")
    .trim();
  if (!/[a-zA-Z]/.test(t)) return true;
  return /\b(?:and|or)\b/i.test(t) && t.length <= 60;
}

function percentAfter(s: string, at: number): boolean {
  return /^\s*\$?\s*(?:\\%|%|percent\b|pct\b)/i.test(s.slice(at, at + 20));
}

function boxGroup(s: string, boxes: Box[]): { text: string; end: number } | null {
  let i = boxes.length - 1;
  while (i >= 0 && boxes[i]!.content.trim() === "") i--;
  if (i < 0) return null;
  const group = [boxes[i]!];
  for (let j = i - 1; j >= 0; j--) {
    const gap = s.slice(boxes[j]!.end, group[0]!.start);
    if (!boxes[j]!.closed || !joins(gap)) break;
    group.unshift(boxes[j]!);
  }
  const end = group[group.length - 1]!.end;
  let text = group.map((b) => b.content.trim()).join(", ");
  if (percentAfter(s, end) && !/%/.test(text)) text += "\\%";
  return { text, end };
}

const ANCHOR = /final\s+answer(?:\s*\*\*)?\s*(?:is\b|:|=)?|\banswer(?:\s*\*\*)?\s*(?:is\b|:|=)|####/gi;
const HEDGE = /\b(?:or|maybe|perhaps|possibly|either|probably|might|guess|unsure|not sure)\b|\?/i;
const ENV_AT_START = /^(?:\$\$([\s\S]{1,2000}?)\$\$|\\\[([\s\S]{1,2000}?)\\\]|\\\(([^\n]{1,2000}?)\\\)|\$((?:\\\$|[^$\n]){1,2000}?)(?<!\\)\$)/;
const CONNECTOR = /^\s*(?:,\s*and|,\s*or|and|or|,)\s*/i;
const NUMBER = /(?<![\w.])(-?\d+\s*\/\s*\d+(?!\d)(?![.,]\d)|-?(?:[1-9]\d{0,2}(?:,\d{3})+(?!\d)(?:\.\d+)?|[1-9]\d{0,2}(?: \d{3})+(?!\d)(?![.,]\d)(?:\.\d+)?|\d+(?:[.,]\d+)?|\.\d+))(\s*(?:%|percent\b|pct\b))?/g;

/** "$a$, $b$ and $c$" starting at s[0]: the environments' contents joined, or null. */
function envRun(s: string): string | null {
  const parts: string[] = [];
  let rest = s;
  for (let k = 0; k < 8; k++) {
    const m = ENV_AT_START.exec(rest);
    if (!m) break;
    let content = (m[1] ?? m[2] ?? m[3] ?? m[4] ?? "").trim();
    rest = rest.slice(m[0].length);
    if (percentAfter(rest, 0)) content += "\\%";
    parts.push(content);
    const c = CONNECTOR.exec(rest);
    if (!c || !/^\s*(?:\$|\\\[|\\\()/.test(rest.slice(c[0].length))) break;
    rest = rest.slice(c[0].length);
  }
  return parts.length ? parts.join(", ") : null;
}

/** A number written in prose: thousands separators and decimal commas resolved. */
function plainNumber(raw: string, pct: string | undefined): string {
  let n = raw.replace(/\s*\/\s*/, "/");
  if (/^-?[1-9]\d{0,2}(?:,\d{3})+(?:\.\d+)?$/.test(n)) n = n.replace(/,/g, "");
  else if (/^-?[1-9]\d{0,2}(?: \d{3})+(?:\.\d+)?$/.test(n)) n = n.replace(/ /g, "");
  else if (/^-?\d+,\d+$/.test(n)) n = n.replace(",", ".");
  return pct ? `${n}\\%` : n;
}

/** Looks like a formula rather than prose: no run of three letters outside LaTeX commands. */
function looksMathy(s: string): boolean {
  const t = s.replace(/\\[a-zA-Z]+/g, " ");
  return !/[a-zA-Z]{3,}/.test(t) && /[\da-zA-Z\\]/.test(s);
}

/** The answer after an anchor such as "The final answer is": a math environment, a box, or a short phrase. */
function anchoredClause(after: string): string | null {
  let s = after.replace(/^(?:[\s:*"']|\\")*/, "");
  s = s.replace(/^(?:the\s+)?(?:final\s+)?answer\s+is\s*:?\s*/i, "");
  const env = envRun(s);
  if (env !== null) return env;
  if (/^\\boxed/.test(s)) return null; // the box itself is found by the box scan
  let clause = s.split(/\n/)[0]!;
  clause = clause.split(/\.(?=\s|$)|I hope/)[0]!.trim();
  const is = clause.match(/^.*\s(?:is|are|equals|=)\s+(.*)$/i);
  if (is) clause = is[1]!.trim();
  if (clause === "" || HEDGE.test(clause.replace(/\\text\{[^{}]*\}/g, ""))) return null;
  const inner = clause.match(/(?:\$|\\\(|\\\[)[\s\S]*$/);
  if (inner) {
    const e = envRun(inner[0]);
    if (e !== null) return e;
  }
  if (looksMathy(clause)) return clause;
  const nums = [...clause.matchAll(NUMBER)];
  if (nums.length === 1) return plainNumber(nums[0]![1]!, nums[0]![2]);
  return null;
}

function lastAnchor(s: string): { text: string; start: number } | null {
  let lastM: RegExpExecArray | null = null;
  for (let m = ANCHOR.exec(s); m; m = ANCHOR.exec(s)) lastM = m;
  ANCHOR.lastIndex = 0;
  if (!lastM) return null;
  const after = s.slice(lastM.index + lastM[0].length, lastM.index + lastM[0].length + 2400);
  const text = lastM[0] === "####" ? after.split(/\n/)[0]!.trim() : anchoredClause(after);
  return text ? { text, start: lastM.index } : null;
}

const ENV_ANYWHERE = /\$\$([\s\S]{1,2000}?)\$\$|\\\[([\s\S]{1,2000}?)\\\]|\\\(([^\n]{1,2000}?)\\\)|(?<![\\$])\$((?:\\\$|[^$\n]){1,2000}?)(?<!\\)\$/g;

/** math-verify style: the last LaTeX environment, joined with the ones right before it by "and"/",". */
function lastLatexEnv(s: string): { text: string; end: number } | null {
  const base = Math.max(0, s.length - TAIL_SCAN);
  const tail = s.slice(base);
  const envs: { start: number; end: number; text: string }[] = [];
  for (const m of tail.matchAll(ENV_ANYWHERE)) {
    let text = (m[1] ?? m[2] ?? m[3] ?? m[4] ?? "").trim();
    const end = m.index! + m[0].length;
    if (percentAfter(tail, end)) text += "\\%";
    if (text) envs.push({ start: m.index!, end, text });
  }
  if (!envs.length) return null;
  const group = [envs[envs.length - 1]!];
  for (let j = envs.length - 2; j >= 0; j--) {
    const gap = tail.slice(envs[j]!.end, group[0]!.start);
    if (!/^\s*(?:,\s*and|,\s*or|and|or|,)\s*$/i.test(gap)) break;
    group.unshift(envs[j]!);
  }
  return { text: group.map((e) => e.text).join(", "), end: base + group[group.length - 1]!.end };
}

function lastNumberIn(s: string): { text: string; end: number } | null {
  const base = Math.max(0, s.length - TAIL_SCAN);
  let lastM: RegExpMatchArray | null = null;
  for (const m of s.slice(base).matchAll(NUMBER)) lastM = m;
  if (!lastM) return null;
  return { text: plainNumber(lastM[1]!, lastM[2]), end: base + lastM.index! + lastM[0].length };
}

function finish(text: string, how: Extracted["how"]): Extracted | null {
  const t = text.trim();
  if (t === "" || t.length > MAX_ANSWER) return null;
  return { text: t, how };
}

/** The answer a completion gives, or null when it gives none. */
export function extractAnswer(completion: string, opts: ExtractOptions = {}): string | null {
  return findAnswer(completion, opts)?.text ?? null;
}

/** The answer a reference states ("#### 70", a boxed answer, or the whole text), or null when empty. */
export function extractReference(reference: string): string | null {
  return findReference(reference)?.text ?? null;
}

/** extractAnswer with how the answer was found. */
export function findAnswer(completion: string, opts: ExtractOptions = {}): Extracted | null {
  // the think split looks at the whole completion: its "</think>" may lie before the scanned tail
  const region = (opts.afterThink ?? true) ? afterThinking(completion, opts) : completion;
  if (region === null) return null;
  let s = region.length > MAX_SCAN ? region.slice(-MAX_SCAN) : region;
  s = collapseDoubleEscapes(s);
  const box = boxGroup(s, findBoxes(s, opts.unclosedBox ?? false));
  const anchor = lastAnchor(s);
  if (anchor && (!box || anchor.start > box.end)) return finish(anchor.text, "anchor");
  if (box) return finish(box.text, "boxed");
  // a completion that is nothing but a short answer ("42", "$\frac{1}{2}$")
  const trimmed = s.trim();
  const single = ENV_AT_START.exec(trimmed);
  if (single && single[0].length === trimmed.length) return finish(envRun(trimmed) ?? "", "whole");
  let whole = trimmed.replace(/^\$+|\$+$/g, "").trim();
  if (/^-?[\d][\d,. ]*$/.test(whole)) whole = plainNumber(whole, undefined);
  if (whole.length > 0 && whole.length <= 60 && looksMathy(whole) && !HEDGE.test(whole) && !/\\(?:boxed|fbox)/.test(whole)) {
    return finish(whole, "whole");
  }
  const env = opts.lastLatex ? lastLatexEnv(s) : null;
  const num = opts.lastNumber ? lastNumberIn(s) : null;
  if (env && (!num || env.end >= num.end)) return finish(env.text, "latex");
  if (num) return finish(num.text, "number");
  return null;
}

/** extractReference with how the answer was found: after "####", else its last box, else the whole text. */
export function findReference(reference: string): Extracted | null {
  const s = collapseDoubleEscapes(reference.length > MAX_SCAN ? reference.slice(-MAX_SCAN) : reference);
  const hash = s.lastIndexOf("####");
  if (hash >= 0) return finish(s.slice(hash + 4).split(/\n/)[0]!, "hash");
  const box = boxGroup(s, findBoxes(s, false));
  if (box) return finish(box.text, "boxed");
  return finish(s, "whole");
}
