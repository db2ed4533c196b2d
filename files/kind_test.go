//go:build linux

package files

import (
	"os"
	"reflect"
	"sort"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/gocrpb"
)

// TestEveryKindRegistered: every field of the Fd.kind oneof has a kind
// here and every kind has its field, so neither side can be forgotten
// when a kind is added.
func TestEveryKindRegistered(t *testing.T) {
	var fields []string
	o := (&gocrpb.Fd{}).ProtoReflect().Descriptor().Oneofs().ByName("kind")
	for i := 0; i < o.Fields().Len(); i++ {
		fields = append(fields, string(o.Fields().Get(i).Name()))
	}
	want := Names()
	sort.Strings(fields)
	if d := cmp.Diff(want, fields); d != "" {
		t.Errorf("registered kinds vs Fd.kind fields (-kinds +fields):\n%s", d)
	}
}

// TestCollectOwnFds collects fds of this test of each kind that needs no
// privilege, and checks each lands in its kind with the state it was
// given, and that linking and fixups see them.
func TestCollectOwnFds(t *testing.T) {
	dir := t.TempDir()
	reg, err := os.Create(dir + "/reg")
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	if _, err := reg.WriteString("hello"); err != nil {
		t.Fatal(err)
	}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	if _, err := unix.Write(p[1], []byte("queued")); err != nil {
		t.Fatal(err)
	}
	ev, err := unix.Eventfd(41, unix.EFD_CLOEXEC|unix.EFD_SEMAPHORE)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(ev)
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(ep)
	if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, ev, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: 7}); err != nil {
		t.Fatal(err)
	}
	mfd, err := unix.MemfdCreate("kinds", unix.MFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(mfd)

	// One fd at a time: the whole table of a running Go test changes
	// under Collect (the runtime's own fds, the /proc directory read).
	mine := []int{int(reg.Fd()), p[0], p[1], ev, ep, mfd}
	table := &gocrpb.Files{Pid: int32(os.Getpid())}
	byFd := map[int32]*gocrpb.Fd{}
	for _, n := range mine {
		fd, err := collectFd(os.Getpid(), n, &mountSets{})
		if err != nil {
			t.Fatalf("fd %d: %v", n, err)
		}
		table.Fds = append(table.Fds, fd)
		byFd[fd.Fd] = fd
	}
	for _, c := range []struct {
		fd   int
		kind string
	}{{int(reg.Fd()), "path"}, {p[0], "pipe"}, {p[1], "pipe"}, {ev, "eventfd"}, {ep, "epoll"}, {mfd, "memfd"}} {
		got := byFd[int32(c.fd)]
		if got == nil {
			t.Errorf("fd %d (%s) not collected", c.fd, c.kind)
			continue
		}
		if k := KindName(got); k != c.kind {
			t.Errorf("fd %d: kind %q, want %q", c.fd, k, c.kind)
		}
	}
	if e := byFd[int32(ev)].GetEventfd(); e.GetCount() != 41 || !e.GetSemaphore() {
		t.Errorf("eventfd state %v, want count 41, semaphore", e)
	}
	if w := byFd[int32(ep)].GetEpoll().GetWatches(); len(w) != 1 || w[0].Tfd != int32(ev) || w[0].Data&0xffffffff != 7 {
		t.Errorf("epoll watches %v, want one on fd %d", w, ev)
	}
	if got := byFd[int32(reg.Fd())]; got.Pos != 5 || got.GetPath().GetType() != gocrpb.PathFd_REGULAR {
		t.Errorf("regular file: pos %d type %v, want 5 REGULAR", got.Pos, got.GetPath().GetType())
	}
	if got := byFd[int32(p[0])]; got.Flags&unix.O_NONBLOCK == 0 || !got.Cloexec {
		t.Errorf("pipe read end flags %#o cloexec %v, want O_NONBLOCK and cloexec", got.Flags, got.Cloexec)
	}
	if err := Link([]*gocrpb.Files{table}, LinkOptions{}); err != nil {
		t.Fatal(err)
	}
	if d := byFd[int32(p[0])].GetPipe().GetData(); string(d) != "queued" {
		t.Errorf("pipe data %q, want %q", d, "queued")
	}
	if fx := Fixups(table); len(fx) != 1 || fx[0].Op != FixupEpollAdd || fx[0].Fd != int32(ep) || fx[0].Target != int32(ev) {
		t.Errorf("fixups %+v, want one epoll add of fd %d to %d", fx, ev, ep)
	}
}

// TestOptionalInterfacesMatch: a kind with a method named as one of the
// optional interfaces' (Link, LinkKey, Check, Finish) implements that
// interface. Go matches interfaces by signature, so a kind whose method
// kept an old signature would otherwise silently stop being linked,
// checked or finished.
func TestOptionalInterfacesMatch(t *testing.T) {
	optional := map[string]reflect.Type{
		"Link":    reflect.TypeFor[Linker](),
		"LinkKey": reflect.TypeFor[LinkKeyer](),
		"Check":   reflect.TypeFor[Checker](),
		"Finish":  reflect.TypeFor[Finisher](),
	}
	for _, k := range kinds {
		kt := reflect.TypeOf(k)
		for method, iface := range optional {
			if _, has := kt.MethodByName(method); has && !kt.Implements(iface) {
				t.Errorf("kind %s has a %s method but does not implement %v: its signature is not the interface's", k.Name(), method, iface)
			}
		}
	}
}
