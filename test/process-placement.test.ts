// No silent GPU sharing (issue 18 item 6): a layout that would put two processes on one GPU without being asked,
// or give cuda workers on Ray no GPU, is refused before anything starts (exit 2 naming the key and the fix);
// `plan` shows which process sits on which GPU.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { placementProblems, processSlots, workersLine } from "../src/cluster/process-placement.js";
import { loadExperiment } from "../src/config/load.js";

const cli = (...args: string[]) => spawnSync("node", ["bin/promptcot.mjs", ...args], { encoding: "utf8", timeout: 120_000 });
const RAY_30B = "experiments/qwen3-30b-a3b-selfplay.yaml";
// rollout on the gRPC workers: managed vLLM servers are not placed on GPUs (the plan would name it as not built)
const LOCAL_GPUS = ["--set", "model.device=cuda", "--set", "cluster.gpus_per_node=4", "--set", "workers.trainer_ranks=2", "--set", "engine.type=worker"];
const cfgOf = (file: string, ...set: string[]) => loadExperiment(file, set.filter((_, i) => i % 2 === 1)).config;

describe("process placement", () => {
  it("refuses cuda workers on Ray without a GPU each: plan and run --dry-run exit 2 naming cluster.ray.gpus_per_worker", () => {
    for (const cmd of [["plan", RAY_30B], ["run", RAY_30B, "--dry-run"]]) {
      const r = cli(...cmd, "--set", "cluster.ray.gpus_per_worker=0");
      expect(r.status, r.stderr).toBe(2);
      expect(r.stderr).toContain("at 'cluster.ray.gpus_per_worker': is 0, so every worker actor gets no GPU");
      expect(r.stderr).toContain("set cluster.ray.gpus_per_worker: 1");
    }
  }, 120_000);

  it("the paper recipes place each worker actor on a GPU of its own", () => {
    for (const f of [RAY_30B, "experiments/qwen3-4b-selfplay.yaml", "experiments/qwen2.5-7b-sft.yaml"]) {
      const cfg = cfgOf(f);
      expect(placementProblems(cfg), f).toEqual([]);
      expect(processSlots(cfg)[0]!.device).toBe("1 GPU(s) of its own, chosen by Ray");
    }
  });

  it("refuses a local rollout worker that would land on a trainer rank's GPU, before the run directory exists", () => {
    const dir = "/tmp/pcot-placement-never-created";
    const r = cli("run", "experiments/quickstart.yaml", ...LOCAL_GPUS, "--set", "workers.count=4", "--run-dir", dir);
    expect(r.status, r.stderr).toBe(2);
    expect(r.stderr).toContain("at 'workers.count': 4 worker(s) with 2 trainer rank(s) need 5 GPUs but cluster.gpus_per_node is 4: " +
      "rollout worker 3 would land on cuda:0, which trainer rank 0 (worker 0) holds; set workers.count to at most 3");
    expect(existsSync(dir)).toBe(false);
  }, 120_000);

  it("plan shows which process sits on which GPU", () => {
    const r = cli("plan", "experiments/quickstart.yaml", ...LOCAL_GPUS, "--set", "workers.count=3");
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain([
      "processes (local processes, model.device cuda):",
      "  trainer rank 0 (worker 0): cuda:0",
      "  trainer rank 1 (worker 0): cuda:1",
      "  rollout worker 1: cuda:2",
      "  rollout worker 2: cuda:3",
    ].join("\n"));
    const json = JSON.parse(cli("plan", "experiments/quickstart.yaml", ...LOCAL_GPUS, "--set", "workers.count=3", "--json").stdout);
    expect(json.processes.map((p: { device: string }) => p.device)).toEqual(["cuda:0", "cuda:1", "cuda:2", "cuda:3"]);
  }, 120_000);

  it("the dry-run plan's workers line says local processes or Ray actors, and the trainer's ranks", () => {
    expect(workersLine(cfgOf(RAY_30B))).toMatch(/^workers: 1 × Ray actor \(the trainer, worker 0: 16 FSDP ranks, Ray actors\) \(\/models\/Qwen3-30B/);
    expect(workersLine(cfgOf("experiments/quickstart.yaml"))).toMatch(/^workers: 1 × local process \(smollm2-135m-instruct, /);
  });

  it("cuda:N shares GPU N on purpose, and CPU runs have nothing to place", () => {
    expect(placementProblems(cfgOf("experiments/quickstart.yaml", ...LOCAL_GPUS, "--set", "workers.count=8", "--set", "model.device=cuda:1"))).toEqual([]);
    expect(placementProblems(cfgOf("experiments/quickstart.yaml", "--set", "workers.count=8"))).toEqual([]);
  });

  it("places managed vLLM servers: the first GPUs on one host (the workers follow), a bundle each on Ray; too few GPUs is refused", () => {
    const VLLM = ["--set", "model.device=cuda", "--set", "cluster.gpus_per_node=8", "--set", "workers.trainer_ranks=2", "--set", "engine.type=vllm",
      "--set", "engine.vllm.tensor_parallel_size=2", "--set", "engine.vllm.engines=3"];
    const local = cfgOf("experiments/quickstart.yaml", ...VLLM);
    expect(placementProblems(local)).toEqual([]);
    expect(processSlots(local).map((s) => `${s.process}: ${s.device}`)).toEqual([
      "trainer rank 0 (worker 0): cuda:6", "trainer rank 1 (worker 0): cuda:7",
      "vLLM server 0: CUDA_VISIBLE_DEVICES=0,1", "vLLM server 1: CUDA_VISIBLE_DEVICES=2,3", "vLLM server 2: CUDA_VISIBLE_DEVICES=4,5",
    ]);
    const [tooMany] = placementProblems(cfgOf("experiments/quickstart.yaml", ...VLLM, "--set", "engine.vllm.engines=4"));
    expect(tooMany).toEqual({ key: "engine.vllm.engines", message: expect.stringMatching(/^4 vLLM server\(s\) × tensor_parallel_size 2 need 8 GPU\(s\) of their own, but cluster.gpus_per_node is 8 and the workers need 2 .*leaving 6; lower engine.vllm.engines/) });
    const r = cli("plan", "experiments/quickstart.yaml", ...VLLM, "--set", "engine.vllm.engines=4");
    expect(r.status, r.stderr).toBe(2);
    expect(r.stderr).toContain("at 'engine.vllm.engines': 4 vLLM server(s)");
    const ray = processSlots(cfgOf(RAY_30B)).filter((s) => s.process.startsWith("vLLM"));
    expect(ray).toEqual(Array.from({ length: 4 }, (_, i) => ({ process: `vLLM server ${i}, Ray actor`, device: "bundle {CPU: 1, GPU: 4}: 4 GPU(s) of one node, chosen by Ray, bound to that node's address" })));
  }, 120_000);
});
