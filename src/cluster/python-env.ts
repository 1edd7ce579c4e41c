// Locates the project's Python interpreter: the virtualenv scripts/bootstrap.sh builds outside the
// clone, keyed by the lock files (same rule as scripts/lib.sh), so fresh clones reuse it.
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

export function cacheDir(): string {
  return process.env.PROMPTCOT_CACHE ?? join(homedir(), ".cache", "promptcot");
}

export function venvDir(): string {
  const h = createHash("sha256");
  for (const f of ["requirements.lock", "requirements-special.txt"]) {
    h.update(readFileSync(join(REPO_ROOT, "python-workers", f)));
  }
  return join(cacheDir(), `venv-${h.digest("hex").slice(0, 12)}`);
}

/** The Python that runs workers and grader processes; PROMPTCOT_PYTHON overrides. */
export function pythonPath(): string {
  const py = process.env.PROMPTCOT_PYTHON ?? join(venvDir(), "bin", "python");
  if (!existsSync(py)) {
    throw new Error(`Python environment not found at ${py}. Run 'bash scripts/bootstrap.sh' first (or set PROMPTCOT_PYTHON).`);
  }
  return py;
}

/** What every Python worker process needs set: the worker packages on the path, unbuffered output, offline hubs. */
export const WORKER_PYTHON_ENV: Readonly<Record<string, string>> = {
  PYTHONPATH: join(REPO_ROOT, "python-workers"),
  PYTHONUNBUFFERED: "1",
  PYTHONDONTWRITEBYTECODE: "1",
  TOKENIZERS_PARALLELISM: "false",
  HF_HUB_OFFLINE: "1",
  TRANSFORMERS_OFFLINE: "1",
};

/** Environment for Python child processes of the controller: its own environment plus WORKER_PYTHON_ENV. */
export function pythonEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { ...process.env, ...WORKER_PYTHON_ENV, ...extra };
}
