//go:build linux

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/gocr/gocr/proc"
)

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

// fdsFileSize is the size of the regular file every fd of the fds target
// opens. The target puts each fd at its own offset (c/fds.c); 64 KiB
// keeps every offset of the default 2N inside the file.
const fdsFileSize = 64 * kib

// scaleRows measures how the time grows with the count of what gocr walks:
// processes with N and 2N VMAs and N and 2N open fds, one process with N
// and 2N threads and a tree of N and 2N processes. Their images go to
// tmpfs. A row that fails keeps its error and the rounds it finished; the
// next row runs anyway.
func (b *bench) scaleRows() {
	nArg := func(n int) []string { return []string{strconv.Itoa(n)} }
	fdsFile := filepath.Join(b.work, "fds.dat")
	fdsErr := os.WriteFile(fdsFile, make([]byte, fdsFileSize), 0o644)
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

// sizeOrder is the order round measures N (0) and 2N (1) in: alternating,
// so that neither size always runs after the other.
func sizeOrder(round int) [2]int {
	if round%2 == 1 {
		return [2]int{1, 0}
	}
	return [2]int{0, 1}
}

// add appends one round at N (size 0) or 2N (size 1) to the row.
func (row *ScaleRow) add(size int, dumpNs, frozenNs, restoreNs int64) {
	if size == 0 {
		row.DumpNs = append(row.DumpNs, dumpNs)
		row.FrozenNs = append(row.FrozenNs, frozenNs)
		row.RestoreNs = append(row.RestoreNs, restoreNs)
		return
	}
	row.Dump2Ns = append(row.Dump2Ns, dumpNs)
	row.Frozen2Ns = append(row.Frozen2Ns, frozenNs)
	row.Restore2 = append(row.Restore2, restoreNs)
}

// scaleRow measures a VMA or fd row: one target per size, started once;
// every round dumps and restores each, so the process restored in one
// round is the one dumped in the next.
func (b *bench) scaleRow(row *ScaleRow, prog string, args func(int) []string) error {
	b.logf("%s: N=%d and 2N, %d rounds", row.Name, row.N, b.o.scaleRuns)
	base, err := os.MkdirTemp(tmpfsDir, "gocr-bench-")
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
	for round := 0; round < b.o.scaleRuns; round++ {
		for _, i := range sizeOrder(round) {
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
			row.add(i, d.wall.Nanoseconds(), st.FrozenNs, r.wall.Nanoseconds())
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
	base, err := os.MkdirTemp(tmpfsDir, "gocr-bench-")
	if err != nil {
		return fmt.Errorf("images dir: %w", err)
	}
	defer os.RemoveAll(base)
	for round := 0; round < b.o.scaleRuns; round++ {
		for _, i := range sizeOrder(round) {
			n := row.N << i
			img := filepath.Join(base, "img")
			d, f, r, err := b.freshRound(s, n, img)
			os.RemoveAll(img)
			if err != nil {
				return fmt.Errorf("round %d, N=%d: %w", round+1, n, err)
			}
			row.add(i, d, f, r)
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

// The state letters of /proc/PID/stat (field 3) of a process that has
// exited: zombie (not yet reaped) and dead (proc_pid_stat(5);
// fs/proc/array.c, task_state_array).
const (
	stateZombie = 'Z'
	stateDead   = 'X'
)

// shapeOf counts the threads of root and the live processes of its tree.
// A zombie stays on its parent's children list until it is reaped
// (fs/proc/array.c, get_children_pid walks that list), but the bench
// targets reap none of theirs, so a zombie there is a process that died.
func shapeOf(root int, tree []int) shape {
	threads, _ := proc.Threads(root)
	live := 0
	for _, pid := range tree {
		if st, err := proc.ReadStat(pid); err == nil && st.State != stateZombie && st.State != stateDead {
			live++
		}
	}
	return shape{len(threads), live}
}
