//go:build linux

package test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/gocr/gocr/internal/testhook"
)

// TestInetDumpFailsInRepair: a dump that fails after it put the job's TCP
// connections in repair mode gives them back out of it: on an error
// there (the fail-in-tcp-capture hook), and when gocr is told to stop by
// SIGTERM while they are in it (the pause-after-tcp-repair-on hook). The
// job runs on untouched, and both ends of each connection exchange data
// (inet.c tcp4: a listener and a connection to it in one process; busy:
// a connection between a process and its child, which waits in recv(2)
// on it).
func TestInetDumpFailsInRepair(t *testing.T) {
	for _, mode := range []string{"tcp4", "busy"} {
		for _, how := range []string{"error", "sigterm"} {
			t.Run(mode+"/"+how, func(t *testing.T) {
				needsRoot(t)
				needsGocr(t)
				tg := startTarget(t, "inet", mode)
				args := []string{"dump", "-t", strconv.Itoa(tg.pid), "-D", t.TempDir()}
				var cmd *runningGocr
				if how == "error" {
					cmd = startGocr(t, testhook.Setting(testhook.FailInTCPCapture, "1"), args...)
				} else {
					// gocr holds until the file exists: the SIGTERM
					// comes while the connections are in repair mode,
					// however slow the machine.
					hold := filepath.Join(t.TempDir(), "go-on")
					cmd = startGocr(t, testhook.Setting(testhook.PauseAfterTCPRepairOn, hold), args...)
					waitHook(t, cmd, testhook.PauseAfterTCPRepairOn)
					if n := inRepair(t, tg.pid); n == 0 {
						t.Fatalf("gocr holds after turning repair mode on, but no TCP socket of pid %d is in it", tg.pid)
					}
					if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(hold, nil, 0o600); err != nil {
						t.Fatal(err)
					}
				}
				var lines []string
				for l := range cmd.lines {
					lines = append(lines, l)
				}
				err := cmd.Wait()
				if err == nil {
					t.Fatalf("gocr dump succeeded, want it to fail (%s); stderr:\n%s", how, strings.Join(lines, "\n"))
				}
				t.Logf("gocr dump: %v: %s", err, strings.Join(lines, " | "))
				if n := inRepair(t, tg.pid); n != 0 {
					t.Fatalf("after the failed dump, %d TCP sockets of pid %d are still in repair mode", n, tg.pid)
				}
				checkIntact(t, tg)
			})
		}
	}
}
