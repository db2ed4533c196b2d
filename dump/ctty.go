//go:build linux

package dump

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/proc"
)

// ptsMajor is the pty slaves' major (Documentation/admin-guide/devices.txt,
// drivers/tty/pty.c UNIX98_PTY_SLAVE_MAJOR).
const ptsMajor = 136

// checkControllingTerminal refuses a session leader whose controlling
// terminal the restore would not give back. Only a pty comes back as one
// (files/pty.go: the leader takes it again with TIOCSCTTY through a
// slave fd of its own, man 2 ioctl_tty), so a leader with another
// terminal (the console, a virtual console, a serial line) or with a pty
// it holds no slave fd of would come back without a controlling terminal,
// and its session's members with it. A session led outside the dump is a
// shell job's: it joins the restore's own (docs/STATE.md).
func checkControllingTerminal(pid int, stat *proc.Stat) error {
	if stat.Session != pid || stat.TtyNr == 0 {
		return nil
	}
	// tty_nr is the device number as new_encode_dev makes it (man 5
	// proc_pid_stat), which unix.Major and unix.Minor decode.
	dev := uint64(stat.TtyNr)
	major, minor := unix.Major(dev), unix.Minor(dev)
	if major != ptsMajor {
		return fmt.Errorf("pid %d leads a session whose controlling terminal is device %d:%d, not a pseudo-terminal: the restore would bring the session back without one", pid, major, minor)
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return fmt.Errorf("pid %d: %w", pid, err)
	}
	for _, e := range fds {
		var st unix.Stat_t
		if unix.Stat(filepath.Join("/proc", fmt.Sprint(pid), "fd", e.Name()), &st) == nil &&
			st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == unix.Mkdev(ptsMajor, minor) {
			return nil
		}
	}
	return fmt.Errorf("pid %d leads a session whose controlling terminal /dev/pts/%d it holds no fd of: the restore would bring the session back without one", pid, minor)
}
