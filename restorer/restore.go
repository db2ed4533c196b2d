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
	"bytes"
	"debug/elf"
	_ "embed"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"gocr/images"
	"gocr/proc"
	gocrpb "gocr/proto"
	"gocr/ptrace"
)

//go:embed restorer.elf
var restorerELF []byte

// Options say what to restore and how.
type Options struct {
	Dir string
	// Detach: return once the process runs, instead of waiting for it.
	Detach bool
	// Stdio given to the restored process where its own stdio was
	// connected outside the dump (a terminal, a shell's pipe).
	Stdin, Stdout, Stderr *os.File
}

// Result is how a restore ended.
type Result struct {
	Pid        int
	ExitStatus int // when not detached: the restored process's exit status (128+signal if killed)
}

// Run restores the dump in opts.Dir.
func Run(opts Options) (*Result, error) {
	dir, err := images.Open(opts.Dir)
	if err != nil {
		return nil, err
	}
	inv := dir.Inventory()
	if len(inv.Pids) != 1 {
		return nil, fmt.Errorf("%s: dump of %d processes: process trees are not supported yet", opts.Dir, len(inv.Pids))
	}
	pid := int(inv.RootPid)
	task, err := dir.ReadTask(pid)
	if err != nil {
		return nil, err
	}
	mm, err := dir.ReadMm(pid)
	if err != nil {
		return nil, err
	}
	files, err := dir.ReadFiles(pid)
	if err != nil {
		return nil, err
	}
	ranges, err := dir.ReadPagemap(pid)
	if err != nil {
		return nil, err
	}
	pages, dataSize, err := dir.OpenPages(pid)
	if err != nil {
		return nil, err
	}
	defer pages.Close()
	var npages uint64
	for _, r := range ranges {
		npages += r.NrPages
	}
	if int64(npages*pageSize) != dataSize {
		return nil, fmt.Errorf("%s: page map lists %d pages but the page image holds %d bytes", opts.Dir, npages, dataSize)
	}

	p, err := newPlan(task, mm, ranges, images.PagesDataOffset)
	if err != nil {
		return nil, fmt.Errorf("restore pid %d: %w", pid, err)
	}
	if err := checkMachine(inv, task, mm); err != nil {
		return nil, fmt.Errorf("restore pid %d: %w", pid, err)
	}
	if err := checkFiles(mm); err != nil {
		return nil, fmt.Errorf("restore pid %d: %w", pid, err)
	}
	if err := checkRlimits(task); err != nil {
		return nil, fmt.Errorf("restore pid %d: %w", pid, err)
	}
	if err := checkCwd(task); err != nil {
		return nil, fmt.Errorf("restore pid %d: %w", pid, err)
	}
	sources, err := openFds(files, opts)
	if err != nil {
		return nil, fmt.Errorf("restore pid %d: %w", pid, err)
	}
	defer func() {
		for _, f := range sources {
			if f != nil {
				f.Close()
			}
		}
	}()
	// fd 3 is the plan, 4 the page image, 5.. the fd sources
	// (exec.Cmd.ExtraFiles[i] becomes fd 3+i).
	p.args.PagesFd = 4
	maxFd := int32(4 + len(sources))
	srcOf := map[int32]int32{}
	for i, f := range files.Fds {
		src := int32(5 + i)
		if f.SharedWith >= 0 {
			// One open file description, as in the dumped process.
			s, ok := srcOf[f.SharedWith]
			if !ok {
				return nil, fmt.Errorf("restore pid %d: fd %d shares a file with fd %d, which is not in the image", pid, f.Fd, f.SharedWith)
			}
			src = s
		}
		srcOf[f.Fd] = src
		p.fds = append(p.fds, rstFd{Target: f.Fd, Src: src, Cloexec: b2u(f.Cloexec)})
		maxFd = max(maxFd, f.Fd)
		for _, w := range f.EpollWatches {
			p.epoll = append(p.epoll, rstEpoll{Epfd: f.Fd, Tfd: w.Tfd, Events: w.Events, Data: w.Data})
		}
	}
	p.args.MaxFd = uint32(maxFd)
	holeSize, err := holeSizeFor(p)
	if err != nil {
		return nil, err
	}
	p.args.HoleSize = holeSize
	cands := holeCandidates(mm.Vmas, holeSize)
	if len(cands) == 0 {
		return nil, fmt.Errorf("restore pid %d: no room in the address space for the restorer", pid)
	}
	copy(p.args.HoleCandidates[:], cands)
	for _, th := range task.Threads {
		if err := waitPidFree(int(th.Tid)); err != nil {
			return nil, err
		}
	}

	planBytes, err := p.encode()
	if err != nil {
		return nil, fmt.Errorf("restore pid %d: %w", pid, err)
	}
	return launch(pid, task, planBytes, pages, sources, opts)
}

func b2u(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}

// checkMachine refuses an image this machine cannot run: xsave features
// the CPU (or its kernel) does not enable, or a vDSO/vvar layout that is
// not this kernel's.
func checkMachine(inv *gocrpb.Inventory, task *gocrpb.Task, mm *gocrpb.Mm) error {
	if inv.PageSize != 0 && inv.PageSize != pageSize {
		return fmt.Errorf("image has %d-byte pages, this machine %d", inv.PageSize, pageSize)
	}
	have := cpuXCR0()
	for _, th := range task.Threads {
		if th.Regs == nil || len(th.Xsave) < 576 {
			return fmt.Errorf("thread %d: registers missing from the image", th.Tid)
		}
		if want := th.XstateBv | ptrace.XCR0(th.Xsave); want&^have != 0 {
			return fmt.Errorf("the image uses CPU register state this CPU lacks (xsave features %#x, this CPU has %#x): restore on a machine with the same CPU features", want, have)
		}
	}
	own, err := proc.ReadMaps(os.Getpid())
	if err != nil {
		return err
	}
	ownSpecial := map[string]uint64{}
	for _, m := range own {
		switch m.Path {
		case "[vdso]", "[vvar]", "[vvar_vclock]":
			ownSpecial[m.Path] = m.End - m.Start
		}
	}
	imgSpecial := map[string]uint64{}
	for _, v := range mm.Vmas {
		switch v.Kind {
		case gocrpb.VmaKind_VMA_VDSO, gocrpb.VmaKind_VMA_VVAR, gocrpb.VmaKind_VMA_VVAR_VCLOCK:
			imgSpecial[v.Name] = v.End - v.Start
		}
	}
	for name, size := range imgSpecial {
		if ownSpecial[name] != size {
			return fmt.Errorf("the image's %s (%d bytes) does not match this kernel's (%d bytes): restore on the kernel it was dumped on (%s)", name, size, ownSpecial[name], inv.KernelRelease)
		}
	}
	for name := range ownSpecial {
		if _, ok := imgSpecial[name]; !ok {
			return fmt.Errorf("this kernel has %s, the image does not: restore on the kernel it was dumped on (%s)", name, inv.KernelRelease)
		}
	}
	return nil
}

// checkFiles: every mapped file must still be there and unchanged, or the
// restored code and data would silently differ.
func checkFiles(mm *gocrpb.Mm) error {
	seen := map[string]bool{}
	check := func(ref *gocrpb.FileRef, what string) error {
		if ref == nil || seen[ref.Path] {
			return nil
		}
		seen[ref.Path] = true
		var st unix.Stat_t
		if err := unix.Stat(ref.Path, &st); err != nil {
			return fmt.Errorf("%s %s: %w", what, ref.Path, err)
		}
		if st.Size != ref.Size || st.Mtim.Nano() != ref.MtimeNs {
			return fmt.Errorf("%s %s changed since the dump (size %d, was %d)", what, ref.Path, st.Size, ref.Size)
		}
		return nil
	}
	if err := check(mm.Exe, "executable"); err != nil {
		return err
	}
	for _, v := range mm.Vmas {
		if err := check(v.File, "mapped file"); err != nil {
			return err
		}
	}
	return nil
}

// checkRlimits: without CAP_SYS_RESOURCE no hard limit can be raised
// (man 2 setrlimit), so a dumped hard limit above ours cannot be restored.
func checkRlimits(task *gocrpb.Task) error {
	for _, rl := range task.Rlimits {
		var cur unix.Rlimit
		if err := unix.Getrlimit(int(rl.Resource), &cur); err != nil {
			return err
		}
		if rl.Max > cur.Max {
			return fmt.Errorf("resource limit %d: the image's hard limit %d is above gocr's own (%d) and cannot be raised", rl.Resource, rl.Max, cur.Max)
		}
	}
	return nil
}

func checkCwd(task *gocrpb.Task) error {
	for _, d := range []string{task.Cwd, task.Root} {
		if st, err := os.Stat(d); err != nil {
			return fmt.Errorf("directory %s: %w", d, err)
		} else if !st.IsDir() {
			return fmt.Errorf("%s is no longer a directory", d)
		}
	}
	return nil
}

// openFds opens every fd's file the way the process had it, at its offset.
func openFds(files *gocrpb.Files, opts Options) ([]*os.File, error) {
	var out []*os.File
	fail := func(err error) ([]*os.File, error) {
		for _, f := range out {
			if f != nil {
				f.Close()
			}
		}
		return nil, err
	}
	for _, fd := range files.Fds {
		var f *os.File
		if fd.SharedWith >= 0 {
			// Opened once, for the lower fd; this slot stays unused.
			out = append(out, nil)
			continue
		}
		switch fd.Kind {
		case gocrpb.FdKind_FD_INHERIT:
			std := []*os.File{opts.Stdin, opts.Stdout, opts.Stderr}
			if fd.Fd < 0 || fd.Fd > 2 || std[fd.Fd] == nil {
				return fail(fmt.Errorf("fd %d: nothing to connect it to", fd.Fd))
			}
			// A dup, so closing ours later leaves gocr's stdio alone.
			nfd, err := unix.FcntlInt(std[fd.Fd].Fd(), unix.F_DUPFD_CLOEXEC, 0)
			if err != nil {
				return fail(fmt.Errorf("fd %d: %w", fd.Fd, err))
			}
			f = os.NewFile(uintptr(nfd), fd.Description)
		case gocrpb.FdKind_FD_REGULAR, gocrpb.FdKind_FD_DIRECTORY, gocrpb.FdKind_FD_CHARDEV:
			if fd.File == nil {
				return fail(fmt.Errorf("fd %d: no file in the image", fd.Fd))
			}
			// Flags as dumped, minus those that only act at creation.
			flags := int(fd.Flags) &^ (unix.O_CREAT | unix.O_EXCL | unix.O_TRUNC | unix.O_NOCTTY)
			nfd, err := unix.Open(fd.File.Path, flags|unix.O_CLOEXEC, 0)
			if err != nil {
				return fail(fmt.Errorf("fd %d: open %s: %w", fd.Fd, fd.File.Path, err))
			}
			f = os.NewFile(uintptr(nfd), fd.File.Path)
			if fd.Kind == gocrpb.FdKind_FD_REGULAR || (fd.Kind == gocrpb.FdKind_FD_DIRECTORY && fd.Pos != 0) {
				if _, err := unix.Seek(nfd, fd.Pos, 0); err != nil {
					f.Close()
					return fail(fmt.Errorf("fd %d: seek %s to %d: %w", fd.Fd, fd.File.Path, fd.Pos, err))
				}
			}
		case gocrpb.FdKind_FD_EVENTFD:
			flags := unix.EFD_CLOEXEC
			if fd.EventfdSemaphore {
				flags |= unix.EFD_SEMAPHORE
			}
			if fd.Flags&unix.O_NONBLOCK != 0 {
				flags |= unix.EFD_NONBLOCK
			}
			nfd, err := unix.Eventfd(0, flags)
			if err != nil {
				return fail(fmt.Errorf("fd %d: eventfd: %w", fd.Fd, err))
			}
			f = os.NewFile(uintptr(nfd), "eventfd")
			// The counter is 64 bits, eventfd's initval only 32: a
			// write adds the whole value (man 2 eventfd).
			if fd.EventfdCount > 0 {
				var b [8]byte
				binary.LittleEndian.PutUint64(b[:], fd.EventfdCount)
				if _, err := unix.Write(nfd, b[:]); err != nil {
					f.Close()
					return fail(fmt.Errorf("fd %d: set eventfd counter: %w", fd.Fd, err))
				}
			}
		case gocrpb.FdKind_FD_EPOLL:
			// Created empty here; its watches are added by the
			// restorer once every fd has its dumped number.
			nfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
			if err != nil {
				return fail(fmt.Errorf("fd %d: epoll_create1: %w", fd.Fd, err))
			}
			f = os.NewFile(uintptr(nfd), "epoll")
		default:
			return fail(fmt.Errorf("fd %d: unsupported kind %v", fd.Fd, fd.Kind))
		}
		out = append(out, f)
	}
	return out, nil
}

const (
	restorerStack = 256 << 10
	parkSize      = 1 << 20
)

// holeSizeFor is the room the restorer needs at its new address: its
// image, its stack, the plan, and a parking area for the vDSO pages
// (restorer/c/restorer.c relocate).
func holeSizeFor(p *plan) (uint64, error) {
	f, err := elf.NewFile(bytes.NewReader(restorerELF))
	if err != nil {
		return 0, fmt.Errorf("embedded restorer: %w", err)
	}
	var image uint64
	for _, ph := range f.Progs {
		if ph.Type == elf.PT_LOAD {
			image = max(image, ph.Vaddr+ph.Memsz)
		}
	}
	planSize, err := p.encode()
	if err != nil {
		return 0, err
	}
	threads := uint64(len(p.threads)-1) * threadStack
	return pageAlign(image) + restorerStack + pageAlign(uint64(len(planSize))) + threads + parkSize, nil
}

func pageAlign(x uint64) uint64 { return (x + pageSize - 1) &^ (pageSize - 1) }

// holeCandidates proposes addresses where a hole of size fits between the
// dumped mappings, largest gaps first, away from their edges (where the
// helper's own stack and heap are likelier). The restorer takes the first
// one still free in its own address space.
func holeCandidates(vmas []*gocrpb.Vma, size uint64) []uint64 {
	const low, high = 1 << 32, 0x7ffffffff000 - (1 << 30)
	type gap struct{ start, end uint64 }
	var gaps []gap
	prev := uint64(low)
	for _, v := range vmas {
		if v.Start > prev {
			gaps = append(gaps, gap{prev, min(v.Start, high)})
		}
		prev = max(prev, v.End)
	}
	if prev < high {
		gaps = append(gaps, gap{prev, high})
	}
	sort.Slice(gaps, func(i, j int) bool { return gaps[i].end-gaps[i].start > gaps[j].end-gaps[j].start })
	var out []uint64
	for _, g := range gaps {
		if g.end <= g.start || g.end-g.start < 3*size {
			continue
		}
		for _, frac := range []uint64{2, 3} {
			a := g.start + (g.end-g.start)/frac
			a &^= (1 << 21) - 1
			if a >= g.start+size && a+size <= g.end {
				out = append(out, a)
			}
		}
		if len(out) >= rstHoleCandidates {
			break
		}
	}
	if len(out) > rstHoleCandidates {
		out = out[:rstHoleCandidates]
	}
	return out
}

// waitPidFree: the PID must be free. A zombie waiting for its parent (or
// for init, which reaps orphans a second or two late here) gets a few
// seconds; anything else is an error naming the holder.
func waitPidFree(pid int) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, err := proc.ReadStat(pid)
		if errors.Is(err, proc.ErrNoProcess) {
			return nil
		}
		if err == nil && st.State != 'Z' || time.Now().After(deadline) {
			name := "?"
			if err == nil {
				name = st.Comm
			}
			state := "running"
			if err == nil && st.State == 'Z' {
				state = "a zombie not yet reaped by its parent"
			}
			holder := pid
			if s, err := proc.ReadStatus(pid); err == nil && s.Tgid != 0 {
				holder = s.Tgid
			}
			return fmt.Errorf("pid %d is in use by %s (pid %d, %s): stop it before restoring", pid, strings.Trim(name, "()"), holder, state)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// launch starts the restorer and sees the restore through.
func launch(pid int, task *gocrpb.Task, planBytes []byte, pages *os.File, sources []*os.File, opts Options) (*Result, error) {
	planFd, err := unix.MemfdCreate("gocr-plan", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("restore pid %d: memfd: %w", pid, err)
	}
	planFile := os.NewFile(uintptr(planFd), "gocr-plan")
	defer planFile.Close()
	if _, err := planFile.WriteAt(planBytes, 0); err != nil {
		return nil, fmt.Errorf("restore pid %d: write plan: %w", pid, err)
	}
	shared, err := unix.Mmap(planFd, 0, len(planBytes), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("restore pid %d: map plan: %w", pid, err)
	}
	defer unix.Munmap(shared)

	exeFd, err := unix.MemfdCreate("gocr-restorer", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("restore pid %d: memfd: %w", pid, err)
	}
	exeFile := os.NewFile(uintptr(exeFd), "gocr-restorer")
	defer exeFile.Close()
	if _, err := exeFile.Write(restorerELF); err != nil {
		return nil, fmt.Errorf("restore pid %d: write restorer: %w", pid, err)
	}

	// execve resolves /proc/self/fd/N before close-on-exec takes the fd
	// away (fs/exec.c: the file is opened first, fds closed at the point
	// of no return).
	cmd := exec.Command(fmt.Sprintf("/proc/self/fd/%d", exeFd))
	cmd.Args = []string{"gocr-restorer"}
	cmd.Env = []string{}
	cmd.ExtraFiles = append([]*os.File{planFile, pages}, sources...)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("restore pid %d: start restorer: %w", pid, err)
	}
	helperErr := cmd.Wait()
	state := loadUint32(shared, offState)
	if state == rstStateFailed {
		reapQuietly(pid)
		return nil, fmt.Errorf("restore pid %d: %w", pid, planError(shared, task))
	}
	if helperErr != nil {
		return nil, fmt.Errorf("restore pid %d: restorer failed before creating the process: %v", pid, helperErr)
	}

	// The new process is gocr's child (CLONE_PARENT). Wait for it to
	// finish its part, or to die trying.
	for {
		state = loadUint32(shared, offState)
		if state != rstStateRunning {
			break
		}
		futexWait(shared, offState, rstStateRunning, 50*time.Millisecond)
		var ws unix.WaitStatus
		if wpid, _ := unix.Wait4(pid, &ws, unix.WNOHANG|unix.WALL, nil); wpid == pid {
			if loadUint32(shared, offState) == rstStateFailed {
				return nil, fmt.Errorf("restore pid %d: %w", pid, planError(shared, task))
			}
			return nil, fmt.Errorf("restore pid %d: the restored process died during restore (%s)", pid, describeStatus(ws))
		}
	}
	if state == rstStateFailed {
		reapQuietly(pid)
		return nil, fmt.Errorf("restore pid %d: %w", pid, planError(shared, task))
	}
	base := binary.LittleEndian.Uint64(shared[offRestorerBase:])
	size := binary.LittleEndian.Uint64(shared[offRestorerSize:])
	if err := finish(pid, task, base, size); err != nil {
		unix.Kill(pid, unix.SIGKILL)
		reapQuietly(pid)
		return nil, fmt.Errorf("restore pid %d: %w", pid, err)
	}
	res := &Result{Pid: pid}
	if opts.Detach {
		return res, nil
	}
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(pid, &ws, 0, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("wait for pid %d: %w", pid, err)
		}
		break
	}
	switch {
	case ws.Exited():
		res.ExitStatus = ws.ExitStatus()
	case ws.Signaled():
		res.ExitStatus = 128 + int(ws.Signal())
	}
	return res, nil
}

func describeStatus(ws unix.WaitStatus) string {
	switch {
	case ws.Exited():
		return fmt.Sprintf("exit status %d", ws.ExitStatus())
	case ws.Signaled():
		return fmt.Sprintf("killed by %v", ws.Signal())
	}
	return fmt.Sprintf("status %#x", uint32(ws))
}

func reapQuietly(pid int) {
	var ws unix.WaitStatus
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		wpid, err := unix.Wait4(pid, &ws, unix.WNOHANG|unix.WALL, nil)
		if wpid == pid || errors.Is(err, unix.ECHILD) {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	unix.Kill(pid, unix.SIGKILL)
	unix.Wait4(pid, &ws, unix.WALL, nil)
}

// planError turns the restorer's failure report into one line.
func planError(shared []byte, task *gocrpb.Task) error {
	errno := int32(binary.LittleEndian.Uint32(shared[offErr:]))
	step := binary.LittleEndian.Uint32(shared[offErrStep:])
	index := binary.LittleEndian.Uint32(shared[offErrIndex:])
	what := rstSteps[step]
	if what == "" {
		what = fmt.Sprintf("step %d", step)
	}
	var e error = unix.Errno(-errno)
	if step == 1 && errno == -int32(unix.EEXIST) {
		return fmt.Errorf("%s: pid %d was taken by another process just now", what, task.Pid)
	}
	return fmt.Errorf("%s (item %d): %w", what, index, e)
}

// finish removes the restorer from the new process and gives every thread
// its dumped registers, extended state and signal mask. All threads are
// stopped before the restorer's code, which they are parked in, goes.
func finish(pid int, task *gocrpb.Task, base, size uint64) error {
	t := ptrace.NewTracer()
	defer t.Close()
	// On failure the caller kills the process, which ends the tracing.
	for _, th := range task.Threads {
		tid := int(th.Tid)
		if err := t.Seize(tid); err != nil {
			return fmt.Errorf("seize thread %d: %w", tid, err)
		}
		if _, err := t.StopTask(tid); err != nil {
			return fmt.Errorf("stop thread %d: %w", tid, err)
		}
	}
	insn, err := ptrace.FindSyscallInsn(pid)
	if err != nil {
		return err
	}
	ret, err := t.InjectSyscall(pid, insn, unix.SYS_MUNMAP, base, size)
	if err == nil {
		err = ptrace.SyscallError(ret)
	}
	if err != nil {
		return fmt.Errorf("unmap restorer: %w", err)
	}
	if err := t.ReturnToEventStop(pid); err != nil {
		return err
	}
	for _, th := range task.Threads {
		tid := int(th.Tid)
		regs := ptrace.RegsFromProto(th.Regs)
		restartSyscall(&regs)
		if err := t.SetRegs(tid, &regs); err != nil {
			return fmt.Errorf("thread %d: %w", tid, err)
		}
		if err := t.SetXstate(tid, th.Xsave); err != nil {
			return fmt.Errorf("thread %d: set extended registers: %w", tid, err)
		}
		if err := t.SetSigmask(tid, th.Sigmask); err != nil {
			return fmt.Errorf("thread %d: %w", tid, err)
		}
	}
	// Release them together, the leader last.
	for i := len(task.Threads) - 1; i >= 0; i-- {
		if err := t.Detach(int(task.Threads[i].Tid), 0); err != nil {
			return fmt.Errorf("release thread %d: %w", task.Threads[i].Tid, err)
		}
	}
	return nil
}

// restartSyscall prepares a thread dumped inside an interrupted system
// call. Registers set at a ptrace event stop go through the kernel's
// restart logic on resume (arch/x86/kernel/signal.c
// arch_do_signal_or_restart): -ERESTARTSYS, -ERESTARTNOINTR and
// -ERESTARTNOHAND re-execute the call, as they would have in the dumped
// process. -ERESTART_RESTARTBLOCK would call restart_syscall, whose
// restart block lived in the old kernel task and is gone (a fresh task's is
// do_no_restart_syscall: -EINTR); restarting the original call with its
// original arguments instead is what the program can tell apart least.
func restartSyscall(r *ptrace.Regs) {
	if int64(r.Orig_rax) < 0 {
		return
	}
	if int64(r.Rax) == -int64(ptrace.ERESTART_RESTARTBLOCK) {
		restart := -int64(ptrace.ERESTARTNOINTR)
		r.Rax = uint64(restart)
	}
}
