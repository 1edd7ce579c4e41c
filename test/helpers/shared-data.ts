// Optional data that may not ship with the repository (released benchmarks, math-verify's suite): only where
// PROMPTCOT_SHARED_DATA names a directory holding it. Tests never assume a path outside the clone; those that
// need the data skip and say which variable to set. scripts/test.sh sets it when a shared/data sits beside the clone.
import { existsSync } from "node:fs";
import { resolve } from "node:path";

const root = process.env.PROMPTCOT_SHARED_DATA ? resolve(process.env.PROMPTCOT_SHARED_DATA) : undefined;

/** How a skipped test names what it looked for. */
export const SHARED_DATA = root ?? "$PROMPTCOT_SHARED_DATA (unset)";

/** The absolute path of a shared data file, or null when the variable is unset or the file is absent. */
export function sharedDataFile(rel: string): string | null {
  if (!root) return null;
  const p = resolve(root, rel);
  return existsSync(p) ? p : null;
}
