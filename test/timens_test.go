//go:build linux

package test

import (
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/gocrpb"
	"github.com/gocr/gocr/proc"
)

// timensMoved is how far the tests move the clocks the images recorded,
// as another boot a day older would have read them.
const timensMoved = 24 * time.Hour

// needsTimeNamespaces skips where the kernel has no time namespaces
// (CONFIG_TIME_NS, man 7 time_namespaces).
func needsTimeNamespaces(t *testing.T) {
	t.Helper()
	if _, err := os.Readlink("/proc/self/ns/time"); err != nil {
		t.Skipf("this kernel has no time namespaces (CONFIG_TIME_NS): %v", err)
	}
}

// timeNamespace returns pid's time namespace link and offsets.
func timeNamespace(t *testing.T, pid int) (string, proc.TimensOffsets) {
	t.Helper()
	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/time", pid))
	if err != nil {
		t.Fatalf("pid %d: %v", pid, err)
	}
	off, err := proc.ReadTimensOffsets(pid)
	if err != nil {
		t.Fatal(err)
	}
	return ns, off
}

// TestTimensSameBoot: a restore on the boot of the dump makes no time
// namespace (the clocks kept running), and the job's clocks and absolute
// timerfds go on as they were (the target checks them).
func TestTimensSameBoot(t *testing.T) {
	needsRoot(t)
	needsGocr(t)
	needsTimeNamespaces(t)
	tg := startTarget(t, "timens", "0")
	pid := checkpointRestoreTree(t, tg)
	own, _ := timeNamespace(t, os.Getpid())
	if ns, off := timeNamespace(t, pid); ns != own || off != (proc.TimensOffsets{}) {
		t.Fatalf("restored pid %d is in time namespace %s with offsets %+v, want gocr's %s", pid, ns, off, own)
	}
	checkResult(t, tg, pid)
}

// TestTimensAnotherBoot: images whose boot ID and recorded clocks say
// they were dumped on another boot restore into a time namespace where
// CLOCK_MONOTONIC and CLOCK_BOOTTIME go on from the recorded values, and
// absolute timerfds on them expire when those clocks say so (the target
// checks both, against its clocks before the dump moved as the images
// were). A boot a day older than this one gives positive offsets; a boot
// younger, negative ones, here with the job in a PID namespace of its own
// too (the reaper is born in the time namespace with the job). Dumped
// again from its namespace, the job restores on this boot with the same
// offsets.
func TestTimensAnotherBoot(t *testing.T) {
	needsRoot(t)
	needsGocr(t)
	needsTimeNamespaces(t)
	t.Run("Older", func(t *testing.T) { restoreOnAnotherBoot(t, timensMoved, false) })
	// Younger by half this boot's age, so that its clocks stay positive.
	up := time.Duration(monotonicNow(t)) / 2
	t.Run("YoungerPidns", func(t *testing.T) { restoreOnAnotherBoot(t, -up.Truncate(time.Second), true) })
}

func monotonicNow(t *testing.T) int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		t.Fatal(err)
	}
	return ts.Nano()
}

// restoreOnAnotherBoot dumps the timens target, moves the clocks its
// images recorded by moved and gives them another boot ID, restores
// them, checks the restored job's time namespace, then dumps and restores
// it again on this boot and lets the target check itself.
func restoreOnAnotherBoot(t *testing.T, moved time.Duration, pidns bool) {
	tg := startTarget(t, "timens", strconv.FormatInt(int64(moved/time.Second), 10))
	dir := t.TempDir()
	dump(t, tg.pid, dir)
	tg.waitDead(t, "a dump without --leave-running")
	images := rewriteInventory(t, dir, func(inv *gocrpb.Inventory) {
		if inv.Clocks == nil {
			t.Fatal("the inventory records no clocks")
		}
		inv.BootId = "00000000-0000-4000-8000-000000000000"
		inv.Clocks.MonotonicNs += moved.Nanoseconds()
		inv.Clocks.BoottimeNs += moved.Nanoseconds()
	})
	restoreJob := func(dir string) int {
		if !pidns {
			return restoreDetached(t, tg, dir, nil)
		}
		t.Cleanup(func() { tg.killRestored(t, tg.pid) })
		restore(t, nil, dir, "-d", "--pidns=always")
		host, _ := nsJob(t, tg, tg.pid)
		return host
	}
	pid := restoreJob(images)
	own, _ := timeNamespace(t, os.Getpid())
	ns, off := timeNamespace(t, pid)
	// The offsets are the clocks' move and the few moments the dump and
	// restore took, less how much further this boot's clocks went
	// meanwhile.
	near := func(v int64) bool {
		d := time.Duration(v) - moved
		return d > -time.Minute && d < time.Minute
	}
	if ns == own || !near(off.MonotonicNs) || !near(off.BoottimeNs) {
		t.Fatalf("restored pid %d is in time namespace %s (gocr's %s) with offsets %+v, want about %v for both", pid, ns, own, off, moved)
	}

	// Dumped again from its namespace, restored on this boot.
	again := t.TempDir()
	dump(t, pid, again)
	waitAllGone(t, []int{pid}, "the second dump")
	pid = restoreJob(again)
	ns2, off2 := timeNamespace(t, pid)
	if ns2 == own || off2 != off {
		t.Fatalf("restored again, pid %d is in time namespace %s with offsets %+v, want offsets %+v", pid, ns2, off2, off)
	}
	checkResult(t, tg, pid)
}
