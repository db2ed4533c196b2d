//go:build linux

package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Results is what bench/results/*.json holds.
type Results struct {
	Date    string `json:"date"`
	Kernel  string `json:"kernel"`
	CPU     string `json:"cpu"`
	CPUs    int    `json:"cpus"`
	Command string `json:"command"`
	// RatioMethod says which ratio the memory rows' verdicts use.
	RatioMethod string `json:"ratio_method"`
	// WarmupRounds is the -warmup flag: untimed rounds before each
	// memory row's timed rounds.
	WarmupRounds int               `json:"warmup_rounds"`
	Memory       []*MemoryRow      `json:"memory"`
	THP          []*THPRow         `json:"thp,omitempty"`
	Scale        []*ScaleRow       `json:"scale"`
	Compression  []*CompressionRow `json:"compression,omitempty"`
	Stall        []*StallRow       `json:"stall,omitempty"`
	Incremental  []*IncrementalRow `json:"incremental,omitempty"`
	Targets      []Target          `json:"targets"`
}

// CompressionRow is one --compress (compress.go): per round, the time to
// write the context of the same process to tmpfs, the disk and a pipe,
// and to read the tmpfs one back.
type CompressionRow struct {
	Name         string  `json:"name"`
	MiB          int     `json:"mib"`
	RawBytes     int64   `json:"raw_bytes"`     // the context uncompressed
	ContextBytes int64   `json:"context_bytes"` // as written
	TmpfsWriteNs []int64 `json:"tmpfs_write_ns"`
	DiskWriteNs  []int64 `json:"disk_write_ns"`
	PipeWriteNs  []int64 `json:"pipe_write_ns,omitempty"`
	ReadNs       []int64 `json:"read_ns,omitempty"`
	// The context of the same images written to io.Discard in the
	// bench's process: wall and CPU time (getrusage RUSAGE_SELF).
	CompressNs    []int64 `json:"compress_alone_ns,omitempty"`
	CompressCPUNs []int64 `json:"compress_alone_cpu_ns,omitempty"`
	Err           string  `json:"error,omitempty"`
}

// MemoryRow holds every timed round's figures; the table shows median and
// best. Index i of every per-round slice is the same round, so
// DumpNs[i]/LimitWriteNs[i] is round i's paired ratio.
type MemoryRow struct {
	Name             string  `json:"name"`
	MiB              int     `json:"mib"`
	FS               string  `json:"fs"`
	Dir              string  `json:"dir"`
	DumpNs           []int64 `json:"dump_ns"`
	FrozenNs         []int64 `json:"frozen_ns"`
	GocrMemoryNs     []int64 `json:"gocr_memory_ns"`
	RestoreNs        []int64 `json:"restore_ns"`
	LimitWriteNs     []int64 `json:"limit_write_fsync_ns"`
	LimitWriteNoSync []int64 `json:"limit_write_nofsync_ns"`
	LimitReadNs      []int64 `json:"limit_read_ns"`
	ImageBytes       int64   `json:"image_bytes"`
	PagesBytes       int64   `json:"pages_bytes"`
	PageStreams      int     `json:"page_streams"`
	DumpMaxRSSKiB    int64   `json:"dump_max_rss_kib"`
	RestoreMaxRSSKiB int64   `json:"restore_max_rss_kib"`
	// Per-round paired ratios: gocr over the limit measured in the same
	// round (dump over write+fsync, restore over read).
	DumpRatios    []float64 `json:"dump_limit_ratios"`
	RestoreRatios []float64 `json:"restore_limit_ratios"`
	// LimitFirst[i] says round i ran the limit before gocr.
	LimitFirst []bool `json:"limit_first"`
	// The verdicts use the order-balanced paired ratio (balancedRatio);
	// the plain median of the paired ratios and the ratio of the
	// medians, median(gocr)/median(limit), are kept for comparison.
	DumpRatio             float64 `json:"dump_limit_ratio_balanced"`
	DumpRatioMedian       float64 `json:"dump_limit_ratio_paired_median"`
	DumpRatioOfMedians    float64 `json:"dump_limit_ratio_of_medians"`
	RestoreRatio          float64 `json:"restore_limit_ratio_balanced"`
	RestoreRatioMedian    float64 `json:"restore_limit_ratio_paired_median"`
	RestoreRatioOfMedians float64 `json:"restore_limit_ratio_of_medians"`
	// Warmup holds the untimed warm-up rounds run before the timed ones
	// (-warmup). They are in no median, ratio, RSS or verdict.
	Warmup []WarmupRound `json:"warmup,omitempty"`
	Err    string        `json:"error,omitempty"`
}

// WarmupRound is one warm-up round's figures, kept only to show what the
// warm-up cost.
type WarmupRound struct {
	DumpNs           int64 `json:"dump_ns"`
	LimitWriteNs     int64 `json:"limit_write_fsync_ns"`
	LimitWriteNoSync int64 `json:"limit_write_nofsync_ns"`
	RestoreNs        int64 `json:"restore_ns"`
	LimitReadNs      int64 `json:"limit_read_ns"`
}

// ScaleRow is one dimension at N and 2N. Frozen times are gocr's own, from
// its dump.StatsFile.
type ScaleRow struct {
	Name      string  `json:"name"`
	N         int     `json:"n"`
	DumpNs    []int64 `json:"dump_ns_n"`
	FrozenNs  []int64 `json:"frozen_ns_n"`
	RestoreNs []int64 `json:"restore_ns_n"`
	Dump2Ns   []int64 `json:"dump_ns_2n"`
	Frozen2Ns []int64 `json:"frozen_ns_2n"`
	Restore2  []int64 `json:"restore_ns_2n"`
	// Verified says what was checked after every restore, for the rows
	// that count what came back.
	Verified string `json:"verified,omitempty"`
	Err      string `json:"error,omitempty"`
}

// Target is one of gocr's performance goals, checked against one row.
type Target struct {
	Row   string  `json:"row"`
	Goal  string  `json:"goal"`
	Value float64 `json:"value"`
	Limit float64 `json:"limit"`
	Met   bool    `json:"met"`
	// RatioOfMedians is, for the ratio targets (whose Value is the
	// order-balanced paired ratio), median(gocr)/median(limit).
	RatioOfMedians float64 `json:"ratio_of_medians,omitempty"`
}

// newResults starts a run's results with what it ran on and how.
func newResults(o *options) Results {
	res := Results{
		Date:         time.Now().Format(time.RFC3339),
		Command:      strings.Join(os.Args, " "),
		RatioMethod:  ratioMethod,
		WarmupRounds: o.warmup,
		CPUs:         runtime.NumCPU(),
		CPU:          cpuModel(),
	}
	var uts unix.Utsname
	if unix.Uname(&uts) == nil {
		res.Kernel = unix.ByteSliceToString(uts.Release[:])
	}
	return res
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// save writes the results as JSON to -out.
func (b *bench) save() error {
	data, err := json.MarshalIndent(&b.res, "", "  ")
	if err != nil {
		return fmt.Errorf("encode results: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(b.o.out), 0o755); err != nil {
		return fmt.Errorf("results dir: %w", err)
	}
	if err := os.WriteFile(b.o.out, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	fmt.Printf("results written to %s\n", b.o.out)
	return nil
}
