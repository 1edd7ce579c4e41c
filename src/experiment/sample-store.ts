// Shard files under <run>/shards/<stage>/itNNN/: where the journal keeps the bulky parts of samples.
// Each writer session appends to a file of its own (never to an older one), so the torn tail a crash can
// leave is never written after: no row points at it, a reader stops at it, and the unit is redone.
// Records are fsynced before put() returns, so a journal row written afterwards always finds its bytes.
import { closeSync, fsyncSync, mkdirSync, openSync, readdirSync, readSync, statSync, writeSync } from "node:fs";
import { join } from "node:path";
import {
  crc32, decodeSection, encodeRecord, FRAME_BYTES, fileHeader, HEADER_BYTES, parsePayload, readHeader,
  type RecordMeta, type SectionValue,
} from "./shard-format.js";

/** Where a record's bytes are: the shard (relative to the store root), offset and length of the frame, crc32 of the payload. */
export interface ShardRef {
  f: string;
  o: number;
  n: number;
  c: number;
}

export interface PutItem {
  key: string;
  kind: RecordMeta["kind"];
  sections: Record<string, SectionValue>;
}

interface Writer {
  fd: number;
  file: string;
  offset: number;
}

const iterDir = (iteration: number) => `it${String(iteration).padStart(3, "0")}`;

export class SampleStore {
  private readonly writers = new Map<string, Writer>();
  private readonly readFds = new Map<string, number>();
  private last: { ref: ShardRef; payload: Buffer } | undefined;

  constructor(readonly root: string) {}

  /** Appends records to the (stage, iteration) shard of this session and fsyncs; returns their refs in order. */
  put(stage: string, iteration: number, items: PutItem[]): ShardRef[] {
    if (items.length === 0) return [];
    const w = this.writer(stage, iteration);
    const frames = items.map((it) => encodeRecord(it.key, it.kind, it.sections));
    const refs: ShardRef[] = [];
    let o = w.offset;
    for (const fr of frames) {
      refs.push({ f: w.file, o, n: fr.length, c: fr.readUInt32LE(4) });
      o += fr.length;
    }
    const all = Buffer.concat(frames);
    writeAll(w.fd, all, w.offset);
    fsyncSync(w.fd);
    w.offset = o;
    return refs;
  }

  /** The record a ref points at, checked against its length and crc. */
  read(ref: ShardRef): ReturnType<typeof parsePayload> {
    if (this.last && sameRef(this.last.ref, ref)) return parsePayload(this.last.payload);
    const frame = Buffer.allocUnsafe(ref.n);
    const got = readSync(this.readFd(ref.f), frame, 0, ref.n, ref.o);
    const payload = frame.subarray(FRAME_BYTES);
    if (got !== ref.n || frame.readUInt32LE(0) !== ref.n - FRAME_BYTES || crc32(payload) !== ref.c) {
      throw new Error(`shard ${join(this.root, ref.f)}: record at byte ${ref.o} is damaged or missing (length or crc mismatch); the run directory was changed outside promptcot`);
    }
    this.last = { ref, payload };
    return parsePayload(payload);
  }

  /** One decoded section of a record. */
  section(ref: ShardRef, name: string): string | number[] {
    const s = this.read(ref).sections.get(name);
    if (!s) throw new Error(`shard ${join(this.root, ref.f)}: record at byte ${ref.o} has no section '${name}'`);
    return decodeSection(s.meta, s.bytes);
  }

  close(): void {
    for (const w of this.writers.values()) closeSync(w.fd);
    for (const fd of this.readFds.values()) closeSync(fd);
    this.writers.clear();
    this.readFds.clear();
  }

  private writer(stage: string, iteration: number): Writer {
    const k = `${stage}\0${iteration}`;
    let w = this.writers.get(k);
    if (!w) {
      const dir = join(stage, iterDir(iteration));
      mkdirSync(join(this.root, dir), { recursive: true });
      const file = join(dir, `${Date.now().toString(36)}-${process.pid}-${this.writers.size}.pcs`);
      const fd = openSync(join(this.root, file), "wx");
      writeAll(fd, fileHeader(), 0);
      w = { fd, file, offset: HEADER_BYTES };
      this.writers.set(k, w);
    }
    return w;
  }

  private readFd(file: string): number {
    let fd = this.readFds.get(file);
    if (fd === undefined) {
      fd = openSync(join(this.root, file), "r");
      this.readFds.set(file, fd);
    }
    return fd;
  }
}

function writeAll(fd: number, buf: Buffer, position: number): void {
  for (let done = 0; done < buf.length; ) done += writeSync(fd, buf, done, buf.length - done, position + done);
}

const sameRef = (a: ShardRef, b: ShardRef) => a.f === b.f && a.o === b.o && a.n === b.n;

/** Every complete record of one shard file in order; stops at a torn tail (short frame or crc mismatch). */
export function* scanShard(path: string): Generator<{ offset: number; meta: RecordMeta; payload: Buffer }> {
  const fd = openSync(path, "r");
  try {
    const size = statSync(path).size;
    const head = Buffer.alloc(HEADER_BYTES);
    readSync(fd, head, 0, HEADER_BYTES, 0);
    readHeader(head, path);
    const frame = Buffer.alloc(FRAME_BYTES);
    for (let o = HEADER_BYTES; o + FRAME_BYTES <= size; ) {
      readSync(fd, frame, 0, FRAME_BYTES, o);
      const len = frame.readUInt32LE(0);
      if (o + FRAME_BYTES + len > size) return;
      const payload = Buffer.allocUnsafe(len);
      readSync(fd, payload, 0, len, o + FRAME_BYTES);
      if (crc32(payload) !== frame.readUInt32LE(4)) return;
      yield { offset: o, meta: parsePayload(payload).meta, payload };
      o += FRAME_BYTES + len;
    }
  } finally {
    closeSync(fd);
  }
}

/** The shard files of a stage and iteration, oldest session first. */
export function shardFiles(root: string, stage: string, iteration: number): string[] {
  const dir = join(root, stage, iterDir(iteration));
  try {
    return readdirSync(dir).filter((f) => f.endsWith(".pcs")).sort().map((f) => join(dir, f));
  } catch {
    return [];
  }
}
