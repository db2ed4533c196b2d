//go:build linux

package restorer

import (
	"encoding/binary"

	"github.com/gocr/gocr/gocrpb"
)

// A POSIX timer's own signal, queued at the dump, is not requeued as an
// ordinary signal: the restorer has the timer queue it again, so that
// later expirations count as its overrun instead of queueing a second
// signal (restorer.c queue_timer_signal).

// siTimer is SI_TIMER, the si_code of a timer's signal
// (include/uapi/asm-generic/siginfo.h).
const siTimer = -2

// Offsets in a 64-bit siginfo (include/uapi/asm-generic/siginfo.h): the
// code, then in the _timer member of the union at 16 the timer's ID
// (si_tid), the overrun and the value.
const (
	siCodeOff    = 8
	siTimerIDOff = 16
	siValueOff   = 24
)

// queuedTimerSignals finds, among task's pending signals, the one each
// POSIX timer queued itself, if any: a signal with SI_TIMER, the timer's
// ID, signal and value, on the queue the timer notifies (the thread's
// for SIGEV_THREAD_ID, else the process's; kernel/time/posix-timers.c).
// The kernel queues at most one per timer (man 2 timer_getoverrun). It
// returns the timers' IDs and the siginfos to leave out of the requeue.
func queuedTimerSignals(task *gocrpb.Task) (map[int32]bool, map[*gocrpb.SigInfo]bool) {
	timers, skip := map[int32]bool{}, map[*gocrpb.SigInfo]bool{}
	claim := func(si *gocrpb.SigInfo, tid int32) {
		b := si.Siginfo
		if len(b) < siValueOff+8 || int32(binary.LittleEndian.Uint32(b[siCodeOff:])) != siTimer {
			return
		}
		id := int32(binary.LittleEndian.Uint32(b[siTimerIDOff:]))
		for _, t := range task.PosixTimers {
			threadTimer := t.Notify&sigevThreadID != 0
			if t.Id != id || timers[id] || uint32(t.Signo) != si.Signo ||
				t.Sigval != binary.LittleEndian.Uint64(b[siValueOff:]) ||
				threadTimer != (tid != 0) || (threadTimer && t.NotifyTid != tid) {
				continue
			}
			timers[id], skip[si] = true, true
		}
	}
	for _, th := range task.Threads {
		for _, si := range th.Pending {
			claim(si, th.Tid)
		}
	}
	for _, si := range task.SharedPending {
		claim(si, 0)
	}
	return timers, skip
}
