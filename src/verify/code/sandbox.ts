// One sandbox: a bubblewrap process tree holding a warmed runner, used for exactly one program and
// then killed. The controller talks to the runner through pipes; each request has a watchdog, and on
// expiry (or any protocol violation) the whole tree is SIGKILLed: killing bwrap's process group kills
// the outer bwrap, whose death (--die-with-parent) kills the namespace's init, and with the init of a
// pid namespace the kernel kills everything in it — daemons and all.
import { spawn, type ChildProcess } from "node:child_process";
import { bwrapArgs, INFO_FD, RUNNER_FD, SECCOMP_FD } from "./bwrap.js";
import type { CgroupLayer, SandboxCgroup } from "./cgroup.js";
import type { ResolvedOptions } from "./options.js";
import { decodeRunResult, encodeFrame, FrameDecoder, type Frame, type RunResult } from "./protocol.js";
import type { RunnerCode } from "./runner-code.js";

/** The sandbox died or stopped following the protocol while serving a request. */
export class SandboxDied extends Error {
  constructor(
    message: string,
    readonly oomKilled: boolean,
  ) {
    super(message);
  }
}

/** The runner did not answer within the limit plus grace; the sandbox was killed. */
export class WatchdogFired extends Error {}

/** The sandbox never became ready (an environment problem, not the program's fault). */
export class SandboxStartFailed extends Error {}

const START_TIMEOUT_MS = 20_000;
const STDERR_KEEP = 4096;

type Pending = { kind: "K" | "C" | "R"; resolve: (f: Frame) => void; reject: (e: Error) => void; timer?: NodeJS.Timeout };

export class Sandbox {
  private readonly proc: ChildProcess;
  private readonly decoder: FrameDecoder;
  private pending: Pending | null = null;
  private diag = "";
  private exitedFlag = false;
  private readonly exitedPromise: Promise<void>;
  private killedByUs = false;
  /** Host pid of the sandbox's pid 1 (the runner), from --info-fd; valid until bwrap exits. */
  private initPid: number | null = null;
  private failure: Error | null = null;
  readonly ready: Promise<void>;

  constructor(
    private readonly opts: ResolvedOptions,
    runner: RunnerCode,
    private readonly cgroup: SandboxCgroup | null,
    seccomp: Buffer | null = null,
  ) {
    this.decoder = new FrameDecoder(opts.limits.stdoutBytes + 4 * STDERR_KEEP + 1024);
    const bwrap = [opts.bwrap, ...bwrapArgs(opts, runner, seccomp !== null)];
    // With a cgroup, a shell waits for one line on stdin before becoming bwrap, so the controller can
    // move it into the cgroup first: everything the sandbox ever starts is then born inside.
    const argv = cgroup ? ["/bin/sh", "-c", 'read _ && exec "$@"', "sh", ...bwrap] : bwrap;
    const asRoot = typeof process.getuid === "function" && process.getuid() === 0;
    this.proc = spawn(argv[0]!, argv.slice(1), {
      stdio: ["pipe", "pipe", "pipe", "pipe", "pipe", seccomp ? "pipe" : "ignore"], // 0-2, INFO_FD, RUNNER_FD, SECCOMP_FD
      detached: true, // own process group: one kill reaches sh/bwrap
      env: {},
      ...(asRoot ? { uid: opts.sandboxUid, gid: opts.sandboxGid } : {}),
    });
    this.exitedPromise = new Promise((resolve) => {
      this.proc.once("close", () => {
        this.exitedFlag = true;
        this.fail(new SandboxDied(this.deathMessage(), this.cgroup?.oomKilled() ?? false));
        resolve();
      });
    });
    this.proc.once("error", (e) => this.fail(new SandboxStartFailed(`cannot start ${argv[0]}: ${e.message}`)));
    this.proc.stdin!.on("error", () => {}); // EPIPE when the sandbox is gone; the close handler reports it
    this.proc.stderr!.on("data", (d: Buffer) => {
      this.diag = (this.diag + d.toString("utf8")).slice(-STDERR_KEEP);
    });
    this.proc.stdout!.on("data", (chunk: Buffer) => this.onData(chunk));
    this.readInitPid(this.proc.stdio[INFO_FD] as NodeJS.ReadableStream | null);
    const code = this.proc.stdio[RUNNER_FD] as NodeJS.WritableStream | null;
    if (code) {
      code.on("error", () => {});
      if (runner.kind === "pyc") code.end(runner.bytes);
      else code.end();
    }
    const filter = (this.proc.stdio as unknown as Array<NodeJS.WritableStream | null>)[SECCOMP_FD] ?? null;
    if (filter && seccomp) {
      filter.on("error", () => {});
      filter.end(seccomp);
    }
    if (cgroup) {
      try {
        if (this.proc.pid !== undefined) cgroup.enter(this.proc.pid);
      } catch {
        // The cgroup is the second fence; the namespaces and rlimits still hold without it.
      }
      this.proc.stdin!.write("\n");
    }
    this.ready = this.request("K", null, START_TIMEOUT_MS).then(
      () => undefined,
      (e: Error) => {
        throw e instanceof SandboxStartFailed ? e : new SandboxStartFailed(`sandbox did not start: ${e.message}`);
      },
    );
    this.ready.catch(() => {}); // observed by acquire(); avoid unhandled rejections for warm spares
  }

  /** Whether the sandbox's cgroup (if any) recorded an OOM kill. */
  oomKilled(): boolean {
    return this.cgroup?.oomKilled() ?? false;
  }

  get exited(): boolean {
    return this.exitedFlag || this.failure !== null;
  }

  /** Compile the program inside; resolves to the compiler's complaint, or null when it compiled. */
  async compile(source: string): Promise<string | null> {
    const f = await this.request("C", encodeFrame("P", Buffer.from(source, "utf8")), 30_000 + this.opts.watchdogGraceMs);
    if (f.payload.length < 1) throw this.violation("empty compile reply");
    return f.payload[0] === 0x30 ? null : f.payload.subarray(1, 4096).toString("utf8");
  }

  /** Run the compiled program once on this input. */
  async run(input: Buffer): Promise<RunResult> {
    const f = await this.request("R", encodeFrame("T", input), this.opts.limits.timeLimitMs + this.opts.watchdogGraceMs);
    try {
      return decodeRunResult(f.payload);
    } catch (e) {
      throw this.violation((e as Error).message);
    }
  }

  /**
   * End the sandbox and wait until every process of it is gone; idempotent. Graceful first when the
   * runner is idle (EOF makes it kill what is left and exit), then SIGKILL to the namespace's init:
   * with it the kernel kills the whole pid namespace, and bwrap reaps it and exits. Killing bwrap's
   * process group is the last resort (it would orphan the init to the host's pid 1).
   */
  async kill(graceful = false): Promise<void> {
    this.killedByUs = true;
    if (this.proc.pid !== undefined && !this.exitedFlag) {
      if (graceful && !this.pending && !this.failure) {
        this.proc.stdin!.end();
        await this.waitExit(1000);
      }
      if (!this.exitedFlag && this.initPid !== null) {
        signal(this.initPid);
        await this.waitExit(2000);
      }
      if (!this.exitedFlag) {
        signal(-this.proc.pid);
        await this.exitedPromise;
      }
    }
    await this.cgroup?.remove();
  }

  private waitExit(ms: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    return Promise.race([
      this.exitedPromise,
      new Promise<void>((r) => {
        timer = setTimeout(r, ms);
      }),
    ]).finally(() => clearTimeout(timer));
  }

  private readInitPid(info: NodeJS.ReadableStream | null): void {
    if (!info) return;
    let text = "";
    info.on("data", (d: Buffer) => {
      text += d.toString("utf8");
      const m = /"child-pid"\s*:\s*(\d+)/.exec(text);
      if (m && this.initPid === null) this.initPid = Number(m[1]);
    });
    info.on("error", () => {});
  }

  private request(kind: Pending["kind"], frame: Buffer | null, timeoutMs: number): Promise<Frame> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.pending) return Promise.reject(new Error("sandbox: request while another is pending"));
    return new Promise<Frame>((resolve, reject) => {
      const p: Pending = { kind, resolve, reject };
      p.timer = setTimeout(() => {
        this.fail(new WatchdogFired(`no answer from the sandbox within ${timeoutMs} ms`));
        void this.kill();
      }, timeoutMs);
      this.pending = p;
      if (frame) this.proc.stdin!.write(frame);
    });
  }

  private onData(chunk: Buffer): void {
    let frames: Frame[];
    try {
      frames = this.decoder.push(chunk);
    } catch (e) {
      this.fail(this.violation((e as Error).message));
      return;
    }
    for (const f of frames) {
      const p = this.pending;
      if (!p || p.kind !== f.kind) {
        this.fail(this.violation(`unexpected frame '${f.kind}'`));
        return;
      }
      this.pending = null;
      clearTimeout(p.timer);
      p.resolve(f);
    }
  }

  private violation(what: string): SandboxDied {
    void this.kill();
    return new SandboxDied(`protocol violation: ${what}`, false);
  }

  private fail(e: Error): void {
    if (!this.failure) this.failure = e;
    const p = this.pending;
    if (p) {
      this.pending = null;
      clearTimeout(p.timer);
      p.reject(this.failure);
    }
  }

  private deathMessage(): string {
    const code = this.proc.exitCode;
    const sig = this.proc.signalCode;
    const how = this.killedByUs ? "killed by the grader" : sig ? `terminated by ${sig}` : `exited with ${code}`;
    const diag = this.diag.trim();
    return `sandbox ${how}${diag ? `: ${diag.slice(-500)}` : ""}`;
  }
}

function signal(pid: number): void {
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    // already gone
  }
}

/** Starts sandboxes, with the optional cgroup fence. */
export class SandboxFactory {
  constructor(
    private readonly opts: ResolvedOptions,
    private readonly runner: RunnerCode,
    private readonly cgroups: CgroupLayer | null,
    private readonly seccomp: Buffer | null = null,
  ) {}

  start(): Sandbox {
    let cg: SandboxCgroup | null = null;
    if (this.cgroups) {
      try {
        const l = this.opts.limits;
        cg = this.cgroups.create(l.sandboxMemoryMb * 1024 * 1024, l.maxProcesses + 16, l.sandboxCpus);
      } catch {
        cg = null; // the rlimits still hold; the cgroup is a second fence
      }
    }
    return new Sandbox(this.opts, this.runner, cg, this.seccomp);
  }
}
