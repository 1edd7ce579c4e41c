// The per-run secret every worker call carries (docs/WORKER.md "Authentication"): made once per controller
// process, handed to each worker server in its environment (never argv, a run-directory file or a log), and
// sent as gRPC metadata by WorkerRpc. The Python side is python-workers/promptcot_worker/auth.py.
import { randomBytes } from "node:crypto";

export const WORKER_SECRET_ENV = "PROMPTCOT_WORKER_SECRET";
export const WORKER_SECRET_METADATA = "x-promptcot-secret";

let secret: string | undefined;

/** This run's worker secret (256 random bits, hex). */
export function workerSecret(): string {
  secret ??= randomBytes(32).toString("hex");
  return secret;
}

/** The environment entry that gives a worker server the secret. */
export function workerSecretEnv(): Record<string, string> {
  return { [WORKER_SECRET_ENV]: workerSecret() };
}
