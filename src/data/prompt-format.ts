// How a problem becomes chat messages: system prompt, few-shot turns, then the question.
import type { Experiment } from "../config/schema.js";
import type { ChatMessage } from "../rpc/gen/promptcot_worker.js";
import { problemKind, type Problem } from "./problems.js";

export function problemMessages(problem: Problem, data: Experiment["data"]): ChatMessage[] {
  const msgs: ChatMessage[] = [];
  // the few-shot turns and the default system prompt teach a boxed math answer: wrong for a program
  const code = problemKind(problem) === "code";
  const system = code ? data.code_system_prompt : data.system_prompt;
  if (system) msgs.push({ role: "system", content: system });
  for (const shot of code ? [] : data.few_shot) {
    msgs.push({ role: "user", content: shot.user }, { role: "assistant", content: shot.assistant });
  }
  msgs.push({ role: "user", content: problem.prompt });
  return msgs;
}
