// Released data that does not ship with the repository (PromptCoT's benchmarks, math-verify's suite), for the
// checks in test-shared/: PROMPTCOT_SHARED_DATA names the directory. These checks are not part of the test
// command (scripts/test.sh), which passes on a plain clone; an unset variable or a missing file is an error.
import { existsSync } from "node:fs";
import { resolve } from "node:path";

/** The absolute path of a shared data file; throws, naming what to set, when it is not there. */
export function sharedDataFile(rel: string): string {
  const dir = process.env.PROMPTCOT_SHARED_DATA;
  if (!dir) throw new Error(`set PROMPTCOT_SHARED_DATA to the directory holding ${rel} (e.g. ../shared/data)`);
  const p = resolve(dir, rel);
  if (!existsSync(p)) throw new Error(`${p} not found: PROMPTCOT_SHARED_DATA=${dir} must hold ${rel}`);
  return p;
}
