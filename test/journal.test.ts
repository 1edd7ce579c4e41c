import { fork } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { Journal } from "../src/experiment/journal.js";
import { unitId, unitSeed } from "../src/experiment/ids.js";

const dbPath = () => join(mkdtempSync(join(tmpdir(), "pcot-j-")), "journal.sqlite");

describe("journal", () => {
  it("records a unit exactly once; a second record of the same id keeps the first result", () => {
    const j = new Journal(dbPath());
    expect(j.record([{ id: "it001/rollout/t0000/000", stage: "rollout", iteration: 1, result: { text: "a" } }])).toBe(1);
    expect(j.record([{ id: "it001/rollout/t0000/000", stage: "rollout", iteration: 1, result: { text: "b" } }])).toBe(0);
    expect(j.get<{ text: string }>("it001/rollout/t0000/000")!.text).toBe("a");
    expect(j.count("rollout")).toBe(1);
    j.close();
  });

  it("writes a batch atomically: a failure mid-transaction leaves nothing", () => {
    const j = new Journal(dbPath());
    expect(() =>
      j.transaction(() => {
        j.record([{ id: "u1", stage: "s", iteration: 1, result: 1 }]);
        throw new Error("crash between result and done-mark");
      }),
    ).toThrow();
    expect(j.has("u1")).toBe(false);
    j.close();
  });

  it("survives SIGKILL of the writer: every committed unit is there, none is partial", async () => {
    const path = dbPath();
    const script = join(mkdtempSync(join(tmpdir(), "pcot-w-")), "writer.ts");
    writeFileSync(
      script,
      `import { Journal } from ${JSON.stringify(join(process.cwd(), "src/experiment/journal.ts"))};
       const j = new Journal(${JSON.stringify(path)});
       for (let i = 0; ; i++) { j.record([{ id: "u" + String(i).padStart(8, "0"), stage: "s", iteration: 1, result: { i, pad: "x".repeat(200) } }]); if (i === 200) process.send!("go"); }`,
    );
    const child = fork(script, [], { execArgv: ["--import", "tsx"], stdio: "ignore" });
    await new Promise<void>((resolve) => child.once("message", () => resolve()));
    child.kill("SIGKILL");
    await new Promise((r) => child.once("exit", r));
    const j = new Journal(path);
    const rows = j.list<{ i: number }>("s", 1);
    expect(rows.length).toBeGreaterThan(200);
    rows.forEach((r, k) => expect(r.result.i).toBe(k)); // contiguous: nothing lost, nothing doubled
    j.close();
  });

  it("derives stable ids and seeds", () => {
    expect(unitId(1, "rollout", "t0003", 2)).toBe("it001/rollout/t0003/002");
    expect(unitSeed(7, "rollout", 1, "t0003", 2)).toBe(unitSeed(7, "rollout", 1, "t0003", 2));
    expect(unitSeed(7, "rollout", 1, "t0003", 2)).not.toBe(unitSeed(7, "rollout", 1, "t0003", 3));
    expect(Number.isSafeInteger(unitSeed(1, "x"))).toBe(true);
  });
});
