//go:build linux

package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/gocr/gocr/proc"
)

// maxTHPRatio is the most a restore of memory held in transparent huge
// pages may take over faulting the same memory in huge pages, as a factor:
// the restore also copies every byte in.
const maxTHPRatio = 2.0

// thpSysfs is where the kernel shows its transparent huge page settings
// (Documentation/admin-guide/mm/transhuge.rst).
const thpSysfs = "/sys/kernel/mm/transparent_hugepage"

// THPRow is the THP row: a process whose memory is in transparent huge
// pages, restored from tmpfs, against the same-run limit of faulting that
// much memory in huge pages. Index i of every per-round slice is the same
// round.
type THPRow struct {
	Name         string  `json:"name"`
	MiB          int     `json:"mib"`
	Dir          string  `json:"dir"`
	DumpNs       []int64 `json:"dump_ns"`
	RestoreNs    []int64 `json:"restore_ns"`
	LimitFaultNs []int64 `json:"limit_fault_huge_ns"`
	// Ratios are restore / limit, round by round; LimitFirst[i] says
	// round i faulted the limit's memory before gocr restored.
	Ratios     []float64 `json:"restore_limit_ratios"`
	LimitFirst []bool    `json:"limit_first"`
	// AnonHugePages of the process, in KiB, before each dump and after
	// each restore (smaps).
	DumpedHugeKiB   []int64 `json:"dumped_anon_huge_kib"`
	RestoredHugeKiB []int64 `json:"restored_anon_huge_kib"`
	// The verdict's order-balanced paired ratio, and for comparison the
	// plain median of the paired ratios and the ratio of the medians.
	Ratio          float64 `json:"restore_limit_ratio_balanced"`
	RatioMedian    float64 `json:"restore_limit_ratio_paired_median"`
	RatioOfMedians float64 `json:"restore_limit_ratio_of_medians"`
	Warmup         int     `json:"warmup_rounds"`
	Err            string  `json:"error,omitempty"`
}

// thpRow measures a 1 GiB process (c/bigmem.c "hugepage": madvised
// MADV_HUGEPAGE, so in huge pages) dumped to tmpfs and restored with -d,
// against c/limit.c faulting 1 GiB in huge pages, the two interleaved in
// each round and their order alternated (ratio.go). Where this machine
// has no transparent huge pages for anonymous memory, the row says so
// and is not run.
func (b *bench) thpRow() {
	row := &THPRow{Name: "1 GiB THP tmpfs", MiB: gib / mib, Dir: tmpfsDir, Warmup: b.o.warmup}
	b.res.THP = append(b.res.THP, row)
	if mode := proc.THPMode(); mode != "always" && mode != "madvise" {
		row.Err = fmt.Sprintf("not run: transparent huge pages are %q here (%s)", mode, thpSysfs)
		b.logf("%s: %s", row.Name, row.Err)
		return
	}
	if err := b.runTHPRow(row, b.o.runs1); err != nil {
		row.Err = err.Error()
		b.logf("%s: %v", row.Name, err)
	}
	row.Ratio = balancedRatio(row.Ratios, row.LimitFirst)
	row.RatioMedian = median(row.Ratios)
	row.RatioOfMedians = ratio(median(row.RestoreNs), median(row.LimitFaultNs))
}

func (b *bench) runTHPRow(row *THPRow, runs int) error {
	b.logf("%s: %d warm-up + %d timed rounds", row.Name, b.o.warmup, runs)
	base, err := os.MkdirTemp(row.Dir, "gocr-bench-thp-")
	if err != nil {
		return fmt.Errorf("images dir under %s: %w", row.Dir, err)
	}
	defer os.RemoveAll(base)
	// The limit needs no buffer of its own: it maps its memory per round.
	h, err := b.startLimit(1)
	if err != nil {
		return err
	}
	defer h.stop()
	img := filepath.Join(base, "img")
	for i := 0; i < b.o.warmup+runs; i++ {
		if err := b.thpRound(row, h, img, i); err != nil {
			return err
		}
	}
	return nil
}

// thpRound runs one round on a fresh target: a restored one would hold
// its memory in whatever pages the restore gave it.
func (b *bench) thpRound(row *THPRow, h *limitHelper, img string, i int) error {
	pid, err := b.startTarget("bigmem", strconv.Itoa(row.MiB), "hugepage")
	if err != nil {
		return err
	}
	defer func() { b.kill(pid) }()
	limitFirst := i%2 == 0
	var dumpNs, restoreNs, limitNs, dumped, restored int64
	if dumped, err = anonHugeKiB(pid); err != nil {
		return err
	}
	if dumped == 0 {
		return fmt.Errorf("round %d: the target has no huge pages, though madvised MADV_HUGEPAGE", i+1)
	}
	d, err := b.dump(pid, img)
	if err != nil {
		return err
	}
	dumpNs = d.wall.Nanoseconds()
	limit := func() error {
		limitNs, err = h.faultHuge(row.MiB)
		return err
	}
	restore := func() error {
		r, err := b.restore(pid, img)
		if err != nil {
			return err
		}
		restoreNs = r.wall.Nanoseconds()
		restored, err = anonHugeKiB(pid)
		return err
	}
	steps := []func() error{restore, limit}
	if limitFirst {
		steps = []func() error{limit, restore}
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	if err := os.RemoveAll(img); err != nil {
		return fmt.Errorf("remove images %s: %w", img, err)
	}
	what := "timed"
	if i < b.o.warmup {
		what = "warm-up (not counted)"
	}
	b.logf("%s: round %d, %s: restore %v (limit %v, %.2fx), huge pages %d MiB dumped, %d MiB restored",
		row.Name, i+1, what, ms(restoreNs), ms(limitNs), ratio(restoreNs, limitNs), dumped>>10, restored>>10)
	if i < b.o.warmup {
		return nil
	}
	row.DumpNs = append(row.DumpNs, dumpNs)
	row.RestoreNs = append(row.RestoreNs, restoreNs)
	row.LimitFaultNs = append(row.LimitFaultNs, limitNs)
	row.Ratios = append(row.Ratios, ratio(restoreNs, limitNs))
	row.LimitFirst = append(row.LimitFirst, limitFirst)
	row.DumpedHugeKiB = append(row.DumpedHugeKiB, dumped)
	row.RestoredHugeKiB = append(row.RestoredHugeKiB, restored)
	return nil
}

// faultHuge times faulting mibs MiB of fresh memory in huge pages.
func (h *limitHelper) faultHuge(mibs int) (int64, error) {
	return h.do("f " + strconv.Itoa(mibs))
}

// anonHugeKiB is the sum of AnonHugePages over the mappings of pid (man 5
// proc_pid_smaps).
func anonHugeKiB(pid int) (int64, error) {
	ms, err := proc.ReadMaps(pid)
	if err != nil {
		return 0, err
	}
	var total uint64
	for _, m := range ms {
		total += m.AnonHugeBytes
	}
	return int64(total >> 10), nil
}

// thpTargets checks the THP row against its goals: the restore within
// maxTHPRatio of the limit, and every round's restored process with at
// least the huge pages it had at the dump.
func (b *bench) thpTargets() {
	for _, r := range b.res.THP {
		if len(r.RestoreNs) == 0 {
			continue
		}
		kept := true
		minKept := 1.0
		for i := range r.RestoredHugeKiB {
			if r.RestoredHugeKiB[i] < r.DumpedHugeKiB[i] {
				kept = false
			}
			if r.DumpedHugeKiB[i] > 0 {
				minKept = min(minKept, float64(r.RestoredHugeKiB[i])/float64(r.DumpedHugeKiB[i]))
			}
		}
		b.res.Targets = append(b.res.Targets,
			Target{Row: r.Name, Goal: fmt.Sprintf("restore <= %.2fx limit (fault the same memory in huge pages), order-balanced paired ratio", maxTHPRatio),
				Value: r.Ratio, Limit: maxTHPRatio, Met: r.Ratio <= maxTHPRatio, RatioOfMedians: r.RatioOfMedians},
			Target{Row: r.Name, Goal: "restored AnonHugePages >= dumped, every round (lowest restored/dumped)",
				Value: minKept, Limit: 1, Met: kept},
		)
	}
}

// printTHP writes the THP row's table.
func printTHP(w io.Writer, rows []*THPRow) {
	fmt.Fprintf(w, "| THP row | runs | dump | restore | limit: fault in huge pages | restore/limit balanced (verdict) | median | of medians | AnonHugePages MiB dumped / restored (lowest) |\n")
	fmt.Fprintf(w, "|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		if len(r.RestoreNs) == 0 {
			fmt.Fprintf(w, "| %s | 0 | %s ||||||||\n", r.Name, oneLine(r.Err))
			continue
		}
		cell := fmt.Sprintf("%.2fx %s (%.2f–%.2f)", r.Ratio, verdict(r.Ratio <= maxTHPRatio), slices.Min(r.Ratios), slices.Max(r.Ratios))
		fmt.Fprintf(w, "| %s | %d | %s | %s | %s | %s | %.2fx | %.2fx | %d / %d |\n", r.Name, len(r.RestoreNs),
			mb(r.DumpNs), mb(r.RestoreNs), mb(r.LimitFaultNs), cell, r.RatioMedian, r.RatioOfMedians,
			slices.Min(r.DumpedHugeKiB)>>10, slices.Min(r.RestoredHugeKiB)>>10)
		if r.Err != "" {
			fmt.Fprintf(w, "|  | error after %d rounds: %s ||||||||\n", len(r.RestoreNs), oneLine(r.Err))
		}
	}
	fmt.Fprintln(w)
}
