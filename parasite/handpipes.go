//go:build linux

package parasite

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// handPipes makes in gocr the pipes the parasite works with and sends
// the target its ends of all of them in one record on the file socket
// (SCM_RIGHTS, man 7 unix), which the blob's setup takes in one recvmsg
// (parasite/c/abi.h PCMD_SETUP): the write ends of the two page pipes of
// DumpPages (while gocr copies one pipe's chunk into the image, the
// parasite fills the other), the read end of the command pipe the blob
// waits for commands on, and, for a process of more than one thread, the
// read end of the lifeline the threads running the thread-state stub
// wait on (parasite/c/abi.h). gocr keeps the other ends, the only write
// ends of the command pipe and the lifeline, so its death is the
// parasite's and the threads' EOF. No injected call at all: a pipe2 and a
// close per pipe, or the recvmsg, would each be a round trip with the
// stopped thread, time the processes stay frozen.
func (p *Parasite) handPipes(threads int) (err error) {
	n := 3
	if threads > 1 {
		n = 4
	}
	var ends [4][2]int // read, write (man 2 pipe)
	made := 0
	defer func() {
		// gocr's copies of the target's ends always, the rest on failure.
		for i := 0; i < made; i++ {
			for e, fd := range ends[i] {
				if err != nil || e == targetEnd(i) {
					unix.Close(fd)
				}
			}
		}
	}()
	give := make([]int, n)
	for i := 0; i < n; i++ {
		if err := unix.Pipe2(ends[i][:], unix.O_CLOEXEC); err != nil {
			return fmt.Errorf("pipe: %w", err)
		}
		made++
		give[i] = ends[i][targetEnd(i)]
	}
	if err := unix.Sendmsg(p.sock, []byte{0}, unix.UnixRights(give...), nil, 0); err != nil {
		return fmt.Errorf("hand over the pipes: %w", err)
	}
	p.handed = n
	var sizes [2]int
	for i := range sizes {
		for _, want := range pagePipeSizes {
			if _, err := unix.FcntlInt(uintptr(ends[i][0]), unix.F_SETPIPE_SZ, want); err == nil {
				break
			}
		}
		if sizes[i], err = unix.FcntlInt(uintptr(ends[i][0]), unix.F_GETPIPE_SZ, 0); err != nil {
			return fmt.Errorf("page pipe size: %w", err)
		}
	}
	for i := range p.pipes {
		p.pipes[i] = os.NewFile(uintptr(ends[i][0]), "parasite-pipe")
	}
	p.chunk = min(sizes[0], sizes[1])
	p.cmdw = ends[2][1]
	if n == 4 {
		p.lifew = ends[3][1]
	}
	return nil
}

// targetEnd is which end of handPipes' pipe i the target gets: the
// write end of a page pipe, the read end of the others.
func targetEnd(i int) int {
	if i < 2 {
		return 1
	}
	return 0
}
