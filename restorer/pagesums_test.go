//go:build linux

package restorer

import (
	"testing"
)

// TestChunkReaders: the restorer verifies the chunks one thread reads
// whole; gocr, before the restore, those touched by a staged run, read
// only in part, or of a file several threads read; nobody those no run
// reads.
func TestChunkReaders(t *testing.T) {
	const off, chunk = 4096, 4 * pageSize
	const size = 15 * pageSize // the last chunk is short
	run := func(file, stream, flags uint32, from, pages uint64) rstPages {
		return rstPages{FileOff: off + from*pageSize, NrPages: pages, File: file, Stream: stream, Flags: flags}
	}
	const h, n, x = 'h', 'n', '-' // here, now, neither
	for _, c := range []struct {
		name  string
		pages []rstPages
		want  string
	}{
		{"all read by one thread", []rstPages{run(0, 0, 0, 0, 5), run(0, 0, rstPagesHuge, 5, 10)}, "hhhh"},
		{"a staged run across a chunk boundary", []rstPages{run(0, 0, 0, 0, 3), run(0, 0, rstPagesStaged, 3, 2), run(0, 0, 0, 5, 10)}, "nnhh"},
		{"a staged run ending on a boundary", []rstPages{run(0, 0, 0, 0, 4), run(0, 0, rstPagesStaged, 4, 4), run(0, 0, 0, 8, 7)}, "hnhh"},
		{"another file's runs", []rstPages{run(1, 1, rstPagesStaged, 0, 16), run(0, 0, 0, 0, 15)}, "hhhh"},
		{"a parent's pages taken in part", []rstPages{run(0, 1, 0, 1, 2), run(0, 1, 0, 4, 4), run(0, 1, 0, 12, 3)}, "nh-h"},
		{"two threads read the file", []rstPages{run(0, 0, 0, 0, 8), run(0, 1, 0, 8, 7)}, "nnnn"},
		{"only staged runs", []rstPages{run(0, 0, rstPagesStaged, 0, 15)}, "nnnn"},
	} {
		here, now := chunkReaders(c.pages, 0, off, chunk, size, 4)
		got := make([]byte, 4)
		for i := range got {
			switch {
			case here[i] && now[i]:
				got[i] = '!'
			case here[i]:
				got[i] = h
			case now[i]:
				got[i] = n
			default:
				got[i] = x
			}
		}
		if string(got) != c.want {
			t.Errorf("%s: chunks %s, want %s (h: restorer, n: gocr before, -: neither)", c.name, got, c.want)
		}
	}
}
