#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# One idempotent set-up step: installs the system packages ipvlan-bpf needs
# when they are missing, mounts bpffs, installs the npm dependencies and
# builds the BPF objects and the TypeScript. Safe to run again at any time.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { echo "[setup] $*" >&2; }

[ "$(id -u)" = 0 ] || { echo "setup: ipvlan-bpf needs root (BPF, namespaces)" >&2; exit 1; }

# package -> a file it installs (checked instead of dpkg, which is slow)
declare -A PKGS=(
  [clang]=/usr/bin/clang
  [llvm]=/usr/bin/llvm-objdump
  [libbpf-dev]=/usr/include/bpf/bpf_helpers.h
  [libbpf1]=/usr/lib/x86_64-linux-gnu/libbpf.so.1
  [linux-libc-dev]=/usr/include/linux/bpf.h
  [bpftool]=/usr/sbin/bpftool
  [iproute2]=/usr/sbin/ip
  [iputils-ping]=/usr/bin/ping
  [iputils-arping]=/usr/bin/arping
  [ndisc6]=/usr/bin/ndisc6
  [socat]=/usr/bin/socat
  [nftables]=/usr/sbin/nft
  [conntrack]=/usr/sbin/conntrack
  [tcpdump]=/usr/bin/tcpdump
  [ethtool]=/usr/sbin/ethtool
  [util-linux]=/usr/bin/nsenter
  [procps]=/usr/sbin/sysctl
  [busybox-static]=/bin/busybox
  [python3]=/usr/bin/python3
  [make]=/usr/bin/make
  [containernetworking-plugins]=/usr/lib/cni/host-local
  [podman]=/usr/bin/podman
  [runc]=/usr/sbin/runc
  # only for systemd-analyze (test/package.test.ts verifies the agent's unit);
  # installing the package does not make systemd the init (that is systemd-sysv)
  [systemd]=/usr/bin/systemd-analyze
  [linux-perf]=/usr/bin/perf
)
missing=()
for p in "${!PKGS[@]}"; do
  [ -e "${PKGS[$p]}" ] || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! mount | grep -q ' /sys/fs/bpf type bpf'; then
  mount -t bpf bpf /sys/fs/bpf 2>/dev/null || log "could not mount bpffs on /sys/fs/bpf"
fi

if [ -L node_modules ]; then
  # shared with another checkout (a git worktree): npm ci would empty the
  # other checkout's node_modules through the link
  [ -d node_modules/koffi ] && [ -d node_modules/vitest ] ||
    { echo "setup: node_modules links to $(readlink node_modules), which lacks koffi or vitest" >&2; exit 1; }
elif [ ! -d node_modules/koffi ] || [ ! -d node_modules/vitest ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  log "installing npm dependencies"
  npm ci --no-audit --no-fund --loglevel=error >/dev/null
fi

make -s -C bpf >/dev/null
npx tsc -p tsconfig.json
node scripts/record-build.mjs 2>/dev/null   # dist/build-info.json: the objects' build id
