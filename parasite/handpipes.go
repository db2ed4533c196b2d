//go:build linux

package parasite

import (
	"encoding/binary"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Where handPipes lays out its recvmsg(2) in the data area: a struct
// msghdr, one iovec, the byte the record carries, and the control
// buffer (struct msghdr and struct iovec: include/uapi/linux/socket.h,
// include/uapi/linux/uio.h, x86-64 layout).
const (
	hmsgOff  = dataOff
	hiovOff  = dataOff + 64
	hbyteOff = dataOff + 96
	hcmsgOff = dataOff + 128
	hcmsgLen = 128

	msghdrIovOff        = 16
	msghdrIovlenOff     = 24
	msghdrControlOff    = 32
	msghdrControllenOff = 40
	msghdrFlagsOff      = 48
)

// handPipes makes in gocr the pipes the parasite works with, and gives
// the target its ends of all of them in one injected recvmsg over the
// file socket (SCM_RIGHTS, man 7 unix): the write ends of the two page
// pipes of DumpPages (while gocr copies one pipe's chunk into the image,
// the parasite fills the other), the read end of the command pipe the
// blob waits for commands on, and, for a process of more than one
// thread, the read end of the lifeline the threads running the
// thread-state stub wait on (parasite/c/abi.h). gocr keeps the other
// ends, the only write ends of the command pipe and the lifeline, so its
// death is the parasite's and the threads' EOF. One injected call, not a
// pipe2 and a close per pipe: each is a round trip with the stopped
// thread, time the processes stay frozen.
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
	remote, err := p.recvFds(n)
	if err != nil {
		return fmt.Errorf("take the pipes: %w", err)
	}

	// The target's ends are the cure's to close from here on.
	p.remoteDataFd = [2]int64{remote[0], remote[1]}
	p.remoteCmdFd = remote[2]
	if n == 4 {
		p.remoteLife = remote[3]
	}
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
		binary.LittleEndian.PutUint32(p.local[ctlOff+ctlDataFd+4*i:], uint32(remote[i]))
	}
	p.chunk = min(sizes[0], sizes[1])
	p.cmdw = ends[2][1]
	binary.LittleEndian.PutUint32(p.local[ctlOff+ctlCmdFd:], uint32(remote[2]))
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

// recvFds runs recvmsg on the target's end of the file socket and returns
// the n fds the record carried, as the target numbers them (close-on-exec,
// MSG_CMSG_CLOEXEC). Fewer (its RLIMIT_NOFILE reached: the kernel sets
// MSG_CTRUNC, net/core/scm.c scm_detach_fds) is a failure, and closes
// those that came.
func (p *Parasite) recvFds(n int) ([]int64, error) {
	clear(p.local[hmsgOff : hcmsgOff+hcmsgLen])
	le := binary.LittleEndian
	le.PutUint64(p.local[hmsgOff+msghdrIovOff:], p.remoteBase+hiovOff)
	le.PutUint64(p.local[hmsgOff+msghdrIovlenOff:], 1)
	le.PutUint64(p.local[hmsgOff+msghdrControlOff:], p.remoteBase+hcmsgOff)
	le.PutUint64(p.local[hmsgOff+msghdrControllenOff:], hcmsgLen)
	le.PutUint64(p.local[hiovOff:], p.remoteBase+hbyteOff)
	le.PutUint64(p.local[hiovOff+8:], 1)
	if _, err := p.inject(unix.SYS_RECVMSG, uint64(p.remoteSock), p.remoteBase+hmsgOff, unix.MSG_CMSG_CLOEXEC); err != nil {
		return nil, err
	}
	var fds []int64
	clen := min(le.Uint64(p.local[hmsgOff+msghdrControllenOff:]), hcmsgLen)
	msgs, err := unix.ParseSocketControlMessage(p.local[hcmsgOff : hcmsgOff+clen])
	if err == nil {
		for _, m := range msgs {
			got, perr := unix.ParseUnixRights(&m)
			if perr != nil {
				err = perr
			}
			for _, fd := range got {
				fds = append(fds, int64(fd))
			}
		}
	}
	if err == nil && (len(fds) != n || le.Uint32(p.local[hmsgOff+msghdrFlagsOff:])&unix.MSG_CTRUNC != 0) {
		err = fmt.Errorf("%d of %d fds arrived (its open file limit?)", len(fds), n)
	}
	if err != nil {
		ptrs := make([]*int64, len(fds))
		for i := range fds {
			ptrs[i] = &fds[i]
		}
		p.closeRemote(ptrs)
		return nil, err
	}
	return fds, nil
}
