//go:build linux

package proc

import (
	"encoding/binary"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// diagReply builds a netlink reply as net/unix/diag.c writes it: header,
// struct unix_diag_msg, then each attribute padded to 4 bytes.
func diagReply(seq uint32, typ uint16, body []byte) []byte {
	ne := binary.NativeEndian
	b := make([]byte, unix.SizeofNlMsghdr, unix.SizeofNlMsghdr+len(body))
	ne.PutUint32(b[0:], uint32(unix.SizeofNlMsghdr+len(body)))
	ne.PutUint16(b[4:], typ)
	ne.PutUint32(b[8:], seq)
	return append(b, body...)
}

func diagMsg(typ, state byte, ino uint32, attrs ...[]byte) []byte {
	b := make([]byte, unixDiagMsgLen)
	b[0], b[1], b[2] = unix.AF_UNIX, typ, state
	binary.NativeEndian.PutUint32(b[4:], ino)
	for _, a := range attrs {
		b = append(b, a...)
	}
	return b
}

func diagAttr(typ uint16, v []byte) []byte {
	b := make([]byte, nlAttrLen, nlAlign(nlAttrLen+len(v)))
	binary.NativeEndian.PutUint16(b[0:], uint16(nlAttrLen+len(v)))
	binary.NativeEndian.PutUint16(b[2:], typ)
	b = append(b, v...)
	return b[:cap(b)]
}

func u32s(vs ...uint32) []byte {
	var b []byte
	for _, v := range vs {
		b = binary.NativeEndian.AppendUint32(b, v)
	}
	return b
}

func TestParseUnixDiagReply(t *testing.T) {
	for _, c := range []struct {
		name  string
		reply []byte
		want  UnixSocket
	}{
		{"SocketpairEnd", diagReply(7, unix.SOCK_DIAG_BY_FAMILY, diagMsg(unix.SOCK_SEQPACKET, UnixEstablished, 1000,
			diagAttr(unixDiagPeer, u32s(1001)),
			diagAttr(unixDiagRqlen, u32s(14, 768)),
			diagAttr(unixDiagShutdown, []byte{ShutdownRead}))),
			UnixSocket{Ino: 1000, Type: unix.SOCK_SEQPACKET, State: UnixEstablished, HasPeer: true, Peer: 1001,
				Shutdown: ShutdownRead, RecvQueue: 14, SendQueue: 768}},
		// A name of odd length, so the next attribute starts after padding.
		{"Listening", diagReply(7, unix.SOCK_DIAG_BY_FAMILY, diagMsg(unix.SOCK_STREAM, UnixListen, 5,
			diagAttr(unixDiagName, []byte("/tmp/s\x00")),
			diagAttr(unixDiagVfs, u32s(4242, 8<<20|3)),
			diagAttr(unixDiagIcons, u32s(6, 9)),
			diagAttr(unixDiagRqlen, u32s(2, 128)),
			diagAttr(unixDiagShutdown, []byte{0}))),
			UnixSocket{Ino: 5, Type: unix.SOCK_STREAM, State: UnixListen, Bound: true, Name: "/tmp/s",
				HasFile: true, FileIno: 4242, FileDev: 8<<20 | 3,
				Pending: []uint64{6, 9}, RecvQueue: 2, SendQueue: 128}},
		{"AbstractPeerClosed", diagReply(7, unix.SOCK_DIAG_BY_FAMILY, diagMsg(unix.SOCK_DGRAM, UnixEstablished, 8,
			diagAttr(unixDiagName, []byte("\x0012345")),
			diagAttr(unixDiagPeer, u32s(0)),
			diagAttr(unixDiagShutdown, []byte{ShutdownRead | ShutdownWrite}))),
			UnixSocket{Ino: 8, Type: unix.SOCK_DGRAM, State: UnixEstablished, Bound: true, Name: "\x0012345",
				HasPeer: true, Shutdown: ShutdownRead | ShutdownWrite}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseUnixDiagReply(c.reply, 7)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(c.want, got); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

// TestUnixFileDev: sock_diag's device of a socket file is the kernel's
// own dev_t, MAJOR<<20|MINOR (include/linux/kdev_t.h), and matches
// stat(2)'s st_dev of the same device.
func TestUnixFileDev(t *testing.T) {
	u := UnixSocket{FileDev: 259<<20 | 1}
	if !u.FileDevMatches(unix.Mkdev(259, 1)) {
		t.Errorf("dev 259:1 does not match %#x", u.FileDev)
	}
	if u.FileDevMatches(unix.Mkdev(259, 2)) || u.FileDevMatches(unix.Mkdev(258, 1)) {
		t.Errorf("another device matches %#x", u.FileDev)
	}
}

func TestParseUnixDiagReplyErrors(t *testing.T) {
	good := diagMsg(unix.SOCK_STREAM, UnixEstablished, 1, diagAttr(unixDiagPeer, u32s(2)))
	for _, c := range []struct {
		name  string
		reply []byte
		want  string
	}{
		{"Empty", nil, "no answer"},
		{"ShortHeader", diagReply(1, unix.SOCK_DIAG_BY_FAMILY, good)[:10], "header cut short"},
		{"LengthPastEnd", diagReply(1, unix.SOCK_DIAG_BY_FAMILY, good)[:unix.SizeofNlMsghdr+20], "netlink message length"},
		{"OtherRequest", diagReply(2, unix.SOCK_DIAG_BY_FAMILY, good), "request 2"},
		{"ShortMsg", diagReply(1, unix.SOCK_DIAG_BY_FAMILY, good[:8]), "unix_diag_msg cut short"},
		{"BadPeer", diagReply(1, unix.SOCK_DIAG_BY_FAMILY, diagMsg(unix.SOCK_STREAM, UnixEstablished, 1,
			diagAttr(unixDiagPeer, []byte{1, 2}))), "want 4"},
		{"AttrPastEnd", diagReply(1, unix.SOCK_DIAG_BY_FAMILY, good[:len(good)-2]), "attribute 2 length 8"},
		{"Done", diagReply(1, unix.NLMSG_DONE, u32s(0)), "NLMSG_DONE"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseUnixDiagReply(c.reply, 1)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want one containing %q", err, c.want)
			}
		})
	}
	_, err := ParseUnixDiagReply(diagReply(1, unix.NLMSG_ERROR, u32s(^uint32(unix.ENOENT)+1)), 1)
	if !errors.Is(err, unix.ENOENT) {
		t.Errorf("NLMSG_ERROR -ENOENT: %v, want ENOENT", err)
	}
}

// TestUnixSocketSelf asks the kernel about a socketpair of this test.
func TestUnixSocketSelf(t *testing.T) {
	sv, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(sv[0]); unix.Close(sv[1]) })
	var st [2]unix.Stat_t
	for i := range sv {
		if err := unix.Fstat(sv[i], &st[i]); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range []string{"hello", "", "worldwide"} {
		if err := unix.Sendto(sv[1], []byte(m), 0, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := unix.Shutdown(sv[1], unix.SHUT_WR); err != nil {
		t.Fatal(err)
	}
	got, err := ReadUnixSocket(st[0].Ino)
	if errors.Is(err, unix.ENOENT) {
		// A socket this test holds open cannot be missing: the kernel
		// has no sock_diag handler for unix sockets (CONFIG_UNIX_DIAG,
		// net/core/sock_diag.c answers ENOENT for a family it lacks).
		t.Skipf("this kernel does not show unix sockets through sock_diag (CONFIG_UNIX_DIAG): %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	// The peer's SHUT_WR is the reading side shut here.
	want := UnixSocket{Ino: st[0].Ino, Type: unix.SOCK_SEQPACKET, State: UnixEstablished, HasPeer: true, Peer: st[1].Ino,
		Shutdown: ShutdownRead, RecvQueue: 14}
	if d := cmp.Diff(want, got, cmpIgnoreSendQueue); d != "" {
		t.Errorf("sv[0] (-want +got):\n%s", d)
	}
	if got, err := ReadUnixSocket(st[1].Ino); err != nil || got.Peer != st[0].Ino || got.Shutdown != ShutdownWrite {
		t.Errorf("sv[1]: %+v, %v; want peer %d, shutdown %d", got, err, st[0].Ino, ShutdownWrite)
	}
	// A socket that is no unix socket: sockfs numbers every socket from
	// one counter, so no unix socket has its inode.
	udp, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(udp)
	var ust unix.Stat_t
	if err := unix.Fstat(udp, &ust); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadUnixSocket(ust.Ino); !errors.Is(err, unix.ENOENT) {
		t.Errorf("ReadUnixSocket of a UDP socket's inode: %v, want ENOENT", err)
	}

	pid := os.Getpid()
	for i, want := range []string{"UNIX", "UNIX"} {
		if p, err := SocketProtocol(pid, sv[i]); err != nil || p != want {
			t.Errorf("SocketProtocol(fd %d) = %q, %v; want %q", sv[i], p, err, want)
		}
	}
	if n, err := ReadUnixScmFds(pid, sv[0]); err != nil || n != 0 {
		t.Errorf("ReadUnixScmFds = %d, %v; want 0", n, err)
	}
	// One fd sent to sv[0], not received.
	if err := unix.Sendmsg(sv[1], nil, unix.UnixRights(sv[1]), nil, 0); err == nil {
		t.Errorf("sendmsg after SHUT_WR succeeded")
	}
	if err := unix.Sendmsg(sv[0], []byte("x"), unix.UnixRights(sv[0]), nil, 0); err != nil {
		t.Fatal(err)
	}
	if n, err := ReadUnixScmFds(pid, sv[1]); err != nil || n != 1 {
		t.Errorf("ReadUnixScmFds after SCM_RIGHTS = %d, %v; want 1", n, err)
	}

	st2, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(st2)
	if p, err := SocketProtocol(pid, st2); err != nil || p != "UNIX-STREAM" {
		t.Errorf("SocketProtocol(stream) = %q, %v; want UNIX-STREAM", p, err)
	}
	if p, err := SocketProtocol(pid, udp); err != nil || p != "UDP" {
		t.Errorf("SocketProtocol(udp) = %q, %v; want UDP", p, err)
	}
}

var cmpIgnoreSendQueue = cmp.FilterPath(func(p cmp.Path) bool { return p.String() == "SendQueue" }, cmp.Ignore())
