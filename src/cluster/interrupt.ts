// Ctrl-C and SIGTERM for every command that drives workers: kill them, journal the interruption, release the
// run lock, exit 130. The journal already holds every finished unit, so the same command resumes.
import type { Journal } from "../experiment/journal.js";
import { killAllWorkers } from "./local-launcher.js";

/** Installs the handlers; call the returned function on the normal exit path to remove them. */
export function onInterrupt(journal: Journal, unlock: () => void, log: (msg: string) => void): () => void {
  const handler = (sig: NodeJS.Signals) => {
    log(`${sig}: stopping workers; run the same command again to resume`);
    killAllWorkers();
    journal.event("run_interrupted", { signal: sig });
    unlock();
    process.exit(130);
  };
  process.once("SIGINT", handler);
  process.once("SIGTERM", handler);
  return () => {
    process.removeListener("SIGINT", handler);
    process.removeListener("SIGTERM", handler);
  };
}
