import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Each test file writes under its own temp root, removed when its tests pass (test/helpers/temp-root.ts).
    setupFiles: ["test/helpers/temp-root.ts"],
    // End-to-end tests start real workers and models; a loaded 2-core CI machine can take minutes per run.
    testTimeout: 300_000,
    hookTimeout: 300_000,
    // 2-core machines: tests that start Python workers must not all run at once.
    maxWorkers: 2,
    fileParallelism: true,
  },
});
