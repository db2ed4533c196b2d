//go:build linux

package restorer

import (
	"errors"
	"fmt"
	"os"
	"os/signal"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/files"
	"github.com/gocr/gocr/gocrpb"
	procfs "github.com/gocr/gocr/proc"
)

// shellJob is a job started from a shell on its terminal (its stdio and
// controlling terminal belong to the shell's session, outside the dump),
// restored with --shell-job onto the terminal gocr restore runs on, as
// CRIU's --shell-job does. A session led outside the dump cannot be made
// again: the job joins gocr's session, whose controlling terminal is
// gocr's (restorer/tree.go), and its terminal fds get gocr's terminal
// (files/inherit.go), with the termios the job's terminal had at the
// dump. If the root led its own process group and that group was the
// terminal's foreground, gocr makes it the foreground again, and stands in
// for the job in its shell's job control while it waits: when the job
// stops (Ctrl-Z), gocr takes the terminal back and stops itself, so the
// shell sees its job stop; continued in the foreground (fg), gocr gives
// the job the terminal and continues it (bg: only continues it).
type shellJob struct {
	tty     int // gocr's controlling terminal, its stdin
	ownPgid int
	// jobPgid is the root's group, to make the foreground; 0 when the
	// job was in the background or shares gocr's group.
	jobPgid int
	termios *gocrpb.PtyState
}

// planShellJob checks, before anything is created, that the restore can
// give the job gocr's terminal, and says what to do with it.
func planShellJob(procs []*proc, opts Options) (*shellJob, error) {
	if !opts.ShellJob {
		return nil, nil
	}
	if opts.PidNamespace != "" && opts.PidNamespace != PidnsNever {
		return nil, errors.New("--shell-job restores only in gocr's own PID namespace (--pidns=never)")
	}
	tty, err := controllingTerminal(opts.Stdin)
	if err != nil {
		return nil, fmt.Errorf("--shell-job: %w", err)
	}
	stdio := [3]*os.File{opts.Stdin, opts.Stdout, opts.Stderr}
	root := procs[0].task
	j := &shellJob{tty: int(opts.Stdin.Fd()), ownPgid: unix.Getpgrp()}
	foreground := false
	for _, pr := range procs {
		if pr.files == nil {
			continue // a zombie
		}
		for _, fd := range pr.files.Fds {
			in := fd.GetInherit()
			if !in.GetTerminal() {
				continue
			}
			if int(fd.Fd) <= unix.Stderr && !onDevice(stdio[fd.Fd], tty) {
				return nil, fmt.Errorf("--shell-job: pid %d fd %d was the job's terminal, but gocr's fd %d is not gocr's terminal", pr.task.Pid, fd.Fd, fd.Fd)
			}
			if j.termios == nil {
				j.termios = in.GetTerminalState()
			}
			if in.GetForeground() && pr.task.Pgid == root.Pgid {
				foreground = true
			}
		}
	}
	if j.termios == nil {
		return nil, errors.New("--shell-job: no process of the dump was on a terminal outside it")
	}
	if foreground && root.Pgid == root.Pid && root.Sid != root.Pid {
		if opts.Detach {
			return nil, errors.New("--shell-job with -d: the job was the foreground of its terminal, which the shell takes back as soon as gocr exits; restore it without -d")
		}
		j.jobPgid = int(root.Pgid)
	}
	return j, nil
}

// controllingTerminal is the device number of f, which must be gocr's
// controlling terminal (/proc/self/stat tty_nr, man 5 proc).
func controllingTerminal(f *os.File) (uint64, error) {
	if f == nil || !files.IsTerminal(int(f.Fd())) {
		return 0, errors.New("gocr's standard input is not a terminal")
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return 0, err
	}
	self, err := procfs.ReadStat(os.Getpid())
	if err != nil {
		return 0, err
	}
	if uint64(self.TtyNr) != st.Rdev {
		return 0, errors.New("gocr's standard input is not its controlling terminal")
	}
	return st.Rdev, nil
}

func onDevice(f *os.File, rdev uint64) bool {
	var st unix.Stat_t
	return f != nil && unix.Fstat(int(f.Fd()), &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == rdev
}

// begin gives the terminal the job's termios and, if it was, makes the
// job the foreground: before the processes are released, so they never
// run in the background of a terminal they were in the foreground of.
// SIGTTOU is ignored from here on: gocr changes its terminal while in the
// background (drivers/tty/tty_jobctrl.c __tty_check_change lets a caller
// that ignores SIGTTOU do so).
func (j *shellJob) begin() error {
	if j == nil {
		return nil
	}
	signal.Ignore(unix.SIGTTOU)
	if err := files.SetTerminalState(j.tty, j.termios); err != nil {
		return fmt.Errorf("--shell-job: set the terminal's termios: %w", err)
	}
	return j.setForeground(j.jobPgid)
}

// giveBack makes gocr's own group the foreground again.
func (j *shellJob) giveBack() {
	if j != nil {
		j.setForeground(j.ownPgid)
	}
}

func (j *shellJob) setForeground(pgid int) error {
	if j.jobPgid == 0 {
		return nil
	}
	if err := unix.IoctlSetPointerInt(j.tty, unix.TIOCSPGRP, pgid); err != nil {
		return fmt.Errorf("--shell-job: make group %d the terminal's foreground: %w", pgid, err)
	}
	return nil
}

// wait waits for child, gocr's child, to end, standing in for the job
// in its shell's job control meanwhile.
func (j *shellJob) wait(child int) (unix.WaitStatus, error) {
	var ws unix.WaitStatus
	flags := 0
	if j != nil && j.jobPgid != 0 {
		flags = unix.WUNTRACED
	}
	for {
		_, err := unix.Wait4(child, &ws, flags, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return ws, fmt.Errorf("wait for pid %d: %w", child, err)
		}
		if !ws.Stopped() {
			j.giveBack()
			return ws, nil
		}
		j.suspend()
	}
}

// suspend stops gocr as its job stopped, and, once continued, continues
// the job: in the foreground if gocr was continued there (its group is
// the terminal's foreground again: the shell's fg), else in the
// background (bg).
func (j *shellJob) suspend() {
	j.giveBack()
	// A signal to the process stops it once a thread takes it, not
	// before kill returns: gocr waits for the SIGCONT that ends the stop
	// (man 7 signal), which it catches only to see it.
	cont := make(chan os.Signal, 1)
	signal.Notify(cont, unix.SIGCONT)
	unix.Kill(os.Getpid(), unix.SIGSTOP)
	<-cont
	signal.Stop(cont)
	if fg, err := unix.IoctlGetInt(j.tty, unix.TIOCGPGRP); err == nil && fg == j.ownPgid {
		j.setForeground(j.jobPgid)
	}
	unix.Kill(-j.jobPgid, unix.SIGCONT)
}
