//go:build linux

package files

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/gocrpb"
	"github.com/gocr/gocr/proc"
)

// signalfdKind is a signalfd(2) with its signal mask.
type signalfdKind struct{}

func init() { register(signalfdKind{}) }

func (signalfdKind) Name() string { return "signalfd" }

func (signalfdKind) Match(e *Entry) bool { return e.Target == "anon_inode:[signalfd]" }

func (signalfdKind) Dump(e *Entry, fd *gocrpb.Fd) error {
	mask, err := proc.ReadSignalfd(e.Pid, e.Fd)
	if err != nil {
		return err
	}
	fd.Kind = &gocrpb.Fd_Signalfd{Signalfd: &gocrpb.SignalfdFd{Mask: mask}}
	return nil
}

func (signalfdKind) Open(s *Sources, fd *gocrpb.Fd) (int32, error) {
	flags := unix.SFD_CLOEXEC
	if fd.Flags&unix.O_NONBLOCK != 0 {
		flags |= unix.SFD_NONBLOCK
	}
	// A signalfd reads the signals of whoever reads it (man 2
	// signalfd), so one made here serves the restored process.
	mask := unix.Sigset_t{Val: [16]uint64{fd.GetSignalfd().GetMask()}}
	nfd, err := unix.Signalfd(-1, &mask, flags)
	if err != nil {
		return 0, fmt.Errorf("signalfd: %w", err)
	}
	return s.AddFd(nfd, "signalfd"), nil
}
