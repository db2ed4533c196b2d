//go:build linux

package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// Incremental rows: a job of 1 or 4 GiB (c/incmem.c) is dumped with
// --leave-running --track, then, each round, writes one word into 5 % of
// its pages and is dumped with --prev the dump before, with its
// copy-on-write snapshot in even rounds and without (--snapshot=false)
// in odd ones. What each
// incremental dump writes is compared with the pages written; the job's
// own clock thread measures how long it was kept from running during the
// dump (frozen while its state is read, its pages scanned and its
// copy-on-write snapshot taken; the pages are written from the snapshot
// after).

// incrementalPercent is the share of its pages the job writes between
// two dumps.
const incrementalPercent = 5

// incrementalGoal bounds the page data an incremental dump writes,
// against the pages the job wrote since its parent.
const incrementalGoal = 1.1

// IncrementalRow is one job size; index i of every per-round slice is
// incremental dump i.
type IncrementalRow struct {
	Name         string   `json:"name"`
	MiB          int      `json:"mib"`
	Percent      int      `json:"percent"`
	FullNs       int64    `json:"full_dump_ns"` // the first dump, --track
	FullFrozenNs int64    `json:"full_frozen_ns"`
	FullBytes    int64    `json:"full_bytes"`
	WrittenPages []int64  `json:"written_pages"` // by the job since the parent
	DumpBytes    []int64  `json:"dump_bytes"`    // page data the incremental dump wrote
	ReusedBytes  []int64  `json:"reused_bytes"`  // taken from the parent instead
	DumpNs       []int64  `json:"dump_ns"`
	FrozenNs     []int64  `json:"frozen_ns"`
	PagemapNs    []int64  `json:"pagemap_ns"` // pagemap read and write scan, while frozen
	ForkNs       []int64  `json:"fork_ns"`    // of the frozen time, the snapshot's fork
	GapNs        []int64  `json:"gap_ns"`     // longest stall the job saw
	Snapshot     []bool   `json:"snapshot"`   // the round's dump took a snapshot
	Full         []string `json:"full,omitempty"`
	Err          string   `json:"error,omitempty"`
}

func (b *bench) incrementalRows() {
	sizes := []int{4096}
	if b.o.quick {
		sizes = []int{1024}
	}
	for _, mib := range sizes {
		row := &IncrementalRow{Name: fmt.Sprintf("%d GiB, %d %% written", mib/1024, incrementalPercent), MiB: mib, Percent: incrementalPercent}
		b.res.Incremental = append(b.res.Incremental, row)
		if err := b.incrementalRow(row, b.o.incrementalRuns); err != nil {
			row.Err = err.Error()
			b.logf("%s: %v", row.Name, err)
		}
	}
}

func (b *bench) incrementalRow(row *IncrementalRow, runs int) error {
	pid, err := b.startTarget("incmem", strconv.Itoa(row.MiB), strconv.Itoa(row.Percent))
	if err != nil {
		return err
	}
	defer b.kill(pid)
	ready := filepath.Join(b.work, "incmem.ready")
	base, err := os.MkdirTemp(tmpfsDir, "gocr-bench-incremental-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(base)
	gen := func(i int) string { return filepath.Join(base, fmt.Sprintf("gen%d", i)) }
	r, err := b.runGocr("dump", "-t", strconv.Itoa(pid), "-D", gen(0), "--leave-running", "--track")
	if err != nil {
		return err
	}
	st, err := readStats(gen(0))
	if err != nil {
		return err
	}
	row.FullNs, row.FullFrozenNs, row.FullBytes = r.wall.Nanoseconds(), st.FrozenNs, st.PagesBytes
	for i := 1; i <= runs; i++ {
		if err := b.stallSignal(pid, ready, "written", unix.SIGUSR1); err != nil {
			return err
		}
		written, err := readNumber(ready + ".written")
		if err != nil {
			return err
		}
		snapshot := i%2 == 0
		r, err := b.runGocr("dump", "-t", strconv.Itoa(pid), "-D", gen(i), "--leave-running", "--prev", gen(i-1),
			"--snapshot="+strconv.FormatBool(snapshot))
		if err != nil {
			return err
		}
		gap, err := b.stallGap(pid, ready)
		if err != nil {
			return err
		}
		st, err := readStats(gen(i))
		if err != nil {
			return err
		}
		row.WrittenPages = append(row.WrittenPages, written)
		row.DumpBytes = append(row.DumpBytes, st.PagesBytes)
		row.ReusedBytes = append(row.ReusedBytes, st.IncrementalReusedBytes)
		row.DumpNs = append(row.DumpNs, r.wall.Nanoseconds())
		row.FrozenNs = append(row.FrozenNs, st.FrozenNs)
		row.PagemapNs = append(row.PagemapNs, st.PagemapNs)
		row.ForkNs = append(row.ForkNs, st.SnapshotNs)
		row.GapNs = append(row.GapNs, gap)
		row.Snapshot = append(row.Snapshot, snapshot)
		row.Full = append(row.Full, st.IncrementalFull...)
		b.reapSnapshots()
		b.logf("%s round %d snapshot=%v: %d pages written, dump wrote %d bytes (%.2fx), stall %s, frozen %s (collect %s, pagemap+scan %s, infect %s, fork %s; before the freeze: scan %s)", row.Name, i,
			snapshot, written, st.PagesBytes, float64(st.PagesBytes)/float64(written*4096), ms(gap), ms(st.FrozenNs),
			ms(st.CollectNs), ms(st.PagemapNs), ms(st.InfectNs), ms(st.SnapshotNs), ms(st.PreScanNs))
		// Only the parent of the next dump is read: the rest go.
		if i >= 2 {
			os.RemoveAll(gen(i - 2))
		}
	}
	return nil
}

// of lists the figures of the rounds with a snapshot (or without).
func (r *IncrementalRow) of(v []int64, snapshot bool) []int64 {
	var out []int64
	for i, x := range v {
		if i < len(r.Snapshot) && r.Snapshot[i] == snapshot {
			out = append(out, x)
		}
	}
	return out
}

// ratios are each round's page data written over the pages the job
// wrote.
func (r *IncrementalRow) ratios() []float64 {
	var out []float64
	for i := range r.DumpBytes {
		if r.WrittenPages[i] > 0 {
			out = append(out, float64(r.DumpBytes[i])/float64(r.WrittenPages[i]*4096))
		}
	}
	return out
}

func printIncremental(w io.Writer, rows []*IncrementalRow) {
	fmt.Fprintf(w, "\nincremental dumps (--leave-running --prev) of a job writing %d %% of its pages between dumps (median / best, ms);\n", incrementalPercent)
	fmt.Fprintf(w, "stall: the longest gap the job's own clock thread saw during the dump; full: its first dump, with --track\n\n")
	fmt.Fprintf(w, "| row | rounds | written MiB | dump wrote MiB | wrote/written | stall, snapshot | frozen, snapshot | stall, plain | frozen, plain | of it pagemap+scan | of it fork | dump | full dump | full frozen | full MiB |\n")
	fmt.Fprintf(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		if r.Err != "" {
			fmt.Fprintf(w, "| %s | error: %s |\n", r.Name, oneLine(r.Err))
			continue
		}
		var written []int64
		for _, p := range r.WrittenPages {
			written = append(written, p*4096)
		}
		fmt.Fprintf(w, "| %s | %d | %.0f | %.0f | %.3f | %s | %s | %s | %s | %s | %s | %s | %.0f | %.0f | %.0f |\n", r.Name, len(r.DumpBytes),
			float64(median(written))/mib, float64(median(r.DumpBytes))/mib, median(r.ratios()),
			mb(r.of(r.GapNs, true)), mb(r.of(r.FrozenNs, true)), mb(r.of(r.GapNs, false)), mb(r.of(r.FrozenNs, false)),
			mb(r.PagemapNs), mb(r.of(r.ForkNs, true)), mb(r.DumpNs),
			nsToMs(r.FullNs), nsToMs(r.FullFrozenNs), float64(r.FullBytes)/mib)
	}
}

// checkIncremental adds the incremental goals: the page data written
// against the pages written, and the stall against the stall goal of
// the same size (stall.go).
func (b *bench) checkIncremental() {
	for _, r := range b.res.Incremental {
		if r.Err != "" || len(r.DumpBytes) == 0 {
			continue
		}
		ratio := median(r.ratios())
		b.res.Targets = append(b.res.Targets, Target{Row: r.Name,
			Goal:  fmt.Sprintf("incremental dump writes <= %.1fx the pages written (median)", incrementalGoal),
			Value: ratio, Limit: incrementalGoal, Met: ratio <= incrementalGoal && len(r.Full) == 0})
		if goal, ok := stallGoalMs[r.MiB]; ok && len(r.of(r.GapNs, true)) > 0 {
			v := nsToMs(median(r.of(r.GapNs, true)))
			b.res.Targets = append(b.res.Targets, Target{Row: r.Name,
				Goal:  fmt.Sprintf("longest stall of an incremental dump with its snapshot <= %.0f ms (median)", goal),
				Value: v, Limit: goal, Met: v <= goal})
		}
	}
}
