// What every server the controller manages needs (llama-server, vLLM): a free loopback port, a child that dies
// with the controller, a health wait that notices an early exit, and a stop that escalates to SIGKILL.
import { type ChildProcess, spawn, type SpawnOptions } from "node:child_process";
import { existsSync } from "node:fs";
import { createServer } from "node:net";

const live = new Set<ChildProcess>();
process.once("exit", () => {
  for (const p of live) killTree(p, "SIGKILL");
});

export async function freePort(host = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, host, () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

// The "exit" hook above misses a controller killed by a signal; PDEATHSIG (util-linux setpriv, where
// present) makes the kernel kill the server when its parent dies, as the workers arrange for themselves.
const SETPRIV = ["/usr/bin/setpriv", "/bin/setpriv"].find((p) => existsSync(p));
export function withParentDeath(cmd: string, args: string[], signal = "KILL"): [string, string[]] {
  return SETPRIV ? [SETPRIV, ["--pdeathsig", signal, "--", cmd, ...args]] : [cmd, args];
}

// PDEATHSIG reaches only the process it is set on, and is cleared in its forks: a server's own helpers (vLLM's
// engine core, multiprocessing's resource tracker) would outlive a SIGKILLed controller. This shell leads the
// group, runs the server, and on the controller's death (TERM by PDEATHSIG) or the server's exit kills the group.
const GROUP_REAPER = `"$@" & trap 'kill -KILL -- -$$' TERM INT HUP; wait $!; s=$?; kill -KILL -- -$$; exit $s`;

/**
 * Spawns a server process. With `group`, in its own process group under a reaper shell, so every process the
 * server forks dies with it: on stop, on the server's exit and on the controller's death.
 */
export function spawnServer(cmd: string, args: string[], opts: SpawnOptions & { group?: boolean }): ChildProcess {
  const [c, a] = opts.group ? withParentDeath("bash", ["-c", GROUP_REAPER, "promptcot-reaper", cmd, ...args], "TERM") : withParentDeath(cmd, args);
  const proc = spawn(c, a, { ...opts, detached: opts.group ?? false });
  if (opts.group) leaders.add(proc);
  live.add(proc);
  proc.once("exit", () => live.delete(proc));
  return proc;
}

export function exited(proc: ChildProcess): boolean {
  return proc.exitCode !== null || proc.signalCode !== null;
}

// Processes spawned with `group: true` lead their own process group: stop and the exit hook signal the group.
const leaders = new WeakSet<ChildProcess>();

function killTree(proc: ChildProcess, signal: NodeJS.Signals): void {
  if (leaders.has(proc) && proc.pid) {
    try {
      process.kill(-proc.pid, signal);
      return;
    } catch {
      // the group is gone already
    }
  }
  if (!exited(proc)) proc.kill(signal);
}

/** Polls `url` until it answers 2xx; fails at once if the process exits, or after `timeoutS`. */
async function waitHealthy(proc: ChildProcess, url: string, timeoutS: number, where: string, headers: Record<string, string> = {}): Promise<void> {
  const deadline = Date.now() + timeoutS * 1000;
  while (Date.now() < deadline) {
    if (exited(proc)) throw new Error(`${where} exited (${proc.exitCode ?? proc.signalCode}) before it was healthy`);
    try {
      const res = await fetch(url, { headers, signal: AbortSignal.timeout(2000) });
      if (res.ok) return; // llama-server answers 503 while the model loads
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`${where} not healthy within ${timeoutS} s`);
}

/** Waits for the server's health route; on failure stops it (`stop`) and rethrows, so a failed start leaves nothing running. */
export async function healthyOrStopped(proc: ChildProcess, url: string, timeoutS: number, where: string, stop: () => Promise<void>, headers: Record<string, string> = {}): Promise<void> {
  try {
    await waitHealthy(proc, url, timeoutS, where, headers);
  } catch (e) {
    await stop();
    throw e;
  }
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves when the process has exited. Safe on an exited process. */
export async function stopProcess(proc: ChildProcess | undefined, graceMs = 5000): Promise<void> {
  if (!proc || exited(proc)) {
    if (proc && leaders.has(proc)) killTree(proc, "SIGKILL"); // the leader is gone; its helpers may not be
    return;
  }
  const done = new Promise<void>((r) => proc.once("exit", () => r()));
  killTree(proc, "SIGTERM");
  const timer = setTimeout(() => killTree(proc, "SIGKILL"), graceMs);
  await done;
  clearTimeout(timer);
  if (leaders.has(proc)) killTree(proc, "SIGKILL");
}
