//go:build linux

package test

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestInetNoTimeWait: a job's loopback TCP connection, dumped (the job
// ended) and restored at once, twice in a row: ending the job leaves no
// connection of its ports in TIME_WAIT (the dumped connections are closed
// in repair mode, without FIN or RST), so the restore makes it again on
// the same four-tuple, and the job checks it after the second restore.
// inet.c busy: a connection between a process and its child with nothing
// unread, which a plain close would end with FIN and TIME_WAIT (a close
// with unread data sends RST instead, net/ipv4/tcp.c __tcp_close).
func TestInetNoTimeWait(t *testing.T) {
	needsRoot(t)
	needsGocr(t)
	tg := startTarget(t, "inet", "busy")
	ports := tcpPortsOfTree(t, tg.pid)
	if len(ports) == 0 {
		t.Fatalf("target inet busy (pid %d) has no TCP socket", tg.pid)
	}
	pid := tg.pid
	for cycle := 1; cycle <= 2; cycle++ {
		dir := t.TempDir()
		dump(t, pid, dir)
		tg.waitDead(t, "a dump without --leave-running")
		if tw := timeWaitOn(t, ports); len(tw) > 0 {
			t.Fatalf("cycle %d: after the dump ended the job, connections of its ports %v are in TIME_WAIT:\n%s", cycle, ports, strings.Join(tw, "\n"))
		}
		pid = restoreDetached(t, tg, dir, nil)
	}
	checkResult(t, tg, pid)
}

// tcpPortsOfTree lists the local ports of the TCP sockets that the
// processes of root's tree hold (/proc/PID/fd links socket:[INODE],
// matched with the inode column of /proc/net/tcp and tcp6, man 5 proc).
func tcpPortsOfTree(t *testing.T, root int) map[int]bool {
	t.Helper()
	inodes := map[string]bool{}
	for _, e := range treeEntries(t, root) {
		fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", e.pid))
		for _, fd := range fds {
			l, _ := os.Readlink(filepath.Join(fmt.Sprintf("/proc/%d/fd", e.pid), fd.Name()))
			if in, ok := strings.CutPrefix(l, "socket:["); ok {
				inodes[strings.TrimSuffix(in, "]")] = true
			}
		}
	}
	ports := map[int]bool{}
	for _, row := range procNetTCP(t) {
		if inodes[row.inode] {
			ports[row.local] = true
		}
	}
	return ports
}

// timeWaitOn lists the TIME_WAIT entries (state 06, include/net/tcp_states.h
// TCP_TIME_WAIT) with a local or remote port among ports.
func timeWaitOn(t *testing.T, ports map[int]bool) []string {
	t.Helper()
	var out []string
	for _, row := range procNetTCP(t) {
		if row.state == "06" && (ports[row.local] || ports[row.remote]) {
			out = append(out, row.line)
		}
	}
	return out
}

type tcpRow struct {
	local, remote int
	state, inode  string
	line          string
}

// procNetTCP reads /proc/net/tcp and tcp6 (man 5 proc: sl, local
// address:port, remote address:port, st, ..., inode as the tenth field;
// ports in hexadecimal).
func procNetTCP(t *testing.T) []tcpRow {
	t.Helper()
	var rows []tcpRow
	for _, name := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		f, err := os.Open(name)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Scan() // the header
		for sc.Scan() {
			fs := strings.Fields(sc.Text())
			if len(fs) < 10 {
				continue
			}
			port := func(s string) int {
				_, p, _ := strings.Cut(s, ":")
				n, _ := strconv.ParseInt(p, 16, 32)
				return int(n)
			}
			rows = append(rows, tcpRow{local: port(fs[1]), remote: port(fs[2]), state: fs[3], inode: fs[9], line: sc.Text()})
		}
		f.Close()
	}
	return rows
}

// TestInetJobTimeWait: a listener without SO_REUSEADDR whose port holds a
// connection the job accepted and closed first, in TIME_WAIT (as Open
// MPI's btl tcp leaves at every start): the restore clears that entry,
// both of whose ends are addresses of this host, and binds the listener
// again; the job's open connection and the listener work on.
func TestInetJobTimeWait(t *testing.T) {
	needsRoot(t)
	needsGocr(t)
	tg := startTarget(t, "inet", "timewait")
	ports := tcpPortsOfTree(t, tg.pid)
	if tw := timeWaitOn(t, ports); len(tw) == 0 {
		t.Fatalf("target inet timewait (pid %d) left no connection in TIME_WAIT on its ports %v", tg.pid, ports)
	}
	pid := checkpointRestore(t, tg, cycleOpts{})
	checkResult(t, tg, pid)
}
