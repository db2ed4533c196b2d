//go:build linux

package files

import (
	"errors"
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/gocrpb"
)

// ptyPair is a restored pair: its master among the sources (and its fd),
// gocr's own slave description that set it up (-1 once closed), and how
// many of the dumped slave descriptions are open so far.
type ptyPair struct {
	master      int32
	masterFd    int
	peer        int
	masterGiven bool
	slavesOpen  uint32
}

func (ptyKind) Open(s *Sources, fd *gocrpb.Fd) (int32, error) {
	p := fd.GetPty()
	st := p.GetState()
	if st == nil {
		return 0, errors.New("no pty state in the image")
	}
	pair, err := once(s, ptyKey(p.GetIndex()), func() (*ptyPair, error) { return makePty(s, p.GetIndex(), st) })
	if err != nil {
		return 0, err
	}
	if p.GetMaster() {
		if pair.masterGiven {
			return 0, errors.New("two open masters of one pty in the image")
		}
		pair.masterGiven = true
		if err := setTtyStatusFlags(pair.masterFd, fd.Flags); err != nil {
			return 0, err
		}
		return pair.master, nil
	}
	if pair.slavesOpen == st.GetSlaveDescriptions() {
		return 0, errors.New("more open slaves of the pty than the image counts")
	}
	n, err := openSlave(s, pair, fd)
	if err != nil {
		return 0, err
	}
	pair.slavesOpen++
	if pair.slavesOpen == st.GetSlaveDescriptions() {
		if err := lockPty(pair, st); err != nil {
			return 0, err
		}
	}
	return n, nil
}

// setTtyStatusFlags gives an open terminal exactly the dumped status
// flags F_SETFL sets on it (fs/fcntl.c SETFL_MASK; O_ASYNC is refused).
func setTtyStatusFlags(fd int, flags uint32) error {
	want := int(flags) & (unix.O_APPEND | unix.O_NONBLOCK | unix.O_NOATIME)
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFL, want); err != nil {
		return fmt.Errorf("set status flags %#o: %w", want, err)
	}
	return nil
}

// openSlave opens a new description of the pair's slave, through its
// master (TIOCGPTPEER, man 2 ioctl_tty: the devpts of the master, whatever
// /dev/pts is), never as gocr's controlling terminal.
//
// TIOCGPTPEER keeps its flags in the description's (drivers/tty/pty.c
// ptm_open_peer hands them to dentry_open whole; open(2) strips
// O_CLOEXEC, fs/open.c build_open_flags), where F_GETFL and fdinfo show
// them. So O_LARGEFILE, which open(2) adds on 64-bit (fs/open.c
// force_o_largefile), goes as dumped, and O_CLOEXEC only for an fd that
// had it, the way such a description is made; otherwise gocr's fd gets
// FD_CLOEXEC alone, under syscall.ForkLock so no child of gocr inherits
// it meanwhile.
func openSlave(s *Sources, pair *ptyPair, fd *gocrpb.Fd) (int32, error) {
	flags := int(fd.Flags)&(unix.O_ACCMODE|oLargefile) | unix.O_NOCTTY
	if fd.Cloexec {
		flags |= unix.O_CLOEXEC
	}
	syscall.ForkLock.RLock()
	nfd, err := ptyPeer(pair.masterFd, flags)
	if err == nil {
		unix.CloseOnExec(nfd)
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		return 0, fmt.Errorf("open the slave: %w", err)
	}
	n := s.AddFd(nfd, fd.Description)
	if err := setTtyStatusFlags(nfd, fd.Flags); err != nil {
		return 0, err
	}
	return n, nil
}

// ptyPeer opens the slave of master with flags (TIOCGPTPEER takes them as
// its argument).
func ptyPeer(master, flags int) (int, error) {
	r, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(master), unix.TIOCGPTPEER, uintptr(flags))
	if errno != 0 {
		return -1, fmt.Errorf("TIOCGPTPEER: %w", errno)
	}
	return int(r), nil
}

// lockPty sets what would keep the dumped slaves from being opened, once
// they all are: the lock (TIOCSPTLCK: no open of the slave at all,
// drivers/tty/pty.c pty_open) and the exclusive mode (TIOCEXCL: no open
// without CAP_SYS_ADMIN, tty_io.c tty_reopen).
func lockPty(pair *ptyPair, st *gocrpb.PtyState) error {
	if st.Exclusive {
		if pair.peer < 0 {
			return errors.New("exclusive mode on a slave no process holds")
		}
		if err := unix.IoctlSetInt(pair.peer, unix.TIOCEXCL, 0); err != nil {
			return fmt.Errorf("TIOCEXCL: %w", err)
		}
	}
	if st.MasterExclusive {
		if err := unix.IoctlSetInt(pair.masterFd, unix.TIOCEXCL, 0); err != nil {
			return fmt.Errorf("TIOCEXCL on the master: %w", err)
		}
	}
	if st.Locked {
		if err := unix.IoctlSetPointerInt(pair.masterFd, unix.TIOCSPTLCK, 1); err != nil {
			return fmt.Errorf("TIOCSPTLCK: %w", err)
		}
	}
	return nil
}

// Finish makes the pair the controlling terminal of the session its
// leader starts again, with its foreground group.
func (ptyKind) Finish(fd *gocrpb.Fd) []Fixup {
	p := fd.GetPty()
	if !p.GetControlling() {
		return nil
	}
	return []Fixup{{Op: FixupCtty, Fd: fd.Fd, Target: p.GetState().GetForeground()}}
}

// makePty makes pair index again: the master, under the same index, then
// the slave's settings and data through a slave description of gocr's
// own; packet mode last, so that nothing before it queues a status byte.
// The lock and exclusive mode wait until every dumped slave is open
// (lockPty).
func makePty(s *Sources, index uint32, st *gocrpb.PtyState) (*ptyPair, error) {
	t, err := termiosOf(st)
	if err != nil {
		return nil, err
	}
	mfd, err := openPtmxAt(index)
	if err != nil {
		return nil, err
	}
	pair := &ptyPair{master: s.AddFd(mfd, "/dev/ptmx"), masterFd: mfd, peer: -1}
	// A new master's slave is locked (drivers/tty/pty.c ptmx_open).
	if err := unix.IoctlSetPointerInt(mfd, unix.TIOCSPTLCK, 0); err != nil {
		return nil, fmt.Errorf("TIOCSPTLCK: %w", err)
	}
	// Opening a slave, then closing the last one, is what sets the
	// master's TTY_OTHER_CLOSED (pty_open clears it, pty_close sets it):
	// a master whose slave was never opened must not see one opened.
	needPeer := st.SlaveDescriptions > 0 || st.SlaveClosed
	cfg := mfd // termios and window size through the master are the slave's
	if needPeer {
		peer, err := ptyPeer(mfd, unix.O_RDWR|unix.O_NOCTTY|unix.O_NONBLOCK|unix.O_CLOEXEC)
		if err != nil {
			return nil, fmt.Errorf("open the slave: %w", err)
		}
		if st.SlaveDescriptions > 0 {
			s.AddFd(peer, ptsPath(index)) // closed with the sources
		} else {
			// Closed once set up, as the dumped slaves were: the
			// master sees its other end closed again.
			defer unix.Close(peer)
		}
		pair.peer, cfg = peer, peer
	}
	if err := unix.IoctlSetTermios(cfg, unix.TCSETS2, t); err != nil {
		return nil, fmt.Errorf("TCSETS2: %w", err)
	}
	ws := &unix.Winsize{Row: uint16(st.Rows), Col: uint16(st.Cols), Xpixel: uint16(st.Xpixel), Ypixel: uint16(st.Ypixel)}
	if err := unix.IoctlSetWinsize(mfd, unix.TIOCSWINSZ, ws); err != nil {
		return nil, fmt.Errorf("TIOCSWINSZ: %w", err)
	}
	if err := setPtsOwner(index, st); err != nil {
		return nil, err
	}
	if len(st.ToSlave)+len(st.ToMaster) > 0 {
		if !needPeer {
			return nil, errors.New("unread data in a pty whose slave no process held")
		}
		if err := injectPtyData(mfd, cfg, st, st.ToSlave, st.ToMaster); err != nil {
			return nil, err
		}
	}
	if st.Packet {
		if err := unix.IoctlSetPointerInt(mfd, unix.TIOCPKT, 1); err != nil {
			return nil, fmt.Errorf("TIOCPKT: %w", err)
		}
	}
	if st.SlaveDescriptions == 0 {
		if err := lockPty(pair, st); err != nil {
			return nil, err
		}
		pair.peer = -1
	}
	return pair, nil
}

// openPtmxAt opens a master whose index is index. devpts gives each new
// master the lowest free index (fs/devpts/inode.c devpts_new_index,
// ida_alloc_max), so masters are opened, and those below index closed
// again, until it comes; an index above it means someone else holds it
// (CRIU's tty.c restores ptys this way too).
func openPtmxAt(index uint32) (int, error) {
	var below []int
	defer func() {
		for _, fd := range below {
			unix.Close(fd)
		}
	}()
	for {
		fd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
		if err != nil {
			return -1, fmt.Errorf("open /dev/ptmx: %w", err)
		}
		n, err := unix.IoctlGetUint32(fd, unix.TIOCGPTN)
		if err != nil {
			unix.Close(fd)
			return -1, fmt.Errorf("TIOCGPTN: %w", err)
		}
		if n == index {
			return fd, nil
		}
		below = append(below, fd)
		if n > index {
			return -1, fmt.Errorf("%s is taken by another process", ptsPath(index))
		}
	}
}

// setPtsOwner gives /dev/pts/N the dumped owner and mode. devpts gives a
// new slave the opener's uid, its mount's gid and mode (fs/devpts/inode.c
// devpts_pty_new): what already matches is left alone, so a user's own
// restore needs no privilege for it.
func setPtsOwner(index uint32, st *gocrpb.PtyState) error {
	path := ptsPath(index)
	var cur unix.Stat_t
	if err := unix.Stat(path, &cur); err != nil {
		return err
	}
	if cur.Uid != st.Uid || cur.Gid != st.Gid {
		if err := unix.Chown(path, int(st.Uid), int(st.Gid)); err != nil {
			return fmt.Errorf("chown %s: %w", path, err)
		}
	}
	if cur.Mode&^unix.S_IFMT != st.Mode {
		if err := unix.Chmod(path, st.Mode); err != nil {
			return fmt.Errorf("chmod %s: %w", path, err)
		}
	}
	return nil
}
