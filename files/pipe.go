//go:build linux

package files

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/gocrpb"
)

// pipeKind is one end of a pipe(2), or a FIFO (a named pipe, reopened by
// its path), recreated once per pipe with its size and the data in it.
type pipeKind struct{}

func init() { register(pipeKind{}) }

func (pipeKind) Name() string { return "pipe" }

func (pipeKind) Match(e *Entry) bool {
	// An O_PATH fd of a FIFO names it without opening the pipe: the
	// path kind's.
	return strings.HasPrefix(e.Target, "pipe:[") || (e.Type() == unix.S_IFIFO && e.OnPath() && e.Info.Flags&unix.O_PATH == 0)
}

func (pipeKind) Dump(e *Entry, fd *gocrpb.Fd) error {
	// O_ASYNC sends a signal to the fd's owner (F_SETOWN) on I/O;
	// neither the owner nor the signal is recorded.
	if fd.Flags&unix.O_ASYNC != 0 {
		return errors.New("signal-driven I/O (O_ASYNC) is on: its owner and signal are not restored")
	}
	fd.Kind = &gocrpb.Fd_Pipe{Pipe: &gocrpb.PipeFd{Id: e.Stat.Ino, Fifo: strings.HasPrefix(e.Target, "/")}}
	return nil
}

// pipeStatusFlags are the status flags of a pipe's open file description
// that F_SETFL sets (fs/fcntl.c SETFL_MASK without O_ASYNC, which Dump
// refuses): O_DIRECT is packet mode (man 2 pipe), settable on a FIFO only
// this way (open refuses it, fs/open.c do_dentry_open).
const pipeStatusFlags = unix.O_APPEND | unix.O_NONBLOCK | unix.O_DIRECT | unix.O_NOATIME

// oLargefile is the kernel's O_LARGEFILE (include/uapi/asm-generic/fcntl.h),
// as fdinfo shows it; unix.O_LARGEFILE is libc's, 0 on 64-bit.
const oLargefile = 0o100000

// setStatusFlags gives an open file description of a pipe exactly the
// dumped status flags.
func setStatusFlags(fd int, flags uint32) error {
	want := int(flags) & pipeStatusFlags
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFL, want); err != nil {
		return fmt.Errorf("set status flags %#o: %w", want, err)
	}
	return nil
}

// Link checks that a pipe has both ends in the dump, and saves its unread
// data with its first fd. One with an end outside the dump is recorded by
// its key (pipeoutside.go).
func (pipeKind) Link(refs []Ref, opts LinkOptions) error {
	var reader *Ref
	hasWriter := false
	for i, r := range refs {
		switch r.Fd.Flags & unix.O_ACCMODE {
		case unix.O_RDONLY:
			if reader == nil {
				reader = &refs[i]
			}
		case unix.O_WRONLY:
			hasWriter = true
		case unix.O_RDWR: // a FIFO opened read-write is both
			if reader == nil {
				reader = &refs[i]
			}
			hasWriter = true
		}
	}
	first := refs[0].Fd.GetPipe()
	if !first.GetFifo() && (reader == nil || !hasWriter) {
		return linkOutsidePipe(refs, reader, opts)
	}
	if reader == nil {
		// A FIFO with only writers open: whatever was written is
		// still in the pipe only while a reader exists, so nothing
		// can be pending (man 7 fifo).
		return nil
	}
	data, size, err := peekPipe(reader.Pid, reader.Fd.Fd)
	if err != nil {
		return fmt.Errorf("pid %d fd %d (%s): read pipe contents: %w", reader.Pid, reader.Fd.Fd, reader.Fd.Description, err)
	}
	first.Data, first.Size = data, uint32(size)
	return nil
}

// errPipePackets: the pipe holds packets, written in packet mode
// (O_DIRECT, man 2 pipe): each is read on its own, and a read shorter than
// one discards the rest of it. Refilled as one stream, they would read
// differently.
var errPipePackets = errors.New("it holds packets written in packet mode (O_DIRECT), whose boundaries are not restored")

// peekPipe copies the unread data of a pipe without consuming it: tee(2)
// duplicates pipe buffers, with their packet marks, into a second pipe,
// which gocr then reads. A byte written after them tells whether any is a
// packet: a read stops at the end of a packet (fs/pipe.c pipe_read,
// PIPE_BUF_FLAG_PACKET), so one read reaches that byte only if none is.
func peekPipe(pid int, fd int32) ([]byte, int, error) {
	lfd, err := takeFd(pid, int(fd))
	if err != nil {
		return nil, 0, err
	}
	defer unix.Close(lfd)
	size, err := unix.FcntlInt(uintptr(lfd), unix.F_GETPIPE_SZ, 0)
	if err != nil {
		return nil, 0, err
	}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		return nil, 0, err
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	// Room for every buffer of the pipe and one more for the marker
	// byte; failing that (the pipe at pipe-max-size, gocr without
	// CAP_SYS_RESOURCE), the pipe's own size, which is enough unless
	// the pipe is full.
	if _, err := unix.FcntlInt(uintptr(p[1]), unix.F_SETPIPE_SZ, size+os.Getpagesize()); err != nil {
		if _, err := unix.FcntlInt(uintptr(p[1]), unix.F_SETPIPE_SZ, size); err != nil {
			return nil, 0, fmt.Errorf("size copy pipe to %d: %w", size, err)
		}
	}
	n, err := unix.Tee(lfd, p[1], size, unix.SPLICE_F_NONBLOCK)
	if errors.Is(err, unix.EAGAIN) {
		return nil, size, nil // empty
	}
	if err != nil {
		return nil, 0, err
	}
	if _, err := unix.Write(p[1], []byte{0}); err != nil {
		return nil, 0, fmt.Errorf("cannot tell whether its %d bytes hold packets: %w", n, err)
	}
	data := make([]byte, n+1)
	got, err := readPipe(p[0], data)
	if err != nil {
		return nil, 0, err
	}
	if int64(got) != n+1 {
		return nil, 0, errPipePackets
	}
	return data[:n], size, nil
}

// readPipe is one read(2) of a pipe, retried on EINTR.
func readPipe(fd int, b []byte) (int, error) {
	for {
		n, err := unix.Read(fd, b)
		if !errors.Is(err, unix.EINTR) {
			return n, err
		}
	}
}

// takeFd gives gocr its own fd of the same open file as pid's fd, with
// pidfd_getfd(2), without touching the process.
func takeFd(pid, fd int) (int, error) {
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return -1, err
	}
	defer unix.Close(pidfd)
	return unix.PidfdGetfd(pidfd, fd, 0)
}

// Open gives each open file description of the pipe its own, with the
// dumped access mode and status flags (they belong to the description,
// man 2 open). pipe(2) makes one description per end; every other one was
// opened by a path: a FIFO's, or /proc/PID/fd/N of a pipe, which opens the
// pipe itself, read-write if asked (fs/pipe.c fifo_open). open(2) always
// adds O_LARGEFILE on 64-bit (fs/open.c force_o_largefile) and pipe(2)
// never does (fs/pipe.c create_pipe_files), so the flag tells which an
// end of a pipe(2) is.
func (pipeKind) Open(s *Sources, fd *gocrpb.Fd) (int32, error) {
	p := fd.GetPipe()
	if p.GetFifo() && fd.File == nil {
		return 0, errors.New("no file in the image")
	}
	pp, err := once(s, pipeKey(p.GetId()), func() (*pipePair, error) { return makePipe(s, fd) })
	if err != nil {
		return 0, err
	}
	if p.GetFifo() || fd.Flags&oLargefile != 0 {
		// A new open file description of the same pipe, through gocr's
		// own end of it, which keeps the pipe and its data alive
		// meanwhile (man 7 fifo). Opened without the status flags,
		// which F_SETFL then sets.
		keeper := s.File(pp.r)
		flags := int(fd.Flags)&^pipeStatusFlags | unix.O_CLOEXEC
		nfd, err := unix.Open(fmt.Sprintf("/proc/self/fd/%d", keeper.Fd()), flags, 0)
		if err != nil {
			return 0, fmt.Errorf("open %s: %w", fd.Description, err)
		}
		n := s.AddFd(nfd, fd.Description)
		if err := setStatusFlags(nfd, fd.Flags); err != nil {
			return 0, err
		}
		return n, nil
	}
	end, given := pp.r, &pp.rGiven
	if fd.Flags&unix.O_ACCMODE == unix.O_WRONLY {
		end, given = pp.w, &pp.wGiven
	}
	if *given {
		return 0, errors.New("two open file descriptions of one end of a pipe(2) in the image")
	}
	*given = true
	if err := setStatusFlags(int(s.File(end).Fd()), fd.Flags); err != nil {
		return 0, err
	}
	return end, nil
}

type pipeKey uint64

// pipePair is a recreated pipe's ends among the sources; a FIFO has only
// r, gocr's read-write open of it. rGiven and wGiven say whether the
// pipe(2) ends went to a dumped open file description already.
type pipePair struct {
	r, w           int32
	rGiven, wGiven bool
}

// makePipe creates the pipe behind fd, with its size and the data that was
// in it.
func makePipe(s *Sources, fd *gocrpb.Fd) (*pipePair, error) {
	p := fd.GetPipe()
	var rfd, wfd int
	if p.GetFifo() {
		// O_RDWR on a FIFO never blocks and is both ends (man 7 fifo).
		k, err := unix.Open(fd.File.Path, unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("open FIFO %s: %w", fd.File.Path, err)
		}
		rfd, wfd = k, -1
	} else {
		var ends [2]int
		if err := unix.Pipe2(ends[:], unix.O_CLOEXEC); err != nil {
			return nil, fmt.Errorf("pipe2: %w", err)
		}
		rfd, wfd = ends[0], ends[1]
	}
	pp := &pipePair{r: s.AddFd(rfd, "pipe"), w: -1}
	writer := rfd
	if wfd >= 0 {
		pp.w = s.AddFd(wfd, "pipe")
		writer = wfd
	}
	if p.GetSize() > 0 {
		if _, err := unix.FcntlInt(uintptr(writer), unix.F_SETPIPE_SZ, int(p.GetSize())); err != nil {
			return nil, fmt.Errorf("set pipe size %d: %w", p.GetSize(), err)
		}
	}
	for data := p.GetData(); len(data) > 0; {
		n, err := unix.Write(writer, data)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("refill pipe: %w", err)
		}
		data = data[n:]
	}
	return pp, nil
}
