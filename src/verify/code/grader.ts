// The code grader: extract the program, run it test by test in its own sandbox, judge outside,
// stop at the first failing test. Verdict "error" means the grader could not judge (bad input, sandbox
// unavailable) — never the program's fault; everything the program does maps to a non-AC verdict.
import { answerRegion } from "../think.js";
import type { CodeGrader, CodeTest, CodeVerdict, GradeContext } from "../types.js";
import { CgroupLayer } from "./cgroup.js";
import { extractCode } from "./extract.js";
import { judgeRun } from "./judge.js";
import { resolveOptions, type CodeGraderOptions, type ResolvedOptions } from "./options.js";
import { SandboxPool } from "./pool.js";
import { loadRunnerCode } from "./runner-code.js";
import { seccompFilter } from "./seccomp.js";
import { SandboxDied, SandboxFactory, SandboxStartFailed, WatchdogFired, type Sandbox } from "./sandbox.js";

const STDERR_TAIL = 1000;

export interface CodeGraderHandle extends CodeGrader {
  readonly options: ResolvedOptions;
  /** Why the cgroup fence is off ("" when it is on). */
  readonly cgroupStatus: string;
}

export function createCodeGrader(opts: CodeGraderOptions = {}): CodeGraderHandle {
  const o = resolveOptions(opts);
  const runner = loadRunnerCode(o.python);
  const cg = o.cgroup === "auto" ? CgroupLayer.detect() : { layer: null, why: "off" };
  const pool = new SandboxPool(o, new SandboxFactory(o, runner, cg.layer, o.seccomp ? seccompFilter() : null));
  let closed = false;

  return {
    options: o,
    cgroupStatus: cg.why,
    async grade(program, tests, context = {}) {
      if (closed) return fail("error", null, "code grader is closed");
      const problem = checkTests(tests, o);
      if (problem) return fail("error", null, problem);
      const code = pickProgram(program, context);
      if (code === undefined) return fail("error", null, "neither `code` nor `completion` is a string");
      if (typeof code === "object") return fail("no_code", null, code.reason);
      if (Buffer.byteLength(code, "utf8") > o.maxProgramBytes) {
        return fail("RE", 0, `program longer than ${o.maxProgramBytes} bytes`);
      }
      let sb: Sandbox;
      try {
        sb = await pool.acquire();
      } catch (e) {
        return fail("error", null, (e as Error).message);
      }
      try {
        return await runAll(sb, code, tests, o);
      } finally {
        pool.release(sb);
      }
    },
    async close() {
      closed = true;
      await pool.close();
    },
  };
}

async function runAll(sb: Sandbox, code: string, tests: CodeTest[], o: ResolvedOptions): Promise<CodeVerdict> {
  let current = 0;
  try {
    const compileError = await sb.compile(code);
    if (compileError !== null) return { verdict: "RE", failed_test: 0, stderr: tail(compileError), reason: "does not compile" };
    for (; current < tests.length; current++) {
      const t = tests[current]!;
      const r = await sb.run(Buffer.from(t.input, "utf8"));
      const j = judgeRun(r, t.output, o.compare, sb.oomKilled());
      if (j.verdict !== "AC") {
        return { verdict: j.verdict, failed_test: current, stderr: tail(r.stderrTail.toString("utf8")), reason: j.reason };
      }
    }
    return { verdict: "AC", failed_test: null, stderr: "" };
  } catch (e) {
    if (e instanceof WatchdogFired) return fail("TLE", current, e.message);
    if (e instanceof SandboxStartFailed) return fail("error", null, e.message);
    if (e instanceof SandboxDied) {
      // The program brought its own sandbox down (kill(-1), killed its runner, blew the cgroup limit).
      return fail(e.oomKilled || sb.oomKilled() ? "MLE" : "RE", current, e.message);
    }
    return fail("error", null, `grader failure: ${(e as Error).message}`);
  }
}

/** The program to run: `code` as given, else extracted from `completion`; undefined when neither is a string. */
function pickProgram(p: { completion?: unknown; code?: unknown }, context: GradeContext): string | { reason: string } | undefined {
  if (typeof p.code === "string") return p.code.trim() === "" ? { reason: "blank program" } : p.code;
  if (typeof p.completion !== "string") return undefined;
  const region = answerRegion(p.completion, context);
  if (region.text === null) return { reason: region.reason };
  return extractCode(region.text) ?? { reason: "no fenced code block in the answer" };
}

/** Why these tests cannot be used, or null when they can. */
export function checkTests(tests: unknown, o: Pick<ResolvedOptions, "maxInputBytes">): string | null {
  if (!Array.isArray(tests)) return "`tests` must be an array of {input, output}";
  if (tests.length === 0) return "`tests` is empty";
  for (let i = 0; i < tests.length; i++) {
    const t = tests[i] as { input?: unknown; output?: unknown } | null;
    if (t === null || typeof t !== "object" || Array.isArray(t)) return `tests[${i}] is not an object`;
    if (typeof t.input !== "string") return `tests[${i}].input must be a string`;
    if (typeof t.output !== "string") return `tests[${i}].output must be a string`;
    if (Buffer.byteLength(t.input, "utf8") > o.maxInputBytes) return `tests[${i}].input is longer than ${o.maxInputBytes} bytes`;
  }
  return null;
}

function fail(verdict: CodeVerdict["verdict"], failed: number | null, reason: string): CodeVerdict {
  return { verdict, failed_test: failed, stderr: "", reason };
}

function tail(s: string): string {
  return s.length > STDERR_TAIL ? s.slice(-STDERR_TAIL) : s;
}
