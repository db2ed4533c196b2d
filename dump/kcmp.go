//go:build linux

package dump

import (
	"errors"
	"fmt"
	"os"
	"sort"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/gocrpb"
)

// kcmpFile is KCMP_FILE (include/uapi/linux/kcmp.h): compare two fds'
// open file descriptions.
const kcmpFile = 0

// compareOpenFiles orders two fds by their open file description: kcmp
// returns 0 for the same description (dup, fork, `>log 2>&1`: one offset,
// one set of status flags), 1 and 2 for a consistent less and greater
// (man 2 kcmp), so descriptions can be sorted.
func compareOpenFiles(a, b fdRef) int {
	r, _, e := unix.Syscall6(unix.SYS_KCMP, uintptr(a.pid), uintptr(b.pid), kcmpFile, uintptr(a.fd.Fd), uintptr(b.fd.Fd), 0)
	switch {
	case e != 0:
		return 2 // not comparable: treat as different
	case r == 0:
		return 0
	case r == 1:
		return -1
	}
	return 1
}

// linkShared points every fd at the first fd (in dump order) with the same
// open file description. Sorting by description costs n log n kcmp calls
// where comparing every pair would cost n².
func linkShared(refs []fdRef) {
	if len(refs) < 2 {
		return
	}
	idx := make([]int, len(refs))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(i, j int) bool { return compareOpenFiles(refs[idx[i]], refs[idx[j]]) < 0 })
	for start := 0; start < len(idx); {
		end := start + 1
		for end < len(idx) && compareOpenFiles(refs[idx[start]], refs[idx[end]]) == 0 {
			end++
		}
		owner := idx[start]
		for _, k := range idx[start:end] {
			owner = min(owner, k)
		}
		for _, k := range idx[start:end] {
			if k != owner {
				refs[k].fd.SharedWith, refs[k].fd.SharedPid = refs[owner].fd.Fd, int32(refs[owner].pid)
			}
		}
		start = end
	}
}

type fdRef struct {
	pid int
	fd  *gocrpb.Fd
}

// linkFiles finds what the dumped processes share: every fd that is the
// same open file description as an earlier one (in dump order, parents
// first) points at it, so restore opens the file once; pipes are checked
// to have both ends in the dump (or be stdio, given by the restore) and
// their unread data is saved with the first fd of each.
func linkFiles(states []*state) error {
	groups := map[[2]uint64][]fdRef{}
	var order [][2]uint64
	for _, st := range states {
		if st.files == nil {
			continue
		}
		for _, f := range st.files.Fds {
			if f.File == nil {
				continue
			}
			key := [2]uint64{f.File.Dev, f.File.Ino}
			if _, ok := groups[key]; !ok {
				order = append(order, key)
			}
			groups[key] = append(groups[key], fdRef{int(st.task.Pid), f})
		}
	}
	for _, key := range order {
		refs := groups[key]
		linkShared(refs)
		kind := refs[0].fd.Kind
		if kind != gocrpb.FdKind_FD_PIPE && kind != gocrpb.FdKind_FD_FIFO {
			continue
		}
		if err := linkPipe(refs); err != nil {
			return err
		}
	}
	return nil
}

func linkPipe(refs []fdRef) error {
	var reader *fdRef
	hasWriter, allStdio := false, true
	for i, r := range refs {
		switch r.fd.Flags & unix.O_ACCMODE {
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
		if r.fd.Fd > 2 {
			allStdio = false
		}
	}
	if refs[0].fd.Kind == gocrpb.FdKind_FD_PIPE && (reader == nil || !hasWriter) {
		if !allStdio {
			r := refs[0]
			return fmt.Errorf("pid %d fd %d (%s): the other end of this pipe is outside the dumped processes", r.pid, r.fd.Fd, r.fd.Description)
		}
		// The shell's pipe into or out of the job: the restore
		// connects its own stdio here.
		for _, r := range refs {
			r.fd.Kind, r.fd.File, r.fd.SharedWith, r.fd.SharedPid, r.fd.PipeId = gocrpb.FdKind_FD_INHERIT, nil, -1, 0, 0
		}
		return nil
	}
	if reader == nil {
		// A FIFO with only writers open: whatever was written is
		// still in the pipe only while a reader exists, so nothing
		// can be pending (man 7 fifo).
		return nil
	}
	data, size, err := peekPipe(reader.pid, reader.fd.Fd)
	if err != nil {
		return fmt.Errorf("pid %d fd %d: read pipe contents: %w", reader.pid, reader.fd.Fd, err)
	}
	refs[0].fd.PipeData, refs[0].fd.PipeSize = data, uint32(size)
	return nil
}

// peekPipe copies the unread data of a pipe without consuming it: tee(2)
// duplicates pipe buffers into a second pipe, which gocr then reads.
func peekPipe(pid int, fd int32) ([]byte, int, error) {
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return nil, 0, err
	}
	defer unix.Close(pidfd)
	lfd, err := unix.PidfdGetfd(pidfd, int(fd), 0)
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
