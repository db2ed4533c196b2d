//go:build linux

package files

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/gocrpb"
	"github.com/gocr/gocr/proc"
)

// ptyKind is one end of a Unix98 pseudo-terminal (man 4 pts): the master,
// opened from /dev/ptmx, or a slave, /dev/pts/N. A pair with its master
// in the dump is made again once, in gocr, under the same index, with the
// slave's termios, window size, packet mode, lock, exclusive mode, owner
// and mode, and what was queued in it both ways (files/ptydata.go); the
// leader of the session whose controlling terminal it was takes it again
// inside the restored process (FixupCtty), with the same foreground
// group. A slave whose master is outside the dump is the terminal of a
// shell job when it is its process's controlling terminal: the restore
// gives its own (files/inherit.go); any other is refused.
type ptyKind struct{}

func init() { register(ptyKind{}) }

// What the generic code finds by interface assertion, checked here.
var (
	_ Linker    = ptyKind{}
	_ LinkKeyer = ptyKind{}
	_ Finisher  = ptyKind{}
)

func (ptyKind) Name() string { return "pty" }

// Device numbers (Documentation/admin-guide/devices.txt): /dev/ptmx is
// 5:2, the devpts "ptmx" node too (fs/devpts/inode.c mknod_ptmx), and the
// slaves are on major 136, minor N (drivers/tty/pty.c unix98_pty_init
// registers NR_UNIX98_PTY_MAX minors from 0 under UNIX98_PTY_SLAVE_MAJOR).
const (
	ptmxMajor, ptmxMinor = 5, 2
	ptsMajor             = 136
	// nTTY is the default line discipline (include/uapi/linux/tty.h
	// N_TTY): the only one gocr restores.
	nTTY = 0
)

func isPtmx(st *unix.Stat_t) bool {
	return st.Mode&unix.S_IFMT == unix.S_IFCHR && unix.Major(st.Rdev) == ptmxMajor && unix.Minor(st.Rdev) == ptmxMinor
}

func isPts(st *unix.Stat_t) bool {
	return st.Mode&unix.S_IFMT == unix.S_IFCHR && unix.Major(st.Rdev) == ptsMajor
}

func (ptyKind) Match(e *Entry) bool {
	return e.Info.Flags&unix.O_PATH == 0 && (isPtmx(&e.Stat) || isPts(&e.Stat))
}

// ptsPath is where gocr finds slave N, in its own mount namespace.
func ptsPath(index uint32) string { return "/dev/pts/" + strconv.FormatUint(uint64(index), 10) }

func (ptyKind) Dump(e *Entry, fd *gocrpb.Fd) error {
	if fd.Flags&unix.O_ASYNC != 0 {
		return errors.New("signal-driven I/O (O_ASYNC) is on: its owner and signal are not restored")
	}
	h, err := takeFd(e.Pid, e.Fd)
	if err != nil {
		return fmt.Errorf("take a handle of it: %w", err)
	}
	defer unix.Close(h)
	p := &gocrpb.PtyFd{Master: isPtmx(&e.Stat)}
	if p.Master {
		// TIOCGPTN: the index of the pair (man 2 ioctl_tty).
		n, err := unix.IoctlGetUint32(h, unix.TIOCGPTN)
		if err != nil {
			return fmt.Errorf("TIOCGPTN: %w", err)
		}
		p.Index = n
		// Opened elsewhere, a ptmx node may be another devpts
		// instance's (fs/devpts/inode.c devpts_acquire).
		if e.Target != "/dev/ptmx" && e.Target != "/dev/pts/ptmx" {
			return fmt.Errorf("a pty master opened from %s, not gocr's /dev/ptmx (not supported)", e.Target)
		}
		if fd.Flags&unix.O_ACCMODE != unix.O_RDWR {
			return errors.New("a pty master opened other than read-write (not supported)")
		}
	} else {
		p.Index = unix.Minor(e.Stat.Rdev)
		if e.Target != ptsPath(p.Index) {
			// Another devpts instance (a container's), which gocr's
			// /dev/ptmx does not allocate from.
			return errors.New("a pty slave of another devpts than gocr's /dev/pts (not supported)")
		}
	}
	// TIOCGETD: each end has its own line discipline (man 2 ioctl_tty);
	// a driver's state other than N_TTY's is not read.
	if d, err := unix.IoctlGetInt(h, unix.TIOCGETD); err != nil {
		return fmt.Errorf("TIOCGETD: %w", err)
	} else if d != nTTY {
		return fmt.Errorf("line discipline %d (only N_TTY is restored)", d)
	}
	fd.Kind = &gocrpb.Fd_Pty{Pty: p}
	return nil
}

type ptyKey uint32

func (ptyKind) LinkKey(fd *gocrpb.Fd) any { return ptyKey(fd.GetPty().GetIndex()) }

// Link reads the state of each pair once every process is collected: it
// needs the master (only there are the index's lock, packet mode and the
// session seen from outside the session, drivers/tty/tty_jobctrl.c
// tiocgsid), a slave for its own flags, and which process leads the
// session.
func (ptyKind) Link(refs []Ref, _ LinkOptions) error {
	var master, slave *Ref
	slaves := 0
	for i, r := range refs {
		switch {
		case r.Fd.GetPty().GetMaster():
			if master != nil && r.Fd.SharedWith < 0 {
				return fmt.Errorf("pid %d fd %d: two open masters of one pty", r.Pid, r.Fd.Fd)
			}
			if master == nil {
				master = &refs[i]
			}
		default:
			if slave == nil {
				slave = &refs[i]
			}
			if r.Fd.SharedWith < 0 {
				slaves++
			}
		}
	}
	if master == nil {
		return linkOutsideSlave(refs)
	}
	index := master.Fd.GetPty().GetIndex()
	st, err := readPtyState(master, slave, index)
	if err != nil {
		return fmt.Errorf("pid %d fd %d (%s, pty %d): %w", master.Pid, master.Fd.Fd, master.Fd.Description, index, err)
	}
	st.SlaveDescriptions = uint32(slaves)
	if st.Session != 0 {
		if err := markController(refs, st, index); err != nil {
			return err
		}
		if err := checkSessionMembers(st, index); err != nil {
			return err
		}
	}
	for _, r := range refs {
		r.Fd.GetPty().State = st
	}
	return nil
}

// markController picks the fd through which the session leader takes the
// pair as its controlling terminal again: TIOCSCTTY only works from the
// session leader (man 2 ioctl_tty).
func markController(refs []Ref, st *gocrpb.PtyState, index uint32) error {
	for _, r := range refs {
		if r.Pid == int(st.Session) && !r.Fd.GetPty().GetMaster() {
			r.Fd.GetPty().Controlling = true
			return nil
		}
	}
	for _, r := range refs {
		if r.Pid == int(st.Session) {
			return fmt.Errorf("%s is the controlling terminal of session %d, whose leader holds its master but no slave fd to take it again through (not supported)", ptsPath(index), st.Session)
		}
	}
	return fmt.Errorf("%s is the controlling terminal of session %d, whose leader holds no fd of it or is not in the dump (not supported)", ptsPath(index), st.Session)
}

// checkSessionMembers refuses a session some of whose processes do not
// have the pair as their controlling terminal (they dropped it with
// TIOCNOTTY, or were forked before the leader took it): the restore gives
// it to every process the leader forks, as fork copies it (kernel/fork.c
// copy_signal). It also refuses a session in a PID namespace of its own,
// whose foreground group gocr sees under another number than the
// processes do.
func checkSessionMembers(st *gocrpb.PtyState, index uint32) error {
	dev := unix.Mkdev(ptsMajor, index)
	leader, err := proc.ReadStatus(int(st.Session))
	if err != nil {
		return err
	}
	if len(leader.NSpid) > 1 {
		return fmt.Errorf("%s is the controlling terminal of session %d, in a PID namespace of its own (not supported)", ptsPath(index), st.Session)
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return err
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		p, err := proc.ReadStat(pid)
		if err != nil || p.Session != int(st.Session) || p.State == 'Z' {
			continue // gone meanwhile (not one of the frozen ones), or a zombie
		}
		if uint64(p.TtyNr) != dev {
			return fmt.Errorf("pid %d is in session %d without its controlling terminal %s, which the restore would give it (not supported)", pid, st.Session, ptsPath(index))
		}
	}
	return nil
}

// readPtyState reads what the pair holds, through gocr's own handles of
// the dumped fds. The termios, window size and session are the slave's,
// asked through the master (drivers/tty/tty_ioctl.c tty_mode_ioctl and
// drivers/tty/tty_io.c tty_ioctl use the other end, "real_tty", for a
// pty master).
func readPtyState(master, slave *Ref, index uint32) (*gocrpb.PtyState, error) {
	m, err := takeFd(master.Pid, int(master.Fd.Fd))
	if err != nil {
		return nil, fmt.Errorf("take a handle of it: %w", err)
	}
	defer unix.Close(m)
	s := -1
	if slave != nil {
		if s, err = takeFd(slave.Pid, int(slave.Fd.Fd)); err != nil {
			return nil, fmt.Errorf("take a handle of the slave: %w", err)
		}
		defer unix.Close(s)
	}
	st := &gocrpb.PtyState{}
	t, err := unix.IoctlGetTermios(m, unix.TCGETS2)
	if err != nil {
		return nil, fmt.Errorf("TCGETS2: %w", err)
	}
	setTermios(st, t)
	// Locked termios (TIOCSLCKTRMIOS, man 2 ioctl_tty) keep bits from
	// changing; gocr does not restore them.
	if lt, err := unix.IoctlGetTermios(m, unix.TIOCGLCKTRMIOS); err != nil {
		return nil, fmt.Errorf("TIOCGLCKTRMIOS: %w", err)
	} else if *lt != (unix.Termios{}) {
		return nil, errors.New("its termios are locked (TIOCSLCKTRMIOS), which gocr does not restore")
	}
	ws, err := unix.IoctlGetWinsize(m, unix.TIOCGWINSZ)
	if err != nil {
		return nil, fmt.Errorf("TIOCGWINSZ: %w", err)
	}
	st.Rows, st.Cols, st.Xpixel, st.Ypixel = uint32(ws.Row), uint32(ws.Col), uint32(ws.Xpixel), uint32(ws.Ypixel)
	flags := []struct {
		name string
		fd   int
		req  uint
		dst  *bool
	}{
		{"TIOCGPKT", m, unix.TIOCGPKT, &st.Packet},
		{"TIOCGPTLCK", m, unix.TIOCGPTLCK, &st.Locked},
		{"TIOCGEXCL", s, unix.TIOCGEXCL, &st.Exclusive},
	}
	for _, f := range flags {
		if f.fd < 0 {
			continue // no slave open: it can have no flag of its own
		}
		v, err := unix.IoctlGetInt(f.fd, f.req)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.name, err)
		}
		*f.dst = v != 0
	}
	// Each end has its own exclusive flag (TIOCEXCL sets the fd's tty's,
	// drivers/tty/tty_io.c tty_ioctl); the master's only shows, as
	// reopening a pty master fails anyway (tty_reopen).
	mexcl, err := unix.IoctlGetInt(m, unix.TIOCGEXCL)
	if err != nil {
		return nil, fmt.Errorf("TIOCGEXCL on the master: %w", err)
	}
	st.MasterExclusive = mexcl != 0
	if s >= 0 {
		if d, err := unix.IoctlGetInt(s, unix.TIOCGETD); err != nil || d != nTTY {
			return nil, fmt.Errorf("its slave's line discipline is %d (only N_TTY is restored): %v", d, err)
		}
	}
	// TIOCGSID fails with ENOTTY when the pair is no session's
	// controlling terminal (drivers/tty/tty_jobctrl.c tiocgsid).
	if sid, err := unix.IoctlGetInt(m, unix.TIOCGSID); err == nil {
		st.Session = int32(sid)
		pgrp, err := unix.IoctlGetInt(m, unix.TIOCGPGRP)
		if err != nil {
			return nil, fmt.Errorf("TIOCGPGRP: %w", err)
		}
		st.Foreground = int32(pgrp)
	} else if !errors.Is(err, unix.ENOTTY) {
		return nil, fmt.Errorf("TIOCGSID: %w", err)
	}
	var pts unix.Stat_t
	if err := unix.Stat(ptsPath(index), &pts); err != nil {
		return nil, err
	}
	st.Uid, st.Gid, st.Mode = pts.Uid, pts.Gid, pts.Mode&^unix.S_IFMT
	// n_tty_poll sets EPOLLHUP on the master once every slave closed
	// (TTY_OTHER_CLOSED), and EPOLLPRI when a packet-mode status byte
	// waits (drivers/tty/n_tty.c n_tty_poll).
	ev, err := pollNow(m, unix.POLLIN|unix.POLLPRI)
	if err != nil {
		return nil, err
	}
	st.SlaveClosed = ev&unix.POLLHUP != 0
	if st.Packet && ev&unix.POLLPRI != 0 {
		return nil, errors.New("a packet-mode status byte waits to be read from the master (not restored)")
	}
	if err := readPtyData(m, s, st); err != nil {
		return nil, err
	}
	return st, nil
}

// pollNow polls fd once without waiting, and returns its events.
func pollNow(fd int, events int16) (int16, error) {
	p := []unix.PollFd{{Fd: int32(fd), Events: events}}
	for {
		_, err := unix.Poll(p, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("poll: %w", err)
		}
		return p[0].Revents, nil
	}
}

func setTermios(st *gocrpb.PtyState, t *unix.Termios) {
	st.Iflag, st.Oflag, st.Cflag, st.Lflag = t.Iflag, t.Oflag, t.Cflag, t.Lflag
	st.Cc = append([]byte(nil), t.Cc[:]...)
	st.Ispeed, st.Ospeed = t.Ispeed, t.Ospeed
}

func termiosOf(st *gocrpb.PtyState) (*unix.Termios, error) {
	t := &unix.Termios{Iflag: st.Iflag, Oflag: st.Oflag, Cflag: st.Cflag, Lflag: st.Lflag, Line: nTTY,
		Ispeed: st.Ispeed, Ospeed: st.Ospeed}
	if len(st.Cc) != len(t.Cc) {
		return nil, fmt.Errorf("termios c_cc of %d bytes, want %d", len(st.Cc), len(t.Cc))
	}
	copy(t.Cc[:], st.Cc)
	return t, nil
}
