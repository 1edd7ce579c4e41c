// A small client for Ray's Job Submission REST API, served by the dashboard on the head node (default
// port 8265). Ray has no TypeScript client (Ray Client speaks pickled Python), and the REST API is the same
// one `ray job submit` and JobSubmissionClient use: POST /api/jobs/, GET /api/jobs/{id},
// GET /api/jobs/{id}/logs, POST /api/jobs/{id}/stop, GET /api/jobs/, DELETE /api/jobs/{id}.
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";

export type JobStatus = "PENDING" | "RUNNING" | "STOPPED" | "SUCCEEDED" | "FAILED";
const TERMINAL: ReadonlySet<JobStatus> = new Set(["STOPPED", "SUCCEEDED", "FAILED"]);

export function isTerminal(s: JobStatus): boolean {
  return TERMINAL.has(s);
}

export interface SubmitRequest {
  /** The shell command the job runs (on the head node unless entrypoint resources say otherwise). */
  entrypoint: string;
  submission_id?: string;
  /** Ray's runtime_env: env_vars, working_dir, py_modules, pip, ... */
  runtime_env?: Record<string, unknown>;
  metadata?: Record<string, string>;
  entrypoint_num_cpus?: number;
  entrypoint_num_gpus?: number;
  entrypoint_memory?: number;
  entrypoint_resources?: Record<string, number>;
}

/** The fields of Ray's JobDetails this project reads (the server sends more). */
export interface JobDetails {
  submission_id: string | null;
  job_id: string | null;
  status: JobStatus;
  entrypoint: string;
  message: string | null;
  error_type?: string | null;
  start_time?: number | null;
  end_time?: number | null;
  metadata?: Record<string, string> | null;
}

export class RayJobsError extends Error {
  constructor(message: string, readonly status?: number) {
    super(message);
    this.name = "RayJobsError";
  }
}

export class RayJobsClient {
  readonly base: string;

  /** `address`: the dashboard's URL, e.g. http://127.0.0.1:8265 (cluster.address). */
  constructor(address: string, private readonly timeoutMs = 30_000) {
    this.base = address.replace(/\/+$/, "");
  }

  /** The Jobs API and Ray versions; a cheap reachability check. */
  version(): Promise<{ version: string; ray_version: string }> {
    return this.call("GET", "/api/version");
  }

  async submit(req: SubmitRequest): Promise<string> {
    const body = Object.fromEntries(Object.entries(req).filter(([, v]) => v !== undefined));
    const r = await this.call<{ submission_id: string }>("POST", "/api/jobs/", body);
    return r.submission_id;
  }

  status(id: string): Promise<JobDetails> {
    return this.call("GET", `/api/jobs/${encodeURIComponent(id)}`);
  }

  async logs(id: string): Promise<string> {
    return (await this.call<{ logs: string }>("GET", `/api/jobs/${encodeURIComponent(id)}/logs`)).logs;
  }

  /** True when the job was running and is now being stopped; false when it had already ended. */
  async stop(id: string): Promise<boolean> {
    return (await this.call<{ stopped: boolean }>("POST", `/api/jobs/${encodeURIComponent(id)}/stop`)).stopped;
  }

  list(): Promise<JobDetails[]> {
    return this.call("GET", "/api/jobs/");
  }

  /** Removes a finished job's record and logs from the head. */
  async delete(id: string): Promise<boolean> {
    return (await this.call<{ deleted: boolean }>("DELETE", `/api/jobs/${encodeURIComponent(id)}`)).deleted;
  }

  /** Polls until the job reaches a terminal status or `timeoutMs` passes (then returns the last status). */
  async waitTerminal(id: string, timeoutMs: number, pollMs = 500): Promise<JobDetails> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const d = await this.status(id);
      if (isTerminal(d.status) || Date.now() >= until) return d;
      await new Promise((r) => setTimeout(r, pollMs));
    }
  }

  private async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const url = `${this.base}${path}`;
    let res: { status: number; text: string };
    try {
      res = await request(method, url, body === undefined ? undefined : JSON.stringify(body), this.timeoutMs);
    } catch (err) {
      throw new RayJobsError(unreachable(method, url, err));
    }
    if (res.status < 200 || res.status >= 300) {
      throw new RayJobsError(`Ray Jobs API ${method} ${url} answered ${res.status}: ${res.text.trim().slice(0, 2000)}`, res.status);
    }
    try {
      return JSON.parse(res.text) as T;
    } catch {
      throw new RayJobsError(`Ray Jobs API ${method} ${url} sent something that is not JSON (is ${this.base} Ray's dashboard?): ${res.text.slice(0, 200)}`);
    }
  }
}

// node:http, not fetch: fetch always sends Sec-Fetch-Mode, and Ray's dashboard refuses POSTs carrying
// Sec-Fetch-* headers as browser traffic (405).
function request(method: string, url: string, body: string | undefined, timeoutMs: number): Promise<{ status: number; text: string }> {
  const u = new URL(url);
  const send = u.protocol === "https:" ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = send(u, { method, headers: body === undefined ? {} : { "content-type": "application/json", "content-length": Buffer.byteLength(body) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString("utf8") }));
      res.on("error", reject);
    });
    req.setTimeout(timeoutMs, () => req.destroy(Object.assign(new Error(`no answer within ${timeoutMs / 1000}s`), { code: "ETIMEDOUT" })));
    req.on("error", reject);
    req.end(body);
  });
}

function unreachable(method: string, url: string, err: unknown): string {
  const why = (err as { code?: string }).code ?? (err as Error).message;
  return (
    `cannot reach the Ray Jobs API at ${url} (${method}: ${why}). ` +
    "Is a Ray head running with its dashboard? Start one with `ray start --head --include-dashboard=true " +
    "--dashboard-port=8265` (needs ray[default]), or set cluster.address to the dashboard's http://HOST:PORT."
  );
}
