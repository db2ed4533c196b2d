//go:build linux

// Package childfds keeps the file descriptors a program inherited from
// reaching the processes it starts.
//
// os/exec hands a child only fds 0-2 and ExtraFiles on purpose, but it does
// so by relying on close-on-exec: Go opens every fd of its own with
// O_CLOEXEC, and the child's other fds are whatever survives execve. An fd
// this program inherited from its parent without FD_CLOEXEC (a pipe a shell
// or CI runner left open, say) survives every execve (execve(2): "By
// default, file descriptors remain open across an execve()"), so it would
// reach every process started for gocr to dump, and become part of what
// gocr must dump or refuses to.
package childfds

import (
	"fmt"
	"math"

	"golang.org/x/sys/unix"
)

// CloseOnExecInherited marks every fd above stderr close-on-exec, so that
// only stdio and what os/exec passes on purpose reach a child. It changes
// nothing for fds the program opened itself: Go opened them close-on-exec
// already. Call it once, early, before starting any child.
//
// It is one close_range(2) with CLOSE_RANGE_CLOEXEC (Linux 5.11; fs/file.c,
// __range_cloexec), so, unlike walking /proc/self/fd, it needs no /proc and
// cannot miss an fd opened during the walk.
func CloseOnExecInherited() error {
	if err := unix.CloseRange(uint(unix.Stderr)+1, math.MaxUint32, unix.CLOSE_RANGE_CLOEXEC); err != nil {
		return fmt.Errorf("mark inherited fds close-on-exec: %w", err)
	}
	return nil
}
