//go:build linux

package files

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/gocrpb"
	"github.com/gocr/gocr/proc"
)

func socketpair(t *testing.T, typ int) [2]int {
	t.Helper()
	sv, err := unix.Socketpair(unix.AF_UNIX, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(sv[0]); unix.Close(sv[1]) })
	return sv
}

func send(t *testing.T, h int, msgs ...string) {
	t.Helper()
	for _, m := range msgs {
		if _, err := unix.SendmsgN(h, []byte(m), nil, nil, unix.MSG_DONTWAIT); err != nil {
			t.Fatalf("send %d bytes: %v", len(m), err)
		}
	}
}

// drain reads every message waiting at h, as the process would, until
// EAGAIN or the end of file; a stream's bytes as one message. A seqpacket socket shut for reading reads
// empty at its end, like an empty record: there two empty reads in a row
// end it.
func drain(t *testing.T, h, typ int) []string {
	t.Helper()
	var out []string
	buf := make([]byte, 1<<20)
	for {
		n, _, flags, _, err := unix.Recvmsg(h, buf, nil, unix.MSG_DONTWAIT)
		if errors.Is(err, unix.EAGAIN) {
			break
		}
		if err != nil {
			t.Fatalf("read: %v after %d messages", err, len(out))
		}
		if flags&unix.MSG_TRUNC != 0 {
			t.Fatalf("message %d longer than %d bytes", len(out), len(buf))
		}
		eof := n == 0 && (typ == unix.SOCK_STREAM || (typ == unix.SOCK_SEQPACKET && len(out) > 0 && out[len(out)-1] == ""))
		if eof {
			break
		}
		if typ == unix.SOCK_STREAM && len(out) > 0 {
			out[0] += string(buf[:n]) // one stream, however many reads
			continue
		}
		out = append(out, string(buf[:n]))
		if len(out) > 100 {
			t.Fatalf("more than 100 messages: %.40q...", out[:5])
		}
	}
	return out
}

func collectPair(t *testing.T, sv [2]int) (*gocrpb.Files, [2]*gocrpb.Fd) {
	t.Helper()
	table := &gocrpb.Files{Pid: int32(os.Getpid())}
	var fds [2]*gocrpb.Fd
	for i, n := range sv {
		fd, err := collectFd(os.Getpid(), n, &mountSets{})
		if err != nil {
			t.Fatalf("collect fd %d: %v", n, err)
		}
		if k := KindName(fd); k != "unix_socket" {
			t.Fatalf("fd %d: kind %q, want unix_socket", n, k)
		}
		table.Fds = append(table.Fds, fd)
		fds[i] = fd
	}
	return table, fds
}

// TestUnixSocketpairRoundTrip dumps a socketpair of each type of this
// test, with messages queued both ways (an empty one, one longer than a
// peek), a shut direction, options and O_NONBLOCK, remakes it from the
// image and reads it all back from the new pair; the dumped pair keeps
// its queues and options.
func TestUnixSocketpairRoundTrip(t *testing.T) {
	needsUnixDiag(t)
	long := strings.Repeat("0123456789abcdef", 100<<10/16)
	for _, c := range []struct {
		name string
		typ  int
	}{{"Stream", unix.SOCK_STREAM}, {"Dgram", unix.SOCK_DGRAM}, {"Seqpacket", unix.SOCK_SEQPACKET}} {
		t.Run(c.name, func(t *testing.T) {
			sv := socketpair(t, c.typ)
			toA := []string{"hello", "", long, "x", ""}
			toB := []string{"back"}
			send(t, sv[1], toA...)
			send(t, sv[0], toB...)
			must := func(err error) {
				t.Helper()
				if err != nil {
					t.Fatal(err)
				}
			}
			must(unix.SetsockoptInt(sv[0], unix.SOL_SOCKET, unix.SO_SNDBUF, 50000))
			must(unix.SetsockoptInt(sv[0], unix.SOL_SOCKET, unix.SO_RCVBUF, 70000))
			must(unix.SetsockoptTimeval(sv[0], unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 1, Usec: 500000}))
			must(unix.SetsockoptTimeval(sv[1], unix.SOL_SOCKET, unix.SO_SNDTIMEO, &unix.Timeval{Sec: 0, Usec: 250000}))
			must(unix.SetsockoptInt(sv[0], unix.SOL_SOCKET, unix.SO_PEEK_OFF, 2))
			// After the sends, so no message carries credentials.
			must(unix.SetsockoptInt(sv[1], unix.SOL_SOCKET, unix.SO_PASSCRED, 1))
			must(unix.SetsockoptInt(sv[1], unix.SOL_SOCKET, unix.SO_PASSSEC, 1))
			_, err := unix.FcntlInt(uintptr(sv[0]), unix.F_SETFL, unix.O_NONBLOCK)
			must(err)
			must(unix.Shutdown(sv[1], unix.SHUT_WR))

			table, fds := collectPair(t, sv)
			if err := Link([]*gocrpb.Files{table}, LinkOptions{}); err != nil {
				t.Fatal(err)
			}
			wantA, wantB := toA, toB
			if c.typ == unix.SOCK_STREAM {
				wantA, wantB = []string{strings.Join(toA, "")}, toB
			}
			if d := cmp.Diff(wantA, strs(fds[0].GetUnixSocket().GetReceived())); d != "" {
				t.Errorf("queue at sv[0] (-want +got):\n%s", d)
			}
			if d := cmp.Diff(wantB, strs(fds[1].GetUnixSocket().GetReceived())); d != "" {
				t.Errorf("queue at sv[1] (-want +got):\n%s", d)
			}
			// The peek left the dumped sockets as they were.
			if v, _ := unix.GetsockoptInt(sv[0], unix.SOL_SOCKET, unix.SO_PEEK_OFF); v != 2 {
				t.Errorf("sv[0] SO_PEEK_OFF %d after the dump, want 2", v)
			}
			if v, _ := unix.GetsockoptInt(sv[0], unix.SOL_SOCKET, unix.SO_PASSCRED); v != 0 {
				t.Errorf("sv[0] SO_PASSCRED %d after the dump, want 0", v)
			}

			s := NewSources(nil, 100, [3]*os.File{})
			t.Cleanup(s.Close)
			if err := s.OpenAll([]*gocrpb.Files{table}); err != nil {
				t.Fatal(err)
			}
			placed, err := s.Place(table)
			if err != nil {
				t.Fatal(err)
			}
			var nv [2]int
			for i, p := range placed {
				nv[i] = int(s.File(p.Src).Fd())
			}
			for i := range sv {
				for _, o := range []int{unix.SO_SNDBUF, unix.SO_RCVBUF, unix.SO_PEEK_OFF, unix.SO_PASSCRED, unix.SO_PASSSEC, unix.SO_TYPE} {
					want, _ := unix.GetsockoptInt(sv[i], unix.SOL_SOCKET, o)
					if got, err := unix.GetsockoptInt(nv[i], unix.SOL_SOCKET, o); err != nil || got != want {
						t.Errorf("end %d option %d: %d (%v), want %d", i, o, got, err, want)
					}
				}
				for _, o := range []int{unix.SO_RCVTIMEO, unix.SO_SNDTIMEO} {
					want, _ := unix.GetsockoptTimeval(sv[i], unix.SOL_SOCKET, o)
					if got, err := unix.GetsockoptTimeval(nv[i], unix.SOL_SOCKET, o); err != nil || *got != *want {
						t.Errorf("end %d option %d: %v (%v), want %v", i, o, got, err, want)
					}
				}
				want, _ := unix.FcntlInt(uintptr(sv[i]), unix.F_GETFL, 0)
				if got, _ := unix.FcntlInt(uintptr(nv[i]), unix.F_GETFL, 0); got != want {
					t.Errorf("end %d F_GETFL %#o, want %#o", i, got, want)
				}
				var st unix.Stat_t
				must(unix.Fstat(nv[i], &st))
				d, err := proc.ReadUnixSocket(st.Ino)
				must(err)
				if want := fds[i].GetUnixSocket().GetShutdown(); uint32(d.Shutdown) != want {
					t.Errorf("end %d shutdown %d, want %d", i, d.Shutdown, want)
				}
			}
			// Reading from the new pair gives what was queued, with
			// its boundaries; the peek offset set to 2 does not
			// change what reads give.
			wantRead := wantA
			must(unix.SetsockoptInt(nv[0], unix.SOL_SOCKET, unix.SO_PEEK_OFF, -1))
			if got := drain(t, nv[0], c.typ); !cmp.Equal(got, wantRead) {
				t.Errorf("new sv[0] reads %d messages, want %d: %.40q", len(got), len(wantRead), got)
			}
			if got := drain(t, nv[1], c.typ); !cmp.Equal(got, toB) {
				t.Errorf("new sv[1] reads %q, want %q", got, toB)
			}
			// And so does the dumped one: nothing was consumed.
			must(unix.SetsockoptInt(sv[0], unix.SOL_SOCKET, unix.SO_PEEK_OFF, -1))
			if got := drain(t, sv[0], c.typ); !cmp.Equal(got, wantRead) {
				t.Errorf("dumped sv[0] reads %d messages, want %d: %.40q", len(got), len(wantRead), got)
			}
		})
	}
}

func strs(ms []*gocrpb.UnixMessage) []string {
	var out []string
	for _, m := range ms {
		out = append(out, string(m.GetData()))
	}
	return out
}

// TestUnixSocketRefused: each unix socket gocr cannot restore exactly is
// refused at dump, saying why, and keeps what is queued in it.
func TestUnixSocketRefused(t *testing.T) {
	needsUnixDiag(t)
	dir := t.TempDir()
	for _, c := range []struct {
		name  string
		setup func(t *testing.T) (dump []int, keep int, queued string)
		want  string
	}{
		{"PendingWithData", func(t *testing.T) ([]int, int, string) {
			name := "@gocr-test-" + time.Now().Format("150405.000000")
			l := socket(t, unix.SOCK_STREAM)
			if err := unix.Bind(l, &unix.SockaddrUnix{Name: name}); err != nil {
				t.Fatal(err)
			}
			if err := unix.Listen(l, 1); err != nil {
				t.Fatal(err)
			}
			c := socket(t, unix.SOCK_STREAM)
			if err := unix.Connect(c, &unix.SockaddrUnix{Name: name}); err != nil {
				t.Fatal(err)
			}
			send(t, c, "early")
			return []int{l, c}, -1, ""
		}, "a connection not yet accepted holds"},
		{"DgramFromOutside", func(t *testing.T) ([]int, int, string) {
			name := "@gocr-test-" + time.Now().Format("150405.000000")
			r := socket(t, unix.SOCK_DGRAM)
			if err := unix.Bind(r, &unix.SockaddrUnix{Name: name}); err != nil {
				t.Fatal(err)
			}
			s := socket(t, unix.SOCK_DGRAM)
			if err := unix.Bind(s, &unix.SockaddrUnix{Name: name + "-sender"}); err != nil {
				t.Fatal(err)
			}
			if err := unix.Sendto(s, []byte("hi"), 0, &unix.SockaddrUnix{Name: name}); err != nil {
				t.Fatal(err)
			}
			return []int{r}, r, "hi"
		}, "a socket outside the dumped processes"},
		{"RelativePath", func(t *testing.T) ([]int, int, string) {
			s := socket(t, unix.SOCK_DGRAM)
			wd, _ := os.Getwd()
			if err := os.Chdir(dir); err != nil {
				t.Fatal(err)
			}
			defer os.Chdir(wd)
			if err := unix.Bind(s, &unix.SockaddrUnix{Name: "relative"}); err != nil {
				t.Fatal(err)
			}
			return []int{s}, -1, ""
		}, "relative path"},
		{"PeerOutside", func(t *testing.T) ([]int, int, string) {
			sv := socketpair(t, unix.SOCK_STREAM)
			return sv[:1], -1, ""
		}, "outside the dumped processes"},
		{"FdsInFlight", func(t *testing.T) ([]int, int, string) {
			sv := socketpair(t, unix.SOCK_SEQPACKET)
			if err := unix.Sendmsg(sv[1], []byte("fd"), unix.UnixRights(sv[1]), nil, 0); err != nil {
				t.Fatal(err)
			}
			return sv[:], sv[0], "fd"
		}, "fds in flight (SCM_RIGHTS: 1 sent to it"},
		{"CredentialsInFlight", func(t *testing.T) ([]int, int, string) {
			sv := socketpair(t, unix.SOCK_STREAM)
			cred := unix.UnixCredentials(&unix.Ucred{Pid: int32(os.Getpid()), Uid: uint32(os.Getuid()), Gid: uint32(os.Getgid())})
			if err := unix.Sendmsg(sv[1], []byte("cred"), cred, nil, 0); err != nil {
				t.Fatal(err)
			}
			// The peek then gets a pidfd too, which it must close.
			if err := unix.SetsockoptInt(sv[0], unix.SOL_SOCKET, unix.SO_PASSPIDFD, 1); err != nil {
				t.Fatal(err)
			}
			return sv[:], sv[0], "cred"
		}, "credentials (SCM_CREDENTIALS of pid"},
		{"OutOfBand", func(t *testing.T) ([]int, int, string) {
			sv := socketpair(t, unix.SOCK_STREAM)
			send(t, sv[1], "ab")
			if err := unix.Sendmsg(sv[1], []byte("!"), nil, nil, unix.MSG_OOB); err != nil {
				t.Fatal(err)
			}
			return sv[:], sv[0], "ab"
		}, "out-of-band"},
		{"Keepalive", func(t *testing.T) ([]int, int, string) {
			sv := socketpair(t, unix.SOCK_STREAM)
			if err := unix.SetsockoptInt(sv[0], unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1); err != nil {
				t.Fatal(err)
			}
			return sv[:], -1, ""
		}, "SO_KEEPALIVE is 1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dumped, keep, queued := c.setup(t)
			pidfds := countFds(t, "anon_inode:[pidfd]")
			table := &gocrpb.Files{Pid: int32(os.Getpid())}
			var err error
			for _, n := range dumped {
				var fd *gocrpb.Fd
				if fd, err = collectFd(os.Getpid(), n, &mountSets{}); err != nil {
					break
				}
				table.Fds = append(table.Fds, fd)
			}
			if err == nil {
				err = Link([]*gocrpb.Files{table}, LinkOptions{})
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
			t.Logf("refused: %v", err)
			if n := countFds(t, "anon_inode:[pidfd]"); n != pidfds {
				t.Errorf("%d pidfds open after the refusal, %d before", n, pidfds)
			}
			if keep >= 0 {
				buf := make([]byte, 64)
				n, err := unix.Read(keep, buf)
				if err != nil || !bytes.Equal(buf[:n], []byte(queued)) {
					t.Errorf("after the refusal the socket reads %q (%v), want %q", buf[:n], err, queued)
				}
			}
		})
	}
}

func socket(t *testing.T, typ int) int {
	t.Helper()
	s, err := unix.Socket(unix.AF_UNIX, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(s) })
	return s
}

// countFds counts this process's fds whose link is target.
func countFds(t *testing.T, target string) int {
	t.Helper()
	es, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range es {
		if l, _ := os.Readlink("/proc/self/fd/" + e.Name()); l == target {
			n++
		}
	}
	return n
}

// TestUnixSocketpairBigQueue: a queue larger than a new socket's send
// buffer, sent while the sender's buffer was raised, then lowered: the
// restore grows the new sender's buffer to send it all, and sets the
// dumped size after.
func TestUnixSocketpairBigQueue(t *testing.T) {
	needsUnixDiag(t)
	for _, c := range []struct {
		name string
		typ  int
		msgs []string
	}{
		{"Stream", unix.SOCK_STREAM, []string{strings.Repeat("s", 1<<20), "tail"}},
		// Each datagram is larger than a new socket's whole buffer
		// allows (SO_SNDBUF less 32 bytes, net/unix/af_unix.c).
		{"Dgram", unix.SOCK_DGRAM, []string{strings.Repeat("d", 300<<10), strings.Repeat("e", 300<<10)}},
	} {
		t.Run(c.name, func(t *testing.T) {
			sv := socketpair(t, c.typ)
			sndbufAtLeast(t, sv[1], 2<<20)
			send(t, sv[1], c.msgs...)
			if err := unix.SetsockoptInt(sv[1], unix.SOL_SOCKET, unix.SO_SNDBUF, 1); err != nil {
				t.Fatal(err)
			}
			table, fds := collectPair(t, sv)
			if err := Link([]*gocrpb.Files{table}, LinkOptions{}); err != nil {
				t.Fatal(err)
			}
			s := NewSources(nil, 100, [3]*os.File{})
			t.Cleanup(s.Close)
			if err := s.OpenAll([]*gocrpb.Files{table}); err != nil {
				t.Fatal(err)
			}
			placed, err := s.Place(table)
			if err != nil {
				t.Fatal(err)
			}
			nv := [2]int{int(s.File(placed[0].Src).Fd()), int(s.File(placed[1].Src).Fd())}
			want := c.msgs
			if c.typ == unix.SOCK_STREAM {
				want = []string{strings.Join(c.msgs, "")}
			}
			if got := drain(t, nv[0], c.typ); !cmp.Equal(got, want) {
				t.Errorf("new sv[0] reads %d messages of %v bytes, want %d", len(got), lens(got), len(want))
			}
			if got, _ := unix.GetsockoptInt(nv[1], unix.SOL_SOCKET, unix.SO_SNDBUF); got != int(fds[1].GetUnixSocket().GetSndbuf()) {
				t.Errorf("new sv[1] SO_SNDBUF %d, want the dumped %d", got, fds[1].GetUnixSocket().GetSndbuf())
			}
		})
	}
}

// unixMessagesLabeled tells whether this kernel gives a unix socket's
// messages a security context: SCM_SECURITY, read where the receiver has
// SO_PASSSEC, holds the context of the sending socket where the LSM has
// one (include/net/scm.h scm_passec; SELinux does, AppArmor gives none:
// security/apparmor/lsm.c apparmor_socket_getpeersec_dgram).
func unixMessagesLabeled(t *testing.T) bool {
	t.Helper()
	sv := socketpair(t, unix.SOCK_DGRAM)
	send(t, sv[1], "probe")
	if err := unix.SetsockoptInt(sv[0], unix.SOL_SOCKET, unix.SO_PASSSEC, 1); err != nil {
		t.Fatal(err)
	}
	oob := make([]byte, 4096)
	_, oobn, _, _, err := unix.Recvmsg(sv[0], make([]byte, 16), oob, unix.MSG_DONTWAIT)
	if err != nil {
		t.Fatalf("receive the probe: %v", err)
	}
	cmsgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		t.Fatalf("parse the probe's control messages: %v", err)
	}
	for _, m := range cmsgs {
		if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SCM_SECURITY {
			return true
		}
	}
	return false
}

// TestUnixSocketPasssecLabeled: a message queued to a socket, on a
// kernel that labels unix messages, carries the security context of the
// socket that sent it; one of this process's, as the restore's sockets
// are, is kept with its context recorded, whether SO_PASSSEC was on or
// not (the dump peeks with it on and puts it back).
func TestUnixSocketPasssecLabeled(t *testing.T) {
	needsUnixDiag(t)
	if !unixMessagesLabeled(t) {
		t.Skip("this kernel gives unix messages no security context (SCM_SECURITY: SELinux does; no LSM and AppArmor do not), so there is none to record")
	}
	own, err := ownSocketLabel()
	if err != nil || own == "" {
		t.Fatalf("the label of this process's sockets: %q, %v; want one, as the kernel labels messages", own, err)
	}
	for _, passsec := range []int{0, 1} {
		sv := socketpair(t, unix.SOCK_STREAM)
		send(t, sv[0], "labeled")
		if err := unix.SetsockoptInt(sv[1], unix.SOL_SOCKET, unix.SO_PASSSEC, passsec); err != nil {
			t.Fatal(err)
		}
		table, fds := collectPair(t, sv)
		if err := Link([]*gocrpb.Files{table}, LinkOptions{}); err != nil {
			t.Fatalf("SO_PASSSEC %d: %v", passsec, err)
		}
		u := fds[1].GetUnixSocket()
		if len(u.GetReceived()) != 1 || u.GetReceivedLabel() != own {
			t.Errorf("SO_PASSSEC %d: received %d messages labelled %q, want 1 labelled %q", passsec, len(u.GetReceived()), u.GetReceivedLabel(), own)
		}
		if got, _ := unix.GetsockoptInt(sv[1], unix.SOL_SOCKET, unix.SO_PASSSEC); got != passsec {
			t.Errorf("SO_PASSSEC %d after the dump's peek, want %d", got, passsec)
		}
	}
}

// TestUnixQueueLabels: a queue is kept only with one security context
// for every message (or none for all), and that of gocr's sockets; a
// restore whose sockets would carry another refuses.
func TestUnixQueueLabels(t *testing.T) {
	var q queueLabel
	if err := q.add("a"); err != nil {
		t.Fatal(err)
	}
	if err := q.add("b"); err == nil || !strings.Contains(err.Error(), "two security contexts") {
		t.Errorf("contexts a then b: %v, want a refusal naming two contexts", err)
	}
	q = queueLabel{}
	q.add("a")
	q.add("")
	if _, err := q.check(); err == nil || !strings.Contains(err.Error(), "with none") {
		t.Errorf("one message labelled, one not: %v, want a refusal", err)
	}
	q = queueLabel{}
	q.add("")
	if label, err := q.check(); err != nil || label != "" {
		t.Errorf("no message labelled: %q, %v; want none and no error", label, err)
	}
	own, err := ownSocketLabel()
	if err != nil {
		t.Fatal(err)
	}
	other := own + "-other"
	q = queueLabel{}
	q.add(other)
	if _, err := q.check(); err == nil || !strings.Contains(err.Error(), "SCM_SECURITY") {
		t.Errorf("messages labelled %q, gocr's %q: %v, want a refusal", other, own, err)
	}
	if err := checkReceivedLabel(other); err == nil {
		t.Errorf("restoring messages labelled %q with gocr's sockets labelled %q: no error", other, own)
	} else {
		t.Log(err)
	}
	if err := checkReceivedLabel(own); err != nil {
		t.Errorf("restoring messages labelled as gocr's own sockets (%q): %v", own, err)
	}
}

// sndbufAtLeast gives socket h a send buffer of n bytes (2n as the kernel
// counts it, man 7 socket): past net.core.wmem_max, by default 212992
// (include/net/sock.h SK_WMEM_MAX), only SO_SNDBUFFORCE reaches, which
// needs CAP_NET_ADMIN. Without either, the test skips.
func sndbufAtLeast(t *testing.T, h, n int) {
	t.Helper()
	if unix.SetsockoptInt(h, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, n) != nil {
		if err := unix.SetsockoptInt(h, unix.SOL_SOCKET, unix.SO_SNDBUF, n); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := unix.GetsockoptInt(h, unix.SOL_SOCKET, unix.SO_SNDBUF); err != nil || got < 2*n {
		t.Skipf("a send buffer of %d bytes needs CAP_NET_ADMIN (SO_SNDBUFFORCE) or net.core.wmem_max at least that: SO_SNDBUF is %d (%v)", n, got, err)
	}
}

func lens(ss []string) []int {
	var out []int
	for _, s := range ss {
		out = append(out, len(s))
	}
	return out
}

// needsUnixDiag skips a test on a kernel without CONFIG_UNIX_DIAG: the
// kind finds a socket's peer through sock_diag (man 7 sock_diag).
func needsUnixDiag(t *testing.T) {
	t.Helper()
	if err := proc.UnixDiagAvailable(); err != nil {
		t.Skipf("this kernel does not show unix sockets through sock_diag (CONFIG_UNIX_DIAG): %v", err)
	}
}

// TestCheckNoSocketAt: a socket file whose socket lives, of any type and
// listening or not, is told from one whose socket is closed.
func TestCheckNoSocketAt(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		name   string
		typ    int
		listen bool
	}{{"Stream", unix.SOCK_STREAM, false}, {"Listening", unix.SOCK_STREAM, true}, {"Seqpacket", unix.SOCK_SEQPACKET, false}, {"Dgram", unix.SOCK_DGRAM, false}} {
		t.Run(c.name, func(t *testing.T) {
			path := dir + "/" + c.name
			s, err := unix.Socket(unix.AF_UNIX, c.typ|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			if err := unix.Bind(s, &unix.SockaddrUnix{Name: path}); err != nil {
				t.Fatal(err)
			}
			if c.listen {
				if err := unix.Listen(s, 1); err != nil {
					t.Fatal(err)
				}
			}
			if err := checkNoSocketAt(path); err == nil || !strings.Contains(err.Error(), "a live socket") {
				t.Errorf("live socket at %s: %v, want it named live", path, err)
			}
			unix.Close(s)
			if err := checkNoSocketAt(path); err != nil {
				t.Errorf("closed socket's file at %s: %v", path, err)
			}
		})
	}
}

// TestUnixSocketpairOldImage: an image written before unix sockets had
// names holds each socketpair's queues on its first fd, and no
// connection: it is restored as the socketpair it was.
func TestUnixSocketpairOldImage(t *testing.T) {
	needsUnixDiag(t)
	sv := socketpair(t, unix.SOCK_SEQPACKET)
	send(t, sv[1], "to-a", "")
	send(t, sv[0], "to-b")
	table, fds := collectPair(t, sv)
	if err := Link([]*gocrpb.Files{table}, LinkOptions{}); err != nil {
		t.Fatal(err)
	}
	data := func(ms []*gocrpb.UnixMessage) [][]byte {
		var out [][]byte
		for _, m := range ms {
			out = append(out, m.GetData())
		}
		return out
	}
	a, b := fds[0].GetUnixSocket(), fds[1].GetUnixSocket()
	a.Queues = &gocrpb.UnixSocketQueues{Here: data(a.GetReceived()), Peer: data(b.GetReceived())}
	for _, u := range []*gocrpb.UnixSocketFd{a, b} {
		u.Connection, u.Received = gocrpb.UnixSocketFd_CONNECTION_UNSET, nil
	}
	s := NewSources(nil, 100, [3]*os.File{})
	t.Cleanup(s.Close)
	if err := s.OpenAll([]*gocrpb.Files{table}); err != nil {
		t.Fatal(err)
	}
	placed, err := s.Place(table)
	if err != nil {
		t.Fatal(err)
	}
	nv := [2]int{int(s.File(placed[0].Src).Fd()), int(s.File(placed[1].Src).Fd())}
	if got := drain(t, nv[0], unix.SOCK_SEQPACKET); !cmp.Equal(got, []string{"to-a", ""}) {
		t.Errorf("new sv[0] reads %q", got)
	}
	if got := drain(t, nv[1], unix.SOCK_SEQPACKET); !cmp.Equal(got, []string{"to-b"}) {
		t.Errorf("new sv[1] reads %q", got)
	}
}

// TestUnixPendingOnOutsideListener: a stream that waits on a listener
// outside the dump, not accepted yet, has no peer inode to see (like one
// whose peer closed), but is not shut: it is refused naming the
// listener, or with the listener named external dumped with its peer
// gone.
func TestUnixPendingOnOutsideListener(t *testing.T) {
	needsUnixDiag(t)
	name := "@gocr-test-pending-" + time.Now().Format("150405.000000")
	l := socket(t, unix.SOCK_STREAM)
	if err := unix.Bind(l, &unix.SockaddrUnix{Name: name}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(l, 1); err != nil {
		t.Fatal(err)
	}
	c := socket(t, unix.SOCK_STREAM)
	if err := unix.Connect(c, &unix.SockaddrUnix{Name: name}); err != nil {
		t.Fatal(err)
	}
	fd, err := collectFd(os.Getpid(), c, &mountSets{})
	if err != nil {
		t.Fatal(err)
	}
	table := &gocrpb.Files{Pid: int32(os.Getpid()), Fds: []*gocrpb.Fd{fd}}
	err = Link([]*gocrpb.Files{table}, LinkOptions{})
	if err == nil || !strings.Contains(err.Error(), "has not accepted it yet); --external-unix "+name) {
		t.Fatalf("error %v, want it refused naming the listener %s", err, name)
	}
	if err := Link([]*gocrpb.Files{table}, LinkOptions{ExternalUnix: []string{name}}); err != nil {
		t.Fatal(err)
	}
	if got := fd.GetUnixSocket().GetConnection(); got != gocrpb.UnixSocketFd_PEER_GONE {
		t.Errorf("connection %s, want PEER_GONE", got)
	}
}
