// The symbolic path's process pool: hard time and memory bounds, kill-and-replace, no orphans.
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { createMathGrader } from "../src/verify/math/index.js";

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitGone(pids: number[], ms = 5000): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (pids.every((p) => !alive(p))) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}

describe("math grader worker pool", () => {
  it("turns an overrun into a timeout verdict, kills the worker and replaces it", async () => {
    const g = createMathGrader({ timeoutMs: 1500, poolSize: 1 });
    try {
      expect((await g.grade("\\boxed{\\sec^2 y}", "\\tan^2 y + 1")).verdict).toBe("correct"); // starts the worker
      const [before] = g.pool.pids;
      const t = Date.now();
      const v = await g.grade("\\boxed{10^{10^{10}}}", "1");
      expect(v.verdict).toBe("timeout");
      expect(v.extracted).toBe("10^{10^{10}}");
      expect(Date.now() - t).toBeLessThan(4000);
      expect(await waitGone([before!])).toBe(true);
      // the next symbolic check gets a fresh worker and a real answer
      expect((await g.grade("\\boxed{\\sec^2 y}", "\\tan^2 y + 1")).verdict).toBe("correct");
      expect(g.pool.pids[0]).not.toBe(before);
      expect(g.pool.stats.timeouts).toBe(1);
    } finally {
      await g.close();
    }
  });

  it("bounds worker memory: an exhausting check is an error, and the worker is replaced", async () => {
    const g = createMathGrader({ memoryMb: 300, poolSize: 1, timeoutMs: 20_000 });
    try {
      const v = await g.grade("\\boxed{2^{2^{31}}+1}", "1");
      expect(v.verdict).toBe("error");
      expect(v.reason).toMatch(/memory/);
      expect((await g.grade("\\boxed{\\sec^2 y}", "\\tan^2 y + 1")).verdict).toBe("correct");
    } finally {
      await g.close();
    }
  });

  it("keeps answering fast-path checks while a symbolic check runs, and close() is idempotent", async () => {
    const g = createMathGrader({ timeoutMs: 1500, poolSize: 1 });
    const slow = g.grade("\\boxed{10^{10^{10}}}", "1");
    expect((await g.grade("\\boxed{70}", "#### 70")).verdict).toBe("correct");
    expect((await slow).verdict).toBe("timeout");
    const pids = g.pool.pids;
    await g.close();
    await g.close();
    expect(await waitGone(pids)).toBe(true);
    expect((await g.grade("\\boxed{\\sec^2 y}", "\\tan^2 y+1")).verdict).toBe("error");
  });

  for (const how of ["exit", "SIGKILL"] as const) {
    it(`leaves no worker behind when the parent process ${how === "exit" ? "exits" : "is killed"}`, async () => {
      const script = join(tmpdir(), `math-orphans-${process.pid}-${how}.mts`);
      const index = new URL("../src/verify/math/index.ts", import.meta.url).pathname;
      writeFileSync(
        script,
        `import { createMathGrader } from ${JSON.stringify(index)};
         const g = createMathGrader({ poolSize: 2 });
         await g.grade("\\\\boxed{\\\\sec^2 y}", "\\\\tan^2 y+1");
         console.log(JSON.stringify(g.pool.pids));
         ${how === "exit" ? "process.exit(0);" : "setInterval(() => {}, 1000);"}`,
      );
      const child = spawn(process.execPath, ["--import", "tsx", script], { stdio: ["ignore", "pipe", "inherit"] });
      const pids: number[] = await new Promise((resolve, reject) => {
        let out = "";
        child.stdout!.on("data", (d) => {
          out += d;
          const line = out.split("\n").find((l) => l.startsWith("["));
          if (line) resolve(JSON.parse(line));
        });
        child.on("exit", () => reject(new Error(`child exited early: ${out}`)));
      });
      expect(pids.length).toBeGreaterThan(0);
      expect(pids.every(alive)).toBe(true);
      if (how === "SIGKILL") child.kill("SIGKILL");
      expect(await waitGone(pids)).toBe(true);
    });
  }
});
