//go:build linux

package files

import (
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/gocrpb"
)

// A socket filter (man 7 socket SO_ATTACH_FILTER, SO_ATTACH_BPF,
// SO_LOCK_FILTER), which any socket may carry: a classic BPF program is
// read back and attached again, an eBPF one is refused.

// include/uapi/asm-generic/socket.h, which golang.org/x/sys/unix lacks.
const (
	soLockFilter = 44 // SO_LOCK_FILTER
)

// sockFilterLen is the size of one classic instruction, struct
// sock_filter (include/uapi/linux/filter.h): u16 code, u8 jt, u8 jf,
// u32 k.
const sockFilterLen = 8

// readSocketFilter returns socket h's filter, nil when it has none.
// getsockopt SO_GET_FILTER (net/core/sock.c sk_getsockopt, net/core/
// filter.c sk_get_filter) counts in instructions, not bytes: with optlen
// 0 it gives the number of instructions of the classic program as it was
// attached (0: no filter), and fails with EACCES for a program that has
// no classic original, one attached with SO_ATTACH_BPF. Reading it
// changes nothing. SO_LOCK_FILTER reads the lock (sock_flag
// SOCK_FILTER_LOCKED).
func readSocketFilter(h int) (*gocrpb.SocketFilter, error) {
	n, err := getsockoptLen(h, unix.SOL_SOCKET, unix.SO_GET_FILTER, nil, 0)
	if errors.Is(err, unix.EACCES) {
		return nil, errors.New("an eBPF socket filter is attached (SO_ATTACH_BPF), which gocr does not restore")
	}
	if err != nil {
		return nil, fmt.Errorf("getsockopt SO_GET_FILTER: %w", err)
	}
	if n == 0 {
		return nil, nil
	}
	buf := make([]byte, int(n)*sockFilterLen)
	got, err := getsockoptLen(h, unix.SOL_SOCKET, unix.SO_GET_FILTER, buf, n)
	if err != nil {
		return nil, fmt.Errorf("getsockopt SO_GET_FILTER of %d instructions: %w", n, err)
	}
	if got != n {
		return nil, fmt.Errorf("getsockopt SO_GET_FILTER: %d instructions, then %d", n, got)
	}
	f := &gocrpb.SocketFilter{}
	ne := binary.NativeEndian
	for i := 0; i < int(n); i++ {
		f.Insns = append(f.Insns, ne.Uint64(buf[i*sockFilterLen:]))
	}
	locked, err := unix.GetsockoptInt(h, unix.SOL_SOCKET, soLockFilter)
	if err != nil {
		return nil, fmt.Errorf("getsockopt SO_LOCK_FILTER: %w", err)
	}
	f.Locked = locked != 0
	return f, nil
}

// setSocketFilter attaches the dumped filter to socket h, locks it if it
// was, and reads it back. It comes after whatever the restore queues at
// the socket: the filter runs on what arrives (net/core/filter.c
// sk_filter_trim_cap), and the dumped queue had passed it already.
func setSocketFilter(h int, f *gocrpb.SocketFilter) error {
	if len(f.GetInsns()) == 0 {
		return nil
	}
	ins := make([]unix.SockFilter, len(f.GetInsns()))
	for i, v := range f.GetInsns() {
		ins[i] = unix.SockFilter{Code: uint16(v), Jt: uint8(v >> 16), Jf: uint8(v >> 24), K: uint32(v >> 32)}
	}
	prog := &unix.SockFprog{Len: uint16(len(ins)), Filter: &ins[0]}
	if err := unix.SetsockoptSockFprog(h, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, prog); err != nil {
		return fmt.Errorf("setsockopt SO_ATTACH_FILTER of %d instructions: %w", len(ins), err)
	}
	if f.GetLocked() {
		if err := unix.SetsockoptInt(h, unix.SOL_SOCKET, soLockFilter, 1); err != nil {
			return fmt.Errorf("setsockopt SO_LOCK_FILTER: %w", err)
		}
	}
	got, err := readSocketFilter(h)
	if err != nil {
		return fmt.Errorf("read the attached filter back: %w", err)
	}
	if len(got.GetInsns()) != len(f.GetInsns()) || got.GetLocked() != f.GetLocked() {
		return errors.New("the attached filter reads back differently")
	}
	for i := range got.GetInsns() {
		if got.GetInsns()[i] != f.GetInsns()[i] {
			return fmt.Errorf("the attached filter's instruction %d reads back differently", i)
		}
	}
	return nil
}
