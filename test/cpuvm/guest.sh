#!/usr/bin/env bash
# Runs inside the guest (test/cpuvm/run.sh), as root, from a systemd unit:
# shows the CPU and kernel, clones the repository and runs the command in
# /mnt/share/cmd there, as CI would. Output to out.log, exit code to rc.
set -u
share=/mnt/share
exec > >(tee "$share/out.log" >/dev/console) 2>&1
echo "== guest: $(uname -r), $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo)"
echo "== avx512 flags in /proc/cpuinfo: $(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -c avx512)"
dmesg | grep -E 'x86/fpu: (Enabled xstate|Supporting XSAVE)' || true
echo "== cgroups: $(stat -f -c %T /sys/fs/cgroup), LSMs: $(cat /sys/kernel/security/lsm 2>/dev/null)"
export HOME=/root PATH=/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export GOPROXY=file:///root/go/pkg/mod/cache/download GOSUMDB=off GOFLAGS=-buildvcs=false CI=true
rm -rf /root/ci && mkdir -p /root/ci
git clone -q "$share/gocr.git" /root/ci/gocr && cd /root/ci/gocr || { echo 1 >"$share/rc"; exit 0; }
echo "== commit $(git rev-parse HEAD), running: $(cat "$share/cmd")"
start=$(date +%s)
eval "$(cat "$share/cmd")" </dev/null
rc=$?
echo "== exit $rc after $(( $(date +%s) - start )) s"
sync
echo "$rc" >"$share/rc"
