// Finding what the dashboard shows under RUNS_DIR: run directories (a journal.sqlite) and eval directories
// (a results.jsonl from `promptcot eval`), addressed by their path relative to RUNS_DIR. Links carry only
// these ids, and a request for anything not found by this walk is refused, so no URL can name a path.
import { existsSync, readdirSync, statSync } from "node:fs";
import { join, relative, sep } from "node:path";

export interface Found {
  id: string;
  dir: string;
  kind: "run" | "eval";
}

const SKIP = new Set(["checkpoints", "artifacts", "logs", "events", "node_modules", ".git"]);
const MAX_DEPTH = 4;

export function discover(root: string): Found[] {
  const out: Found[] = [];
  const walk = (dir: string, depth: number) => {
    if (existsSync(join(dir, "journal.sqlite"))) out.push({ id: idOf(root, dir), dir, kind: "run" });
    else if (existsSync(join(dir, "results.jsonl"))) out.push({ id: idOf(root, dir), dir, kind: "eval" });
    if (depth >= MAX_DEPTH) return;
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      return;
    }
    for (const n of names.sort()) {
      if (SKIP.has(n) || n.startsWith(".")) continue;
      const d = join(dir, n);
      try {
        if (statSync(d).isDirectory()) walk(d, depth + 1);
      } catch {
        /* vanished while walking */
      }
    }
  };
  walk(root, 0);
  return out;
}

function idOf(root: string, dir: string): string {
  const rel = relative(root, dir).split(sep).join("/");
  return rel === "" ? "." : rel;
}
