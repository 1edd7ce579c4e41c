// The Ray backend against a real local Ray head (ray[default] from the venv): the Jobs REST client, and the
// quickstart (small) running on Ray actors, with an actor and then the controller killed mid-run. One head for the whole file,
// CPU-only, in its own temp dir and process group; it is killed by that group on every exit path (not with
// `ray stop`, which would stop every Ray process on the machine).
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pythonPath } from "../src/cluster/python-env.js";
import { RayJobsClient, RayJobsError } from "../src/cluster/ray-jobs.js";
import { countUnits, events, processesOfRun, startRun, units, waitFor } from "./helpers/run-harness.js";

// under /tmp itself, not the per-file test temp root (test/helpers/temp-root.ts): Ray's socket paths must stay
// short (AF_UNIX allows 107 bytes); afterAll removes it
const root = mkdtempSync("/tmp/pcot-ray-");
const rayTemp = join(root, "ray"); // Ray's socket paths must stay short: keep this under /tmp
let head: { proc: ChildProcess; address: string } | undefined;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
    srv.on("error", reject);
  });
}

async function startHead(): Promise<{ proc: ChildProcess; address: string }> {
  const [gcs, dash, client, agent] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const ray = join(dirname(pythonPath()), "ray");
  const args = ["start", "--head", "--num-cpus=2", "--num-gpus=0", "--include-dashboard=true", `--dashboard-port=${dash}`,
    `--port=${gcs}`, `--ray-client-server-port=${client}`, `--dashboard-agent-listen-port=${agent}`, `--temp-dir=${rayTemp}`,
    "--object-store-memory=100000000", "--disable-usage-stats"];
  // detached: its own process group, which Ray's daemons keep, so the whole head is killed by that id
  const proc = spawn(ray, args, { detached: true, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  proc.stdout!.on("data", (b) => (out += b));
  proc.stderr!.on("data", (b) => (out += b));
  const code = await new Promise<number | null>((r) => proc.on("exit", r));
  if (code !== 0) throw new Error(`ray start failed (${code}):\n${out}`);
  const address = `http://127.0.0.1:${dash}`;
  const client_ = new RayJobsClient(address, 5_000);
  await waitForAsync(async () => client_.version().then(() => true, () => false), 90_000, "the Ray dashboard");
  return { proc, address };
}

function killHead(): void {
  const pgid = head?.proc.pid;
  if (!pgid) return;
  for (const sig of ["SIGTERM", "SIGKILL"] as const) {
    try {
      process.kill(-pgid, sig);
    } catch {
      /* already gone */
    }
  }
}

/** Processes of this head that left its process group (Ray workers and actors): found by its temp dir. */
function strays(): number[] {
  return readdirSync("/proc").filter((d) => /^\d+$/.test(d)).map(Number).filter((pid) => {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, "latin1") + readFileSync(`/proc/${pid}/environ`, "latin1");
      return cmd.includes(rayTemp) && !/\) Z /.test(readFileSync(`/proc/${pid}/stat`, "latin1"));
    } catch {
      return false;
    }
  });
}

async function waitForAsync(cond: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const until = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > until) throw new Error(`timed out after ${ms / 1000}s waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

process.on("exit", killHead); // a crashed test run leaves no head behind

beforeAll(async () => {
  head = await startHead();
}, 180_000);

afterAll(async () => {
  killHead();
  await new Promise((r) => setTimeout(r, 3_000));
  for (const pid of strays()) process.kill(pid, "SIGKILL");
  await waitForAsync(async () => strays().length === 0, 20_000, "Ray's processes to exit");
  rmSync(root, { recursive: true, force: true });
}, 60_000);

describe("Ray Jobs REST client", () => {
  it("an unreachable head is reported with the URL and how to start one", async () => {
    const port = await freePort();
    const err = await new RayJobsClient(`http://127.0.0.1:${port}`).version().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RayJobsError);
    expect((err as Error).message).toMatch(new RegExp(`cannot reach the Ray Jobs API at http://127\\.0\\.0\\.1:${port}/api/version \\(GET: ECONNREFUSED\\)`));
    expect((err as Error).message).toContain("ray start --head --include-dashboard=true");
    expect((err as Error).message).toContain("cluster.address");
  });

  it("submits with entrypoint resources, runtime_env and metadata; status, logs, list, stop, delete", async () => {
    const c = new RayJobsClient(head!.address);
    const py = pythonPath();
    const id = await c.submit({
      entrypoint: `${py} -c "import os, time; print('hello', os.environ['PCOT_GREETING'], flush=True); time.sleep(120)"`,
      submission_id: `pcot-test-${Date.now()}`,
      runtime_env: { env_vars: { PCOT_GREETING: "from-runtime-env" } },
      metadata: { owner: "cluster-ray.test" },
      entrypoint_num_cpus: 0.5,
      entrypoint_resources: {},
    });
    expect(id).toMatch(/^pcot-test-/);
    await waitForAsync(async () => (await c.logs(id)).includes("hello from-runtime-env"), 120_000, "the job's output");
    const d = await c.status(id);
    expect(d.status).toBe("RUNNING");
    expect(d.metadata).toEqual({ owner: "cluster-ray.test" });
    expect((await c.list()).map((j) => j.submission_id)).toContain(id);
    expect(await c.stop(id)).toBe(true);
    expect((await c.waitTerminal(id, 60_000)).status).toBe("STOPPED");
    expect(await c.delete(id)).toBe(true);
    const gone = await c.status(id).catch((e: unknown) => e);
    expect((gone as RayJobsError).status).toBe(404);
  }, 180_000);

  it("a run pointed at a head that is not there fails before starting workers, naming the address", async () => {
    const port = await freePort();
    const r = await startRun(["experiments/quickstart.yaml", "--run-dir", join(root, "no-head"), "--set", "cluster.type=ray",
      "--set", `cluster.address=http://127.0.0.1:${port}`]).done;
    expect(r.code).not.toBe(0);
    expect(r.out).toContain(`cannot reach the Ray Jobs API at http://127.0.0.1:${port}/api/jobs/`);
  }, 120_000);
});

describe("quickstart on the Ray backend", () => {
  it("an actor killed mid-run is restarted; a killed controller's workers stop; the rerun resumes on Ray and completes", async () => {
    const dir = join(root, "quickstart");
    const args = ["experiments/quickstart.yaml", "--run-dir", dir, "--set", "iterations=1", "--set", "data.train_size=4",
      "--set", "data.heldout_size=2", "--set", "eval.samples_per_prompt=2", "--set", "rollout.max_tokens=16", "--set", "eval.max_tokens=16", "--set", "workers.count=2",
      "--set", "workers.threads=1", "--set", "rollout.prompts_per_request=1", "--set", "eval.prompts_per_request=1", "--set", "cluster.type=ray", "--set", `cluster.address=${head!.address}`,
      "--set", "cluster.ray.controller_timeout_s=8", "--set", "engine.type=worker"]; // the Ray workers generate
    const jobDirs = () => readdirSync(join(dir, "ray")).filter((d) => d.startsWith("promptcot-")).sort();
    const registration = (job: string, id: string): Record<string, unknown> | undefined => {
      try {
        return JSON.parse(readFileSync(join(dir, "ray", job, "workers", `${id}.json`), "utf8")) as Record<string, unknown>;
      } catch {
        return undefined; // not yet published
      }
    };
    const first = startRun(args);
    // Killed once the workers serve (the first held-out samples are in): the rollout that follows needs
    // worker-1 again (one prompt per request spreads every stage over both workers), so its loss is always
    // noticed, however fast this machine is.
    await waitFor(() => countUnits(dir, "eval") >= 1 && registration(jobDirs()[0]!, "worker-1")?.state === "running", 600_000, "workers serving on Ray");
    const job1 = jobDirs()[0]!;
    const before = registration(job1, "worker-1")!;
    process.kill(before.actor_pid as number, "SIGKILL"); // the actor, not just its server: a lost actor
    await waitFor(() => registration(job1, "worker-1")?.generation === 1 && registration(job1, "worker-1")?.state === "running", 300_000, "the restarted actor");
    const restarted = registration(job1, "worker-1")!;
    expect(restarted.actor_pid).not.toBe(before.actor_pid);
    expect(first.child.exitCode).toBeNull(); // the run was still going
    first.child.kill("SIGKILL"); // the controller: no chance to stop its Ray job
    await first.done;
    const client = new RayJobsClient(head!.address);
    const jobStatus = async (id: string) => (await client.status(id)).status;
    await waitForAsync(async () => (await jobStatus(job1)) === "FAILED", 120_000, "the orphaned launcher job to stop itself");
    expect(await client.logs(job1)).toContain("the controller fell silent");
    await waitFor(() => processesOfRun(dir).length === 0, 30_000, "the orphaned actors and workers to exit");

    const second = await startRun(args).done;
    expect(second.code, second.out).toBe(0);
    expect(second.out).toContain("resuming run");
    expect(events(dir, "worker_restart")).toBeGreaterThanOrEqual(1);
    expect(units(dir, "rollout").size).toBe(4 * 4);
    expect(readFileSync(join(dir, "report.md"), "utf8")).toContain("after it 1");
    const jobs = jobDirs();
    expect(jobs).toHaveLength(2);
    expect(await jobStatus(jobs[1]!)).toBe("SUCCEEDED");
    await waitFor(() => processesOfRun(dir).length === 0, 30_000, "the run's launcher, actors and workers to exit");
  }, 900_000);
});
