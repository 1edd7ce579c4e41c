// Completion validity (PromptCoT 2.0's self-play filters): a completion is usable as training signal only
// when it is well formed, whatever its grade — a think block the template opened must be closed with an
// answer after it, an English task must not drift into CJK/Hangul, a math answer must be boxed and a
// code answer must hold a code block. Pure: text in, reasons out; the pairs stage decides what to do.
import { extractCode } from "../verify/code/extract.js";
import { answerRegion } from "../verify/think.js";

export interface ValidityOptions {
  /** A think block (opened by the template or the completion) must be closed, with an answer after it. */
  require_think_close: boolean;
  /** No run of Han, Hiragana, Katakana or Hangul characters (or CJK punctuation) anywhere. */
  forbid_cjk: boolean;
  /** Math: the answer (after the thinking) holds a \boxed{...}. */
  require_boxed: boolean;
  /** Code: the answer holds a fenced code block with something in it. */
  require_code_block: boolean;
}

export type InvalidReason = "unclosed_think" | "empty_after_think" | "cjk" | "no_boxed" | "no_code_block";

export const INVALID_REASONS: readonly InvalidReason[] = ["unclosed_think", "empty_after_think", "cjk", "no_boxed", "no_code_block"];

export interface CompletionInfo {
  task: "math" | "code";
  /** The templated prompt ended inside an open <think> block. */
  promptOpensThink: boolean;
}

const CJK = /[\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}\p{Script=Hangul}\u3000-\u303f]/u;
const BOX = /\\(?:boxed|fbox)\s*\{/;

/** Why `text` is not a valid completion; empty when it is. */
export function invalidReasons(text: string, info: CompletionInfo, o: ValidityOptions): InvalidReason[] {
  const reasons: InvalidReason[] = [];
  const region = answerRegion(text, { promptOpensThink: info.promptOpensThink });
  const thought = info.promptOpensThink || text.includes("</think>");
  if (o.require_think_close) {
    if (region.text === null) reasons.push("unclosed_think");
    else if (thought && region.text.trim() === "") reasons.push("empty_after_think");
  }
  if (o.forbid_cjk && CJK.test(text)) reasons.push("cjk");
  // with no answer region there is nothing to look for a box or code block in
  const answer = region.text ?? "";
  if (info.task === "math" && o.require_boxed && !BOX.test(answer)) reasons.push("no_boxed");
  if (info.task === "code" && o.require_code_block && extractCode(answer) === null) reasons.push("no_code_block");
  return reasons;
}

export type ValidityCounts = { invalid: number } & Record<InvalidReason, number>;

export function emptyValidityCounts(): ValidityCounts {
  return { invalid: 0, unclosed_think: 0, empty_after_think: 0, cjk: 0, no_boxed: 0, no_code_block: 0 };
}

/** Adds one sample's reasons (a sample with several reasons counts once in `invalid`, once per reason). */
export function countInvalid(counts: ValidityCounts, reasons: readonly InvalidReason[]): void {
  if (reasons.length === 0) return;
  counts.invalid++;
  for (const r of reasons) counts[r]++;
}
