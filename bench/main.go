//go:build linux

// Command bench measures gocr against the machine's limit for the same work
// and prints one table. Run it as root from the module root:
//
//	make bench                       # builds gocr, then go run ./bench
//	go run ./bench -quick            # 1 GiB rows only, fewer rounds
//
// Memory rows (memory.go) dump a process holding 1 or 4 GiB of
// incompressible memory (c/bigmem.c) to tmpfs and to the disk and restore
// it; every round also measures the limit for the same work, a separate C
// process (c/limit.c, limit.go) that write()s as many bytes and read()s
// gocr's images. The verdicts use the order-balanced paired ratio of gocr
// to the limit (ratio.go). Scale rows (scale.go) dump and restore targets
// with N and 2N VMAs, fds, threads and tree processes, to show how the
// time grows. Compression rows (compress.go) write the context of a
// process of realistic memory with each --compress. Stall rows (stall.go)
// measure how long a job writing its memory is stopped by dump
// --leave-running, with and without --snapshot. The table (report.go)
// goes to stdout and every round's
// figures (results.go) to -out; docs/PERFORMANCE.md says what each figure
// means.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/gocr/gocr/internal/childfds"
)

// Binary units, in bytes.
const (
	kib = 1 << 10
	mib = 1 << 20
	gib = 1 << 30
)

const (
	// tmpfsDir is where the tmpfs rows and the scale rows put their
	// images: in memory, so the disk's flushes do not blur them.
	tmpfsDir = "/dev/shm"
	// What -quick keeps: 4 rounds per 1 GiB row (still even, see
	// ratio.go) and 2 per scale row.
	quickMemoryRounds = 4
	quickScaleRounds  = 2
)

// options are the command-line flags.
type options struct {
	gocr            string
	pageTransfer    string
	pageStreams     int
	diskDir         string
	out             string
	quick           bool
	runs1           int
	runs4           int
	scaleRuns       int
	vmas, fds       int
	threads         int
	procs           int
	skipMemory      bool
	skipScale       bool
	skipStall       bool
	stallRuns       int
	stallRows       string
	skipIncr        bool
	incrementalRuns int
	skipTHP         bool
	skipCompress    bool
	compressRuns    int
	warmup          int
}

func main() {
	var o options
	flag.StringVar(&o.gocr, "gocr", "./gocr", "gocr binary to measure")
	flag.StringVar(&o.pageTransfer, "page-transfer", "", "passed to gocr dump --page-transfer (write or splice); empty: gocr's default")
	flag.IntVar(&o.pageStreams, "page-streams", 0, "passed to gocr dump --page-streams (1-4); 0: gocr's default")
	flag.StringVar(&o.diskDir, "disk-dir", "/var/tmp", "directory on the disk for the on-disk rows")
	flag.StringVar(&o.out, "out", "bench/results/latest.json", "where to write the results as JSON")
	flag.BoolVar(&o.quick, "quick", false, fmt.Sprintf("1 GiB rows only, %d runs each, scale rows with %d runs", quickMemoryRounds, quickScaleRounds))
	flag.IntVar(&o.runs1, "runs-1g", 6, "rounds for each 1 GiB row (even: as many gocr-first as limit-first)")
	flag.IntVar(&o.runs4, "runs-4g", 4, "rounds for each 4 GiB row (even: as many gocr-first as limit-first)")
	flag.IntVar(&o.scaleRuns, "runs-scale", 3, "rounds for each scale row")
	flag.IntVar(&o.vmas, "vmas", 10000, "N for the VMA row (also measured at 2N)")
	flag.IntVar(&o.fds, "fds", 2000, "N for the fd row (also measured at 2N)")
	flag.IntVar(&o.threads, "threads", 1000, "N for the thread row: threads in one process (also measured at 2N)")
	flag.IntVar(&o.procs, "procs", 200, "N for the tree row: processes in one tree (also measured at 2N)")
	flag.BoolVar(&o.skipMemory, "skip-memory", false, "skip the memory rows")
	flag.BoolVar(&o.skipScale, "skip-scale", false, "skip the scale, thread and tree rows")
	flag.BoolVar(&o.skipStall, "skip-stall", false, "skip the stall rows (dump --leave-running of a job writing its memory, with and without --snapshot)")
	flag.IntVar(&o.stallRuns, "runs-stall", 4, "rounds for each stall row")
	flag.StringVar(&o.stallRows, "stall-rows", "", "the stall rows to run, comma-separated: 1g, 4g, huge; empty: all")
	flag.BoolVar(&o.skipIncr, "skip-incremental", false, "skip the incremental row (dump --prev of a job writing 5 % of its pages)")
	flag.IntVar(&o.incrementalRuns, "runs-incremental", 4, "incremental dumps in the incremental row")
	flag.BoolVar(&o.skipTHP, "skip-thp", false, "skip the THP row (1 GiB in transparent huge pages)")
	flag.BoolVar(&o.skipCompress, "skip-compress", false, "skip the compression rows")
	flag.IntVar(&o.compressRuns, "runs-compress", 3, "rounds for the compression rows")
	flag.IntVar(&o.warmup, "warmup", 2, "untimed warm-up rounds before each memory row's timed rounds (0: none)")
	flag.Parse()
	if o.warmup < 0 {
		fmt.Fprintln(os.Stderr, "bench: -warmup must be 0 or more")
		os.Exit(2)
	}
	if o.quick {
		o.runs1 = min(o.runs1, quickMemoryRounds)
		o.scaleRuns = min(o.scaleRuns, quickScaleRounds)
		o.compressRuns = min(o.compressRuns, quickScaleRounds)
	}
	if err := run(&o); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
}

// bench is one run: where its programs and files are, and what it found.
type bench struct {
	o      *options
	bin    string // compiled C programs
	work   string // ready files, fds target's file
	gocr   string
	res    Results
	logOut io.Writer
}

// run prepares this process and the programs, runs every row, then
// reports.
func run(o *options) error {
	if os.Geteuid() != 0 {
		return errors.New("needs root: gocr ptraces its targets and restores with clone3 set_tid")
	}
	// Before any child starts: what this process inherited must not
	// reach a target, and restored processes must come back to it.
	if err := childfds.CloseOnExecInherited(); err != nil {
		return err
	}
	if err := becomeSubreaper(); err != nil {
		return err
	}
	gocr, err := filepath.Abs(o.gocr)
	if err != nil {
		return fmt.Errorf("resolve gocr path %s: %w", o.gocr, err)
	}
	if _, err := os.Stat(gocr); err != nil {
		return fmt.Errorf("gocr binary (build it with make build): %w", err)
	}
	bin, err := os.MkdirTemp("", "gocr-bench-bin-")
	if err != nil {
		return fmt.Errorf("temp dir for C programs: %w", err)
	}
	defer os.RemoveAll(bin)
	work, err := os.MkdirTemp(o.diskDir, "gocr-bench-work-")
	if err != nil {
		return fmt.Errorf("work dir under %s: %w", o.diskDir, err)
	}
	defer os.RemoveAll(work)
	if err := compile(bin); err != nil {
		return err
	}
	b := &bench{o: o, bin: bin, work: work, gocr: gocr, res: newResults(o), logOut: os.Stderr}
	if !o.skipMemory {
		b.memoryRows()
	}
	if !o.skipTHP {
		b.thpRow()
	}
	if !o.skipScale {
		b.scaleRows()
	}
	if !o.skipCompress {
		b.compressionRows()
	}
	if !o.skipStall {
		b.stallRows()
	}
	if !o.skipIncr {
		b.incrementalRows()
	}
	b.summarize()
	b.checkTargets()
	b.thpTargets()
	b.checkIncremental()
	b.print(os.Stdout)
	return b.save()
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.logOut, "bench: "+format+"\n", args...)
}

// compile builds every bench/c program with gcc into dir.
func compile(dir string) error {
	src, err := sourceDir()
	if err != nil {
		return err
	}
	for _, name := range []string{"bigmem", "mixedmem", "vmas", "fds", "threads", "tree", "limit", "stall", "incmem"} {
		args := []string{"-O2", "-Wall", "-Werror", "-o", filepath.Join(dir, name), filepath.Join(src, name+".c"), "-lpthread"}
		if out, err := exec.Command("gcc", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("compile bench/c/%s.c: %w\n%s", name, err, out)
		}
	}
	return nil
}

// sourceDir finds bench/c from the working directory: `go run ./bench`
// runs from the module root, `go run .` from bench/.
func sourceDir() (string, error) {
	for _, d := range []string{"bench/c", "c"} {
		if _, err := os.Stat(filepath.Join(d, "limit.c")); err == nil {
			return filepath.Abs(d)
		}
	}
	return "", errors.New("bench/c/limit.c not found: run from the module root")
}
