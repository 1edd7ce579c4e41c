import { defineConfig } from "vitest/config";

// Checks against released data that does not ship with the repository (test-shared/README.md); not part of
// the test command. Run: PROMPTCOT_SHARED_DATA=../shared/data npx vitest run --config vitest.shared.config.ts
export default defineConfig({
  test: { include: ["test-shared/**/*.test.ts"], testTimeout: 300_000 },
});
