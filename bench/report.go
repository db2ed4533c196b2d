//go:build linux

package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
)

const (
	mib = 1 << 20
	// Targets from issue 4.
	maxRatio  = 1.25
	maxRSSKiB = 64 * 1024
)

func best(v []int64) int64 {
	if len(v) == 0 {
		return 0
	}
	return slices.Min(v)
}

func last(v []int64) int64 {
	if len(v) == 0 {
		return 0
	}
	return v[len(v)-1]
}

func ms(ns int64) string { return fmt.Sprintf("%.0f ms", float64(ns)/1e6) }

// mb formats median/best of a series in milliseconds.
func mb(v []int64) string {
	if len(v) == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f / %.0f", float64(median(v))/1e6, float64(best(v))/1e6)
}

func verdict(ok bool) string {
	if ok {
		return "PASS"
	}
	return "MISS"
}

func (b *bench) checkTargets() {
	for _, r := range b.res.Memory {
		if r.Err != "" || len(r.DumpNs) == 0 {
			continue
		}
		dr, rr := r.DumpRatio, r.RestoreRatio
		rss := float64(max(r.DumpMaxRSSKiB, r.RestoreMaxRSSKiB)) / 1024
		b.res.Targets = append(b.res.Targets,
			Target{Row: r.Name, Goal: "dump <= 1.25x limit (write+fsync), order-balanced paired ratio",
				Value: dr, Limit: maxRatio, Met: dr <= maxRatio, RatioOfMedians: r.DumpRatioOfMedians},
			Target{Row: r.Name, Goal: "restore <= 1.25x limit (read into fresh memory), order-balanced paired ratio",
				Value: rr, Limit: maxRatio, Met: rr <= maxRatio, RatioOfMedians: r.RestoreRatioOfMedians},
			Target{Row: r.Name, Goal: "gocr peak RSS < 64 MiB", Value: rss, Limit: maxRSSKiB / 1024, Met: rss < maxRSSKiB/1024},
			Target{Row: r.Name, Goal: "frozen <= dump time", Value: float64(median(r.FrozenNs)) / 1e6,
				Limit: float64(median(r.DumpNs)) / 1e6, Met: median(r.FrozenNs) <= median(r.DumpNs)},
		)
	}
}

// pairedCell formats the verdict's ratio, the verdict and, with more
// than one round, the range of the per-round ratios.
func pairedCell(med float64, v []float64) string {
	c := fmt.Sprintf("%.2fx %s", med, verdict(med <= maxRatio))
	if len(v) > 1 {
		c += fmt.Sprintf(" (%.2f–%.2f)", slices.Min(v), slices.Max(v))
	}
	return c
}

func (b *bench) print(w io.Writer) {
	res := &b.res
	fmt.Fprintf(w, "\ngocr benchmark  %s  Linux %s  %d x %s\n", res.Date, res.Kernel, res.CPUs, res.CPU)
	fmt.Fprintf(w, "times in ms, median / best\n")
	if len(res.Memory) > 0 {
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
				float64(r.ImageBytes)/mib, r.PageStreams, float64(r.DumpMaxRSSKiB)/1024, float64(r.RestoreMaxRSSKiB)/1024)
			if r.Err != "" {
				fmt.Fprintf(w, "|  | error after %d rounds: %s ||||||||||||||||\n", len(r.DumpNs), oneLine(r.Err))
			}
		}
		fmt.Fprintln(w)
	}
	if len(res.Scale) > 0 {
		fmt.Fprintf(w, "| scale row | N | dump N | dump 2N | 2N/N | frozen N | frozen 2N | restore N | restore 2N | 2N/N |\n")
		fmt.Fprintf(w, "|---|---|---|---|---|---|---|---|---|---|\n")
		for _, r := range res.Scale {
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
		for _, r := range res.Scale {
			if r.Verified != "" {
				fmt.Fprintf(w, "%s: fresh target each round; %s\n", r.Name, r.Verified)
			}
		}
		fmt.Fprintln(w)
	}
	if len(res.Targets) > 0 {
		fmt.Fprintf(w, "| row | target | measured | goal | | ratio of medians |\n|---|---|---|---|---|---|\n")
		for _, t := range res.Targets {
			rom := ""
			if t.RatioOfMedians != 0 {
				rom = fmt.Sprintf("%.2f", t.RatioOfMedians)
			}
			fmt.Fprintf(w, "| %s | %s | %.2f | %.2f | %s | %s |\n", t.Row, t.Goal, t.Value, t.Limit, verdict(t.Met), rom)
		}
		fmt.Fprintln(w)
	}
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	s = strings.ReplaceAll(s, "|", "/")
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}
