//go:build linux

package files

import (
	"errors"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestPeekPipePackets: peekPipe copies a pipe's data without consuming it,
// and tells a pipe holding a packet (written with O_DIRECT, man 2 pipe),
// wherever it is, from one holding a plain stream.
func TestPeekPipePackets(t *testing.T) {
	for _, c := range []struct {
		name    string
		writes  []string
		packets []bool // whether each write is in packet mode
		want    string
		err     error
	}{
		{name: "Empty"},
		{name: "Stream", writes: []string{"ab", "cde"}, packets: []bool{false, false}, want: "abcde"},
		{name: "Packets", writes: []string{"ab", "cde"}, packets: []bool{true, true}, err: errPipePackets},
		{name: "PacketAfterFullPage", writes: []string{strings.Repeat("a", 4096), "c"}, packets: []bool{false, true}, err: errPipePackets},
		// A write merges into the last buffer if it can before a new
		// buffer is marked a packet (fs/pipe.c pipe_write): no packet.
		{name: "PacketMergedIntoStream", writes: []string{"ab", "c"}, packets: []bool{false, true}, want: "abc"},
		{name: "OnePacketFirst", writes: []string{"a", "bc"}, packets: []bool{true, false}, err: errPipePackets},
	} {
		t.Run(c.name, func(t *testing.T) {
			var p [2]int
			if err := unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { unix.Close(p[0]); unix.Close(p[1]) })
			for i, w := range c.writes {
				fl := unix.O_NONBLOCK
				if c.packets[i] {
					fl |= unix.O_DIRECT
				}
				if _, err := unix.FcntlInt(uintptr(p[1]), unix.F_SETFL, fl); err != nil {
					t.Fatal(err)
				}
				if _, err := unix.Write(p[1], []byte(w)); err != nil {
					t.Fatal(err)
				}
			}
			data, _, err := peekPipe(os.Getpid(), int32(p[0]))
			if !errors.Is(err, c.err) {
				t.Fatalf("peekPipe: error %v, want %v", err, c.err)
			}
			if string(data) != c.want {
				t.Errorf("peekPipe: data %q, want %q", data, c.want)
			}
			// Nothing was consumed.
			all := strings.Join(c.writes, "")
			got := make([]byte, len(all)+1)
			n := 0
			for n < len(all) {
				m, err := unix.Read(p[0], got[n:])
				if err != nil {
					t.Fatalf("read the pipe after peekPipe: %v after %q", err, got[:n])
				}
				n += m
			}
			if string(got[:n]) != all {
				t.Errorf("pipe holds %q after peekPipe, want %q", got[:n], all)
			}
		})
	}
}
