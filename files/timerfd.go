//go:build linux

package files

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/gocrpb"
	"github.com/gocr/gocr/proc"
)

// sameBoot tells whether the restore runs on the boot the dump was taken
// on (the inventory's boot ID).
func sameBoot(s *Sources) bool {
	if s.Dir == nil {
		return false
	}
	boot, err := proc.BootID()
	return err == nil && s.Dir.Inventory().GetBootId() == boot
}

// ClockRebase is what to add to an absolute CLOCK_MONOTONIC or
// CLOCK_BOOTTIME time, as gocr read the clock at the dump, to get the
// same instant for the restored job as gocr reads it here: zero on the
// boot of the dump, and on another the difference the job's time
// namespace makes (restorer/timens.go).
type ClockRebase struct {
	MonotonicNs int64
	BoottimeNs  int64
}

// of returns the rebase of a clock that starts at boot.
func (r *ClockRebase) of(clock int) int64 {
	if clock == unix.CLOCK_BOOTTIME || clock == clockBoottimeAlarm {
		return r.BoottimeNs
	}
	return r.MonotonicNs
}

// tfdIocSetTicks is TFD_IOC_SET_TICKS, _IOW('T', 0, __u64)
// (include/uapi/linux/timerfd.h; needs CONFIG_CHECKPOINT_RESTORE).
const tfdIocSetTicks = 0x40085400

// timerfdKind is a timerfd_create(2) timer: its clock, the time left, its
// interval and the expirations not yet read.
type timerfdKind struct{}

func init() { register(timerfdKind{}) }

func (timerfdKind) Name() string { return "timerfd" }

func (timerfdKind) Match(e *Entry) bool { return e.Target == "anon_inode:[timerfd]" }

func (timerfdKind) Dump(e *Entry, fd *gocrpb.Fd) error {
	// A periodic timer that fired and was not read is brought up to date
	// (ticks, next expiry) only by read or timerfd_gettime (fs/timerfd.c
	// timerfd_gettime, hrtimer_forward); fdinfo alone shows it stale and
	// disarmed. gettime on gocr's own handle of the same file does that
	// without touching the process.
	if err := refreshTimerfd(e.Pid, e.Fd); err != nil {
		return err
	}
	tf, err := proc.ReadTimerfd(e.Pid, e.Fd)
	if err != nil {
		return err
	}
	m := &gocrpb.TimerfdFd{Clockid: int32(tf.ClockID), Ticks: tf.Ticks, ValueNs: tf.ValueNs, IntervalNs: tf.IntervalNs,
		SettimeFlags: tf.SettimeFlags}
	if tf.SettimeFlags&unix.TFD_TIMER_ABSTIME != 0 && (tf.ValueNs > 0 || tf.IntervalNs > 0) {
		// fdinfo shows the time left even for an absolute timer
		// (fs/timerfd.c timerfd_show, timerfd_get_remaining): its
		// expiration is the clock's time now plus that, within the
		// microseconds since fdinfo was read.
		now, err := clockNow(tf.ClockID)
		if err != nil {
			return err
		}
		m.ExpiryNs = now + tf.ValueNs
	}
	fd.Kind = &gocrpb.Fd_Timerfd{Timerfd: m}
	return nil
}

// Alarm clocks, which timerfd_create(2) accepts, and golang.org/x/sys/unix
// names but for clock_gettime (include/uapi/linux/time.h).
const (
	clockRealtimeAlarm = 8
	clockBoottimeAlarm = 9
)

// clockNow reads a timerfd's clock in nanoseconds. An alarm clock reads
// as the clock it wakes the system on (man 2 timerfd_create).
func clockNow(clock int) (int64, error) {
	switch clock {
	case clockRealtimeAlarm:
		clock = unix.CLOCK_REALTIME
	case clockBoottimeAlarm:
		clock = unix.CLOCK_BOOTTIME
	}
	var ts unix.Timespec
	if err := unix.ClockGettime(int32(clock), &ts); err != nil {
		return 0, fmt.Errorf("clock_gettime %d: %w", clock, err)
	}
	return ts.Nano(), nil
}

// realtimeClock tells whether a clock tells the wall time, which goes on
// across boots and machines (man 2 clock_gettime); the others start at
// boot.
func realtimeClock(clock int) bool {
	return clock == unix.CLOCK_REALTIME || clock == clockRealtimeAlarm
}

func refreshTimerfd(pid, fd int) error {
	tfd, err := takeFd(pid, fd)
	if err != nil {
		return err
	}
	defer unix.Close(tfd)
	var cur unix.ItimerSpec
	return unix.TimerfdGettime(tfd, &cur)
}

// Open recreates the timer with the time it had left and its interval
// (relative: the time the process was not running does not count, as for
// every timer gocr restores), and the expirations not yet read.
func (timerfdKind) Open(s *Sources, fd *gocrpb.Fd) (int32, error) {
	tf := fd.GetTimerfd()
	flags := unix.TFD_CLOEXEC
	if fd.Flags&unix.O_NONBLOCK != 0 {
		flags |= unix.TFD_NONBLOCK
	}
	nfd, err := unix.TimerfdCreate(int(tf.GetClockid()), flags)
	if err != nil {
		return 0, fmt.Errorf("timerfd_create clock %d: %w", tf.GetClockid(), err)
	}
	n := s.AddFd(nfd, "timerfd")
	setFlags := int(tf.GetSettimeFlags())
	value := tf.GetValueNs()
	if value <= 0 && tf.GetIntervalNs() > 0 {
		// Due right at the dump: the next period starts now.
		value = tf.GetIntervalNs()
	}
	if setFlags&unix.TFD_TIMER_ABSTIME != 0 && tf.GetExpiryNs() != 0 {
		// An absolute timer expires when its clock says so, the time
		// spent dumped included (a past expiration fires at once and
		// counts the periods missed). A clock that starts at boot goes
		// on in the job's time namespace after a reboot, which gocr,
		// outside it, sees moved by the rebase. Older images do not
		// say how far: there the timer gets the time it had left, as
		// a relative one does.
		value = tf.GetExpiryNs()
		switch clock := int(tf.GetClockid()); {
		case realtimeClock(clock):
		case s.Rebase != nil:
			// Before this boot began is past all the same.
			value = max(value+s.Rebase.of(clock), 1)
		case !sameBoot(s):
			now, err := clockNow(clock)
			if err != nil {
				return 0, err
			}
			value = now + max(tf.GetValueNs(), 1)
		}
	}
	// Disarmed, it still keeps its flags (fs/timerfd.c timerfd_setup).
	if value > 0 || setFlags != 0 {
		spec := unix.ItimerSpec{Value: unix.NsecToTimespec(max(value, 0))}
		if value > 0 {
			spec.Interval = unix.NsecToTimespec(tf.GetIntervalNs())
		}
		if err := unix.TimerfdSettime(nfd, setFlags, &spec, nil); err != nil {
			return 0, fmt.Errorf("timerfd_settime flags %#o: %w", setFlags, err)
		}
	}
	if tf.GetTicks() > 0 {
		if err := setTicks(nfd, tf.GetTicks()); err != nil {
			return 0, fmt.Errorf("set %d unread expirations: %w", tf.GetTicks(), err)
		}
	}
	return n, nil
}
