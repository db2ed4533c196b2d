//go:build linux

package files

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/gocrpb"
)

// tcpPair returns both ends of a loopback TCP connection as raw fds of
// the test's own (closed at its end) and the accepted end's source.
func tcpPair(t *testing.T) (client, server int) {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c, err := net.Dial("tcp4", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	for _, conn := range []net.Conn{c, s} {
		f, err := conn.(*net.TCPConn).File()
		conn.Close()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		if conn == c {
			client = int(f.Fd())
		} else {
			server = int(f.Fd())
		}
	}
	return client, server
}

// TestWatchdogReleasesWhenGocrDies: a watchdog holding a connection that
// is in repair mode, whose gocr closes the control pipe without saying
// the dump ended (as its death would), takes the connection out of repair
// mode and sets SO_REUSEADDR back; told the dump finished, it leaves the
// connection as it is.
func TestWatchdogReleasesWhenGocrDies(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: TCP_REPAIR needs CAP_NET_ADMIN")
	}
	for _, finished := range []bool{false, true} {
		client, server := tcpPair(t)
		if err := unix.SetsockoptInt(server, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
			t.Fatal(err)
		}
		if err := setRepair(server, unix.TCP_REPAIR_ON); err != nil {
			t.Fatal(err)
		}
		held := []*heldConn{{ref: Ref{Pid: os.Getpid(), Fd: &gocrpb.Fd{Fd: int32(server), Description: "the server end"}}, h: server, repair: true, reuse: true}}
		w, err := startWatchdog(held, nil)
		if err != nil {
			t.Fatal(err)
		}
		if finished {
			if err := w.finish(); err != nil {
				t.Fatal(err)
			}
		} else {
			w.ctl.Close()
			select {
			case <-w.done:
			case <-time.After(watchdogWait):
				t.Fatal("the watchdog did not end once its control pipe closed")
			}
		}
		if code := w.cmd.ProcessState.ExitCode(); code != 0 {
			t.Fatalf("finished=%v: the watchdog exited %d", finished, code)
		}
		repair, err := unix.GetsockoptInt(server, unix.SOL_TCP, unix.TCP_REPAIR)
		if err != nil {
			t.Fatal(err)
		}
		reuse, err := unix.GetsockoptInt(server, unix.SOL_SOCKET, unix.SO_REUSEADDR)
		if err != nil {
			t.Fatal(err)
		}
		if finished {
			// Left alone: TCP_REPAIR_ON set sk_reuse to force.
			if repair != 1 {
				t.Errorf("told the dump finished, the watchdog changed the repair mode to %d", repair)
			}
			continue
		}
		if repair != 0 || reuse != 1 {
			t.Errorf("after gocr's death: TCP_REPAIR %d, SO_REUSEADDR %d; want 0 and 1", repair, reuse)
		}
		// The connection works both ways.
		if _, err := unix.Write(client, []byte("ping")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 4)
		if n, err := unix.Read(server, buf); err != nil || string(buf[:n]) != "ping" {
			t.Errorf("the server end read %q (%v), want ping", buf[:n], err)
		}
		if _, err := unix.Write(server, []byte("pong")); err != nil {
			t.Errorf("the server end writes: %v", err)
		}
	}
}

// TestRestoreWatchdogUnblocksOnceCommitted: a restore's watchdog whose
// gocr dies (its control pipe closed) removes the tables kept for the
// restore only if the restore had committed (a byte left in its
// lifeline); dying before, it leaves them for the next restore.
func TestRestoreWatchdogUnblocksOnceCommitted(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: nftables tables need CAP_NET_ADMIN")
	}
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("nft (nftables) is not installed: make deps installs it")
	}
	for _, committed := range []bool{false, true} {
		table := fmt.Sprintf("%stest_%d_%v", nftKeepPrefix, os.Getpid(), committed)
		if err := nft("add table inet " + table + "\n"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { removeNftTable(table) })
		lifeR, lifeW, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		w, err := startRestoreWatchdog([]string{table}, lifeR)
		lifeR.Close()
		if err != nil {
			t.Fatal(err)
		}
		if committed {
			if _, err := lifeW.Write([]byte{0}); err != nil {
				t.Fatal(err)
			}
		}
		w.ctl.Close()
		select {
		case <-w.done:
		case <-time.After(watchdogWait):
			t.Fatal("the watchdog did not end once its control pipe closed")
		}
		lifeW.Close()
		if code := w.cmd.ProcessState.ExitCode(); code != 0 {
			t.Fatalf("committed=%v: the watchdog exited %d", committed, code)
		}
		if exists := nftTableExists(table); exists == committed {
			t.Errorf("committed=%v: after gocr's death the table kept for the restore exists=%v, want %v", committed, exists, !committed)
		}
	}
}
