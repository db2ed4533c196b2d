//go:build linux

package dump

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/gocrpb"
	"github.com/gocr/gocr/parasite"
	"github.com/gocr/gocr/proc"
)

// POSIX timers (timer_create(2)). /proc/PID/timers names each timer, its
// clock and how it notifies; what is left of it and its interval only the
// process can read, so the parasite fills them in (timerValues). The
// restorer recreates each under its ID (restorer/c/restorer.c).

// collectPosixTimers reads what /proc shows of pid's timers.
func collectPosixTimers(pid int) ([]*gocrpb.PosixTimer, error) {
	ts, err := proc.ReadPosixTimers(pid)
	if err != nil {
		return nil, err
	}
	var out []*gocrpb.PosixTimer
	for _, t := range ts {
		pt := &gocrpb.PosixTimer{Id: t.ID, ClockId: t.ClockID, Notify: t.Notify, Signo: t.Signo, Sigval: t.SigValue}
		switch {
		case t.Notify&proc.SigevThreadID != 0:
			pt.NotifyTid = t.Target
		case t.Target != int32(pid):
			// sigev_notify SIGEV_SIGNAL goes to the process that
			// created the timer (kernel/time/posix-timers.c
			// good_sigevent), which is this one.
			return nil, fmt.Errorf("POSIX timer %d notifies pid %d, not its own process", t.ID, t.Target)
		}
		out = append(out, pt)
	}
	if err := checkTimerIDsRestorable(len(out), timerIDsProbe); err != nil {
		return nil, err
	}
	return out, nil
}

// prctl PR_TIMER_CREATE_RESTORE_IDS and its GET operation
// (include/uapi/linux/prctl.h, Linux 6.16).
const (
	prTimerCreateRestoreIDs    = 77
	prTimerCreateRestoreIDsGet = 2
)

// timerIDsProbe asks this kernel whether timer_create can be given the
// ID to use (EINVAL before Linux 6.16, kernel/sys.c).
func timerIDsProbe() error {
	_, err := unix.PrctlRetInt(prTimerCreateRestoreIDs, prTimerCreateRestoreIDsGet, 0, 0, 0)
	return err
}

// checkTimerIDsRestorable refuses n POSIX timers on a kernel that could
// not recreate them under their IDs: a restore on this machine, the
// usual one, would fail after the dump had ended the job.
func checkTimerIDsRestorable(n int, probe func() error) error {
	if n == 0 {
		return nil
	}
	if err := probe(); err != nil {
		return fmt.Errorf("it has %d POSIX timers, which this kernel could not recreate under their IDs at a restore (prctl PR_TIMER_CREATE_RESTORE_IDS, Linux 6.16 and later): %w", n, err)
	}
	return nil
}

// timerValues fills in, from inside the process, each timer's time left
// and interval. A timer whose last signal was delivered with an overrun
// count is refused: the kernel offers no way to set that count again
// (timer_settime clears it, kernel/time/posix-timers.c), and the process
// may still ask for it with timer_getoverrun.
func timerValues(p *parasite.Parasite, task *gocrpb.Task) error {
	if len(task.PosixTimers) == 0 {
		return nil
	}
	ids := make([]int32, len(task.PosixTimers))
	for i, t := range task.PosixTimers {
		ids[i] = t.Id
	}
	vals, err := p.PosixTimers(ids)
	if err != nil {
		return fmt.Errorf("read POSIX timers: %w", err)
	}
	for i, t := range task.PosixTimers {
		if vals[i].Overrun != 0 {
			return fmt.Errorf("POSIX timer %d: its last signal came with an overrun count of %d, which gocr cannot restore", t.Id, vals[i].Overrun)
		}
		t.ValueNs, t.IntervalNs = vals[i].ValueNs, vals[i].IntervalNs
	}
	return nil
}
