// Limits and knobs of the code grader, with the defaults used when a caller leaves them out.
import os from "node:os";

export type FloatCompare =
  /** An expected integer needs an equal integer token; an expected decimal matches within |a-b| <= tol or tol*|b|. */
  | "tolerance"
  /** LiveCodeBench: a line matches when equal as text or when all its tokens are equal as Decimals. */
  | "decimal";

export interface CompareOptions {
  float: FloatCompare;
  /** Absolute-or-relative tolerance for mode "tolerance". */
  tolerance: number;
}

export interface SandboxLimits {
  /** Wall-clock limit per test (like LiveCodeBench's per-test timeout). RLIMIT_CPU is set just above it. */
  timeLimitMs: number;
  /** RLIMIT_AS per process, in MiB. */
  memoryMb: number;
  /** Processes + threads the program may create (RLIMIT_NPROC within the sandbox's user namespace). */
  maxProcesses: number;
  /** RLIMIT_FSIZE, in MiB. */
  maxFileMb: number;
  /** RLIMIT_NOFILE. */
  maxOpenFiles: number;
  /** Size of the sandbox's only writable place, a private tmpfs at /tmp, in MiB. */
  tmpfsMb: number;
  /** Stdout beyond this many bytes ends the test as OLE. */
  stdoutBytes: number;
  /** Stderr beyond this many bytes ends the test as OLE (only its tail is kept). */
  stderrBytes: number;
  /** Total memory of one sandbox (all its processes, tmpfs and kernel objects) when a cgroup can be used, in MiB. */
  sandboxMemoryMb: number;
  /** CPU cores one sandbox may use at most when a cgroup can be used (CFS quota). */
  sandboxCpus: number;
}

export interface CodeGraderOptions {
  /** Sandboxes running at once. Default: available CPU cores. */
  concurrency?: number;
  limits?: Partial<SandboxLimits>;
  compare?: Partial<CompareOptions>;
  /** Interpreter inside the sandbox; must live under /usr (the only system tree mounted). */
  python?: string;
  bwrap?: string;
  /** Host uid/gid the sandbox runs as when the controller is root (unprivileged otherwise). */
  sandboxUid?: number;
  sandboxGid?: number;
  /** Refuse kernel doors a program never needs (ptrace, bpf, io_uring, mount, keyctl, ...). Default true (x86_64 only). */
  seccomp?: boolean;
  /** "auto": also confine each sandbox in a cgroup (v1 or v2) when running as root; "off": rlimits only. */
  cgroup?: "auto" | "off";
  /** Programs longer than this (bytes of UTF-8) are not run (verdict RE). */
  maxProgramBytes?: number;
  /** A test whose input is longer than this (bytes) makes the row an error. */
  maxInputBytes?: number;
  /** Extra time the controller waits past the per-test limit before killing the whole sandbox. */
  watchdogGraceMs?: number;
  /** Keep this many sandboxes started ahead of demand (default: concurrency). */
  warm?: number;
}

export interface ResolvedOptions {
  concurrency: number;
  limits: SandboxLimits;
  compare: CompareOptions;
  python: string;
  bwrap: string;
  sandboxUid: number;
  sandboxGid: number;
  cgroup: "auto" | "off";
  seccomp: boolean;
  maxProgramBytes: number;
  maxInputBytes: number;
  watchdogGraceMs: number;
  warm: number;
}

export const DEFAULT_LIMITS: SandboxLimits = {
  timeLimitMs: 6000,
  memoryMb: 1024,
  maxProcesses: 16,
  maxFileMb: 16,
  maxOpenFiles: 64,
  tmpfsMb: 64,
  stdoutBytes: 8 << 20,
  stderrBytes: 1 << 20,
  sandboxMemoryMb: 2048,
  sandboxCpus: 1,
};

export const DEFAULT_COMPARE: CompareOptions = { float: "tolerance", tolerance: 1e-6 };

export function resolveOptions(o: CodeGraderOptions = {}): ResolvedOptions {
  const concurrency = Math.max(1, Math.floor(o.concurrency ?? os.availableParallelism()));
  const limits = { ...DEFAULT_LIMITS, ...definedOnly(o.limits ?? {}) };
  for (const [k, v] of Object.entries(limits)) {
    if (!Number.isFinite(v) || v <= 0) throw new Error(`code grader: limit ${k} must be a positive number (got ${v})`);
  }
  const compare = { ...DEFAULT_COMPARE, ...definedOnly(o.compare ?? {}) };
  if (compare.float !== "tolerance" && compare.float !== "decimal") {
    throw new Error(`code grader: compare.float must be "tolerance" or "decimal"`);
  }
  if (!(compare.tolerance >= 0)) throw new Error("code grader: compare.tolerance must be >= 0");
  return {
    concurrency,
    limits,
    compare,
    python: o.python ?? "/usr/bin/python3",
    bwrap: o.bwrap ?? "/usr/bin/bwrap",
    sandboxUid: o.sandboxUid ?? 65534,
    sandboxGid: o.sandboxGid ?? 65534,
    cgroup: o.cgroup ?? "auto",
    seccomp: o.seccomp ?? true,
    maxProgramBytes: o.maxProgramBytes ?? 1 << 20,
    maxInputBytes: o.maxInputBytes ?? 64 << 20,
    watchdogGraceMs: o.watchdogGraceMs ?? 3000,
    warm: Math.max(0, Math.floor(o.warm ?? concurrency)),
  };
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
