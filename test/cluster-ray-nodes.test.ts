// A 2-rank sharded trainer (FSDP, gloo, CPU) spread over two Ray nodes on this machine: a head on 127.0.0.3
// and a raylet joined on 127.0.0.2 (test/helpers/ray-cluster.ts). The ranks land on different nodes, meet at
// rank 0's node address, and a DPO update gives the losses of a local single-rank trainer. Every worker call
// carries the run's secret: a wrong one is refused, and the secret is in no file of the run's directory. A
// rank killed on its node restarts the whole group (a new rendezvous) from the checkpoint.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { WorkerSpec } from "../src/cluster/local-launcher.js";
import { WorkerPool } from "../src/cluster/pool.js";
import { RayLauncher, type RaySettings } from "../src/cluster/ray-launcher.js";
import { LossKind, type TrainExample } from "../src/rpc/gen/promptcot_worker.js";
import { WorkerRpc } from "../src/rpc/worker-client.js";
import { workerSecret } from "../src/rpc/worker-secret.js";
import { LocalRayCluster } from "./helpers/ray-cluster.js";

const HEAD = "127.0.0.3";
const NODE = "127.0.0.2";
// under /tmp itself, not the per-file test temp root (test/helpers/temp-root.ts): Ray's socket paths must stay
// short (AF_UNIX allows 107 bytes)
const root = mkdtempSync("/tmp/pcot-raynodes-");
const runDir = join(root, "run");
const cluster = new LocalRayCluster(join(root, "ray"));
process.on("exit", () => cluster.killGroups()); // a crashed test run leaves no Ray behind

const spec = (trainerRanks: number, logDir: string): WorkerSpec => ({
  modelSource: "tiny-random-llama", dtype: "float32", device: "cpu", trainableLayers: 0, decodeWidth: 1, seed: 1,
  threads: 1, startupTimeoutS: 300, logDir, trainerRanks,
});
const settings: RaySettings = {
  cpus_per_worker: 1, gpus_per_worker: 0, placement_strategy: "STRICT_SPREAD", shared_run_dir: false, runtime_env: {},
  worker_host: "0.0.0.0", controller_timeout_s: 60,
};
const hyper = { learningRate: 1e-3, beta: 0.1, microBatchSize: 2 };
const prompt = [5, 6, 7, 8];
const pairs = [[[11, 12, 13], [21, 22]], [[14, 15], [23, 24, 25]], [[16, 17, 18, 19], [26]]] as const;

async function steps(pool: WorkerPool, n: number): Promise<number[]> {
  const items = pairs.flatMap(([c, r], i) => [
    { id: `c${i}`, promptTokenIds: prompt, completionTokenIds: [...c] },
    { id: `r${i}`, promptTokenIds: prompt, completionTokenIds: [...r] },
  ]);
  const ref = await pool.run(0, (rpc) => rpc.score({ items }, 60_000));
  const examples: Partial<TrainExample>[] = pairs.map(([c, r], i) => ({
    promptTokenIds: prompt, chosenTokenIds: [...c], rejectedTokenIds: [...r],
    refChosenLogp: ref.results[2 * i]!.sumLogprob, refRejectedLogp: ref.results[2 * i + 1]!.sumLogprob,
  }));
  const losses: number[] = [];
  for (let i = 0; i < n; i++) {
    const res = await pool.run(0, (rpc) => rpc.trainStep({ stepId: `s-${i}`, loss: LossKind.DPO, examples, hyper }, 180_000));
    losses.push(res.metrics.loss!);
  }
  return losses;
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: "utf8" }).map((f) => join(dir, f)).filter((f) => statSync(f).isFile());
}

let launcher: RayLauncher;
let group: WorkerPool;
const single = new WorkerPool(1, spec(1, join(runDir, "logs-single")), 0);
let passed = 0;

beforeAll(async () => {
  await cluster.start({ ip: HEAD, cpus: 1 }, [{ ip: NODE, cpus: 1 }]);
  launcher = new RayLauncher(cluster.address, settings, join(runDir, "ray"));
  group = new WorkerPool(1, spec(2, join(runDir, "logs")), { maxRestarts: 2, windowS: 3600, retryDelayMs: 50 }, undefined, launcher);
  await Promise.all([group.start(), single.start()]);
}, 420_000);

afterAll(async () => {
  await Promise.all([group?.stop(), single.stop()]);
  await cluster.kill();
  if (passed === 4) rmSync(root, { recursive: true, force: true });
  else process.stderr.write(`[cluster-ray-nodes] kept ${root} for inspection\n`);
}, 90_000);

describe("sharded trainer over two Ray nodes", () => {
  it("puts the ranks on different nodes and rendezvouses at rank 0's node address, not 127.0.0.1", async () => {
    const placed = (group.workers[0] as unknown as { placed: { node_ip: string; address: string }[] }).placed;
    const ips = placed.map((e) => e.node_ip);
    expect([...ips].sort()).toEqual([NODE, HEAD].sort());
    expect(ips[0]).not.toBe("127.0.0.1");
    for (const e of placed) expect(e.address.startsWith(`${e.node_ip}:`)).toBe(true);
    const job = await launcher.currentJob(undefined);
    for (const id of ["worker-0", "worker-0-rank1"]) {
      expect(readFileSync(join(job.dir, "logs", `${id}.log`), "utf8")).toMatch(new RegExp(`joined the gloo group at ${ips[0]!.replace(/\./g, "\\.")}:\\d+`));
    }
    process.stderr.write(`[cluster-ray-nodes] rank 0 on ${ips[0]}, rank 1 on ${ips[1]}\n`);
    passed++;
  });

  it("one DPO update gives the single-rank trainer's loss, and the next step its updated weights' loss", async () => {
    const [sharded, plain] = await Promise.all([steps(group, 2), steps(single, 2)]);
    expect(sharded[0]).toBeCloseTo(Math.log(2), 3);
    expect(sharded[1]).toBeLessThan(sharded[0]! - 1e-3);
    for (const [i, v] of sharded.entries()) expect(Math.abs(v - plain[i]!)).toBeLessThan(1e-5);
    expect(group.workers[0]!.restarts).toBe(0);
    process.stderr.write(`[cluster-ray-nodes] DPO losses: 2 ranks on Ray ${sharded.join(", ")}; 1 local rank ${plain.join(", ")}\n`);
    passed++;
  }, 400_000);

  it("a call with a wrong secret is refused (UNAUTHENTICATED); the secret is in no file of the run directory", async () => {
    const placed = (group.workers[0] as unknown as { placed: { address: string }[] }).placed;
    for (const { address } of placed) {
      const wrong = new WorkerRpc(address, "0".repeat(64));
      await expect(wrong.health()).rejects.toMatchObject({ code: 16 });
      wrong.close();
    }
    const path = join(runDir, "ckpt-2");
    await group.run(0, (rpc) => rpc.saveCheckpoint({ path, includeOptimizer: true }, 180_000));
    // the sharded layout: DCP shards plus an HF copy the ranks wrote together (model-0000r-of-0000N.safetensors)
    expect(existsSync(join(path, "worker_meta.json"))).toBe(true);
    expect(readdirSync(path).filter((f) => f.endsWith(".safetensors")).length).toBeGreaterThan(0);
    const secret = Buffer.from(workerSecret());
    const files = filesUnder(runDir);
    expect(files.some((f) => f.endsWith("spec.json")) && files.some((f) => f.endsWith("worker-0-rank1.log"))).toBe(true);
    expect(files.filter((f) => readFileSync(f).includes(secret))).toEqual([]);
    group.advance(path, 2, 0);
    passed++;
  }, 300_000);

  it("a rank killed on its node restarts the whole group from the checkpoint, with a new rendezvous", async () => {
    const w = group.workers[0] as unknown as { placed: { node_ip: string; generation: number; pid: number }[]; restarts: number };
    const before = w.placed.map((e) => e.pid);
    const job = await launcher.currentJob(undefined);
    job.request("worker-0-rank1.kill"); // its server process, on whichever node it runs
    const until = Date.now() + 60_000;
    while (group.workers[0]!.alive && Date.now() < until) await new Promise((r) => setTimeout(r, 200));
    expect(group.workers[0]!.alive).toBe(false);
    const info = await group.run(0, (rpc) => rpc.info());
    expect(info.weightsVersion).toBe(2); // back at the checkpoint
    expect(w.restarts).toBe(1);
    expect(w.placed.map((e) => e.generation)).toEqual([1, 1]); // both ranks restarted, as one generation
    expect(w.placed.every((e, r) => e.pid !== before[r])).toBe(true);
    expect(new Set(w.placed.map((e) => e.node_ip)).size).toBe(2);
    const [loss] = await steps(group, 1); // the restarted group trains
    expect(Number.isFinite(loss)).toBe(true);
    expect(w.restarts).toBe(1);
    passed++;
  }, 400_000);
});
