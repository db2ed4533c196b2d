//go:build linux

package test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func init() {
	cTargets["inet"] = struct {
		src   string
		flags []string
	}{"inet.c", nil}
}

// needsIPv6Loopback skips where the loopback has no ::1 (IPv6 disabled).
func needsIPv6Loopback(t *testing.T) {
	t.Helper()
	l, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Skipf("the loopback has no ::1 (%v)", err)
	}
	l.Close()
}

// TestInetConnections: a listener and a connection to it in one process
// (inet.c), mid-conversation: the server's receive queue full of unread
// bytes, the client's send queue holding bytes it could not send yet, a
// reply the client has not read, options on the client. After the
// restore both ends carry on over the same connection, every byte in
// order, and the listener takes new connections, over IPv4, IPv6, and a
// dual-stack IPv6 listener reached over IPv4.
func TestInetConnections(t *testing.T) {
	needsRoot(t)
	for _, mode := range []string{"tcp4", "tcp6", "dual"} {
		t.Run(mode, func(t *testing.T) {
			if mode != "tcp4" {
				needsIPv6Loopback(t)
			}
			tg := startTarget(t, "inet", mode)
			pid := checkpointRestore(t, tg, cycleOpts{})
			checkResult(t, tg, pid)
		})
	}
}

// TestInetHalfClosed: a connection the client shut for writing after
// sending (FIN_WAIT2 and CLOSE_WAIT), unread data both ways: restored, the
// server reads the data then EOF, the client reads and cannot send.
func TestInetHalfClosed(t *testing.T) {
	needsRoot(t)
	tg := startTarget(t, "inet", "half")
	pid := checkpointRestore(t, tg, cycleOpts{})
	checkResult(t, tg, pid)
}

// TestUDPSockets: bound and connected UDP sockets with datagrams queued,
// an empty one too, from two senders: each comes back in order, from its
// sender's address and port.
func TestUDPSockets(t *testing.T) {
	needsRoot(t)
	for _, mode := range []string{"udp4", "udp6"} {
		t.Run(mode, func(t *testing.T) {
			if mode == "udp6" {
				needsIPv6Loopback(t)
			}
			tg := startTarget(t, "inet", mode)
			pid := checkpointRestore(t, tg, cycleOpts{})
			checkResult(t, tg, pid)
		})
	}
}

// TestInetLeaveRunning: with --leave-running the connection works on
// after the dump: repair mode is off again, nothing was lost.
func TestInetLeaveRunning(t *testing.T) {
	needsRoot(t)
	tg := startTarget(t, "inet", "tcp4")
	dump(t, tg.pid, t.TempDir(), "--leave-running")
	checkIntact(t, tg)
}

// TestInetPendingRefused: a listener with a connection not accepted yet is
// refused in one line, and the process runs on: it accepts it afterwards.
func TestInetPendingRefused(t *testing.T) {
	needsRoot(t)
	tg := startTarget(t, "inet", "pending")
	r := runGocr(t, nil, "dump", "-t", strconv.Itoa(tg.pid), "-D", t.TempDir())
	assertRefused(t, r, []string{"not accepted"}, nil)
	checkIntact(t, tg)
}

// outsidePeer is the end of the target's connection outside the job: it
// accepts the connection, reads "from-job-1", says "go" (the target
// answers "from-job-1b") and sends "from-outside-1".
type outsidePeer struct {
	l    net.Listener
	conn net.Conn
}

func startOutsidePeer(t *testing.T) (*outsidePeer, string) {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return &outsidePeer{l: l}, strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// greet talks with the target; before the "go", drop runs (if set).
func (p *outsidePeer) greet(t *testing.T, drop func()) {
	t.Helper()
	p.l.(*net.TCPListener).SetDeadline(time.Now().Add(10 * time.Second))
	c, err := p.l.Accept()
	if err != nil {
		t.Fatalf("the outside peer accepts: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	p.conn = c
	p.expect(t, "from-job-1")
	if drop != nil {
		drop()
	}
	if _, err := c.Write([]byte("gofrom-outside-1")); err != nil {
		t.Fatalf("the outside peer writes: %v", err)
	}
}

func (p *outsidePeer) expect(t *testing.T, want string) {
	t.Helper()
	p.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, len(want))
	if _, err := io.ReadFull(p.conn, buf); err != nil || string(buf) != want {
		t.Fatalf("the outside peer read %q (%v), want %q", buf, err, want)
	}
}

// send sends the peer's last message.
func (p *outsidePeer) send(t *testing.T) {
	t.Helper()
	if _, err := p.conn.Write([]byte("from-outside-2")); err != nil {
		t.Fatalf("the outside peer writes: %v", err)
	}
}

// finish has the target check what it read and answer: the connection
// works.
func (p *outsidePeer) finish(t *testing.T, tg *target, pid int) {
	t.Helper()
	checkResult(t, tg, pid)
	p.expect(t, "from-job-1bfrom-job-2")
}

// TestInetExternalRefused: without --tcp-established a connection to a
// peer outside the job is refused in one line naming the fd and the peer;
// the process and its connection go on.
func TestInetExternalRefused(t *testing.T) {
	needsRoot(t)
	peer, port := startOutsidePeer(t)
	tg := startTarget(t, "inet", "external", port)
	peer.greet(t, nil)
	r := runGocr(t, nil, "dump", "-t", strconv.Itoa(tg.pid), "-D", t.TempDir())
	assertRefused(t, r, []string{"fd 3", "127.0.0.1:" + port, "--tcp-established"}, nil)
	assertUntouched(t, tg.pid)
	peer.send(t)
	peer.finish(t, tg, tg.pid)
}

// TestInetExternalEstablished: with --tcp-established the outside peer
// keeps its connection across the dump and the restore: it sends while
// the job is dumped, its packets are blocked meanwhile (nftables) rather
// than answered by a reset, and sent again once the job is back.
func TestInetExternalEstablished(t *testing.T) {
	needsRoot(t)
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("nft (nftables) is not installed: make deps installs it")
	}
	peer, port := startOutsidePeer(t)
	tg := startTarget(t, "inet", "external", port)
	// The target's "from-job-1b" is dropped before the peer has it, so
	// the dump finds it sent and not acknowledged; it comes once the
	// restored connection sends it again.
	undrop := func() {}
	peer.greet(t, func() { undrop = dropData(t, tg.pid, port) })
	waitUnacknowledged(t, port)
	dir := t.TempDir()
	dump(t, tg.pid, dir, "--tcp-established")
	tg.waitDead(t, "a dump without --leave-running")
	undrop()
	peer.send(t)
	// The restore refuses the connection unless asked for it too.
	r := runGocr(t, nil, "restore", "-d", "-D", dir)
	assertRefused(t, r, []string{"--tcp-established"}, nil)
	pid := restoreDetached(t, tg, dir, nil, "--tcp-established")
	peer.finish(t, tg, pid)
	assertNoGocrTable(t)
}

// startHTTPServer starts httpserver.py and returns it and its port.
func startHTTPServer(t *testing.T) (*target, string) {
	t.Helper()
	out, err := exec.Command("python3", "-c", "import sys; print(sys.executable)").Output()
	if err != nil {
		t.Skipf("no python3: %v", err)
	}
	// Run by the interpreter itself, as the other script targets
	// (buildTargets), so the target's PID is the interpreter's.
	targets["httpserver"] = []string{strings.TrimSpace(string(out)), filepath.Join(moduleRoot, "test", "targets", "httpserver.py")}
	tg := startTarget(t, "httpserver")
	port, err := os.ReadFile(tg.result + ".port")
	if err != nil {
		t.Fatal(err)
	}
	return tg, string(port)
}

// httpGet sends GET /n on conn and checks the answer "hello n".
func httpGet(t *testing.T, conn net.Conn, n int) {
	t.Helper()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(conn, "GET /%d HTTP/1.1\r\nHost: gocr\r\n\r\n", n); err != nil {
		t.Fatalf("GET /%d: %v", n, err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("GET /%d: %v", n, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if want := fmt.Sprintf("hello %d", n); err != nil || string(body) != want {
		t.Fatalf("GET /%d: %q (%v), want %q", n, body, err, want)
	}
}

// TestPythonHTTPServer: Python's ThreadingHTTPServer with a keep-alive
// client inside the job, mid-session, and one outside it (the test,
// with --tcp-established): after the restore each client's next request
// on its same connection is answered.
func TestPythonHTTPServer(t *testing.T) {
	needsRoot(t)
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("nft (nftables) is not installed: make deps installs it")
	}
	tg, port := startHTTPServer(t)
	conn, err := net.Dial("tcp4", "127.0.0.1:"+port)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	httpGet(t, conn, 1)
	// checkpointRestore, with --tcp-established at the restore too.
	before, err := readTreeView(t, tg.pid)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	dump(t, tg.pid, dir, "--tcp-established")
	tg.waitDead(t, "a dump without --leave-running")
	pid := restoreDetached(t, tg, dir, nil, "--tcp-established")
	checkTreeView(t, pid, before, nil)
	httpGet(t, conn, 2)
	checkResult(t, tg, pid)
}

// TestInetExternalLeaveRunning: --tcp-established with --leave-running:
// the connection to the outside peer works on after the dump, its
// packets no longer blocked.
func TestInetExternalLeaveRunning(t *testing.T) {
	needsRoot(t)
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("nft (nftables) is not installed: make deps installs it")
	}
	peer, port := startOutsidePeer(t)
	tg := startTarget(t, "inet", "external", port)
	peer.greet(t, nil)
	dump(t, tg.pid, t.TempDir(), "--tcp-established", "--leave-running")
	assertUntouched(t, tg.pid)
	assertNoGocrTable(t)
	peer.send(t)
	peer.finish(t, tg, tg.pid)
}

// assertNoGocrTable requires that gocr left no nftables table of its own.
func assertNoGocrTable(t *testing.T) {
	t.Helper()
	out, err := exec.Command("nft", "list", "tables").CombinedOutput()
	if err != nil {
		t.Fatalf("nft list tables: %v: %s", err, out)
	}
	if strings.Contains(string(out), "gocr_") {
		t.Errorf("gocr left its nftables table:\n%s", out)
	}
}

// dropData drops the data packets (PSH) sent to port until the returned
// function runs (or the test ends), where they come in: one dropped on its
// way out would not count as sent (a local netfilter drop fails the
// transmission, net/ipv4/tcp_output.c tcp_write_xmit).
func dropData(t *testing.T, pid int, port string) func() {
	t.Helper()
	table := "gocrtest_" + strconv.Itoa(pid)
	script := "table inet " + table + " {\n\tchain in {\n\t\ttype filter hook input priority 0; policy accept;\n" +
		"\t\ttcp dport " + port + " tcp flags & psh == psh drop\n\t}\n}\n"
	cmd := exec.Command("nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft: %v: %s", err, out)
	}
	removed := false
	remove := func() {
		if !removed {
			removed = true
			if out, err := exec.Command("nft", "delete", "table", "inet", table).CombinedOutput(); err != nil {
				t.Errorf("nft delete table %s: %v: %s", table, err, out)
			}
		}
	}
	t.Cleanup(remove)
	return remove
}

// waitUnacknowledged waits until the connection to port (from the
// target's side) has data sent and not acknowledged: tx_queue in
// /proc/net/tcp (man 5 proc).
func waitUnacknowledged(t *testing.T, port string) {
	t.Helper()
	p, _ := strconv.Atoi(port)
	want := fmt.Sprintf(":%04X", p)
	waitTCPRow(t, "data sent and not acknowledged to port "+port, func(f []string) bool {
		tx, _, _ := strings.Cut(f[4], ":")
		n, _ := strconv.ParseUint(tx, 16, 32)
		return strings.HasSuffix(f[2], want) && n > 0
	})
}

// waitTCPRow waits up to 10 s for a row of /proc/net/tcp (its fields;
// man 5 proc) that match accepts, and fails t naming what it waited for.
func waitTCPRow(t *testing.T, what string, match func(f []string) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile("/proc/net/tcp")
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			if f := strings.Fields(line); len(f) > 4 && match(f) {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no %s within 10 s", what)
}
