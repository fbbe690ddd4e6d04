#!/usr/bin/env bash
# Stops what scripts/node-up.sh started (podshim, and containerd if node-up started it).
# The CNI config it wrote stays: it is the operator's node config now.
set -euo pipefail
RUN_DIR=/run/podshim-node
for name in podshim containerd; do
  pidfile=$RUN_DIR/$name.pid
  [[ -f $pidfile ]] || continue
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    echo "node-down: stopped $name ($pid)"
  fi
  rm -f "$pidfile"
done
