//go:build linux

package restorer

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/files"
	"github.com/gocr/gocr/gocrpb"
	procfs "github.com/gocr/gocr/proc"
)

// CLOCK_MONOTONIC and CLOCK_BOOTTIME count from the boot, so a job
// restored on another boot (after a reboot, or on another machine) would
// see them jump, backwards as likely as forwards. There the restorer puts
// the job in a time namespace of its own whose offsets make both clocks
// go on from their values at the dump plus the wall-clock time since
// (never less than nothing), as if the machine had stayed up; on the boot
// of the dump the clocks kept running, and a job keeps the namespace
// offsets it had (man 7 time_namespaces). The namespace is made by
// unshare(CLONE_NEWTIME) in the restorer before it creates the first
// process, which with every process after it is born inside: the
// unsharing process itself stays out, and offsets can be written only
// while no process is in (restorer/c/restorer.c make_time_namespace).

// timeNamespace is what a restore does with the job's clocks.
type timeNamespace struct {
	// make: a time namespace is made with offsets (from the machine's
	// initial namespace, as /proc/PID/timens_offsets takes them).
	make        bool
	monotonicNs int64
	boottimeNs  int64
	// rebase is how far an absolute time on either clock, as gocr read
	// it at the dump, moves for gocr here; nil when the images do not
	// say (older images restored on another boot).
	rebase *files.ClockRebase
}

// planTimeNamespace works out the job's time namespace from the clocks
// the dump recorded and this machine's.
func planTimeNamespace(inv *gocrpb.Inventory) (*timeNamespace, error) {
	c := inv.GetClocks()
	boot, err := procfs.BootID()
	if err != nil {
		return nil, fmt.Errorf("read the boot ID: %w", err)
	}
	if c == nil {
		if inv.GetBootId() == boot {
			return &timeNamespace{rebase: &files.ClockRebase{}}, nil
		}
		return &timeNamespace{}, nil
	}
	// The offsets the job's namespace needs from gocr's.
	var now procfs.Clocks
	if inv.GetBootId() != boot {
		if now, err = procfs.ReadClocks(); err != nil {
			return nil, err
		}
	}
	mono, bootNs, err := jobOffsets(c, inv.GetBootId() == boot, now)
	if err != nil {
		return nil, fmt.Errorf("restore pid %d: %w", inv.GetRootPid(), err)
	}
	ns := &timeNamespace{rebase: &files.ClockRebase{
		MonotonicNs: c.GetMonotonicOffsetNs() - mono,
		BoottimeNs:  c.GetBoottimeOffsetNs() - bootNs,
	}}
	if mono == 0 && bootNs == 0 {
		return ns, nil
	}
	mine, err := procfs.ReadTimensOffsets(os.Getpid())
	if err != nil {
		return nil, fmt.Errorf("restore pid %d: its CLOCK_MONOTONIC and CLOCK_BOOTTIME need a time namespace, which this kernel lacks (CONFIG_TIME_NS): %w", inv.GetRootPid(), err)
	}
	if ordinaryUser() && !hasCap(unix.CAP_SYS_TIME) {
		return nil, fmt.Errorf("restore pid %d: its CLOCK_MONOTONIC and CLOCK_BOOTTIME need a time namespace (it was dumped on another boot, or in a namespace of its own), whose offsets only root may set (CAP_SYS_TIME)", inv.GetRootPid())
	}
	ns.make = true
	ns.monotonicNs = mine.MonotonicNs + mono
	ns.boottimeNs = mine.BoottimeNs + bootNs
	return ns, nil
}

// jobOffsets returns the offsets from gocr's clocks that the job's
// monotonic and boot-time clocks need: on the boot of the dump those it
// had; on another, those that make its clocks read their values at the
// dump plus the wall-clock time since, nothing if the wall clock went
// back (now is gocr's clocks then).
func jobOffsets(c *gocrpb.Clocks, sameBoot bool, now procfs.Clocks) (mono, boot int64, err error) {
	if sameBoot {
		return c.GetMonotonicOffsetNs(), c.GetBoottimeOffsetNs(), nil
	}
	// A clock the kernel keeps below KTIME_SEC_MAX / 2 in a namespace
	// (kernel/time/namespace.c proc_timens_set_offset), about 146 years.
	const most = int64(1) << 62
	if c.GetMonotonicNs() < 0 || c.GetBoottimeNs() < 0 || c.GetMonotonicNs() > most || c.GetBoottimeNs() > most {
		return 0, 0, fmt.Errorf("the images record clocks no kernel reads (CLOCK_MONOTONIC %d ns, CLOCK_BOOTTIME %d ns)", c.GetMonotonicNs(), c.GetBoottimeNs())
	}
	elapsed := max(now.RealtimeNs-c.GetRealtimeNs(), 0)
	return c.GetMonotonicNs() + elapsed - now.MonotonicNs, c.GetBoottimeNs() + elapsed - now.BoottimeNs, nil
}
