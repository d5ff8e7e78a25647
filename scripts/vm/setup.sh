#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# The VM test runner's own set-up: installs, when missing, qemu, the static
# busybox and the distribution kernel asked for. Installing a kernel package
# puts it under /boot and /lib/modules only; the running kernel is untouched.
#
#   scripts/vm/setup.sh KERNEL      KERNEL = 6.12 | 6.1
#
# Prints the kernel release found (e.g. 6.12.118+deb12-amd64) on stdout.
set -euo pipefail

log() { echo "[vm-setup] $*" >&2; }
die() { echo "vm-setup: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (apt-get, and the VM runner mounts and boots as root)"
series=${1:-}
case "$series" in
  6.12 | 6.1) ;;
  *) die "unknown kernel '${series}': use 6.12 or 6.1" ;;
esac

# the newest plain amd64 flavour of that series under /boot (not cloud, not rt)
find_release() {
  local f r best=""
  for f in /boot/vmlinuz-"$series".*-amd64; do
    [ -e "$f" ] || continue
    r=${f#/boot/vmlinuz-}
    case "$r" in *-cloud-amd64 | *-rt-amd64) continue ;; esac
    [ -d "/lib/modules/$r/kernel" ] || continue
    best=$(printf '%s\n%s\n' "$best" "$r" | sed '/^$/d' | sort -V | tail -n 1)
  done
  [ -n "$best" ] && echo "$best"
}

apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1 || {
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "$@" >/dev/null
  }
}

# package -> a file it installs
declare -A PKGS=(
  [qemu-system-x86]=/usr/bin/qemu-system-x86_64
  [busybox-static]=/bin/busybox
  [kmod]=/usr/bin/kmod
  [xz-utils]=/usr/bin/xz
  [zstd]=/usr/bin/zstd
  [cpio]=/usr/bin/cpio
)
missing=()
for p in "${!PKGS[@]}"; do
  [ -e "${PKGS[$p]}" ] || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing: ${missing[*]}"
  apt_install "${missing[@]}"
fi

if ! release=$(find_release); then
  case "$series" in
    # Debian 12 carries 6.12 as versioned packages; the unsigned image is the
    # plain one (no shim/secure-boot chain needed to boot it in qemu)
    6.12)
      pkg=$(apt-cache search --names-only '^linux-image-6\.12\.[0-9]+\+deb12-amd64-unsigned$' 2>/dev/null |
        awk '{print $1}' | sort -V | tail -n 1)
      if [ -z "$pkg" ]; then
        apt-get update -qq >/dev/null
        pkg=$(apt-cache search --names-only '^linux-image-6\.12\.[0-9]+\+deb12-amd64-unsigned$' |
          awk '{print $1}' | sort -V | tail -n 1)
      fi
      [ -n "$pkg" ] || die "no linux-image-6.12.*+deb12-amd64-unsigned package in the apt sources"
      ;;
    6.1) pkg=linux-image-amd64 ;;   # Debian 12's own kernel (the oracle's)
  esac
  log "installing $pkg (the running kernel is not touched)"
  apt_install "$pkg"
  release=$(find_release) || die "$pkg installed, but no /boot/vmlinuz-$series.*-amd64 with its modules"
fi
echo "$release"
