//go:build linux

package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/proc"
	"github.com/gocr/gocr/wptrack"
)

// feature is one thing gocr needs from the kernel, and how to tell.
type feature struct {
	name  string
	probe func() error
	// without says what gocr cannot do without an optional feature;
	// a feature without it is required.
	without string
}

// privilegeFeature is the line that says who may run gocr.
const privilegeFeature = "running as root, or as an ordinary user with CAP_CHECKPOINT_RESTORE"

// featureDetails say more after the name of a feature gocr has.
var featureDetails = map[string]func() string{privilegeFeature: fileCapsNote}

var features = []feature{
	{privilegeFeature, checkPrivilege, ""},
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
	{"userfaultfd async write-protect and PAGEMAP_SCAN (Linux 6.7)", wptrack.Probe, "writes are not tracked: every dump with --track or --prev is full"},
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
		case featureDetails[f.name] != nil:
			fmt.Fprintf(w, "ok       %s (%s)\n", f.name, featureDetails[f.name]())
		default:
			fmt.Fprintf(w, "ok       %s\n", f.name)
		}
	}
	if missing > 0 {
		return fmt.Errorf("%d of %d features missing", missing, len(features))
	}
	return nil
}

// capCheckpointRestore is CAP_CHECKPOINT_RESTORE (include/uapi/linux/
// capability.h): with it in its file, gocr lets an ordinary user
// checkpoint and restart their own jobs (README, "Ordinary users").
const capCheckpointRestore = 40

// checkPrivilege: root has every capability gocr uses; an ordinary user
// needs CAP_CHECKPOINT_RESTORE, which gocr gets from its file's
// capabilities (make install-caps).
func checkPrivilege() error {
	if os.Geteuid() == 0 {
		return nil
	}
	if hasOwnCap(capCheckpointRestore) {
		return nil
	}
	exe, _ := os.Executable()
	switch has, err := fileHasCap(exe, capCheckpointRestore); {
	case err != nil:
		return fmt.Errorf("gocr runs as uid %d without CAP_CHECKPOINT_RESTORE, and its file's capabilities cannot be read: %v", os.Getuid(), err)
	case has:
		// The kernel grants no file capability under no_new_privs or
		// from a nosuid mount (man 7 capabilities, man 2 prctl).
		return fmt.Errorf("%s has cap_checkpoint_restore=ep, but gocr did not get it (no_new_privs set, or a nosuid mount?)", exe)
	}
	return fmt.Errorf("gocr runs as uid %d without CAP_CHECKPOINT_RESTORE: give %s the file capability cap_checkpoint_restore=ep (make install-caps), or run as root", os.Getuid(), exe)
}

// fileCapsNote says, for an ok privilege line, whether the gocr file
// lets ordinary users use it.
func fileCapsNote() string {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Sprintf("cannot tell which file gocr runs from: %v", err)
	}
	who := "as root"
	if os.Geteuid() != 0 {
		who = fmt.Sprintf("as uid %d", os.Getuid())
	}
	switch has, err := fileHasCap(exe, capCheckpointRestore); {
	case err != nil:
		return fmt.Sprintf("%s; cannot read the file capabilities of %s: %v", who, exe, err)
	case has:
		return fmt.Sprintf("%s; %s has cap_checkpoint_restore=ep: ordinary users can checkpoint and restart their own jobs", who, exe)
	}
	return fmt.Sprintf("%s; %s lacks cap_checkpoint_restore=ep, so only root can use it: make install-caps", who, exe)
}

func hasOwnCap(c uint) bool {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return false
	}
	return data[c/32].Effective&(1<<(c%32)) != 0
}

// fileHasCap tells whether file holds capability c in its permitted set
// with the effective bit, from its security.capability attribute: struct
// vfs_cap_data (include/uapi/linux/capability.h), little-endian magic_etc
// (revision in the high byte, VFS_CAP_FLAGS_EFFECTIVE in bit 0), then
// (permitted, inheritable) for capabilities 0-31 and 32-63, and with
// revision 3 the root uid of the user namespace they apply in.
func fileHasCap(file string, c uint) (bool, error) {
	buf := make([]byte, 24)
	n, err := unix.Getxattr(file, "security.capability", buf)
	if errors.Is(err, unix.ENODATA) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	const (
		revision2 = 0x02000000
		revision3 = 0x03000000
		effective = 0x000001
	)
	magic := binary.LittleEndian.Uint32(buf)
	if rev := magic &^ 0xffffff; (rev != revision2 || n != 20) && (rev != revision3 || n != 24) {
		return false, fmt.Errorf("security.capability of %s: revision %#x (%d bytes), not one gocr reads", file, rev, n)
	}
	permitted := binary.LittleEndian.Uint32(buf[4+8*(c/32):])
	return magic&effective != 0 && permitted&(1<<(c%32)) != 0, nil
}
