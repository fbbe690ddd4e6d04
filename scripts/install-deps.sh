#!/usr/bin/env bash
# Installs the Debian packages podshim's integration tests run against (containerd, runc, CNI
# plugins, a registry, a static busybox for test images, gcc for the pause program, gcc-multilib for the
# seccomp test's 32-bit probe).
# Idempotent: a machine that already has everything is left untouched and nothing is fetched.
set -euo pipefail

packages=(
  containerd
  runc
  containernetworking-plugins
  docker-registry
  busybox-static
  iproute2
  iptables
  socat
  gcc
  gcc-multilib
  protobuf-compiler
  libprotobuf-dev
  libc6-dev
  crun
  procps
  util-linux
)

if [[ $(id -u) -ne 0 ]]; then
  echo "install-deps.sh: must run as root (apt-get install)" >&2
  exit 1
fi

# dpkg's own status rather than `command -v`: busybox-static and busybox both provide /bin/busybox,
# and a binary on PATH says nothing about which package put it there.
missing=()
for pkg in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
  if [[ $status != installed ]]; then
    missing+=("$pkg")
  fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  exit 0
fi

echo "install-deps.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# The containerd package would start a daemon through its init scripts where an init system
# exists; tests start their own containerd, so a policy-rc.d refusal keeps the system one off.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [[ ! -e $policy ]]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  created_policy=1
fi
trap 'if [[ $created_policy -eq 1 ]]; then rm -f "$policy"; fi' EXIT
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
