// The proposer's seeds: problems with the concepts they test and a rationale (how they were designed), the
// cold-start triples the prompt model is warm-started on. JSONL rows {prompt, answer, concepts, rationale}.
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { ConfigError } from "../config/errors.js";
import type { Experiment } from "../config/schema.js";

export interface SeedRow {
  id: string;
  prompt: string;
  answer: string;
  concepts: string[];
  rationale: string;
}

const FIX = 'each line: {"prompt": "...", "answer": "5", "concepts": ["addition", "..."], "rationale": "how the problem was designed"}';

export function seedsPathOf(cfg: Experiment): { path: string | undefined; key: string } {
  return cfg.proposer.seeds_path ? { path: cfg.proposer.seeds_path, key: "proposer.seeds_path" } : { path: cfg.data.train_path, key: "data.train_path" };
}

/** Reads and checks every seed row; a bad row is named by file and line with the fix. */
export function readSeeds(cfg: Experiment, configDir: string): SeedRow[] {
  const { path, key } = seedsPathOf(cfg);
  if (!path) throw new ConfigError(`proposer.enabled needs seeds with concepts and rationales: set proposer.seeds_path (or data.kind: jsonl with data.train_path); ${FIX}`, "proposer.seeds_path");
  const file = resolve(configDir, path);
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    throw new ConfigError(`cannot read the proposer's seeds; fix ${key} (relative paths resolve against the experiment file)`, file, undefined, key);
  }
  const rows: SeedRow[] = [];
  text.split("\n").forEach((line, i) => {
    if (!line.trim()) return;
    const fail = (what: string) => new ConfigError(`${what}; ${FIX}`, file, i + 1);
    let r: Record<string, unknown>;
    try {
      r = JSON.parse(line) as Record<string, unknown>;
    } catch (e) {
      throw fail(`not valid JSON (${(e as Error).message})`);
    }
    for (const k of ["prompt", "answer", "rationale"]) if (typeof r[k] !== "string" || !(r[k] as string).trim()) throw fail(`'${k}' must be a non-empty string`);
    if (!Array.isArray(r.concepts) || r.concepts.length === 0 || !r.concepts.every((c) => typeof c === "string" && c.trim())) throw fail("'concepts' must be a non-empty array of strings");
    rows.push({ id: `seed${String(rows.length).padStart(4, "0")}`, prompt: r.prompt as string, answer: r.answer as string, concepts: r.concepts as string[], rationale: r.rationale as string });
  });
  if (rows.length === 0) throw new ConfigError(`no seed rows; ${FIX}`, file, undefined, key);
  return rows;
}
