// The run journal: every unit of work and its result, in one SQLite file (WAL).
// A unit's result and its done-mark are the same row, written in one transaction, so a unit is
// either fully recorded or not at all; resume redoes exactly the units without a row.
import Database from "better-sqlite3";

export interface UnitRow<T = unknown> {
  id: string;
  stage: string;
  iteration: number;
  result: T;
}

export class Journal {
  private readonly db: Database.Database;

  constructor(path: string) {
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
    `);
  }

  /** Records units atomically. Already-recorded ids are left untouched (exactly-once); returns how many were new. */
  record(rows: UnitRow[]): number {
    const insert = this.db.prepare(
      "INSERT INTO units (id, stage, iteration, result) VALUES (?, ?, ?, ?) ON CONFLICT(id) DO NOTHING",
    );
    const tx = this.db.transaction((rs: UnitRow[]) => {
      let added = 0;
      for (const r of rs) added += insert.run(r.id, r.stage, r.iteration, JSON.stringify(r.result)).changes;
      return added;
    });
    return tx(rows);
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
    return row ? (JSON.parse(row.result) as T) : undefined;
  }

  /** All units of a stage in an iteration, ordered by id (ids are zero-padded, so this is a stable order). */
  list<T>(stage: string, iteration: number): UnitRow<T>[] {
    const rows = this.db
      .prepare("SELECT id, stage, iteration, result FROM units WHERE stage = ? AND iteration = ? ORDER BY id")
      .all(stage, iteration) as { id: string; stage: string; iteration: number; result: string }[];
    return rows.map((r) => ({ ...r, result: JSON.parse(r.result) as T }));
  }

  /** Units of a stage in an iteration, ordered by id, read `batch` rows at a time (stages stream, never load a whole stage). */
  *iterate<T>(stage: string, iteration: number, batch = 500): Generator<UnitRow<T>> {
    const page = this.db.prepare(
      "SELECT id, stage, iteration, result FROM units WHERE stage = ? AND iteration = ? AND id > ? ORDER BY id LIMIT ?",
    );
    for (let after = ""; ; ) {
      const rows = page.all(stage, iteration, after, batch) as { id: string; stage: string; iteration: number; result: string }[];
      for (const r of rows) yield { ...r, result: JSON.parse(r.result) as T };
      if (rows.length < batch) return;
      after = rows.at(-1)!.id;
    }
  }

  count(stage?: string): number {
    const row = (stage
      ? this.db.prepare("SELECT COUNT(*) AS n FROM units WHERE stage = ?").get(stage)
      : this.db.prepare("SELECT COUNT(*) AS n FROM units").get()) as { n: number };
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
    this.db.close();
  }
}
