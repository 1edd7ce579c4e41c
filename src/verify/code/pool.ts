// At most `concurrency` sandboxes serve programs at once; `warm` more are started ahead so a program
// rarely waits for bwrap + python start-up. A sandbox serves one program and is then killed: nothing a
// program leaves behind (files in its tmpfs, processes, modified runner) can reach the next one.
import type { ResolvedOptions } from "./options.js";
import { SandboxFactory, type Sandbox } from "./sandbox.js";

export class SandboxPool {
  private readonly spares: Sandbox[] = [];
  private active = 0;
  private readonly waiters: Array<() => void> = [];
  private readonly dying = new Set<Promise<void>>();
  private closed = false;
  private startFailures = 0;

  constructor(
    private readonly opts: ResolvedOptions,
    private readonly factory: SandboxFactory,
  ) {}

  /** A ready sandbox, owned by the caller until release(). Rejects with SandboxStartFailed. */
  async acquire(): Promise<Sandbox> {
    if (this.closed) throw new Error("code grader is closed");
    // A freed slot is handed straight to the first waiter, so `active` never overshoots.
    if (this.active < this.opts.concurrency) this.active++;
    else await new Promise<void>((r) => this.waiters.push(r));
    try {
      if (this.closed) throw new Error("code grader is closed");
      for (;;) {
        const sb = this.spares.shift() ?? this.factory.start();
        this.topUp();
        try {
          await sb.ready;
        } catch (e) {
          this.dispose(sb, true);
          this.startFailures++;
          throw e;
        }
        if (sb.exited) {
          this.dispose(sb, true); // died while idle: take another
          continue;
        }
        this.startFailures = 0;
        return sb;
      }
    } catch (e) {
      this.freeSlot();
      throw e;
    }
  }

  release(sb: Sandbox): void {
    this.dispose(sb, true);
    this.freeSlot();
    this.topUp();
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const sb of this.spares.splice(0)) this.dispose(sb, true);
    for (const w of this.waiters.splice(0)) w();
    await Promise.all([...this.dying]);
  }

  private freeSlot(): void {
    const next = this.waiters.shift();
    if (next) next();
    else this.active--;
  }

  private topUp(): void {
    // After a failed start, stop pre-starting until a start succeeds again (no spawn storm).
    if (this.closed || this.startFailures > 0) return;
    while (this.spares.length < this.opts.warm) this.spares.push(this.factory.start());
  }

  private dispose(sb: Sandbox, graceful = false): void {
    const p = sb.kill(graceful).finally(() => this.dying.delete(p));
    this.dying.add(p);
  }
}
