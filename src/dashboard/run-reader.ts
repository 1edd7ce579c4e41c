// A run directory as the dashboard sees it, read without ever writing: the journal is opened read-only
// (a live run is never blocked or changed) and read incrementally by rowid, metrics.jsonl by byte offset,
// so a poll costs only what was added since the last one.
import { closeSync, existsSync, openSync, readFileSync, readSync, statSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { parse as parseYaml } from "yaml";
import { controllerPid } from "../experiment/run-dir.js";

export interface StageAgg {
  stage: string;
  iteration: number;
  units: number;
  /** done_at of the unit recorded just before this stage's first one (the stage's start), ms. */
  start: number;
  first: number;
  last: number;
  /** Generated tokens (units whose result has token_ids), for tokens/s. */
  tokens: number;
}

export interface MetricRow {
  kind: string;
  [key: string]: unknown;
}

export interface RunEvent {
  seq: number;
  at: string;
  kind: string;
  data: string;
}

const BATCH = 5000;

export class RunReader {
  private db: Database.Database | undefined;
  private cursor = 0;
  private lastDone = NaN;
  private readonly agg = new Map<string, StageAgg>();
  private metricsOffset = 0;
  private metricsTail = "";
  private readonly metricRows: MetricRow[] = [];
  badMetricLines = 0;
  private cfgCache: { mtime: number; cfg: Record<string, unknown> } | undefined;

  constructor(readonly dir: string) {}

  /** The read-only connection; opened on first use (the file may appear after the dashboard starts). */
  get journal(): Database.Database {
    this.db ??= new Database(join(this.dir, "journal.sqlite"), { readonly: true, fileMustExist: true });
    return this.db;
  }

  close(): void {
    this.db?.close();
    this.db = undefined;
  }

  /** Reads what was added since the last call; returns this for chaining. */
  refresh(): this {
    this.readUnits();
    this.readMetrics();
    return this;
  }

  private readUnits(): void {
    let rows: { r: number; stage: string; iteration: number; done_at: string; toks: number | null }[];
    try {
      const page = this.journal.prepare(
        "SELECT rowid AS r, stage, iteration, done_at, COALESCE(json_array_length(result, '$.token_ids'), json_extract(result, '$.$token_count')) AS toks FROM units WHERE rowid > ? ORDER BY rowid LIMIT ?",
      );
      do {
        rows = page.all(this.cursor, BATCH) as typeof rows;
        for (const row of rows) this.add(row);
      } while (rows.length === BATCH);
    } catch (e) {
      if (/no such table/.test((e as Error).message)) return; // the run is creating its journal
      throw e;
    }
  }

  private add(row: { r: number; stage: string; iteration: number; done_at: string; toks: number | null }): void {
    const t = Date.parse(row.done_at);
    const key = `${row.iteration}\0${row.stage}`;
    let a = this.agg.get(key);
    if (!a) this.agg.set(key, (a = { stage: row.stage, iteration: row.iteration, units: 0, start: Number.isNaN(this.lastDone) ? t : this.lastDone, first: t, last: t, tokens: 0 }));
    a.units++;
    a.last = Math.max(a.last, t);
    a.tokens += row.toks ?? 0;
    this.cursor = row.r;
    this.lastDone = t;
  }

  private readMetrics(): void {
    const file = join(this.dir, "metrics.jsonl");
    if (!existsSync(file)) return;
    const size = statSync(file).size;
    if (size < this.metricsOffset) [this.metricsOffset, this.metricsTail, this.metricRows.length] = [0, "", 0];
    if (size === this.metricsOffset) return;
    const buf = Buffer.alloc(size - this.metricsOffset);
    const fd = openSync(file, "r");
    try {
      readSync(fd, buf, 0, buf.length, this.metricsOffset);
    } finally {
      closeSync(fd);
    }
    this.metricsOffset = size;
    const lines = (this.metricsTail + buf.toString("utf8")).split("\n");
    this.metricsTail = lines.pop()!; // a line still being written
    for (const line of lines) {
      if (!line.trim()) continue;
      try {
        const r = JSON.parse(line) as MetricRow;
        if (r && typeof r === "object" && !Array.isArray(r)) this.metricRows.push({ ...r, kind: typeof r.kind === "string" ? r.kind : "metrics" });
        else this.badMetricLines++;
      } catch {
        this.badMetricLines++;
      }
    }
  }

  stages(): StageAgg[] {
    return [...this.agg.values()].sort((a, b) => a.iteration - b.iteration || a.first - b.first);
  }

  metrics(): readonly MetricRow[] {
    return this.metricRows;
  }

  /** Changes whenever a unit, a metrics line or an event is added. */
  version(): string {
    return `${this.cursor}:${this.metricsOffset}:${this.lastEventSeq()}:${this.running() ? 1 : 0}`;
  }

  private lastEventSeq(): number {
    try {
      return (this.journal.prepare("SELECT COALESCE(MAX(seq), 0) AS s FROM events").get() as { s: number }).s;
    } catch {
      return 0;
    }
  }

  events(limit = 20): RunEvent[] {
    try {
      return (this.journal.prepare("SELECT seq, at, kind, data FROM events ORDER BY seq DESC LIMIT ?").all(limit) as RunEvent[]).reverse();
    } catch {
      return [];
    }
  }

  running(): boolean {
    return controllerPid(this.dir) !== undefined;
  }

  /** config.resolved.yaml, re-read when it changes; {} before the run has written it. */
  config(): Record<string, unknown> {
    const file = join(this.dir, "config.resolved.yaml");
    if (!existsSync(file)) return {};
    const mtime = statSync(file).mtimeMs;
    if (this.cfgCache?.mtime !== mtime) this.cfgCache = { mtime, cfg: (parseYaml(readFileSync(file, "utf8")) ?? {}) as Record<string, unknown> };
    return this.cfgCache.cfg;
  }

  runJson(): { train?: { count?: number }; heldout?: { count?: number }; model?: { source?: string } } {
    try {
      return JSON.parse(readFileSync(join(this.dir, "run.json"), "utf8"));
    } catch {
      return {};
    }
  }

  /** Iterations that have a held-out eval (0 = before training). */
  evalIterations(): number[] {
    return this.stages().filter((s) => s.stage === "eval").map((s) => s.iteration);
  }
}

/** One reader per run directory for the server's lifetime, so reads stay incremental. */
export class Readers {
  private readonly map = new Map<string, RunReader>();

  get(dir: string): RunReader {
    let r = this.map.get(dir);
    if (!r) this.map.set(dir, (r = new RunReader(dir)));
    return r.refresh();
  }

  closeAll(): void {
    for (const r of this.map.values()) r.close();
    this.map.clear();
  }
}
