// Vitest setup file (vitest.config.ts): every test file gets its own temp root. TMPDIR points at it before the
// file is imported, so os.tmpdir(), mkdtemp and every child process (CLI runs, Python workers, Ray, servers)
// write there. When the file's tests pass the root is removed; when one fails it is kept and its path printed.
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeEach } from "vitest";

const previous = process.env.TMPDIR;
const root = mkdtempSync(join(tmpdir(), "promptcot-vitest-"));
// mkdtemp makes it 0700; tests that hand a file to a process running as another user (the code sandbox's
// runner, fake bwraps) need to traverse it, as they could /tmp
chmodSync(root, 0o755);
// tsx's compile cache is a cache, not a test's output: keep sharing it (rmSync removes the link, not its target)
const tsxCache = `tsx-${process.getuid?.() ?? 0}`;
mkdirSync(join(tmpdir(), tsxCache), { recursive: true });
symlinkSync(join(tmpdir(), tsxCache), join(root, tsxCache));
process.env.TMPDIR = root;
let failed = false;

beforeEach(({ onTestFailed }) => {
  onTestFailed(() => {
    failed = true;
  });
});

// vitest 4 passes fixtures first (they must be destructured) and the file's suite second
// eslint-disable-next-line no-empty-pattern
afterAll(({}, suite) => {
  if (previous === undefined) delete process.env.TMPDIR;
  else process.env.TMPDIR = previous;
  // a failed beforeAll fails the file without any test failing
  const hookFailed = suite.result?.state === "fail" || (suite.result?.errors?.length ?? 0) > 0;
  if (failed || hookFailed) {
    process.stderr.write(`\n[temp] ${suite.name}: a test failed; its files are kept in ${root}\n`);
    return;
  }
  rmSync(root, { recursive: true, force: true });
});
