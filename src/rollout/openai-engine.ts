// An OpenAI-compatible server as a RolloutEngine (/v1/chat/completions or /v1/completions): llama.cpp's
// llama-server, vLLM serve, SGLang, a hosted teacher. One HTTP request per sample, because a seed is per
// request and every sample has its own; at most `maxConcurrency` in flight (the server batches them:
// llama-server's parallel slots, vLLM's continuous batching). 429, 5xx, connection errors and timeouts are
// retried with exponential backoff; any other status fails at once with the server's message.
import type { EnginePrompt, EngineSample, EngineSampling, GenerateOptions, RolloutEngine } from "./engine.js";
import { finishReason } from "./engine.js";

/** Which server speaks: decides the names of the non-standard sampling fields and their defaults. */
export type ServerFlavor = "openai" | "llama_cpp" | "vllm";

export interface OpenAIEngineOptions {
  /** Up to and including "/v1", e.g. "http://127.0.0.1:8080/v1". */
  baseUrl: string;
  model: string;
  apiKey?: string;
  api: "chat" | "completions";
  flavor: ServerFlavor;
  maxConcurrency: number;
  timeoutS: number;
  /** Retries after the first attempt. */
  retries: number;
  /** First backoff; doubles per retry (capped at 30 s), unless the server sends Retry-After. */
  backoffMs?: number;
  /** Prompt templates that open a <think> block (the server applies the template; we cannot see it). */
  promptOpensThink?: boolean;
  fetchImpl?: typeof fetch;
}

export class EngineHttpError extends Error {
  constructor(readonly status: number, message: string, readonly retryable: boolean) {
    super(message);
    this.name = "EngineHttpError";
  }
}

/** Token accounting over the engine's lifetime (from each response's `usage`). */
export interface EngineUsage {
  requests: number;
  retries: number;
  promptTokens: number;
  completionTokens: number;
}

export class OpenAIEngine implements RolloutEngine {
  readonly name: string;
  readonly usage: EngineUsage = { requests: 0, retries: 0, promptTokens: 0, completionTokens: 0 };
  private readonly fetch: typeof fetch;

  constructor(readonly o: OpenAIEngineOptions) {
    if (!/^https?:\/\//.test(o.baseUrl)) throw new Error(`engine base_url '${o.baseUrl}' must start with http:// or https://`);
    if (o.maxConcurrency < 1) throw new Error(`engine max_concurrency must be >= 1 (got ${o.maxConcurrency})`);
    this.name = `openai:${o.baseUrl} (${o.model})`;
    this.fetch = o.fetchImpl ?? fetch;
  }

  async *generate(prompts: EnginePrompt[], sampling: EngineSampling, opts: GenerateOptions = {}): AsyncIterable<EngineSample> {
    const jobs = prompts.flatMap((p) => p.seeds.map((seed, position) => ({ p, seed, position })));
    const queue = new AsyncQueue<EngineSample>();
    const bodies = jobs.map((j) => requestBody(this.o, j.p, j.seed, sampling, opts)); // bad input fails before any request
    let next = 0;
    let stop = false; // a failed lane or a consumer that stopped reading: take no new jobs
    const lane = async () => {
      for (let j = next++; j < jobs.length && !stop; j = next++) {
        const p = jobs[j]!.p;
        queue.push(this.toSample(p.id, jobs[j]!.position, await this.post(bodies[j]!, endpointOf(this.o, p))));
      }
    };
    const lanes = Array.from({ length: Math.min(this.o.maxConcurrency, jobs.length) }, lane);
    Promise.all(lanes).then(() => queue.close(), (e) => { stop = true; queue.fail(e); });
    try {
      yield* queue;
    } finally {
      stop = true;
    }
  }

  private toSample(promptId: string, position: number, res: CompletionResponse): EngineSample {
    const choice = res.choices?.[0];
    if (!choice) throw new Error(`${this.name}: response without choices: ${JSON.stringify(res).slice(0, 300)}`);
    const text = choice.message?.content ?? choice.text ?? "";
    const lp = parseLogprobs(choice.logprobs);
    const tokenIds = numbers(choice.token_ids) ?? numbers(choice.tokens) ?? lp.ids;
    const completionTokens = res.usage?.completion_tokens ?? tokenIds?.length ?? 0;
    this.usage.promptTokens += res.usage?.prompt_tokens ?? 0;
    this.usage.completionTokens += completionTokens;
    return {
      promptId,
      position,
      text,
      finishReason: finishReason(choice.finish_reason),
      ...(tokenIds ? { tokenIds } : {}),
      ...(numbers(res.prompt_token_ids ?? choice.prompt_token_ids) ? { promptTokenIds: numbers(res.prompt_token_ids ?? choice.prompt_token_ids)! } : {}),
      ...(lp.logprobs ? { logprobs: lp.logprobs } : {}),
      completionTokens,
      ...(res.usage?.prompt_tokens !== undefined ? { promptTokens: res.usage.prompt_tokens } : {}),
      promptOpensThink: this.o.promptOpensThink ?? false,
    };
  }

  /** POSTs with retries; the last error names the URL, the status and the server's message. */
  async post(body: object, endpoint: Endpoint = this.o.api): Promise<CompletionResponse> {
    const url = `${this.o.baseUrl.replace(/\/$/, "")}/${endpoint === "chat" ? "chat/completions" : "completions"}`;
    for (let attempt = 0; ; attempt++) {
      try {
        this.usage.requests++;
        return await this.postOnce(url, body);
      } catch (e) {
        const retryable = !(e instanceof EngineHttpError) || e.retryable;
        if (!retryable || attempt >= this.o.retries) throw attempt > 0 ? new Error(`${(e as Error).message} (after ${attempt + 1} attempts)`, { cause: e }) : e;
        this.usage.retries++;
        await sleep(backoffMs(attempt, this.o.backoffMs ?? 500, (e as { retryAfterMs?: number }).retryAfterMs));
      }
    }
  }

  private async postOnce(url: string, body: object): Promise<CompletionResponse> {
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (this.o.apiKey) headers.authorization = `Bearer ${this.o.apiKey}`;
    let res: Response;
    try {
      res = await this.fetch(url, { method: "POST", headers, body: JSON.stringify(body), signal: AbortSignal.timeout(this.o.timeoutS * 1000) });
    } catch (e) {
      const why = (e as Error).name === "TimeoutError" ? `no answer within timeout_s=${this.o.timeoutS}` : String((e as Error).cause ?? (e as Error).message);
      throw new EngineHttpError(0, `POST ${url}: ${why}`, true);
    }
    const text = await res.text();
    if (!res.ok) {
      const err = new EngineHttpError(res.status, `POST ${url}: HTTP ${res.status}: ${text.slice(0, 500)}`, res.status === 429 || res.status >= 500);
      const after = Number(res.headers.get("retry-after"));
      if (after > 0) Object.assign(err, { retryAfterMs: after * 1000 });
      throw err;
    }
    try {
      return JSON.parse(text) as CompletionResponse;
    } catch {
      throw new EngineHttpError(res.status, `POST ${url}: answer is not JSON: ${text.slice(0, 300)}`, false);
    }
  }
}

/** The JSON body of one sample's request. Non-standard sampling fields are named per server flavor. */
export function requestBody(o: Pick<OpenAIEngineOptions, "model" | "api" | "flavor">, p: EnginePrompt, seed: number, s: EngineSampling, opts: GenerateOptions = {}): Record<string, unknown> {
  const body: Record<string, unknown> = { model: o.model, max_tokens: s.max_tokens, temperature: s.temperature, top_p: s.top_p, seed, stream: false };
  if (s.stop.length) body.stop = s.stop;
  const endpoint = endpointOf(o, p);
  if (p.promptTokenIds) {
    body.prompt = p.promptTokenIds;
  } else if (endpoint === "chat") {
    body.messages = p.messages;
    if (opts.chatTemplateKwargs && Object.keys(opts.chatTemplateKwargs).length) body.chat_template_kwargs = opts.chatTemplateKwargs;
  } else {
    body.prompt = completionPrompt(p);
  }
  Object.assign(body, samplerExtras(o.flavor, s));
  if (opts.logprobs) Object.assign(body, endpoint === "chat" ? { logprobs: true, top_logprobs: 1 } : { logprobs: 1 });
  if (o.flavor === "vllm") body.return_token_ids = true;
  return body;
}

type Endpoint = OpenAIEngineOptions["api"];

/** A prompt given as token ids or raw text is not chat-templated by the server: it always goes to /v1/completions. */
function endpointOf(o: Pick<OpenAIEngineOptions, "api">, p: EnginePrompt): Endpoint {
  return p.promptTokenIds || p.text !== undefined ? "completions" : o.api;
}

/** llama.cpp's own defaults are top_k 40, min_p 0.05, repeat_penalty 1.1: always send ours, or it samples differently from the worker. */
function samplerExtras(flavor: ServerFlavor, s: EngineSampling): Record<string, unknown> {
  if (flavor === "llama_cpp") return { top_k: s.top_k, min_p: s.min_p, repeat_penalty: s.repetition_penalty };
  if (flavor === "vllm") return { top_k: s.top_k > 0 ? s.top_k : -1, min_p: s.min_p, repetition_penalty: s.repetition_penalty };
  const extras: Record<string, unknown> = {};
  if (s.top_k > 0 || s.min_p > 0 || s.repetition_penalty !== 1) {
    throw new Error("engine.type openai (a hosted API) has no top_k / min_p / repetition_penalty: set them off (0, 0, 1) or use llama_cpp / vllm");
  }
  return extras;
}

/** /v1/completions takes text: raw text, or a prompt given as one user message (already templated), goes as is. */
function completionPrompt(p: EnginePrompt): string {
  if (p.text !== undefined) return p.text;
  const m = p.messages;
  if (m.length === 1 && m[0]!.role === "user") return m[0]!.content;
  throw new Error(`prompt '${p.id}': engine api 'completions' needs one already-templated user message (got ${m.length} messages); use api 'chat' to let the server apply the chat template`);
}

interface LogprobEntry { id?: number; token?: string; logprob?: number }
interface Choice {
  text?: string;
  message?: { content?: string | null };
  finish_reason?: string | null;
  logprobs?: { content?: LogprobEntry[] | null; token_logprobs?: (number | null)[] } | null;
  token_ids?: unknown;
  tokens?: unknown;
  prompt_token_ids?: unknown;
}
export interface CompletionResponse {
  choices?: Choice[];
  usage?: { prompt_tokens?: number; completion_tokens?: number };
  prompt_token_ids?: unknown;
}

/** Both shapes servers use: chat-style `content: [{id?, logprob}]` (llama.cpp puts token ids there too) and legacy `token_logprobs`. */
export function parseLogprobs(lp: Choice["logprobs"]): { logprobs?: number[]; ids?: number[] } {
  if (!lp) return {};
  if (Array.isArray(lp.content)) {
    const logprobs = lp.content.map((c) => c.logprob ?? Number.NaN);
    const ids = lp.content.every((c) => typeof c.id === "number") ? lp.content.map((c) => c.id!) : undefined;
    return { logprobs, ...(ids && ids.length ? { ids } : {}) };
  }
  if (Array.isArray(lp.token_logprobs)) return { logprobs: lp.token_logprobs.map((x) => x ?? Number.NaN) };
  return {};
}

function numbers(x: unknown): number[] | undefined {
  return Array.isArray(x) && x.length > 0 && x.every((v) => typeof v === "number") ? (x as number[]) : undefined;
}

export function backoffMs(attempt: number, baseMs: number, retryAfterMs?: number): number {
  if (retryAfterMs !== undefined) return retryAfterMs;
  return Math.min(30_000, baseMs * 2 ** attempt);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A push-pull queue: lanes push as requests finish; the consumer iterates in completion order. */
class AsyncQueue<T> implements AsyncIterable<T> {
  private items: T[] = [];
  private waiting: (() => void) | undefined;
  private done = false;
  private error: unknown;

  push(x: T) { this.items.push(x); this.wake(); }
  close() { this.done = true; this.wake(); }
  fail(e: unknown) { this.error = e ?? new Error("engine lane failed"); this.done = true; this.wake(); }
  private wake() { const w = this.waiting; this.waiting = undefined; w?.(); }

  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    for (;;) {
      if (this.error) throw this.error;
      if (this.items.length) { yield this.items.shift()!; continue; }
      if (this.done) return;
      await new Promise<void>((r) => { this.waiting = r; });
    }
  }
}
