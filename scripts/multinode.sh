#!/usr/bin/env bash
# A kind-like multi-node bed on this machine (run as root), without Docker: every node is a
# network namespace with its own containerd and podshim, linked by a bridge in a namespace of
# the bed's own that also serves the images. See README "A multi-node bed".
#   scripts/multinode.sh up [--nodes 2..4] [--dir DIR] [--no-peering]   (default 3 nodes in /run/podshim-multinode, peer mirror on)
#   scripts/multinode.sh status [--dir DIR]
#   scripts/multinode.sh down [--dir DIR]
# up is idempotent (it starts only what is not running); down removes everything it made.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ $(id -u) -ne 0 ]]; then
  echo "multinode: run as root (it creates network namespaces and starts containerd)" >&2
  exit 1
fi
if [[ ${1:-} == up ]]; then
  scripts/install-deps.sh >&2
  if [[ ! -d node_modules ]]; then npm ci --no-audit --no-fund --silent; fi
  if [[ ! -f dist/main.js ]] || [[ -n $(find src -newer dist/main.js -name '*.ts' -print -quit) ]]; then
    npm run --silent build >&2
  fi
fi
# The bed's code lives with the tests (they use it too); compile it on its own.
out=.tmp/multinode-js
if [[ ! -f $out/test/bed/multinode-cli.js ]] || [[ -n $(find test/bed test/support -newer "$out/test/bed/multinode-cli.js" -name '*.ts' -print -quit) ]]; then
  npx --no-install tsc -p test/tsconfig.json --noEmit false --outDir "$out" --sourceMap false >&2
fi
# The tests' CRI client finds proto/ beside its own tree.
ln -sfn ../../proto "$out/proto"
PODSHIM_REPO=$(pwd) exec node "$out/test/bed/multinode-cli.js" "$@"
