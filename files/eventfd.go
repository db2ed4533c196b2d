//go:build linux

package files

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/gocrpb"
	"github.com/gocr/gocr/proc"
)

// eventfdKind is an eventfd(2): its counter and whether it counts as a
// semaphore.
type eventfdKind struct{}

func init() { register(eventfdKind{}) }

func (eventfdKind) Name() string { return "eventfd" }

func (eventfdKind) Match(e *Entry) bool { return e.Target == "anon_inode:[eventfd]" }

func (eventfdKind) Dump(e *Entry, fd *gocrpb.Fd) error {
	ev, err := proc.ReadEventfd(e.Pid, e.Fd)
	if err != nil {
		return err
	}
	fd.Kind = &gocrpb.Fd_Eventfd{Eventfd: &gocrpb.EventfdFd{Count: ev.Count, Semaphore: ev.Semaphore}}
	return nil
}

func (eventfdKind) Open(s *Sources, fd *gocrpb.Fd) (int32, error) {
	ev := fd.GetEventfd()
	flags := unix.EFD_CLOEXEC
	if ev.GetSemaphore() {
		flags |= unix.EFD_SEMAPHORE
	}
	if fd.Flags&unix.O_NONBLOCK != 0 {
		flags |= unix.EFD_NONBLOCK
	}
	nfd, err := unix.Eventfd(0, flags)
	if err != nil {
		return 0, fmt.Errorf("eventfd: %w", err)
	}
	n := s.AddFd(nfd, "eventfd")
	// The counter is 64 bits, eventfd's initval only 32: a write adds
	// the whole value (man 2 eventfd).
	if ev.GetCount() > 0 {
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], ev.GetCount())
		if _, err := unix.Write(nfd, b[:]); err != nil {
			return 0, fmt.Errorf("set eventfd counter: %w", err)
		}
	}
	return n, nil
}
