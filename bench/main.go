//go:build linux

// Command bench measures gocr against the machine's limit for the same work
// and prints one table. Run it as root from the module root:
//
//	make bench                       # builds gocr, then go run ./bench
//	go run ./bench -quick            # 1 GiB rows only, fewer repeats
//
// # What it measures
//
// Memory rows: a C target (c/bigmem.c) holding 1 GiB or 4 GiB of touched,
// pseudo-random memory is dumped to a directory on tmpfs (/dev/shm) and on
// the disk (-disk-dir, /var/tmp by default), then restored with -d. The
// restored process is dumped again in the next round, so the memory is
// filled once per row. Each round also measures, interleaved with gocr and
// alternating which goes first, the limit for the same work in a separate C
// helper (c/limit.c) that holds a buffer filled the same way:
//
//   - dump limit: write() the same number of bytes to a new file in the same
//     directory, then fsync (gocr fsyncs its images), and once more without
//     fsync;
//   - restore limit: read() the image files gocr just wrote (hot in the page
//     cache, as they are for gocr's restore) into freshly mmap'ed anonymous
//     memory.
//
// Verdicts use per-round paired ratios (round i's gocr time over round i's
// limit), not the ratio of the medians: this VM's first-touch memory and
// disk-flush costs swing 2-7x from round to round, and both sides of one
// round mostly see the same conditions, so a pair's ratio is far steadier
// than either series. What a round does not share is order: whichever of
// the two runs second meets the memory the first just used or freed
// (handed back to the host) and often pays 2-3x for it. Rounds alternate
// the order, and the verdict is order-balanced: the geometric mean of the
// median ratio over the rounds gocr ran first and the median ratio over
// the rounds the limit ran first, so a factor k charged to the second
// cancels (r*k and r/k give r). The plain median of all paired ratios and
// the ratio of the medians are still shown and saved. Before a row's timed rounds, -warmup untimed
// rounds (default 1) do the same work so that the VM has handed the guest
// the row's memory once; they are logged and saved under "warmup" only.
//
// The helper is a separate C process rather than a buffer in this Go
// program so that its memory is faulted and filled exactly as the target's
// (same code, no Go heap or GC in the way) and so that this process's own
// RSS stays small while gocr runs next to it.
//
// The page cache is never dropped: writes go to new files (and a sync(2)
// before each timed write flushes what earlier rounds left dirty), and the
// restore is defined as restoring from images still in the page cache —
// the case right after a dump, and the one where gocr's own overhead shows.
//
// Scale rows: processes with N and 2N VMAs and N and 2N open fds are dumped
// and restored, N and 2N alternating, to show how time grows. So are one
// process with N and 2N threads and a tree of N and 2N processes; for
// those each round starts a fresh target, counts the threads and processes
// its restore brings back (a mismatch is the row's error), then kills and
// reaps every restored process by PID.
//
// This process makes itself a child subreaper so that restored processes,
// whose parent (gocr restore) exits, become its children: it can then kill
// them by PID and reap them, and the PID is free again for the next restore
// at once (PID 1 here reaps orphans 1-2 s late, see test/harness_test.go).
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sys/unix"

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
	gocr         string
	pageTransfer string
	pageStreams  int
	diskDir      string
	out          string
	quick        bool
	runs1        int
	runs4        int
	scaleRuns    int
	vmas, fds    int
	threads      int
	procs        int
	skipMemory   bool
	skipScale    bool
	warmup       int
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
	flag.IntVar(&o.warmup, "warmup", 2, "untimed warm-up rounds before each memory row's timed rounds (0: none)")
	flag.Parse()
	if o.warmup < 0 {
		fmt.Fprintln(os.Stderr, "bench: -warmup must be 0 or more")
		os.Exit(2)
	}
	if o.quick {
		o.runs1 = min(o.runs1, quickMemoryRounds)
		o.scaleRuns = min(o.scaleRuns, quickScaleRounds)
	}
	if err := run(&o); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
}

type bench struct {
	o      *options
	bin    string // compiled C programs
	work   string // ready files, fds target's file
	gocr   string
	res    Results
	logOut io.Writer
}

func run(o *options) error {
	if os.Geteuid() != 0 {
		return errors.New("needs root: gocr ptraces its targets and restores with clone3 set_tid")
	}
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
	b := &bench{o: o, bin: bin, work: work, gocr: gocr, logOut: os.Stderr}
	b.res.Date = time.Now().Format(time.RFC3339)
	b.res.Command = strings.Join(os.Args, " ")
	b.res.RatioMethod = ratioMethod
	b.res.WarmupRounds = o.warmup
	b.res.CPUs = runtime.NumCPU()
	var uts unix.Utsname
	if unix.Uname(&uts) == nil {
		b.res.Kernel = unix.ByteSliceToString(uts.Release[:])
	}
	b.res.CPU = cpuModel()

	if !o.skipMemory {
		sizes := []struct{ gib, runs int }{{1, o.runs1}, {4, o.runs4}}
		if o.quick {
			sizes = sizes[:1]
		}
		for _, s := range sizes {
			for _, fs := range []struct{ name, dir string }{{"tmpfs", tmpfsDir}, {"disk", o.diskDir}} {
				row := &MemoryRow{Name: fmt.Sprintf("%d GiB %s", s.gib, fs.name), MiB: s.gib * gib / mib, FS: fs.name, Dir: fs.dir}
				b.res.Memory = append(b.res.Memory, row)
				if err := b.memoryRow(row, s.runs); err != nil {
					row.Err = err.Error()
					b.logf("%s: %v", row.Name, err)
				}
			}
		}
	}
	if !o.skipScale {
		b.scaleRows()
	}
	b.summarize()
	b.checkTargets()
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
	for _, name := range []string{"bigmem", "vmas", "fds", "threads", "tree", "limit"} {
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
