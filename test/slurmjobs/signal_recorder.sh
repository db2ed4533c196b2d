#!/bin/bash
# A Slurm batch job that writes one line on its stdout when it starts and
# for every SIGUSR1 and SIGTERM it receives:
#
#	EVENT restart=SLURM_RESTART_COUNT pid=PID t=EPOCH_SECONDS preempt=PreemptTime restarts=Restarts
#
# the last two being what `scontrol show job` says of the job at that
# moment, so that a test can tell which run of a requeued job saw what,
# when, and what a program could have learnt about why.
# With SIGNAL_RECORDER_ON_USR1=requeue in its environment it also asks
# Slurm to requeue it after recording a SIGUSR1, recording "requeue" first.
# With SIGNAL_RECORDER_CHILD=1 it also starts a copy of itself as its child,
# which records the same events named child-start, child-term, ...
# It runs until SIGTERM (then exits 143) or SIGKILL.
run=${SLURM_RESTART_COUNT:-0}
prefix=${SIGNAL_RECORDER_PREFIX:-}
event() {
	local t=$EPOCHREALTIME preempt=? restarts=? f out try tries=${2:-2}
	# scontrol is an RPC to slurmctld, which may fail or be slow while it
	# is busy with this very job (a requeue under way): up to two tries
	# of at most a second each, errors on stderr, "?" if none answers.
	# Bounded, because bash runs a trap that comes meanwhile (the
	# requeue's SIGTERM during the SIGUSR1's trap) only once this one is
	# done, and Slurm's SIGKILL follows KillWait (5 s) later: SIGKILL at
	# the second (an scontrol in an RPC may not end at timeout's
	# SIGTERM), and one try at a SIGTERM, so that the SIGUSR1's trap and
	# the SIGTERM's take at most 3 s together.
	for ((try = 0; try < tries; try++)); do
		out=$(timeout -s KILL 1 scontrol -o show job "$SLURM_JOB_ID") && break
		out=
	done
	for f in $out; do
		case $f in
		PreemptTime=*) preempt=${f#*=} ;;
		Restarts=*) restarts=${f#*=} ;;
		esac
	done
	echo "$prefix$1 restart=$run pid=$$ t=$t preempt=$preempt restarts=$restarts"
}
on_usr1() {
	event usr1
	if [ "$SIGNAL_RECORDER_ON_USR1" = requeue ]; then
		# Recorded first: the requeue's SIGTERM comes while scontrol runs,
		# and its trap ends the script.
		event requeue
		scontrol requeue "$SLURM_JOB_ID"
	fi
}
trap on_usr1 USR1
# No trap on SIGCONT, which Slurm sends right before every SIGTERM: bash
# 5.2 loses a SIGTERM that comes a few milliseconds after a trapped
# SIGCONT (its trap never runs; measured here, 143 of 300 tries with the
# SIGTERM 0-4 ms after, none without the SIGCONT trap).
trap 'event term 1; exit 143' TERM
event start
if [ "$SIGNAL_RECORDER_CHILD" = 1 ]; then
	SIGNAL_RECORDER_CHILD= SIGNAL_RECORDER_PREFIX=child- "$0" &
fi
while :; do
	# bash runs a trap only between commands; the wait builtin, unlike a
	# foreground sleep, returns as soon as a trapped signal arrives.
	sleep 1 &
	wait $!
done
