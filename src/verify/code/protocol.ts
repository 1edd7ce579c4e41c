// Frames between the controller and the in-sandbox runner (python-workers/promptcot_sandbox/runner.py):
// one type byte, a big-endian u32 length, the payload. Everything coming back is untrusted: a program
// that took over its runner could send anything, so sizes are bounded and shapes checked here.

export type FrameKind = "K" | "C" | "R" | "P" | "T";

export function encodeFrame(kind: FrameKind, payload: Buffer): Buffer {
  const head = Buffer.allocUnsafe(5);
  head.write(kind, 0, "latin1");
  head.writeUInt32BE(payload.length, 1);
  return Buffer.concat([head, payload]);
}

export interface Frame {
  kind: string;
  payload: Buffer;
}

/** Reassembles frames from stdout chunks; throws on a frame larger than maxPayload. */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;

  constructor(private readonly maxPayload: number) {}

  push(chunk: Buffer): Frame[] {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const frames: Frame[] = [];
    for (;;) {
      if (this.buffered < 5) break;
      const head = this.peek(5);
      const length = head.readUInt32BE(1);
      if (length > this.maxPayload) throw new Error(`runner sent a ${length}-byte frame (limit ${this.maxPayload})`);
      if (this.buffered < 5 + length) break;
      const all = this.take(5 + length);
      frames.push({ kind: all.toString("latin1", 0, 1), payload: all.subarray(5) });
    }
    return frames;
  }

  private peek(n: number): Buffer {
    if (this.chunks[0]!.length < n) this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks[0]!.subarray(0, n);
  }

  private take(n: number): Buffer {
    const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
    const rest = all.subarray(n);
    this.chunks = rest.length ? [rest] : [];
    this.buffered = rest.length;
    return all.subarray(0, n);
  }
}

/** What one test run produced, as reported by the runner (raw: nothing judged yet). */
export interface RunResult {
  /** Exit status, or null when killed by a signal. */
  exitCode: number | null;
  /** Terminating signal number, or 0. */
  signal: number;
  timedOut: boolean;
  /** Which stream went past its cap, if any. */
  outputLimit: "stdout" | "stderr" | null;
  /** The child died of MemoryError (as reported; a hint only). */
  memoryError: boolean;
  wallMs: number;
  cpuMs: number;
  maxRssKb: number;
  stdout: Buffer;
  stderrTail: Buffer;
}

const HEADER_BYTES = 4 + 4 + 1 + 1 + 1 + 4 * 5;

export function decodeRunResult(payload: Buffer): RunResult {
  if (payload.length < HEADER_BYTES) throw new Error("runner result too short");
  const exit = payload.readInt32BE(0);
  const signal = payload.readInt32BE(4);
  const timedOut = payload.readUInt8(8);
  const ole = payload.readUInt8(9);
  const mle = payload.readUInt8(10);
  const wallUs = payload.readUInt32BE(11);
  const cpuUs = payload.readUInt32BE(15);
  const maxRssKb = payload.readUInt32BE(19);
  const outLen = payload.readUInt32BE(23);
  const errLen = payload.readUInt32BE(27);
  if (HEADER_BYTES + outLen + errLen !== payload.length) throw new Error("runner result sizes do not add up");
  return {
    exitCode: exit >= 0 ? exit : null,
    signal,
    timedOut: timedOut === 1,
    outputLimit: ole === 1 ? "stdout" : ole === 2 ? "stderr" : null,
    memoryError: mle === 1,
    wallMs: wallUs / 1000,
    cpuMs: cpuUs / 1000,
    maxRssKb,
    stdout: payload.subarray(HEADER_BYTES, HEADER_BYTES + outLen),
    stderrTail: payload.subarray(HEADER_BYTES + outLen),
  };
}
