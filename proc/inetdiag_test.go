//go:build linux

package proc

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// inetDiagMsg builds one SOCK_DIAG_BY_FAMILY message of a dump's answer,
// as net/ipv4/inet_diag.c lays it out, with a shutdown attribute and,
// for s.MD5Keys, an MD5 signature attribute.
func inetDiagMsg(seq uint32, s InetSocket, family byte) []byte {
	ne := binary.NativeEndian
	body := make([]byte, inetDiagMsgLen)
	body[0], body[1] = family, byte(s.State)
	binary.BigEndian.PutUint16(body[4:], s.Local.Port())
	binary.BigEndian.PutUint16(body[6:], s.Peer.Port())
	copy(body[8:24], s.Local.Addr().AsSlice())
	copy(body[24:40], s.Peer.Addr().AsSlice())
	ne.PutUint32(body[56:], s.RecvQueue)
	ne.PutUint32(body[60:], s.SendQueue)
	ne.PutUint32(body[68:], uint32(s.Ino))
	attr := []byte{5, 0, inetDiagShutdown, 0, s.Shutdown, 0, 0, 0}
	body = append(body, attr...)
	unpadded := len(body) - 3 // the last attribute's padding is not counted
	if s.MD5Keys > 0 {
		md5 := make([]byte, inetDiagAttrLen+s.MD5Keys*tcpDiagMD5SigLen)
		ne.PutUint16(md5[0:], uint16(len(md5)))
		ne.PutUint16(md5[2:], inetDiagMD5Sig)
		body = append(body, md5...)
		unpadded = len(body)
	}
	h := make([]byte, unix.SizeofNlMsghdr)
	ne.PutUint32(h[0:], uint32(len(h)+unpadded))
	ne.PutUint16(h[4:], unix.SOCK_DIAG_BY_FAMILY)
	ne.PutUint32(h[8:], seq)
	return append(h, body...)
}

func TestParseInetDiagReply(t *testing.T) {
	v4 := InetSocket{Ino: 42, State: InetEstablished, Shutdown: ShutdownWrite, RecvQueue: 3, SendQueue: 9, MD5Keys: 2,
		Local: netip.MustParseAddrPort("127.0.0.1:8080"), Peer: netip.MustParseAddrPort("127.0.0.1:40000")}
	v6 := InetSocket{Ino: 43, State: InetListen, SendQueue: 7,
		Local: netip.MustParseAddrPort("[::1]:443"), Peer: netip.MustParseAddrPort("[::]:0")}
	b := append(inetDiagMsg(1, v4, unix.AF_INET), inetDiagMsg(1, v6, unix.AF_INET6)...)
	socks, done, err := ParseInetDiagReply(b, 1)
	if err != nil || done {
		t.Fatalf("ParseInetDiagReply: done %v, %v", done, err)
	}
	if diff := cmp.Diff([]InetSocket{v4, v6}, socks, cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
		t.Errorf("sockets (-want +got):\n%s", diff)
	}

	doneMsg := make([]byte, unix.SizeofNlMsghdr+4)
	binary.NativeEndian.PutUint32(doneMsg[0:], uint32(len(doneMsg)))
	binary.NativeEndian.PutUint16(doneMsg[4:], unix.NLMSG_DONE)
	binary.NativeEndian.PutUint32(doneMsg[8:], 1)
	if _, done, err := ParseInetDiagReply(doneMsg, 1); err != nil || !done {
		t.Errorf("NLMSG_DONE: done %v, %v", done, err)
	}
	errMsg := append([]byte(nil), doneMsg...)
	binary.NativeEndian.PutUint16(errMsg[4:], unix.NLMSG_ERROR)
	binary.NativeEndian.PutUint32(errMsg[unix.SizeofNlMsghdr:], ^uint32(0)) // -EPERM
	if _, _, err := ParseInetDiagReply(errMsg, 1); !errors.Is(err, unix.EPERM) {
		t.Errorf("NLMSG_ERROR: %v, want EPERM", err)
	}
	if _, _, err := ParseInetDiagReply(b[:40], 1); err == nil {
		t.Error("a message cut short parsed")
	}
	if _, _, err := ParseInetDiagReply(b, 2); err == nil {
		t.Error("an answer to another request parsed")
	}
}

// TestReadInetSocketLive: sock_diag finds a listening socket of gocr's by
// its inode, with its address and backlog.
func TestReadInetSocketLive(t *testing.T) {
	h, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(h)
	if err := unix.Bind(h, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(h, 5); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(h, &st); err != nil {
		t.Fatal(err)
	}
	sa, _ := unix.Getsockname(h)
	s, err := ReadInetSocket(unix.AF_INET, unix.IPPROTO_TCP, st.Ino)
	if err != nil {
		t.Skipf("sock_diag: %v", err)
	}
	want := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(sa.(*unix.SockaddrInet4).Port))
	if s.State != InetListen || s.Local != want || s.SendQueue != 5 {
		t.Errorf("got %+v, want LISTEN on %s with backlog 5", s, want)
	}
	if _, err := ReadInetSocket(unix.AF_INET, unix.IPPROTO_TCP, 1); !errors.Is(err, unix.ENOENT) {
		t.Errorf("inode 1: %v, want ENOENT", err)
	}
}
