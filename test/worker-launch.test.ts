// Worker command lines (device index, role) and the config keys that reach the worker.
import { describe, expect, it } from "vitest";
import { workerArgs, workerIndex, type WorkerSpec } from "../src/cluster/local-launcher.js";
import { rayWorkerArgs } from "../src/cluster/ray-launcher.js";
import { ModelSchema, SamplingSchema } from "../src/config/schema.js";

const spec: WorkerSpec = {
  modelSource: "tiny-random-llama", dtype: "bfloat16", device: "auto", trainableLayers: 0, decodeWidth: 8,
  seed: 1, threads: 1, startupTimeoutS: 60, logDir: "/tmp",
};
const flag = (args: string[], name: string) => args[args.indexOf(name) + 1];

describe("worker launch", () => {
  it("gives each worker its index and makes only worker 0 the trainer", () => {
    expect(workerIndex("worker-0")).toBe(0);
    expect(workerIndex("worker-12")).toBe(12);
    expect(workerIndex("contract")).toBe(0);
    const trainer = workerArgs("worker-0", spec, 0, "/ckpt/step-3");
    expect([flag(trainer, "--device-index"), flag(trainer, "--role"), flag(trainer, "--init-checkpoint")]).toEqual(["0", "trainer", "/ckpt/step-3"]);
    const rollout = workerArgs("worker-2", spec, 2);
    expect([flag(rollout, "--device-index"), flag(rollout, "--role"), flag(rollout, "--device")]).toEqual(["2", "rollout", "auto"]);
    expect(rollout).not.toContain("--init-checkpoint");
  });

  it("makes no trainer in a pool that never trains (eval of a run's checkpoint must not load its optimizer)", () => {
    const evalWorker = workerArgs("worker-0", { ...spec, trains: false }, 0, "/ckpt/step-3");
    expect([flag(evalWorker, "--role"), flag(evalWorker, "--init-checkpoint")]).toEqual(["rollout", "/ckpt/step-3"]);
  });

  it("parallel.activation_checkpointing false reaches every trainer rank, rollout worker and Ray actor", () => {
    const off: WorkerSpec = { ...spec, activationCheckpointing: false, trainerRanks: 2 };
    const all = [workerArgs("worker-0", off, 0), workerArgs("worker-0-rank1", off, 0, undefined, 1), workerArgs("worker-1", off, 1),
      rayWorkerArgs("worker-0-rank1", off, "127.0.0.2", 0, 1)];
    for (const args of all) expect(args).toContain("--no-gradient-checkpointing");
    for (const on of [spec, { ...spec, activationCheckpointing: true }]) expect(workerArgs("worker-0", on, 0)).not.toContain("--no-gradient-checkpointing");
  });

  it("accepts cuda:N devices and rejects anything else with a clear message", () => {
    expect(ModelSchema.parse({ device: "cuda:3" }).device).toBe("cuda:3");
    expect(ModelSchema.parse({}).device).toBe("auto");
    for (const bad of ["cuda:", "cuda:x", "gpu", "cuda:1:2"]) {
      const r = ModelSchema.safeParse({ device: bad });
      expect(r.success).toBe(false);
      expect(JSON.stringify(r.error?.issues)).toContain("cuda:N");
    }
  });

  it("has sampling knobs and chat-template kwargs with neutral defaults", () => {
    const s = SamplingSchema.parse({ samples_per_prompt: 2, temperature: 1, max_tokens: 8 });
    expect([s.top_k, s.min_p, s.repetition_penalty]).toEqual([0, 0, 1]);
    expect(SamplingSchema.safeParse({ samples_per_prompt: 2, temperature: 1, max_tokens: 8, min_p: 2 }).success).toBe(false);
    expect(ModelSchema.parse({}).chat_template_kwargs).toEqual({});
    expect(ModelSchema.parse({ chat_template_kwargs: { enable_thinking: false } }).chat_template_kwargs).toEqual({ enable_thinking: false });
  });
});
