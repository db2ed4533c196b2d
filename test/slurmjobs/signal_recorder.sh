#!/bin/bash
# A Slurm batch job that writes one line on its stdout when it starts and
# for every SIGUSR1, SIGCONT and SIGTERM it receives:
#
#	EVENT restart=SLURM_RESTART_COUNT pid=PID t=EPOCH_SECONDS
#
# so that a test can tell which run of a requeued job saw what, and when.
# It runs until SIGTERM (then exits 143) or SIGKILL.
run=${SLURM_RESTART_COUNT:-0}
event() { echo "$1 restart=$run pid=$$ t=$EPOCHREALTIME"; }
trap 'event usr1' USR1
trap 'event cont' CONT
trap 'event term; exit 143' TERM
event start
while :; do
	# bash runs a trap only between commands; the wait builtin, unlike a
	# foreground sleep, returns as soon as a trapped signal arrives.
	sleep 1 &
	wait $!
done
