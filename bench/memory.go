//go:build linux

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// memoryRows measures one row per size and file system: a process holding
// 1 GiB (and, without -quick, 4 GiB) of incompressible memory
// (c/bigmem.c) is dumped to tmpfs and to the disk (-disk-dir) and restored
// with -d. The restored process is dumped again in the next round, so the
// memory is filled once per row. A row that fails keeps its error and the
// rounds it finished; the next row runs anyway.
func (b *bench) memoryRows() {
	sizes := []struct{ gib, runs int }{{1, b.o.runs1}, {4, b.o.runs4}}
	if b.o.quick {
		sizes = sizes[:1]
	}
	for _, s := range sizes {
		for _, fs := range []struct{ name, dir string }{{"tmpfs", tmpfsDir}, {"disk", b.o.diskDir}} {
			row := &MemoryRow{Name: fmt.Sprintf("%d GiB %s", s.gib, fs.name), MiB: s.gib * gib / mib, FS: fs.name, Dir: fs.dir}
			b.res.Memory = append(b.res.Memory, row)
			if err := b.memoryRow(row, s.runs); err != nil {
				row.Err = err.Error()
				b.logf("%s: %v", row.Name, err)
			}
		}
	}
}

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
// row.Warmup, in nothing else.
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
		// the host); ratio.go balances what is left.
		r, err := b.memoryRound(h, pid, img, limitFile, i%2 == 0)
		if err != nil {
			return fmt.Errorf("round %d: %w", i+1, err)
		}
		row.add(r)
		b.logf("%s: round %d: dump %v (limit %v, %.2fx), restore %v (limit %v, %.2fx)", row.Name, i+1,
			ms(r.dumpNs), ms(r.limitWriteNs), r.dumpRatio(), ms(r.restoreNs), ms(r.limitReadNs), r.restoreRatio())
	}
	return nil
}

// add appends a timed round to the row. A round is added only whole, so
// index i of every per-round slice is the same round.
func (row *MemoryRow) add(r *memRound) {
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
}

// memoryRound dumps pid into img and restores it, and measures the limit
// for the same work with h, interleaved: the limit's write before gocr's
// dump and its read before gocr's restore if limitFirst, after them if
// not. The images are removed afterwards; pid runs again (restored) when it
// returns without error.
//
// The limit's write goes to a new file in the same directory, with fsync
// (gocr fsyncs its images) and once more without. Before each write and
// before the dump, sync(2) flushes what earlier steps left dirty, so that
// it is not charged to the next. The page cache is never dropped: the
// restore is measured from images still in it, the case right after a
// dump, and the limit read()s those same hot files.
func (b *bench) memoryRound(h *limitHelper, pid int, img, limitFile string, limitFirst bool) (*memRound, error) {
	r := &memRound{limitFirst: limitFirst}
	writeLimit := func() error {
		for _, fsync := range []bool{true, false} {
			unix.Sync()
			ns, err := h.write(limitFile, fsync)
			os.Remove(limitFile)
			if err != nil {
				return err
			}
			if fsync {
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
		r.limitReadNs, err = h.read(files)
		return err
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
