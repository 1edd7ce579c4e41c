// Metrics sink: one JSON object per line in metrics.jsonl (append-only; a resumed run appends), and the
// same numbers as TensorBoard scalars in events/ beside it (a new event file per process).
import { AsyncLocalStorage } from "node:async_hooks";
import { appendFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { recordScalars, TensorBoardWriter } from "./tensorboard.js";

export class MetricsSink {
  private tensorboard: TensorBoardWriter | undefined;

  constructor(private readonly path: string, private readonly eventsDir: string | null = join(dirname(path), "events")) {}

  write(record: Record<string, unknown>): void {
    const time = new Date();
    appendFileSync(this.path, `${JSON.stringify({ time: time.toISOString(), ...record })}\n`);
    if (this.eventsDir === null) return;
    this.tensorboard ??= new TensorBoardWriter(this.eventsDir); // created on first write: no empty files
    const { step, values } = recordScalars(record);
    this.tensorboard.scalars(step, values, time.getTime() / 1000);
  }
}

/**
 * Wall time by named phase, for the end-of-run table. A phase timed inside another (a stage inside a regime's
 * phase) counts only in the inner row, so the rows never count a second twice and add up to the time timed.
 */
export class StageTimer {
  readonly seconds = new Map<string, number>();
  private readonly open = new AsyncLocalStorage<{ inner: number }>();

  async time<T>(phase: string, fn: () => Promise<T>): Promise<T> {
    const t0 = performance.now();
    const frame = { inner: 0 };
    const parent = this.open.getStore();
    try {
      return await this.open.run(frame, fn);
    } finally {
      const total = (performance.now() - t0) / 1000;
      if (parent) parent.inner += total;
      this.seconds.set(phase, (this.seconds.get(phase) ?? 0) + total - frame.inner);
    }
  }
}
