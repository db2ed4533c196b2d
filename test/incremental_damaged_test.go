//go:build linux

package test

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/gocr/gocr/images"
)

// TestIncrementalParentDamaged: a chunk of the parent dump's page image
// that the incremental dump takes whole from it, damaged, fails the
// restore naming the parent's image and the bytes: the restorer finds it
// as it reads the pages in, and the restore leaves no process, and the
// job's log as it was. The same chain intact restores.
func TestIncrementalParentDamaged(t *testing.T) {
	needsGocr(t)
	tg := startTarget(t, "incwriter")
	base := t.TempDir()
	parent, child := filepath.Join(base, "gen0"), filepath.Join(base, "gen1")
	dump(t, tg.pid, parent, "--leave-running", "--track")
	incwriterRound(t, tg, 1)
	dump(t, tg.pid, child, "--prev", parent)
	tg.waitDead(t, "a dump without --leave-running")

	img, off := inheritedChunk(t, parent, child, tg.pid)
	intact, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	bad := append([]byte(nil), intact...)
	bad[off+images.DataChunkSize/2] ^= 0x20
	if err := os.WriteFile(img, bad, 0o600); err != nil {
		t.Fatal(err)
	}
	log := readLog(t, tg)
	r := runGocr(t, nil, "restore", "-D", child, "-d")
	assertRefused(t, r, []string{"parent dump", filepath.Base(img), "page data bytes", "checksum mismatch"}, nil)
	assertNoProcess(t, tg.pid)
	if now := readLog(t, tg); now != log {
		t.Fatalf("the job's log changed during the failed restore: the restored process ran\n%s", now[len(log):])
	}

	if err := os.WriteFile(img, intact, 0o600); err != nil {
		t.Fatal(err)
	}
	checkResult(t, tg, restoreDetached(t, tg, child, nil))
}

// inheritedChunk finds a chunk of a page image of pid in the dump parent
// that the incremental dump child takes whole from it, and returns the
// image's path and the chunk's file offset.
func inheritedChunk(t *testing.T, parent, child string, pid int) (string, int64) {
	t.Helper()
	ranges := func(dir string) []*rangeOf {
		d, err := images.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		rs, err := d.ReadPagemap(pid)
		if err != nil {
			t.Fatal(err)
		}
		var out []*rangeOf
		offs := map[uint32]int64{}
		for _, r := range rs {
			n := int64(r.GetNrPages()) * 4096
			out = append(out, &rangeOf{start: r.GetVaddr(), end: r.GetVaddr() + uint64(n), stream: r.GetStream(), off: offs[r.GetStream()], fromParent: r.GetFromParent()})
			if !r.GetFromParent() {
				offs[r.GetStream()] += n
			}
		}
		return out
	}
	// The bytes of each parent stream the child takes.
	taken := map[uint32][][2]int64{}
	for _, c := range ranges(child) {
		if !c.fromParent {
			continue
		}
		for _, p := range ranges(parent) {
			lo, hi := max(c.start, p.start), min(c.end, p.end)
			if p.fromParent || lo >= hi {
				continue
			}
			from := p.off + int64(lo-p.start)
			taken[p.stream] = append(taken[p.stream], [2]int64{from, from + int64(hi-lo)})
		}
	}
	// The first such chunk, by stream and offset, so that a run can be
	// repeated. The target's 8 and 4 MiB regions, untouched between the
	// two dumps, always hold one.
	const chunk = images.DataChunkSize
	for _, stream := range slices.Sorted(maps.Keys(taken)) {
		covered := map[int64]int64{}
		for _, s := range taken[stream] {
			for c := s[0] / chunk; c*chunk < s[1]; c++ {
				covered[c] += min(s[1], (c+1)*chunk) - max(s[0], c*chunk)
			}
		}
		for _, c := range slices.Sorted(maps.Keys(covered)) {
			if covered[c] == chunk {
				name := fmt.Sprintf("pages-%d.img", pid)
				if stream > 0 {
					name = fmt.Sprintf("pages-%d.%d.img", pid, stream)
				}
				return filepath.Join(parent, name), images.PagesDataOffset + c*chunk
			}
		}
	}
	t.Fatalf("the incremental dump takes no whole chunk of the parent's page images: %v", taken)
	return "", 0
}

// rangeOf is a page range of a page map, with where its data starts in
// its stream's page data.
type rangeOf struct {
	start, end uint64
	stream     uint32
	off        int64
	fromParent bool
}
