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
          // Not "threads": a worker thread's Node environment records every fd fs.open returns
          // and closes those numbers again when the worker exits. The FIFO tests hand such fds
          // to net.Socket, which closes them itself, so at exit the worker closed whatever
          // another worker (or vitest) had opened under those numbers since, and the run aborted.
          pool: "forks",
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
