#!/usr/bin/env bash
# Installs a built podshim (npm ci && npm run build first) onto this machine:
#   $PREFIX/lib/podshim     the program (dist, proto, production node_modules)
#   $PREFIX/bin/podshim     a link to it
#   $SYSCONFDIR/podshim/config.toml   from `podshim config default`, only when absent
#   $UNITDIR/podshim.service          packaging/podshim.service with these paths
# Environment: PREFIX (/usr/local), SYSCONFDIR (/etc), UNITDIR (/etc/systemd/system).
# Works without systemd: it then prints how to start podshim by hand.
set -euo pipefail
cd "$(dirname "$0")/.."

PREFIX=${PREFIX:-/usr/local}
SYSCONFDIR=${SYSCONFDIR:-/etc}
UNITDIR=${UNITDIR:-/etc/systemd/system}
say() { printf 'install: %s\n' "$*" >&2; }

[[ -f dist/main.js ]] || { say "dist/main.js is missing: run npm ci && npm run build first"; exit 1; }
command -v node >/dev/null || { say "node (20 or later) is not on PATH"; exit 1; }

lib="$PREFIX/lib/podshim"
staging="$PREFIX/lib/.podshim-new"
rm -rf "$staging"
mkdir -p "$staging" "$PREFIX/bin"
cp -a package.json package-lock.json dist proto "$staging/"
# Production dependencies only; --prefer-offline uses npm's cache when it has them.
(cd "$staging" && npm ci --omit=dev --ignore-scripts --prefer-offline --no-audit --no-fund --loglevel=error)
# Swap in one rename so a running podshim keeps its files until it restarts.
if [[ -d $lib ]]; then mv "$lib" "$PREFIX/lib/.podshim-old"; fi
mv "$staging" "$lib"
rm -rf "$PREFIX/lib/.podshim-old"
ln -sfn "../lib/podshim/dist/main.js" "$PREFIX/bin/podshim"
say "installed $("$PREFIX/bin/podshim" --version | head -2 | tr '\n' ' ')into $lib"

config="$SYSCONFDIR/podshim/config.toml"
mkdir -p "$SYSCONFDIR/podshim"
if [[ -f $config ]]; then
  say "kept the existing $config"
else
  "$PREFIX/bin/podshim" config default >"$config.tmp"
  mv "$config.tmp" "$config"
  say "wrote $config (every setting at its default)"
fi

mkdir -p "$UNITDIR"
sed -e "s|/usr/local/bin/podshim|$PREFIX/bin/podshim|" -e "s|/etc/podshim/config.toml|$config|" \
  packaging/podshim.service >"$UNITDIR/podshim.service"
say "wrote $UNITDIR/podshim.service"

if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null && [[ $UNITDIR == /etc/systemd/system ]]; then
  systemctl daemon-reload
  say "start it with: systemctl enable --now podshim   (check the node first: $PREFIX/bin/podshim doctor)"
else
  say "systemd is not running here; start podshim by hand (check the node first: $PREFIX/bin/podshim doctor):"
  say "  mkdir -p /var/log/podshim && setsid $PREFIX/bin/podshim --config $config >>/var/log/podshim/podshim.log 2>&1 </dev/null &"
fi
