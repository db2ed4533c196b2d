//go:build linux

package restorer

import (
	"errors"
	"fmt"
	"os"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/gocrpb"
	procfs "github.com/gocr/gocr/proc"
)

// An ordinary user restores with the one capability gocr's file holds
// (make install-caps), CAP_CHECKPOINT_RESTORE: clone3 set_tid (kernel/
// pid.c alloc_pid: checkpoint_restore_ns_capable in the PID namespace's
// user namespace), PR_SET_MM_MAP with an exe_fd (kernel/sys.c
// prctl_set_mm_map) and /proc/self/map_files (fs/proc/base.c
// proc_map_files_get_link). It bypasses no permission check on files:
// gocr opens every file as the user, with the user's own permissions
// (CAP_CHECKPOINT_RESTORE is none of CAP_DAC_*, man 7 capabilities). What
// it must not do is let an image give a process more privilege than the
// user has: checkUserCreds refuses any credential that is not the user's
// own, and the restorer ends with exactly the image's capability sets,
// so gocr's capability does not outlive the restore.

// capCheckpointRestore is CAP_CHECKPOINT_RESTORE (include/uapi/linux/
// capability.h, Linux 5.9).
const capCheckpointRestore = 40

// ordinaryUser tells whether the restore runs for a user other than root:
// the credentials it may give are then only that user's own.
func ordinaryUser() bool { return os.Geteuid() != 0 }

// checkUserRestore refuses, before anything is read, a restore an
// ordinary user may not make: with images another user could have written
// (--trust-images) or without the capability gocr needs.
func checkUserRestore(opts Options) error {
	if !ordinaryUser() {
		return nil
	}
	if opts.TrustImages {
		return fmt.Errorf("--trust-images is for root: as uid %d you restore only images you wrote", os.Getuid())
	}
	if !hasCap(capCheckpointRestore) {
		return fmt.Errorf("gocr lacks CAP_CHECKPOINT_RESTORE, which restoring as an ordinary user (uid %d) needs: install it with 'make install-caps', or restore as root", os.Getuid())
	}
	return nil
}

// restorerAmbientCaps are the capabilities the restorer gets in its
// ambient set (SysProcAttr.AmbientCaps, which also puts them in its
// permitted and inheritable sets, man 7 capabilities): an execve of a
// file without capabilities keeps only ambient ones for a process that is
// not root, and the restorer needs clone3 set_tid and PR_SET_MM_MAP's
// exe_fd. Each restored thread then sets its capability sets to the
// image's (restorer/c/restorer.c restore_creds), which drops it. Root
// needs none: execve gives root every capability of its bounding set.
func restorerAmbientCaps() []uintptr {
	if !ordinaryUser() {
		return nil
	}
	return []uintptr{capCheckpointRestore}
}

// ownCreds is what the user running gocr has, as a process gocr restores
// would get it from them: ids, supplementary groups, capability sets
// without what gocr's file gave it, securebits, no_new_privs.
type ownCreds struct {
	uid, gid   uint32
	groups     []uint32
	inh, bnd   uint64
	securebits uint32
	noNewPrivs bool
}

func readOwnCreds() (*ownCreds, error) {
	st, err := procfs.ReadStatus(os.Getpid())
	if err != nil {
		return nil, fmt.Errorf("read gocr's own credentials: %w", err)
	}
	groups, err := unix.Getgroups()
	if err != nil {
		return nil, fmt.Errorf("getgroups: %w", err)
	}
	own := &ownCreds{uid: uint32(os.Getuid()), gid: uint32(os.Getgid()), inh: st.CapInh, bnd: st.CapBnd, noNewPrivs: st.NoNewPrivs}
	for _, g := range groups {
		own.groups = append(own.groups, uint32(g))
	}
	// gocr is not set-id (its file holds capabilities, not a set-id
	// bit): its real ids are the user's, and every other id is the same.
	if os.Geteuid() != os.Getuid() || os.Getegid() != os.Getgid() {
		return nil, fmt.Errorf("gocr runs set-id (uid %d, euid %d, gid %d, egid %d): install it without the set-id bits (make install-caps)", os.Getuid(), os.Geteuid(), os.Getgid(), os.Getegid())
	}
	bits, err := unix.PrctlRetInt(unix.PR_GET_SECUREBITS, 0, 0, 0, 0)
	if err != nil {
		return nil, fmt.Errorf("PR_GET_SECUREBITS: %w", err)
	}
	own.securebits = uint32(bits)
	return own, nil
}

// checkUserCreds refuses, for an ordinary user, a process whose image
// gives it anything but that user's own credentials, or an executable
// that is set-id: an edited image must not be a way to more privilege.
// Capabilities: an ordinary user holds none in its permitted, effective
// and ambient sets that gocr could tell from those its file gave it
// (execve of a file with capabilities clears the ambient set, man 7
// capabilities), so the image may hold none either; its inheritable and
// bounding sets and securebits must be the user's, which the restorer
// could not change without CAP_SETPCAP anyway. A zombie runs nothing.
func checkUserCreds(own *ownCreds, task *gocrpb.Task, mm *gocrpb.Mm) error {
	if task.Zombie {
		return nil
	}
	c := task.Creds
	if c == nil {
		return errors.New("the image has no credentials, which an ordinary user's restore must check")
	}
	mine := fmt.Sprintf("not yours (uid %d, gid %d): only root may restore it", own.uid, own.gid)
	if ids := [4]uint32{c.Ruid, c.Euid, c.Suid, c.Fsuid}; ids != [4]uint32{own.uid, own.uid, own.uid, own.uid} {
		return fmt.Errorf("the image's uids %v are %s", ids, mine)
	}
	if ids := [4]uint32{c.Rgid, c.Egid, c.Sgid, c.Fsgid}; ids != [4]uint32{own.gid, own.gid, own.gid, own.gid} {
		return fmt.Errorf("the image's gids %v are %s", ids, mine)
	}
	// The kernel keeps a group list sorted (kernel/groups.c
	// groups_sort), and /proc and getgroups show it so: the lists are
	// the same in the same order, or setgroups would be needed.
	if !slices.Equal(c.Groups, own.groups) {
		return fmt.Errorf("the image's supplementary groups %v are not yours (%v): only root may restore it", c.Groups, own.groups)
	}
	for _, set := range []struct {
		name      string
		got, want uint64
	}{
		{"permitted", c.CapPrm, 0}, {"effective", c.CapEff, 0}, {"ambient", c.CapAmb, 0},
		{"inheritable", c.CapInh, own.inh}, {"bounding", c.CapBnd, own.bnd},
	} {
		if set.got != set.want {
			return fmt.Errorf("the image's %s capabilities %#x are not yours (%#x): only root may restore it", set.name, set.got, set.want)
		}
	}
	if c.Securebits != own.securebits {
		return fmt.Errorf("the image's securebits %#x are not yours (%#x): only root may restore it", c.Securebits, own.securebits)
	}
	// no_new_privs is inherited and cannot be turned off (man 2 prctl,
	// PR_SET_NO_NEW_PRIVS): a process restored by a user who has it
	// would have it, whatever the image says.
	if own.noNewPrivs && (task.Flags == nil || !task.Flags.NoNewPrivs) {
		return errors.New("the image's no_new_privs is off, yours is on and cannot be turned off")
	}
	if mm != nil && mm.Exe != nil {
		var st unix.Stat_t
		if err := unix.Stat(mm.Exe.Path, &st); err != nil {
			return fmt.Errorf("executable %s: %w", mm.Exe.Path, err)
		}
		// Set-group-ID without group execute is mandatory locking, not
		// set-id (man 7 inode).
		if st.Mode&unix.S_ISUID != 0 || st.Mode&(unix.S_ISGID|unix.S_IXGRP) == unix.S_ISGID|unix.S_IXGRP {
			return fmt.Errorf("executable %s is set-id (mode %#o): only root may restore it", mm.Exe.Path, st.Mode&0o7777)
		}
	}
	return nil
}

// hasCap tells whether gocr holds capability c in its effective set.
func hasCap(c uint) bool {
	st, err := procfs.ReadStatus(os.Getpid())
	return err == nil && st.CapEff&(1<<c) != 0
}

// checkUserImages runs checkUserCreds on every process of the dump when
// an ordinary user restores it.
func checkUserImages(procs []*proc) error {
	if !ordinaryUser() {
		return nil
	}
	own, err := readOwnCreds()
	if err != nil {
		return err
	}
	for _, pr := range procs {
		if err := checkUserCreds(own, pr.task, pr.mm); err != nil {
			return fmt.Errorf("restore pid %d: %w", pr.task.Pid, err)
		}
	}
	return nil
}
