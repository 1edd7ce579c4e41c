// `run --dry-run`'s view of the first prompt exactly as the model will see it: the run's messages (system prompt,
// few-shot turns, question: src/data/prompt-format.ts) through the model's own chat template, templated by
// python-workers/promptcot_worker/render_prompt.py with the code a worker uses (text_ops.chat_prompt_ids).
import { execFileSync } from "node:child_process";
import type { Experiment } from "../config/schema.js";
import { pythonEnv, pythonPath } from "../cluster/python-env.js";
import { problemMessages } from "../data/prompt-format.js";
import type { Problem } from "../data/problems.js";
import type { ChatMessage } from "../rpc/gen/promptcot_worker.js";

export interface TemplatedPrompt {
  text: string;
  tokens: number;
}

/** The messages of the run's first prompt: the first train problem (else the first held-out one). */
export function firstPromptMessages(cfg: Experiment, problems: { train: Problem[]; heldout: Problem[] }): { id: string; messages: ChatMessage[] } | undefined {
  const p = problems.train[0] ?? problems.heldout[0];
  return p && { id: p.id, messages: problemMessages(p, cfg.data) };
}

/** Templates `messages` with the tokenizer of `source` (a built-in name or an HF directory); throws with the reason. */
export function templatePrompt(source: string, messages: ChatMessage[], templateKwargs: Record<string, unknown>): TemplatedPrompt {
  const input = JSON.stringify({ source, messages: messages.map((m) => ({ role: m.role, content: m.content })), template_kwargs: templateKwargs });
  try {
    const out = execFileSync(pythonPath(), ["-m", "promptcot_worker.render_prompt"], { input, env: pythonEnv(), encoding: "utf8", stdio: ["pipe", "pipe", "pipe"], timeout: 300_000 });
    return JSON.parse(out) as TemplatedPrompt;
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error((err.stderr?.trim().split("\n").at(-1) || err.message).trim());
  }
}

/** The dry run's section; `source` undefined = the model's tokenizer is not on this machine. */
export function firstPromptSection(cfg: Experiment, problems: { train: Problem[]; heldout: Problem[] }, source: string | undefined): string {
  const first = firstPromptMessages(cfg, problems);
  if (!first) return "# first prompt: none (no problems)\n";
  const plain = () => JSON.stringify(first.messages.map((m) => ({ role: m.role, content: m.content })), null, 2);
  if (source === undefined) {
    return `# first prompt (${first.id}): NOT templated — the chat template lives in the tokenizer files of model.source ` +
      `(${cfg.model.source}), which are not on this machine; the messages the template will get:\n${plain()}\n`;
  }
  let t: TemplatedPrompt;
  try {
    t = templatePrompt(source, first.messages, cfg.model.chat_template_kwargs);
  } catch (e) {
    return `# first prompt (${first.id}): NOT templated (${(e as Error).message}); the messages the template will get:\n${plain()}\n`;
  }
  return `# first prompt (${first.id}), exactly as the model sees it (${source}'s chat template, ${t.tokens} tokens; the model writes next)\n` +
    `${t.text}\n# end of first prompt\n`;
}
