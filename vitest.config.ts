import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts", "clients/typescript/test/**/*.test.ts"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: "forks",
    // Two test files at a time on the 2-core CI machine (vitest would run one: cores − 1). The
    // tests assert no timings, so sharing the cores changes how long they take, not what they find.
    maxWorkers: 2,
    globalSetup: ["test/setup/tools.ts"],
  },
});
