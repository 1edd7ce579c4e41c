// The run directory: where a run's config, journal, artifacts and checkpoints live, and the lock that
// keeps two controllers off the same run.
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { stringify } from "yaml";
import type { Experiment } from "../config/schema.js";
import { ConfigError } from "../config/errors.js";

/** The merged config exactly as it runs (includes already folded in, so the file stands alone). */
export function resolvedYaml(cfg: Experiment): string {
  const { include: _merged, ...rest } = cfg;
  return stringify(rest, { lineWidth: 0 });
}

/** Same resolved config -> same run directory, so re-running a command resumes it. */
export function defaultRunDir(cfg: Experiment, root = "runs"): string {
  const hash = createHash("sha256").update(resolvedYaml(cfg)).digest("hex").slice(0, 8);
  return resolve(root, cfg.name, hash);
}

export function prepareRunDir(dir: string, cfg: Experiment): { resumed: boolean } {
  const file = join(dir, "config.resolved.yaml");
  const yaml = resolvedYaml(cfg);
  if (existsSync(file)) {
    if (readFileSync(file, "utf8") !== yaml) {
      throw new ConfigError(
        `this run directory holds a run of a different config (see ${file}); resume it with that config, or choose another --run-dir`,
        dir,
      );
    }
    return { resumed: true };
  }
  for (const sub of ["artifacts", "checkpoints", "logs"]) mkdirSync(join(dir, sub), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, yaml);
  renameSync(tmp, file);
  return { resumed: false };
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Takes the run's lock or explains who holds it. A stale lock (dead pid) is taken over. */
export function lockRunDir(dir: string): () => void {
  const lock = join(dir, "controller.pid");
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(lock, String(process.pid), { flag: "wx" });
      return () => rmSync(lock, { force: true });
    } catch {
      const holder = Number(readFileSync(lock, "utf8"));
      if (holder && holder !== process.pid && pidAlive(holder)) {
        throw new Error(`run ${dir} is in use by controller pid ${holder}; wait for it or stop it first`);
      }
      rmSync(lock, { force: true });
    }
  }
  throw new Error(`could not lock ${dir}`);
}

export function controllerPid(dir: string): number | undefined {
  const lock = join(dir, "controller.pid");
  if (!existsSync(lock)) return undefined;
  const pid = Number(readFileSync(lock, "utf8"));
  return pid && pidAlive(pid) ? pid : undefined;
}
