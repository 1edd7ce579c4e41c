// A pool of long-lived Python grader processes (python -m promptcot_grading.server) speaking JSON lines.
// Each request has a hard time bound enforced here: when it runs over, the process is killed (SIGKILL) and
// replaced, and the request reports a timeout. Memory is bounded in the child (RLIMIT_AS). Children die
// with this process: they are killed on close() and on exit, and the child also watches its parent.
import { type ChildProcess, spawn } from "node:child_process";
import { createInterface } from "node:readline";
import type { SymbolicQuery } from "./compare.js";
import { pythonEnv, pythonPath } from "../../cluster/python-env.js";

export interface PoolOptions {
  /** Worker processes (default 2). */
  size?: number;
  /** Wall-clock bound for one request, from dispatch to answer (default 5000 ms). */
  timeoutMs?: number;
  /** Address-space limit per worker in MiB (default 2048). */
  memoryMb?: number;
  /** Interpreter override (default: the project virtualenv, see src/cluster/python-env.ts). */
  python?: string;
  /** How long a fresh worker may take to import sympy and say "ready" (default 60 s). */
  startTimeoutMs?: number;
}

export type PoolReply =
  | { kind: "ok"; results: boolean[] }
  | { kind: "timeout"; reason: string }
  | { kind: "error"; reason: string };

interface Job {
  queries: SymbolicQuery[];
  resolve: (r: PoolReply) => void;
}

interface Worker {
  proc: ChildProcess;
  /** Imports done: can take requests. */
  ready: boolean;
  /** Idle warm-up finished (or was cut short by a request). */
  warm: boolean;
  job: Job | null;
  jobId: number;
  timer: NodeJS.Timeout | null;
  stderrTail: string;
  /** Exited, or killed and about to exit: never given another job. */
  dead: boolean;
}

/** Every child any pool started, so a process exit can take them all down. */
const LIVE = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once("exit", () => {
    for (const p of LIVE) p.kill("SIGKILL");
  });
}

/** Consecutive start failures after which the pool stops trying (a missing venv should fail fast). */
const MAX_START_FAILURES = 3;

export class SymbolicPool {
  private readonly size: number;
  private readonly timeoutMs: number;
  private readonly memoryMb: number;
  private readonly startTimeoutMs: number;
  private readonly pythonOverride: string | undefined;
  private readonly workers = new Set<Worker>();
  private readonly queue: Job[] = [];
  private nextId = 1;
  private startFailures = 0;
  private brokenReason: string | null = null;
  private closed = false;
  private readonly warmWaiters: (() => void)[] = [];
  private lastStderr = "";
  /** Counters for reports and tests. */
  readonly stats = { requests: 0, timeouts: 0, restarts: 0, errors: 0 };

  constructor(opts: PoolOptions = {}) {
    this.size = Math.max(1, opts.size ?? 2);
    this.timeoutMs = opts.timeoutMs ?? 5000;
    this.memoryMb = opts.memoryMb ?? 2048;
    this.startTimeoutMs = opts.startTimeoutMs ?? 60_000;
    this.pythonOverride = opts.python;
  }

  /**
   * Starts all workers now instead of on the first request, and resolves when each has finished its
   * warm-up (workers warm up while idle after start; a request arriving earlier cuts that short).
   */
  async warmUp(): Promise<void> {
    while (!this.closed && !this.brokenReason && this.workers.size < this.size) this.start();
    await new Promise<void>((resolve) => {
      this.warmWaiters.push(resolve);
      this.checkWarm();
    });
    if (this.brokenReason) throw new Error(`math grader workers failed to start: ${this.brokenReason}`);
    if (![...this.workers].some((w) => w.warm)) throw new Error(`math grader workers exited during start: ${this.lastStderr}`);
  }

  private checkWarm(): void {
    const settled = this.closed || this.brokenReason !== null || [...this.workers].every((w) => w.warm || w.dead);
    if (settled) for (const done of this.warmWaiters.splice(0)) done();
  }

  ask(queries: SymbolicQuery[]): Promise<PoolReply> {
    if (this.closed) return Promise.resolve({ kind: "error", reason: "grader closed" });
    if (this.brokenReason) return Promise.resolve({ kind: "error", reason: this.brokenReason });
    this.stats.requests++;
    return new Promise<PoolReply>((resolve) => {
      this.queue.push({ queries, resolve });
      this.fill();
      this.dispatch();
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    this.checkWarm();
    for (const job of this.queue.splice(0)) job.resolve({ kind: "error", reason: "grader closed" });
    const exits: Promise<void>[] = [];
    for (const w of this.workers) {
      if (w.job) w.job.resolve({ kind: "error", reason: "grader closed" });
      w.job = null;
      exits.push(this.kill(w));
    }
    await Promise.all(exits);
  }

  /** Number of live worker processes (for tests). */
  get liveWorkers(): number {
    return [...this.workers].filter((w) => !w.dead).length;
  }

  /** Process ids of live workers (for tests). */
  get pids(): number[] {
    return [...this.workers].filter((w) => !w.dead && w.proc.pid).map((w) => w.proc.pid!);
  }

  private fill(): void {
    while (!this.closed && !this.brokenReason && this.workers.size < this.size && this.queue.length > 0) this.start();
  }

  private start(): void {
    installExitHook();
    let python: string;
    try {
      python = this.pythonOverride ?? pythonPath();
    } catch (e) {
      this.fail((e as Error).message);
      return;
    }
    const proc = spawn(python, ["-m", "promptcot_grading.server", "--memory-mb", String(this.memoryMb)], {
      env: pythonEnv(),
      stdio: ["pipe", "pipe", "pipe"],
    });
    const w: Worker = { proc, ready: false, warm: false, job: null, jobId: 0, timer: null, stderrTail: "", dead: false };
    this.workers.add(w);
    LIVE.add(proc);
    const startTimer = setTimeout(() => {
      if (!w.ready) {
        w.stderrTail += "\n(start timed out)";
        void this.kill(w);
      }
    }, this.startTimeoutMs);
    startTimer.unref();
    proc.stderr!.on("data", (d: Buffer) => {
      w.stderrTail = (w.stderrTail + d.toString()).slice(-2000);
    });
    proc.stdin!.on("error", () => {}); // EPIPE after a kill is expected
    proc.on("error", (e) => {
      w.stderrTail += `\n${e.message}`;
    });
    const lines = createInterface({ input: proc.stdout! });
    lines.on("line", (line) => this.onLine(w, line, startTimer));
    proc.on("exit", (code, signal) => {
      clearTimeout(startTimer);
      this.onExit(w, code, signal);
    });
  }

  private onLine(w: Worker, line: string, startTimer: NodeJS.Timeout): void {
    let msg: { ready?: boolean; warm?: boolean; id?: number; results?: boolean[]; error?: string };
    try {
      msg = JSON.parse(line);
    } catch {
      return; // stray print from a library
    }
    if (msg.ready) {
      clearTimeout(startTimer);
      w.ready = true;
      this.startFailures = 0;
      this.dispatch();
      return;
    }
    if (msg.warm) {
      w.warm = true;
      this.checkWarm();
      return;
    }
    const job = w.job;
    if (!job || msg.id !== w.jobId) return;
    this.finishJob(w);
    // the worker exits after a memory error; do not hand it another job in the meantime
    if (msg.error === "memory limit") w.dead = true;
    if (msg.error) {
      this.stats.errors++;
      job.resolve({ kind: "error", reason: `symbolic check failed: ${msg.error}` });
    } else if (!Array.isArray(msg.results) || msg.results.length !== job.queries.length) {
      this.stats.errors++;
      job.resolve({ kind: "error", reason: "malformed reply from grader worker" });
    } else job.resolve({ kind: "ok", results: msg.results });
    this.dispatch();
  }

  private onExit(w: Worker, code: number | null, signal: NodeJS.Signals | null): void {
    w.dead = true;
    LIVE.delete(w.proc);
    this.workers.delete(w);
    this.lastStderr = w.stderrTail.trim().slice(-500);
    this.checkWarm();
    if (!w.ready && !this.closed) {
      this.startFailures++;
      if (this.startFailures >= MAX_START_FAILURES) {
        this.fail(`math grader worker could not start (exit ${code ?? signal}): ${w.stderrTail.trim().slice(-500)}`);
        return;
      }
    }
    const job = w.job;
    if (job) {
      this.finishJob(w);
      this.stats.errors++;
      const why = w.stderrTail.includes("MemoryError") || code === 3 ? "memory limit" : `exit ${code ?? signal}`;
      job.resolve({ kind: "error", reason: `grader worker died (${why})` });
    }
    if (!this.closed) {
      this.stats.restarts++;
      this.fill();
      this.dispatch();
    }
  }

  private fail(reason: string): void {
    this.brokenReason = reason;
    for (const job of this.queue.splice(0)) job.resolve({ kind: "error", reason });
    this.checkWarm();
  }

  private finishJob(w: Worker): void {
    if (w.timer) clearTimeout(w.timer);
    w.timer = null;
    w.job = null;
  }

  private dispatch(): void {
    for (const w of this.workers) {
      if (this.queue.length === 0) return;
      if (!w.ready || w.dead || w.job) continue;
      const job = this.queue.shift()!;
      w.job = job;
      w.jobId = this.nextId++;
      w.timer = setTimeout(() => this.onTimeout(w, job), this.timeoutMs);
      w.proc.stdin!.write(`${JSON.stringify({ id: w.jobId, queries: job.queries })}\n`);
    }
  }

  private onTimeout(w: Worker, job: Job): void {
    if (w.job !== job) return;
    this.finishJob(w);
    this.stats.timeouts++;
    job.resolve({ kind: "timeout", reason: `symbolic check exceeded ${this.timeoutMs} ms; worker killed` });
    void this.kill(w);
  }

  private kill(w: Worker): Promise<void> {
    if (w.proc.exitCode !== null || w.proc.signalCode !== null) return Promise.resolve();
    w.dead = true;
    return new Promise<void>((resolve) => {
      w.proc.once("exit", () => resolve());
      w.proc.kill("SIGKILL");
    });
  }
}
