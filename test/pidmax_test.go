//go:build linux

package test

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// pidMaxLimit is PID_MAX_LIMIT on 64-bit kernels (include/linux/threads.h).
const pidMaxLimit = 4 * 1024 * 1024

// pidMaxLock is the lock file the runs of this package on one machine
// share while kernel.pid_max is raised, and where the value they put back
// is kept. /run is a tmpfs, emptied at boot, as pid_max is reset then.
const pidMaxLock = "/run/gocr-test-pid_max"

// raisePidMax raises kernel.pid_max, as root, to its limit for the run and
// returns what puts it back. The tests restore processes under PIDs freed
// by their dump a moment before, which another process may take only once
// the kernel's PID allocator has wrapped round to them (kernel/pid.c
// alloc_pid: idr_alloc_cyclic). With this machine's floor of 32768 (the
// kernel's default for few CPUs, kernel/pid.c pid_idr_init) a run of this
// package wraps many times, and another test's gocr took a dumped
// sqlite job's PID so; with 4194304 it wraps 128 times less often.
//
// Runs of the package at once (two clones tested side by side) share the
// raise (pidMaxRaise): only the last to end puts the value back, so no run
// sees pid_max lowered under PIDs its dumps hold (clone3 set_tid fails
// with EINVAL past pid_max, man 2 clone). A run killed before its end
// leaves the value it found in the lock file, and the next run to end
// alone puts that back.
func raisePidMax() func() {
	if os.Geteuid() != 0 {
		return func() {}
	}
	r, err := raisePidMaxShared("/proc/sys/kernel/pid_max", pidMaxLock, pidMaxLimit)
	if err != nil {
		fmt.Fprintf(os.Stderr, "harness: raise kernel.pid_max: %v (tests may see a PID taken before its restore)\n", err)
		return func() {}
	}
	return func() {
		if err := r.release(); err != nil {
			fmt.Fprintf(os.Stderr, "harness: put kernel.pid_max back: %v\n", err)
		}
	}
}

// pidMaxRaise is one run's share of the raised pid_max: a shared flock(2)
// on the lock file, held for the run. flock locks belong to the open file
// description and go with the last fd of it, so a run that dies drops its
// share (man 2 flock).
type pidMaxRaise struct {
	sysctl string
	lock   *os.File
}

// raisePidMaxShared raises the value in sysctl to limit, unless it is
// there already, and takes a share of the raise in the lock file at lock.
func raisePidMaxShared(sysctl, lock string, limit int) (*pidMaxRaise, error) {
	for tries := 0; tries < 100; tries++ {
		f, err := os.OpenFile(lock, os.O_RDWR|os.O_CREATE|syscall.O_CLOEXEC, 0o600)
		if err != nil {
			return nil, err
		}
		r := &pidMaxRaise{sysctl: sysctl, lock: f}
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		switch {
		case err == nil:
			// No other run: this one raises, keeping the value
			// to put back unless a killed run kept it already.
			err = r.raise(limit)
			if err == nil {
				// Not atomic (man 2 flock): another run may
				// take the lock between, and finds the value
				// raised and the old one kept.
				err = unix.Flock(int(f.Fd()), unix.LOCK_SH)
			}
			if err != nil {
				f.Close()
				return nil, err
			}
			return r, nil
		case errors.Is(err, unix.EWOULDBLOCK):
			// Others run, or one is raising or putting back.
			if err := unix.Flock(int(f.Fd()), unix.LOCK_SH); err != nil {
				f.Close()
				return nil, err
			}
			if v, err := readInt(sysctl); err == nil && v >= limit {
				return r, nil
			}
			// The last of them put the value back meanwhile: try
			// again, to raise it.
			f.Close()
		default:
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", lock, err)
		}
	}
	return nil, fmt.Errorf("%s: no share of the raise after 100 tries", lock)
}

// raise, under the exclusive lock, records the value to put back in the
// lock file (the one a killed run left there, else the sysctl's) and
// raises the sysctl.
func (r *pidMaxRaise) raise(limit int) error {
	old, err := r.kept()
	if err != nil {
		return err
	}
	if old == 0 {
		if old, err = readInt(r.sysctl); err != nil {
			return err
		}
		if old >= limit {
			return nil // raised by someone else: nothing to put back
		}
		if err := r.keep(old); err != nil {
			return err
		}
	}
	return os.WriteFile(r.sysctl, []byte(strconv.Itoa(limit)), 0)
}

// release gives up this run's share; the last run puts the kept value
// back and empties the lock file.
func (r *pidMaxRaise) release() error {
	defer r.lock.Close()
	// Converting the shared lock removes it first (man 2 flock), so a
	// run that is not the last holds nothing after a failed try, as it
	// should: it is leaving.
	if err := unix.Flock(int(r.lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil
		}
		return err
	}
	old, err := r.kept()
	if err != nil || old == 0 {
		return err
	}
	if err := os.WriteFile(r.sysctl, []byte(strconv.Itoa(old)), 0); err != nil {
		return err
	}
	return r.lock.Truncate(0)
}

// kept is the value recorded in the lock file, 0 if none.
func (r *pidMaxRaise) kept() (int, error) {
	b := make([]byte, 32)
	n, err := r.lock.ReadAt(b, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return 0, err
	}
	if n == 0 {
		return 0, nil
	}
	v, err := strconv.Atoi(strings.TrimSpace(string(b[:n])))
	if err != nil {
		return 0, fmt.Errorf("%s: %q is not a pid_max", r.lock.Name(), b[:n])
	}
	return v, nil
}

func (r *pidMaxRaise) keep(v int) error {
	if err := r.lock.Truncate(0); err != nil {
		return err
	}
	_, err := r.lock.WriteAt([]byte(strconv.Itoa(v)+"\n"), 0)
	return err
}

func readInt(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// TestPidMaxShared: runs of the package at once share the raise of
// pid_max, and only the last to end puts it back; a run that dies
// without putting it back leaves the old value for the next. Played on
// a file standing for the sysctl.
func TestPidMaxShared(t *testing.T) {
	dir := t.TempDir()
	sysctl, lock := filepath.Join(dir, "pid_max"), filepath.Join(dir, "lock")
	set := func(v int) {
		t.Helper()
		if err := os.WriteFile(sysctl, []byte(strconv.Itoa(v)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	want := func(v int, when string) {
		t.Helper()
		got, err := readInt(sysctl)
		if err != nil || got != v {
			t.Fatalf("%s: pid_max %d (%v), want %d", when, got, err, v)
		}
	}
	share := func() *pidMaxRaise {
		t.Helper()
		r, err := raisePidMaxShared(sysctl, lock, 1000)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	release := func(r *pidMaxRaise) {
		t.Helper()
		if err := r.release(); err != nil {
			t.Fatal(err)
		}
	}
	set(100)

	a := share()
	want(1000, "one run")
	b := share()
	release(a)
	want(1000, "the first of two runs ended")
	release(b)
	want(100, "both runs ended")

	// A run that dies holding its share: its lock goes with its file.
	c := share()
	c.lock.Close()
	want(1000, "a run killed")
	d := share()
	release(d)
	want(100, "the next run ended")

	// Raised by someone else before: left as it is.
	set(5000)
	e := share()
	release(e)
	want(5000, "a pid_max above the limit")
}
