//go:build linux

package files

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/gocrpb"
	"github.com/gocr/gocr/proc"
)

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
	fd.Kind = &gocrpb.Fd_Timerfd{Timerfd: &gocrpb.TimerfdFd{
		Clockid: int32(tf.ClockID), Ticks: tf.Ticks, ValueNs: tf.ValueNs, IntervalNs: tf.IntervalNs}}
	return nil
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
	value := tf.GetValueNs()
	if value <= 0 && tf.GetIntervalNs() > 0 {
		// Due right at the dump: the next period starts now.
		value = tf.GetIntervalNs()
	}
	if value > 0 {
		spec := unix.ItimerSpec{
			Interval: unix.NsecToTimespec(tf.GetIntervalNs()),
			Value:    unix.NsecToTimespec(value),
		}
		if err := unix.TimerfdSettime(nfd, 0, &spec, nil); err != nil {
			return 0, fmt.Errorf("timerfd_settime: %w", err)
		}
	}
	if tf.GetTicks() > 0 {
		if err := setTicks(nfd, tf.GetTicks()); err != nil {
			return 0, fmt.Errorf("set %d unread expirations: %w", tf.GetTicks(), err)
		}
	}
	return n, nil
}
