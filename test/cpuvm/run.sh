#!/usr/bin/env bash
# make test-noavx512: the suite in a KVM guest whose CPU has no AVX-512.
#
# The guest's CPU is this machine's (-cpu host, with KVM) or QEMU's
# emulated one (-cpu max, TCG, where KVM cannot run the guest) less every
# AVX-512 feature, so its XCR0 has no opmask/ZMM state either (QEMU
# derives the XSAVE components from the features); it runs Debian 12 with
# its Linux 6.12 kernel. It runs, as root in a fresh clone of this repository's HEAD,
# the command given (default: `bash .ci/run`, that is `make test` as CI
# runs it) and powers off; its output and exit code come back through a
# shared directory. The guest has no network: the Go modules come from a
# copy of this machine's module cache (GOPROXY=file://).
#
# Usage: test/cpuvm/run.sh [COMMAND...]
#   e.g. test/cpuvm/run.sh go test ./test -run TestX -count=1 -v
# GOCR_CPUVM_DIR (default /var/tmp/gocr-cpuvm) keeps the root file system
# between runs; remove it to build the guest again. GOCR_CPUVM_APPEND adds
# to the guest kernel's command line (apparmor=0 makes SELinux its LSM).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
vm=${GOCR_CPUVM_DIR:-/var/tmp/gocr-cpuvm}
kernel_pkg=linux-image-6.12.107+deb12-amd64-unsigned
mirror=http://deb.debian.org/debian
mem=${GOCR_CPUVM_MEM:-8G}
cpus=${GOCR_CPUVM_CPUS:-2}
# Every AVX-512 feature QEMU 7.2 knows; removing one the host lacks is harmless.
noavx512=-avx512f,-avx512dq,-avx512cd,-avx512bw,-avx512vl,-avx512ifma,-avx512vbmi,-avx512vbmi2,-avx512vnni,-avx512bitalg,-avx512-vpopcntdq,-avx512-bf16,-avx512-fp16,-avx512-vp2intersect,-avx512er,-avx512pf,-avx512-4fmaps,-avx512-4vnniw
# IA32_ARCH_CAPABILITIES: a nested KVM on AMD refuses QEMU's write of it (MSR 0x10a).
noavx512=$noavx512,-arch-capabilities
# The accelerator: KVM (kvm_intel or kvm_amd) runs the guest at the CPU's
# speed with -cpu host less AVX-512. Without them (kvm-pvm, the nested KVM
# of some cloud sandboxes, cannot run an unmodified kernel: its emulator
# fails on the kernel's cmpxchg16b and xrstor, and it passes AVX-512 XSAVE
# state through whatever the CPUID says) QEMU emulates the CPU (TCG):
# `-cpu max` there has AVX2 and no AVX-512 (QEMU 7.2), many times slower.
accel=${GOCR_CPUVM_ACCEL:-}
if [ -z "$accel" ]; then
	if [ -d /sys/module/kvm_intel ] || [ -d /sys/module/kvm_amd ]; then accel=kvm; else accel=tcg; fi
fi
case $accel in
kvm) qemu_cpu=(-accel kvm -cpu "host,$noavx512") ;;
tcg) qemu_cpu=(-accel tcg,thread=multi -cpu "max,$noavx512") ;;
*) echo "run.sh: GOCR_CPUVM_ACCEL is kvm or tcg, not $accel" >&2; exit 1 ;;
esac

[ "$(id -u)" = 0 ] || { echo "run.sh: needs root (debootstrap, chroot, /dev/kvm)" >&2; exit 1; }
[ "$accel" = tcg ] || [ -w /dev/kvm ] || { echo "run.sh: /dev/kvm is missing or not writable: needs KVM (or GOCR_CPUVM_ACCEL=tcg)" >&2; exit 1; }
missing=""
command -v qemu-system-x86_64 >/dev/null || missing="$missing qemu-system-x86"
command -v debootstrap >/dev/null || missing="$missing debootstrap"
command -v mkfs.ext4 >/dev/null || missing="$missing e2fsprogs"
command -v zstdcat >/dev/null || missing="$missing zstd"
if [ -n "$missing" ]; then
	echo "installing$missing with apt-get"
	apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $missing
fi

mkdir -p "$vm"
root=$vm/rootfs
unmount_root() {
	for m in dev/pts dev sys proc; do
		if mountpoint -q "$root/$m"; then umount "$root/$m"; fi
	done
	return 0
}
unmount_root # what an interrupted run left

if [ ! -e "$root/.gocr-cpuvm-ready" ]; then
	echo "== building the guest's root file system in $root"
	rm -rf "$root"
	debootstrap --variant=minbase \
		--include=systemd-sysv,udev,kmod,iproute2,ca-certificates,git,make,initramfs-tools,zstd,procps \
		bookworm "$root" "$mirror"
	cat >"$root/etc/apt/sources.list" <<SRC
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb ${mirror}-security bookworm-security main
SRC
	trap unmount_root EXIT INT TERM
	for m in proc sys dev dev/pts; do mount --bind "/$m" "$root/$m"; done
	echo do_symlinks=no >>"$root/etc/kernel-img.conf"
	# The services the packages below would start stay off: the tests
	# start their own daemons, as on a CI machine.
	printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
	chmod +x "$root/usr/sbin/policy-rc.d"
	chroot "$root" sh -c "apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $kernel_pkg"
	# The packages the suite needs: the project's own list.
	mkdir -p "$root/tmp/gocr-deps"
	cp "$repo/Makefile" "$root/tmp/gocr-deps/"
	chroot "$root" sh -c 'cd /tmp/gocr-deps && make deps'
	# protoc, which `make tools` would otherwise fetch with apt-get.
	chroot "$root" sh -c 'DEBIAN_FRONTEND=noninteractive apt-get install -y protobuf-compiler'
	rm -rf "$root/tmp/gocr-deps" "$root/usr/sbin/policy-rc.d"
	chroot "$root" systemctl disable redis-server munge slurmd slurmctld 2>/dev/null || true
	chroot "$root" apt-get clean
	unmount_root
	trap - EXIT INT TERM
	echo "== copying Go ($(go env GOROOT)) into the guest"
	rm -rf "$root/usr/local/go"
	cp -a "$(go env GOROOT)" "$root/usr/local/go"
	# The kernel uncompressed, booted through its PVH entry: a nested KVM
	# that emulates the code a guest runs at low addresses (kvm-pvm) fails
	# on the BMI2 instructions of the zstd decompressor in vmlinuz.
	vmlinuz=$(ls "$root"/boot/vmlinuz-* | tail -n1)
	off=$(grep -obUaP '\x28\xb5\x2f\xfd' "$vmlinuz" | head -n1 | cut -d: -f1)
	tail -c +$((off + 1)) "$vmlinuz" | zstdcat >"$vm/vmlinux" 2>/dev/null || true
	[ "$(head -c 4 "$vm/vmlinux" | od -An -tx1 | tr -d ' ')" = 7f454c46 ] ||
		{ echo "run.sh: no ELF kernel in $vmlinuz at offset $off" >&2; exit 1; }
	touch "$root/.gocr-cpuvm-ready"
fi

# The guest's configuration, made anew each run.
echo noavx512 >"$root/etc/hostname"
printf '127.0.0.1 localhost\n10.0.2.15 noavx512\n::1 localhost\n' >"$root/etc/hosts"
echo '/dev/vda / ext4 rw,errors=remount-ro 0 1' >"$root/etc/fstab"
passwd -R "$root" -d root >/dev/null
cat >"$root/etc/systemd/system/gocr-cpuvm.service" <<'UNIT'
[Unit]
Description=gocr suite run (test/cpuvm/guest.sh from the shared directory)
After=local-fs.target systemd-modules-load.service
[Service]
Type=oneshot
# The limits of the machine CI runs on, not systemd's defaults for services.
LimitNOFILE=20000
LimitCORE=0:infinity
LimitMEMLOCK=8388608
LimitSTACK=8388608:infinity
TasksMax=infinity
TimeoutStartSec=infinity
ExecStart=/bin/sh -c 'mkdir -p /mnt/share && mount -t 9p -o trans=virtio,version=9p2000.L,msize=1048576 share /mnt/share && bash /mnt/share/guest.sh'
ExecStopPost=/bin/systemctl --no-block poweroff
StandardOutput=journal+console
StandardError=journal+console
[Install]
WantedBy=multi-user.target
UNIT
ln -sf /etc/systemd/system/gocr-cpuvm.service "$root/etc/systemd/system/multi-user.target.wants/gocr-cpuvm.service"
# A network device of its own, cut off from everything outside the guest
# (restrict=on): Slurm resolves the node's name with AI_ADDRCONFIG, and
# Open MPI's TCP transport uses no loopback, both needing an address.
mkdir -p "$root/etc/systemd/network"
printf '[Match]\nName=en*\n[Network]\nAddress=10.0.2.15/24\n' >"$root/etc/systemd/network/20-guest.network"
ln -sf /lib/systemd/system/systemd-networkd.service "$root/etc/systemd/system/multi-user.target.wants/systemd-networkd.service"

# The Go modules the build needs (those of go.mod and the pinned
# protoc-gen-go), as a file proxy: the guest has no network.
echo "== module cache"
(cd "$repo" && go mod download && go mod download google.golang.org/protobuf@"$(sed -n 's/^PROTOC_GEN_GO_VERSION := //p' Makefile)")
mkdir -p "$root/root/go/pkg/mod/cache"
rm -rf "$root/root/go/pkg/mod/cache/download"
cp -a "$(go env GOMODCACHE)/cache/download" "$root/root/go/pkg/mod/cache/download"

# The repository cloned where the guest clones it, and built there once
# (on this machine, in a chroot): the guest finds the build in Go's cache,
# as CI's machine keeps its own, and builds only what differs.
echo "== warming the guest's Go build cache"
guest_env=(env -i HOME=/root PATH=/usr/local/go/bin:/usr/sbin:/usr/bin:/sbin:/bin
	GOPROXY=file:///root/go/pkg/mod/cache/download GOSUMDB=off GOFLAGS=-buildvcs=false)
trap unmount_root EXIT INT TERM
for m in proc sys dev dev/pts; do mount --bind "/$m" "$root/$m"; done
rm -rf "$root/srv/ci" && mkdir -p "$root/srv/ci"
git clone -q "$repo" "$root/srv/ci/gocr"
chroot "$root" "${guest_env[@]}" sh -c 'cd /srv/ci/gocr && make tools && go vet ./... &&
	go test -count=1 -run "^$" ./... >/dev/null &&
	for p in ./images ./proc ./restorer; do go test -c -fuzz . -o /dev/null $p || exit 1; done'
rm -rf "$root/srv/ci"
unmount_root
trap - EXIT INT TERM

echo "== disk image"
rm -f "$vm/disk.img"
mkfs.ext4 -q -F -L gocr-cpuvm -d "$root" "$vm/disk.img" 20G

share=$vm/share
rm -rf "$share"
mkdir -p "$share"
git clone -q --bare "$repo" "$share/gocr.git"
cp "$repo/test/cpuvm/guest.sh" "$share/guest.sh"
# By default what CI runs; where QEMU emulates the CPU, with go test's
# limit for a package raised: the integration package takes about four
# times as long there.
default_cmd='bash .ci/run'
[ "$accel" = kvm ] || default_cmd='export TEST_TIMEOUT=90m; bash .ci/run'
if [ $# -gt 0 ]; then printf '%q ' "$@" >"$share/cmd"; else echo "$default_cmd" >"$share/cmd"; fi
echo "$(git -C "$repo" rev-parse HEAD)" >"$share/commit"

echo "== booting the guest (${qemu_cpu[*]}), console in $vm/console.log"
kdir=$root/boot
start=$(date +%s)
timeout -k 10 "${GOCR_CPUVM_TIMEOUT:-5400}" qemu-system-x86_64 "${qemu_cpu[@]}" -machine q35 -m "$mem" -smp "$cpus" \
	-kernel "$vm/vmlinux" -initrd "$(ls "$kdir"/initrd.img-* | tail -n1)" \
	-append "root=/dev/vda rw console=ttyS0 systemd.unified_cgroup_hierarchy=0 systemd.show_status=0 ${GOCR_CPUVM_APPEND:-}" \
	-drive file="$vm/disk.img",format=raw,if=virtio \
	-virtfs local,path="$share",mount_tag=share,security_model=none,id=share \
	-nic user,restrict=on,model=virtio-net-pci -display none -serial file:"$vm/console.log" -monitor none -no-reboot \
	</dev/null &
qemu=$!
# QEMU waits forever on a guest it cannot run (a KVM internal error): it
# goes when this script does.
trap 'kill $qemu 2>/dev/null' EXIT INT TERM
wait $qemu || true
trap - EXIT INT TERM
echo "== guest done after $(( $(date +%s) - start )) s"
[ -f "$share/rc" ] || { echo "run.sh: the guest left no exit code; see $vm/console.log" >&2; tail -n 30 "$vm/console.log" >&2; exit 1; }
tail -n 40 "$share/out.log"
rc=$(cat "$share/rc")
echo "== guest command exited $rc (full output: $share/out.log)"
exit "$rc"
