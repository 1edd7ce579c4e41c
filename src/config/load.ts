// YAML experiment -> validated, typed Experiment. Keeps every document's source map so a
// validation error can name the file and line that set the offending key.
import { existsSync, readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { isMap, isSeq, LineCounter, parseDocument, parse as parseYamlValue, type Document } from "yaml";
import { ZodError } from "zod";
import { ConfigError } from "./errors.js";
import { ExperimentSchema, type Experiment } from "./schema.js";

interface SourceDoc {
  file: string;
  doc: Document.Parsed;
  lines: LineCounter;
}

type Plain = Record<string, unknown>;

export interface LoadedConfig {
  config: Experiment;
  /** Files read, in merge order (includes first, then the experiment). */
  files: string[];
  /** What the files and --set say, merged, before defaults (names the default run directory). */
  explicit: Record<string, unknown>;
}

function readYaml(file: string): SourceDoc {
  if (!existsSync(file)) throw new ConfigError(`file not found (check the path)`, file);
  const lines = new LineCounter();
  const doc = parseDocument(readFileSync(file, "utf8"), { lineCounter: lines, prettyErrors: false });
  const first = doc.errors[0];
  if (first) {
    const line = lines.linePos(first.pos[0]).line;
    throw new ConfigError(`invalid YAML: ${first.message.split("\n")[0]}`, file, line);
  }
  const value = doc.toJS() ?? {};
  if (typeof value !== "object" || Array.isArray(value)) {
    throw new ConfigError("the top level must be a mapping of keys to values", file, 1);
  }
  return { file, doc, lines };
}

function isPlain(v: unknown): v is Plain {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Later wins; mappings merge key by key, everything else (lists included) is replaced. */
export function deepMerge(base: Plain, over: Plain): Plain {
  const out: Plain = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const b = out[k];
    out[k] = isPlain(b) && isPlain(v) ? deepMerge(b, v) : v;
  }
  return out;
}

/** Loads `file` and its includes (depth-first, each include's own includes first). */
function collect(file: string, seen: Set<string>, out: SourceDoc[]): void {
  const abs = resolve(file);
  if (seen.has(abs)) throw new ConfigError("include cycle", abs);
  seen.add(abs);
  const src = readYaml(abs);
  const includes = (src.doc.toJS() as Plain).include ?? [];
  if (!Array.isArray(includes) || includes.some((i) => typeof i !== "string")) {
    throw new ConfigError("'include' must be a list of file paths", abs, lineOf(src, ["include"]), "include");
  }
  for (const inc of includes as string[]) collect(resolve(dirname(abs), inc), seen, out);
  out.push(src);
}

function lineOf(src: SourceDoc, path: (string | number)[]): number {
  // The deepest node on the path that exists: an unknown key has a line, a missing one blames its parent.
  for (let n = path.length; n > 0; n--) {
    const parent = n === 1 ? src.doc.contents : src.doc.getIn(path.slice(0, n - 1), true);
    let node: { range?: [number, number, number] | null } | undefined;
    if (isMap(parent)) node = parent.items.find((p) => String((p.key as { value?: unknown })?.value) === String(path[n - 1]))?.key as typeof node;
    else if (isSeq(parent)) node = parent.items[Number(path[n - 1])] as typeof node;
    if (node?.range) return src.lines.linePos(node.range[0]).line;
  }
  return 1;
}

function hasPath(value: unknown, path: (string | number)[]): boolean {
  let cur = value;
  for (const p of path) {
    if (!isPlain(cur) && !Array.isArray(cur)) return false;
    if (!(String(p) in (cur as object))) return false;
    cur = (cur as Plain)[String(p)];
  }
  return true;
}

/** Applies `key.path=value` overrides; the value is parsed as a YAML scalar/flow value. */
export function applyOverrides(base: Plain, sets: string[]): Plain {
  let out = base;
  for (const s of sets) {
    const eq = s.indexOf("=");
    if (eq <= 0) throw new ConfigError(`--set '${s}' must look like key.path=value`, "--set");
    const keys = s.slice(0, eq).split(".");
    let value: unknown;
    try {
      value = parseYamlValue(s.slice(eq + 1));
    } catch {
      throw new ConfigError(`--set '${s}': value is not valid YAML`, "--set", undefined, keys.join("."));
    }
    const patch: Plain = {};
    let cur = patch;
    keys.forEach((k, i) => {
      if (i === keys.length - 1) cur[k] = value;
      else cur = cur[k] = {} as Plain;
    });
    out = deepMerge(out, patch);
  }
  return out;
}

function describeIssue(issue: ZodError["issues"][number]): { path: (string | number)[]; message: string } {
  const path = issue.path.map((p) => (typeof p === "symbol" ? String(p) : p));
  if (issue.code === "unrecognized_keys") {
    const key = issue.keys[0] ?? "?";
    return { path: [...path, key], message: `unknown key '${key}' (check the spelling; see schema/experiment.schema.json)` };
  }
  return { path, message: issue.message };
}

export function loadExperiment(file: string, sets: string[] = []): LoadedConfig {
  const sources: SourceDoc[] = [];
  collect(file, new Set(), sources);
  let merged: Plain = {};
  for (const s of sources) merged = deepMerge(merged, s.doc.toJS() as Plain);
  merged = applyOverrides(merged, sets);
  const setKeys = sets.map((s) => s.slice(0, s.indexOf("=")));
  const parsed = ExperimentSchema.safeParse(merged);
  if (!parsed.success) {
    const { path, message } = describeIssue(parsed.error.issues[0]!);
    const keyPath = path.join(".");
    if (setKeys.some((k) => keyPath === k || keyPath.startsWith(`${k}.`))) {
      throw new ConfigError(message, "--set", undefined, keyPath);
    }
    // The last document that sets the key (or its nearest parent) is the one to blame.
    const blame = [...sources].reverse().find((s) => hasPath(s.doc.toJS(), path)) ?? sources[sources.length - 1]!;
    throw new ConfigError(message, blame.file, lineOf(blame, path), keyPath);
  }
  return { config: parsed.data, files: sources.map((s) => s.file), explicit: merged };
}
