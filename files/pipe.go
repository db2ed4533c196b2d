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
	return strings.HasPrefix(e.Target, "pipe:[") || (e.Type() == unix.S_IFIFO && e.OnPath())
}

func (pipeKind) Dump(e *Entry, fd *gocrpb.Fd) error {
	fd.Kind = &gocrpb.Fd_Pipe{Pipe: &gocrpb.PipeFd{Id: e.Stat.Ino, Fifo: strings.HasPrefix(e.Target, "/")}}
	return nil
}

// Link checks that a pipe has both ends in the dump (or is only stdio,
// which the restore gives), and saves its unread data with its first fd.
func (pipeKind) Link(refs []Ref) error {
	var reader *Ref
	hasWriter, allStdio := false, true
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
		if r.Fd.Fd > 2 {
			allStdio = false
		}
	}
	first := refs[0].Fd.GetPipe()
	if !first.GetFifo() && (reader == nil || !hasWriter) {
		if !allStdio {
			r := refs[0]
			return fmt.Errorf("pid %d fd %d (%s): the other end of this pipe is outside the dumped processes", r.Pid, r.Fd.Fd, r.Fd.Description)
		}
		// The shell's pipe into or out of the job: the restore
		// connects its own stdio here.
		for _, r := range refs {
			if len(r.Fd.Locks) > 0 {
				return fmt.Errorf("pid %d fd %d (%s) holds a lock on a pipe from outside the dumped processes, which the restore replaces", r.Pid, r.Fd.Fd, r.Fd.Description)
			}
			setInherit(r.Fd)
		}
		return nil
	}
	if reader == nil {
		// A FIFO with only writers open: whatever was written is
		// still in the pipe only while a reader exists, so nothing
		// can be pending (man 7 fifo).
		return nil
	}
	data, size, err := peekPipe(reader.Pid, reader.Fd.Fd)
	if err != nil {
		return fmt.Errorf("pid %d fd %d: read pipe contents: %w", reader.Pid, reader.Fd.Fd, err)
	}
	first.Data, first.Size = data, uint32(size)
	return nil
}

// peekPipe copies the unread data of a pipe without consuming it: tee(2)
// duplicates pipe buffers into a second pipe, which gocr then reads.
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
	if _, err := unix.FcntlInt(uintptr(p[1]), unix.F_SETPIPE_SZ, size); err != nil {
		return nil, 0, fmt.Errorf("size copy pipe to %d: %w", size, err)
	}
	n, err := unix.Tee(lfd, p[1], size, unix.SPLICE_F_NONBLOCK)
	if errors.Is(err, unix.EAGAIN) {
		return nil, size, nil // empty
	}
	if err != nil {
		return nil, 0, err
	}
	data := make([]byte, n)
	if _, err := readFull(p[0], data); err != nil {
		return nil, 0, err
	}
	return data, size, nil
}

func readFull(fd int, b []byte) (int, error) {
	got := 0
	for got < len(b) {
		n, err := unix.Read(fd, b[got:])
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return got, err
		}
		if n == 0 {
			return got, fmt.Errorf("short read from pipe copy: %w", os.ErrClosed)
		}
		got += n
	}
	return got, nil
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

func (pipeKind) Open(s *Sources, fd *gocrpb.Fd) (int32, error) {
	p := fd.GetPipe()
	if p.GetFifo() && fd.File == nil {
		return 0, errors.New("no file in the image")
	}
	pp, err := once(s, pipeKey(p.GetId()), func() (*pipePair, error) { return makePipe(s, fd) })
	if err != nil {
		return 0, err
	}
	if p.GetFifo() {
		// A new open file description of the same FIFO, with the
		// dumped flags; gocr's read-write one keeps the pipe, and its
		// data, alive meanwhile (man 7 fifo).
		keeper := s.File(pp.r)
		nfd, err := unix.Open(fmt.Sprintf("/proc/self/fd/%d", keeper.Fd()), int(fd.Flags)|unix.O_CLOEXEC, 0)
		if err != nil {
			return 0, fmt.Errorf("open FIFO %s: %w", fd.File.Path, err)
		}
		return s.AddFd(nfd, fd.File.Path), nil
	}
	end := pp.r
	if fd.Flags&unix.O_ACCMODE == unix.O_WRONLY {
		end = pp.w
	}
	// O_NONBLOCK belongs to the open file description, one per pipe end
	// (man 2 pipe2).
	if fd.Flags&unix.O_NONBLOCK != 0 {
		if err := unix.SetNonblock(int(s.File(end).Fd()), true); err != nil {
			return 0, err
		}
	}
	return end, nil
}

type pipeKey uint64

// pipePair is a recreated pipe's ends among the sources; a FIFO has only
// r, gocr's read-write open of it.
type pipePair struct{ r, w int32 }

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
