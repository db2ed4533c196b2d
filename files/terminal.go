//go:build linux

package files

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/gocrpb"
	"github.com/gocr/gocr/proc"
)

// linkOutsideSlave handles the slaves of a pair whose master is not in
// the dump. One that is the controlling terminal of the process holding
// it, got by a session led outside the dump, is a shell job's terminal,
// which the restore replaces by its own (with --shell-job, its termios and
// foreground too). Other stdio on such a pty is stdio joined outside the
// dump, which the restore gives its own, as before terminals were a kind.
// The rest is refused: a session led in the dump is restored as a new
// session, which no terminal outside could follow.
func linkOutsideSlave(refs []Ref) error {
	holders := map[int]bool{}
	for _, r := range refs {
		holders[r.Pid] = true
	}
	for _, r := range refs {
		index := r.Fd.GetPty().GetIndex()
		st, err := proc.ReadStat(r.Pid)
		if err != nil {
			return err
		}
		ctty := uint64(st.TtyNr) == unix.Mkdev(ptsMajor, index)
		switch {
		case ctty && holders[st.Session]:
			return fmt.Errorf("pid %d fd %d (%s): the master of this pty is outside the dumped processes, and it is the controlling terminal of session %d, led in the dump", r.Pid, r.Fd.Fd, r.Fd.Description, st.Session)
		case !ctty && int(r.Fd.Fd) > unix.Stderr:
			return fmt.Errorf("pid %d fd %d (%s): the master of this pty is outside the dumped processes, and it is not the process's controlling terminal", r.Pid, r.Fd.Fd, r.Fd.Description)
		case len(r.Fd.Locks) > 0:
			return fmt.Errorf("pid %d fd %d (%s) holds a lock on a terminal the restore replaces", r.Pid, r.Fd.Fd, r.Fd.Description)
		}
		setInherit(r.Fd, unix.S_IFCHR, false)
		if !ctty {
			continue
		}
		ts, err := readTerminalState(r)
		if err != nil {
			return fmt.Errorf("pid %d fd %d (%s): %w", r.Pid, r.Fd.Fd, r.Fd.Description, err)
		}
		in := r.Fd.GetInherit()
		in.Terminal, in.Foreground, in.TerminalState = true, st.Tpgid == st.Pgrp, ts
	}
	return nil
}

// readTerminalState reads the termios and window size of a terminal
// outside the dump, through a handle of the process's fd: neither asks
// for it to be the caller's controlling terminal (drivers/tty/tty_ioctl.c
// tty_mode_ioctl).
func readTerminalState(r Ref) (*gocrpb.PtyState, error) {
	h, err := takeFd(r.Pid, int(r.Fd.Fd))
	if err != nil {
		return nil, fmt.Errorf("take a handle of it: %w", err)
	}
	defer unix.Close(h)
	t, err := unix.IoctlGetTermios(h, unix.TCGETS2)
	if err != nil {
		return nil, fmt.Errorf("TCGETS2: %w", err)
	}
	ws, err := unix.IoctlGetWinsize(h, unix.TIOCGWINSZ)
	if err != nil {
		return nil, fmt.Errorf("TIOCGWINSZ: %w", err)
	}
	st := &gocrpb.PtyState{Rows: uint32(ws.Row), Cols: uint32(ws.Col), Xpixel: uint32(ws.Xpixel), Ypixel: uint32(ws.Ypixel)}
	setTermios(st, t)
	return st, nil
}

// SetTerminalState gives terminal fd the termios st records.
func SetTerminalState(fd int, st *gocrpb.PtyState) error {
	t, err := termiosOf(st)
	if err != nil {
		return err
	}
	if err := unix.IoctlSetTermios(fd, unix.TCSETS2, t); err != nil {
		return fmt.Errorf("TCSETS2: %w", err)
	}
	return nil
}
