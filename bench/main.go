//go:build linux

// Command bench measures gocr against the machine's limit for the same work
// and prints one table (issue 4). Run it as root from the module root:
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
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/dump"
	"github.com/gocr/gocr/internal/childfds"
)

const (
	readyTimeout = 120 * time.Second
	gocrTimeout  = 300 * time.Second
	mib          = 1 << 20
	// Targets from issue 4.
	maxRatio  = 1.25
	maxRSSKiB = 64 * 1024
	// reapTimeout bounds the wait for one killed process to be reaped.
	reapTimeout = 10 * time.Second
	// ratioMethod is what the memory rows' dump/limit and restore/limit
	// verdicts are computed from.
	ratioMethod = "order-balanced paired ratio: geometric mean of the median per-round ratio (gocr / limit in the same round) over gocr-first rounds and over limit-first rounds"
)

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
	flag.BoolVar(&o.quick, "quick", false, "1 GiB rows only, 4 runs each, scale rows with 2 runs")
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
		o.runs1 = min(o.runs1, 4)
		o.scaleRuns = min(o.scaleRuns, 2)
	}
	if err := run(&o); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
}

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
	WarmupRounds int          `json:"warmup_rounds"`
	Memory       []*MemoryRow `json:"memory"`
	Scale        []*ScaleRow  `json:"scale"`
	Targets      []Target     `json:"targets"`
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
// stats-dump.json.
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

// Target is one of issue 4's goals, checked against one row.
type Target struct {
	Row   string  `json:"row"`
	Goal  string  `json:"goal"`
	Value float64 `json:"value"`
	Limit float64 `json:"limit"`
	Met   bool    `json:"met"`
	// RatioOfMedians is, for the ratio targets (whose Value is the
	// median of the per-round paired ratios), median(gocr)/median(limit).
	RatioOfMedians float64 `json:"ratio_of_medians,omitempty"`
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
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("become child subreaper: %w", err)
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
		sizes := []struct{ mib, runs int }{{1024, o.runs1}, {4096, o.runs4}}
		if o.quick {
			sizes = sizes[:1]
		}
		for _, s := range sizes {
			for _, fs := range []struct{ name, dir string }{{"tmpfs", "/dev/shm"}, {"disk", o.diskDir}} {
				row := &MemoryRow{Name: fmt.Sprintf("%d GiB %s", s.mib/1024, fs.name), MiB: s.mib, FS: fs.name, Dir: fs.dir}
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

// ---- processes ----

// startTarget runs a bench/c program with stdio on /dev/null (so that
// restore reopens them by path) and waits for its ready file.
func (b *bench) startTarget(name string, args ...string) (int, error) {
	ready := filepath.Join(b.work, name+".ready")
	os.Remove(ready)
	cmd := exec.Command(filepath.Join(b.bin, name), append([]string{ready}, args...)...)
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start %s: %w", name, err)
	}
	pid := cmd.Process.Pid
	deadline := time.Now().Add(readyTimeout)
	for {
		if _, err := os.Stat(ready); err == nil {
			return pid, nil
		}
		var ws unix.WaitStatus
		if p, _ := unix.Wait4(pid, &ws, unix.WNOHANG, nil); p == pid {
			return 0, fmt.Errorf("target %s %v exited before it was ready: %v", name, args, ws)
		}
		if time.Now().After(deadline) {
			b.kill(pid)
			return 0, fmt.Errorf("target %s %v not ready after %v", name, args, readyTimeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// kill kills one of this process's children by PID and reaps it. Only PIDs
// it started or that a restore reparented to it qualify: anything else is
// left alone.
func (b *bench) kill(pid int) {
	if ppid, err := parentOf(pid); err != nil || ppid != os.Getpid() {
		return
	}
	unix.Kill(pid, unix.SIGKILL)
	var ws unix.WaitStatus
	unix.Wait4(pid, &ws, 0, nil)
}

func parentOf(pid int) (int, error) {
	_, ppid, err := statOf(pid)
	return ppid, err
}

// statOf reads a process's state letter and parent from /proc/PID/stat.
func statOf(pid int) (state byte, ppid int, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	// The command name may hold spaces and parentheses; fields after the
	// last ')' are fixed: state, ppid.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 2 || len(f[0]) != 1 {
		return 0, 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	ppid, err = strconv.Atoi(f[1])
	return f[0][0], ppid, err
}

// gocrRun is one gocr command's outcome.
type gocrRun struct {
	wall      time.Duration
	maxRSSKiB int64
	output    string
}

// runGocr runs gocr with its output in a file, not a pipe: a restored
// process that took over gocr's stdio would otherwise hold the pipe open and
// keep the wait from returning.
func (b *bench) runGocr(args ...string) (*gocrRun, error) {
	out, err := os.CreateTemp(b.work, "gocr-out-")
	if err != nil {
		return nil, fmt.Errorf("gocr output file: %w", err)
	}
	defer os.Remove(out.Name())
	defer out.Close()
	ctx, cancel := context.WithTimeout(context.Background(), gocrTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, b.gocr, args...)
	cmd.Stdout, cmd.Stderr = out, out
	start := time.Now()
	runErr := cmd.Run()
	r := &gocrRun{wall: time.Since(start)}
	if cmd.ProcessState != nil {
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			r.maxRSSKiB = ru.Maxrss // KiB on Linux, getrusage(2)
		}
	}
	text, _ := os.ReadFile(out.Name())
	r.output = strings.TrimSpace(string(text))
	if runErr != nil {
		return r, fmt.Errorf("gocr %s: %w: %s", strings.Join(args, " "), runErr, r.output)
	}
	return r, nil
}

// dump dumps pid into dir (the dump kills it) and reaps it, so that its PID
// is free for the restore.
func (b *bench) dump(pid int, dir string) (*gocrRun, error) {
	args := []string{"dump", "-t", strconv.Itoa(pid), "-D", dir}
	if b.o.pageTransfer != "" {
		args = append(args, "--page-transfer", b.o.pageTransfer)
	}
	if b.o.pageStreams != 0 {
		args = append(args, "--page-streams", strconv.Itoa(b.o.pageStreams))
	}
	r, err := b.runGocr(args...)
	if err != nil {
		return r, err
	}
	var ws unix.WaitStatus
	if _, err := unix.Wait4(pid, &ws, 0, nil); err != nil {
		return r, fmt.Errorf("reap dumped process %d: %w", pid, err)
	}
	return r, nil
}

// restore restores from dir with -d and checks that pid runs again, as
// this process's child (gocr restore exited, so the restored process was
// reparented to this subreaper).
func (b *bench) restore(pid int, dir string) (*gocrRun, error) {
	r, err := b.runGocr("restore", "-D", dir, "-d")
	if err != nil {
		return r, err
	}
	if ppid, err := parentOf(pid); err != nil || ppid != os.Getpid() {
		return r, fmt.Errorf("restored process %d is not running as this bench's child (ppid %d, %v)", pid, ppid, err)
	}
	return r, nil
}

// ---- limit helper ----

type limitHelper struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
}

func (b *bench) startLimit(mibs int) (*limitHelper, error) {
	cmd := exec.Command(filepath.Join(b.bin, "limit"), strconv.Itoa(mibs))
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("limit helper stdin: %w", err)
	}
	outPipe, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("limit helper stdout: %w", err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start limit helper: %w", err)
	}
	h := &limitHelper{cmd: cmd, in: in, out: bufio.NewReader(outPipe)}
	line, err := h.out.ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready" {
		h.stop()
		return nil, fmt.Errorf("limit helper did not start: %q %v", line, err)
	}
	return h, nil
}

func (h *limitHelper) do(cmd string) (int64, error) {
	if _, err := fmt.Fprintln(h.in, cmd); err != nil {
		return 0, fmt.Errorf("limit helper %q: %w", cmd, err)
	}
	line, err := h.out.ReadString('\n')
	if err != nil {
		return 0, fmt.Errorf("limit helper %q: %w", cmd, err)
	}
	ns, err := strconv.ParseInt(strings.TrimSpace(line), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("limit helper %q: %s", cmd, strings.TrimSpace(line))
	}
	return ns, nil
}

func (h *limitHelper) stop() {
	h.in.Close()
	h.cmd.Wait()
}

// ---- memory rows ----

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

// readStats reads the figures gocr's dump measured itself.
func readStats(dir string) (*dump.Stats, error) {
	p := filepath.Join(dir, "stats-dump.json")
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("read dump stats: %w", err)
	}
	var s dump.Stats
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("parse %s: %w", p, err)
	}
	return &s, nil
}

// imageFiles lists the image files gocr wrote (not its stats) and their
// total size.
func imageFiles(dir string) ([]string, int64, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, 0, fmt.Errorf("list images: %w", err)
	}
	var files []string
	var total int64
	for _, e := range entries {
		if !e.Type().IsRegular() || e.Name() == "stats-dump.json" {
			continue
		}
		info, err := e.Info()
		if err != nil {
			return nil, 0, fmt.Errorf("stat image %s: %w", e.Name(), err)
		}
		files = append(files, filepath.Join(dir, e.Name()))
		total += info.Size()
	}
	return files, total, nil
}

// ---- scale rows ----

// scaleSpec is one scale row: a bench/c program run at N and 2N.
type scaleSpec struct {
	name, prog string
	n          int
	args       func(n int) []string
	// want, when set, is the shape a target of size n has and its restore
	// must bring back. Such rows start a fresh target every round and end
	// every restored process by PID after the round (freshScaleRow); the
	// others dump and restore one target per size throughout (scaleRow).
	want func(n int) shape
}

// shape is how many threads the root and how many processes the tree has.
type shape struct{ threads, procs int }

func (b *bench) scaleRows() {
	nArg := func(n int) []string { return []string{strconv.Itoa(n)} }
	fdsFile := filepath.Join(b.work, "fds.dat")
	fdsErr := os.WriteFile(fdsFile, make([]byte, 64<<10), 0o644)
	specs := []scaleSpec{
		{name: "VMAs", prog: "vmas", n: b.o.vmas, args: nArg},
		{name: "open fds", prog: "fds", n: b.o.fds, args: func(n int) []string { return []string{strconv.Itoa(n), fdsFile} }},
		{name: "threads in 1 process", prog: "threads", n: b.o.threads, args: nArg,
			want: func(n int) shape { return shape{n, 1} }},
		{name: "processes in 1 tree", prog: "tree", n: b.o.procs, args: nArg,
			want: func(n int) shape { return shape{1, n} }},
	}
	for _, s := range specs {
		row := &ScaleRow{Name: s.name, N: s.n}
		b.res.Scale = append(b.res.Scale, row)
		var err error
		switch {
		case s.prog == "fds" && fdsErr != nil:
			err = fmt.Errorf("create %s: %w", fdsFile, fdsErr)
		case s.want != nil:
			err = b.freshScaleRow(row, s)
		default:
			err = b.scaleRow(row, s.prog, s.args)
		}
		if err != nil {
			row.Err = err.Error()
			b.logf("%s: %v", s.name, err)
		}
	}
}

func (b *bench) scaleRow(row *ScaleRow, prog string, args func(int) []string) error {
	b.logf("%s: N=%d and 2N, %d rounds", row.Name, row.N, b.o.scaleRuns)
	base, err := os.MkdirTemp("/dev/shm", "gocr-bench-")
	if err != nil {
		return fmt.Errorf("images dir: %w", err)
	}
	defer os.RemoveAll(base)
	var pids [2]int
	for i, n := range []int{row.N, 2 * row.N} {
		pid, err := b.startTarget(prog, args(n)...)
		if err != nil {
			return err
		}
		pids[i] = pid
		defer func() { b.kill(pid) }()
	}
	dumps := [2]*[]int64{&row.DumpNs, &row.Dump2Ns}
	frozen := [2]*[]int64{&row.FrozenNs, &row.Frozen2Ns}
	restores := [2]*[]int64{&row.RestoreNs, &row.Restore2}
	for round := 0; round < b.o.scaleRuns; round++ {
		for j := 0; j < 2; j++ {
			i := j
			if round%2 == 1 {
				i = 1 - j
			}
			img := filepath.Join(base, "img")
			d, err := b.dump(pids[i], img)
			if err != nil {
				return err
			}
			st, err := readStats(img)
			if err != nil {
				return err
			}
			r, err := b.restore(pids[i], img)
			if err != nil {
				return err
			}
			*dumps[i] = append(*dumps[i], d.wall.Nanoseconds())
			*frozen[i] = append(*frozen[i], st.FrozenNs)
			*restores[i] = append(*restores[i], r.wall.Nanoseconds())
			os.RemoveAll(img)
		}
	}
	return nil
}

// freshScaleRow measures a thread or tree row: every round, at N and at 2N
// (alternating which goes first), a fresh target is dumped and restored,
// the restore is checked, and every process is ended by PID.
func (b *bench) freshScaleRow(row *ScaleRow, s scaleSpec) error {
	b.logf("%s: N=%d and 2N, %d rounds", row.Name, row.N, b.o.scaleRuns)
	base, err := os.MkdirTemp("/dev/shm", "gocr-bench-")
	if err != nil {
		return fmt.Errorf("images dir: %w", err)
	}
	defer os.RemoveAll(base)
	series := [2]struct{ dump, frozen, restore *[]int64 }{
		{&row.DumpNs, &row.FrozenNs, &row.RestoreNs},
		{&row.Dump2Ns, &row.Frozen2Ns, &row.Restore2},
	}
	for round := 0; round < b.o.scaleRuns; round++ {
		for j := 0; j < 2; j++ {
			i := j
			if round%2 == 1 {
				i = 1 - j
			}
			n := row.N << i
			img := filepath.Join(base, "img")
			d, f, r, err := b.freshRound(s, n, img)
			os.RemoveAll(img)
			if err != nil {
				return fmt.Errorf("round %d, N=%d: %w", round+1, n, err)
			}
			*series[i].dump = append(*series[i].dump, d)
			*series[i].frozen = append(*series[i].frozen, f)
			*series[i].restore = append(*series[i].restore, r)
			b.logf("%s: round %d, N=%d: dump %v (frozen %v), restore %v, restored shape verified",
				row.Name, round+1, n, ms(d), ms(f), ms(r))
		}
	}
	w1, w2 := s.want(row.N), s.want(2*row.N)
	what := fmt.Sprintf("%d (N) / %d (2N) live processes back with the dumped PIDs", w1.procs, w2.procs)
	if w1.threads != w2.threads {
		what = fmt.Sprintf("%d (N) / %d (2N) threads back in the process, same PID", w1.threads, w2.threads)
	}
	row.Verified = "every restore checked: " + what + "; then every process killed and reaped by PID"
	return nil
}

// freshRound starts the target at size n, dumps it (the dump ends every
// process of it), reaps them all so their PIDs are free, restores with -d,
// checks that the root has the threads and the tree the processes (the
// same PIDs) it had, and ends every restored process by PID. It returns
// the dump's wall time, gocr's frozen time, and the restore's wall time;
// nothing of the target runs when it returns, whatever went wrong.
func (b *bench) freshRound(s scaleSpec, n int, img string) (dumpNs, frozenNs, restoreNs int64, err error) {
	want := s.want(n)
	root, err := b.startTarget(s.prog, s.args(n)...)
	if err != nil {
		return 0, 0, 0, err
	}
	pids := treeOf(root)
	live := pids // what is left to end: the original, then the restored tree
	defer func() {
		if e := b.endTree(live); e != nil && err == nil {
			err = e
		}
		if e := b.endStray(); e != nil && err == nil {
			err = e
		}
	}()
	if got := shapeOf(root, pids); got != want {
		return 0, 0, 0, fmt.Errorf("target %s %d started with %d threads in the root, %d live processes; want %d, %d",
			s.prog, n, got.threads, got.procs, want.threads, want.procs)
	}
	d, err := b.runGocr("dump", "-t", strconv.Itoa(root), "-D", img)
	if err != nil {
		return 0, 0, 0, err
	}
	// gocr killed them all and waited until they exited: reap each.
	live = nil
	if err := b.endTree(pids); err != nil {
		return 0, 0, 0, fmt.Errorf("after the dump: %w", err)
	}
	st, err := readStats(img)
	if err != nil {
		return 0, 0, 0, err
	}
	r, restoreErr := b.runGocr("restore", "-D", img, "-d")
	// gocr restore has exited, so a restored root is this subreaper's
	// child; end whatever came back, even after a failed restore.
	if ppid, err := parentOf(root); err == nil && ppid == os.Getpid() {
		live = treeOf(root)
	}
	if restoreErr != nil {
		return 0, 0, 0, restoreErr
	}
	if live == nil {
		return 0, 0, 0, fmt.Errorf("restore exited 0 but root %d is not running as this bench's child", root)
	}
	if got := shapeOf(root, live); got != want {
		return 0, 0, 0, fmt.Errorf("restore brought back %d threads in the root, %d live processes; want %d, %d",
			got.threads, got.procs, want.threads, want.procs)
	}
	if got, dumped := slices.Sorted(slices.Values(live)), slices.Sorted(slices.Values(pids)); !slices.Equal(got, dumped) {
		return 0, 0, 0, fmt.Errorf("restore brought back %d processes but not the dumped PIDs", len(live))
	}
	return d.wall.Nanoseconds(), st.FrozenNs, r.wall.Nanoseconds(), nil
}

// treeOf lists root and its descendants, breadth-first, root first.
func treeOf(root int) []int {
	pids := []int{root}
	for i := 0; i < len(pids); i++ {
		pids = append(pids, childrenOf(pids[i])...)
	}
	return pids
}

// shapeOf counts the threads of root and the live processes of its tree:
// a zombie is listed as a child too, but the bench targets have none, so a
// zombie there is a process that died.
func shapeOf(root int, tree []int) shape {
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", root))
	live := 0
	for _, pid := range tree {
		if st, _, err := statOf(pid); err == nil && st != 'Z' && st != 'X' {
			live++
		}
	}
	return shape{len(tasks), live}
}

// endTree kills every process of a tree listed by treeOf, each by PID and
// children first, then reaps each, root first: the root is this process's
// child, and every other process is reparented to this child subreaper
// when its parent exits, so by the time its parent is reaped it can be
// reaped here. A PID is only killed while its parent is this process or
// another process of the tree, so a PID reused by someone else is never
// touched. It fails if a process cannot be reaped.
func (b *bench) endTree(pids []int) error {
	me := os.Getpid()
	in := make(map[int]bool, len(pids))
	for _, p := range pids {
		in[p] = true
	}
	for _, pid := range slices.Backward(pids) {
		if ppid, err := parentOf(pid); err == nil && (ppid == me || in[ppid]) {
			unix.Kill(pid, unix.SIGKILL)
		}
	}
	for _, pid := range pids {
		if err := reap(pid); err != nil {
			return err
		}
	}
	return nil
}

// reap waits for one killed process to be reaped by this process. A PID
// that is gone already counts as reaped.
func reap(pid int) error {
	deadline := time.Now().Add(reapTimeout)
	for {
		var ws unix.WaitStatus
		p, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil)
		switch {
		case p == pid:
			return nil
		case errors.Is(err, unix.ECHILD):
			// Not (yet) this process's child: its parent has not
			// exited yet, or it is gone.
			if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); errors.Is(err, os.ErrNotExist) {
				return nil
			}
		case err != nil && !errors.Is(err, unix.EINTR):
			return fmt.Errorf("reap %d: %w", pid, err)
		}
		if time.Now().After(deadline) {
			ppid, _ := parentOf(pid)
			return fmt.Errorf("process %d (parent %d) not reaped %v after it was killed", pid, ppid, reapTimeout)
		}
		time.Sleep(time.Millisecond)
	}
}

// endStray checks that this process has no child left, live or zombie,
// once a round is over (no other target or helper runs during the thread
// and tree rows): a restored process outside the restored tree, or one not
// reaped, would show here. It ends and reaps any it finds and reports them.
func (b *bench) endStray() error {
	stray := childrenOf(os.Getpid())
	if len(stray) == 0 {
		return nil
	}
	for _, pid := range stray {
		b.endTree(treeOf(pid))
	}
	return fmt.Errorf("processes %v were left after the round", stray)
}

func childrenOf(pid int) []int {
	var out []int
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	for _, t := range tasks {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", pid, t.Name()))
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(data)) {
			if c, err := strconv.Atoi(f); err == nil {
				out = append(out, c)
			}
		}
	}
	return out
}

// ---- reporting ----

// median of a series of times or of ratios.
func median[T int64 | float64](v []T) T {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

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

func ratio(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

func verdict(ok bool) string {
	if ok {
		return "PASS"
	}
	return "MISS"
}

// summarize sets each memory row's ratios from its rounds: the median of
// the per-round paired ratios, which the verdicts use, and the ratio of
// the medians, kept for comparison.
// balancedRatio is the geometric mean of the median ratio over the rounds
// the limit ran first and over those gocr ran first; with rounds of one
// order only, their median.
func balancedRatio(ratios []float64, limitFirst []bool) float64 {
	var lf, gf []float64
	for i, r := range ratios {
		if i < len(limitFirst) && limitFirst[i] {
			lf = append(lf, r)
		} else {
			gf = append(gf, r)
		}
	}
	if len(lf) == 0 || len(gf) == 0 {
		return median(ratios)
	}
	return math.Sqrt(median(lf) * median(gf))
}

func (b *bench) summarize() {
	for _, r := range b.res.Memory {
		r.DumpRatio = balancedRatio(r.DumpRatios, r.LimitFirst)
		r.RestoreRatio = balancedRatio(r.RestoreRatios, r.LimitFirst)
		r.DumpRatioMedian = median(r.DumpRatios)
		r.RestoreRatioMedian = median(r.RestoreRatios)
		r.DumpRatioOfMedians = ratio(median(r.DumpNs), median(r.LimitWriteNs))
		r.RestoreRatioOfMedians = ratio(median(r.RestoreNs), median(r.LimitReadNs))
	}
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
