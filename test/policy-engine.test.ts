// The policy engine's one rule: before sampling it serves exactly the pool's current checkpoint. Checked on a
// recording engine with two pools (a run and its twin share the engine and have checkpoints at the same
// steps): a step number alone would let the twin sample from the run's weights.
import { describe, expect, it } from "vitest";
import type { RunContext } from "../src/experiment/context.js";
import type { EngineSample } from "../src/rollout/engine.js";
import { PolicyEngine, type SyncableEngine } from "../src/rollout/policy-engine.js";

function recordingEngine(calls: string[]): SyncableEngine {
  return {
    name: "fake",
    // eslint-disable-next-line require-yield
    async *generate(): AsyncIterable<EngineSample> {
      return;
    },
    async syncWeights(dir, label) {
      calls.push(`sync ${dir} as ${label}`);
      return { total_s: 0, phases: { export_s: 0, restart_s: 0 } };
    },
    async serveBase() {
      calls.push("base");
    },
    async close() {},
  };
}

function ctxWith(pool: { checkpoint?: string; checkpointStep: number }, eos: number[] = [2]): RunContext {
  const fakePool = { ...pool, run: async (_i: number, fn: (rpc: unknown) => unknown) => fn({ info: async () => ({ eosTokenIds: eos }) }) };
  return { pool: fakePool, metrics: { write: () => {} }, log: () => {} } as unknown as RunContext;
}

describe("PolicyEngine", () => {
  it("syncs when the pool's checkpoint changes, by path, and goes back to the base for a pool without one", async () => {
    const calls: string[] = [];
    const pe = new PolicyEngine(recordingEngine(calls));
    await pe.current(ctxWith({ checkpointStep: 0 })); // base model, nothing to do
    await pe.current(ctxWith({ checkpoint: "/run/ckpt/step-2", checkpointStep: 2 }));
    await pe.current(ctxWith({ checkpoint: "/run/ckpt/step-2", checkpointStep: 2 })); // already served
    await pe.current(ctxWith({ checkpointStep: 0 })); // the twin starts from the base model
    await pe.current(ctxWith({ checkpoint: "/run/twin/ckpt/step-2", checkpointStep: 2 })); // same step, other weights
    expect(calls.map((c) => c.replace(/-[0-9a-f]{8}$/, "-H"))).toEqual([
      "sync /run/ckpt/step-2 as step-2-H",
      "base",
      "sync /run/twin/ckpt/step-2 as step-2-H",
    ]);
    expect(calls[0]!.slice(-8)).not.toBe(calls[2]!.slice(-8)); // different GGUF files
  });

  it("a stopped sample's ids end with EOS as the worker's do; a cut one is left as sampled; no ids is an error", async () => {
    const pe = new PolicyEngine(recordingEngine([]));
    const ctx = ctxWith({ checkpointStep: 0 }, [2, 0]);
    const s = (ids: number[] | undefined, finishReason: string) => ({ promptId: "p", position: 0, text: "x", finishReason, tokenIds: ids, completionTokens: 1, promptOpensThink: false });
    expect(await pe.completionIds(ctx, s([5, 6], "stop"))).toEqual([5, 6, 0]);
    expect(await pe.completionIds(ctx, s([5, 2], "stop"))).toEqual([5, 2]);
    expect(await pe.completionIds(ctx, s([5, 6], "length"))).toEqual([5, 6]);
    await expect(pe.completionIds(ctx, s(undefined, "stop"))).rejects.toThrow(/returned no token ids for p#0/);
  });
});
