// Which program a completion submits, the way LiveCodeBench reads it: the answer is what follows the
// last </think>; the program is the text between the last two lines that contain a ``` fence.

/** The program in a model completion, or null when there is none (no answer, no fenced block, blank block). */
export function extractCode(completion: string): string | null {
  const answer = answerPart(completion);
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

// A reasoning model's answer follows its thinking; a completion cut off inside <think> has no answer.
function answerPart(completion: string): string | null {
  const end = completion.lastIndexOf("</think>");
  if (end >= 0) return completion.slice(end + "</think>".length);
  if (completion.includes("<think>")) return null;
  return completion;
}
