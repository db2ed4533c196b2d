//go:build linux

package files

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/gocrpb"
	"github.com/gocr/gocr/internal/ipc"
)

// mqueueMagic is the mqueue file system's f_type (include/uapi/linux/magic.h
// MQUEUE_MAGIC).
const mqueueMagic = 0x19800202

// mqueueKind is an open POSIX message queue (man 7 mq_overview): a file
// of the IPC namespace's mqueue file system, named "/NAME" in
// /proc/PID/fd. Its queue is reopened by name at restore, or made again
// with its attributes, owner, mode and every message; an unlinked queue
// is made under its name and unlinked again.
//
// A queue outlives the processes that have it open, as a file does: a
// restore on the machine of the dump finds it, left behind by the dumped
// job, by its name and inode, and sets it back to what the dump saw. A
// queue of another inode at the name fails the restore.
type mqueueKind struct{}

func init() { register(mqueueKind{}) }

func (mqueueKind) Name() string { return "mqueue" }

func isMqueue(e *Entry) bool {
	if e.Type() != unix.S_IFREG || !strings.HasPrefix(e.Target, "/") {
		return false
	}
	var fs unix.Statfs_t
	err := unix.Statfs(fmt.Sprintf("/proc/%d/fd/%d", e.Pid, e.Fd), &fs)
	return err == nil && fs.Type == mqueueMagic
}

func (mqueueKind) Match(e *Entry) bool { return e.Info.Flags&unix.O_PATH == 0 && isMqueue(e) }

func (mqueueKind) Dump(e *Entry, fd *gocrpb.Fd) error {
	if fd.Flags&unix.O_ASYNC != 0 {
		return errors.New("signal-driven I/O (O_ASYNC) is on: its owner and signal are not restored")
	}
	h, err := openQueue(e.Pid, e.Fd)
	if err != nil {
		return err
	}
	defer unix.Close(h)
	attr, err := ipc.MqGetAttr(h)
	if err != nil {
		return fmt.Errorf("mq_getattr: %w", err)
	}
	// Reading the queue's file gives its state (ipc/mqueue.c
	// mqueue_read_file): "QSIZE:N NOTIFY:N SIGNO:N NOTIFY_PID:N".
	buf := make([]byte, 256)
	n, err := unix.Read(h, buf)
	if err != nil {
		return fmt.Errorf("read its state: %w", err)
	}
	if pid := notifyPid(string(buf[:n])); pid != 0 {
		return fmt.Errorf("process %d is registered for its notification (mq_notify), which is not restored", pid)
	}
	fd.Kind = &gocrpb.Fd_Mqueue{Mqueue: &gocrpb.MqueueFd{
		Name:     strings.TrimPrefix(strings.TrimSuffix(e.Target, " (deleted)"), "/"),
		Unlinked: e.Deleted(),
		Maxmsg:   attr.Maxmsg, Msgsize: attr.Msgsize,
		Mode: e.Stat.Mode & 0o7777, Uid: e.Stat.Uid, Gid: e.Stat.Gid,
	}}
	return nil
}

// notifyPid is the NOTIFY_PID of a queue's state, 0 if none.
func notifyPid(state string) int {
	_, rest, ok := strings.Cut(state, "NOTIFY_PID:")
	if !ok {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(rest))
	return n
}

// openQueue opens pid's fd's queue again, in gocr, read-write and
// non-blocking: its own open file description, so the process's flags
// are untouched.
func openQueue(pid, fd int) (int, error) {
	h, err := unix.Open(fmt.Sprintf("/proc/%d/fd/%d", pid, fd), unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open the queue: %w", err)
	}
	return h, nil
}

// Link reads the messages of one queue, once, while every process that
// has it open is frozen: nothing reads a message without taking it, so
// each is received and sent back at once, in the order received, which
// gives the queue back as it was (highest priority first, oldest first
// within one: man 3 mq_receive). Every fd of the queue records them.
func (mqueueKind) Link(refs []Ref, _ LinkOptions) error {
	first := refs[0]
	q := first.Fd.GetMqueue()
	h, err := openQueue(first.Pid, int(first.Fd.Fd))
	if err != nil {
		return fmt.Errorf("pid %d fd %d: %w", first.Pid, first.Fd.Fd, err)
	}
	defer unix.Close(h)
	msgs, err := takeMessages(h, q.Msgsize)
	if perr := putMessages(h, msgs); perr != nil {
		return fmt.Errorf("pid %d fd %d: POSIX message queue /%s: put its messages back: %w", first.Pid, first.Fd.Fd, q.Name, perr)
	}
	if err != nil {
		return fmt.Errorf("pid %d fd %d: POSIX message queue /%s: %w", first.Pid, first.Fd.Fd, q.Name, err)
	}
	descriptions := uint32(0)
	for _, r := range refs {
		if r.Fd.SharedWith < 0 {
			descriptions++
		}
	}
	for _, r := range refs {
		r.Fd.GetMqueue().Messages = msgs
		r.Fd.GetMqueue().Descriptions = descriptions
	}
	return nil
}

// takeMessages receives every message of the queue h, in order.
func takeMessages(h int, msgsize int64) ([]*gocrpb.MqueueMessage, error) {
	var msgs []*gocrpb.MqueueMessage
	buf := make([]byte, max(msgsize, 1))
	for {
		n, prio, err := ipc.MqReceive(h, buf)
		if errors.Is(err, unix.EAGAIN) {
			return msgs, nil
		}
		if err != nil {
			return msgs, fmt.Errorf("mq_receive: %w", err)
		}
		msgs = append(msgs, &gocrpb.MqueueMessage{Priority: prio, Data: slices.Clone(buf[:n])})
	}
}

// putMessages sends msgs to the queue h, in order.
func putMessages(h int, msgs []*gocrpb.MqueueMessage) error {
	for i, m := range msgs {
		if err := ipc.MqSend(h, m.Data, m.Priority); err != nil {
			return fmt.Errorf("mq_send of message %d of %d: %w", i, len(msgs), err)
		}
	}
	return nil
}

type mqueueKey uint64

// madeQueue is a queue a restore made or found, and how many of its open
// file descriptions are open.
type madeQueue struct{ opened uint32 }

// Open gives the description its own open of the queue by its name, with
// the dumped access mode and O_NONBLOCK, as mq_open makes one (man 3
// mq_open; reopening it through /proc/self/fd would add O_LARGEFILE,
// fs/open.c force_o_largefile). The queue is made or found once; an
// unlinked one is unlinked again once its last description is open.
func (mqueueKind) Open(s *Sources, fd *gocrpb.Fd) (int32, error) {
	q := fd.GetMqueue()
	mq, err := once(s, mqueueKey(fd.File.GetIno()), func() (*madeQueue, error) { return s.makeQueue(fd.File.GetIno(), q) })
	if err != nil {
		return 0, err
	}
	// mq_open keeps O_CLOEXEC in the description's flags, where F_GETFL
	// and fdinfo show it (ipc/mqueue.c do_mq_open passes its flags to
	// dentry_open whole): it is passed only for an fd that had it, the
	// way such a description is made; otherwise gocr's fd gets
	// FD_CLOEXEC alone, under syscall.ForkLock so no child of gocr
	// inherits it meanwhile.
	flags := openFlags(fd)
	if fd.Cloexec {
		flags |= unix.O_CLOEXEC
	}
	syscall.ForkLock.RLock()
	nfd, err := ipc.MqOpen(q.Name, flags, 0, nil)
	if err == nil {
		unix.CloseOnExec(nfd)
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		return 0, fmt.Errorf("open POSIX message queue /%s: %w", q.Name, err)
	}
	n := s.AddFd(nfd, "mqueue:/"+q.Name)
	mq.opened++
	if q.Unlinked && mq.opened >= q.Descriptions {
		if err := ipc.MqUnlink(q.Name); err != nil {
			return 0, fmt.Errorf("POSIX message queue /%s: unlink: %w", q.Name, err)
		}
	}
	return n, nil
}

// makeQueue makes the dumped queue, or finds it left behind, and gives it
// its dumped messages.
func (s *Sources) makeQueue(ino uint64, q *gocrpb.MqueueFd) (*madeQueue, error) {
	if q.Name == "" || strings.Contains(q.Name, "/") {
		return nil, fmt.Errorf("POSIX message queue name %q in the image is not valid", q.Name)
	}
	const flags = unix.O_RDWR | unix.O_NONBLOCK | unix.O_CLOEXEC
	h, err := ipc.MqOpen(q.Name, flags, 0, nil)
	switch {
	case err == nil && q.Unlinked:
		unix.Close(h)
		return nil, fmt.Errorf("POSIX message queue /%s: its name is taken by another queue, and the dumped queue (unlinked) must be made under it", q.Name)
	case err == nil:
		defer unix.Close(h)
		if err := checkLeftBehind(h, ino, q); err != nil {
			return nil, fmt.Errorf("POSIX message queue /%s: %w", q.Name, err)
		}
		// The job's queue, left behind: what is in it now gives way
		// to what it held at the dump.
		if _, err := takeMessages(h, q.Msgsize); err != nil {
			return nil, fmt.Errorf("POSIX message queue /%s: empty it: %w", q.Name, err)
		}
		if err := putMessages(h, q.Messages); err != nil {
			return nil, fmt.Errorf("POSIX message queue /%s: %w", q.Name, err)
		}
		return &madeQueue{}, nil
	case !errors.Is(err, unix.ENOENT):
		return nil, fmt.Errorf("POSIX message queue /%s: mq_open: %w", q.Name, err)
	}
	attr := ipc.MqAttr{Maxmsg: q.Maxmsg, Msgsize: q.Msgsize}
	h, err = ipc.MqOpen(q.Name, flags|unix.O_CREAT|unix.O_EXCL, 0o600, &attr)
	if err != nil {
		return nil, fmt.Errorf("POSIX message queue /%s: make it (%d messages of %d bytes): %w", q.Name, q.Maxmsg, q.Msgsize, err)
	}
	defer unix.Close(h)
	var st unix.Stat_t
	if err := unix.Fstat(h, &st); err != nil {
		return nil, err
	}
	// Removed again if the restore fails, unless by then the name is
	// another queue's.
	s.Made(func() { unlinkQueue(q.Name, st.Ino) })
	// Owner first: the mode then sets what chown may clear (man 2
	// chown); mq_open's mode went through gocr's umask.
	if err := unix.Fchown(h, int(q.Uid), int(q.Gid)); err != nil {
		return nil, fmt.Errorf("POSIX message queue /%s: owner %d:%d: %w", q.Name, q.Uid, q.Gid, err)
	}
	if err := unix.Fchmod(h, q.Mode); err != nil {
		return nil, fmt.Errorf("POSIX message queue /%s: mode %#o: %w", q.Name, q.Mode, err)
	}
	if err := putMessages(h, q.Messages); err != nil {
		return nil, fmt.Errorf("POSIX message queue /%s: %w", q.Name, err)
	}
	return &madeQueue{}, nil
}

// checkLeftBehind tells whether the queue h found at the dumped name is
// the dumped one: the same inode (ipc/mqueue.c mqueue_get_inode numbers
// each queue anew, get_next_ino), size limits and owner.
func checkLeftBehind(h int, ino uint64, q *gocrpb.MqueueFd) error {
	var st unix.Stat_t
	if err := unix.Fstat(h, &st); err != nil {
		return err
	}
	attr, err := ipc.MqGetAttr(h)
	if err != nil {
		return fmt.Errorf("mq_getattr: %w", err)
	}
	if st.Ino != ino || st.Uid != q.Uid || st.Gid != q.Gid || attr.Maxmsg != q.Maxmsg || attr.Msgsize != q.Msgsize {
		return fmt.Errorf("the name is taken by another queue (inode %d, owner %d:%d, %d messages of %d bytes; the dumped one was inode %d, %d:%d, %d of %d)",
			st.Ino, st.Uid, st.Gid, attr.Maxmsg, attr.Msgsize, ino, q.Uid, q.Gid, q.Maxmsg, q.Msgsize)
	}
	// In use (the dumped job still running after --leave-running, or
	// another): setting it back would change it under its users.
	if pid := openedBy(st.Dev, st.Ino); pid != 0 {
		return fmt.Errorf("the dumped queue is still there, open in pid %d", pid)
	}
	if err := unix.Fchmod(h, q.Mode); err != nil {
		return fmt.Errorf("mode %#o: %w", q.Mode, err)
	}
	return nil
}

// unlinkQueue removes the queue at name if it is still the one of inode
// ino.
func unlinkQueue(name string, ino uint64) {
	h, err := ipc.MqOpen(name, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0, nil)
	if err != nil {
		return
	}
	var st unix.Stat_t
	err = unix.Fstat(h, &st)
	unix.Close(h)
	if err == nil && st.Ino == ino {
		ipc.MqUnlink(name)
	}
}

// openedBy finds a process other than gocr with the file (dev, ino) open,
// looking through every /proc/PID/fd; 0 if none.
func openedBy(dev, ino uint64) int {
	procs, _ := os.ReadDir("/proc")
	self := os.Getpid()
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil || pid == self {
			continue
		}
		dir := "/proc/" + p.Name() + "/fd/"
		fds, _ := os.ReadDir(dir)
		for _, f := range fds {
			var st unix.Stat_t
			if unix.Stat(dir+f.Name(), &st) == nil && st.Dev == dev && st.Ino == ino {
				return pid
			}
		}
	}
	return 0
}
