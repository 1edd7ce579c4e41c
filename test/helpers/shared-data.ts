// Where the optional shared data lives (benchmarks, math-verify's suite): PROMPTCOT_SHARED_DATA, else
// ../shared/data beside the clone. Tests that need it skip on a plain clone and say what they looked for.
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const SHARED_DATA = resolve(process.env.PROMPTCOT_SHARED_DATA ?? fileURLToPath(new URL("../../../shared/data", import.meta.url)));

/** The absolute path of a shared data file, or null when it is absent. */
export function sharedDataFile(rel: string): string | null {
  const p = resolve(SHARED_DATA, rel);
  return existsSync(p) ? p : null;
}
