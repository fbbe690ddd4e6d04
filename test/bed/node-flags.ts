// Node flags on podshim's shebang line (`#!/usr/bin/env -S node <flags>`), if it has any:
// whatever starts it as `node main.js` passes the same, so the tests and benchmarks run
// podshim as an installed one runs (and a baseline build with the flags it was built with).
import { readFileSync } from "node:fs";

export function nodeFlagsOf(main: string): string[] {
  const first = readFileSync(main, "utf8").split("\n", 1)[0] ?? "";
  const m = /^#!\/usr\/bin\/env -S node(?<flags>(?: +-\S+)*) *$/.exec(first);
  return m?.groups?.flags?.trim().split(/ +/).filter((f) => f !== "") ?? [];
}
