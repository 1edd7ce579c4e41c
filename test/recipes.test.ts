// The paper's recipes (experiments/qwen3-30b-a3b-selfplay.yaml, qwen3-4b-selfplay.yaml, qwen2.5-7b-sft.yaml)
// validate, dry-run and plan on a machine without their model or data; the plan names the parts of their
// layouts the code does not build (or says "fits: yes" when there are none), and refuses a cluster that cannot
// hold them, naming the reason and the smallest cluster that can.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const RECIPES = ["experiments/qwen3-30b-a3b-selfplay.yaml", "experiments/qwen3-4b-selfplay.yaml", "experiments/qwen2.5-7b-sft.yaml"];
const cli = (...args: string[]) => spawnSync("node", ["bin/promptcot.mjs", ...args], { encoding: "utf8", timeout: 120_000 });
const ONE_GPU = ["--set", "cluster.nodes=1", "--set", "cluster.gpus_per_node=1"];

describe("paper recipes", () => {
  // The parts each layout needs that the code does not build (docs/SCALING.md "Which parts the code runs today"):
  // the dry-run still prints everything, names each missing part, and exits 3 like a plan that does not fit. The
  // two self-play recipes train DPO pairs in two passes (train.dpo_pair_passes: split), so they need no sequence
  // parallelism, and the 30B one's managed vLLM servers are placed in Ray bundles of their own; the 4B one's
  // external vLLM servers are the run's refusal, not the plan's: its plan fits, and its dry-run exits 2 as its
  // run does (REFUSED).
  const REFUSED: Record<string, RegExp | undefined> = {
    "experiments/qwen3-4b-selfplay.yaml": /^error: experiments\/qwen3-4b-selfplay.yaml at 'engine.base_url': engine.type vllm with engine.base_url: .*remove engine.base_url/m,
  };
  const MISSING: Record<string, RegExp[]> = {
    "experiments/qwen3-30b-a3b-selfplay.yaml": [],
    "experiments/qwen3-4b-selfplay.yaml": [],
    "experiments/qwen2.5-7b-sft.yaml": [/HSDP \(2 replicas\) is not built/, /workers.count 1: the trainer generates itself/],
  };

  it.each(RECIPES)("%s dry-runs: resolved config, what is not on this machine, the plan, and the parts not built (exit 3) if any", (file) => {
    const r = cli("run", file, "--dry-run");
    expect(r.stderr).toMatch(/dry run without \d input\(s\) that are not on this machine: model.source/);
    expect(r.stdout).toContain("# not on this machine");
    expect(r.stdout).toContain("# placement (promptcot plan)");
    const missing = MISSING[file]!;
    if (!missing.length) {
      expect(r.status, r.stderr).toBe(REFUSED[file] ? 2 : 0);
      if (REFUSED[file]) expect(r.stderr).toMatch(REFUSED[file]!);
      expect(r.stdout).toMatch(/\nfits: yes\n/);
      expect(r.stdout).not.toContain("not built");
      return;
    }
    expect(r.stderr).toMatch(/warning: placement: .*not built/);
    expect(r.status).toBe(3);
    expect(r.stdout).toContain("not built (the layout needs these parts; the code does not have them):");
    for (const m of missing) expect(r.stdout).toMatch(m);
    expect(r.stdout).not.toMatch(/\nfits: yes\n/);
  }, 120_000);

  it.each(RECIPES)("%s plans its trainer ranks as the run starts them (workers.trainer_ranks = the plan's trainer GPUs)", (file) => {
    const plan = JSON.parse(cli("plan", file, "--json").stdout);
    expect(plan.fits).toBe(MISSING[file]!.length === 0);
    expect(plan.cpu).toBe(false);
    expect(plan.trainerRanks).toBe(plan.layout.trainerGpus);
    expect(plan.missing.join("\n")).not.toMatch(/workers.trainer_ranks/);
  }, 120_000);

  it("the 30B recipe plans managed vLLM engines with in-place sync, each in a Ray bundle of its own; with DPO pairs in two passes it fits without sequence parallelism", () => {
    const r = cli("plan", RECIPES[0]!);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/rollout: 4 engine\(s\) × TP 4 on 16 GPU\(s\) \(managed vLLM servers, weights reloaded in place from each checkpoint\)/);
    expect(r.stdout).toMatch(/sequence parallel 1\n/);
    expect(r.stdout).toMatch(/vLLM servers as Ray actors, one placement-group bundle each \(\{GPU: 4\}/);
    expect(r.stdout).toMatch(/\nfits: yes\n/);
    // the same recipe with its pairs in one pass: 2 × 83,968 tokens of activations per rank do not fit
    const joint = cli("plan", RECIPES[0]!, "--set", "train.dpo_pair_passes=joint");
    expect(joint.stdout).toMatch(/- a trainer rank needs \d+\.\d GiB \(activations \d+\.\d GiB/);
    const activations = (out: string) => out.match(/^activations +\d+\.\d +(\d+\.\d)$/m)![1]!;
    expect(Number(activations(joint.stdout))).toBeCloseTo(2 * Number(activations(r.stdout)), 0);
  }, 120_000);

  it("the 30B recipe's paper settings reach the planner: 8 × 2 prompts in flight at 2,048 + 81,920 tokens, DPO pairs of that length", () => {
    const plan = JSON.parse(cli("plan", RECIPES[0]!, "--json").stdout);
    expect(plan.model.name).toBe("Qwen3-30B-A3B-Thinking-2507");
    // DPO pairs of that length in two passes (train.dpo_pair_passes: split): a pass trains one 83,968-token sequence
    expect(plan.workload).toMatchObject({ genContext: 83_968, genConcurrency: 16, trainTokens: 83_968, dtypeBytes: 2 });
    expect(plan.layout).toMatchObject({ totalGpus: 32, engines: 4, tensorParallel: 4, trainerGpus: 16, fsdp: 16, sequenceParallel: 1 });
  }, 120_000);

  it("plan refuses one GPU for the 30B recipe (exit 3) with the reason and the smallest cluster that fits", () => {
    const r = cli("plan", RECIPES[0]!, ...ONE_GPU);
    expect(r.status).toBe(3);
    expect(r.stdout).toContain("fits: NO");
    expect(r.stdout).toMatch(/the training state alone \(fp32 weights, gradients, AdamW\) is 455\.0 GiB; all 1 GPU\(s\) together hold 72\.0 GiB/);
    expect(r.stdout).toMatch(/smallest cluster that fits in memory \(built layouts only\): \d+ node\(s\) × \d+ GPU\(s\) \(\d+ GPUs of 80 GiB\): cluster\.nodes=\d+ cluster\.gpus_per_node=\d+/);
    expect(r.stderr).toMatch(/^error: the plan does not fit: the training state alone/);
    const fit = JSON.parse(cli("plan", RECIPES[0]!, ...ONE_GPU, "--json").stdout).smallest;
    expect(fit.layout.totalGpus).toBeGreaterThanOrEqual(10); // 16 bytes × 30.5B over 72 GiB GPUs, and one engine, at the least
    const again = cli("plan", RECIPES[0]!, "--json", "--set", `cluster.nodes=${fit.cluster.nodes}`, "--set", `cluster.gpus_per_node=${fit.cluster.gpusPerNode}`,
      "--set", "parallel.roles=split", "--set", `parallel.rollout_tensor_parallel=${fit.layout.tensorParallel}`, "--set", `engine.vllm.tensor_parallel_size=${fit.layout.tensorParallel}`,
      "--set", `parallel.rollout_gpus=${fit.layout.rolloutGpus}`, "--set", `parallel.fsdp=${fit.layout.fsdp}`, "--set", "parallel.sequence_parallel=1",
      "--set", `workers.trainer_ranks=${fit.layout.trainerGpus}`, "--set", `engine.vllm.engines=${fit.layout.engines}`);
    // the suggested cluster, set as suggested, fits in memory, and every part of it is built (vLLM servers in Ray bundles)
    const plan = JSON.parse(again.stdout);
    expect(plan.memoryFits).toBe(true);
    expect(plan.missing).toEqual([]);
    expect(plan.processes.filter((p: { process: string }) => p.process.startsWith("vLLM server")).map((p: { device: string }) => p.device))
      .toEqual(Array(fit.layout.engines).fill(`bundle {CPU: 1, GPU: ${fit.layout.tensorParallel}}: ${fit.layout.tensorParallel} GPU(s) of one node, chosen by Ray, bound to that node's address`));
  }, 180_000);

  it("a vLLM engine whose tensor_parallel_size disagrees with the plan's TP groups is a config error (exit 2)", () => {
    const r = cli("plan", RECIPES[0]!, "--set", "engine.vllm.tensor_parallel_size=2");
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("engine.vllm.tensor_parallel_size is 2 but parallel.rollout_tensor_parallel is 4");
  }, 120_000);

  it("run --dry-run of a plan that does not fit exits 3 too, saying why", () => {
    const r = cli("run", RECIPES[0]!, "--dry-run", ...ONE_GPU);
    expect(r.status).toBe(3);
    expect(r.stdout).toContain("fits: NO");
    expect(r.stderr).toMatch(/warning: placement: the plan does not fit: the training state alone/);
  }, 120_000);

  it("a dry-run without the inputs still makes the run's config checks (a cosine schedule without its length: exit 2)", () => {
    const r = cli("run", RECIPES[1]!, "--dry-run", "--set", "train.lr_schedule.kind=cosine");
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("a cosine schedule needs its length");
  }, 120_000);

  it("run and --dry-run refuse the same settings with the same error and exit 2; the dry-run names them all, the run starts nothing", () => {
    const runDir = join(tmpdir(), `pcot-recipes-refused-${process.pid}`);
    const run = cli("run", RECIPES[1]!, "--run-dir", runDir);
    const dry = cli("run", RECIPES[1]!, "--dry-run", "--run-dir", runDir);
    expect([run.status, dry.status]).toEqual([2, 2]);
    const refusal = REFUSED[RECIPES[1]!]!;
    expect(run.stderr).toMatch(refusal);
    expect(dry.stderr).toMatch(refusal);
    expect(existsSync(runDir)).toBe(false);
    // two refusals: the dry-run prints both (and its plan), the run stops on both in one error
    const cosine = ["--set", "train.lr_schedule.kind=cosine"];
    const dry2 = cli("run", RECIPES[1]!, "--dry-run", ...cosine);
    expect(dry2.status).toBe(2);
    expect(dry2.stderr).toMatch(/at 'train.lr_schedule.total_steps': a cosine schedule needs its length/);
    expect(dry2.stderr).toMatch(refusal);
    expect(dry2.stdout).toContain("# placement (promptcot plan)");
    const run2 = cli("run", RECIPES[1]!, "--run-dir", runDir, ...cosine);
    expect(run2.status).toBe(2);
    expect(run2.stderr).toMatch(/2 settings that a run refuses:\n  - .*'train.lr_schedule.total_steps'.*\n  - .*'engine.base_url': engine.type vllm with engine.base_url/);
    expect(existsSync(runDir)).toBe(false);
  }, 180_000);

  it("a config whose model is here still has its data checked by the dry-run (a missing file: exit 2)", () => {
    const r = cli("run", "experiments/quickstart.yaml", "--dry-run", "--set", "data.kind=jsonl", "--set", "data.train_path=no-such.jsonl",
      "--set", "data.heldout_path=no-such.jsonl");
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/no-such\.jsonl/);
  }, 120_000);

  it("a CPU experiment's dry-run still exits 0 and shows memory per worker process", () => {
    const r = cli("run", "experiments/quickstart.yaml", "--dry-run", "--run-dir", "/tmp/pcot-recipes-quickstart-never-created");
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/CPU processes \(cluster.gpus_per_node 0\): no GPU placement/);
  }, 120_000);
});
