// The run journal: every unit of work and its result, in one SQLite file (WAL).
// A unit's result and its done-mark are the same row, written in one transaction, so a unit is
// either fully recorded or not at all; resume redoes exactly the units without a row.
// With the shard data plane (the default; docs/DATA_PLANE.md) the bulky fields of sample rows (text, token
// ids, prompt token ids) live in append-only shard files written and fsynced before the row, which points at
// them; reads hand back the same record shape, decoding those fields from the shard when they are accessed.
import { dirname, join } from "node:path";
import Database from "better-sqlite3";
import { detachRows, hydrate, type PayloadRefs } from "./payload.js";
import { SampleStore } from "./sample-store.js";

export interface UnitRow<T = unknown> {
  id: string;
  stage: string;
  iteration: number;
  result: T;
}

/** "shards": bulky sample fields in shard files (default); "inline": everything in the row as JSON (the old plane). */
export type DataPlane = "shards" | "inline";

/**
 * Stages whose rows carry bulky payloads: rollout samples (text, token ids), held-out eval samples (text),
 * GRPO's behaviour log-probs (`old`: one float per completion token).
 */
export const SHARDED_STAGES: ReadonlySet<string> = new Set(["rollout", "eval", "old"]);

/** PROMPTCOT_DATA_PLANE=inline writes the old way (for comparisons); reads handle both planes either way. */
function dataPlaneFromEnv(): DataPlane {
  const v = process.env.PROMPTCOT_DATA_PLANE;
  if (v === undefined || v === "" || v === "shards") return "shards";
  if (v === "inline") return "inline";
  throw new Error(`PROMPTCOT_DATA_PLANE='${v}' is not a data plane; use 'shards' (default) or 'inline'`);
}

export class Journal {
  private readonly db: Database.Database;
  readonly store: SampleStore;
  readonly dataPlane: DataPlane;

  constructor(path: string, opts: { dataPlane?: DataPlane } = {}) {
    this.dataPlane = opts.dataPlane ?? dataPlaneFromEnv();
    this.store = new SampleStore(join(dirname(path), "shards"));
    this.db = new Database(path);
    this.db.pragma("journal_mode = WAL");
    this.db.pragma("synchronous = NORMAL"); // WAL + NORMAL is durable across process crashes
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS units (
        id TEXT PRIMARY KEY,
        stage TEXT NOT NULL,
        iteration INTEGER NOT NULL,
        result TEXT NOT NULL,
        done_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
      );
      CREATE INDEX IF NOT EXISTS units_stage ON units(stage, iteration);
      CREATE TABLE IF NOT EXISTS events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
        kind TEXT NOT NULL,
        data TEXT NOT NULL
      );
      CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS payload_prompts (key TEXT PRIMARY KEY, ref TEXT NOT NULL);
    `);
  }

  /** Records units atomically. Already-recorded ids are left untouched (exactly-once); returns how many were new. */
  record(rows: UnitRow[]): number {
    const insert = this.db.prepare(
      "INSERT INTO units (id, stage, iteration, result) VALUES (?, ?, ?, ?) ON CONFLICT(id) DO NOTHING",
    );
    // Shard bytes first (fsynced), then the rows that point at them, in one transaction.
    const detached = this.detach(rows);
    const tx = this.db.transaction((rs: UnitRow[]) => {
      let added = 0;
      for (const r of rs) added += insert.run(r.id, r.stage, r.iteration, JSON.stringify(r.result)).changes;
      this.rememberPrompts(detached.prompts);
      return added;
    });
    return tx(detached.rows);
  }

  private detach(rows: UnitRow[]): { rows: UnitRow[]; prompts: Map<string, string> } {
    const prompts = new Map<string, string>();
    if (this.dataPlane === "inline") return { rows, prompts };
    const out = [...rows];
    const groups = new Map<string, number[]>(); // one shard append per (stage, iteration)
    rows.forEach((r, i) => {
      if (!SHARDED_STAGES.has(r.stage) || this.has(r.id)) return;
      const k = `${r.stage}\0${r.iteration}`;
      groups.set(k, [...(groups.get(k) ?? []), i]);
    });
    for (const idx of groups.values()) {
      const first = rows[idx[0]!]!;
      const done = detachRows(this.store, first.stage, first.iteration, idx.map((i) => rows[i]!), (k) => this.promptRef(k), prompts);
      idx.forEach((i, j) => (out[i] = done[j]!));
    }
    return { rows: out, prompts };
  }

  private promptRef(key: string): string | undefined {
    return (this.db.prepare("SELECT ref FROM payload_prompts WHERE key = ?").get(key) as { ref: string } | undefined)?.ref;
  }

  private rememberPrompts(prompts: Map<string, string>): void {
    const put = this.db.prepare("INSERT INTO payload_prompts (key, ref) VALUES (?, ?) ON CONFLICT(key) DO NOTHING");
    for (const [k, ref] of prompts) put.run(k, ref);
  }

  private parse<T>(result: string): T {
    const r = JSON.parse(result) as T & PayloadRefs;
    return (r.$shard ? hydrate(this.store, r) : r) as T;
  }

  /** Runs `fn` inside one transaction, for writes that must land together with unit rows. */
  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn)();
  }

  has(id: string): boolean {
    return this.db.prepare("SELECT 1 FROM units WHERE id = ?").get(id) !== undefined;
  }

  get<T>(id: string): T | undefined {
    const row = this.db.prepare("SELECT result FROM units WHERE id = ?").get(id) as { result: string } | undefined;
    return row ? this.parse<T>(row.result) : undefined;
  }

  /** All units of a stage in an iteration, ordered by id (ids are zero-padded, so this is a stable order). */
  list<T>(stage: string, iteration: number): UnitRow<T>[] {
    const rows = this.db
      .prepare("SELECT id, stage, iteration, result FROM units WHERE stage = ? AND iteration = ? ORDER BY id")
      .all(stage, iteration) as { id: string; stage: string; iteration: number; result: string }[];
    return rows.map((r) => ({ ...r, result: this.parse<T>(r.result) }));
  }

  /** Units of a stage in an iteration, ordered by id, read `batch` rows at a time (stages stream, never load a whole stage). */
  *iterate<T>(stage: string, iteration: number, batch = 500): Generator<UnitRow<T>> {
    const page = this.db.prepare(
      "SELECT id, stage, iteration, result FROM units WHERE stage = ? AND iteration = ? AND id > ? ORDER BY id LIMIT ?",
    );
    for (let after = ""; ; ) {
      const rows = page.all(stage, iteration, after, batch) as { id: string; stage: string; iteration: number; result: string }[];
      for (const r of rows) yield { ...r, result: this.parse<T>(r.result) };
      if (rows.length < batch) return;
      after = rows.at(-1)!.id;
    }
  }

  /** Units of a stage (in one iteration, when given), counted by SQLite without reading a row. */
  count(stage?: string, iteration?: number): number {
    const row = (stage === undefined
      ? this.db.prepare("SELECT COUNT(*) AS n FROM units").get()
      : iteration === undefined
        ? this.db.prepare("SELECT COUNT(*) AS n FROM units WHERE stage = ?").get(stage)
        : this.db.prepare("SELECT COUNT(*) AS n FROM units WHERE stage = ? AND iteration = ?").get(stage, iteration)) as { n: number };
    return row.n;
  }

  countsByStage(): { stage: string; iteration: number; n: number }[] {
    return this.db
      .prepare("SELECT stage, iteration, COUNT(*) AS n FROM units GROUP BY stage, iteration ORDER BY iteration, stage")
      .all() as { stage: string; iteration: number; n: number }[];
  }

  event(kind: string, data: Record<string, unknown> = {}): void {
    this.db.prepare("INSERT INTO events (kind, data) VALUES (?, ?)").run(kind, JSON.stringify(data));
  }

  events(kind?: string): { seq: number; at: string; kind: string; data: Record<string, unknown> }[] {
    const rows = (kind
      ? this.db.prepare("SELECT * FROM events WHERE kind = ? ORDER BY seq").all(kind)
      : this.db.prepare("SELECT * FROM events ORDER BY seq").all()) as { seq: number; at: string; kind: string; data: string }[];
    return rows.map((r) => ({ ...r, data: JSON.parse(r.data) as Record<string, unknown> }));
  }

  setMeta(key: string, value: string): void {
    this.db.prepare("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value").run(key, value);
  }

  getMeta(key: string): string | undefined {
    return (this.db.prepare("SELECT value FROM meta WHERE key = ?").get(key) as { value: string } | undefined)?.value;
  }

  close(): void {
    this.store.close();
    this.db.close();
  }
}
