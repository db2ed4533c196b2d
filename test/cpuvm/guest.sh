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
for _ in $(seq 60); do ip -4 addr show | grep -q 10.0.2.15 && break; sleep 0.5; done
echo "== addresses: $(ip -4 -o addr show | awk '{print $2, $4}' | tr '\n' ' ')"
export HOME=/root PATH=/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export GOPROXY=file:///root/go/pkg/mod/cache/download GOSUMDB=off GOFLAGS=-buildvcs=false CI=true
# Not under /root: the ordinary-user tests restore as another user in the
# test directory.
rm -rf /srv/ci && mkdir -p /srv/ci
git clone -q "$share/gocr.git" /srv/ci/gocr && cd /srv/ci/gocr || { echo 1 >"$share/rc"; exit 0; }
echo "== commit $(git rev-parse HEAD), running: $(cat "$share/cmd")"
start=$(date +%s)
eval "$(cat "$share/cmd")" </dev/null
rc=$?
echo "== exit $rc after $(( $(date +%s) - start )) s"
sync
echo "$rc" >"$share/rc"
