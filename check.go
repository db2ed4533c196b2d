//go:build linux

package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/proc"
)

// feature is one thing gocr needs from the kernel, and how to tell.
type feature struct {
	name  string
	probe func() error
	// without says what gocr cannot do without an optional feature;
	// a feature without it is required.
	without string
}

var features = []feature{
	{"running as root", func() error {
		if os.Geteuid() != 0 {
			return errors.New("gocr must run as root")
		}
		return nil
	}, ""},
	{"x86-64 with XSAVE", func() error {
		b, err := os.ReadFile("/proc/cpuinfo")
		if err != nil {
			return err
		}
		if !strings.Contains(string(b), " xsave") {
			return errors.New("CPU lacks xsave")
		}
		return nil
	}, ""},
	{"pidfd_open and pidfd_getfd (Linux 5.6)", func() error {
		fd, err := unix.PidfdOpen(os.Getpid(), 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		nfd, err := unix.PidfdGetfd(fd, 0, 0)
		if err != nil {
			return err
		}
		return unix.Close(nfd)
	}, ""},
	{"memfd_create", func() error {
		fd, err := unix.MemfdCreate("gocr-check", unix.MFD_CLOEXEC)
		if err != nil {
			return err
		}
		return unix.Close(fd)
	}, ""},
	{"clone3 with set_tid (CONFIG_CHECKPOINT_RESTORE)", func() error {
		// /proc/sys/kernel/ns_last_pid exists only with
		// CONFIG_CHECKPOINT_RESTORE, which set_tid needs
		// (kernel/pid.c, kernel/fork.c).
		_, err := os.Stat("/proc/sys/kernel/ns_last_pid")
		return err
	}, ""},
	{"PR_SET_MM_MAP and PR_GET_TID_ADDRESS (CONFIG_CHECKPOINT_RESTORE)", func() error {
		var addr uint64
		_, _, e := unix.Syscall(unix.SYS_PRCTL, unix.PR_GET_TID_ADDRESS, uintptrOf(&addr), 0)
		if e != 0 {
			return e
		}
		return nil
	}, ""},
	{"/proc/PID/pagemap", func() error {
		f, err := os.Open("/proc/self/pagemap")
		if err != nil {
			return err
		}
		return f.Close()
	}, ""},
	{"PTRACE_GET_RSEQ_CONFIGURATION (Linux 5.13)", func() error {
		var uts unix.Utsname
		if err := unix.Uname(&uts); err != nil {
			return err
		}
		var maj, min int
		fmt.Sscanf(unix.ByteSliceToString(uts.Release[:]), "%d.%d", &maj, &min)
		if maj < 5 || maj == 5 && min < 13 {
			return fmt.Errorf("kernel %d.%d is older than 5.13", maj, min)
		}
		return nil
	}, ""},
	{"vmsplice and splice", func() error {
		var p [2]int
		if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
			return err
		}
		unix.Close(p[0])
		return unix.Close(p[1])
	}, ""},
	// sock_diag names a unix socket's peer, name and connections not
	// yet accepted (man 7 sock_diag); the unix_diag module may be
	// loaded on demand.
	{"unix sockets' sock_diag (CONFIG_UNIX_DIAG)", proc.UnixDiagAvailable, "every unix socket is refused"},
}

func runCheck(w io.Writer) error {
	missing := 0
	for _, f := range features {
		err := f.probe()
		switch {
		case err != nil && f.without != "":
			fmt.Fprintf(w, "lacking  %s: %v (%s)\n", f.name, err, f.without)
		case err != nil:
			fmt.Fprintf(w, "missing  %s: %v\n", f.name, err)
			missing++
		default:
			fmt.Fprintf(w, "ok       %s\n", f.name)
		}
	}
	if missing > 0 {
		return fmt.Errorf("%d of %d features missing", missing, len(features))
	}
	return nil
}
