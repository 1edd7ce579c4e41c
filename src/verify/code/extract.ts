// Which program a completion submits, the way LiveCodeBench reads it: the answer is what follows the
// last </think>; the program is the text between the last two lines that contain a ``` fence. A think
// block left open (by the completion, or by a prompt that opened it) has no answer: see ../think.ts.
import { afterThinking, type ThinkOptions } from "../think.js";

/** The program in a model completion, or null when there is none (no answer, no fenced block, blank block). */
export function extractCode(completion: string, context: ThinkOptions = {}): string | null {
  const answer = afterThinking(completion, context);
  if (answer === null) return null;
  const lines = answer.split("\n");
  const fences: number[] = [];
  for (let i = 0; i < lines.length; i++) if (lines[i]!.includes("```")) fences.push(i);
  if (fences.length < 2) return null;
  const open = fences[fences.length - 2]!;
  const close = fences[fences.length - 1]!;
  const code = lines.slice(open + 1, close).join("\n");
  return code.trim() === "" ? null : code;
}
