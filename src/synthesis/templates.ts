// Texts the synthesis models read and write. Instruction texts come from config (synthesis.templates.*);
// the markers are fixed, since the parsers below and the trained models depend on them.
import type { Synthesis } from "../config/schema.js";

export const MARK = {
  rationaleOpen: "<!-- BEGIN RATIONALE -->",
  rationaleClose: "<!-- END RATIONALE -->",
  problemOpen: "<!-- BEGIN PROBLEM -->",
  problemClose: "<!-- END PROBLEM -->",
  conceptsOpen: "<!-- BEGIN CONCEPTS -->",
  conceptsClose: "<!-- END CONCEPTS -->",
} as const;

const ALL_MARKS = Object.values(MARK);

export type Templates = Synthesis["templates"];

/** Replaces {name} placeholders; an unknown placeholder is left as written (it may be literal text). */
export function fill(template: string, values: Record<string, string>): string {
  return template.replace(/\{([a-z_]+)\}/g, (m, k: string) => (k in values ? values[k]! : m));
}

/**
 * annotator.on_malformed: template — a rationale from the seed's known concepts only. It never sees the
 * problem: a z that quotes x lets p copy x from z, so log p(x | z, c) stops measuring anything (issue 19).
 */
export function fallbackRationale(t: Templates, concepts: string[]): string {
  if (t.fallback_rationale.includes("{problem}")) throw new Error("synthesis.templates.fallback_rationale must not use {problem}: the rationale would copy the problem");
  return fill(t.fallback_rationale, { concepts_inline: concepts.join(", ") });
}

export const conceptList = (concepts: string[]): string => concepts.map((c) => `- ${c}`).join("\n");

/** q's input: c and x; q continues with the rationale after the open marker. */
export function rationaleInput(t: Templates, concepts: string[], problem: string): string {
  return fill(t.rationale_input, { concepts: conceptList(concepts), problem });
}

/** q's target after its input: the rationale, closed by its marker (EOS is appended at tokenization). */
export const rationaleTarget = (z: string): string => `${z.trim()}\n${MARK.rationaleClose}`;

/** p's input: the concept set (and a difficulty level when known). */
export function promptInput(t: Templates, concepts: string[], level?: string): string {
  return fill(t.prompt_input, { concepts: conceptList(concepts), level_line: level ? `Level: ${level}\n` : "" });
}

/**
 * p's target, in two parts so the joint log-likelihood splits exactly into log p(z | c) and log p(x | z, c):
 * each part is tokenized on its own and the token ids are concatenated (training and scoring alike).
 */
export function promptTargetParts(z: string, x: string): { rationale: string; problem: string } {
  return {
    rationale: `${MARK.rationaleOpen}\n${z.trim()}\n${MARK.rationaleClose}\n`,
    problem: `${MARK.problemOpen}\n${x.trim()}\n${MARK.problemClose}`,
  };
}

export function promptTarget(z: string, x: string): string {
  const p = promptTargetParts(z, x);
  return p.rationale + p.problem;
}

/** The annotator's input; it continues after the open marker of what it is asked to write. */
export function annotateInput(t: Templates, problem: string, known?: string[]): string {
  const ask = known ? t.annotate_ask_rationale : t.annotate_ask_concepts;
  const conceptsBlock = known ? `Concepts:\n${conceptList(known)}\n\n${MARK.rationaleOpen}\n` : `${MARK.conceptsOpen}\n`;
  return fill(t.annotate, { ask, problem, concepts_block: conceptsBlock });
}

export function withSuffix(t: Templates, domain: "math" | "code", problem: string): string {
  return `${problem.trim()}\n\n${domain === "math" ? t.math_suffix : t.code_suffix}`;
}

// ---- strict parsers --------------------------------------------------------------------------------

export type ParseReason =
  | "truncated"
  | "no_rationale_markers"
  | "no_problem_markers"
  | "markers_out_of_order"
  | "nested_or_repeated_markers"
  | "empty_rationale"
  | "empty_problem"
  | "text_outside_markers"
  | "no_concepts_markers"
  | "no_concepts"
  | "too_many_concepts"
  | "too_short";

export type Parsed<T> = ({ ok: true } & T) | { ok: false; reason: ParseReason };

const count = (s: string, m: string): number => s.split(m).length - 1;

/**
 * p's output: exactly one rationale block, then exactly one problem block, nothing but whitespace around
 * them. A sample cut by max_tokens is "truncated" whatever it holds: its problem may be cut mid-sentence.
 */
export function parseGeneration(text: string, finishReason: string): Parsed<{ rationale: string; problem: string }> {
  if (finishReason === "length") return { ok: false, reason: "truncated" };
  const [ro, rc, po, pc] = [MARK.rationaleOpen, MARK.rationaleClose, MARK.problemOpen, MARK.problemClose];
  const counts = [ro, rc, po, pc].map((m) => count(text, m));
  if (counts.some((n) => n > 1) || ALL_MARKS.slice(4).some((m) => text.includes(m))) return { ok: false, reason: "nested_or_repeated_markers" };
  if (counts[0] === 0 || counts[1] === 0) return { ok: false, reason: "no_rationale_markers" };
  if (counts[2] === 0 || counts[3] === 0) return { ok: false, reason: "no_problem_markers" };
  const [iro, irc, ipo, ipc] = [ro, rc, po, pc].map((m) => text.indexOf(m)) as [number, number, number, number];
  if (!(iro < irc && irc < ipo && ipo < ipc)) return { ok: false, reason: "markers_out_of_order" };
  const outside = text.slice(0, iro) + text.slice(irc + rc.length, ipo) + text.slice(ipc + pc.length);
  if (outside.trim() !== "") return { ok: false, reason: "text_outside_markers" };
  const rationale = text.slice(iro + ro.length, irc).trim();
  const problem = text.slice(ipo + po.length, ipc).trim();
  if (!rationale) return { ok: false, reason: "empty_rationale" };
  if (!problem) return { ok: false, reason: "empty_problem" };
  return { ok: true, rationale, problem };
}

/**
 * q's output after its open marker: the rationale ends at the close marker or at EOS (both are a finished
 * rationale); anything after the close marker is ignored, since q is trained to stop there.
 */
export function parseRationale(text: string, finishReason: string): Parsed<{ rationale: string }> {
  const cut = text.indexOf(MARK.rationaleClose);
  if (cut < 0 && finishReason === "length") return { ok: false, reason: "truncated" };
  const body = cut < 0 ? text : text.slice(0, cut);
  if (ALL_MARKS.some((m) => body.includes(m))) return { ok: false, reason: "nested_or_repeated_markers" };
  const rationale = body.trim();
  return rationale ? { ok: true, rationale } : { ok: false, reason: "empty_rationale" };
}

export interface AnnotationOptions {
  /** The seed's known concepts: the annotator was asked for a rationale only. */
  known?: string[];
  minRationaleChars: number;
  maxConcepts: number;
}

/**
 * The annotator's output. With known concepts it continues after the rationale open marker; otherwise after
 * the concepts open marker and must write: concept lines, the concepts close marker, the rationale open
 * marker, the rationale (ended by its close marker or EOS).
 */
export function parseAnnotation(text: string, finishReason: string, o: AnnotationOptions): Parsed<{ concepts: string[]; rationale: string }> {
  let concepts = o.known;
  let rest = text;
  if (!concepts) {
    const close = text.indexOf(MARK.conceptsClose);
    const open = text.indexOf(MARK.rationaleOpen);
    if (close < 0 || open < close) return { ok: false, reason: close < 0 && finishReason === "length" ? "truncated" : "no_concepts_markers" };
    if (text.slice(close + MARK.conceptsClose.length, open).trim() !== "") return { ok: false, reason: "text_outside_markers" };
    concepts = text
      .slice(0, close)
      .split("\n")
      .map((l) => l.replace(/^\s*(?:[-*•]|\d+[.)])\s*/, "").trim())
      .filter((l) => l.length > 0);
    if (concepts.length === 0) return { ok: false, reason: "no_concepts" };
    if (concepts.length > o.maxConcepts) return { ok: false, reason: "too_many_concepts" };
    rest = text.slice(open + MARK.rationaleOpen.length);
  }
  const z = parseRationale(rest, finishReason);
  if (!z.ok) return z;
  if (z.rationale.length < o.minRationaleChars) return { ok: false, reason: "too_short" };
  return { ok: true, concepts, rationale: z.rationale };
}

/** A rationale cut by the token limit, cut back to its last complete sentence (undefined if none). */
export function trimToSentence(text: string): string | undefined {
  // A model given the open marker sometimes starts by echoing part of it.
  const body = text.split(MARK.rationaleClose)[0]!.replace(/^\s*<!--\s*/, "");
  if (ALL_MARKS.some((m) => body.includes(m))) return undefined;
  // A sentence ends at . ! or ? right after a letter: "1. 2. 3." is a list of numbers, not sentences.
  const m = /^[\s\S]*\p{L}[.!?](?=\s|$)/u.exec(body);
  return m ? m[0].trim() : undefined;
}
