//go:build linux

package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/dump"
	"github.com/gocr/gocr/proc"
)

// Stall rows: how long a job that keeps writing its memory is kept from
// running by a dump --leave-running, measured by the job itself
// (c/stall.c: the longest gap between two of its clock readings, one per
// page written). Each round measures the same job dumped without and with
// --snapshot, in alternating order, and the same span of time with no
// dump (what the machine's other load alone costs), and two limits: one
// fork(2) of a process of the same memory (a snapshot copies the page
// tables once), run apart from the job so that both never hold the
// memory at once; and the job's own fork of a copy that writes its
// memory out beside it as a snapshot is written (c/stall.c copy=), what
// any copy-on-write snapshot written while the job runs costs it here.

// Goals for the longest stall with --snapshot, by row size: the fork of
// the page tables plus a few ms (docs/PERFORMANCE.md).
var stallGoalMs = map[int]float64{1024: 40, 4096: 120}

// hugeStallGoalMs is the goal where the memory is in transparent huge
// pages: the fork copies one page-table entry per 2 MiB, so nearly all of
// the stall is gocr's own.
const hugeStallGoalMs = 5.0

// maxFrozenBeyondForkMs bounds what a snapshot dump keeps the job frozen
// for besides the fork itself: freeze, /proc, parasite, cure.
const maxFrozenBeyondForkMs = 10.0

// StallRow is one job size's rounds; index i of every slice is round i.
type StallRow struct {
	Name string `json:"name"`
	MiB  int    `json:"mib"`
	Huge bool   `json:"huge,omitempty"`
	// HugeKiB is the job's AnonHugePages before each dump with a
	// snapshot (Huge rows).
	HugeKiB []int64 `json:"anon_huge_kib,omitempty"`
	// Huge pages only: the job's AnonHugePages once that dump is done
	// (its writes split each huge page the snapshot shared), and the
	// longest stall of a second dump with --snapshot of the same job,
	// what a periodic checkpoint's next one costs.
	HugeAfterKiB  []int64 `json:"anon_huge_after_kib,omitempty"`
	AgainGapNs    []int64 `json:"snapshot_again_gap_ns,omitempty"`
	PlainGapNs    []int64 `json:"plain_gap_ns"`
	PlainFrozenNs []int64 `json:"plain_frozen_ns"`
	SnapGapNs     []int64 `json:"snapshot_gap_ns"`
	SnapFrozenNs  []int64 `json:"snapshot_frozen_ns"`
	SnapForkNs    []int64 `json:"snapshot_fork_ns"`
	SnapCopied    []int64 `json:"snapshot_copied_bytes"`
	SnapDumpNs    []int64 `json:"snapshot_dump_ns"`
	// SnapStealNs is the time the host took the machine's CPUs away
	// (/proc/stat steal, summed over them) while the job's stall was
	// measured around each dump with --snapshot: a virtual CPU the host
	// runs something else on stalls the job on it with no dump's doing.
	SnapStealNs []int64 `json:"snapshot_steal_ns,omitempty"`
	// Where each dump with --snapshot's stall went: the job's gaps of
	// 1 ms or more, "start+length" in ms from the start of the
	// measurement (one of them is the freeze), and the time the job
	// waited on a run queue meanwhile (/proc/PID/schedstat, its second
	// value: Documentation/scheduler/sched-stats.rst), which a gap
	// beyond the freeze with no such wait is not the scheduler's.
	SnapGaps      []string `json:"snapshot_gaps,omitempty"`
	SnapRunWaitNs []int64  `json:"snapshot_run_wait_ns,omitempty"`
	IdleGapNs     []int64  `json:"idle_gap_ns"`
	IdleGaps      []string `json:"idle_gaps,omitempty"` // as SnapGaps
	IdleRunWaitNs []int64  `json:"idle_run_wait_ns,omitempty"`
	LimitForkNs   []int64  `json:"limit_fork_ns"`
	// The copy limit's rounds: the job's longest gap while its forked
	// copy wrote its memory to tmpfs, its gaps (as SnapGaps), the
	// copy's time and the host's steal meanwhile.
	LimitCopyGapNs []int64  `json:"limit_copy_gap_ns,omitempty"`
	LimitCopyGaps  []string `json:"limit_copy_gaps,omitempty"`
	LimitCopyNs    []int64  `json:"limit_copy_ns,omitempty"`
	LimitCopySteal []int64  `json:"limit_copy_steal_ns,omitempty"`
	SnapshotFrozen []string `json:"snapshot_frozen,omitempty"`
	Err            string   `json:"error,omitempty"`
}

func (b *bench) stallRows() {
	sizes := []int{1024, 4096}
	if b.o.quick {
		sizes = sizes[:1]
	}
	rows := []*StallRow{}
	for _, mib := range sizes {
		rows = append(rows, &StallRow{Name: fmt.Sprintf("%d GiB writing", mib/1024), MiB: mib})
	}
	rows = append(rows, &StallRow{Name: "1 GiB huge pages writing", MiB: 1024, Huge: true})
	if b.o.stallRows != "" {
		want := strings.Split(b.o.stallRows, ",")
		rows = slices.DeleteFunc(rows, func(r *StallRow) bool { return !slices.Contains(want, r.key()) })
	}
	for _, row := range rows {
		b.res.Stall = append(b.res.Stall, row)
		if row.Huge {
			if mode := proc.THPMode(); mode != "always" && mode != "madvise" {
				row.Err = fmt.Sprintf("not run: transparent huge pages are %q here (%s)", mode, thpSysfs)
				b.logf("%s: %s", row.Name, row.Err)
				continue
			}
		}
		if err := b.stallRow(row, b.o.stallRuns); err != nil {
			row.Err = err.Error()
			b.logf("%s: %v", row.Name, err)
		}
	}
}

// key names row for -stall-rows: 1g, 4g or huge.
func (r *StallRow) key() string {
	if r.Huge {
		return "huge"
	}
	return fmt.Sprintf("%dg", r.MiB/1024)
}

// copyPath is where the stall target's copy limit writes the memory: on
// the file system the dumps write to.
var copyPath = filepath.Join(tmpfsDir, "gocr-bench-stall-copy")

// stallArgs are the stall target's arguments for row.
func stallArgs(row *StallRow, extra ...string) []string {
	args := append([]string{strconv.Itoa(row.MiB)}, extra...)
	if row.Huge {
		args = append(args, "hugepage")
	}
	return args
}

func (b *bench) stallRow(row *StallRow, runs int) error {
	for i := 0; i < runs; i++ {
		ns, err := b.forkLimit(row)
		if err != nil {
			return err
		}
		row.LimitForkNs = append(row.LimitForkNs, ns)
	}
	pid, err := b.startTarget("stall", stallArgs(row, "copy="+copyPath)...)
	if err != nil {
		return err
	}
	defer func() { b.kill(pid) }()
	defer os.Remove(copyPath)
	ready := filepath.Join(b.work, "stall.ready")
	for i := 0; i < runs; i++ {
		for _, snapshot := range []bool{i%2 == 0, i%2 != 0} {
			if row.Huge && snapshot {
				// The job's first write to each huge page the snapshot
				// shares splits it (mm/huge_memory.c
				// do_huge_pmd_wp_page): every snapshot round starts
				// from a fresh job, all in huge pages.
				if pid, err = b.freshStallJob(pid, row); err != nil {
					return err
				}
				kib, err := anonHugeKiB(pid)
				if err != nil {
					return err
				}
				if kib < int64(row.MiB)<<10/2 {
					return fmt.Errorf("round %d: the job has %d MiB in huge pages of %d madvised MADV_HUGEPAGE", i+1, kib>>10, row.MiB)
				}
				row.HugeKiB = append(row.HugeKiB, kib)
			}
			wait0 := runWaitNs(pid)
			gap, st, wall, steal, err := b.stallRound(pid, ready, snapshot)
			if err != nil {
				return err
			}
			if snapshot {
				row.SnapRunWaitNs = append(row.SnapRunWaitNs, runWaitNs(pid)-wait0)
				row.SnapGaps = append(row.SnapGaps, readGaps(ready+".gaps"))
				row.SnapGapNs = append(row.SnapGapNs, gap)
				row.SnapFrozenNs = append(row.SnapFrozenNs, st.FrozenNs)
				row.SnapForkNs = append(row.SnapForkNs, st.SnapshotNs)
				row.SnapCopied = append(row.SnapCopied, st.SnapshotCopiedBytes)
				row.SnapDumpNs = append(row.SnapDumpNs, wall.Nanoseconds())
				row.SnapStealNs = append(row.SnapStealNs, steal)
				row.SnapshotFrozen = append(row.SnapshotFrozen, st.SnapshotFrozen...)
				if row.Huge {
					kib, err := anonHugeKiB(pid)
					if err != nil {
						return err
					}
					row.HugeAfterKiB = append(row.HugeAfterKiB, kib)
					again, _, _, _, err := b.stallRound(pid, ready, true)
					if err != nil {
						return err
					}
					row.AgainGapNs = append(row.AgainGapNs, again)
				}
			} else {
				row.PlainGapNs = append(row.PlainGapNs, gap)
				row.PlainFrozenNs = append(row.PlainFrozenNs, st.FrozenNs)
			}
			b.logf("%s round %d snapshot=%v: longest stall %s, frozen %s", row.Name, i, snapshot, ms(gap), ms(st.FrozenNs))
			if snapshot {
				b.logf("  gaps (ms from start+length): %s; waited on a run queue %.2f ms, host steal %.0f ms",
					row.SnapGaps[len(row.SnapGaps)-1], nsToMs(row.SnapRunWaitNs[len(row.SnapRunWaitNs)-1]), nsToMs(steal))
			}
		}
		// The machine alone, for as long as a snapshot dump took.
		if err := b.stallSignal(pid, ready, "armed", unix.SIGUSR1); err != nil {
			return err
		}
		wait0 := runWaitNs(pid)
		time.Sleep(time.Duration(row.SnapDumpNs[len(row.SnapDumpNs)-1]))
		gap, err := b.stallGap(pid, ready)
		if err != nil {
			return err
		}
		row.IdleGapNs = append(row.IdleGapNs, gap)
		row.IdleGaps = append(row.IdleGaps, readGaps(ready+".gaps"))
		row.IdleRunWaitNs = append(row.IdleRunWaitNs, runWaitNs(pid)-wait0)
		b.logf("%s round %d idle: longest gap %.2f ms; gaps: %s; waited on a run queue %.2f ms", row.Name, i, nsToMs(gap),
			row.IdleGaps[len(row.IdleGaps)-1], nsToMs(row.IdleRunWaitNs[len(row.IdleRunWaitNs)-1]))
		// The copy limit, from a job all in huge pages where the row
		// has them, as each snapshot round starts.
		if row.Huge {
			if pid, err = b.freshStallJob(pid, row); err != nil {
				return err
			}
		}
		if err := b.copyLimitRound(pid, ready, row); err != nil {
			return err
		}
		b.logf("%s round %d copy limit: longest gap %.2f ms; gaps: %s; the copy took %s, host steal %.0f ms", row.Name, i,
			nsToMs(row.LimitCopyGapNs[i]), row.LimitCopyGaps[i], ms(row.LimitCopyNs[i]), nsToMs(row.LimitCopySteal[i]))
	}
	return nil
}

// freshStallJob replaces the stall job pid with a new one of row's
// memory, all in huge pages where the row has them: the job's first
// write to each huge page a snapshot shares splits it (mm/huge_memory.c
// do_huge_pmd_wp_page).
func (b *bench) freshStallJob(pid int, row *StallRow) (int, error) {
	b.kill(pid)
	return b.startTarget("stall", stallArgs(row, "copy="+copyPath)...)
}

// copyLimitRound measures the copy limit once: the job forks a copy of
// itself that writes its memory to copyPath (c/stall.c, SIGHUP), and the
// job's longest gap from the fork until the copy is reaped and as long
// again as a dump's end takes past its writing is recorded.
func (b *bench) copyLimitRound(pid int, ready string, row *StallRow) error {
	defer os.Remove(copyPath)
	if err := b.stallSignal(pid, ready, "armed", unix.SIGUSR1); err != nil {
		return err
	}
	steal0 := stealNs()
	os.Remove(ready + ".copied")
	if err := unix.Kill(pid, unix.SIGHUP); err != nil {
		return fmt.Errorf("signal stall target %d: %w", pid, err)
	}
	// Writing 4 GiB out takes seconds, the more on a slow day.
	if err := waitForFile(ready+".copied", 2*time.Minute); err != nil {
		return fmt.Errorf("stall target %d's copy: %w", pid, err)
	}
	copyNs, err := readNumber(ready + ".copied")
	if err != nil {
		return err
	}
	gap, err := b.stallGap(pid, ready)
	if err != nil {
		return err
	}
	row.LimitCopyGapNs = append(row.LimitCopyGapNs, gap)
	row.LimitCopyGaps = append(row.LimitCopyGaps, readGaps(ready+".gaps"))
	row.LimitCopyNs = append(row.LimitCopyNs, copyNs)
	row.LimitCopySteal = append(row.LimitCopySteal, stealNs()-steal0)
	return nil
}

// stallRound dumps the writing job once with --leave-running (and
// --snapshot) to tmpfs and returns the longest gap the job saw meanwhile.
func (b *bench) stallRound(pid int, ready string, snapshot bool) (gap int64, st *dump.Stats, wall time.Duration, steal int64, err error) {
	dir, err := os.MkdirTemp(tmpfsDir, "gocr-bench-stall-")
	if err != nil {
		return 0, nil, 0, 0, err
	}
	defer os.RemoveAll(dir)
	if err := b.stallSignal(pid, ready, "armed", unix.SIGUSR1); err != nil {
		return 0, nil, 0, 0, err
	}
	steal0 := stealNs()
	args := []string{"dump", "-t", strconv.Itoa(pid), "-D", dir, "--leave-running", "--snapshot=" + strconv.FormatBool(snapshot)}
	r, err := b.runGocr(args...)
	if err != nil {
		return 0, nil, 0, 0, err
	}
	b.reapSnapshots()
	if st, err = readStats(dir); err != nil {
		return 0, nil, 0, 0, err
	}
	gap, err = b.stallGap(pid, ready)
	return gap, st, r.wall, stealNs() - steal0, err
}

// stealNs is the machine's steal time so far, over all its CPUs: the
// 8th value of /proc/stat's cpu line, in USER_HZ ticks (man 5 proc;
// 100 a second on x86-64); 0 where it cannot be read.
func stealNs() int64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0
	}
	ticks, err := strconv.ParseInt(f[8], 10, 64)
	if err != nil {
		return 0
	}
	return ticks * int64(time.Second/100)
}

// runWaitNs is the time pid has waited on a run queue so far: the
// second value of /proc/PID/schedstat, in ns
// (Documentation/scheduler/sched-stats.rst); 0 where it cannot be read.
func runWaitNs(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/schedstat", pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	ns, _ := strconv.ParseInt(f[1], 10, 64)
	return ns
}

// readGaps reads the stall target's long gaps (c/stall.c) as
// "start+length" in ms, space-separated.
func readGaps(path string) string {
	b, _ := os.ReadFile(path)
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var at, n int64
		if _, err := fmt.Sscan(line, &at, &n); err == nil {
			out = append(out, fmt.Sprintf("%.1f+%.2f", nsToMs(at), nsToMs(n)))
		}
	}
	return strings.Join(out, " ")
}

// stallSignal sends sig to the job and waits for its answer file.
func (b *bench) stallSignal(pid int, ready, suffix string, sig unix.Signal) error {
	path := ready + "." + suffix
	os.Remove(path)
	if err := unix.Kill(pid, sig); err != nil {
		return fmt.Errorf("signal stall target %d: %w", pid, err)
	}
	if err := waitForFile(path, 10*time.Second); err != nil {
		return fmt.Errorf("stall target %d did not answer %v: %w", pid, sig, err)
	}
	return nil
}

// waitForFile waits until path exists.
func waitForFile(path string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if _, err := os.Stat(path); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no %s after %v", path, timeout)
		}
		time.Sleep(time.Millisecond)
	}
}

// stallGap ends a measurement and reads the longest gap.
func (b *bench) stallGap(pid int, ready string) (int64, error) {
	if err := b.stallSignal(pid, ready, "gap", unix.SIGUSR2); err != nil {
		return 0, err
	}
	return readNumber(ready + ".gap")
}

// forkLimit runs the limit: one fork of a process of the row's memory.
func (b *bench) forkLimit(row *StallRow) (int64, error) {
	pid, err := b.startTarget("stall", stallArgs(row, "fork")...)
	if err != nil {
		return 0, err
	}
	defer b.kill(pid)
	return readNumber(filepath.Join(b.work, "stall.ready.fork"))
}

func readNumber(path string) (int64, error) {
	// The file is written with one write(2) after O_TRUNC: wait for
	// its newline.
	for i := 0; i < 1000; i++ {
		b, err := os.ReadFile(path)
		if err == nil && strings.HasSuffix(string(b), "\n") {
			return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		}
		time.Sleep(time.Millisecond)
	}
	return 0, fmt.Errorf("%s: no number", path)
}

// reapSnapshots reaps the snapshot processes this child subreaper
// adopted (the job is its child): named gocr-snapshot, its children.
func (b *bench) reapSnapshots() {
	me := os.Getpid()
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if strings.TrimSpace(string(comm)) != "gocr-snapshot" {
			continue
		}
		if ppid, err := parentOf(pid); err == nil && ppid == me {
			var ws unix.WaitStatus
			unix.Wait4(pid, &ws, 0, nil)
		}
	}
}

func printStall(w io.Writer, rows []*StallRow) {
	fmt.Fprintf(w, "\nlongest stall of a job writing its memory during dump --leave-running, measured by the job (median / best, ms);\n")
	fmt.Fprintf(w, "limit fork: one fork(2) of a process of that memory; limit copy: the job's stall while a fork of it writes its memory to tmpfs\n")
	fmt.Fprintf(w, "beside it (c/stall.c copy=); idle: the same span with no dump (the machine's other load)\n\n")
	fmt.Fprintf(w, "| row | runs | stall, plain | frozen, plain | stall, --snapshot | frozen, --snapshot | of it fork | limit fork | limit copy | idle | snapshot dump | host steal | copied for the job MiB |\n")
	fmt.Fprintf(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		if r.Err != "" {
			fmt.Fprintf(w, "| %s | error: %s |\n", r.Name, oneLine(r.Err))
			continue
		}
		copied := "-"
		if len(r.SnapCopied) > 0 {
			copied = fmt.Sprintf("%.0f", float64(median(r.SnapCopied))/mib)
		}
		fmt.Fprintf(w, "| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", r.Name, len(r.SnapGapNs),
			mb(r.PlainGapNs), mb(r.PlainFrozenNs), mb(r.SnapGapNs), mb(r.SnapFrozenNs), mb(r.SnapForkNs),
			mb(r.LimitForkNs), mb(r.LimitCopyGapNs), mb(r.IdleGapNs), mb(r.SnapDumpNs), mb(r.SnapStealNs), copied)
	}
	for _, r := range rows {
		if r.Huge && len(r.HugeKiB) > 0 {
			fmt.Fprintf(w, "\n%s: AnonHugePages before each dump with --snapshot, MiB: %v (a fresh job each time)\n", r.Name, kibsToMiB(r.HugeKiB))
		}
		if r.Huge && len(r.AgainGapNs) > 0 {
			fmt.Fprintf(w, "%s: AnonHugePages once each was done, MiB: %v; a second dump with --snapshot of the same job stalled it %s ms (median / best)\n",
				r.Name, kibsToMiB(r.HugeAfterKiB), mb(r.AgainGapNs))
		}
	}
}

// limitCopyMs is the copy limit's median in ms, "-" where not measured.
func limitCopyMs(r *StallRow) string {
	if len(r.LimitCopyGapNs) == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f", nsToMs(median(r.LimitCopyGapNs)))
}

func kibsToMiB(kibs []int64) []float64 {
	out := make([]float64, len(kibs))
	for i, k := range kibs {
		out[i] = kibToMiB(k)
	}
	return out
}

// checkStall adds the stall goals.
func (b *bench) checkStall() {
	for _, r := range b.res.Stall {
		goal, ok := stallGoalMs[r.MiB]
		if r.Huge {
			goal = hugeStallGoalMs
		}
		if r.Err != "" || len(r.SnapGapNs) == 0 || !ok {
			continue
		}
		v := nsToMs(median(r.SnapGapNs))
		b.res.Targets = append(b.res.Targets, Target{Row: r.Name,
			Goal: fmt.Sprintf("longest stall with --snapshot <= %.0f ms (median; limit fork %.0f ms, limit copy %s ms)", goal,
				nsToMs(median(r.LimitForkNs)), limitCopyMs(r)),
			Value: v, Limit: goal, Met: v <= goal && len(r.SnapshotFrozen) == 0})
		// gocr's own part: the frozen time beyond the fork, which the
		// machine's load does not stretch as it does the fork.
		var own []int64
		for i := range r.SnapFrozenNs {
			own = append(own, r.SnapFrozenNs[i]-r.SnapForkNs[i])
		}
		o := nsToMs(median(own))
		b.res.Targets = append(b.res.Targets, Target{Row: r.Name,
			Goal:  fmt.Sprintf("frozen with --snapshot beyond its fork <= %.0f ms (median)", maxFrozenBeyondForkMs),
			Value: o, Limit: maxFrozenBeyondForkMs, Met: o <= maxFrozenBeyondForkMs})
	}
}
