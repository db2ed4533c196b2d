//go:build linux

package test

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestInetRefusedInRepairRunsOn: a dump refused while it reads the job's
// connections in repair mode (an urgent byte waits at a server end: not
// restored) takes them out of repair mode before the job runs on, gocr
// alive: the child waiting in recv(2) on another connection, whose recv
// restarts as soon as it is released, echoes what its parent sends, and
// the server reads the urgent byte and the data and answers.
func TestInetRefusedInRepairRunsOn(t *testing.T) {
	needsRoot(t)
	tg := startTarget(t, "inet", "urgent")
	r := runGocr(t, nil, "dump", "-t", strconv.Itoa(tg.pid), "-D", t.TempDir())
	assertRefused(t, r, []string{"urgent data"}, nil)
	if n := inRepair(t, tg.pid); n != 0 {
		t.Errorf("the refused dump left %d connections of pid %d in repair mode", n, tg.pid)
	}
	checkIntact(t, tg)
}

// TestInetPendingOutsideRefused: a listener of the job holding a
// connection from a client outside the job that it has not accepted yet
// is refused in one line naming the fd, and the job runs on: it accepts
// the connection afterwards, and the client's byte and the answer go
// through.
func TestInetPendingOutsideRefused(t *testing.T) {
	needsRoot(t)
	needsGocr(t)
	tg := startTarget(t, "inet", "pending-outside")
	port, err := os.ReadFile(tg.result + ".port")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp4", "127.0.0.1:"+string(port))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := conn.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	waitAcceptQueue(t, string(port))
	r := runGocr(t, nil, "dump", "-t", strconv.Itoa(tg.pid), "-D", t.TempDir())
	assertRefused(t, r, []string{strconv.Itoa(tg.pid), "fd 3", "1 connection(s) not accepted yet"}, nil)
	checkIntact(t, tg)
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 1)
	if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != "y" {
		t.Fatalf("the outside client read %q (%v), want the job's answer \"y\"", buf, err)
	}
}

// waitAcceptQueue waits until the listener on 127.0.0.1:port holds a
// connection not accepted: for a listener, rx_queue in /proc/net/tcp is
// its accept queue's length (net/ipv4/tcp_ipv4.c get_tcp4_sock,
// sk_ack_backlog).
func waitAcceptQueue(t *testing.T, port string) {
	t.Helper()
	p, _ := strconv.Atoi(port)
	local := fmt.Sprintf("0100007F:%04X", p)
	waitTCPRow(t, "connection waiting on the listener 127.0.0.1:"+port, func(f []string) bool {
		// st 0A is TCP_LISTEN (include/net/tcp_states.h).
		_, rx, _ := strings.Cut(f[4], ":")
		n, _ := strconv.ParseUint(rx, 16, 32)
		return f[1] == local && f[3] == "0A" && n > 0
	})
}

// TestInetExternalHalfClosedRefused: with --tcp-established, a connection
// to a peer outside the job that the job shut for writing (its FIN sent
// and acknowledged: FIN_WAIT2) is refused in one line naming it, as its
// FIN could not be sent again; gocr's nftables table is gone, and the job
// reads what the peer sent since.
func TestInetExternalHalfClosedRefused(t *testing.T) {
	needsRoot(t)
	needsGocr(t)
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("nft (nftables) is not installed: make deps installs it")
	}
	peer, port := startOutsidePeer(t)
	tg := startTarget(t, "inet", "external-half", port)
	peer.l.(*net.TCPListener).SetDeadline(time.Now().Add(10 * time.Second))
	c, err := peer.l.Accept()
	if err != nil {
		t.Fatalf("the outside peer accepts: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	peer.conn = c
	peer.expect(t, "from-job-1")
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := c.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("the outside peer read %d bytes (%v), want the job's end of file", n, err)
	}
	r := runGocr(t, nil, "dump", "-t", strconv.Itoa(tg.pid), "-D", t.TempDir(), "--tcp-established")
	assertRefused(t, r, []string{strconv.Itoa(tg.pid), "fd 3", "half-closed TCP connection to 127.0.0.1:" + port}, nil)
	assertNoGocrTable(t)
	if _, err := c.Write([]byte("from-outside-1")); err != nil {
		t.Fatalf("the outside peer writes: %v", err)
	}
	checkIntact(t, tg)
}
