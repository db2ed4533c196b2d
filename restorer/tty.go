//go:build linux

package restorer

import (
	"fmt"

	"github.com/gocr/gocr/files"
)

// bindCtty binds a session's controlling terminal (files/pty.go): its
// leader takes it through the source of fd fx.Fd right after setsid
// (rst_proc.ctty_fd), so that the processes it forks inherit it, and sets
// the foreground group, fx.Target, once every process exists (a fixup).
func (p *plan) bindCtty(fx files.Fixup, placed []files.Placed) error {
	for _, f := range placed {
		if f.Fd != fx.Fd {
			continue
		}
		p.cttyFd = f.Src
		if fx.Target > 0 {
			p.fixups = append(p.fixups, rstFixup{Op: rstFixupTtyPgrp, Fd: fx.Fd, Target: fx.Target})
		}
		return nil
	}
	return fmt.Errorf("fd %d: the controlling terminal is not among the process's fds", fx.Fd)
}
