#!/usr/bin/env bash
# Brings up a working node runtime on this machine (run as root):
#   - installs what is missing (Debian packages, npm packages, the build),
#   - starts a containerd for podshim if none answers on --containerd's socket,
#   - writes a default CNI bridge network if the conf dir has none,
#   - starts podshim and prints the endpoint for crictl and the kubelet.
# Idempotent: run it again and it reuses what is already up. scripts/node-down.sh undoes it.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

CONTAINERD_SOCK=${CONTAINERD_SOCK:-/run/containerd/containerd.sock}
PODSHIM_SOCK=${PODSHIM_SOCK:-/run/podshim/podshim.sock}
CNI_CONF_DIR=${CNI_CONF_DIR:-/etc/cni/net.d}
RUN_DIR=/run/podshim-node
LOG_DIR=/var/log/podshim

say() { printf 'node-up: %s\n' "$*" >&2; }

if [[ $(id -u) -ne 0 ]]; then
  say "run as root (it starts containerd and podshim)"
  exit 1
fi
mkdir -p "$RUN_DIR" "$LOG_DIR"

scripts/install-deps.sh
if [[ ! -d node_modules ]]; then npm ci --no-audit --no-fund --silent; fi
if [[ ! -f dist/main.js ]] || [[ -n $(find src -newer dist/main.js -name '*.ts' -print -quit) ]]; then
  npm run --silent build
fi

# containerd: use the one that answers, or start one with its CRI plugin off (podshim is the CRI).
if timeout 5 ctr --address "$CONTAINERD_SOCK" version >/dev/null 2>&1; then
  say "containerd already answers on $CONTAINERD_SOCK"
else
  config=/etc/podshim/containerd.toml
  mkdir -p /etc/podshim
  if [[ ! -f $config ]]; then
    cat >"$config" <<TOML
version = 2
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$CONTAINERD_SOCK"
TOML
  fi
  say "starting containerd ($config, log $LOG_DIR/containerd.log)"
  setsid containerd --config "$config" >>"$LOG_DIR/containerd.log" 2>&1 </dev/null &
  echo $! >"$RUN_DIR/containerd.pid"
  for _ in $(seq 100); do
    timeout 2 ctr --address "$CONTAINERD_SOCK" version >/dev/null 2>&1 && break
    sleep 0.1
  done
  timeout 2 ctr --address "$CONTAINERD_SOCK" version >/dev/null 2>&1 || { say "containerd did not come up; see $LOG_DIR/containerd.log"; exit 1; }
fi

# CNI: a bridge network with NAT and hostPort support, unless the operator has one.
mkdir -p "$CNI_CONF_DIR"
shopt -s nullglob
existing=("$CNI_CONF_DIR"/*.conf "$CNI_CONF_DIR"/*.conflist "$CNI_CONF_DIR"/*.json)
shopt -u nullglob
if (( ${#existing[@]} == 0 )); then
  say "writing the default CNI network $CNI_CONF_DIR/10-podshim-bridge.conflist (10.88.0.0/16)"
  cat >"$CNI_CONF_DIR/10-podshim-bridge.conflist" <<'JSON'
{
  "cniVersion": "1.0.0",
  "name": "podshim-bridge",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "podshim0",
      "isGateway": true,
      "ipMasq": true,
      "hairpinMode": true,
      "ipam": { "type": "host-local", "ranges": [[{ "subnet": "10.88.0.0/16" }]], "routes": [{ "dst": "0.0.0.0/0" }] }
    },
    { "type": "portmap", "capabilities": { "portMappings": true } },
    { "type": "bandwidth", "capabilities": { "bandwidth": true } }
  ]
}
JSON
fi

# Without CAP_SYS_RESOURCE (containers, some VMs) runc cannot lower oom_score_adj: clamp it.
extra=()
capbnd=$(awk '/^CapBnd/ {print $2}' /proc/self/status)
if (( (0x$capbnd >> 24 & 1) == 0 )); then
  say "CAP_SYS_RESOURCE is missing here: starting podshim with --restrict-oom-score-adj"
  extra+=(--restrict-oom-score-adj)
fi

if [[ -S $PODSHIM_SOCK ]] && timeout 2 node -e 'require("net").connect(process.argv[1]).on("connect",()=>process.exit(0)).on("error",()=>process.exit(1))' "$PODSHIM_SOCK"; then
  say "podshim already serves $PODSHIM_SOCK"
else
  say "starting podshim (log $LOG_DIR/podshim.log)"
  setsid "$repo/dist/main.js" --listen "$PODSHIM_SOCK" --containerd "$CONTAINERD_SOCK" \
    --cni-conf-dir "$CNI_CONF_DIR" "${extra[@]}" "$@" >>"$LOG_DIR/podshim.log" 2>&1 </dev/null &
  pid=$!
  echo $pid >"$RUN_DIR/podshim.pid"
  # The log is appended to across restarts: wait for this process's own line. Serving means
  # recovery is done (until then only Version and Status answer).
  for _ in $(seq 300); do
    [[ -S $PODSHIM_SOCK ]] && grep -q "\"pid\":$pid,.*podshim is serving CRI" "$LOG_DIR/podshim.log" && break
    if ! kill -0 "$(cat "$RUN_DIR/podshim.pid")" 2>/dev/null; then
      say "podshim exited; last log lines:"; tail -n 5 "$LOG_DIR/podshim.log" >&2; exit 1
    fi
    sleep 0.1
  done
fi

cat <<EOT
podshim is up.
  CRI endpoint:  unix://$PODSHIM_SOCK
  crictl:        crictl --runtime-endpoint unix://$PODSHIM_SOCK --image-endpoint unix://$PODSHIM_SOCK info
  kubelet:       --container-runtime-endpoint unix://$PODSHIM_SOCK
  logs:          $LOG_DIR/podshim.log, $LOG_DIR/containerd.log
  stop:          scripts/node-down.sh
EOT
