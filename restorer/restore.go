//go:build linux

// Package restorer turns a dump's images into a restore plan and drives the
// restore: it validates everything before creating anything, starts the
// restorer blob (a tiny static PIE run from a memfd) that recreates the
// process with its dumped PID, then seizes the new process to remove the
// restorer and set the dumped registers and signal mask.
//
// Why exec a static helper rather than clone from Go: no Go code may run in
// a forked child, and a helper that owns the whole child side (clone3 with
// set_tid, fds, the jump into the hole) keeps every raw step in C, where
// the same code will later fork whole process trees; gocr's own fork/exec
// stays the ordinary, safe os/exec path.
package restorer

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"os"

	"github.com/gocr/gocr/files"
	"github.com/gocr/gocr/gocrpb"
	"github.com/gocr/gocr/images"
	"github.com/gocr/gocr/internal/testhook"
)

//go:embed restorer.elf
var restorerELF []byte

// Options say what to restore and how.
type Options struct {
	Dir string
	// Images, if set, is the dump to restore, already open, instead of
	// Dir: a context file read in place (images.OpenContext). It stays
	// the caller's to close.
	Images *images.Dir
	// Detach: return once the process runs, instead of waiting for it.
	Detach bool
	// Supervised, with Detach: the process running gocr stays, as the
	// parent of the restored root (or of the PID namespace's reaper),
	// and waits for it itself (cr_run, which checkpoints it on). The
	// root's parent-death signal is kept then, as without Detach.
	Supervised bool
	// Stdio given to the restored process where its own stdio was
	// connected outside the dump (a terminal, a shell's pipe).
	Stdin, Stdout, Stderr *os.File
	// InheritFd are fd[N]:KEY: gocr's own fd N is given to every fd of
	// the dump joined outside it through KEY (inheritfd.go).
	InheritFd []string
	// Released, if set, is called once the processes run on their own
	// (before waiting for the root without Detach).
	Released func()
	// TrustImages restores images that a user other than the one
	// running gocr (or root) could have written, which are refused
	// otherwise (images.OpenOptions).
	TrustImages bool
	// PidNamespace is where the processes get their PIDs: "never" (or
	// ""), gocr's PID namespace, failing if a PID is taken; "always", a
	// new PID namespace of their own (pidns.go); "auto", gocr's when
	// every PID is free, else a new one.
	PidNamespace string
	// Relocate are OLD=NEW rules: files, mappings, the cwd and the root
	// under OLD are looked up under NEW (relocate.go).
	Relocate []string
	// Restarted, if set, is called with the PIDs of the restored
	// processes once they all run, before Released (the callbacks
	// package tells those that registered checkpoint callbacks).
	Restarted func(pids []int)
	// TCPEstablished restores TCP connections to peers outside the
	// dump, which a dump with --tcp-established took (inet.go).
	TCPEstablished bool
	// PidFile, if set, is written with the root's PID as gocr sees it
	// (HostPid) before the processes run (pidfile.go).
	PidFile string

	// attached, if set, is called once every restored process has
	// rebuilt itself, its System V segments attached, before any runs.
	attached func()
	// ShellJob gives a job that ran on a terminal outside the dump (a
	// shell's) gocr's terminal, with its job control (shelljob.go).
	ShellJob bool

	job *shellJob
	// lifeline is gocr's write end of the pipe every restored process
	// holds the read end of (finish.go).
	lifeline *os.File
}

// Result is how a restore ended.
type Result struct {
	Pid        int
	ExitStatus int // when not detached: the restored process's exit status (128+signal if killed)
	// ReaperPid, for a restore in a new PID namespace: the PID, in
	// gocr's namespace, of that namespace's init, the reaper.
	ReaperPid int
	Signal    int // when not detached and the process was killed: the signal
	// HostPid is the root's PID in gocr's PID namespace: Pid, or, in a
	// new PID namespace, the outer PID of the same process.
	HostPid int
}

// proc is one process to restore.
type proc struct {
	task   *gocrpb.Task
	mm     *gocrpb.Mm
	files  *gocrpb.Files
	ranges []*gocrpb.PageRange
	plan   *plan
	index  int   // in the process table
	parent *proc // nil for the root
}

// Run restores the dump in opts.Dir (or opts.Images). It reads as the restore's lifecycle:
// check everything, open what the processes share, claim their PIDs, lay
// out the plan, then launch the restorer and finish each process. When
// ctx ends before the processes are released, the restore stops at its
// next step, or at once where it waits, and fails as at any other error:
// every process it created is killed. The error then wraps
// context.Cause(ctx).
func Run(ctx context.Context, opts Options) (_ *Result, err error) {
	if err := checkPidnsMode(opts.PidNamespace); err != nil {
		return nil, err
	}
	if err := checkUserRestore(opts); err != nil {
		return nil, err
	}
	reloc, err := parseRelocations(opts.Relocate)
	if err != nil {
		return nil, err
	}
	dir := opts.Images
	if dir == nil {
		if dir, err = images.OpenWith(opts.Dir, images.OpenOptions{TrustImages: opts.TrustImages}); err != nil {
			return nil, err
		}
		defer dir.Close()
	}
	given, err := openGiven(opts.InheritFd)
	if err != nil {
		return nil, err
	}
	defer closeGiven(given)
	// Every image is read and checked before anything is created, and
	// before the machine is asked anything (a PID in use), but the page
	// data the restorer verifies as it reads it in (pagesums.go).
	if err := dir.VerifyData(); err != nil {
		return nil, err
	}
	procs, src, parents, err := load(dir, [3]*os.File{opts.Stdin, opts.Stdout, opts.Stderr}, reloc)
	if err != nil {
		return nil, err
	}
	defer parents.close()
	defer src.Close()
	src.Given = given
	// What the job was joined to outside the dump is this machine's to
	// give.
	if err := files.CheckInherited(fdTables(procs), given); err != nil {
		return nil, classed(Environment, err)
	}
	// What the restore makes in the system, not only in gocr (IPC
	// objects), is removed again if it fails.
	restored := false
	var sysv *sysvObjects
	defer func() {
		if !restored {
			if sysv != nil {
				sysv.undo()
			}
			src.Undo()
		}
	}()
	if err := checkUserImages(procs); err != nil {
		return nil, err
	}
	if err := checkAttrs(procs); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			src.Undo()
		}
	}()
	undoCgroups, err := planCgroups(procs)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			undoCgroups()
		}
	}()
	root := procs[0].task.Pid
	if err := checkConnections(procs, opts); err != nil {
		return nil, err
	}
	// How each process gets its session and group, or why it cannot.
	t, err := buildTree(procs)
	if err != nil {
		return nil, err
	}
	// Its clocks that start at boot, in a time namespace where they go
	// on from the dump's (timens.go).
	tns, err := planTimeNamespace(dir.Inventory())
	if err != nil {
		return nil, err
	}
	src.Rebase = tns.rebase
	src.NewTimeNamespace = tns.make
	t.useTimeNamespace(tns)
	if opts.Detach {
		if err := checkDetachedStops(procs); err != nil {
			return nil, err
		}
	}
	if opts.job, err = planShellJob(procs, opts); err != nil {
		return nil, err
	}
	// Where the PIDs are decides who can make the sockets whose peer
	// credentials name them (peercred.go).
	pidns, err := choosePidns(ctx, opts.PidNamespace, dir.Inventory(), procs)
	// A PID in use is said once the sources are open, so that what the
	// job's files forbid (a lock another process holds) is said first;
	// the sockets are then made by gocr, the restore failing anyway.
	var taken *pidTakenError
	var inUse error
	if errors.As(err, &taken) {
		inUse, err = err, nil
	}
	if err != nil {
		return nil, err
	}
	src.NewPidNamespace = pidns
	// The files the processes had, once per open file description, and
	// the shared memory objects; then each plan points at them.
	var peerCreds *peerCredAgent
	if inUse == nil {
		peerCreds = newPeerCredAgent(pidns)
		src.PeerCreds = peerCreds
		// In a new PID namespace the agent, its PID 1, stays to be
		// its reaper (launch), unless the restore fails first.
		defer func() {
			if err != nil {
				peerCreds.kill()
			}
		}()
	}
	shmem, err := openSources(procs, src)
	if peerCreds != nil {
		peerCreds.Close()
	}
	if err != nil {
		return nil, environmentFailure(err)
	}
	if inUse != nil {
		return nil, inUse
	}
	// The System V objects the job uses, with their ids, before any
	// process that attaches or uses them (sysvipc.go). A restore that
	// fails removes those it made, and the objects its sources made.
	sysv, err = makeSysvIpc(dir, dir.Inventory().GetSysvIpc())
	if err != nil {
		return nil, err
	}
	opts.attached = sysv.detach
	// The lifeline: every restored process holds its read end until gocr
	// takes over; if gocr dies first they see EOF and end themselves
	// instead of staying parked (restorer/c/restorer.c).
	lifeR, lifeW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("restore: lifeline pipe: %w", err)
	}
	defer lifeW.Close()
	opts.lifeline = lifeW
	src.Lifeline = lifeR
	lifeline := src.Add(lifeR)
	// Where the restorer hands over the pidfd of every process it
	// creates: a failed restore kills those and nothing else.
	c, pidfdPeer, err := newCreated(len(procs))
	if err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	defer c.close()
	t.pidfdSock = src.Add(pidfdPeer)
	for _, pr := range procs {
		if pr.plan == nil {
			continue
		}
		pr.plan.args.LifelineFd = lifeline
		if err := pr.plan.bind(pr, src, shmem); err != nil {
			return nil, fmt.Errorf("restore pid %d: %w", pr.task.Pid, err)
		}
	}
	if err := checkProcPaths(procs, pidns, dir.Inventory()); err != nil {
		return nil, err
	}
	if pidns {
		if err := checkOutsideGroupJoin(t); err != nil {
			return nil, err
		}
		t.flags |= rstTreePidns
		c.withReaper()
	} else if opts.Detach && !opts.Supervised {
		// The root's parent-death signal named a parent outside the
		// dump; its parent now is gocr, which exits at once with -d
		// and would kill it. It is kept only while gocr stays to wait
		// for the root, or in a new namespace, where its parent is the
		// reaper, which lives as long as the root.
		procs[0].plan.args.PdeathSig = 0
	}
	noteOutsideGroup(procs[0].task, pidns, len(t.procs) > 0 && t.procs[0].Flags&rstProcSetpgid != 0 && procs[0].task.Pgid != procs[0].task.Pid)
	noteStdio(procs, given)
	testhook.PauseContext(ctx, testhook.PauseBeforeLaunch)
	if err := stopped(ctx); err != nil {
		return nil, fmt.Errorf("restore pid %d: %w", root, err)
	}
	pickPageHelperTids(procs)
	planBytes, err := layout(t, procs)
	if err != nil {
		return nil, fmt.Errorf("restore pid %d: %w", root, err)
	}
	if opts.Restarted != nil {
		var pids []int
		for _, pr := range procs {
			if pr.plan != nil { // not a zombie
				pids = append(pids, int(pr.task.Pid))
			}
		}
		released := opts.Released
		opts.Released = func() {
			opts.Restarted(pids)
			if released != nil {
				released()
			}
		}
	}
	// Once released, the processes own what was made for them.
	released := opts.Released
	opts.Released = func() {
		restored = true
		if released != nil {
			released()
		}
	}
	var reaper *peerCredAgent
	if peerCreds.reaper() {
		reaper = peerCreds
	}
	return launch(ctx, procs, planBytes, src, c, pidfdPeer, reaper, opts)
}

// claimPids waits until every PID and TID the dump had is free.
func claimPids(ctx context.Context, procs []*proc) error {
	for _, pr := range procs {
		if err := waitPidFree(ctx, int(pr.task.Pid)); err != nil {
			return err
		}
		for _, th := range pr.task.Threads[min(1, len(pr.task.Threads)):] {
			if err := waitPidFree(ctx, int(th.Tid)); err != nil {
				return err
			}
		}
	}
	return nil
}

// layout encodes the process table and every plan into the mapping the
// restorer reads, after finding each process room for the restorer: its
// code, stack, the whole plan mapping and its threads' stacks, in a hole
// of the address space. The plan's size decides the room, and the room is
// written into the plan, so it is encoded twice.
func layout(t *tree, procs []*proc) ([]byte, error) {
	planBytes, err := t.encode(procs)
	if err != nil {
		return nil, err
	}
	for _, pr := range procs {
		if pr.plan == nil {
			continue
		}
		size, err := holeSizeFor(len(pr.task.Threads), int(pr.plan.args.NrPageStreams), uint64(len(planBytes)))
		if err != nil {
			return nil, err
		}
		cands := holeCandidates(pr.mm.Vmas, size)
		if len(cands) == 0 {
			return nil, fmt.Errorf("pid %d: no room in the address space for the restorer", pr.task.Pid)
		}
		pr.plan.args.HoleSize = size
		copy(pr.plan.args.HoleCandidates[:], cands)
	}
	return t.encode(procs)
}

// stopped returns why ctx ended (context.Cause), or nil while it runs.
func stopped(ctx context.Context) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return nil
}
