// `promptcot status <run-dir>`: what a run has done, from its journal (read-only).
import { existsSync } from "node:fs";
import { join } from "node:path";
import { Journal } from "../experiment/journal.js";
import { controllerPid, readRunRecord } from "../experiment/run-dir.js";
import { identityLines } from "../experiment/run-identity.js";
import { latestUpdate } from "../train/dpo.js";

export function statusCommand(runDir: string): number {
  const file = join(runDir, "journal.sqlite");
  if (!existsSync(file)) {
    process.stderr.write(`error: ${runDir} is not a run directory (no journal.sqlite); run directories are under runs/<experiment>/\n`);
    return 2;
  }
  const j = new Journal(file);
  try {
    const pid = controllerPid(runDir);
    const out: string[] = [`run: ${runDir}`, `controller: ${pid ? `running (pid ${pid})` : "not running"}`];
    const events = j.events();
    const last = events.filter((e) => e.kind.startsWith("run_")).at(-1);
    if (last) out.push(`last run event: ${last.kind} at ${last.at}`);
    out.push("", "started on (run.json; a resume on other data or model is refused):", ...identity(runDir));
    out.push("", "units by iteration and stage:");
    for (const r of j.countsByStage()) out.push(`  it ${String(r.iteration).padStart(3)}  ${r.stage.padEnd(8)} ${r.n}`);
    const latest = latestUpdate(j);
    out.push("", `latest checkpoint: ${latest ? `${latest.checkpoint} (step ${latest.global_step})` : "none (base model)"}`);
    const restarts = events.filter((e) => e.kind === "worker_restart");
    out.push(`worker restarts: ${restarts.length}`);
    if (existsSync(join(runDir, "report.md"))) out.push(`report: ${join(runDir, "report.md")}`);
    process.stdout.write(`${out.join("\n")}\n`);
    return 0;
  } finally {
    j.close();
  }
}

function identity(runDir: string): string[] {
  try {
    const rec = readRunRecord(runDir);
    return rec ? identityLines(rec).map((l) => `  ${l}`) : ["  not recorded (the run predates fingerprints; the next resume records them)"];
  } catch (e) {
    return [`  ${(e as Error).message}`];
  }
}
