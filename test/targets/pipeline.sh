#!/bin/bash
# pipeline: `producer | transform | consumer`, three bash subshells that
# each keep state, run by one bash (the root, started with setsid so the
# session is the job).
#
#   producer   emits 0, 1, 2, ... (sleep 5 ms between), appending each
#              number to DIR/produced after it wrote it to the pipe, until
#              DIR/stop exists;
#   transform  `while read x; do echo $((x*x)); done` (bash, not awk: mawk
#              buffers its input);
#   consumer   appends every line to DIR/out; until DIR/stop exists it
#              sleeps 20 ms per line, so a backlog builds up in the pipes
#              (data in flight at dump time). It creates RESULT.ready after
#              20 lines.
#
# Not the SIGTERM contract: the harness creates DIR/stop; the producer ends,
# EOF flows down the pipeline, and the root checks that DIR/out is exactly
# the squares of 0..N-1, N being the numbers the producer emitted, without
# gap or repeat. It writes PASS or FAIL to RESULT and exits 0 or 1.
#
# Usage: pipeline.sh RESULT_PATH   (DIR is RESULT_PATH's directory)
result=$1
dir=${result%/*}
out=$dir/out
produced=$dir/produced
stop=$dir/stop
: >"$out"
: >"$produced"

producer() {
	local i=0
	while [ ! -e "$stop" ]; do
		echo "$i"
		echo "$i" >>"$produced"
		i=$((i + 1))
		sleep 0.005
	done
}

transform() {
	local x
	while read -r x; do
		echo $((x * x))
	done
}

consumer() {
	local y n=0
	while read -r y; do
		echo "$y" >>"$out"
		n=$((n + 1))
		if [ "$n" -eq 20 ]; then
			: >"$result.ready"
		fi
		if [ ! -e "$stop" ]; then
			sleep 0.02
		fi
	done
}

producer | transform | consumer

verdict() {
	local i=0 y n
	n=$(wc -l <"$produced")
	while read -r y; do
		if [ "$y" != $((i * i)) ]; then
			echo "FAIL: out line $((i + 1)) is $y, want $((i * i))"
			return 1
		fi
		i=$((i + 1))
	done <"$out"
	if [ "$i" -ne "$n" ]; then
		echo "FAIL: out has $i lines, the producer emitted $n numbers"
		return 1
	fi
	if [ "$n" -lt 20 ]; then
		echo "FAIL: only $n numbers"
		return 1
	fi
	echo PASS
}

v=$(verdict)
echo "pipeline: $v"
echo "$v" >"$result"
[ "$v" = PASS ]
