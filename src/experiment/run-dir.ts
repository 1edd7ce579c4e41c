// The run directory: where a run's config, journal, artifacts and checkpoints live, and the lock that
// keeps two controllers off the same run.
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { parse, stringify } from "yaml";
import type { Experiment } from "../config/schema.js";
import { ConfigError } from "../config/errors.js";
import type { Problem } from "../data/problems.js";
import { writeJsonl } from "./artifacts.js";
import { modelChanges, problemsFingerprint, type RunIdentity, type SetFingerprint } from "./run-identity.js";

/** The merged config exactly as it runs (includes already folded in, so the file stands alone). */
export function resolvedYaml(cfg: Experiment): string {
  const { include: _merged, ...rest } = cfg;
  return stringify(rest, { lineWidth: 0 });
}

/**
 * Same config -> same run directory, so re-running a command resumes it. The hash covers what the user wrote
 * (files and --set, before defaults), so a newer promptcot whose schema gained keys still finds the run; the
 * resolved configs are then compared key by key (configDiff). Without `explicit` (or for a run started before
 * this rule, whose directory exists) the hash of the whole resolved config is used.
 */
export function defaultRunDir(cfg: Experiment, explicit?: Record<string, unknown>, root = "runs"): string {
  const legacy = resolve(root, cfg.name, sha8(resolvedYaml(cfg)));
  if (!explicit || existsSync(legacy)) return legacy;
  const { include: _files, ...written } = explicit;
  return resolve(root, cfg.name, sha8(canonicalJson(written)));
}

function sha8(text: string): string {
  return createHash("sha256").update(text).digest("hex").slice(0, 8);
}

function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(",")}]`;
  if (v && typeof v === "object") {
    const entries = Object.entries(v).filter(([, x]) => x !== undefined).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, x]) => `${JSON.stringify(k)}:${canonicalJson(x)}`).join(",")}}`;
  }
  return JSON.stringify(v);
}

/**
 * How the config a run started with (its config.resolved.yaml) and the current one differ: `changed` lists
 * keys the run has whose values differ or that are gone; `added` lists keys only the current config has —
 * keys a newer schema introduced, which a run started before them cannot have set.
 */
export function configDiff(storedYaml: string, cfg: Experiment): { changed: string[]; added: string[] } {
  const out = { changed: [] as string[], added: [] as string[] };
  walk(parse(storedYaml), parse(resolvedYaml(cfg)), "", out);
  return out;
}

function walk(a: unknown, b: unknown, path: string, out: { changed: string[]; added: string[] }): void {
  const isMap = (v: unknown): v is Record<string, unknown> => !!v && typeof v === "object" && !Array.isArray(v);
  if (isMap(a) && isMap(b)) {
    for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
      const p = path ? `${path}.${k}` : k;
      if (!(k in b)) out.changed.push(`${p}: ${JSON.stringify(a[k])} in the run, not a key any more`);
      else if (!(k in a)) out.added.push(p);
      else walk(a[k], b[k], p, out);
    }
  } else if (JSON.stringify(a) !== JSON.stringify(b)) {
    out.changed.push(`${path}: ${JSON.stringify(a)} in the run, ${JSON.stringify(b)} now`);
  }
}

/** Refuses a resume under a changed config, naming the keys; returns the keys new since the run started. */
export function checkSameConfig(dir: string, cfg: Experiment): string[] {
  const file = join(dir, "config.resolved.yaml");
  const { changed, added } = configDiff(readFileSync(file, "utf8"), cfg);
  if (changed.length) {
    const shown = changed.slice(0, 5).join("; ") + (changed.length > 5 ? `; and ${changed.length - 5} more` : "");
    throw new ConfigError(`this run directory holds a run of a different config (${shown}; see ${file}); resume it with that config, or choose another --run-dir`, dir);
  }
  return added;
}

export type RunDirState = "new" | "resume" | "legacy";

/**
 * Whether `dir` holds this run, read-only: "new" (no run yet), "resume" (config, data and model match what
 * the run started on) or "legacy" (a run from before fingerprints: its data checked against its problem
 * copies where they exist). Anything else is a ConfigError naming what changed.
 */
export function checkRunDir(dir: string, cfg: Experiment, identity: RunIdentity, problems: Problems): RunDirState {
  const file = join(dir, "config.resolved.yaml");
  if (!existsSync(file)) return "new";
  checkSameConfig(dir, cfg);
  const recorded = readRunRecord(dir);
  const changes = [
    setChanges(dir, "train", recorded?.train, identity.train, problems.train),
    setChanges(dir, "heldout", recorded?.heldout, identity.heldout, problems.heldout),
    ...(recorded ? modelChanges(recorded.model, identity.model) : []),
  ].filter((c): c is string => !!c);
  if (changes.length) {
    throw new ConfigError(
      `${changes.join("; ")}; start a new run with --run-dir <another directory>, or restore the data and model this run started on (fingerprints in ${join(dir, RUN_JSON)})`,
      dir,
    );
  }
  return recorded ? "resume" : "legacy";
}

/**
 * Opens the run directory after checkRunDir. A new run writes its problem copies and run.json first and
 * config.resolved.yaml last, each by temp file + rename: the config's presence marks a run as started, so
 * a crash in between leaves a directory that the next start treats as new and overwrites.
 */
export function prepareRunDir(dir: string, cfg: Experiment, identity: RunIdentity, problems: Problems): { resumed: boolean; state: RunDirState } {
  const state = checkRunDir(dir, cfg, identity, problems);
  if (state === "resume") return { resumed: true, state };
  if (state === "legacy") {
    for (const split of ["train", "heldout"] as const) if (!existsSync(snapshotPath(dir, split))) writeJsonl(snapshotPath(dir, split), problems[split]);
    writeAtomic(join(dir, RUN_JSON), runRecordText(cfg, identity));
    return { resumed: true, state };
  }
  for (const sub of ["artifacts", "checkpoints", "logs"]) mkdirSync(join(dir, sub), { recursive: true });
  writeJsonl(snapshotPath(dir, "train"), problems.train);
  writeJsonl(snapshotPath(dir, "heldout"), problems.heldout);
  writeAtomic(join(dir, RUN_JSON), runRecordText(cfg, identity));
  writeAtomic(join(dir, "config.resolved.yaml"), resolvedYaml(cfg));
  return { resumed: false, state };
}

const RUN_JSON = "run.json";
type Problems = { train: Problem[]; heldout: Problem[] };
type Split = "train" | "heldout";

/** The run's copy of the problems it started on: what a changed data file is compared against. */
export const snapshotPath = (dir: string, split: Split) => join(dir, "artifacts", `problems.${split}.jsonl`);

function runRecordText(cfg: Experiment, identity: RunIdentity): string {
  const rec = { format: 1, created_at: new Date().toISOString(), config_sha256: sha256(resolvedYaml(cfg)), ...identity };
  return `${JSON.stringify(rec, null, 2)}\n`;
}

/** The fingerprints a run started on (run.json), or undefined for a run from before they were recorded. */
export function readRunRecord(dir: string): RunIdentity | undefined {
  const file = join(dir, RUN_JSON);
  if (!existsSync(file)) return undefined;
  try {
    const rec = JSON.parse(readFileSync(file, "utf8")) as RunIdentity;
    if (rec.train?.sha256 && rec.heldout?.sha256 && rec.model?.sha256) return rec;
  } catch {
    // reported below
  }
  throw new ConfigError(`${file} is damaged, so this run's data and model cannot be checked; start a new run with --run-dir <another directory>`, dir);
}

function writeAtomic(file: string, text: string): void {
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, text);
  renameSync(tmp, file);
}

const sha256 = (s: string) => createHash("sha256").update(s).digest("hex");

function setChanges(dir: string, split: Split, recorded: SetFingerprint | undefined, now: SetFingerprint, current: Problem[]): string | undefined {
  const copy = readSnapshot(snapshotPath(dir, split));
  const copyPrint = copy && problemsFingerprint(copy, "");
  const was = recorded ?? copyPrint;
  if (!was || was.sha256 === now.sha256) return undefined;
  if (!copy || copyPrint!.sha256 !== was.sha256) {
    return `${split} set changed: ${was.count} -> ${now.count} problems, fingerprint ${was.sha256.slice(0, 12)} -> ${now.sha256.slice(0, 12)} (the run's copy ${snapshotPath(dir, split)} is missing or altered, so which problems cannot be shown)`;
  }
  const diffs = problemDiffs(copy, current);
  return `${split} set changed: ${diffs.length} problem${diffs.length === 1 ? " differs" : "s differ"} (${diffs.slice(0, 3).join("; ")}${diffs.length > 3 ? "; ..." : ""})`;
}
function readSnapshot(file: string): Problem[] | undefined {
  if (!existsSync(file)) return undefined;
  try {
    return readFileSync(file, "utf8").split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l) as Problem);
  } catch {
    return undefined;
  }
}

/** Per-id differences, in id order: "t0004: answer '12' -> '13'". */
function problemDiffs(was: Problem[], now: Problem[]): string[] {
  const before = new Map(was.map((p) => [p.id, p]));
  const after = new Map(now.map((p) => [p.id, p]));
  const ids = [...new Set([...before.keys(), ...after.keys()])].sort((x, y) => x.localeCompare(y, "en", { numeric: true }));
  const out: string[] = [];
  for (const id of ids) {
    const a = before.get(id), b = after.get(id);
    if (!a) out.push(`${id}: added`);
    else if (!b) out.push(`${id}: removed`);
    else {
      const d = (["prompt", "answer"] as const).filter((k) => a[k] !== b[k]).map((k) => `${k} ${quote(a[k])} -> ${quote(b[k])}`);
      if ((a.kind ?? "math") !== (b.kind ?? "math")) d.push(`kind ${a.kind ?? "math"} -> ${b.kind ?? "math"}`);
      else if (JSON.stringify(a.tests ?? []) !== JSON.stringify(b.tests ?? [])) d.push(`tests changed (${a.tests?.length ?? 0} -> ${b.tests?.length ?? 0} cases)`);
      if (d.length) out.push(`${id}: ${d.join(", ")}`);
    }
  }
  return out;
}

const quote = (s: string) => `'${s.length > 40 ? `${s.slice(0, 37)}...` : s}'`;

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
