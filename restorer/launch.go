//go:build linux

package restorer

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"

	procfs "github.com/gocr/gocr/proc"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/files"
	"github.com/gocr/gocr/internal/testhook"
	"github.com/gocr/gocr/sharedword"
)

// launch starts the restorer and sees the restore through: it waits for
// every process to be rebuilt, then finishes each (registers, masks) and
// releases them together. On any failure it kills what this restore
// created, known by the pidfds the restorer handed over on c, and nothing
// else; pidfdPeer is the restorer's end of c's socket (src's last source).
func launch(ctx context.Context, procs []*proc, planBytes []byte, src *files.Sources, c *created, pidfdPeer *os.File, reaper *peerCredAgent, opts Options) (res *Result, err error) {
	root := int(procs[0].task.Pid)
	planFd, err := unix.MemfdCreate("gocr-plan", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("restore pid %d: memfd: %w", root, err)
	}
	planFile := os.NewFile(uintptr(planFd), "gocr-plan")
	defer planFile.Close()
	if _, err := planFile.WriteAt(planBytes, 0); err != nil {
		return nil, fmt.Errorf("restore pid %d: write plan: %w", root, err)
	}
	shared, err := unix.Mmap(planFd, 0, len(planBytes), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("restore pid %d: map plan: %w", root, err)
	}
	defer unix.Munmap(shared)

	exeFd, err := unix.MemfdCreate("gocr-restorer", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("restore pid %d: memfd: %w", root, err)
	}
	exeFile := os.NewFile(uintptr(exeFd), "gocr-restorer")
	defer exeFile.Close()
	if _, err := exeFile.Write(restorerELF); err != nil {
		return nil, fmt.Errorf("restore pid %d: write restorer: %w", root, err)
	}

	// Anything created is killed if the restore does not complete.
	defer func() {
		if err != nil {
			c.killAll(root)
		}
	}()

	var helperErr error
	if reaper != nil {
		// The peer-credentials agent, already PID 1 of the new PID
		// namespace (peercred.go), takes the restorer's files and
		// place.
		helperErr = reaper.becomeReaper(append([]*os.File{planFile}, src.Files()...))
		// Only the restored processes may hold the sending end: gocr
		// reads without waiting, but the socket ends when the last of
		// them is gone.
		pidfdPeer.Close()
	} else {
		// execve resolves /proc/self/fd/N before close-on-exec takes
		// the fd away (fs/exec.c: the file is opened first, fds
		// closed at the point of no return).
		cmd := exec.Command(fmt.Sprintf("/proc/self/fd/%d", exeFd))
		cmd.Args = []string{"gocr-restorer"}
		cmd.Env = []string{}
		cmd.ExtraFiles = append([]*os.File{planFile}, src.Files()...)
		cmd.SysProcAttr = &syscall.SysProcAttr{AmbientCaps: restorerAmbientCaps()}
		if err := cmd.Start(); err != nil {
			return nil, fmt.Errorf("restore pid %d: start restorer: %w", root, err)
		}
		pidfdPeer.Close()
		helperErr = cmd.Wait()
	}
	c.receive()
	if err := planFailure(shared, procs); err != nil {
		return nil, err
	}
	if helperErr != nil {
		return nil, fmt.Errorf("restore pid %d: restorer failed before creating the process: %v", root, helperErr)
	}
	if c.reaper >= 0 && c.pidfds[c.reaper] < 0 {
		return nil, fmt.Errorf("restore pid %d: the restorer did not hand over the PID namespace's init", root)
	}

	// Wait until every live process has rebuilt itself, or one fails or
	// dies. Each is watched through its pidfd: a process not handed over
	// yet is still being created by its parent, which is earlier in the
	// table and watched first.
	for {
		if err := planFailure(shared, procs); err != nil {
			return nil, err
		}
		if err := stopped(ctx); err != nil {
			return nil, fmt.Errorf("restore pid %d: %w", root, err)
		}
		c.receive()
		pending := 0
		for i, pr := range procs {
			if pr.plan == nil {
				continue
			}
			off := int(pr.plan.offset)
			if sharedword.Load(shared, off+offState) == rstStateDone {
				continue
			}
			pending++
			sharedword.Wait(shared, off+offState, rstStateRunning, 20*time.Millisecond)
			pid := int(pr.task.Pid)
			if c.reaper >= 0 {
				pid = c.hostPid(i)
			}
			if dead, why := c.died(i, pid); dead {
				if err := planFailure(shared, procs); err != nil {
					return nil, err
				}
				return nil, fmt.Errorf("restore pid %d: the restored process died during restore (%s)", pr.task.Pid, why)
			}
			break
		}
		if pending == 0 {
			break
		}
	}
	if i := c.awaitHandedOver(ctx, func(i int) bool { return i < len(procs) && procs[i].plan != nil }); i >= 0 {
		if err := stopped(ctx); err != nil {
			return nil, fmt.Errorf("restore pid %d: %w", root, err)
		}
		return nil, fmt.Errorf("restore pid %d: pid %d was rebuilt, but its creator did not hand over its pidfd within 5 s", root, procs[i].task.Pid)
	}
	testhook.PauseContext(ctx, testhook.PauseBeforeFinish)
	if err := stopped(ctx); err != nil {
		return nil, fmt.Errorf("restore pid %d: %w", root, err)
	}
	// Threads are found by the TIDs gocr sees them by: in a new PID
	// namespace, not the dumped ones.
	host := func(tid int32) int { return int(tid) }
	if c.reaper >= 0 {
		tids, err := hostTids(c, procs)
		if err != nil {
			return nil, fmt.Errorf("restore pid %d: %w", root, err)
		}
		host = func(tid int32) int { return tids[tid] }
	}
	if opts.attached != nil {
		opts.attached()
	}
	if opts.PidFile != "" {
		hostRoot := root
		if c.reaper >= 0 {
			hostRoot = c.hostPid(0)
		}
		if err := writePidFile(opts.PidFile, hostRoot); err != nil {
			return nil, fmt.Errorf("restore pid %d: %w", root, err)
		}
		defer func() {
			if err != nil {
				os.Remove(opts.PidFile)
			}
		}()
	}
	// Every process has its files: gocr's own that they do not hold
	// are closed, and what the restore queued in their inotify
	// instances read away (files.Sources.Settle).
	if err := src.Settle(); err != nil {
		return nil, fmt.Errorf("restore pid %d: %w", root, err)
	}
	// Every process has its fds: the TCP connections leave repair mode
	// before any of them runs (files/tcprepair.go).
	if err := src.ReleaseConnections(); err != nil {
		return nil, fmt.Errorf("restore pid %d: %w", root, err)
	}
	if err := opts.job.begin(); err != nil {
		return nil, fmt.Errorf("restore pid %d: %w", root, err)
	}
	defer func() {
		if err != nil {
			opts.job.giveBack()
		}
	}()
	if err := finish(ctx, procs, shared, host, opts.lifeline); err != nil {
		return nil, fmt.Errorf("restore pid %d: %w", root, err)
	}
	// The processes hold their files now. gocr's copies go at once: a
	// copy of a pipe's write end kept while gocr waits for the job would
	// keep its reader from ever seeing the end of file (pipe(7)).
	src.Close()
	// Only now that they run may their peers outside see their
	// connections again: a restore ended before leaves the tables kept
	// for the next one (files/tcpwatch.go).
	if err := src.UnblockConnections(); err != nil {
		fmt.Fprintf(os.Stderr, "gocr: warning: restore pid %d: %v\n", root, err)
	}
	res = &Result{Pid: root, HostPid: root}
	if c.reaper >= 0 {
		res.ReaperPid = c.hostPid(c.reaper)
		res.HostPid = c.hostPid(0)
	}
	if opts.Released != nil {
		opts.Released()
	}
	if opts.Detach {
		return res, nil
	}
	// gocr's child is the root, or the reaper, which exits with the
	// root's status as gocr reports it (restorer/c/restorer.c
	// reaper_main).
	child := root
	if c.reaper >= 0 {
		child = res.ReaperPid
	}
	ws, err := opts.job.wait(child)
	if err != nil {
		return nil, err
	}
	switch {
	case ws.Exited():
		res.ExitStatus = ws.ExitStatus()
	case ws.Signaled():
		res.ExitStatus = 128 + int(ws.Signal())
		res.Signal = int(ws.Signal())
	}
	return res, nil
}

// died tells whether process idx of the restore is gone: the root is
// gocr's child and is reaped here, with its status; the others show as
// zombies, read from /proc only while the pidfd says the PID is still
// theirs.
func (c *created) died(idx, pid int) (bool, string) {
	if c.reaper >= 0 {
		// Its processes end with the reaper, and it with the root.
		if dead, why := c.reaperEnded(); dead {
			return true, why
		}
	}
	if idx == 0 && c.reaper < 0 {
		var ws unix.WaitStatus
		if wpid, _ := unix.Wait4(pid, &ws, unix.WNOHANG|unix.WALL, nil); wpid == pid {
			return true, describeStatus(ws)
		}
		return false, ""
	}
	if !c.exited(idx) {
		return false, ""
	}
	st, err := procfs.ReadStat(pid)
	if err != nil || st.State != 'Z' || c.reaped(idx) {
		return true, "gone"
	}
	// proc(5): exit_code is "in the form reported by waitpid(2)".
	return true, describeStatus(unix.WaitStatus(st.ExitCode))
}

// planFailure returns the first failure any process reported.
func planFailure(shared []byte, procs []*proc) error {
	for _, pr := range procs {
		if pr.plan == nil {
			continue
		}
		off := int(pr.plan.offset)
		if sharedword.Load(shared, off+offState) == rstStateFailed {
			return fmt.Errorf("restore pid %d: %w", pr.task.Pid, planError(shared[off:], pr))
		}
	}
	return nil
}

// describeStatus says how a process ended, from its wait status:
// "exit status N" or "killed by SIGNAME" (the signal by its name: a
// syscall.Signal prints as its description, "killed").
func describeStatus(ws unix.WaitStatus) string {
	switch {
	case ws.Exited():
		return fmt.Sprintf("exit status %d", ws.ExitStatus())
	case ws.Signaled():
		name := unix.SignalName(ws.Signal())
		if name == "" {
			name = fmt.Sprintf("signal %d", int(ws.Signal()))
		}
		if ws.CoreDump() {
			name += " (core dumped)"
		}
		return "killed by " + name
	}
	return fmt.Sprintf("status %#x", uint32(ws))
}

// planError turns the restorer's failure report into one line.
func planError(shared []byte, pr *proc) error {
	task := pr.task
	errno := int32(binary.LittleEndian.Uint32(shared[offErr:]))
	step := binary.LittleEndian.Uint32(shared[offErrStep:])
	index := binary.LittleEndian.Uint32(shared[offErrIndex:])
	what := rstSteps[step]
	if what == "" {
		what = fmt.Sprintf("step %d", step)
	}
	var e error = unix.Errno(-errno)
	if errno == -int32(unix.EEXIST) {
		// clone3 set_tid fails with EEXIST when the PID is taken
		// (kernel/pid.c alloc_pid); index names it as each step does.
		taken := -1
		switch step {
		case rstStepClone:
			taken = int(task.Pid)
		case rstStepTree:
			taken = int(index)
		case rstStepThread:
			if int(index) < len(task.Threads) {
				taken = int(task.Threads[index].Tid)
			}
		}
		if taken > 0 {
			return classed(Temporary, fmt.Errorf("%s: pid %d is in use: another process took it during the restore", what, taken))
		}
	}
	if step == rstStepFixups && int(index) < len(pr.plan.fixups) {
		// F_SETLK and flock LOCK_NB fail with EAGAIN (or EACCES) when
		// another process holds a conflicting lock (man 2 fcntl, man 2
		// flock: EWOULDBLOCK is EAGAIN on Linux).
		if e == unix.EAGAIN || e == unix.EACCES {
			return classed(Temporary, fmt.Errorf("%s: %s: another process holds a conflicting lock", what, pr.plan.fixups[index]))
		}
		return fmt.Errorf("%s: %s: %w", what, pr.plan.fixups[index], e)
	}
	if step == rstStepPageSum && e == unix.EBADMSG && int(index) < len(pr.plan.pages) {
		// index is the run that ended the bad chunk.
		if f := pr.plan.pages[index].File; int(f) < len(pr.plan.pageErrors) && pr.plan.pageErrors[f] != nil {
			return pr.plan.pageErrors[f]()
		}
	}
	if step == rstStepAttrs && int(index) < len(pr.plan.callNames) {
		return fmt.Errorf("%s: %s: %w", what, pr.plan.callNames[index], e)
	}
	return fmt.Errorf("%s (item %d): %w", what, index, e)
}
