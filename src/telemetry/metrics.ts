// Metrics sink: one JSON object per line in metrics.jsonl (append-only; a resumed run appends).
import { appendFileSync } from "node:fs";

export class MetricsSink {
  constructor(private readonly path: string) {}

  write(record: Record<string, unknown>): void {
    appendFileSync(this.path, `${JSON.stringify({ time: new Date().toISOString(), ...record })}\n`);
  }
}

/** Wall time by named phase, for the end-of-run table. */
export class StageTimer {
  readonly seconds = new Map<string, number>();

  async time<T>(phase: string, fn: () => Promise<T>): Promise<T> {
    const t0 = performance.now();
    try {
      return await fn();
    } finally {
      this.seconds.set(phase, (this.seconds.get(phase) ?? 0) + (performance.now() - t0) / 1000);
    }
  }
}
