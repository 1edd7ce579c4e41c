// The managed vLLM server's command line and environment, without a server: the key never on argv, every
// server bound to its own cores, the CPU token budget left to the launcher, and the config's vllm block.
import { describe, expect, it } from "vitest";
import { ExperimentSchema } from "../src/config/schema.js";
import { ConfigError } from "../src/config/errors.js";
import { policyEngineProblem, roleEngineType, roleVllmEngine } from "../src/rollout/from-config.js";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { serverCores, VllmEngine, VllmServer, vllmServerArgs, vllmServerEnv, type VllmServerOptions } from "../src/rollout/vllm.js";

const o: VllmServerOptions = {
  python: "/venv/bin/python", model: "/m", dtype: "float32", maxModelLen: 256, enforceEager: true, kvCacheGib: 1, cores: "0-1",
  tensorParallelSize: 1, gpuMemoryUtilization: 0.9, batchInvariant: false, seed: 7, startupTimeoutS: 10, logDir: "/run/logs", maxNumSeqs: 64,
};

describe("managed vLLM server settings", () => {
  it("passes the key only in the environment, listens on loopback, and sizes max_num_seqs", () => {
    const args = vllmServerArgs(o, 8123);
    expect(args.slice(0, 2)).toEqual(["-m", "promptcot_worker.vllm_serve"]);
    expect(args.join(" ")).not.toMatch(/api-key/);
    expect(args[args.indexOf("--host") + 1]).toBe("127.0.0.1");
    expect(args[args.indexOf("--max-num-seqs") + 1]).toBe("64");
    expect(args).toContain("--enforce-eager");
    expect(args).not.toContain("--block-size"); // the launcher's choice per platform (vllm_serve.cpu_block_args)
    const own = vllmServerArgs({ ...o, blockSize: 64 }, 8123);
    expect(own[own.indexOf("--block-size") + 1]).toBe("64");
    const env = vllmServerEnv(o, "s3cret");
    expect(env.VLLM_API_KEY).toBe("s3cret");
    expect(env.VLLM_SERVER_DEV_MODE).toBe("1");
    expect(env.VLLM_CPU_OMP_THREADS_BIND).toBe("0-1");
    expect(env.VLLM_BATCH_INVARIANT).toBeUndefined();
    expect(vllmServerEnv({ ...o, batchInvariant: true }, "k").VLLM_BATCH_INVARIANT).toBe("1");
    // engine.vllm.cpu_exclusive: vllm_serve keeps vLLM's own CPU set-up (spinning threads) only when told so
    expect(env.PROMPTCOT_VLLM_CPU_SHARED).toBe("1");
    expect(vllmServerEnv({ ...o, cpuExclusive: true }, "k").PROMPTCOT_VLLM_CPU_SHARED).toBe("0");
  });

  it("binds each server to its own cores while the machine has room", () => {
    expect(serverCores(0, 0, 2, 1)).toBe("0-1"); // one server takes the whole machine (vLLM's auto keeps a core back)
    expect([0, 1].map((i) => serverCores(i, 0, 2, 2))).toEqual(["0-0", "1-1"]);
    expect([0, 1, 2].map((i) => serverCores(i, 2, 4, 3))).toEqual(["0-1", "2-3", "0-1"]);
    expect(serverCores(0, 0, 1, 4)).toBe("0-0");
  });

  it("a managed vLLM engine may serve the policy; an external one, or stop strings, are refused with the fix", () => {
    const problem = (extra: object) => policyEngineProblem(ExperimentSchema.parse({ name: "x", ...extra }));
    expect(problem({ engine: { type: "vllm", vllm: { engines: 2 } } })).toBeUndefined();
    expect(problem({ engine: { type: "vllm", base_url: "http://h:8000/v1" } })).toMatch(/remove engine.base_url/);
    expect(problem({ engine: { type: "vllm" }, eval: { samples_per_prompt: 1, temperature: 0, max_tokens: 8, stop: ["\n"] } })).toMatch(/stop strings/);
    expect(() => ExperimentSchema.parse({ name: "x", engine: { type: "vllm", vllm: { engines: 0 } } })).toThrow();
  });

  it("never hands a half-written checkpoint to a server (no worker_meta.json: refused before any request)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "pcot-vllm-ckpt-"));
    try {
      const half = join(dir, "step-3.tmp-123");
      mkdirSync(half);
      writeFileSync(join(half, "config.json"), "{}");
      writeFileSync(join(half, "model.safetensors"), "");
      const engine = new VllmEngine([new VllmServer({ ...o, logDir: join(dir, "logs") })], { api: "completions", maxConcurrency: 1, timeoutS: 1, retries: 0 });
      await expect(engine.syncWeights(half, "step-3")).rejects.toThrow(/is incomplete .*never loads a half-written checkpoint/);
      expect(engine.weightVersion).toBe("base"); // nothing was attempted
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("a prefix-cache reset that vLLM reports as failed is retried, and fails the sync when it keeps failing", async () => {
    // vLLM answers 200 {"success": false} while KV blocks are held: ignoring it would reuse the old weights' cache
    let failures = 2;
    let calls = 0;
    const http = createServer((req, res) => {
      calls++;
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({ success: req.url === "/reset_prefix_cache" && failures-- <= 0 }));
    });
    await new Promise<void>((r) => http.listen(0, "127.0.0.1", r));
    try {
      const server = new VllmServer(o);
      server.port = (http.address() as AddressInfo).port;
      await server.resetPrefixCache();
      expect(calls).toBe(3);
      failures = Infinity;
      await expect(server.resetPrefixCache(3)).rejects.toThrow(/success=false 3 times .*old weights' cache cannot be dropped/);
    } finally {
      http.close();
    }
  });

  it("a proposer role generates where it says, else on vLLM when the policy does; a model without an HF directory is refused", async () => {
    const cfg = (extra: object) => ExperimentSchema.parse({ name: "x", ...extra });
    const vllm = cfg({ engine: { type: "vllm" }, proposer: { enabled: true, teacher: { engine: "worker" } } });
    expect(roleEngineType(vllm, vllm.proposer.prompt_model)).toBe("vllm");
    expect(roleEngineType(vllm, vllm.proposer.teacher)).toBe("worker");
    const worker = cfg({ proposer: { enabled: true, prompt_model: { engine: "vllm", max_model_len: 512 } } });
    expect(roleEngineType(worker, worker.proposer.prompt_model)).toBe("vllm");
    expect(roleEngineType(worker, worker.proposer.teacher)).toBe("worker");
    expect(roleEngineType(cfg({ engine: { type: "vllm", base_url: "http://h:1/v1" } }), {})).toBe("worker");
    expect(() => cfg({ proposer: { teacher: { engine: "sglang" } } })).toThrow();
    const err = await roleVllmEngine(worker, "/nonexistent", () => {}, "prompt", "tiny-random-llama", worker.proposer.prompt_model, "completions").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toMatch(/the prompt runs on vLLM.*tiny-random-llama.*no HF directory.*set its engine: worker/);
  }, 600_000);
});
