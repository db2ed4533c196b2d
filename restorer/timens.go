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
	mono, bootNs := c.GetMonotonicOffsetNs(), c.GetBoottimeOffsetNs()
	if inv.GetBootId() != boot {
		var rt, m, b unix.Timespec
		if err := clockGettime(&rt, &m, &b); err != nil {
			return nil, err
		}
		elapsed := max(rt.Nano()-c.GetRealtimeNs(), 0)
		mono = c.GetMonotonicNs() + elapsed - m.Nano()
		bootNs = c.GetBoottimeNs() + elapsed - b.Nano()
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

// clockGettime reads CLOCK_REALTIME, CLOCK_MONOTONIC and CLOCK_BOOTTIME
// one after the other.
func clockGettime(rt, mono, boot *unix.Timespec) error {
	for _, c := range []struct {
		id int32
		ts *unix.Timespec
	}{{unix.CLOCK_REALTIME, rt}, {unix.CLOCK_MONOTONIC, mono}, {unix.CLOCK_BOOTTIME, boot}} {
		if err := unix.ClockGettime(c.id, c.ts); err != nil {
			return fmt.Errorf("clock_gettime %d: %w", c.id, err)
		}
	}
	return nil
}
