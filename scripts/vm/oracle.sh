#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# The kernel oracle (../shared/oracle: the real ipvlan driver in a VM) rerun
# on another Debian kernel, its records written into test/oracle/:
#
#   scripts/vm/oracle.sh --kernel 6.12      -> test/oracle/kernel-ipvlan-6.12.{json,matrix.txt,meta.json}
#
# The oracle's own runner and scenarios, unchanged but for `-cpu max`: 6.12
# oopses at boot (int3 in sched_clock_cpu while patching text) on qemu's
# default CPU model under TCG. ORACLE_* settings pass through (README there).
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD
ORACLE=${IVB_ORACLE_DIR:-$REPO/../shared/oracle}

die() { echo "vm-oracle: $*" >&2; exit 1; }
series=""
while [ $# -gt 0 ]; do
  case "$1" in
    --kernel) series=${2:-}; shift 2 ;;
    -h | --help) sed -n '3,11p' "$0"; exit 0 ;;
    *) die "unknown argument '$1'" ;;
  esac
done
[ -n "$series" ] || die "--kernel 6.12|6.1 is required"
[ -x "$ORACLE/run-oracle.sh" ] || die "no oracle at $ORACLE (set IVB_ORACLE_DIR)"
release=$(bash scripts/vm/setup.sh "$series")

work=$(mktemp -d /tmp/ivb-vm-oracle.XXXXXX)
trap 'rm -rf "$work"' EXIT
cp -r "$ORACLE" "$work/oracle"
chmod -R u+w "$work/oracle"
rm -rf "$work/oracle/build"
grep -q 'qemu-system-x86_64 -accel "$ACCEL" -smp 2' "$work/oracle/run-oracle.sh" || die "run-oracle.sh's qemu line changed; update this script"
sed -i 's/qemu-system-x86_64 -accel "$ACCEL" -smp 2/qemu-system-x86_64 -accel "$ACCEL" -cpu max -smp 2/' "$work/oracle/run-oracle.sh"
out=$work/oracle/results/kernel-ipvlan-$series.json
KVER=$release ORACLE_TIMEOUT=${ORACLE_TIMEOUT:-1700} ORACLE_OUT=$out bash "$work/oracle/run-oracle.sh" --no-install
if ! python3 -c 'import json,sys; sys.exit(0 if json.load(open(sys.argv[1]))["complete"] else 1)' "${out%.json}.meta.json"; then
  echo "vm-oracle: the run is incomplete; the console's end:" >&2
  tail -n 40 "${out%.json}.console.log" >&2
fi
dest=test/oracle/kernel-ipvlan-$series
if [ "${ORACLE_MERGE:-0}" = 1 ] && [ -f "$dest.json" ]; then
  # a partial rerun (e.g. ORACLE_MODES/EXTRA for the combinations a cut-off
  # run missed): its combinations replace or join those already recorded
  python3 - "$dest.json" "$out" "$dest.meta.json" "${out%.json}.meta.json" <<'PY'
import json, sys
old, new = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
combo = lambda r: (r["mode"], r["flag"], r["wire"])
redone = {combo(r) for r in new}
merged = [r for r in old if combo(r) not in redone] + new
with open(sys.argv[1], "w") as f:   # the oracle's layout: one record a line
    f.write("[\n" + ",\n".join(json.dumps(r) for r in merged) + "\n]\n")
meta = json.load(open(sys.argv[3]))
meta.setdefault("merged_runs", []).append(json.load(open(sys.argv[4])))
meta["records"] = len(merged)
json.dump(meta, open(sys.argv[3], "w"), indent=1)
PY
else
  cp "$out" "$dest.json"
  cp "${out%.json}.meta.json" "$dest.meta.json"
fi
python3 "$work/oracle/compare.py" --matrix "$dest.json" >"$dest.matrix.txt"
echo "vm-oracle: records in $dest.json" >&2
