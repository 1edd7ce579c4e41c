// Reads a pickle that holds one plain str and nothing else (LiveCodeBench's compressed test lists).
// Every opcode outside the handful that such a pickle uses is refused: nothing is ever executed.
export function decodePickledString(bytes: Buffer): string {
  let at = 0;
  let value: string | undefined;
  const take = (n: number) => {
    if (at + n > bytes.length) throw new Error("pickle ends early");
    const out = bytes.subarray(at, at + n);
    at += n;
    return out;
  };
  const str = (len: number) => take(len).toString("utf8");
  while (at < bytes.length) {
    const op = bytes[at++]!;
    if (op === 0x80) take(1); // PROTO n
    else if (op === 0x95) take(8); // FRAME length
    else if (op === 0x94) continue; // MEMOIZE
    else if (op === 0x8c) value = str(take(1)[0]!); // SHORT_BINUNICODE
    else if (op === 0x58) value = str(take(4).readUInt32LE()); // BINUNICODE
    else if (op === 0x8d) value = str(Number(take(8).readBigUInt64LE())); // BINUNICODE8
    else if (op === 0x2e) {
      if (value === undefined) throw new Error("pickle holds no string");
      return value; // STOP
    } else throw new Error(`pickle opcode 0x${op.toString(16)} refused: only a pickled plain string is read`);
  }
  throw new Error("pickle has no STOP opcode");
}
