//go:build linux

package dump

import (
	"fmt"
	"os"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

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
	if len(sigs) == 0 {
		return nil
	}
	regs, err := t.GetRegs(tid)
	if err != nil {
		return err
	}
	insn, err := ptrace.FindSyscallInsn(tid)
	if err != nil {
		return err
	}
	if err := t.Requeue(tid, insn, sigs); err != nil {
		return err
	}
	if err := t.ReturnToEventStop(tid); err != nil {
		return err
	}
	return t.SetRegs(tid, &regs)
}

func collect(t *ptrace.Tracer, pid int, fr *frozenProc) (*state, error) {
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
	if task.Personality, err = proc.ReadPersonality(pid); err != nil {
		return nil, err
	}
	if task.PosixTimers, err = collectPosixTimers(pid); err != nil {
		return nil, err
	}
	if task.Cwd, err = proc.Cwd(pid); err != nil {
		return nil, err
	}
	if task.Root, err = proc.Root(pid); err != nil {
		return nil, err
	}
	for _, p := range []string{task.Cwd, task.Root} {
		if strings.HasSuffix(p, " (deleted)") {
			return nil, fmt.Errorf("cwd or root %q was deleted", p)
		}
	}
	limits, err := proc.ReadLimits(pid)
	if err != nil {
		return nil, err
	}
	for _, l := range limits {
		task.Rlimits = append(task.Rlimits, &gocrpb.Rlimit{Resource: uint32(l.Resource), Cur: l.Cur, Max: l.Max})
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
	for _, tid := range fr.tids {
		if err := checkThreadSeccomp(pid, tid); err != nil {
			return nil, err
		}
		th, err := collectThread(t, tid, fr.sigs[tid])
		if err != nil {
			return nil, fmt.Errorf("thread %d: %w", tid, err)
		}
		task.Threads = append(task.Threads, th)
	}

	mm, maps, vdso, err := collectMm(pid, &stat)
	if err != nil {
		return nil, err
	}
	table, err := files.Collect(pid)
	if err != nil {
		return nil, err
	}
	return &state{task: task, mm: mm, files: table, maps: maps, vdso: vdso}, nil
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
	th := &gocrpb.Thread{
		Tid: int32(tid), Regs: ptrace.RegsToProto(&snap.Regs), Xsave: snap.Xstate,
		XstateBv: ptrace.XstateBV(snap.Xstate), Sigmask: snap.Sigmask,
	}
	if comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/comm", tid, tid)); err == nil {
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
	return th, nil
}

// linkFiles finds what the processes' fds share (files.Link) and saves
// every memfd they use, through an fd or a mapping, once.
func linkFiles(dir *images.Dir, states []*state) error {
	var tables []*gocrpb.Files
	var mms []*gocrpb.Mm
	for _, st := range states {
		if st.files != nil {
			tables = append(tables, st.files)
			mms = append(mms, st.mm)
		}
	}
	if err := files.Link(tables); err != nil {
		return err
	}
	return files.SaveMemfds(dir, tables, mms)
}
