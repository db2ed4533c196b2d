//go:build linux

package restorer

import (
	"slices"
	"testing"
)

// TestVerifyNow: gocr verifies before the restore exactly the chunks the
// restorer does not read whole in one thread: those touched by a staged
// run or by a run another stream's thread reads, and no chunk of another
// file.
func TestVerifyNow(t *testing.T) {
	const off, chunk = 4096, 4 * pageSize
	run := func(file, stream, flags uint32, from, pages uint64) rstPages {
		return rstPages{FileOff: off + from*pageSize, NrPages: pages, File: file, Stream: stream, Flags: flags}
	}
	for _, c := range []struct {
		name  string
		pages []rstPages
		want  []bool
	}{
		{"all read by the stream", []rstPages{run(0, 0, 0, 0, 5), run(0, 0, rstPagesHuge, 5, 11)},
			[]bool{false, false, false, false}},
		{"a staged run across a chunk boundary", []rstPages{run(0, 0, 0, 0, 3), run(0, 0, rstPagesStaged, 3, 2), run(0, 0, 0, 5, 11)},
			[]bool{true, true, false, false}},
		{"a staged run ending on a boundary", []rstPages{run(0, 0, 0, 0, 4), run(0, 0, rstPagesStaged, 4, 4), run(0, 0, 0, 8, 8)},
			[]bool{false, true, false, false}},
		{"another thread reads a page", []rstPages{run(0, 0, 0, 0, 15), run(0, 1, 0, 15, 1)},
			[]bool{false, false, false, true}},
		{"another file's runs", []rstPages{run(1, 1, rstPagesStaged, 0, 16), run(0, 0, 0, 0, 16)},
			[]bool{false, false, false, false}},
	} {
		if got := verifyNow(c.pages, 0, off, chunk, 4); !slices.Equal(got, c.want) {
			t.Errorf("%s: verified before %v, want %v", c.name, got, c.want)
		}
	}
}
