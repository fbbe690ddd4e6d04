import { defineConfig } from "vitest/config";

// `npm run bench`: measurements on the real test bed, printed as tables and written to
// .tmp/bench/. Kept out of `vitest run` (the test command): benchmarks assert nothing on time.
export default defineConfig({
  test: {
    name: "bench",
    include: ["test/bench/**/*.bench.ts"],
    globalSetup: ["test/bed/global-setup.ts"],
    pool: "forks",
    fileParallelism: false,
    testTimeout: 600_000,
    hookTimeout: 300_000,
  },
});
