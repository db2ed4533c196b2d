//go:build linux

package dump

import (
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/gocr/gocr/files"
	"github.com/gocr/gocr/gocrpb"
	"github.com/gocr/gocr/proc"
)

// beside is what the frozen window reads from /proc alone, on a
// goroutine of its own, and so on another CPU, while the tracer thread
// makes the ptrace requests of the collection and the capture. One
// goroutine does it all, in the order it is needed: each process's
// procReads and fd table (collect waits for them last), the System V
// IPC lists (after the collection), then the machine-wide tracee check
// (before the processes run on). Goroutines of their own would share
// that one other CPU in the order they were made, the long tracee check
// first.
type beside struct {
	procs   []chan *procReads // by the tree's process index; nil for a zombie
	fds     []chan fdTable
	sysv    func() *sysvTables
	tracees func() error
}

// fdTable is one process's fd table as files.Collect read it.
type fdTable struct {
	table *gocrpb.Files
	err   error
}

// startBeside starts the reads for the frozen tree.
func startBeside(tree *frozenTree, kthreads *kernelThreads) *beside {
	b := &beside{procs: make([]chan *procReads, len(tree.procs)), fds: make([]chan fdTable, len(tree.procs))}
	for i, fp := range tree.procs {
		if !fp.zombie {
			b.procs[i] = make(chan *procReads, 1)
			b.fds[i] = make(chan fdTable, 1)
		}
	}
	sysv := make(chan *sysvTables, 1)
	tracees := make(chan error, 1)
	b.sysv = sync.OnceValue(func() *sysvTables { return <-sysv })
	b.tracees = sync.OnceValue(func() error { return <-tracees })
	// The threads as the freeze found them, taken now: a failed dump's
	// release empties fp.tids while the goroutine may still read.
	tids := make([][]int, len(tree.procs))
	for i, fp := range tree.procs {
		tids[i] = slices.Clone(fp.tids)
	}
	dumped := tree.dumpedThreads()
	go func() {
		for i, fp := range tree.procs {
			if b.fds[i] != nil {
				b.procs[i] <- readProcReads(fp.pid, tids[i])
				table, err := files.Collect(fp.pid)
				b.fds[i] <- fdTable{table, err}
			}
		}
		var t sysvTables
		t.shm, t.shmErr = proc.ReadSysvShm()
		t.sem, t.semErr = proc.ReadSysvSem()
		t.msg, t.msgErr = proc.ReadSysvMsg()
		sysv <- &t
		tracees <- checkTracees(dumped, kthreads)
	}()
	return b
}

// besideOf is what was read beside of one process, each waited for
// when called.
type besideOf struct {
	reads   func() *procReads
	fdTable func() (*gocrpb.Files, error)
}

// of is process i's.
func (b *beside) of(i int) besideOf {
	return besideOf{
		reads: func() *procReads { return <-b.procs[i] },
		fdTable: func() (*gocrpb.Files, error) {
			ft := <-b.fds[i]
			return ft.table, ft.err
		},
	}
}

// wait waits until the goroutine is done: it reads through kthreads'
// pidfds, which must not be closed before.
func (b *beside) wait() { b.tracees() }

// procReads is what collect takes of a process from /proc alone (man 5
// proc): files that show the process as it is, frozen.
type procReads struct {
	personality uint32
	timers      []*gocrpb.PosixTimer
	cwd, root   string
	limits      []proc.Limit
	err         error // the first read that failed, or a refusal
}

func readProcReads(pid int, tids []int) *procReads {
	r := &procReads{}
	if r.personality, r.err = proc.ReadPersonality(pid); r.err != nil {
		return r
	}
	if r.timers, r.err = collectPosixTimers(pid); r.err != nil {
		return r
	}
	if r.cwd, r.err = proc.Cwd(pid); r.err != nil {
		return r
	}
	if r.root, r.err = proc.Root(pid); r.err != nil {
		return r
	}
	if r.limits, r.err = proc.ReadLimits(pid); r.err != nil {
		return r
	}
	r.err = checkThreadNamespaces(pid, tids)
	return r
}

// fill records the reads in task, or refuses.
func (r *procReads) fill(task *gocrpb.Task) error {
	if r.err != nil {
		return r.err
	}
	for _, p := range []string{r.cwd, r.root} {
		if strings.HasSuffix(p, " (deleted)") {
			return fmt.Errorf("cwd or root %q was deleted", p)
		}
	}
	task.Personality, task.PosixTimers, task.Cwd, task.Root = r.personality, r.timers, r.cwd, r.root
	for _, l := range r.limits {
		task.Rlimits = append(task.Rlimits, &gocrpb.Rlimit{Resource: uint32(l.Resource), Cur: l.Cur, Max: l.Max})
	}
	return nil
}
