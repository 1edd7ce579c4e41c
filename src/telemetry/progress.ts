// Progress for long stages: a redrawn bar on a TTY; on pipes (CI) a plain line every 10% or 10 s.
const BAR = 24;

export class Progress {
  private done = 0;
  private readonly started = Date.now();
  private lastPlain = 0;
  private lastPct = -1;
  private readonly tty: boolean;

  constructor(
    private readonly label: string,
    private readonly total: number,
    private readonly out: NodeJS.WriteStream = process.stderr,
  ) {
    this.tty = Boolean(out.isTTY) && !process.env.CI;
    this.render(true);
  }

  tick(n = 1, note = ""): void {
    this.done += n;
    this.render(false, note);
  }

  finish(note = ""): void {
    if (this.tty) this.out.write("\n");
    else this.line(note || "done");
  }

  private render(first: boolean, note = ""): void {
    const pct = this.total ? Math.floor((100 * this.done) / this.total) : 100;
    if (this.tty) {
      const fill = Math.round((BAR * pct) / 100);
      this.out.write(`\r${this.label} [${"#".repeat(fill)}${".".repeat(BAR - fill)}] ${this.done}/${this.total} ${this.elapsed()} ${note}`.slice(0, 160));
      return;
    }
    const now = Date.now();
    if (first || Math.floor(pct / 10) > Math.floor(this.lastPct / 10) || now - this.lastPlain > 10_000) {
      this.line(note);
      this.lastPct = pct;
      this.lastPlain = now;
    }
  }

  private line(note: string): void {
    this.out.write(`${this.label}: ${this.done}/${this.total} (${this.elapsed()})${note ? ` ${note}` : ""}\n`);
  }

  private elapsed(): string {
    return `${((Date.now() - this.started) / 1000).toFixed(0)}s`;
  }
}
