#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# npm run test:vm -- --kernel 6.12|6.1 [--report FILE] [--keep DIR] [--timeout S] [vitest filters/options...]
#
# Builds the checkout on this machine (scripts/setup.sh: the VM sees the host's
# root read-only, so the BPF objects and dist/ are made here), then runs
# vitest inside a VM booted on that distribution kernel (scripts/vm/run.sh) and
# exits with vitest's status. --report FILE writes vitest's JSON report there;
# --keep DIR keeps what the tests wrote to $IVB_VM_OUT (e.g. the oracle's logs).
# Examples:
#   npm run test:vm -- --kernel 6.12 test/vm-guard.test.ts
#   ORACLE_SKIP="info unicast mcast arp nd ct" npm run test:vm -- --kernel 6.12 test/oracle.test.ts
set -euo pipefail
cd "$(dirname "$0")/../.."

die() { echo "test:vm: $*" >&2; exit 1; }

series="" report="" keep="" timeout_s=2400
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --kernel) series=${2:-}; shift 2 ;;
    --kernel=*) series=${1#--kernel=}; shift ;;
    --report) report=${2:-}; shift 2 ;;
    --keep) keep=${2:-}; shift 2 ;;
    --timeout) timeout_s=${2:-}; shift 2 ;;
    -h | --help) sed -n '3,12p' "$0"; exit 0 ;;
    *) args+=("$1"); shift ;;
  esac
done
case "$series" in
  6.12 | 6.1) ;;
  "") die "--kernel 6.12|6.1 is required (e.g. npm run test:vm -- --kernel 6.12 test/vm-guard.test.ts)" ;;
  *) die "unknown kernel '$series': use 6.12 or 6.1" ;;
esac
[ "$(id -u)" = 0 ] || die "needs root (BPF, namespaces, the VM's mounts)"

bash scripts/setup.sh
bash scripts/vm/setup.sh "$series" >/dev/null

out=$(mktemp -d /tmp/ivb-vm-test.XXXXXX)
trap 'rm -rf "$out"' EXIT
vitest=(node node_modules/vitest/vitest.mjs run --reporter=default)
[ -n "$report" ] && vitest+=(--reporter=json --outputFile.json=/tmp/ivb-vm-out/report.json)
set +e
bash scripts/vm/run.sh --kernel "$series" --out "$out" --timeout "$timeout_s" -- "${vitest[@]}" "${args[@]}"
rc=$?
set -e
if [ -n "$report" ]; then
  if [ -s "$out/report.json" ]; then
    cp "$out/report.json" "$report"
  else
    echo "test:vm: the run wrote no JSON report" >&2
    [ $rc -ne 0 ] || rc=1
  fi
fi
if [ -n "$keep" ]; then
  mkdir -p "$keep" && cp -r "$out"/. "$keep"/
fi
exit $rc
