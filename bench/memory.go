//go:build linux

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// memRound is one memory round's figures: gocr's and the limit's, measured
// interleaved in the same round.
type memRound struct {
	dumpNs, frozenNs, gocrMemoryNs int64
	limitWriteNs, limitWriteNoSync int64
	restoreNs, limitReadNs         int64
	dumpRSSKiB, restoreRSSKiB      int64
	pagesBytes, imageBytes         int64
	pageStreams                    int
	limitFirst                     bool
}

func (r *memRound) dumpRatio() float64    { return ratio(r.dumpNs, r.limitWriteNs) }
func (r *memRound) restoreRatio() float64 { return ratio(r.restoreNs, r.limitReadNs) }

// memoryRow runs o.warmup untimed warm-up rounds, then runs timed rounds,
// on one target and one limit helper. A warm-up round does exactly a timed
// round's work (so that this VM has handed the guest the memory the row
// needs once before anything is timed: its first touch of guest memory
// costs several times a later one); its figures are logged and kept in
// row.Warmup, in nothing else. A timed round is added to the row only
// whole, so every per-round slice pairs up by index.
func (b *bench) memoryRow(row *MemoryRow, runs int) error {
	b.logf("%s: %d warm-up + %d timed rounds", row.Name, b.o.warmup, runs)
	base, err := os.MkdirTemp(row.Dir, "gocr-bench-")
	if err != nil {
		return fmt.Errorf("images dir under %s: %w", row.Dir, err)
	}
	defer os.RemoveAll(base)
	h, err := b.startLimit(row.MiB)
	if err != nil {
		return err
	}
	defer h.stop()
	pid, err := b.startTarget("bigmem", strconv.Itoa(row.MiB))
	if err != nil {
		return err
	}
	defer func() { b.kill(pid) }()

	img := filepath.Join(base, "img")
	limitFile := filepath.Join(base, "limit.bin")
	for i := 0; i < b.o.warmup; i++ {
		r, err := b.memoryRound(h, pid, img, limitFile, i%2 == 0)
		if err != nil {
			return fmt.Errorf("warm-up round %d: %w", i+1, err)
		}
		row.Warmup = append(row.Warmup, WarmupRound{
			DumpNs: r.dumpNs, LimitWriteNs: r.limitWriteNs, LimitWriteNoSync: r.limitWriteNoSync,
			RestoreNs: r.restoreNs, LimitReadNs: r.limitReadNs,
		})
		b.logf("%s: warm-up round %d (not counted): dump %v (limit %v, %.2fx), restore %v (limit %v, %.2fx)",
			row.Name, i+1, ms(r.dumpNs), ms(r.limitWriteNs), r.dumpRatio(),
			ms(r.restoreNs), ms(r.limitReadNs), r.restoreRatio())
	}
	for i := 0; i < runs; i++ {
		// Alternate which goes first so that neither always meets the
		// other's after-effects (dirty pages, freed memory going back to
		// the host).
		r, err := b.memoryRound(h, pid, img, limitFile, i%2 == 0)
		if err != nil {
			return fmt.Errorf("round %d: %w", i+1, err)
		}
		row.DumpNs = append(row.DumpNs, r.dumpNs)
		row.FrozenNs = append(row.FrozenNs, r.frozenNs)
		row.GocrMemoryNs = append(row.GocrMemoryNs, r.gocrMemoryNs)
		row.RestoreNs = append(row.RestoreNs, r.restoreNs)
		row.LimitWriteNs = append(row.LimitWriteNs, r.limitWriteNs)
		row.LimitWriteNoSync = append(row.LimitWriteNoSync, r.limitWriteNoSync)
		row.LimitReadNs = append(row.LimitReadNs, r.limitReadNs)
		row.DumpRatios = append(row.DumpRatios, r.dumpRatio())
		row.RestoreRatios = append(row.RestoreRatios, r.restoreRatio())
		row.LimitFirst = append(row.LimitFirst, r.limitFirst)
		row.DumpMaxRSSKiB = max(row.DumpMaxRSSKiB, r.dumpRSSKiB)
		row.RestoreMaxRSSKiB = max(row.RestoreMaxRSSKiB, r.restoreRSSKiB)
		row.PagesBytes = r.pagesBytes
		row.PageStreams = r.pageStreams
		row.ImageBytes = r.imageBytes
		b.logf("%s: round %d: dump %v (limit %v, %.2fx), restore %v (limit %v, %.2fx)", row.Name, i+1,
			ms(r.dumpNs), ms(r.limitWriteNs), r.dumpRatio(), ms(r.restoreNs), ms(r.limitReadNs), r.restoreRatio())
	}
	return nil
}

// memoryRound dumps pid into img and restores it, and measures the limit
// for the same work with h, interleaved: the limit's write before gocr's
// dump and its read before gocr's restore if limitFirst, after them if
// not. The images are removed afterwards; pid runs again (restored) when it
// returns without error.
func (b *bench) memoryRound(h *limitHelper, pid int, img, limitFile string, limitFirst bool) (*memRound, error) {
	r := &memRound{limitFirst: limitFirst}
	writeLimit := func() error {
		for _, sync := range []bool{true, false} {
			// Flush what earlier steps left dirty so it is not charged to
			// this write.
			unix.Sync()
			arg := "0"
			if sync {
				arg = "1"
			}
			ns, err := h.do("w " + limitFile + " " + arg)
			os.Remove(limitFile)
			if err != nil {
				return err
			}
			if sync {
				r.limitWriteNs = ns
			} else {
				r.limitWriteNoSync = ns
			}
		}
		return nil
	}
	dumpGocr := func() error {
		unix.Sync()
		d, err := b.dump(pid, img)
		if err != nil {
			return err
		}
		r.dumpNs = d.wall.Nanoseconds()
		r.dumpRSSKiB = d.maxRSSKiB
		st, err := readStats(img)
		if err != nil {
			return err
		}
		r.frozenNs = st.FrozenNs
		r.gocrMemoryNs = st.MemoryNs
		r.pagesBytes = st.PagesBytes
		r.pageStreams = st.PageStreams
		return nil
	}
	readLimit := func() error {
		files, size, err := imageFiles(img)
		if err != nil {
			return err
		}
		r.imageBytes = size
		ns, err := h.do("r " + strings.Join(files, " "))
		if err != nil {
			return err
		}
		r.limitReadNs = ns
		return nil
	}
	restoreGocr := func() error {
		rr, err := b.restore(pid, img)
		if err != nil {
			return err
		}
		r.restoreNs = rr.wall.Nanoseconds()
		r.restoreRSSKiB = rr.maxRSSKiB
		return nil
	}
	steps := []func() error{writeLimit, dumpGocr, readLimit, restoreGocr}
	if !limitFirst {
		steps = []func() error{dumpGocr, writeLimit, restoreGocr, readLimit}
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return nil, err
		}
	}
	if err := os.RemoveAll(img); err != nil {
		return nil, fmt.Errorf("remove images %s: %w", img, err)
	}
	return r, nil
}
