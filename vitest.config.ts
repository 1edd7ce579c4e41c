import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 120_000,
    hookTimeout: 300_000,
    // 2-core machines: tests that start Python workers must not all run at once.
    maxWorkers: 2,
    fileParallelism: true,
  },
});
