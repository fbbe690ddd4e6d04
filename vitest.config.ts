import { defineConfig } from "vitest/config";

// Two projects: `unit` needs no daemon; `integration` runs against the real test bed
// (containerd, runc, CNI, docker-registry) that test/bed/global-setup.ts brings up once per run.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: "unit",
          include: ["test/unit/**/*.test.ts"],
          pool: "threads",
        },
      },
      {
        test: {
          name: "integration",
          include: ["test/integration/**/*.test.ts"],
          globalSetup: ["test/bed/global-setup.ts"],
          pool: "forks",
          testTimeout: 60_000,
          hookTimeout: 120_000,
        },
      },
    ],
  },
});
