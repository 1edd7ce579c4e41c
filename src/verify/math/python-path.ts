// Where the grader's Python lives: PROMPTCOT_PYTHON if set, else the virtualenv scripts/bootstrap.sh builds
// outside the clone, keyed by the lock files exactly as scripts/lib.sh computes it
// ($PROMPTCOT_CACHE or ~/.cache/promptcot, then venv-<first 12 hex of sha256(lock + special)>/bin/python).
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");

export function venvPythonPath(root: string = REPO_ROOT): string {
  const cache = process.env.PROMPTCOT_CACHE || join(homedir(), ".cache", "promptcot");
  const h = createHash("sha256");
  for (const f of ["requirements.lock", "requirements-special.txt"]) h.update(readFileSync(join(root, "python-workers", f)));
  return join(cache, `venv-${h.digest("hex").slice(0, 12)}`, "bin", "python");
}

/** The interpreter for grader workers; throws with a hint when it is missing. */
export function pythonPath(): string {
  const py = process.env.PROMPTCOT_PYTHON || venvPythonPath();
  if (!existsSync(py)) {
    throw new Error(`Python environment not found at ${py}. Run 'bash scripts/bootstrap.sh' first (or set PROMPTCOT_PYTHON).`);
  }
  return py;
}

/** Environment for grader workers: the repo's python-workers on the path, unbuffered, offline. */
export function pythonEnv(): NodeJS.ProcessEnv {
  return {
    ...process.env,
    PYTHONPATH: join(REPO_ROOT, "python-workers"),
    PYTHONUNBUFFERED: "1",
    PYTHONDONTWRITEBYTECODE: "1",
  };
}
