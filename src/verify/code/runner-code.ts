// The in-sandbox runner (python-workers/promptcot_sandbox/runner.py), compiled once per grader to
// bytecode by the same interpreter that will run it. Each sandbox then gets the .pyc through a pipe
// (bwrap --ro-bind-data), which saves every sandbox start the ~4 ms of compiling the source and needs
// no file on the host that other users could touch. Falls back to `python -c <source>`.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const RUNNER_PATH = fileURLToPath(new URL("../../../python-workers/promptcot_sandbox/runner.py", import.meta.url));

export type RunnerCode = { kind: "pyc"; bytes: Buffer } | { kind: "source"; text: string };

// Writes a pyc (magic, flags=0, mtime, size, marshalled code) of stdin's source to stdout.
const COMPILE = [
  "import sys, marshal, importlib.util",
  "src = sys.stdin.buffer.read()",
  "code = compile(src, '/runner.py', 'exec')",
  "head = importlib.util.MAGIC_NUMBER + bytes(4) + bytes(4) + (len(src) & 0xFFFFFFFF).to_bytes(4, 'little')",
  "sys.stdout.buffer.write(head + marshal.dumps(code))",
].join("\n");

export function loadRunnerCode(python: string): RunnerCode {
  const text = readFileSync(RUNNER_PATH, "utf8");
  try {
    const bytes = execFileSync(python, ["-I", "-S", "-B", "-c", COMPILE], {
      input: text,
      maxBuffer: 16 << 20,
      timeout: 30_000,
      stdio: ["pipe", "pipe", "ignore"],
    });
    if (bytes.length > 16) return { kind: "pyc", bytes };
  } catch {
    // an interpreter we cannot run here: the sandbox start will say so
  }
  return { kind: "source", text };
}
