// Deadlines grow with the work a call asks for (src/rpc/deadlines.ts): a slow but live worker finishes a call
// longer than the caller's fixed deadline; a worker that makes no progress is still cut off. Real worker
// processes (tiny-random-llama) made slow on purpose with PROMPTCOT_FAULT_SLOW_DECODE_S (seconds per decode step);
// the time constants are tiny so the test takes seconds.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { status as GrpcStatus } from "@grpc/grpc-js";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { LocalWorker } from "../src/cluster/local-launcher.js";
import { generateTokens, scaledDeadlineMs, scoreTokens, setMinTokensPerS, trainTokens } from "../src/rpc/deadlines.js";
import type { GenerateResponse } from "../src/rpc/gen/promptcot_worker.js";

const dir = mkdtempSync(join(tmpdir(), "pcot-deadlines-"));
const spec = (name: string) => ({
  modelSource: "tiny-random-llama", dtype: "float32" as const, device: "cpu", trainableLayers: 0, decodeWidth: 2, seed: 1, threads: 1,
  startupTimeoutS: 300, logDir: join(dir, name),
});
const slow = new LocalWorker("slow-1", spec("slow"));
const stalled = new LocalWorker("stalled-2", spec("stalled"));
const FIXED_MS = 500; // the caller's fixed part: shorter than the slow worker needs
// 2 samples × 16 tokens; the stop string never matches, so samples end at max_tokens or the model's EOS
const REQ = { prompts: [{ id: "p", text: "1 + 1 =", sampleSeeds: [1, 2] }], sampling: { temperature: 1, topP: 1, maxTokens: 16 } };

async function generate(w: LocalWorker): Promise<{ out: GenerateResponse[]; ms: number }> {
  const t0 = performance.now();
  const out: GenerateResponse[] = [];
  for await (const r of w.rpc!.generate(REQ, FIXED_MS)) out.push(r);
  return { out, ms: performance.now() - t0 };
}

beforeAll(async () => {
  process.env.PROMPTCOT_FAULT_SLOW_DECODE_S = "0.1";
  await slow.start();
  process.env.PROMPTCOT_FAULT_SLOW_DECODE_S = "600"; // one decode step outlasts the test: no progress at all
  await stalled.start();
  delete process.env.PROMPTCOT_FAULT_SLOW_DECODE_S;
}, 300_000);
afterAll(async () => Promise.all([slow.stop(), stalled.stop()]));
afterEach(() => setMinTokensPerS(5));

describe("work-scaled deadlines", () => {
  it("count the work asked: samples × max_tokens, and every token (or shard-record byte / 4) scored or trained", () => {
    expect(generateTokens(REQ)).toBe(32);
    expect(scoreTokens({ items: [{ promptTokenIds: [1, 2, 3], completionTokenIds: [4] }, { promptRef: { length: 40 }, completionRef: { length: 8 } }] })).toBe(16);
    expect(trainTokens({ examples: [{ promptTokenIds: [1, 2], chosenTokenIds: [3], rejectedRef: { length: 12 } }] })).toBe(6);
    setMinTokensPerS(10);
    expect(scaledDeadlineMs(1000, 32)).toBe(4200);
  });

  it("a fixed deadline kills a slow but live worker's long generation (the old behaviour)", async () => {
    setMinTokensPerS(1e6); // ≈ the fixed part alone
    await expect(generate(slow)).rejects.toMatchObject({ code: GrpcStatus.DEADLINE_EXCEEDED });
  }, 60_000);

  it("a deadline scaled to the work lets it finish, though it runs past the fixed part", async () => {
    setMinTokensPerS(8); // 0.5 s + 32 tokens / 8 per s = 4.5 s; the worker needs ~16 × 0.1 s
    const { out, ms } = await generate(slow);
    expect(out).toHaveLength(2);
    expect(ms).toBeGreaterThan(FIXED_MS);
  }, 60_000);

  it("a worker that makes no progress is still cut off at the scaled deadline", async () => {
    setMinTokensPerS(8);
    const t0 = performance.now();
    await expect(generate(stalled)).rejects.toMatchObject({ code: GrpcStatus.DEADLINE_EXCEEDED });
    expect(performance.now() - t0).toBeLessThan(4500 + 3000);
  }, 60_000);
});
