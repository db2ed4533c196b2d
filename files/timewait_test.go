//go:build linux

package files

import (
	"errors"
	"net/netip"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestClearLocalTimeWait: a listener without SO_REUSEADDR accepts a
// connection and closes it first, which leaves it in TIME_WAIT on the
// listener's port; the listener closed, binding the port again fails
// with EADDRINUSE until clearedBind removes that entry (both its ends on
// the loopback) and binds.
func TestClearLocalTimeWait(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("SOCK_DESTROY needs CAP_NET_ADMIN: run as root")
	}
	loopback := [4]byte{127, 0, 0, 1}
	socket := func() int {
		h, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Close(h) })
		return h
	}
	l := socket()
	if err := unix.Bind(l, &unix.SockaddrInet4{Addr: loopback}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(l, 1); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(l)
	if err != nil {
		t.Fatal(err)
	}
	port := sa.(*unix.SockaddrInet4).Port
	c := socket()
	if err := unix.Connect(c, &unix.SockaddrInet4{Addr: loopback, Port: port}); err != nil {
		t.Fatal(err)
	}
	s, _, err := unix.Accept4(l, unix.SOCK_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	// The server closes first: its end goes to TIME_WAIT once the
	// client's FIN comes (RFC 793).
	unix.Close(s)
	unix.Close(c)
	unix.Close(l)
	local := netip.AddrPortFrom(netip.AddrFrom4(loopback), uint16(port))
	waitTimeWait(t, local)
	h := socket()
	bind := func() error { return unix.Bind(h, &unix.SockaddrInet4{Addr: loopback, Port: port}) }
	if err := bind(); !errors.Is(err, unix.EADDRINUSE) {
		t.Fatalf("bind to %s with a TIME_WAIT there: %v, want EADDRINUSE", local, err)
	}
	if err := clearedBind(local, unix.AF_INET, bind); err != nil {
		t.Fatalf("bind to %s after clearing its TIME_WAIT entries: %v", local, err)
	}
}

// waitTimeWait waits until a TIME_WAIT entry is on local.
func waitTimeWait(t *testing.T, local netip.AddrPort) {
	t.Helper()
	s, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(s)
	deadline := time.Now().Add(5 * time.Second)
	for {
		ids, err := timeWaitIDs(s, unix.AF_INET)
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range ids {
			if tw, err := parseDiagSockID(unix.AF_INET, id); err == nil && tw.Local == local {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no TIME_WAIT on %s 5 s after its connection closed", local)
		}
		time.Sleep(time.Millisecond)
	}
}
