//go:build linux

package files

import (
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/gocr/gocr/gocrpb"
)

// selfMaker makes the calls in this process, as the agent would in one
// with the test's pid and ids, and records them.
type selfMaker struct{ calls []string }

func (m *selfMaker) Socketpair(c *gocrpb.UnixPeerCred, typ int) ([2]int, error) {
	m.calls = append(m.calls, "socketpair")
	return unix.Socketpair(unix.AF_UNIX, typ|unix.SOCK_CLOEXEC, 0)
}

func (m *selfMaker) Listen(c *gocrpb.UnixPeerCred, h, backlog int) error {
	m.calls = append(m.calls, "listen")
	return unix.Listen(h, backlog)
}

func (m *selfMaker) SamePids() bool { return true }

func (m *selfMaker) Connect(c *gocrpb.UnixPeerCred, h int, name string) error {
	m.calls = append(m.calls, "connect")
	return unix.Connect(h, &unix.SockaddrUnix{Name: name})
}

// TestUnixPeerCredRoundTrip: the dump records a socketpair's peer
// credentials (this process's), the restore makes the pair through the
// PeerCredMaker and reads them back; credentials the made socket does not
// have fail the restore, naming them.
func TestUnixPeerCredRoundTrip(t *testing.T) {
	needsUnixDiag(t)
	sv := socketpair(t, unix.SOCK_STREAM)
	table, fds := collectPair(t, sv)
	if err := Link([]*gocrpb.Files{table}, LinkOptions{}); err != nil {
		t.Fatal(err)
	}
	groups, err := unix.Getgroups()
	if err != nil {
		t.Fatal(err)
	}
	want := &gocrpb.UnixPeerCred{Pid: int32(os.Getpid()), Uid: uint32(os.Geteuid()), Gid: uint32(os.Getegid())}
	for _, g := range groups {
		want.Groups = append(want.Groups, uint32(g))
	}
	for i, fd := range fds {
		if d := cmp.Diff(want, fd.GetUnixSocket().GetPeerCred(), protocmp.Transform()); d != "" {
			t.Errorf("end %d peer credentials (-want +got):\n%s", i, d)
		}
	}

	m := &selfMaker{}
	s := NewSources(nil, 100, [3]*os.File{})
	s.PeerCreds = m
	t.Cleanup(s.Close)
	if err := s.OpenAll([]*gocrpb.Files{table}); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"socketpair"}, m.calls); d != "" {
		t.Errorf("calls (-want +got):\n%s", d)
	}

	for _, fd := range fds {
		fd.GetUnixSocket().PeerCred.Uid++
	}
	s = NewSources(nil, 100, [3]*os.File{})
	s.PeerCreds = &selfMaker{}
	t.Cleanup(s.Close)
	err = s.OpenAll([]*gocrpb.Files{table})
	if err == nil || !strings.Contains(err.Error(), "came back as pid") {
		t.Errorf("restore with other credentials in the image: %v, want one saying they came back otherwise", err)
	}
}
