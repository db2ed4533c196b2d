//go:build linux

package dump

import (
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/files"
	"github.com/gocr/gocr/gocrpb"
	"github.com/gocr/gocr/proc"
)

// beside is what the frozen window reads from /proc alone, on a
// goroutine of its own, and so on another CPU, while the tracer thread
// makes the ptrace requests of the collection and the capture. One
// goroutine does it all, in the order it is needed: each process's
// procReads and fd table (collect waits for them last), the System V
// IPC lists (after the collection), for a snapshot dump whether each
// process's snapshot has room (whyNoRoom, as its memory is captured),
// then the machine-wide tracee check (before the processes run on).
// Goroutines of their own would share that one other CPU in the order
// they were made, the long tracee check first.
//
// Each read is done by whichever comes to it first, the goroutine or
// the one that needs it (either): a read the goroutine has not begun
// when it is needed is not waited for. Where the other CPU is slow to
// run the goroutine (a virtual CPU the host runs late), the frozen
// window would otherwise wait for it, then for its own wakeup: on a
// 2-vCPU VM, collect waited 2-2.5 ms in a third of the dumps for reads
// of 0.4 ms (docs/PERFORMANCE.md).
type beside struct {
	procs    []*either[*procReads] // by the tree's process index; nil for a zombie
	fds      []*either[fdTable]
	sysvRead *either[*sysvTables]
	rooms    []*either[string] // by process index; nil without snapshots
	check    *either[error]
	finished chan struct{}
}

// fdTable is one process's fd table as files.Collect read it.
type fdTable struct {
	table *gocrpb.Files
	err   error
}

// startBeside starts the reads for the frozen tree; with snapshot, the
// room each process's snapshot would have too.
func startBeside(tree *frozenTree, kthreads *kernelThreads, snapshot bool) *beside {
	b := &beside{procs: make([]*either[*procReads], len(tree.procs)), fds: make([]*either[fdTable], len(tree.procs)),
		finished: make(chan struct{})}
	for i, fp := range tree.procs {
		if fp.zombie {
			continue
		}
		// The threads as the freeze found them, taken now: a failed
		// dump's release empties fp.tids while a read may still run.
		pid, tids := fp.pid, slices.Clone(fp.tids)
		b.procs[i] = newEither(func() *procReads { return readProcReads(pid, tids) })
		b.fds[i] = newEither(func() fdTable {
			table, err := files.Collect(pid)
			return fdTable{table, err}
		})
	}
	b.sysvRead = newEither(func() *sysvTables {
		var t sysvTables
		t.shm, t.shmErr = proc.ReadSysvShm()
		t.sem, t.semErr = proc.ReadSysvSem()
		t.msg, t.msgErr = proc.ReadSysvMsg()
		return &t
	})
	if snapshot {
		b.rooms = make([]*either[string], len(tree.procs))
		for i, fp := range tree.procs {
			if !fp.zombie {
				pid := fp.pid
				b.rooms[i] = newEither(func() string { return whyNoRoom(pid) })
			}
		}
	}
	dumped := tree.dumpedThreads()
	b.check = newEither(func() error { return checkTracees(dumped, kthreads) })
	go func() {
		defer close(b.finished)
		for i := range tree.procs {
			if b.procs[i] != nil {
				b.procs[i].run()
				b.fds[i].run()
			}
		}
		b.sysvRead.run()
		for _, r := range b.rooms {
			if r != nil {
				r.run()
			}
		}
		b.check.run()
	}()
	return b
}

// besideOf is what was read beside of one process, each waited for (or
// read) when called; room is nil without snapshots.
type besideOf struct {
	reads   func() *procReads
	fdTable func() (*gocrpb.Files, error)
	room    func() string
}

// of is process i's.
func (b *beside) of(i int) besideOf {
	of := besideOf{
		reads: b.procs[i].get,
		fdTable: func() (*gocrpb.Files, error) {
			ft := b.fds[i].get()
			return ft.table, ft.err
		},
	}
	if b.rooms != nil {
		of.room = b.rooms[i].get
	}
	return of
}

// sysv is the System V IPC lists; tracees the tracee check's verdict.
func (b *beside) sysv() *sysvTables { return b.sysvRead.get() }
func (b *beside) tracees() error    { return b.check.get() }

// wait waits until the goroutine is done: it reads through kthreads'
// pidfds, which must not be closed before.
func (b *beside) wait() { <-b.finished }

// either is work that two goroutines may want done: whichever comes to
// it first does it, the other waits for its result.
type either[T any] struct {
	begun, ended atomic.Bool
	done         chan struct{}
	work         func() T
	val          T
}

func newEither[T any](work func() T) *either[T] {
	return &either[T]{done: make(chan struct{}), work: work}
}

// run does the work unless it was begun.
func (e *either[T]) run() {
	if e.begun.CompareAndSwap(false, true) {
		e.val = e.work()
		e.ended.Store(true)
		close(e.done)
	}
}

// eitherSpin is how long get polls for work the other goroutine is
// doing before it sleeps: each read takes a fraction of a millisecond.
// A goroutine that sleeps on a channel, above all the tracer thread's,
// which is locked to its thread (runtime.LockOSThread), is woken through
// the runtime's scheduler and one or two thread wakeups, and here
// waited for them up to the end of everything the other goroutine had
// to do (2-2.5 ms); polling, it sees the result at once.
const eitherSpin = 5 * time.Millisecond

// get returns the work's result, done here if nobody had begun it.
func (e *either[T]) get() T {
	e.run()
	for until := time.Now().Add(eitherSpin); !e.ended.Load() && time.Now().Before(until); {
		// Yields the CPU to the other goroutine's thread, should
		// they share it, without leaving this goroutine's thread
		// (runtime.Gosched would, on a locked one).
		unix.Syscall(unix.SYS_SCHED_YIELD, 0, 0, 0)
	}
	<-e.done
	return e.val
}

// procReads is what collect takes of a process from /proc alone (man 5
// proc): files that show the process as it is, frozen.
type procReads struct {
	personality uint32
	timers      []*gocrpb.PosixTimer
	cwd, root   string
	limits      []proc.Limit
	attrs       *attrReads
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
	if r.err = checkThreadNamespaces(pid, tids); r.err != nil {
		return r
	}
	r.attrs, r.err = readAttrs(pid, tids)
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
	if err := r.attrs.fill(task); err != nil {
		return err
	}
	task.Personality, task.PosixTimers, task.Cwd, task.Root = r.personality, r.timers, r.cwd, r.root
	for _, l := range r.limits {
		task.Rlimits = append(task.Rlimits, &gocrpb.Rlimit{Resource: uint32(l.Resource), Cur: l.Cur, Max: l.Max})
	}
	return nil
}
