// Where a reasoning model's answer can be: after its thinking. Chat templates of Qwen3-Thinking and
// R1-distilled models end the prompt with "<think>", so the completion starts inside the block and shows
// only "</think>"; a completion cut at max_tokens then has neither tag, and without knowing that the
// prompt opened the block a grader would read a \boxed{} from the middle of the reasoning as the answer.

const OPEN = "<think>";
const CLOSE = "</think>";

export interface ThinkOptions {
  /** The templated prompt ended inside an open <think> block (GenerateResponse.prompt_opens_think). */
  promptOpensThink?: boolean;
}

export type AnswerRegion = { text: string; reason?: undefined } | { text: null; reason: string };

/**
 * The text after the thinking, or null with the reason while a think block is still open: the prompt
 * opened one the completion never closed, or the completion opened one after its last "</think>".
 */
export function answerRegion(completion: string, o: ThinkOptions = {}): AnswerRegion {
  const close = completion.lastIndexOf(CLOSE);
  const open = completion.lastIndexOf(OPEN);
  if (open > close) return { text: null, reason: "the completion opened <think> and never closed it" };
  if (close >= 0) return { text: completion.slice(close + CLOSE.length) };
  if (o.promptOpensThink) return { text: null, reason: "the prompt opened <think> and the completion never closed it" };
  return { text: completion };
}

export function afterThinking(completion: string, o: ThinkOptions = {}): string | null {
  return answerRegion(completion, o).text;
}
