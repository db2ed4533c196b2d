//go:build linux

package restorer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	procfs "github.com/gocr/gocr/proc"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/files"
	"github.com/gocr/gocr/gocrpb"
	"github.com/gocr/gocr/ptrace"
)

// checkLSMLabel refuses to restore processes under an LSM label other
// than the one they were dumped with: they run with the restoring gocr's
// (the restorer gocr starts, man 5 proc_pid_attr), and a dump took only
// processes with the dumping gocr's, which the inventory records.
func checkLSMLabel(inv *gocrpb.Inventory) error {
	want := inv.GetLsmLabel()
	if want == "" {
		return nil
	}
	own, err := procfs.ReadLSMLabel(os.Getpid())
	if errors.Is(err, procfs.ErrNotShown) {
		return fmt.Errorf("the job ran with LSM label %q, and this machine shows gocr none to give it", want)
	}
	if err != nil {
		return err
	}
	if own != want {
		return fmt.Errorf("the job ran with LSM label %q, and gocr runs with %q here, which its processes would get: restore under the label it was dumped with", want, own)
	}
	return nil
}

// checkMachine refuses an image this machine cannot run: xsave features
// the CPU (or its kernel) does not enable, or a vDSO/vvar layout that is
// not this kernel's (an image without a vDSO may lack any of it).
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
	if err := checkCPUs(task); err != nil {
		return err
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
	// A process that unmapped its vDSO or vvar pages gets none of them:
	// the kernel's the image lacks stay parked in the restorer's hole
	// (restorer.c restore_memory) and go with it (finish). The image of
	// another kernel, though, may lack one because that kernel had none,
	// and a vDSO reads its vvar pages at fixed offsets from itself
	// (arch/x86/entry/vdso/vdso-layout.lds.S): with a vDSO, such an
	// image must have this kernel's whole layout.
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		return fmt.Errorf("uname: %w", err)
	}
	if _, ok := imgSpecial["[vdso]"]; !ok || inv.KernelRelease == unix.ByteSliceToString(uts.Release[:]) {
		return nil
	}
	for name := range ownSpecial {
		if _, ok := imgSpecial[name]; !ok {
			return fmt.Errorf("this kernel has %s, the image does not: restore on the kernel it was dumped on (%s)", name, inv.KernelRelease)
		}
	}
	return nil
}

// checkCPUs refuses a thread bound to CPUs this machine does not have
// online: sched_setaffinity would drop them, or fail if none is left.
func checkCPUs(task *gocrpb.Task) error {
	var online []byte
	for _, th := range task.Threads {
		if th.Sched == nil {
			continue
		}
		if online == nil {
			b, err := os.ReadFile("/sys/devices/system/cpu/online")
			if err != nil {
				return err
			}
			if online, err = cpuListMask(strings.TrimSpace(string(b))); err != nil {
				return fmt.Errorf("/sys/devices/system/cpu/online: %w", err)
			}
		}
		var missing []int
		for cpu := 0; cpu < 8*len(th.Sched.CpuAffinity); cpu++ {
			if th.Sched.CpuAffinity[cpu/8]&(1<<(cpu%8)) != 0 && (cpu/8 >= len(online) || online[cpu/8]&(1<<(cpu%8)) == 0) {
				missing = append(missing, cpu)
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("thread %d may run on CPUs %v, which this machine does not have online: restore on a machine with them", th.Tid, missing)
		}
	}
	return nil
}

// cpuListMask parses a CPU list such as "0-3,8" (man 7 cpuset, "List
// format") into a mask, bit n for CPU n.
func cpuListMask(list string) ([]byte, error) {
	var mask []byte
	for _, part := range strings.Split(list, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		if !isRange {
			hi = lo
		}
		a, err1 := strconv.Atoi(lo)
		b, err2 := strconv.Atoi(hi)
		if err1 != nil || err2 != nil || a < 0 || b < a || b >= 1<<16 {
			return nil, fmt.Errorf("%q is not a CPU list", list)
		}
		for cpu := a; cpu <= b; cpu++ {
			for len(mask) <= cpu/8 {
				mask = append(mask, 0)
			}
			mask[cpu/8] |= 1 << (cpu % 8)
		}
	}
	return mask, nil
}

// checkFiles: every mapped file must still be there and unchanged, or the
// restored code and data would silently differ. Files whose contents the
// dump saved are checked in savedfiles.go instead.
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
			return fmt.Errorf("%s %s changed since the dump (%s)", what, ref.Path, files.Changed(&st, ref.Size, ref.MtimeNs))
		}
		return nil
	}
	if mm.ExeSavedFile == 0 {
		if err := check(mm.Exe, "executable"); err != nil {
			return err
		}
	}
	for _, v := range mm.Vmas {
		if v.SavedFile != 0 || v.GhostFile != 0 {
			continue // a saved copy, or a deleted file made again
		}
		if err := check(v.File, "mapped file"); err != nil {
			return err
		}
	}
	return nil
}

// checkRlimits: without CAP_SYS_RESOURCE no hard limit can be raised
// (man 2 setrlimit), so a dumped hard limit above ours cannot be restored.
// With it (root) the restorer sets them before it takes the dumped
// credentials (restorer.c restore_stage2, then restore_creds), so any
// limit can.
func checkRlimits(task *gocrpb.Task) error {
	if hasCap(capSysResource) {
		return nil
	}
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

// prTimerCreateRestoreIDs and its GET operation (include/uapi/linux/
// prctl.h, Linux 6.16).
const (
	prTimerCreateRestoreIDs    = 77
	prTimerCreateRestoreIDsGet = 2
)

// checkPosixTimers: POSIX timers can only be recreated under their IDs
// where the kernel offers PR_TIMER_CREATE_RESTORE_IDS; elsewhere the
// process would find its timers under other IDs, or none.
func checkPosixTimers(task *gocrpb.Task) error {
	if len(task.PosixTimers) == 0 {
		return nil
	}
	if _, err := unix.PrctlRetInt(prTimerCreateRestoreIDs, prTimerCreateRestoreIDsGet, 0, 0, 0); err != nil {
		return fmt.Errorf("the process has %d POSIX timers, which this kernel cannot recreate under their IDs (prctl PR_TIMER_CREATE_RESTORE_IDS, Linux 6.16 and later): %w", len(task.PosixTimers), err)
	}
	return nil
}

// waitPidFree: the PID must be free. A zombie waiting for its parent (or
// for init, which reaps orphans a second or two late here) gets a few
// seconds; anything else is an error naming the holder.
func waitPidFree(ctx context.Context, pid int) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		if err := stopped(ctx); err != nil {
			return fmt.Errorf("wait for pid %d to be free: %w", pid, err)
		}
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
			return classed(Temporary, &pidTakenError{pid: pid, holder: holder, name: strings.Trim(name, "()"), state: state})
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// pidTakenError: a PID the restore needs is held by another process.
type pidTakenError struct {
	pid, holder int
	name, state string
}

func (e *pidTakenError) what() string {
	return fmt.Sprintf("pid %d is in use by %s (pid %d, %s)", e.pid, e.name, e.holder, e.state)
}

func (e *pidTakenError) Error() string {
	return e.what() + ": stop it before restoring, or restore with --pidns=auto"
}
