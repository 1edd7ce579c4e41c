// The OpenAI-compatible engine's client behaviour against a scripted local HTTP server: retries with backoff
// on 429/5xx/connection errors/timeouts, no retry on 4xx, the concurrency limit, per-sample seeds, usage
// accounting, token ids and log-probs in both response shapes. The real server is in rollout-llama-cpp.test.ts.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { afterEach, describe, expect, it } from "vitest";
import { ExperimentSchema } from "../src/config/schema.js";
import { generateAll } from "../src/rollout/engine.js";
import { engineGenerator } from "../src/rollout/engine-generator.js";
import { policyEngineProblem } from "../src/rollout/from-config.js";
import { backoffMs, OpenAIEngine, type OpenAIEngineOptions, parseLogprobs, requestBody } from "../src/rollout/openai-engine.js";

type Handler = (body: Record<string, unknown>, res: ServerResponse, n: number, req: IncomingMessage) => void;
let server: Server | undefined;
afterEach(() => new Promise<void>((r) => (server ? server.close(() => r()) : r())));

async function serve(handler: Handler): Promise<{ url: string; bodies: Record<string, unknown>[] }> {
  const bodies: Record<string, unknown>[] = [];
  server = createServer((req: IncomingMessage, res) => {
    let raw = "";
    req.on("data", (c) => (raw += c));
    req.on("end", () => {
      const body = JSON.parse(raw) as Record<string, unknown>;
      bodies.push(body);
      handler(body, res, bodies.length, req);
    });
  });
  await new Promise<void>((r) => server!.listen(0, "127.0.0.1", () => r()));
  return { url: `http://127.0.0.1:${(server!.address() as { port: number }).port}/v1`, bodies };
}

function reply(res: ServerResponse, body: object, status = 200) {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
}

const chatAnswer = (text: string, extra: object = {}) => ({
  choices: [{ index: 0, message: { role: "assistant", content: text }, finish_reason: "stop", ...extra }],
  usage: { prompt_tokens: 10, completion_tokens: 3 },
});

const sampling = { temperature: 1, top_p: 1, top_k: 0, min_p: 0, repetition_penalty: 1, max_tokens: 8, stop: [] };
const opts = (url: string, o: Partial<OpenAIEngineOptions> = {}): OpenAIEngineOptions => ({
  baseUrl: url, model: "m", api: "chat", flavor: "llama_cpp", maxConcurrency: 4, timeoutS: 5, retries: 3, backoffMs: 10, ...o,
});
const prompt = (id: string, seeds: number[]) => ({ id, messages: [{ role: "user", content: `q ${id}` }], seeds });

describe("OpenAI-compatible engine", () => {
  it("sends one request per sample with its seed and maps answers back by position", async () => {
    const { url, bodies } = await serve((b, res) => reply(res, chatAnswer(`seed=${b.seed}`)));
    const engine = new OpenAIEngine(opts(url));
    const out = await generateAll(engine, [prompt("a", [11, 12]), prompt("b", [13])], sampling);
    expect(bodies.map((b) => b.seed).sort()).toEqual([11, 12, 13]);
    const byKey = Object.fromEntries(out.map((s) => [`${s.promptId}#${s.position}`, s.text]));
    expect(byKey).toEqual({ "a#0": "seed=11", "a#1": "seed=12", "b#0": "seed=13" });
    expect(engine.usage).toMatchObject({ requests: 3, promptTokens: 30, completionTokens: 9 });
    // llama.cpp's own defaults (top_k 40, min_p 0.05, repeat_penalty 1.1) would change sampling: ours are always sent
    expect(bodies[0]).toMatchObject({ top_k: 0, min_p: 0, repeat_penalty: 1, max_tokens: 8, temperature: 1 });
  });

  it("retries 429, 5xx and dropped connections with backoff, then succeeds", async () => {
    const { url, bodies } = await serve((_b, res, n) => {
      if (n === 1) return reply(res, { error: "busy" }, 429);
      if (n === 2) return reply(res, { error: "oops" }, 503);
      if (n === 3) return res.socket!.destroy();
      reply(res, chatAnswer("ok"));
    });
    const engine = new OpenAIEngine(opts(url, { maxConcurrency: 1 }));
    const out = await generateAll(engine, [prompt("a", [1])], sampling);
    expect(out[0]!.text).toBe("ok");
    expect(bodies).toHaveLength(4);
    expect(engine.usage.retries).toBe(3);
  });

  it("fails at once on a 400 with the server's message, and after the retries on persistent 500s", async () => {
    const bad = await serve((_b, res) => reply(res, { error: { message: "model 'm' not found" } }, 400));
    await expect(generateAll(new OpenAIEngine(opts(bad.url)), [prompt("a", [1])], sampling)).rejects.toThrow(/HTTP 400.*model 'm' not found/);
    expect(bad.bodies).toHaveLength(1);
    await new Promise<void>((r) => server!.close(() => r()));
    const down = await serve((_b, res) => reply(res, { error: "down" }, 500));
    await expect(generateAll(new OpenAIEngine(opts(down.url, { retries: 2 })), [prompt("a", [1])], sampling)).rejects.toThrow(/HTTP 500.*after 3 attempts/);
    expect(down.bodies).toHaveLength(3);
  });

  it("times a request out and retries it", async () => {
    const { url, bodies } = await serve((_b, res, n) => {
      if (n === 1) return; // never answers
      reply(res, chatAnswer("late"));
    });
    const out = await generateAll(new OpenAIEngine(opts(url, { timeoutS: 0.3, maxConcurrency: 1 })), [prompt("a", [1])], sampling);
    expect(out[0]!.text).toBe("late");
    expect(bodies).toHaveLength(2);
  });

  it("keeps at most max_concurrency requests in flight", async () => {
    let inFlight = 0;
    let peak = 0;
    const { url } = await serve((b, res) => {
      peak = Math.max(peak, ++inFlight);
      setTimeout(() => { inFlight--; reply(res, chatAnswer(String(b.seed))); }, 30);
    });
    const out = await generateAll(new OpenAIEngine(opts(url, { maxConcurrency: 3 })), [prompt("a", [1, 2, 3, 4, 5, 6, 7, 8, 9, 10])], sampling);
    expect(out).toHaveLength(10);
    expect(peak).toBe(3);
  });

  it("returns token ids and log-probs from llama.cpp's content shape and the legacy shape", async () => {
    expect(parseLogprobs({ content: [{ id: 5, token: "a", logprob: -0.5 }, { id: 7, token: "b", logprob: -1 }] })).toEqual({ logprobs: [-0.5, -1], ids: [5, 7] });
    expect(parseLogprobs({ token_logprobs: [-0.25, null] })).toEqual({ logprobs: [-0.25, Number.NaN] });
    expect(parseLogprobs(null)).toEqual({});
    const { url, bodies } = await serve((_b, res) => reply(res, chatAnswer("ab", { logprobs: { content: [{ id: 5, logprob: -0.5 }, { id: 7, logprob: -1 }] }, finish_reason: "length" })));
    const [s] = await generateAll(new OpenAIEngine(opts(url)), [prompt("a", [1])], sampling, { logprobs: true });
    expect(bodies[0]).toMatchObject({ logprobs: true, top_logprobs: 1 });
    expect(s).toMatchObject({ tokenIds: [5, 7], logprobs: [-0.5, -1], finishReason: "length", completionTokens: 3 });
  });

  it("names non-standard sampling fields per server and refuses them for a hosted API", () => {
    const p = prompt("a", [1]);
    const s = { ...sampling, top_k: 20, repetition_penalty: 1.2 };
    expect(requestBody({ model: "m", api: "chat", flavor: "vllm" }, p, 9, s)).toMatchObject({ top_k: 20, repetition_penalty: 1.2, seed: 9, return_token_ids: true });
    expect(requestBody({ model: "m", api: "chat", flavor: "vllm" }, p, 9, sampling)).toMatchObject({ top_k: -1 });
    expect(requestBody({ model: "m", api: "completions", flavor: "llama_cpp" }, p, 9, s)).toMatchObject({ prompt: "q a", repeat_penalty: 1.2 });
    expect(() => requestBody({ model: "m", api: "chat", flavor: "openai" }, p, 9, s)).toThrow(/top_k.*llama_cpp \/ vllm/);
    const std = requestBody({ model: "m", api: "chat", flavor: "openai" }, p, 9, sampling);
    expect(Object.keys(std).sort()).toEqual(["max_tokens", "messages", "model", "seed", "stream", "temperature", "top_p"]);
    const twoTurns = { ...p, messages: [{ role: "system", content: "s" }, { role: "user", content: "u" }] };
    expect(() => requestBody({ model: "m", api: "completions", flavor: "llama_cpp" }, twoTurns, 1, sampling)).toThrow(/already-templated.*api 'chat'/);
  });

  it("a prompt given as token ids goes to /v1/completions as ids, whatever the api (the policy engine's prompts)", async () => {
    const ids = { ...prompt("a", [1]), promptTokenIds: [1, 9, 4] };
    const body = requestBody({ model: "m", api: "chat", flavor: "llama_cpp" }, ids, 3, sampling, { logprobs: true });
    expect(body).toMatchObject({ prompt: [1, 9, 4], logprobs: 1, seed: 3 });
    expect(body).not.toHaveProperty("messages");
    const paths: string[] = [];
    const { url } = await serve((_b, res, _n, req) => {
      paths.push(req.url ?? "");
      reply(res, { choices: [{ text: "xy", finish_reason: "stop", logprobs: { content: [{ id: 8, logprob: -0.1 }] } }], usage: { completion_tokens: 1 } });
    });
    const [s] = await generateAll(new OpenAIEngine(opts(url)), [ids], sampling, { logprobs: true });
    expect(paths).toEqual(["/v1/completions"]);
    expect(s).toMatchObject({ text: "xy", tokenIds: [8], finishReason: "stop" });
  });

  it("backs off exponentially, capped, or as Retry-After says", () => {
    expect([0, 1, 2, 3].map((a) => backoffMs(a, 500))).toEqual([500, 1000, 2000, 4000]);
    expect(backoffMs(10, 500)).toBe(30_000);
    expect(backoffMs(0, 500, 7000)).toBe(7000);
  });

  it("serves as a teacher: samples come back under their own indices", async () => {
    const { url } = await serve((b, res) => reply(res, chatAnswer(`seed=${b.seed}`)));
    const got: string[] = [];
    await engineGenerator(new OpenAIEngine(opts(url))).generate(
      [{ id: "r", messages: [{ role: "user", content: "x" }], samples: [{ index: 4, seed: 40 }, { index: 7, seed: 70 }] }],
      { temperature: 0.7, top_p: 1, max_tokens: 8, prompts_per_request: 4 },
      (s) => { got.push(`${s.index}:${s.text}`); },
    );
    expect(got.sort()).toEqual(["4:seed=40", "7:seed=70"]);
  });
});

describe("engine config", () => {
  const parse = (engine: object) => ExperimentSchema.safeParse({ name: "x", engine });
  it("defaults to the worker and validates each engine's settings", () => {
    expect(ExperimentSchema.parse({ name: "x" }).engine).toMatchObject({ type: "worker", max_concurrency: 16, retries: 4, llama_cpp: { parallel: 16, auto_build: true } });
    expect(parse({ type: "llama_cpp", llama_cpp: { parallel: 8, ctx_size: 1024, threads: 2 } }).success).toBe(true);
    expect(parse({ type: "openai", base_url: "http://h:8000/v1", model: "gpt-oss-120b", api_key_env: "TEACHER_KEY" }).success).toBe(true);
  });
  it("refuses an openai engine without base_url/model, a bad env var name and unknown keys", () => {
    const noUrl = parse({ type: "openai", model: "m" });
    expect(noUrl.success).toBe(false);
    expect(JSON.stringify(noUrl.error!.issues)).toMatch(/needs engine.base_url/);
    expect(JSON.stringify(parse({ type: "openai", base_url: "http://h/v1" }).error!.issues)).toMatch(/needs engine.model/);
    expect(parse({ type: "openai", base_url: "http://h/v1", model: "m", api_key_env: "sk-123" }).success).toBe(false);
    expect(parse({ type: "llama_cpp", llama_cpp: { slots: 4 } }).success).toBe(false);
    expect(parse({ type: "vllm", vllm: { gpu_memory_utilization: 1.5 } }).success).toBe(false);
  });
  it("a self-play run refuses an engine that cannot take the policy's new weights, before anything starts", () => {
    const run = (engine: object, extra: object = {}) => policyEngineProblem(ExperimentSchema.parse({ name: "x", engine, ...extra }));
    expect(run({ type: "worker" })).toBeUndefined();
    expect(run({ type: "llama_cpp" }, { model: { source: "smollm2-135m-instruct" } })).toBeUndefined();
    expect(run({ type: "openai", base_url: "http://h/v1", model: "m" })).toMatch(/cannot serve the policy's updated weights/);
    expect(run({ type: "vllm", base_url: "http://h/v1" })).toMatch(/an external `vllm serve` cannot be told to load each update's weights; remove engine.base_url/);
    expect(run({ type: "vllm" })).toBeUndefined(); // managed: the controller reloads its servers in place
    expect(run({ type: "vllm" }, { rollout: { samples_per_prompt: 2, temperature: 1, max_tokens: 8, stop: ["\n\n"] } })).toMatch(/engine.type vllm with rollout.stop/);
    expect(run({ type: "llama_cpp" }, { model: { source: "Qwen/Qwen3-4B" } })).toMatch(/engine\.llama_cpp\.gguf: set the GGUF of model\.source 'Qwen\/Qwen3-4B'/);
    expect(run({ type: "llama_cpp", llama_cpp: { gguf: "/m/qwen3-4b.gguf" } }, { model: { source: "Qwen/Qwen3-4B" } })).toBeUndefined();
    expect(run({ type: "llama_cpp" }, { model: { source: "smollm2-135m-instruct" }, eval: { samples_per_prompt: 1, temperature: 0, max_tokens: 8, stop: ["\n\n"] } })).toMatch(/stop strings/);
  });
});
