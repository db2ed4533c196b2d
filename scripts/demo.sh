#!/usr/bin/env bash
# make demo: a counter is started, checkpointed (which ends it), and
# restarted from its images with the same PID; its output continues where
# it stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d /tmp/gocr-demo.XXXXXX)
pid=
cleanup() {
	[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

cat >"$work/counter.c" <<'C'
#include <stdio.h>
#include <unistd.h>
int main(void)
{
	for (long n = 1;; n++) {
		printf("counter: %ld (pid %d)\n", n, getpid());
		fflush(stdout);
		usleep(200000);
	}
}
C
gcc -O1 -o "$work/counter" "$work/counter.c"

# Only stdin/stdout/stderr go to the demo program: fds inherited from
# elsewhere (a CI runner's pipes) are not part of it.
for fd in /proc/self/fd/*; do
	n=${fd##*/}
	[ "$n" -gt 2 ] 2>/dev/null && eval "exec $n>&-" 2>/dev/null || true
done
set +m
"$work/counter" >"$work/counter.log" 2>&1 </dev/null &
pid=$!
sleep 1.2
echo "== the counter runs as pid $pid:"
cat "$work/counter.log"

echo "== gocr dump -t $pid -D $work/images   (dump, then the process ends)"
./gocr dump -t "$pid" -D "$work/images"
# gocr leaves reaping to the parent, this shell: wait for it.
wait "$pid" 2>/dev/null || true
echo "== images written:"
ls -l "$work/images"
if [ -d "/proc/$pid" ]; then echo "pid $pid is still there" >&2; exit 1; fi
echo "== pid $pid is gone; the log stopped at: $(tail -n1 "$work/counter.log")"

before=$(wc -l <"$work/counter.log")
echo "== gocr restore -D $work/images -d"
./gocr restore -D "$work/images" -d
sleep 1.2
echo "== the restored counter, same pid, continues from where it was:"
tail -n "+$((before + 1))" "$work/counter.log"
grep -q "pid $pid" <(tail -n1 "$work/counter.log")
kill "$pid"
pid=
echo "== demo done"
