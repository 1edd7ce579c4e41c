/** A user-facing config problem: says what, where (file:line, key path) and how to fix. Exit code 2. */
export class ConfigError extends Error {
  readonly exitCode = 2;
  constructor(
    message: string,
    readonly file?: string,
    readonly line?: number,
    readonly keyPath?: string,
  ) {
    super(message);
    this.name = "ConfigError";
  }

  format(): string {
    const where = this.file ? `${this.file}${this.line ? `:${this.line}` : ""}` : "config";
    const key = this.keyPath ? ` at '${this.keyPath}'` : "";
    return `error: ${where}${key}: ${this.message}`;
  }
}
