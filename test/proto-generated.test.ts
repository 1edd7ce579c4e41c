import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

describe("generated RPC code", () => {
  it("is up to date with proto/ (regenerate with `npm run gen`)", () => {
    const out = mkdtempSync(join(tmpdir(), "pcot-gen-"));
    execFileSync("bash", ["scripts/gen-proto.sh", out], { stdio: "pipe" });
    const pairs = [
      ["src/rpc/gen", join(out, "src/rpc/gen")],
      ["python-workers/promptcot_worker/gen", join(out, "python-workers/promptcot_worker/gen")],
    ] as const;
    for (const [committed, fresh] of pairs) {
      const files = readdirSync(fresh).filter((f) => !f.startsWith("__pycache__"));
      expect(files.length).toBeGreaterThan(0);
      for (const f of files) {
        expect(readFileSync(join(committed, f), "utf8"), `${committed}/${f} is stale`).toBe(readFileSync(join(fresh, f), "utf8"));
      }
    }
  });
});
