#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# Runs one command inside a qemu VM that boots a distribution kernel with this
# machine's root file system, read-only, as its own: the checkout, node and
# node_modules are the host's, as they are. The VM has no network device.
#
#   scripts/vm/run.sh --kernel 6.12|6.1 [--out DIR] [--timeout S] [--mem MB] -- CMD [ARG...]
#
# Inside: / is the host's / over virtio 9p (read-only) under an overlay whose
# upper layer is tmpfs (writes stay in the VM and vanish with it); /run and
# /dev/shm are tmpfs (/tmp is the overlay's, so a checkout there is seen), /sys/fs/bpf bpffs, /run/netns exists; the kernel's module auto-loading
# runs modprobe in that root. CMD runs as root in the current directory with
# HOME=/tmp/home. IVB_VM_OUT names a directory the command may write to: with
# --out DIR it is DIR on the host (kept), else a temporary one (removed).
# Settings that start with IVB_, IPVLAN_BPF_, ORACLE_ or VITEST_ pass through.
#
# Output: the command's output on stdout (the VM's serial console), then the
# command's exit status as ours. 1 with a line "vm: ..." when the VM itself
# failed (missing package, boot failure, time limit) before reporting one.
# The initramfs is built on the fly under a temporary directory and removed
# with everything else of the VM at exit, also on failure or interruption.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)

die() { echo "vm: $*" >&2; exit 1; }

series="" out="" timeout_s=1800 mem=3072
while [ $# -gt 0 ]; do
  case "$1" in
    --kernel) series=${2:-}; shift 2 ;;
    --out) out=${2:-}; shift 2 ;;
    --timeout) timeout_s=${2:-}; shift 2 ;;
    --mem) mem=${2:-}; shift 2 ;;
    --) shift; break ;;
    -h | --help) sed -n '3,21p' "$0"; exit 0 ;;
    *) die "unknown option '$1' (see --help)" ;;
  esac
done
[ -n "$series" ] || die "--kernel 6.12|6.1 is required"
[ $# -gt 0 ] || die "no command to run (after --)"
[[ "$timeout_s" =~ ^[0-9]+$ ]] || die "--timeout takes seconds, not '$timeout_s'"
[[ "$mem" =~ ^[0-9]+$ ]] || die "--mem takes megabytes, not '$mem'"
[ "$(id -u)" = 0 ] || die "needs root"

release=$(bash "$HERE/setup.sh" "$series") || die "set-up for kernel $series failed (see above)"
kernel=/boot/vmlinuz-$release
moddir=/lib/modules/$release
[ -r "$kernel" ] || die "kernel image $kernel is not readable"

work=$(mktemp -d /tmp/ivb-vm.XXXXXX)
qemu_pid=""
cleanup() {
  local rc=$?
  trap - EXIT INT TERM HUP
  if [ -n "$qemu_pid" ] && kill -0 "$qemu_pid" 2>/dev/null; then
    kill -TERM "$qemu_pid" 2>/dev/null
    wait "$qemu_pid" 2>/dev/null
  fi
  rm -rf "$work"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

if [ -n "$out" ]; then
  mkdir -p "$out" || die "cannot create --out $out"
  out=$(cd "$out" && pwd)
else
  out=$work/out
  mkdir -p "$out"
fi

# ------------------------------------------------------------ initramfs --
root=$work/root
mkdir -p "$root"/{bin,sbin,proc,sys,dev,host,modules}
cp /bin/busybox "$root/bin/busybox"
for a in sh mount umount mkdir insmod chroot cat echo poweroff sync cp sleep dmesg; do
  ln -s busybox "$root/bin/$a"
done

# 9p over virtio (and virtio_pci where it is a module, as on 6.1), in
# dependency order; modules compressed by the distribution are unpacked here
: >"$root/modules/order"
for path in $(for m in virtio_pci 9pnet_virtio 9p overlay; do modprobe -S "$release" --show-depends "$m" 2>/dev/null; done |
  awk '$1 == "insmod" { print $2 }' | awk '!seen[$0]++'); do
  name=$(basename "$path")
  name=${name%.xz}; name=${name%.zst}; name=${name%.gz}
  case "$path" in
    *.xz) xz -dc "$path" >"$root/modules/$name" ;;
    *.zst) zstd -qdc "$path" >"$root/modules/$name" ;;
    *.gz) gzip -dc "$path" >"$root/modules/$name" ;;
    *) cp "$path" "$root/modules/$name" ;;
  esac || die "cannot unpack module $path"
  echo "$name" >>"$root/modules/order"
done
grep -qx 9p.ko "$root/modules/order" || die "kernel $release has no 9p module in $moddir"
grep -qx overlay.ko "$root/modules/order" || die "kernel $release has no overlay module in $moddir"

# the kernel's module auto-loading (request_module) runs this in the
# initramfs' root: hand it to the host's modprobe, which knows the modules
cat >"$root/sbin/modprobe-host" <<'EOF'
#!/bin/sh
exec /bin/chroot /host /sbin/modprobe "$@"
EOF
chmod +x "$root/sbin/modprobe-host"

# TCG: KVM hangs on this kind of host (see ../shared/oracle/README.md);
# IVB_VM_ACCEL=kvm tries it where it works
accel=${IVB_VM_ACCEL:-tcg}

# the job: the command, in the current directory, with the settings passed on
{
  echo '#!/bin/bash'
  echo 'set -o pipefail'
  printf 'cd %q || exit 125\n' "$PWD"
  echo 'export HOME=/tmp/home PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
  echo 'export IVB_VM_OUT=/tmp/ivb-vm-out IVB_VM_KERNEL='"$release"' CI=1 NO_COLOR=1 TERM=dumb'
  echo 'export npm_config_cache=/tmp/home/.npm npm_config_update_notifier=false'
  # emulation runs 5-10 times slower: the demo and the tests stretch their waits
  [ "$accel" = tcg ] && echo 'export IPVLAN_BPF_TIME_SCALE=4'
  env | grep -E '^(IVB_|IPVLAN_BPF_|ORACLE_|VITEST_)[A-Za-z0-9_]*=' | grep -vE '^IVB_VM_(OUT|KERNEL)=' |
    while IFS= read -r kv; do printf 'export %q\n' "$kv"; done
  printf '%q ' "$@"
  echo '2>&1 | cat'
} >"$root/job.sh"

cat >"$root/init" <<'EOF'
#!/bin/sh
# /init of the test VM: 9p root, pseudo file systems, chroot, the job, its status
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
dmesg -n 1
for m in $(cat /modules/order); do
  insmod "/modules/$m" || echo "@@IVB-VM-ERROR insmod $m"
done
mkdir -p /lower /rw
if ! mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=524288 host /lower; then
  echo "@@IVB-VM-ERROR cannot mount the host's root over 9p"
  poweroff -f
fi
# writes (caches, build tools' temp files) land in a tmpfs over it and vanish with the VM
mount -t tmpfs tmpfs /rw
mkdir -p /rw/upper /rw/work
if ! mount -t overlay overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work /host; then
  echo "@@IVB-VM-ERROR cannot mount the overlay over the host's root"
  poweroff -f
fi
H=/host
mount -t proc proc $H/proc
mount -t sysfs sysfs $H/sys
mount -t devtmpfs devtmpfs $H/dev
mkdir -p $H/dev/pts $H/dev/shm
mount -t devpts devpts $H/dev/pts
mount -t tmpfs tmpfs $H/dev/shm
mount -t tmpfs tmpfs $H/run
# /tmp stays the overlay's (writes vanish with the VM as well): a checkout
# under the host's /tmp, and ../shared beside it, must stay visible
mkdir -p $H/run/netns $H/tmp/home $H/tmp/ivb-vm-out
mount -t bpf bpf $H/sys/fs/bpf
mount -t securityfs securityfs $H/sys/kernel/security 2>/dev/null
mount -t tracefs tracefs $H/sys/kernel/tracing 2>/dev/null
mount -t debugfs debugfs $H/sys/kernel/debug 2>/dev/null
mount -t cgroup2 cgroup2 $H/sys/fs/cgroup 2>/dev/null
mount -t 9p -o trans=virtio,version=9p2000.L out $H/tmp/ivb-vm-out || echo "@@IVB-VM-ERROR cannot mount the output share"
echo /sbin/modprobe-host >/proc/sys/kernel/modprobe
# the devices the tests and the oracle make; the rest load on demand
chroot $H /sbin/modprobe -a veth bridge macvlan ipvlan dummy sch_ingress cls_bpf nf_tables nft_ct 2>/dev/null
cp /job.sh $H/tmp/ivb-vm-job.sh
echo "@@IVB-VM-START kernel=$(cat /proc/sys/kernel/osrelease) uptime=$(cut -d' ' -f1 /proc/uptime)"
chroot $H /bin/bash /tmp/ivb-vm-job.sh </dev/null
rc=$?
sync
echo "@@IVB-VM-RC=$rc uptime=$(cut -d' ' -f1 /proc/uptime)"
poweroff -f
EOF
chmod +x "$root/init"

(cd "$root" && find . -print0 | cpio --null -o -H newc --quiet) | gzip -1 >"$work/initramfs.cpio.gz" ||
  die "cannot pack the initramfs"

# ----------------------------------------------------------------- boot --
console=$work/console.log
echo "vm: booting $release ($accel, ${mem} MB, limit ${timeout_s}s)" >&2
timeout --kill-after=10 "$timeout_s" qemu-system-x86_64 -accel "$accel" -cpu max -smp 2 -m "$mem" \
  -display none -monitor none -serial stdio -no-reboot -nic none \
  -kernel "$kernel" -initrd "$work/initramfs.cpio.gz" \
  -append "console=ttyS0 quiet loglevel=1 panic=-1 rdinit=/init" \
  -virtfs local,path=/,mount_tag=host,security_model=none,readonly=on,multidevs=remap \
  -virtfs "local,path=$out,mount_tag=out,security_model=none" \
  </dev/null > >(tee "$console") 2>&1 &
qemu_pid=$!
wait "$qemu_pid"
qrc=$?
qemu_pid=""
sleep 0.2   # let tee drain

rc_line=$(tr -d '\r' <"$console" | grep -a '^@@IVB-VM-RC=' | tail -n 1)
if [ -z "$rc_line" ]; then
  err=$(tr -d '\r' <"$console" | grep -a '^@@IVB-VM-ERROR' | head -n 3 | sed 's/^@@IVB-VM-ERROR /; /' | tr -d '\n')
  [ "$qrc" = 124 ] && die "time limit of ${timeout_s}s reached before the command ended (kernel $release)$err"
  die "the VM ended (qemu status $qrc) before the command reported its status (kernel $release)$err"
fi
rc=${rc_line#@@IVB-VM-RC=}
rc=${rc%% *}
echo "vm: command exited with status $rc on $release" >&2
exit "$rc"
