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
	"io/fs"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/gocrpb"
	"github.com/gocr/gocr/images"
	"github.com/gocr/gocr/internal/testhook"
	procfs "github.com/gocr/gocr/proc"
	"github.com/gocr/gocr/ptrace"
	"github.com/gocr/gocr/sharedword"
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
	// Released, if set, is called once the processes run on their own
	// (before waiting for the root without Detach).
	Released func()
}

// Result is how a restore ended.
type Result struct {
	Pid        int
	ExitStatus int // when not detached: the restored process's exit status (128+signal if killed)
}

// proc is one process to restore.
type proc struct {
	task   *gocrpb.Task
	mm     *gocrpb.Mm
	files  *gocrpb.Files
	ranges []*gocrpb.PageRange
	plan   *plan
	index  int // in the process table
}

// Run restores the dump in opts.Dir.
func Run(opts Options) (*Result, error) {
	dir, err := images.Open(opts.Dir)
	if err != nil {
		return nil, err
	}
	inv := dir.Inventory()
	if len(inv.Pids) == 0 || inv.Pids[0] != inv.RootPid {
		return nil, fmt.Errorf("%s: the inventory must list the root process %d first", opts.Dir, inv.RootPid)
	}
	var procs []*proc
	byPid := map[int32]*proc{}
	src := &sources{dir: dir}
	defer src.close()
	for i, pid32 := range inv.Pids {
		pid := int(pid32)
		task, err := dir.ReadTask(pid)
		if err != nil {
			return nil, err
		}
		pr := &proc{task: task, index: i}
		procs = append(procs, pr)
		byPid[pid32] = pr
		if i > 0 && byPid[task.Ppid] == nil {
			return nil, fmt.Errorf("%s: process %d's parent %d is not in the dump before it", opts.Dir, pid, task.Ppid)
		}
		if task.Zombie {
			continue
		}
		if pr.mm, err = dir.ReadMm(pid); err != nil {
			return nil, err
		}
		if pr.files, err = dir.ReadFiles(pid); err != nil {
			return nil, err
		}
		if pr.ranges, err = dir.ReadPagemap(pid); err != nil {
			return nil, err
		}
		nstreams := 1
		for _, r := range pr.ranges {
			nstreams = max(nstreams, int(r.Stream)+1)
		}
		var pages []*os.File
		var dataSizes []int64
		for s := 0; s < nstreams; s++ {
			f, size, err := dir.OpenPages(pid, s)
			if err != nil {
				for _, f := range pages {
					f.Close()
				}
				return nil, err
			}
			pages = append(pages, f)
			dataSizes = append(dataSizes, size)
		}
		if pr.plan, err = newPlan(task, pr.mm, pr.ranges, dataSizes); err != nil {
			for _, f := range pages {
				f.Close()
			}
			return nil, fmt.Errorf("restore pid %d: %w", pid, err)
		}
		// The sources own the files from here on (closed with them).
		for s, f := range pages {
			pr.plan.args.PagesFds[s] = src.add(f)
		}
		if err := checkMachine(inv, task, pr.mm); err != nil {
			return nil, fmt.Errorf("restore pid %d: %w", pid, err)
		}
		if err := checkFiles(pr.mm); err != nil {
			return nil, fmt.Errorf("restore pid %d: %w", pid, err)
		}
		if err := checkRlimits(task); err != nil {
			return nil, fmt.Errorf("restore pid %d: %w", pid, err)
		}
		if err := checkCwd(task); err != nil {
			return nil, fmt.Errorf("restore pid %d: %w", pid, err)
		}
	}
	if procs[0].task.Zombie {
		return nil, fmt.Errorf("%s: the root process %d is a zombie", opts.Dir, inv.RootPid)
	}
	if err := src.openAll(procs, opts); err != nil {
		return nil, err
	}
	tree, err := buildTree(procs, byPid)
	if err != nil {
		return nil, err
	}
	// The root's parent-death signal named a parent outside the dump; its
	// parent now is gocr, which exits at once with -d and would kill it.
	// It is kept only while gocr stays to wait for the root.
	if opts.Detach {
		procs[0].plan.args.PdeathSig = 0
	}
	// The lifeline: every restored process holds its read end until gocr
	// takes over; if gocr dies first they see EOF and end themselves
	// instead of staying parked (restorer/c/restorer.c).
	lifeR, lifeW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("restore: lifeline pipe: %w", err)
	}
	defer lifeW.Close()
	lifeline := src.add(lifeR)
	for _, pr := range procs {
		if pr.plan == nil {
			continue
		}
		pr.plan.args.LifelineFd = lifeline
		if err := pr.plan.bindFds(pr, src); err != nil {
			return nil, fmt.Errorf("restore pid %d: %w", pr.task.Pid, err)
		}
	}
	for _, pr := range procs {
		if err := waitPidFree(int(pr.task.Pid)); err != nil {
			return nil, err
		}
		for _, th := range pr.task.Threads[min(1, len(pr.task.Threads)):] {
			if err := waitPidFree(int(th.Tid)); err != nil {
				return nil, err
			}
		}
	}
	pickPageHelperTids(procs)
	// The restorer needs room for itself, its stack, the whole plan
	// mapping and its threads' stacks, in a hole of each address space.
	planBytes, err := tree.encode(procs)
	if err != nil {
		return nil, fmt.Errorf("restore pid %d: %w", inv.RootPid, err)
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
			return nil, fmt.Errorf("restore pid %d: no room in the address space for the restorer", pr.task.Pid)
		}
		pr.plan.args.HoleSize = size
		copy(pr.plan.args.HoleCandidates[:], cands)
	}
	if planBytes, err = tree.encode(procs); err != nil {
		return nil, fmt.Errorf("restore pid %d: %w", inv.RootPid, err)
	}
	return launch(procs, planBytes, src, opts)
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
		if th.Regs == nil || len(th.Xsave) < ptrace.XstateExtendedOffset {
			return fmt.Errorf("thread %d: registers missing from the image", th.Tid)
		}
		if want := th.XstateBv | ptrace.XCR0(th.Xsave); want&^have != 0 {
			return fmt.Errorf("the image uses CPU register state this CPU lacks (xsave features %#x, this CPU has %#x): restore on a machine with the same CPU features", want, have)
		}
	}
	own, err := procfs.ReadMaps(os.Getpid())
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

// sources are the files gocr opens for the restored processes: page
// images, every open file description, pipes, shared memory objects. The
// restorer gets them all as fds 4 and up (fd 3 is the plan); every process
// it creates inherits them, takes its own and closes the rest.
type sources struct {
	files []*os.File
	// desc maps a dumped open file description, named by its first
	// (pid, fd), to its source fd.
	desc  map[[2]int32]int32
	pipes map[uint64]*pipePair
	shmem map[uint64]int32
	// memfds: one per dumped memfd, filled from memfd-ID.img.
	dir       *images.Dir
	memfdMeta map[uint64]*gocrpb.Memfd
	memfds    map[uint64]int32
}

type pipePair struct{ r, w int32 }

const firstSource = 4

func (s *sources) add(f *os.File) int32 {
	s.files = append(s.files, f)
	return int32(firstSource + len(s.files) - 1)
}

func (s *sources) close() {
	for _, f := range s.files {
		f.Close()
	}
}

func (s *sources) addFd(fd int, name string) int32 { return s.add(os.NewFile(uintptr(fd), name)) }

// openAll opens every open file description the processes had, the way
// they had it, at its offset: once, however many fds and processes share
// it. Pipes are recreated with their size and unread data, shared anonymous
// memory as one object per dumped object.
func (s *sources) openAll(procs []*proc, opts Options) error {
	s.desc, s.pipes, s.shmem = map[[2]int32]int32{}, map[uint64]*pipePair{}, map[uint64]int32{}
	s.memfdMeta, s.memfds = map[uint64]*gocrpb.Memfd{}, map[uint64]int32{}
	for _, pr := range procs {
		if pr.files != nil {
			for _, m := range pr.files.Memfds {
				s.memfdMeta[m.Id] = m
			}
		}
	}
	for _, pr := range procs {
		if pr.files == nil {
			continue
		}
		pid := pr.task.Pid
		for _, fd := range pr.files.Fds {
			if fd.SharedWith >= 0 {
				continue
			}
			n, err := s.open(fd, opts)
			if err != nil {
				return fmt.Errorf("restore pid %d: fd %d: %w", pid, fd.Fd, err)
			}
			s.desc[[2]int32{pid, fd.Fd}] = n
		}
	}
	for _, pr := range procs {
		if pr.mm == nil {
			continue
		}
		if err := s.openShmem(pr.mm); err != nil {
			return fmt.Errorf("restore pid %d: %w", pr.task.Pid, err)
		}
	}
	return nil
}

func (s *sources) open(fd *gocrpb.Fd, opts Options) (int32, error) {
	switch fd.Kind {
	case gocrpb.FdKind_FD_INHERIT:
		std := []*os.File{opts.Stdin, opts.Stdout, opts.Stderr}
		if fd.Fd < 0 || fd.Fd > 2 || std[fd.Fd] == nil {
			return 0, errors.New("nothing to connect it to")
		}
		// A dup, so closing ours later leaves gocr's stdio alone.
		nfd, err := unix.FcntlInt(std[fd.Fd].Fd(), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			return 0, err
		}
		return s.addFd(nfd, fd.Description), nil
	case gocrpb.FdKind_FD_REGULAR, gocrpb.FdKind_FD_DIRECTORY, gocrpb.FdKind_FD_CHARDEV:
		if fd.File == nil {
			return 0, errors.New("no file in the image")
		}
		// Flags as dumped, minus those that only act at creation.
		flags := int(fd.Flags) &^ (unix.O_CREAT | unix.O_EXCL | unix.O_TRUNC | unix.O_NOCTTY)
		nfd, err := unix.Open(fd.File.Path, flags|unix.O_CLOEXEC, 0)
		if err != nil {
			return 0, fmt.Errorf("open %s: %w", fd.File.Path, err)
		}
		n := s.addFd(nfd, fd.File.Path)
		if fd.Kind == gocrpb.FdKind_FD_REGULAR || (fd.Kind == gocrpb.FdKind_FD_DIRECTORY && fd.Pos != 0) {
			if _, err := unix.Seek(nfd, fd.Pos, unix.SEEK_SET); err != nil {
				return 0, fmt.Errorf("seek %s to %d: %w", fd.File.Path, fd.Pos, err)
			}
		}
		return n, nil
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
			return 0, fmt.Errorf("eventfd: %w", err)
		}
		n := s.addFd(nfd, "eventfd")
		// The counter is 64 bits, eventfd's initval only 32: a write
		// adds the whole value (man 2 eventfd).
		if fd.EventfdCount > 0 {
			var b [8]byte
			binary.LittleEndian.PutUint64(b[:], fd.EventfdCount)
			if _, err := unix.Write(nfd, b[:]); err != nil {
				return 0, fmt.Errorf("set eventfd counter: %w", err)
			}
		}
		return n, nil
	case gocrpb.FdKind_FD_EPOLL:
		// Created empty here; its watches are added by the restorer
		// once every fd has its dumped number.
		nfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
		if err != nil {
			return 0, fmt.Errorf("epoll_create1: %w", err)
		}
		return s.addFd(nfd, "epoll"), nil
	case gocrpb.FdKind_FD_MEMFD:
		m, err := s.memfd(fd.MemfdId)
		if err != nil {
			return 0, err
		}
		// Its own open file description of the memfd, with the
		// dumped flags and offset.
		memfd := s.files[m-firstSource]
		nfd, err := unix.Open(fmt.Sprintf("/proc/self/fd/%d", memfd.Fd()), int(fd.Flags)&^(unix.O_CREAT|unix.O_EXCL|unix.O_TRUNC)|unix.O_CLOEXEC, 0)
		if err != nil {
			return 0, fmt.Errorf("reopen memfd: %w", err)
		}
		n := s.addFd(nfd, fd.Description)
		if _, err := unix.Seek(nfd, fd.Pos, unix.SEEK_SET); err != nil {
			return 0, fmt.Errorf("seek memfd to %d: %w", fd.Pos, err)
		}
		return n, nil
	case gocrpb.FdKind_FD_SIGNALFD:
		flags := unix.SFD_CLOEXEC
		if fd.Flags&unix.O_NONBLOCK != 0 {
			flags |= unix.SFD_NONBLOCK
		}
		// A signalfd reads the signals of whoever reads it (man 2
		// signalfd), so one made here serves the restored process.
		mask := unix.Sigset_t{Val: [16]uint64{fd.SignalfdMask}}
		nfd, err := unix.Signalfd(-1, &mask, flags)
		if err != nil {
			return 0, fmt.Errorf("signalfd: %w", err)
		}
		return s.addFd(nfd, "signalfd"), nil
	case gocrpb.FdKind_FD_TIMERFD:
		return s.timerfd(fd)
	case gocrpb.FdKind_FD_INOTIFY:
		return s.inotify(fd)
	case gocrpb.FdKind_FD_PIPE:
		pp, err := s.pipe(fd)
		if err != nil {
			return 0, err
		}
		end := pp.r
		if fd.Flags&unix.O_ACCMODE == unix.O_WRONLY {
			end = pp.w
		}
		// O_NONBLOCK belongs to the open file description, one per
		// pipe end (man 2 pipe2).
		if fd.Flags&unix.O_NONBLOCK != 0 {
			if err := unix.SetNonblock(int(s.files[end-firstSource].Fd()), true); err != nil {
				return 0, err
			}
		}
		return end, nil
	case gocrpb.FdKind_FD_FIFO:
		if fd.File == nil {
			return 0, errors.New("no file in the image")
		}
		pp, err := s.pipe(fd)
		if err != nil {
			return 0, err
		}
		// A new open file description of the same FIFO, with the
		// dumped flags; gocr's read-write one keeps the pipe, and its
		// data, alive meanwhile (man 7 fifo).
		keeper := s.files[pp.r-firstSource]
		nfd, err := unix.Open(fmt.Sprintf("/proc/self/fd/%d", keeper.Fd()), int(fd.Flags)|unix.O_CLOEXEC, 0)
		if err != nil {
			return 0, fmt.Errorf("open FIFO %s: %w", fd.File.Path, err)
		}
		return s.addFd(nfd, fd.File.Path), nil
	}
	return 0, fmt.Errorf("unsupported kind %v", fd.Kind)
}

// pipe creates (once per dumped pipe) the pipe behind fd, with its size
// and the data that was in it.
func (s *sources) pipe(fd *gocrpb.Fd) (*pipePair, error) {
	if pp := s.pipes[fd.PipeId]; pp != nil {
		return pp, nil
	}
	var rfd, wfd int
	if fd.Kind == gocrpb.FdKind_FD_FIFO {
		// O_RDWR on a FIFO never blocks and is both ends (man 7 fifo).
		k, err := unix.Open(fd.File.Path, unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("open FIFO %s: %w", fd.File.Path, err)
		}
		rfd, wfd = k, -1
	} else {
		var p [2]int
		if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
			return nil, fmt.Errorf("pipe2: %w", err)
		}
		rfd, wfd = p[0], p[1]
	}
	pp := &pipePair{r: s.addFd(rfd, "pipe"), w: -1}
	if wfd >= 0 {
		pp.w = s.addFd(wfd, "pipe")
	}
	s.pipes[fd.PipeId] = pp
	writer := wfd
	if writer < 0 {
		writer = rfd
	}
	if fd.PipeSize > 0 {
		if _, err := unix.FcntlInt(uintptr(writer), unix.F_SETPIPE_SZ, int(fd.PipeSize)); err != nil {
			return nil, fmt.Errorf("set pipe size %d: %w", fd.PipeSize, err)
		}
	}
	for data := fd.PipeData; len(data) > 0; {
		n, err := unix.Write(writer, data)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("refill pipe: %w", err)
		}
		data = data[n:]
	}
	return pp, nil
}

// openShmem makes one shared memory object per dumped one, the kind
// MAP_SHARED|MAP_ANONYMOUS creates (so /proc/PID/maps names it
// "/dev/zero (deleted)" as before), and keeps it as an fd through
// /proc/self/map_files (man 5 proc).
func (s *sources) openShmem(mm *gocrpb.Mm) error {
	sizes := map[uint64]uint64{}
	for _, v := range mm.Vmas {
		if v.Kind == gocrpb.VmaKind_VMA_ANON_SHARED && v.ShmemId != 0 {
			sizes[v.ShmemId] = max(sizes[v.ShmemId], v.Pgoff+(v.End-v.Start))
		}
	}
	for id, size := range sizes {
		if _, ok := s.shmem[id]; ok {
			continue
		}
		// Sizes can only be known from every process's mappings; the
		// object grows on demand if a later one maps further.
		b, err := unix.Mmap(-1, 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_ANONYMOUS)
		if err != nil {
			return fmt.Errorf("shared memory of %d bytes: %w", size, err)
		}
		start := uint64(uintptr(unsafePointer(b)))
		fd, err := unix.Open(fmt.Sprintf("/proc/self/map_files/%x-%x", start, start+size), unix.O_RDWR|unix.O_CLOEXEC, 0)
		unix.Munmap(b)
		if err != nil {
			return fmt.Errorf("shared memory: open map_files: %w", err)
		}
		s.shmem[id] = s.addFd(fd, "shmem")
	}
	return nil
}

// bindFds points the plan's fds, epoll watches and shared mappings at the
// sources.
func (p *plan) bindFds(pr *proc, s *sources) error {
	maxFd := int32(firstSource + len(s.files))
	for _, f := range pr.files.Fds {
		key := [2]int32{pr.task.Pid, f.Fd}
		if f.SharedWith >= 0 {
			owner := f.SharedPid
			if owner == 0 {
				owner = pr.task.Pid
			}
			key = [2]int32{owner, f.SharedWith}
		}
		src, ok := s.desc[key]
		if !ok {
			return fmt.Errorf("fd %d shares a file with pid %d fd %d, which is not in the dump", f.Fd, key[0], key[1])
		}
		p.fds = append(p.fds, rstFd{Target: f.Fd, Src: src, Cloexec: b2u(f.Cloexec)})
		maxFd = max(maxFd, f.Fd)
		for _, w := range f.EpollWatches {
			p.epoll = append(p.epoll, rstEpoll{Epfd: f.Fd, Tfd: w.Tfd, Events: w.Events, Data: w.Data})
		}
	}
	for i, v := range pr.mm.Vmas {
		p.vmas[i].MapFd = -1
		switch {
		case v.Kind == gocrpb.VmaKind_VMA_ANON_SHARED && v.ShmemId != 0:
			p.vmas[i].MapFd = s.shmem[v.ShmemId]
		case v.MemfdId != 0:
			m, err := s.memfd(v.MemfdId)
			if err != nil {
				return fmt.Errorf("mapping %#x-%#x: %w", v.Start, v.End, err)
			}
			p.vmas[i].MapFd = m
		}
	}
	p.args.MaxFd = uint32(maxFd)
	return nil
}

// tree is the process table handed to the restorer.
type tree struct {
	procs []rstProc
}

// buildTree orders the processes (parents first, as the inventory lists
// them) and works out how each gets its session and process group: a
// session or group led by a process of the dump is recreated by its
// leader; one led from outside (the shell that started the job) is the
// one gocr runs in, inherited.
func buildTree(procs []*proc, byPid map[int32]*proc) (*tree, error) {
	t := &tree{}
	inTree := func(pid int32) bool { return byPid[pid] != nil }
	for i, pr := range procs {
		task := pr.task
		rp := rstProc{Pid: task.Pid, Parent: -1, Pgid: task.Pgid, ExitStatus: task.ExitStatus}
		if task.Zombie {
			rp.Zombie = 1
			copy(rp.Comm[:len(rp.Comm)-1], strings.Trim(task.Comm, "()"))
		}
		var parent *gocrpb.Task
		if i > 0 {
			pp := byPid[task.Ppid]
			rp.Parent = int32(pp.index)
			parent = pp.task
		}
		switch {
		case task.Sid == task.Pid:
			rp.Flags |= rstProcSetsid
		case parent != nil && task.Sid != parent.Sid:
			return nil, fmt.Errorf("pid %d is in session %d, its parent %d in session %d: not supported", task.Pid, task.Sid, parent.Pid, parent.Sid)
		}
		switch {
		case task.Pgid == task.Pid && task.Sid != task.Pid:
			rp.Flags |= rstProcSetpgid
		case task.Pgid == task.Pid:
		case inTree(task.Pgid):
			rp.Flags |= rstProcJoinPgid
		case parent != nil && task.Pgid != parent.Pgid:
			return nil, fmt.Errorf("pid %d is in process group %d, led from outside the dump: not supported", task.Pid, task.Pgid)
		}
		t.procs = append(t.procs, rp)
	}
	return t, nil
}

// encode lays out the tree header, the process table and every plan.
func (t *tree) encode(procs []*proc) ([]byte, error) {
	hdr := binary.Size(rstTree{})
	tableOff := hdr
	off := pageAlign(uint64(tableOff + len(t.procs)*binary.Size(rstProc{})))
	var plans [][]byte
	for i, pr := range procs {
		if pr.plan == nil {
			continue
		}
		b, err := pr.plan.encode()
		if err != nil {
			return nil, err
		}
		t.procs[i].PlanOff = uint32(off)
		pr.plan.offset = uint32(off)
		plans = append(plans, b)
		off += uint64(len(b))
	}
	total := off
	if total > 1<<31 {
		return nil, fmt.Errorf("restore plan of %d bytes is too large", total)
	}
	out := make([]byte, total)
	var head bytes.Buffer
	binary.Write(&head, binary.LittleEndian, rstTree{
		Magic: rstTreeMagic, Version: rstVersion, Size: uint32(total),
		NrProcs: uint32(len(t.procs)), ProcsOff: uint32(tableOff),
	})
	binary.Write(&head, binary.LittleEndian, t.procs)
	copy(out, head.Bytes())
	pi := 0
	for i := range procs {
		if procs[i].plan == nil {
			continue
		}
		b := plans[pi]
		pi++
		// Each plan records the size of the whole mapping it lives in:
		// the restorer moves all of it.
		binary.LittleEndian.PutUint32(b[offSize:], uint32(total))
		copy(out[t.procs[i].PlanOff:], b)
	}
	return out, nil
}

// holeSizeFor is the room the restorer needs at its new address: its
// image, its stack, the plan, a stack for each thread and each page
// stream helper, and a parking area for the vDSO pages
// (restorer/c/restorer.c relocate).
func holeSizeFor(threads, pageStreams int, mapSize uint64) (uint64, error) {
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
	stacks := uint64(threads-1+pageStreams-1) * threadStack
	return pageAlign(image) + restorerStack + pageAlign(mapSize) + stacks + parkSize, nil
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

// pickPageHelperTids gives every process with more than one page stream
// a TID for each helper thread that reads a stream (restorer/c/abi.h
// page_helper_tids): free now, none of the dump's, none given twice. They
// come from the top of the PID range, away from where new processes
// usually get theirs; if one is taken before the restorer asks for it,
// clone3 fails with EEXIST and that stream is read by the process's first
// thread instead. Without free PIDs the streams are simply read one by one.
func pickPageHelperTids(procs []*proc) {
	dumped := map[int]bool{}
	for _, pr := range procs {
		dumped[int(pr.task.Pid)] = true
		for _, th := range pr.task.Threads {
			dumped[int(th.Tid)] = true
		}
	}
	next := pidMax() - 1
	forced, _ := testhook.Int(testhook.PageHelperTid)
	const lowest = 301 // the kernel wraps to RESERVED_PIDS + 1 (kernel/pid.c)
	for _, pr := range procs {
		if pr.plan == nil {
			continue
		}
		for s := 1; s < int(pr.plan.args.NrPageStreams); s++ {
			if forced > 0 {
				pr.plan.args.PageHelperTids[s] = int32(forced)
				continue
			}
			for ; next >= lowest; next-- {
				if dumped[next] {
					continue
				}
				if _, err := os.Stat(fmt.Sprintf("/proc/%d", next)); errors.Is(err, fs.ErrNotExist) {
					break
				}
			}
			if next < lowest {
				return
			}
			pr.plan.args.PageHelperTids[s] = int32(next)
			next--
		}
	}
}

// pidMax is the kernel's pid_max (man 5 proc, /proc/sys/kernel/pid_max),
// or the default 32768 when it cannot be read.
func pidMax() int {
	b, err := os.ReadFile("/proc/sys/kernel/pid_max")
	if err != nil {
		return 32768
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || n <= 0 {
		return 32768
	}
	return n
}

// waitPidFree: the PID must be free. A zombie waiting for its parent (or
// for init, which reaps orphans a second or two late here) gets a few
// seconds; anything else is an error naming the holder.
func waitPidFree(pid int) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, err := procfs.ReadStat(pid)
		if errors.Is(err, procfs.ErrNoProcess) {
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
			if s, err := procfs.ReadStatus(pid); err == nil && s.Tgid != 0 {
				holder = s.Tgid
			}
			return fmt.Errorf("pid %d is in use by %s (pid %d, %s): stop it before restoring", pid, strings.Trim(name, "()"), holder, state)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// launch starts the restorer and sees the restore through: it waits for
// every process to be rebuilt, then finishes each (registers, masks) and
// releases them together. On any failure it kills whatever was created.
func launch(procs []*proc, planBytes []byte, src *sources, opts Options) (res *Result, err error) {
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
			killAll(procs)
		}
	}()

	// execve resolves /proc/self/fd/N before close-on-exec takes the fd
	// away (fs/exec.c: the file is opened first, fds closed at the point
	// of no return).
	cmd := exec.Command(fmt.Sprintf("/proc/self/fd/%d", exeFd))
	cmd.Args = []string{"gocr-restorer"}
	cmd.Env = []string{}
	cmd.ExtraFiles = append([]*os.File{planFile}, src.files...)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("restore pid %d: start restorer: %w", root, err)
	}
	helperErr := cmd.Wait()
	if err := planFailure(shared, procs); err != nil {
		return nil, err
	}
	if helperErr != nil {
		return nil, fmt.Errorf("restore pid %d: restorer failed before creating the process: %v", root, helperErr)
	}

	// Wait until every live process has rebuilt itself, or one fails or
	// dies. The root is gocr's child (CLONE_PARENT); the others are
	// their restored parents' and are watched through /proc.
	for {
		if err := planFailure(shared, procs); err != nil {
			return nil, err
		}
		pending := 0
		for _, pr := range procs {
			if pr.plan == nil {
				continue
			}
			off := int(pr.plan.offset)
			if sharedword.Load(shared, off+offState) == rstStateDone {
				continue
			}
			pending++
			sharedword.Wait(shared, off+offState, rstStateRunning, 20*time.Millisecond)
			if dead, why := processDied(int(pr.task.Pid), pr == procs[0]); dead {
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
	testhook.Pause(testhook.PauseBeforeFinish)
	if err := finish(procs, shared); err != nil {
		return nil, fmt.Errorf("restore pid %d: %w", root, err)
	}
	res = &Result{Pid: root}
	if opts.Released != nil {
		opts.Released()
	}
	if opts.Detach {
		return res, nil
	}
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(root, &ws, 0, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("wait for pid %d: %w", root, err)
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

// processDied tells whether a process being restored is gone: the root is
// gocr's child and is reaped here; the others show as zombies.
func processDied(pid int, isChild bool) (bool, string) {
	if isChild {
		var ws unix.WaitStatus
		if wpid, _ := unix.Wait4(pid, &ws, unix.WNOHANG|unix.WALL, nil); wpid == pid {
			return true, describeStatus(ws)
		}
		return false, ""
	}
	st, err := procfs.ReadStat(pid)
	if err != nil {
		return true, "gone"
	}
	if st.State == 'Z' {
		return true, fmt.Sprintf("exit status %#x", st.ExitCode)
	}
	return false, ""
}

// planFailure returns the first failure any process reported.
func planFailure(shared []byte, procs []*proc) error {
	for _, pr := range procs {
		if pr.plan == nil {
			continue
		}
		off := int(pr.plan.offset)
		if sharedword.Load(shared, off+offState) == rstStateFailed {
			return fmt.Errorf("restore pid %d: %w", pr.task.Pid, planError(shared[off:], pr.task))
		}
	}
	return nil
}

// killAll ends every process a failed restore created and waits until
// they are gone, so nothing is left behind.
func killAll(procs []*proc) {
	for _, pr := range procs {
		unix.Kill(int(pr.task.Pid), unix.SIGKILL)
	}
	reapQuietly(int(procs[0].task.Pid))
	deadline := time.Now().Add(5 * time.Second)
	for _, pr := range procs[1:] {
		for procfs.Exists(int(pr.task.Pid)) && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
	}
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
	if step == rstStepClone && errno == -int32(unix.EEXIST) {
		return fmt.Errorf("%s: pid %d was taken by another process just now", what, task.Pid)
	}
	return fmt.Errorf("%s (item %d): %w", what, index, e)
}

// finish removes the restorer from every process and gives every thread
// its dumped registers, extended state and signal mask, then releases
// them all. All threads of a process are stopped before the restorer's
// code, which they are parked in, goes.
func finish(procs []*proc, shared []byte) error {
	t := ptrace.NewTracer()
	defer t.Close()
	// On failure the caller kills the processes, which ends the tracing.
	for _, pr := range procs {
		if pr.plan == nil {
			continue
		}
		pid := int(pr.task.Pid)
		for _, th := range pr.task.Threads {
			tid := int(th.Tid)
			if err := t.Seize(tid); err != nil {
				return fmt.Errorf("seize pid %d thread %d: %w", pid, tid, err)
			}
			if _, err := t.StopTask(tid); err != nil {
				return fmt.Errorf("stop pid %d thread %d: %w", pid, tid, err)
			}
		}
		off := int(pr.plan.offset)
		base := binary.LittleEndian.Uint64(shared[off+offRestorerBase:])
		size := binary.LittleEndian.Uint64(shared[off+offRestorerSize:])
		lifeline := int32(binary.LittleEndian.Uint32(shared[off+offLifelineFd:]))
		insn, err := ptrace.FindSyscallInsn(pid)
		if err != nil {
			return err
		}
		ret, err := t.InjectSyscall(pid, insn, unix.SYS_CLOSE, uint64(lifeline))
		if err == nil {
			err = ptrace.SyscallError(ret)
		}
		if err != nil {
			return fmt.Errorf("pid %d: close the lifeline: %w", pid, err)
		}
		ret, err = t.InjectSyscall(pid, insn, unix.SYS_MUNMAP, base, size)
		if err == nil {
			err = ptrace.SyscallError(ret)
		}
		if err != nil {
			return fmt.Errorf("pid %d: unmap restorer: %w", pid, err)
		}
		if err := t.ReturnToEventStop(pid); err != nil {
			return err
		}
		for _, th := range pr.task.Threads {
			tid := int(th.Tid)
			regs := ptrace.RegsFromProto(th.Regs)
			restartSyscall(&regs)
			if err := t.SetRegs(tid, &regs); err != nil {
				return fmt.Errorf("pid %d thread %d: %w", pid, tid, err)
			}
			if err := t.SetXstate(tid, th.Xsave); err != nil {
				return fmt.Errorf("pid %d thread %d: set extended registers: %w", pid, tid, err)
			}
			if err := t.SetSigmask(tid, th.Sigmask); err != nil {
				return fmt.Errorf("pid %d thread %d: %w", pid, tid, err)
			}
		}
	}
	// Release them together, children first, each leader last.
	for i := len(procs) - 1; i >= 0; i-- {
		pr := procs[i]
		if pr.plan == nil {
			continue
		}
		for j := len(pr.task.Threads) - 1; j >= 0; j-- {
			tid := int(pr.task.Threads[j].Tid)
			if err := t.Detach(tid, 0); err != nil {
				return fmt.Errorf("release pid %d thread %d: %w", pr.task.Pid, tid, err)
			}
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
