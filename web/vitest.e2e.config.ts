import { defineConfig } from "vitest/config";

// The browser tests (e2e/): a real OmniDesk and Chromium, one topology after another. `npm run e2e`.
export default defineConfig({
  test: {
    environment: "node",
    // `npm run e2e` runs the browser tests; `bench/console.sh` the measurements (e2e/*.perf.ts).
    include: process.env["OMNIDESK_PERF"] ? ["e2e/**/*.perf.ts"] : ["e2e/**/*.e2e.ts"],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    fileParallelism: false,
    sequence: { concurrent: false },
  },
});
