// `promptcot dashboard [RUNS_DIR] [--port N] [--host H]`: a local web page over run directories (see
// src/dashboard/). Binds to 127.0.0.1 unless --host says otherwise: run data should not leave the machine
// by accident.
import { existsSync, statSync } from "node:fs";
import { resolve } from "node:path";
import type { Command } from "commander";
import { ConfigError } from "../config/errors.js";
import { startDashboard } from "../dashboard/server.js";

export interface DashboardCliOptions {
  port: string;
  host: string;
}

export async function dashboardCommand(dir: string, o: DashboardCliOptions): Promise<number> {
  const root = resolve(dir);
  if (!existsSync(root) || !statSync(root).isDirectory()) throw new ConfigError(`not a directory; give the folder that holds your runs (default: runs)`, root);
  const port = Number(o.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new ConfigError(`--port must be a whole number from 0 to 65535 (0 picks a free port), got '${o.port}'`);
  const d = await startDashboard({ root, host: o.host, port });
  process.stdout.write(`dashboard: ${d.url} (runs under ${root}; Ctrl-C to stop)\n`);
  await new Promise<void>((done) => {
    const stop = () => void d.close().then(done);
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
  return 0;
}

export function registerDashboard(program: Command, setCode: (c: number) => void): void {
  program
    .command("dashboard")
    .description("serve a live local web page over run directories: stages, metric curves, samples, comparisons")
    .argument("[runs-dir]", "folder holding run directories", "runs")
    .option("--port <n>", "port (0 = any free port)", "8765")
    .option("--host <host>", "address to bind (default: localhost only)", "127.0.0.1")
    .action(async (dir: string, o: DashboardCliOptions) => {
      setCode(await dashboardCommand(dir, o));
    });
}
