//go:build linux

package files

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/gocrpb"
)

// A pipe whose other end is outside the dump: the job inherited it from
// whatever launched it (a shell, a CI runner, a batch system, a
// supervisor), which the dump does not take. Its fds are recorded as
// joined outside the dump (inherit.go), by their key (pipe:[INODE]), and
// at restore, unless --inherit-fd gives one of gocr's fds in its place:
//   - stdio (fds 0-2), and fds above 2 sharing an open file description
//     with one, get gocr restore's own stdio (StdioNote);
//   - every other fd gets a new pipe of the same direction whose other end
//     is closed, as if the outside end had been closed at the dump: a read
//     end gives the data that was unread in the pipe, then end of file; a
//     write end fails with EPIPE and raises SIGPIPE (man 7 pipe). It has
//     the dumped pipe size and status flags (ClosedPipeNote says so);
//   - with dump --external pipe:[INODE], the restore requires --inherit-fd.
// The data a job's write end left in the pipe is the outside reader's,
// and stays in the old pipe for it.

// linkOutsidePipe records the fds of refs, a pipe(2) with no reader
// (reader nil) or no writer among the dumped processes.
func linkOutsidePipe(refs []Ref, reader *Ref, opts LinkOptions) error {
	for _, r := range refs {
		if len(r.Fd.Locks) > 0 {
			return fmt.Errorf("pid %d fd %d (%s) holds a lock on a pipe from outside the dumped processes, which the restore replaces", r.Pid, r.Fd.Fd, r.Fd.Description)
		}
	}
	if slices.Contains(opts.External, refs[0].Fd.Description) {
		for _, r := range refs {
			setInherit(r.Fd, unix.S_IFIFO, true)
		}
		return nil
	}
	// The stdio fd, the lowest, of each open file description that has one.
	type desc struct{ pid, fd int32 }
	descOf := func(r Ref) desc {
		if r.Fd.SharedWith < 0 {
			return desc{int32(r.Pid), r.Fd.Fd}
		}
		owner := r.Fd.SharedPid
		if owner == 0 {
			owner = int32(r.Pid)
		}
		return desc{owner, r.Fd.SharedWith}
	}
	stdioOf := map[desc]uint32{}
	for _, r := range refs {
		if isStdio(r.Fd.Fd) {
			d := descOf(r)
			if n, ok := stdioOf[d]; !ok || uint32(r.Fd.Fd) < n {
				stdioOf[d] = uint32(r.Fd.Fd)
			}
		}
	}
	var state *gocrpb.PipeFd
	for _, r := range refs {
		n, likeStdio := stdioOf[descOf(r)]
		switch {
		case isStdio(r.Fd.Fd):
			setInherit(r.Fd, unix.S_IFIFO, false)
		case likeStdio:
			setInherit(r.Fd, unix.S_IFIFO, false)
			r.Fd.GetInherit().LikeStdio = &n
		default:
			p := &gocrpb.PipeFd{Id: r.Fd.GetPipe().GetId()}
			if state == nil {
				var err error
				if state, err = outsidePipeState(r, reader); err != nil {
					return err
				}
				p.Data = state.Data
			}
			p.Size = state.Size
			// Dups of one open file description stay one (Sources.Place).
			with, pid := r.Fd.SharedWith, r.Fd.SharedPid
			setInherit(r.Fd, unix.S_IFIFO, false)
			r.Fd.GetInherit().ClosedPipe = p
			r.Fd.SharedWith, r.Fd.SharedPid = with, pid
		}
	}
	return nil
}

func isStdio(fd int32) bool { return fd >= 0 && fd <= 2 }

// outsidePipeState is the pipe's size and, if the job reads it (reader),
// the data unread in it, which the job would have read next.
func outsidePipeState(r Ref, reader *Ref) (*gocrpb.PipeFd, error) {
	if reader != nil {
		data, size, err := peekPipe(reader.Pid, reader.Fd.Fd)
		if err != nil {
			return nil, fmt.Errorf("pid %d fd %d (%s): read pipe contents: %w", reader.Pid, reader.Fd.Fd, reader.Fd.Description, err)
		}
		return &gocrpb.PipeFd{Data: data, Size: uint32(size)}, nil
	}
	lfd, err := takeFd(r.Pid, int(r.Fd.Fd))
	if err == nil {
		defer unix.Close(lfd)
		var size int
		if size, err = unix.FcntlInt(uintptr(lfd), unix.F_GETPIPE_SZ, 0); err == nil {
			return &gocrpb.PipeFd{Size: uint32(size)}, nil
		}
	}
	return nil, fmt.Errorf("pid %d fd %d (%s): pipe size: %w", r.Pid, r.Fd.Fd, r.Fd.Description, err)
}

type closedPipeKey uint64

// closedPipe is the job's end of a pipe made in place of one from
// outside, among the sources; given says whether it went to an open file
// description already.
type closedPipe struct {
	end   int32
	given bool
}

// openClosedPipe gives fd its open file description of the pipe made in
// place of the one from outside (closedPipe), with its dumped access mode
// and status flags: the pipe(2) end for the first, a new open of that end
// for another (or one the dump found opened by a path, O_LARGEFILE: see
// pipeKind.Open).
func openClosedPipe(s *Sources, fd *gocrpb.Fd) (int32, error) {
	p := fd.GetInherit().GetClosedPipe()
	cp, err := once(s, closedPipeKey(p.GetId()), func() (*closedPipe, error) { return makeClosedPipe(s, fd, p) })
	if err != nil {
		return 0, err
	}
	if cp.given || fd.Flags&oLargefile != 0 {
		// /proc/self/fd/N of a pipe opens the pipe itself, and never
		// waits for the other end (fs/pipe.c fifo_open, is_pipe).
		keeper := s.File(cp.end)
		flags := int(fd.Flags)&^pipeStatusFlags | unix.O_CLOEXEC
		nfd, err := unix.Open(fmt.Sprintf("/proc/self/fd/%d", keeper.Fd()), flags, 0)
		if err != nil {
			return 0, fmt.Errorf("open %s: %w", fd.Description, err)
		}
		n := s.AddFd(nfd, fd.Description)
		return n, setStatusFlags(nfd, fd.Flags)
	}
	cp.given = true
	return cp.end, setStatusFlags(int(s.File(cp.end).Fd()), fd.Flags)
}

// makeClosedPipe makes a pipe(2) of the dumped size, keeps the end of
// fd's direction, fills it with the unread data of a read end, and
// closes the other end: a read then gives the data and end of file, a
// write EPIPE and SIGPIPE (man 7 pipe).
func makeClosedPipe(s *Sources, fd *gocrpb.Fd, p *gocrpb.PipeFd) (*closedPipe, error) {
	var ends [2]int
	if err := unix.Pipe2(ends[:], unix.O_CLOEXEC); err != nil {
		return nil, fmt.Errorf("pipe2: %w", err)
	}
	reads := fd.Flags&unix.O_ACCMODE == unix.O_RDONLY
	job, other := ends[0], ends[1]
	if !reads {
		job, other = ends[1], ends[0]
	}
	defer unix.Close(other)
	cp := &closedPipe{end: s.AddFd(job, fd.Description)}
	if p.GetSize() > 0 {
		if _, err := unix.FcntlInt(uintptr(job), unix.F_SETPIPE_SZ, int(p.GetSize())); err != nil {
			return nil, fmt.Errorf("set pipe size %d: %w", p.GetSize(), err)
		}
	}
	for data := p.GetData(); reads && len(data) > 0; {
		n, err := unix.Write(other, data)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("refill pipe: %w", err)
		}
		data = data[n:]
	}
	return cp, nil
}

// ClosedPipeNote says, in one line, which fds on a pipe from outside the
// dump get a new pipe whose other end is closed (no --inherit-fd gives
// them a file), or "".
func ClosedPipeNote(tables []*gocrpb.Files, given map[string]*os.File) string {
	var fds []string
	for _, table := range tables {
		for _, fd := range table.Fds {
			if fd.GetInherit().GetClosedPipe() == nil || given[inheritKey(fd)] != nil {
				continue
			}
			fds = append(fds, fmt.Sprintf("pid %d fd %d (%s)", table.Pid, fd.Fd, inheritKey(fd)))
		}
	}
	if len(fds) == 0 {
		return ""
	}
	return fmt.Sprintf("%s connected outside the dump: given a pipe whose other end is closed (reads see end of file, writes EPIPE; --inherit-fd fd[N]:KEY gives another)", strings.Join(fds, ", "))
}
