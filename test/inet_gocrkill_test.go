//go:build linux

package test

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/internal/testhook"
)

// TestInetGocrKilledInCapture: gocr is SIGKILLed while it reads the job's
// TCP connections, with every connection in repair mode (the
// pause-after-tcp-repair-on hook), and once they are read and out of it
// again. Its TCP watchdog takes them out of repair mode, and the threads
// of the processes holding them wait until then (dump/tcphold.go): the
// job runs on untouched, and both ends of its connection exchange data.
// tcp4 (inet.c): a listener and a connection to it, mid-conversation,
// the job waiting; both ends read all that was in flight, and the
// accepted socket keeps its SO_REUSEADDR. busy: a connection between a
// process and its child, which waits in recv(2) on it, so that it
// restarts its recv as soon as gocr's death releases it.
func TestInetGocrKilledInCapture(t *testing.T) {
	for _, tc := range []struct {
		mode, hook string
		repair     int // sockets of the target's root in repair mode at the hook
	}{
		{"tcp4", testhook.PauseAfterTCPRepairOn, 2},
		{"tcp4", testhook.PauseAfterTCPCapture, 0},
		{"busy", testhook.PauseAfterTCPRepairOn, 1},
	} {
		t.Run(tc.mode+"/"+tc.hook, func(t *testing.T) {
			needsRoot(t)
			needsGocr(t)
			tg := startTarget(t, "inet", tc.mode)
			cmd := startGocr(t, testhook.Setting(tc.hook, "30s"), "dump", "-t", strconv.Itoa(tg.pid), "-D", t.TempDir())
			waitHook(t, cmd, tc.hook)
			if n := inRepair(t, tg.pid); n != tc.repair {
				t.Fatalf("gocr holds at %s with %d connections of pid %d in repair mode, want %d", tc.hook, n, tg.pid, tc.repair)
			}
			killGocr(t, cmd)
			waitOutOfRepair(t, tg.pid)
			waitUntraced(t, tg.pid)
			assertUntouched(t, tg.pid)
			checkResult(t, tg, tg.pid)
		})
	}
}

// TestInetGocrKilledExternal: as TestInetGocrKilledInCapture, with
// --tcp-established and the job's connection to a peer outside it: gocr
// is killed with the connection blocked by its nftables table (and in
// repair mode, or read and out of it). The watchdog removes the table:
// the peer's next message reaches the job, and the job's answer the peer.
func TestInetGocrKilledExternal(t *testing.T) {
	for _, hook := range []string{testhook.PauseAfterTCPRepairOn, testhook.PauseAfterTCPCapture} {
		t.Run(hook, func(t *testing.T) {
			needsRoot(t)
			needsGocr(t)
			needsNft(t)
			peer, port := startOutsidePeer(t)
			tg := startTarget(t, "inet", "external", port)
			peer.greet(t, nil)
			cmd := startGocr(t, testhook.Setting(hook, "30s"), "dump", "-t", strconv.Itoa(tg.pid), "-D", t.TempDir(), "--tcp-established")
			waitHook(t, cmd, hook)
			gocrPid := cmd.Process.Pid
			if tables := tablesOf(t, gocrPid); len(tables) != 1 {
				t.Fatalf("gocr holds at %s with nftables tables %q of its own, want the one blocking the connection", hook, tables)
			}
			killGocr(t, cmd)
			waitNoTableOf(t, gocrPid)
			waitOutOfRepair(t, tg.pid)
			waitUntraced(t, tg.pid)
			assertUntouched(t, tg.pid)
			peer.send(t)
			peer.finish(t, tg, tg.pid)
		})
	}
}

// TestInetGocrKilledInRelease: a restore is killed with the job's
// connection made again in repair mode, before it leaves it (the
// pause-in-tcp-release hook). The restore's processes end; its sockets,
// closed in repair mode, leave no connection behind and send nothing; the
// images restore afterwards, the connection working.
func TestInetGocrKilledInRelease(t *testing.T) {
	needsRoot(t)
	needsGocr(t)
	tg := startTarget(t, "inet", "tcp4")
	dir := t.TempDir()
	dump(t, tg.pid, dir)
	tg.waitDead(t, "a dump without --leave-running")
	killRestoreInRelease(t, tg, dir)
	pid := restoreDetached(t, tg, dir, nil)
	checkResult(t, tg, pid)
}

// TestInetGocrKilledInReleaseExternal: as TestInetGocrKilledInRelease for
// a connection to a peer outside the job: the table kept for the restore
// stays, so the peer hears nothing of the killed restore (what the
// restore's sockets send, or a reset, is dropped), and the next restore
// brings the connection back whole.
func TestInetGocrKilledInReleaseExternal(t *testing.T) {
	needsRoot(t)
	needsGocr(t)
	needsNft(t)
	peer, port := startOutsidePeer(t)
	tg := startTarget(t, "inet", "external", port)
	peer.greet(t, nil)
	dir, kept := dumpKeepingTable(t, tg)
	peer.send(t)
	killRestoreInRelease(t, tg, dir, "--tcp-established")
	if now := gocrTables(t); !slices.Contains(now, kept) {
		t.Fatalf("after the killed restore, gocr's nftables tables are %q, want %s still", now, kept)
	}
	pid := restoreDetached(t, tg, dir, nil, "--tcp-established")
	peer.finish(t, tg, pid)
	if slices.Contains(gocrTables(t), kept) {
		t.Errorf("the restore left its nftables table %s", kept)
	}
}

// TestInetGocrKilledAroundRelease: a restore of a connection to a peer
// outside the job is killed once the connection is out of repair mode,
// the processes finished but not released (pause-before-release), right
// after its commit (kill-in-release at step 2: the target's one thread's
// detach, then the commit), and once the processes run
// (pause-after-release). Before the commit: the processes end and the
// table kept for the restore stays, so the peer hears nothing of the
// connection's close, and the next restore brings it back whole. After:
// the restore's TCP watchdog removes the table, and the job and its
// connection go on.
func TestInetGocrKilledAroundRelease(t *testing.T) {
	needsRoot(t)
	needsGocr(t)
	needsNft(t)
	for _, tc := range []struct {
		hook, value string
		committed   bool
	}{
		{testhook.PauseBeforeRelease, "30s", false},
		{testhook.KillInRelease, "2", true},
		{testhook.PauseAfterRelease, "30s", true},
	} {
		t.Run(tc.hook, func(t *testing.T) {
			peer, port := startOutsidePeer(t)
			tg := startTarget(t, "inet", "external", port)
			peer.greet(t, nil)
			dir, kept := dumpKeepingTable(t, tg)
			peer.send(t)
			cmd := startGocr(t, testhook.Setting(tc.hook, tc.value), "restore", "-D", dir, "-d", "--tcp-established")
			if tc.hook == testhook.KillInRelease {
				err := cmd.Wait()
				if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
					t.Fatalf("gocr restore with %s=%s: %v, want killed by SIGKILL", tc.hook, tc.value, err)
				}
			} else {
				waitHook(t, cmd, tc.hook)
				if !slices.Contains(gocrTables(t), kept) {
					t.Fatalf("gocr holds at %s without the table %s kept for the restore", tc.hook, kept)
				}
				killGocr(t, cmd)
			}
			if !tc.committed {
				waitAllGone(t, []int{tg.pid}, "gocr was killed before it released the restored processes")
				if !slices.Contains(gocrTables(t), kept) {
					t.Fatalf("after a restore killed before the release, gocr's nftables tables are %q, want %s still", gocrTables(t), kept)
				}
				pid := restoreDetached(t, tg, dir, nil, "--tcp-established")
				peer.finish(t, tg, pid)
			} else {
				t.Cleanup(func() { tg.killRestored(t, tg.pid) })
				deadline := time.Now().Add(10 * time.Second)
				for slices.Contains(gocrTables(t), kept) {
					if time.Now().After(deadline) {
						t.Fatalf("the table %s kept for the restore is still there 10 s after gocr died with the restore committed", kept)
					}
					time.Sleep(20 * time.Millisecond)
				}
				peer.finish(t, tg, tg.pid)
			}
			if slices.Contains(gocrTables(t), kept) {
				t.Errorf("the restore left its nftables table %s", kept)
			}
		})
	}
}

// killRestoreInRelease restores dir and kills gocr once the connections
// are made again in repair mode; the restore's processes must end.
func killRestoreInRelease(t *testing.T, tg *target, dir string, extra ...string) {
	t.Helper()
	cmd := startGocr(t, testhook.Setting(testhook.PauseInTCPRelease, "30s"), append([]string{"restore", "-D", dir, "-d"}, extra...)...)
	waitHook(t, cmd, testhook.PauseInTCPRelease)
	if gone(tg.pid) {
		t.Fatalf("gocr holds in the connections' release, but pid %d does not exist", tg.pid)
	}
	if n := inRepair(t, tg.pid); n == 0 {
		t.Fatalf("gocr holds in the connections' release, but no socket of pid %d is in repair mode", tg.pid)
	}
	killGocr(t, cmd)
	waitAllGone(t, []int{tg.pid}, "gocr was killed while it made the connections again")
}

// needsNft skips where nft is missing (make deps installs it).
func needsNft(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("nft (nftables) is not installed: make deps installs it")
	}
}

// inRepair counts the TCP sockets of pid in repair mode, through handles
// of the test's own (pidfd_getfd(2); getsockopt TCP_REPAIR reads the
// socket's repair bit, net/ipv4/tcp.c do_tcp_getsockopt).
func inRepair(t *testing.T, pid int) int {
	t.Helper()
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		t.Fatalf("pidfd_open %d: %v", pid, err)
	}
	defer unix.Close(pidfd)
	fds, err := os.ReadDir(filepath.Join("/proc", strconv.Itoa(pid), "fd"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range fds {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if l, _ := os.Readlink(filepath.Join("/proc", strconv.Itoa(pid), "fd", e.Name())); !strings.HasPrefix(l, "socket:") {
			continue
		}
		h, err := unix.PidfdGetfd(pidfd, fd, 0)
		if err != nil {
			t.Fatalf("pidfd_getfd pid %d fd %d: %v", pid, fd, err)
		}
		if v, err := unix.GetsockoptInt(h, unix.SOL_TCP, unix.TCP_REPAIR); err == nil && v != 0 {
			n++
		}
		unix.Close(h)
	}
	return n
}

// waitOutOfRepair waits until no TCP socket of pid is in repair mode.
func waitOutOfRepair(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n := inRepair(t, pid)
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d TCP sockets of pid %d still in repair mode 10 s after gocr died", n, pid)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// gocrTables lists gocr's nftables tables (gocr_*).
func gocrTables(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command("nft", "list", "tables", "inet").CombinedOutput()
	if err != nil {
		t.Fatalf("nft list tables: %v: %s", err, out)
	}
	var names []string
	for _, line := range strings.Split(string(out), "\n") {
		if name, ok := strings.CutPrefix(strings.TrimSpace(line), "table inet "); ok && strings.HasPrefix(name, "gocr_") {
			names = append(names, name)
		}
	}
	return names
}

// tablesOf lists the nftables tables of the gocr of PID pid, named
// gocr_PID_START.
func tablesOf(t *testing.T, pid int) []string {
	t.Helper()
	var names []string
	for _, name := range gocrTables(t) {
		if strings.HasPrefix(name, "gocr_"+strconv.Itoa(pid)+"_") {
			names = append(names, name)
		}
	}
	return names
}

// waitNoTableOf waits until the nftables tables of the gocr of PID pid
// are gone.
func waitNoTableOf(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		tables := tablesOf(t, pid)
		if len(tables) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("gocr's nftables tables %q still there 10 s after gocr died", tables)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestInetGocrKilledEndingJob: gocr is killed once the images are
// complete, before it ends the job (the pause-before-ending-job hook),
// the job's connection to a peer outside still blocked by the dump's
// nftables table. The watchdog finishes what gocr was doing: it ends the
// process holding the connection, closes the connection in repair mode
// (the peer hears nothing) and keeps the table for the restore, which
// brings the connection back whole.
func TestInetGocrKilledEndingJob(t *testing.T) {
	needsRoot(t)
	needsGocr(t)
	needsNft(t)
	peer, port := startOutsidePeer(t)
	tg := startTarget(t, "inet", "external", port)
	peer.greet(t, nil)
	dir := t.TempDir()
	cmd := startGocr(t, testhook.Setting(testhook.PauseBeforeEndingJob, "30s"), "dump", "-t", strconv.Itoa(tg.pid), "-D", dir, "--tcp-established")
	waitHook(t, cmd, testhook.PauseBeforeEndingJob)
	if _, err := os.Stat(filepath.Join(dir, "inventory.img")); err != nil {
		t.Fatalf("gocr holds before ending the job, but the dump is not in place: %v", err)
	}
	gocrPid := cmd.Process.Pid
	killGocr(t, cmd)
	tg.waitDead(t, "the watchdog ends the job a complete dump was ending")
	waitNoTableOf(t, gocrPid)
	if kept := "gocr_keep_" + strconv.Itoa(gocrPid) + "_"; !slices.ContainsFunc(gocrTables(t), func(n string) bool { return strings.HasPrefix(n, kept) }) {
		t.Fatalf("after gocr died ending the job, gocr's tables are %q: want %s* kept for the restore", gocrTables(t), kept)
	}
	peer.send(t)
	pid := restoreDetached(t, tg, dir, nil, "--tcp-established")
	peer.finish(t, tg, pid)
}

// dumpKeepingTable dumps tg with --tcp-established, which ends it and
// keeps one nftables table for the restore, and returns the images and
// that table, removed at the test's end.
func dumpKeepingTable(t *testing.T, tg *target) (string, string) {
	t.Helper()
	dir := t.TempDir()
	before := gocrTables(t)
	dump(t, tg.pid, dir, "--tcp-established")
	tg.waitDead(t, "a dump without --leave-running")
	var kept []string
	for _, name := range gocrTables(t) {
		if strings.HasPrefix(name, "gocr_keep_") && !slices.Contains(before, name) {
			kept = append(kept, name)
		}
	}
	if len(kept) != 1 {
		t.Fatalf("the dump kept nftables tables %q, want one", kept)
	}
	t.Cleanup(func() { exec.Command("nft", "delete", "table", "inet", kept[0]).Run() })
	return dir, kept[0]
}
