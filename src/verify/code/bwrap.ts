// The bubblewrap command line of one sandbox. Why each flag:
//   new user, pid, net, ipc, uts (and cgroup when possible) namespaces; --disable-userns so nothing inside
//   can make a nested user namespace (and with it regain capabilities); --cap-drop ALL; --uid/--gid 65534;
//   --die-with-parent + --new-session: the sandbox dies with the controller and cannot reach its tty;
//   --seccomp: a deny-list of kernel doors a program never needs (see seccomp.ts).
//   The file system is an empty root with /usr read-only (plus the merged-/usr links), a fresh /proc for
//   the new pid namespace, a minimal /dev, and a size-capped private tmpfs at /tmp — the only writable
//   place, since / and /dev are remounted read-only last. No /etc, /home, /work, /run: expected
//   outputs and test files are simply not there. The environment is cleared and rebuilt.
import fs from "node:fs";
import type { ResolvedOptions } from "./options.js";
import type { RunnerCode } from "./runner-code.js";

/** The fd (in bwrap) on which the runner's bytecode arrives when it is passed as a .pyc. */
export const RUNNER_FD = 4;
/** The fd on which bwrap reports the namespace init's host pid. */
export const INFO_FD = 3;
/** The fd on which bwrap reads the seccomp filter. */
export const SECCOMP_FD = 5;

/** Top-level paths that merged-/usr systems make symlinks into /usr (bound read-only when real dirs). */
const SYSTEM_LINKS = ["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"];

export function bwrapArgs(o: ResolvedOptions, runner: RunnerCode, seccomp: boolean): string[] {
  const mib = 1024 * 1024;
  const args = [
    "--unshare-user",
    "--unshare-pid",
    "--unshare-net",
    "--unshare-ipc",
    "--unshare-uts",
    "--unshare-cgroup-try",
    "--disable-userns",
    "--die-with-parent",
    "--new-session",
    // The runner itself is the namespace's pid 1: the program cannot signal it (a namespace init only
    // gets signals it handles), orphans are reparented to it, and when it exits the kernel kills the rest.
    "--as-pid-1",
    "--uid",
    String(o.sandboxUid),
    "--gid",
    String(o.sandboxGid),
    "--cap-drop",
    "ALL",
    "--hostname",
    "sandbox",
    "--clearenv",
    "--setenv",
    "PATH",
    "/usr/bin:/bin",
    "--setenv",
    "HOME",
    "/tmp",
    "--setenv",
    "LANG",
    "C.UTF-8",
    "--ro-bind",
    "/usr",
    "/usr",
    ...systemLinks(),
    "--proc",
    "/proc",
    "--dev",
    "/dev",
    "--remount-ro",
    "/dev",
    ...(runner.kind === "pyc" ? ["--ro-bind-data", String(RUNNER_FD), "/runner.pyc"] : []),
    "--size",
    String(o.limits.tmpfsMb * mib),
    "--tmpfs",
    "/tmp",
    "--remount-ro",
    "/",
    "--chdir",
    "/tmp",
    // bwrap reports the host pid of the namespace's init (the runner) here, so the controller can kill
    // it — bwrap reaps it and exits — rather than orphan it by killing bwrap first.
    "--info-fd",
    String(INFO_FD),
    ...(seccomp ? ["--seccomp", String(SECCOMP_FD)] : []),
    "--",
    o.python,
    "-I",
    "-S",
    "-B",
    ...(runner.kind === "pyc" ? ["/runner.pyc"] : ["-c", runner.text]),
    runnerLimits(o),
  ];
  return args;
}

/** The limits the runner applies inside, as "k=v,…" (argv is visible to the program; nothing secret here). */
export function runnerLimits(o: ResolvedOptions): string {
  const l = o.limits;
  const mib = 1024 * 1024;
  return [
    `time_ms=${Math.ceil(l.timeLimitMs)}`,
    `as_bytes=${Math.floor(l.memoryMb * mib)}`,
    `nproc=${Math.floor(l.maxProcesses)}`,
    `fsize=${Math.floor(l.maxFileMb * mib)}`,
    `nofile=${Math.floor(l.maxOpenFiles)}`,
    `stdout_cap=${Math.floor(l.stdoutBytes)}`,
    `stderr_cap=${Math.floor(l.stderrBytes)}`,
    `stderr_keep=4096`,
  ].join(",");
}

let cachedLinks: string[] | null = null;

function systemLinks(): string[] {
  if (cachedLinks) return cachedLinks;
  const out: string[] = [];
  for (const p of SYSTEM_LINKS) {
    let st: fs.Stats;
    try {
      st = fs.lstatSync(p);
    } catch {
      continue;
    }
    if (st.isSymbolicLink()) out.push("--symlink", fs.readlinkSync(p), p);
    else if (st.isDirectory()) out.push("--ro-bind", p, p);
  }
  cachedLinks = out;
  return out;
}
