//go:build linux

package dump

import (
	"fmt"
	"os"

	"github.com/gocr/gocr/gocrpb"
	"github.com/gocr/gocr/proc"
)

// The clocks a job reads, recorded at the freeze so that a restore on
// another boot can make CLOCK_MONOTONIC and CLOCK_BOOTTIME go on from
// them in a time namespace (restorer/timens.go). A job in a time
// namespace of its own (one a restore made, or any other) reads them
// with that namespace's offsets, which a restore on the same boot makes
// again (man 7 time_namespaces).

// jobTimeOffsets returns the offsets of the time namespace every process
// of the job is in from gocr's, refusing a job spread over several. A process that
// creates its children in another one than its own is refused by
// checkThreadNamespaces, so /proc/PID/timens_offsets shows its own.
func jobTimeOffsets(tree *frozenTree) (proc.TimensOffsets, error) {
	var first string
	var firstPid int
	for _, fp := range tree.procs {
		if fp.zombie {
			continue
		}
		ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/time", fp.pid))
		if err != nil {
			if os.IsNotExist(err) && firstPid == 0 {
				return proc.TimensOffsets{}, nil // no time namespaces in this kernel
			}
			return proc.TimensOffsets{}, fmt.Errorf("pid %d: read its time namespace: %w", fp.pid, err)
		}
		if firstPid == 0 {
			first, firstPid = ns, fp.pid
		} else if ns != first {
			return proc.TimensOffsets{}, fmt.Errorf("pid %d is in another time namespace than pid %d, which gocr cannot restore: refusing to dump it", fp.pid, firstPid)
		}
	}
	if firstPid == 0 {
		return proc.TimensOffsets{}, nil
	}
	own, err := os.Readlink("/proc/self/ns/time")
	if err == nil && own == first {
		return proc.TimensOffsets{}, nil
	}
	o, err := proc.ReadTimensOffsets(firstPid)
	if err != nil {
		return o, fmt.Errorf("pid %d: %w", firstPid, err)
	}
	// Offsets are from the initial namespace; gocr reads its clocks in
	// its own, which may have some too.
	mine, err := proc.ReadTimensOffsets(os.Getpid())
	if err != nil {
		return o, err
	}
	return proc.TimensOffsets{MonotonicNs: o.MonotonicNs - mine.MonotonicNs, BoottimeNs: o.BoottimeNs - mine.BoottimeNs}, nil
}

// readClocks reads the clocks as the job sees them: gocr's plus the
// offsets of the job's time namespace.
func readClocks(off proc.TimensOffsets) (*gocrpb.Clocks, error) {
	c, err := proc.ReadClocks()
	if err != nil {
		return nil, err
	}
	return &gocrpb.Clocks{
		RealtimeNs:        c.RealtimeNs,
		MonotonicNs:       c.MonotonicNs + off.MonotonicNs,
		BoottimeNs:        c.BoottimeNs + off.BoottimeNs,
		MonotonicOffsetNs: off.MonotonicNs,
		BoottimeOffsetNs:  off.BoottimeNs,
	}, nil
}
