// The file side of `promptcot grade math|code`: rows are graded with bounded concurrency and written
// strictly in input order to a temp file that is renamed into place, so a failed run leaves no
// half-written output. Memory is bounded: at most `window` rows are read but not yet written.
import fs from "node:fs";
import path from "node:path";
import readline from "node:readline";

export interface GradedLine {
  /** The output row, serialized, newline-terminated. */
  json: string;
}

export interface JsonlMapOptions<R extends GradedLine> {
  inPath: string;
  outPath: string;
  /** Rows read but not yet written (rows in flight are at most this many). */
  window: number;
  /** Grades one non-blank line (1-based line number); must not throw. */
  map: (text: string, lineNo: number) => Promise<R>;
  /** Called once per row as it finishes (counters, progress). */
  onRow?: (r: R) => void;
}

const BLANK = /^[ \t\r]*$/;

/** Returns the number of rows written. */
export async function mapJsonlFile<R extends GradedLine>(o: JsonlMapOptions<R>): Promise<number> {
  const tmp = path.join(path.dirname(path.resolve(o.outPath)), `.${path.basename(o.outPath)}.tmp-${process.pid}`);
  fs.mkdirSync(path.dirname(tmp), { recursive: true });
  const sink = fs.createWriteStream(tmp);
  let failure: Error | null = null;
  sink.on("error", (e) => (failure ??= e));
  const done = new Map<number, string>();
  let written = 0;
  let started = 0;
  let wake: (() => void) | null = null;

  const flush = async (): Promise<void> => {
    while (done.has(written) && !failure) {
      const line = done.get(written)!;
      done.delete(written);
      written++;
      if (!sink.write(line)) await new Promise<void>((r) => (sink.once("drain", r), sink.once("error", () => r())));
    }
    if (failure) throw failure;
  };

  try {
    const rl = readline.createInterface({ input: fs.createReadStream(o.inPath), crlfDelay: Infinity });
    const tasks: Promise<void>[] = [];
    let lineNo = 0;
    for await (const text of rl) {
      lineNo++;
      if (BLANK.test(text)) continue;
      const index = started++;
      tasks.push(
        o
          .map(text, lineNo)
          .then(async (r) => {
            o.onRow?.(r);
            done.set(index, r.json);
            await flush();
          })
          .catch((e: Error) => void (failure ??= e)) // only the output file can fail here
          .finally(() => wake?.()),
      );
      while (started - written >= o.window && !failure) await new Promise<void>((r) => (wake = r));
      if (failure) break;
    }
    await Promise.all(tasks);
    await flush();
    await new Promise<void>((resolve, reject) => sink.end((e?: Error | null) => (e ? reject(e) : resolve())));
    fs.renameSync(tmp, o.outPath);
    return written;
  } catch (e) {
    sink.destroy();
    fs.rmSync(tmp, { force: true });
    throw e;
  }
}

/** Rows = lines with anything but spaces, tabs and CRs (the rule mapJsonlFile skips blank lines by). */
export async function countJsonlRows(file: string): Promise<number> {
  let rows = 0;
  let nonBlank = false;
  for await (const chunk of fs.createReadStream(file)) {
    for (const b of chunk as Buffer) {
      if (b === 0x0a) {
        if (nonBlank) rows++;
        nonBlank = false;
      } else if (b !== 0x20 && b !== 0x09 && b !== 0x0d) nonBlank = true;
    }
  }
  return nonBlank ? rows + 1 : rows;
}
