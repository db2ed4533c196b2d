//go:build linux

package dump

import (
	"encoding/binary"
	"fmt"
	"os"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"

	"github.com/gocr/gocr/files"
	"github.com/gocr/gocr/gocrpb"
	"github.com/gocr/gocr/images"
	"github.com/gocr/gocr/proc"
	"github.com/gocr/gocr/ptrace"
)

// state is everything collected from a frozen process.
type state struct {
	task  *gocrpb.Task
	mm    *gocrpb.Mm
	files *gocrpb.Files
	maps  []proc.Mapping
	vdso  uint64
	// flagsBefore: the mappings' flags were read before the freeze
	// (preReadMaps), to be checked against the instant's.
	flagsBefore bool
	// numa, with flagsBefore, is the NUMA policy check left to the
	// snapshot (collectAttrs).
	numa *numaCheck
	// frozen is the process as the freeze left it: where signals the
	// infection's injected calls dequeue go (carryInfectionSignals).
	frozen *frozenProc
	// imagePid names its page images: its PID as the job sees it
	// (pidns.go).
	imagePid int
	// room says why its snapshot would not fit, or "" (whyNoRoom,
	// read beside); nil without snapshots.
	room func() string
}

func fileRef(path string) (*gocrpb.FileRef, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return nil, fmt.Errorf("stat %s: %w", path, err)
	}
	return &gocrpb.FileRef{Path: path, Dev: st.Dev, Ino: st.Ino, Size: st.Size, MtimeNs: st.Mtim.Nano()}, nil
}

// requeue gives back the signals the freeze caught on their way to
// delivery: detaching cannot carry them from an event stop.
func requeue(t *ptrace.Tracer, tid int, sigs [][ptrace.SiginfoSize]byte) error {
	return t.Requeue(tid, sigs)
}

// collect reads what can be read of the frozen process from outside it.
// What /proc alone tells of it, reads and its fd table, was read on
// another CPU meanwhile (beside.go): nothing here opens or closes an fd
// of the process, or changes what those read.
func collect(t *ptrace.Tracer, pid int, fr *frozenProc, saver *fileSaver, pre preReadMaps, trk *tracking, side besideOf) (*state, error) {
	if err := checkArch(t, pid, fr.tids); err != nil {
		return nil, err
	}
	stat, err := proc.ReadStat(pid)
	if err != nil {
		return nil, err
	}
	status, err := proc.ReadStatus(pid)
	if err != nil {
		return nil, err
	}
	task := &gocrpb.Task{
		Pid: int32(pid), Ppid: int32(stat.PPid), Pgid: int32(stat.Pgrp), Sid: int32(stat.Session),
		Comm: status.Name, Umask: status.Umask, StopSignal: uint32(fr.stopSignal),
		SharesParentFiles: fr.sharesParentFiles, SharesParentFs: fr.sharesParentFS,
		ExitSignal: proto.Uint32(uint32(stat.ExitSignal)),
		Creds: &gocrpb.Creds{
			Ruid: status.Uid[0], Euid: status.Uid[1], Suid: status.Uid[2], Fsuid: status.Uid[3],
			Rgid: status.Gid[0], Egid: status.Gid[1], Sgid: status.Gid[2], Fsgid: status.Gid[3],
			Groups: status.Groups, CapInh: status.CapInh, CapPrm: status.CapPrm, CapEff: status.CapEff,
			CapBnd: status.CapBnd, CapAmb: status.CapAmb,
		},
	}
	if !status.HasUmask {
		return nil, fmt.Errorf("read umask: /proc/%d/status has no Umask line", pid)
	}
	shared, err := t.PeekSiginfo(pid, true)
	if err != nil {
		return nil, err
	}
	for _, si := range shared {
		task.SharedPending = append(task.SharedPending, sigInfo(si))
	}

	if err := checkThreadCreds(fr.tids, &status); err != nil {
		return nil, err
	}
	if err := checkControllingTerminal(pid, &stat); err != nil {
		return nil, err
	}
	if err := checkThreadTables(pid, fr.tids); err != nil {
		return nil, err
	}
	for _, tid := range fr.tids {
		if err := checkThreadSeccomp(pid, tid); err != nil {
			return nil, err
		}
		if err := checkThreadIOPerm(t, tid); err != nil {
			return nil, fmt.Errorf("thread %d: %w", tid, err)
		}
		th, err := collectThread(t, tid, fr.sigs[tid])
		if err != nil {
			return nil, fmt.Errorf("thread %d: %w", tid, err)
		}
		task.Threads = append(task.Threads, th)
	}
	caught := len(fr.sigs[pid])
	if err := checkCPUState(t, fr, &status, ptrace.XCR0(task.Threads[0].Xsave)); err != nil {
		return nil, err
	}
	// Signals the injected calls dequeued go first, as the freeze's do.
	if late := fr.sigs[pid][caught:]; len(late) > 0 {
		var infos []*gocrpb.SigInfo
		for _, si := range late {
			infos = append(infos, sigInfo(si))
		}
		task.Threads[0].Pending = append(infos, task.Threads[0].Pending...)
	}

	maps, before, err := pre.mapsAtFreeze(pid, &status)
	if err != nil {
		return nil, err
	}
	if err := checkSecretMem(pid, maps); err != nil {
		return nil, err
	}
	trk.stripOwnFlags(pid, maps)
	mm, vdso, err := collectMm(pid, &stat, saver, maps)
	if err != nil {
		return nil, err
	}
	if err := checkProtectionKeys(maps); err != nil {
		return nil, err
	}
	numa, err := collectAttrs(t, pid, task, maps, before)
	if err != nil {
		return nil, err
	}
	// The fd table, the longer of the two reads, first: the goroutine
	// beside reads a process's procReads before its fd table, so that
	// where it began late, the two are read at once, one each, instead
	// of one after the other there while collect waits (beside.go).
	// Their errors are reported in the same order as ever.
	table, ferr := side.fdTable()
	if err := side.reads().fill(task); err != nil {
		return nil, err
	}
	if ferr != nil {
		return nil, ferr
	}
	return &state{task: task, mm: mm, files: table, maps: maps, vdso: vdso, flagsBefore: before, numa: numa, frozen: fr, room: side.room}, nil
}

// checkThreadCreds refuses a process whose threads do not all have its
// credentials: they are per thread (man 7 capabilities; a raw setresuid,
// capset or prctl changes only its caller), and are restored as the
// process's. /proc/TID/status shows each thread's own (man 5 proc);
// securebits, which it does not show, are compared once the parasite
// has read them.
func checkThreadCreds(tids []int, leader *proc.Status) error {
	for _, tid := range tids[1:] {
		st, err := proc.ReadStatus(tid)
		if err != nil {
			return fmt.Errorf("thread %d: %w", tid, err)
		}
		if st.Uid != leader.Uid || st.Gid != leader.Gid || !slices.Equal(st.Groups, leader.Groups) ||
			st.CapInh != leader.CapInh || st.CapPrm != leader.CapPrm || st.CapEff != leader.CapEff ||
			st.CapBnd != leader.CapBnd || st.CapAmb != leader.CapAmb || st.NoNewPrivs != leader.NoNewPrivs {
			return fmt.Errorf("thread %d has credentials (uids, gids, groups, capabilities or no_new_privs) other than its process's: threads with credentials of their own are not supported", tid)
		}
	}
	return nil
}

func sigInfo(si [128]byte) *gocrpb.SigInfo {
	// siginfo_t starts with int si_signo (include/uapi/asm-generic/siginfo.h).
	return &gocrpb.SigInfo{Signo: uint32(si[0]) | uint32(si[1])<<8 | uint32(si[2])<<16 | uint32(si[3])<<24, Siginfo: si[:]}
}

func collectThread(t *ptrace.Tracer, tid int, sigs [][ptrace.SiginfoSize]byte) (*gocrpb.Thread, error) {
	snap, err := t.Snapshot(tid)
	if err != nil {
		return nil, err
	}
	// A thread in restart_syscall is saved in the call it restarts: the
	// restored thread has no restart block to run (ptrace.RestartedCall).
	if int64(snap.Regs.Orig_rax) >= 0 && int64(snap.Regs.Rax) == -int64(ptrace.ERESTART_RESTARTBLOCK) {
		nr, ok := ptrace.RestartedCall(tid, &snap.Regs)
		if !ok {
			return nil, fmt.Errorf("it waits in restart_syscall (a sleep, poll or futex wait resumed after a stop), and gocr cannot tell which call from its code at %#x: restored, the call would fail with EINTR; dump again once it has returned",
				snap.Regs.Rip-2)
		}
		snap.Regs.Orig_rax = nr
	}
	th := &gocrpb.Thread{
		Tid: int32(tid), Regs: ptrace.RegsToProto(&snap.Regs), Xsave: snap.Xstate,
		XstateBv: ptrace.XstateBV(snap.Xstate), Sigmask: snap.Sigmask,
	}
	if comm, err := proc.ReadAll(fmt.Sprintf("/proc/%d/task/%d/comm", tid, tid)); err == nil {
		th.Comm = strings.TrimSuffix(string(comm), "\n")
	}
	for _, si := range snap.Pending {
		th.Pending = append(th.Pending, sigInfo(si))
	}
	// Signals the freeze caught on their way to delivery were already
	// dequeued; they are pending again in the image, before the rest.
	if len(sigs) > 0 {
		caught := make([]*gocrpb.SigInfo, 0, len(sigs)+len(th.Pending))
		for _, si := range sigs {
			caught = append(caught, sigInfo(si))
		}
		th.Pending = append(caught, th.Pending...)
	}
	if rseq := snap.Rseq; rseq.AbiPointer != 0 {
		th.Rseq = &gocrpb.Rseq{AbiPointer: rseq.AbiPointer, AbiSize: rseq.AbiSize, Flags: rseq.Flags, Signature: rseq.Signature}
	}
	if th.RobustList, th.RobustListLen, err = getRobustList(tid); err != nil {
		return nil, fmt.Errorf("get_robust_list %d: %w", tid, err)
	}
	if th.Sched, err = collectSched(tid); err != nil {
		return nil, err
	}
	return th, nil
}

// Scheduling values golang.org/x/sys/unix does not name
// (include/uapi/linux/sched.h, kernel/sched/sched.h).
const (
	schedFlagResetOnFork = 0x01
	// schedCapacityScale is SCHED_CAPACITY_SCALE: a utilization clamp
	// of its full range, util_max's default.
	schedCapacityScale = 1024
)

// collectSched reads a thread's scheduling from outside it: policy, RT
// priority and reset-on-fork (sched_getattr), nice (getpriority), and its CPU affinity. What
// the restorer cannot set back exactly is refused.
func collectSched(tid int) (*gocrpb.Sched, error) {
	attr, err := unix.SchedGetAttr(tid, 0)
	if err != nil {
		return nil, fmt.Errorf("sched_getattr: %w", err)
	}
	switch attr.Policy {
	case unix.SCHED_NORMAL, unix.SCHED_BATCH, unix.SCHED_IDLE, unix.SCHED_FIFO, unix.SCHED_RR:
	case unix.SCHED_DEADLINE:
		return nil, fmt.Errorf("the thread runs under SCHED_DEADLINE, which is not restored")
	default:
		return nil, fmt.Errorf("the thread has scheduling policy %d, which is not restored", attr.Policy)
	}
	if attr.Flags&^schedFlagResetOnFork != 0 {
		return nil, fmt.Errorf("the thread has scheduling flags %#x, only SCHED_FLAG_RESET_ON_FORK is restored", attr.Flags)
	}
	// An RT thread's default util_min is the RT default, the full range
	// (sysctl_sched_uclamp_util_min_rt_default); 0 and 0 is a kernel
	// without utilization clamping.
	rt := attr.Policy == unix.SCHED_FIFO || attr.Policy == unix.SCHED_RR
	if (attr.Util_min != 0 && !(rt && attr.Util_min == schedCapacityScale)) ||
		(attr.Util_max != 0 && attr.Util_max != schedCapacityScale) {
		return nil, fmt.Errorf("the thread has a utilization clamp (util_min %d, util_max %d), which is not restored", attr.Util_min, attr.Util_max)
	}
	// sched_getattr gives an RT thread's priority instead of its nice,
	// which it keeps for a later return to a fair policy;
	// getpriority(2) on the TID gives it always, as 20-nice (man 2
	// getpriority, NOTES: the raw system call).
	prio, err := unix.Getpriority(unix.PRIO_PROCESS, tid)
	if err != nil {
		return nil, fmt.Errorf("getpriority: %w", err)
	}
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(tid, &set); err != nil {
		// EINVAL: the machine has more CPUs than the mask holds.
		return nil, fmt.Errorf("sched_getaffinity (a mask of %d CPUs): %w", len(set)*64, err)
	}
	mask := make([]byte, 0, len(set)*8)
	for _, w := range set {
		mask = binary.LittleEndian.AppendUint64(mask, uint64(w))
	}
	return &gocrpb.Sched{Policy: attr.Policy, Nice: int32(20 - prio), RtPriority: attr.Priority,
		ResetOnFork: attr.Flags&schedFlagResetOnFork != 0, CpuAffinity: mask}, nil
}

// linkFiles finds what the processes' fds share (files.Link) and saves
// every memfd and every deleted file they use, through an fd or a
// mapping, once (deleted files up to ghostLimit bytes each).
func linkFiles(dir *images.Dir, saver *fileSaver, states []*state, opts files.LinkOptions, ghostLimit int64) error {
	var tables []*gocrpb.Files
	var mms []*gocrpb.Mm
	for _, st := range states {
		if st.files != nil {
			tables = append(tables, st.files)
			mms = append(mms, st.mm)
		}
	}
	if err := files.Link(tables, opts); err != nil {
		return err
	}
	if note := files.OutsideNote(tables); note != "" {
		fmt.Fprintf(os.Stderr, "gocr: %s\n", note)
	}
	if err := files.SaveMemfds(dir, tables, mms); err != nil {
		return err
	}
	return saveGhosts(saver, tables, mms, ghostLimit)
}

// captureConnections reads every TCP connection of the dump in repair
// mode (files.CaptureConnections).
func captureConnections(states []*state, opts Options) (*files.Connections, error) {
	var tables []*gocrpb.Files
	for _, st := range states {
		if st.files != nil {
			tables = append(tables, st.files)
		}
	}
	return files.CaptureConnections(tables, files.CaptureOptions{External: opts.TCPEstablished})
}
