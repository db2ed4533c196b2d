//go:build linux

package dump

import (
	"sync"

	"github.com/gocr/gocr/files"
	"github.com/gocr/gocr/gocrpb"
	"github.com/gocr/gocr/proc"
)

// beside is what the frozen window reads from /proc alone, on a
// goroutine of its own, and so on another CPU, while the tracer thread
// makes the ptrace requests of the collection and the capture. One
// goroutine does it all, in the order it is needed: each process's fd
// table (collect waits for it last), the System V IPC lists (after the
// collection), then the machine-wide tracee check (before the processes
// run on). Goroutines of their own would share that one other CPU in
// the order they were made, the long tracee check first.
type beside struct {
	fds     []chan fdTable // by the tree's process index; nil for a zombie
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
	b := &beside{fds: make([]chan fdTable, len(tree.procs))}
	for i, fp := range tree.procs {
		if !fp.zombie {
			b.fds[i] = make(chan fdTable, 1)
		}
	}
	sysv := make(chan *sysvTables, 1)
	tracees := make(chan error, 1)
	b.sysv = sync.OnceValue(func() *sysvTables { return <-sysv })
	b.tracees = sync.OnceValue(func() error { return <-tracees })
	go func() {
		for i, fp := range tree.procs {
			if b.fds[i] != nil {
				table, err := files.Collect(fp.pid)
				b.fds[i] <- fdTable{table, err}
			}
		}
		var t sysvTables
		t.shm, t.shmErr = proc.ReadSysvShm()
		t.sem, t.semErr = proc.ReadSysvSem()
		t.msg, t.msgErr = proc.ReadSysvMsg()
		sysv <- &t
		tracees <- tree.checkTracees(kthreads)
	}()
	return b
}

// fdTableOf waits for process i's fd table.
func (b *beside) fdTableOf(i int) (*gocrpb.Files, error) {
	ft := <-b.fds[i]
	return ft.table, ft.err
}

// wait waits until the goroutine is done: it reads through kthreads'
// pidfds, which must not be closed before.
func (b *beside) wait() { b.tracees() }
