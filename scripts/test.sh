#!/usr/bin/env bash
# The whole test suite, from a clean clone on a fresh Debian machine (run as root):
# installs what is missing, checks generated code, builds, typechecks, lints (ESLint and the
# import graph's layering), runs unit and integration tests against a real containerd, runc,
# CNI plugins and a local registry.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ $(id -u) -ne 0 ]]; then
  echo "test.sh: run as root: the integration tests start containerd, mount and create network namespaces" >&2
  exit 1
fi

scripts/install-deps.sh
if [[ ! -d node_modules ]] || [[ package-lock.json -nt node_modules/.package-lock.json ]]; then
  npm ci --no-audit --no-fund
fi

npm run --silent gen:check
npm run --silent build
npx tsc -p test/tsconfig.json --noEmit
npm run --silent lint

results=$(mktemp)
trap 'rm -f "$results"' EXIT
status=0
npx vitest run --reporter=default --reporter=json --outputFile.json="$results" "$@" || status=$?

# One closing line in the plain form any CI reads, whatever vitest printed above it.
node -e '
  const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  const skipped = r.numPendingTests + r.numTodoTests;
  console.log(`tests: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${skipped} skipped`);
' "$results" || echo "tests: no result file (vitest did not finish)"
exit "$status"
