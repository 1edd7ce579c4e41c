// A real Ray cluster of several nodes on this machine for tests: a head and raylets joined to it, each on
// its own loopback address (Linux answers all of 127.0.0.0/8 on lo without configuration), so traffic
// between "nodes" stays on loopback. Ray turns exactly 127.0.0.1 into the host's outward address, hence
// 127.0.0.3 for the head. Every `ray start` runs in its own process group; kill() ends those groups and any
// Ray process that left them (found by the cluster's temp dir), never with `ray stop`, which would stop
// every Ray process on the machine.
import { spawn, type ChildProcess } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import { dirname, join } from "node:path";
import { pythonPath } from "../../src/cluster/python-env.js";
import { RayJobsClient } from "../../src/cluster/ray-jobs.js";

export interface RayNode {
  ip: string;
  cpus: number;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
    srv.on("error", reject);
  });
}

export class LocalRayCluster {
  private readonly starts: ChildProcess[] = [];
  /** The Jobs REST API (the dashboard) of the head. */
  address = "";

  /** `temp`: Ray's temp dir; keep it short (socket paths), e.g. under /tmp. */
  constructor(readonly temp: string) {}

  /** Starts the head, waits for its dashboard, then joins the other nodes. On a busy machine a raylet can give
   *  up waiting for its dashboard agent (Ray: "Timed out waiting for file .../dashboard_agent_listen_port_...");
   *  then everything started is killed and the cluster is started again, up to `attempts` times. */
  async start(head: RayNode, others: RayNode[], attempts = 3): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.startOnce(head, others);
      } catch (err) {
        if (attempt === attempts) throw err;
        process.stderr.write(`[ray-cluster] the cluster did not start (attempt ${attempt}): ${String(err).slice(0, 300)}\n`);
        await this.kill();
      }
    }
  }

  private async startOnce(head: RayNode, others: RayNode[]): Promise<void> {
    const [gcs, dash, client] = [await freePort(), await freePort(), await freePort()];
    await this.ray(["--head", `--node-ip-address=${head.ip}`, `--num-cpus=${head.cpus}`, "--include-dashboard=true", `--dashboard-port=${dash}`,
      `--port=${gcs}`, `--ray-client-server-port=${client}`, `--dashboard-agent-listen-port=${await freePort()}`]);
    this.address = `http://127.0.0.1:${dash}`;
    // The head's dashboard first: while it boots, a joining raylet's agent starts too slowly on a busy machine.
    const jobs = new RayJobsClient(this.address, 5_000);
    await waitForAsync(async () => jobs.version().then(() => true, () => false), 90_000, "the Ray dashboard");
    for (const n of others) {
      await this.ray([`--address=${head.ip}:${gcs}`, `--node-ip-address=${n.ip}`, `--num-cpus=${n.cpus}`,
        `--dashboard-agent-listen-port=${await freePort()}`]);
    }
  }

  private async ray(args: string[]): Promise<void> {
    const ray = join(dirname(pythonPath()), "ray");
    // Fixed agent ports: with 0 the raylet waits for the agent to write its port to a file, and on a loaded
    // machine that wait times out ("Timed out waiting for file ...metrics_agent_port...").
    const ports = [`--dashboard-agent-grpc-port=${await freePort()}`, `--runtime-env-agent-port=${await freePort()}`, `--metrics-export-port=${await freePort()}`];
    const all = ["start", ...args, ...ports, "--num-gpus=0", `--temp-dir=${this.temp}`, "--object-store-memory=100000000", "--disable-usage-stats"];
    // Patience on a loaded machine: the raylet waits for its agents, `ray start` for the raylet to register.
    const env = { ...process.env, RAY_agent_register_timeout_ms: "180000", RAY_raylet_start_wait_time_s: "60" };
    const proc = spawn(ray, all, { detached: true, stdio: ["ignore", "pipe", "pipe"], env });
    this.starts.push(proc);
    let out = "";
    proc.stdout!.on("data", (b) => (out += b));
    proc.stderr!.on("data", (b) => (out += b));
    const code = await new Promise<number | null>((r) => proc.on("exit", r));
    if (code !== 0) throw new Error(`ray ${all.join(" ")} failed (${code}):\n${out}`);
  }

  /** Processes of this cluster that left their process group (Ray workers, actors): found by the temp dir. */
  strays(): number[] {
    return readdirSync("/proc").filter((d) => /^\d+$/.test(d)).map(Number).filter((pid) => {
      try {
        const cmd = readFileSync(`/proc/${pid}/cmdline`, "latin1") + readFileSync(`/proc/${pid}/environ`, "latin1");
        return cmd.includes(this.temp) && !/\) Z /.test(readFileSync(`/proc/${pid}/stat`, "latin1"));
      } catch {
        return false;
      }
    });
  }

  killGroups(): void {
    for (const p of this.starts) {
      for (const sig of ["SIGTERM", "SIGKILL"] as const) {
        try {
          process.kill(-p.pid!, sig);
        } catch {
          /* already gone */
        }
      }
    }
  }

  async kill(): Promise<void> {
    this.killGroups();
    this.starts.length = 0;
    await new Promise((r) => setTimeout(r, 3_000));
    for (const pid of this.strays()) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        /* already gone */
      }
    }
    await waitForAsync(async () => this.strays().length === 0, 20_000, "Ray's processes to exit");
  }
}

export async function waitForAsync(cond: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const until = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > until) throw new Error(`timed out after ${ms / 1000}s waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}
