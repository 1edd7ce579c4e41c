// How a problem becomes chat messages: system prompt, few-shot turns, then the question.
import type { Experiment } from "../config/schema.js";
import type { ChatMessage } from "../rpc/gen/promptcot_worker.js";
import type { Problem } from "./problems.js";

export function problemMessages(problem: Problem, data: Experiment["data"]): ChatMessage[] {
  const msgs: ChatMessage[] = [];
  if (data.system_prompt) msgs.push({ role: "system", content: data.system_prompt });
  for (const shot of data.few_shot) {
    msgs.push({ role: "user", content: shot.user }, { role: "assistant", content: shot.assistant });
  }
  msgs.push({ role: "user", content: problem.prompt });
  return msgs;
}
