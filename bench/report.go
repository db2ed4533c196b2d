//go:build linux

package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// gocr's performance goals, checked against every memory row.
const (
	// maxRatio is the most a dump or a restore may take over the limit
	// for the same work, as a factor.
	maxRatio = 1.1
	// maxRSSMiB bounds gocr's own peak RSS: page data never passes
	// through gocr's memory, so it must not grow with the target's.
	maxRSSMiB = 64
)

// maxCellLen is where a table cell holding an error is cut, so that one
// long error does not push the rest of the table off the screen.
const maxCellLen = 200

// checkTargets checks every memory row that has rounds against the goals.
func (b *bench) checkTargets() {
	defer b.checkStall()
	for _, r := range b.res.Memory {
		if r.Err != "" || len(r.DumpNs) == 0 {
			continue
		}
		dr, rr := r.DumpRatio, r.RestoreRatio
		rss := kibToMiB(max(r.DumpMaxRSSKiB, r.RestoreMaxRSSKiB))
		b.res.Targets = append(b.res.Targets,
			Target{Row: r.Name, Goal: fmt.Sprintf("dump <= %.2fx limit (write+fsync), order-balanced paired ratio", maxRatio),
				Value: dr, Limit: maxRatio, Met: dr <= maxRatio, RatioOfMedians: r.DumpRatioOfMedians},
			Target{Row: r.Name, Goal: fmt.Sprintf("restore <= %.2fx limit (read into fresh memory), order-balanced paired ratio", maxRatio),
				Value: rr, Limit: maxRatio, Met: rr <= maxRatio, RatioOfMedians: r.RestoreRatioOfMedians},
			Target{Row: r.Name, Goal: fmt.Sprintf("gocr peak RSS < %d MiB", maxRSSMiB), Value: rss, Limit: maxRSSMiB, Met: rss < maxRSSMiB},
			Target{Row: r.Name, Goal: "frozen <= dump time", Value: nsToMs(median(r.FrozenNs)),
				Limit: nsToMs(median(r.DumpNs)), Met: median(r.FrozenNs) <= median(r.DumpNs)},
		)
	}
}

// print writes the tables: memory rows, scale rows, then the goals.
func (b *bench) print(w io.Writer) {
	res := &b.res
	fmt.Fprintf(w, "\ngocr benchmark  %s  Linux %s  %d x %s\n", res.Date, res.Kernel, res.CPUs, res.CPU)
	fmt.Fprintf(w, "times in ms, median / best\n")
	if len(res.Memory) > 0 {
		printMemory(w, res)
	}
	if len(res.THP) > 0 {
		printTHP(w, res.THP)
	}
	if len(res.Scale) > 0 {
		printScale(w, res.Scale)
	}
	if len(res.Stall) > 0 {
		printStall(w, res.Stall)
	}
	if len(res.Compression) > 0 {
		printCompression(w, res.Compression)
	}
	if len(res.Incremental) > 0 {
		printIncremental(w, res.Incremental)
	}
	if len(res.Targets) > 0 {
		printTargets(w, res.Targets)
	}
}

func printMemory(w io.Writer, res *Results) {
	fmt.Fprintf(w, "verdicts (PASS/MISS) use the ORDER-BALANCED PAIRED RATIO: per round gocr / limit measured in the same round; the geometric mean\n")
	fmt.Fprintf(w, "of the median over gocr-first rounds and the median over limit-first rounds (range of all rounds in brackets);\n")
	fmt.Fprintf(w, "\"median\" is the plain median of the paired ratios, \"of medians\" median(gocr) / median(limit), for comparison only;\n")
	fmt.Fprintf(w, "%d untimed warm-up round(s) per row before the timed runs\n\n", res.WarmupRounds)
	fmt.Fprintf(w, "| row | runs | dump | limit write+fsync | limit write | dump/limit balanced (verdict) | median | of medians | frozen | restore | limit read | restore/limit balanced (verdict) | median | of medians | image MiB | page streams | gocr RSS MiB dump/restore |\n")
	fmt.Fprintf(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range res.Memory {
		if r.Err != "" && len(r.DumpNs) == 0 {
			fmt.Fprintf(w, "| %s | 0 | error: %s ||||||||||||||||\n", r.Name, oneLine(r.Err))
			continue
		}
		fmt.Fprintf(w, "| %s | %d | %s | %s | %s | %s | %.2fx | %.2fx | %s | %s | %s | %s | %.2fx | %.2fx | %.0f | %d | %.1f / %.1f |\n",
			r.Name, len(r.DumpNs), mb(r.DumpNs), mb(r.LimitWriteNs), mb(r.LimitWriteNoSync),
			pairedCell(r.DumpRatio, r.DumpRatios), r.DumpRatioMedian, r.DumpRatioOfMedians,
			mb(r.FrozenNs), mb(r.RestoreNs), mb(r.LimitReadNs),
			pairedCell(r.RestoreRatio, r.RestoreRatios), r.RestoreRatioMedian, r.RestoreRatioOfMedians,
			float64(r.ImageBytes)/mib, r.PageStreams, kibToMiB(r.DumpMaxRSSKiB), kibToMiB(r.RestoreMaxRSSKiB))
		if r.Err != "" {
			fmt.Fprintf(w, "|  | error after %d rounds: %s ||||||||||||||||\n", len(r.DumpNs), oneLine(r.Err))
		}
	}
	fmt.Fprintln(w)
}

func printScale(w io.Writer, rows []*ScaleRow) {
	fmt.Fprintf(w, "| scale row | N | dump N | dump 2N | 2N/N | frozen N | frozen 2N | restore N | restore 2N | 2N/N |\n")
	fmt.Fprintf(w, "|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		if r.Err != "" && len(r.DumpNs)+len(r.Dump2Ns) == 0 {
			fmt.Fprintf(w, "| %s | %d | error: %s ||||||||\n", r.Name, r.N, oneLine(r.Err))
			continue
		}
		fmt.Fprintf(w, "| %s | %d | %s | %s | %.2f | %s | %s | %s | %s | %.2f |\n", r.Name, r.N,
			mb(r.DumpNs), mb(r.Dump2Ns), ratio(median(r.Dump2Ns), median(r.DumpNs)),
			mb(r.FrozenNs), mb(r.Frozen2Ns),
			mb(r.RestoreNs), mb(r.Restore2), ratio(median(r.Restore2), median(r.RestoreNs)))
		if r.Err != "" {
			fmt.Fprintf(w, "|  | | error after %d+%d rounds (N+2N): %s ||||||||\n", len(r.DumpNs), len(r.Dump2Ns), oneLine(r.Err))
		}
	}
	fmt.Fprintln(w)
	for _, r := range rows {
		if r.Verified != "" {
			fmt.Fprintf(w, "%s: fresh target each round; %s\n", r.Name, r.Verified)
		}
	}
	fmt.Fprintln(w)
}

func printTargets(w io.Writer, targets []Target) {
	fmt.Fprintf(w, "| row | target | measured | goal | | ratio of medians |\n|---|---|---|---|---|---|\n")
	for _, t := range targets {
		rom := ""
		if t.RatioOfMedians != 0 {
			rom = fmt.Sprintf("%.2f", t.RatioOfMedians)
		}
		fmt.Fprintf(w, "| %s | %s | %.2f | %.2f | %s | %s |\n", t.Row, t.Goal, t.Value, t.Limit, verdict(t.Met), rom)
	}
	fmt.Fprintln(w)
}

// pairedCell formats the verdict's ratio, the verdict and, with more
// than one round, the range of the per-round ratios.
func pairedCell(balanced float64, v []float64) string {
	c := fmt.Sprintf("%.2fx %s", balanced, verdict(balanced <= maxRatio))
	if len(v) > 1 {
		c += fmt.Sprintf(" (%.2f–%.2f)", slices.Min(v), slices.Max(v))
	}
	return c
}

func verdict(ok bool) string {
	if ok {
		return "PASS"
	}
	return "MISS"
}

// mb formats median/best of a series in milliseconds.
func mb(v []int64) string {
	if len(v) == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f / %.0f", nsToMs(median(v)), nsToMs(slices.Min(v)))
}

// ms formats one time for the log.
func ms(ns int64) string { return fmt.Sprintf("%.0f ms", nsToMs(ns)) }

func nsToMs(ns int64) float64 { return float64(ns) / float64(time.Millisecond) }

// kibToMiB converts ru_maxrss, which Linux counts in KiB (getrusage(2)).
func kibToMiB(k int64) float64 { return float64(k) * kib / mib }

// oneLine fits an error into one table cell.
func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	s = strings.ReplaceAll(s, "|", "/")
	if len(s) > maxCellLen {
		s = s[:maxCellLen] + "..."
	}
	return s
}
