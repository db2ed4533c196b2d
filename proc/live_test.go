//go:build linux

package proc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

func TestReadMapsSelf(t *testing.T) {
	ms, err := ReadMaps(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var sawStack, sawVdso, sawExe bool
	for i, m := range ms {
		if m.VmFlags == nil {
			t.Errorf("%x-%x %s: no VmFlags", m.Start, m.End, m.Path)
		}
		if i > 0 && m.Start < ms[i-1].End {
			t.Errorf("mapping %x-%x overlaps the previous one", m.Start, m.End)
		}
		switch m.Path {
		case "[stack]":
			sawStack = m.Prot == unix.PROT_READ|unix.PROT_WRITE && m.HasVmFlag("gd")
		case "[vdso]":
			sawVdso = m.Prot&unix.PROT_EXEC != 0
		case exe:
			sawExe = true
		}
	}
	if !sawStack || !sawVdso || !sawExe {
		t.Errorf("stack (rw-, gd) %v, vdso (x) %v, %s %v; want all true", sawStack, sawVdso, exe, sawExe)
	}
}

func TestReadStatSelf(t *testing.T) {
	st, err := ReadStat(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// comm is the executable's name cut to TASK_COMM_LEN-1 bytes
	// (include/linux/sched.h).
	comm := filepath.Base(os.Args[0])
	if len(comm) > 15 {
		comm = comm[:15]
	}
	// /proc/PID/stat's state is the main thread's (fs/proc/array.c
	// do_task_stat with the group leader), and the test may run on
	// another thread while the main one sleeps: running or sleeping are
	// both what a live process reads of itself.
	live := st.State == 'R' || st.State == 'S'
	if st.Pid != os.Getpid() || st.PPid != os.Getppid() || st.Comm != comm || !live {
		t.Errorf("got pid %d ppid %d comm %q state %c; want %d %d %q R or S", st.Pid, st.PPid, st.Comm, st.State, os.Getpid(), os.Getppid(), comm)
	}
	if st.NumThreads < 1 || st.StartCode == 0 || st.StartCode >= st.EndCode || st.ArgStart >= st.ArgEnd || st.EnvStart >= st.EnvEnd {
		t.Errorf("implausible stat %+v", st)
	}
}

func TestReadStatusSelf(t *testing.T) {
	s, err := ReadStatus(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	uid, gid := uint32(os.Getuid()), uint32(os.Getgid())
	if s.Pid != os.Getpid() || s.Tgid != os.Getpid() || s.PPid != os.Getppid() || !s.HasUmask ||
		s.Uid != [4]uint32{uid, uid, uid, uid} || s.Gid != [4]uint32{gid, gid, gid, gid} ||
		len(s.NSpid) == 0 || s.NSpid[len(s.NSpid)-1] != os.Getpid() || s.Threads < 1 {
		t.Errorf("status does not match this process: %+v", s)
	}
	// The Go runtime catches SIGURG for preemption.
	if s.SigCgt&(1<<(unix.SIGURG-1)) == 0 {
		t.Errorf("SigCgt %#x lacks SIGURG", s.SigCgt)
	}
}

func TestReadLimitsSelf(t *testing.T) {
	ls, err := ReadLimits(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	for _, res := range []int{unix.RLIMIT_NOFILE, unix.RLIMIT_STACK, unix.RLIMIT_CORE} {
		var want unix.Rlimit
		if err := unix.Getrlimit(res, &want); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(Limit{res, want.Cur, want.Max}, ls[res]); diff != "" {
			t.Errorf("limit %d (-getrlimit +limits):\n%s", res, diff)
		}
	}
}

func TestFdsSelf(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "fdinfo")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if _, err := f.Seek(123, 0); err != nil {
		t.Fatal(err)
	}
	pid, fd := os.Getpid(), int(f.Fd())
	fi, err := ReadFdInfo(pid, fd)
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		t.Fatal(err)
	}
	// os.CreateTemp opens O_RDWR|O_CREAT|O_EXCL|O_CLOEXEC; only the
	// access mode and close-on-exec survive into f_flags.
	if fi.Pos != 123 || fi.Flags&unix.O_ACCMODE != unix.O_RDWR || fi.Flags&unix.O_CLOEXEC == 0 || fi.Ino != st.Ino || fi.MntID == 0 {
		t.Errorf("got %+v (flags %#o); want pos 123, O_RDWR|O_CLOEXEC, ino %d", fi, fi.Flags, st.Ino)
	}

	fds, err := ListFds(pid)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.IsSorted(fds) || !slices.Contains(fds, fd) || !slices.Contains(fds, 0) {
		t.Errorf("ListFds = %v, want sorted and containing 0 and %d", fds, fd)
	}
	target, err := FdTarget(pid, fd)
	if err != nil || target != f.Name() {
		t.Errorf("FdTarget = %q, %v; want %q", target, err, f.Name())
	}
	if _, err := ReadFdInfo(pid, 1<<20); err == nil || errors.Is(err, ErrNoProcess) {
		t.Errorf("ReadFdInfo of a closed fd: %v; want an error other than ErrNoProcess", err)
	}
}

func TestLinksSelf(t *testing.T) {
	pid := os.Getpid()
	exe, _ := os.Executable()
	wd, _ := os.Getwd()
	for _, tc := range []struct {
		name string
		f    func(int) (string, error)
		want string
	}{{"Exe", Exe, exe}, {"Cwd", Cwd, wd}, {"Root", Root, "/"}} {
		if got, err := tc.f(pid); err != nil || got != tc.want {
			t.Errorf("%s = %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
}

func TestAuxvPersonalitySelf(t *testing.T) {
	pid := os.Getpid()
	auxv, err := ReadAuxv(pid)
	if err != nil {
		t.Fatal(err)
	}
	if len(auxv) == 0 || len(auxv)%16 != 0 {
		t.Fatalf("auxv is %d bytes, want a non-empty multiple of 16", len(auxv))
	}
	pagesz := uint64(0)
	for i := 0; i < len(auxv); i += 16 {
		if binary.NativeEndian.Uint64(auxv[i:]) == atPageSize {
			pagesz = binary.NativeEndian.Uint64(auxv[i+8:])
		}
	}
	if tail := auxv[len(auxv)-16:]; !slices.Equal(tail, make([]byte, 16)) || pagesz != uint64(os.Getpagesize()) {
		t.Errorf("auxv ends %x, AT_PAGESZ %d; want an AT_NULL pair and %d", tail, pagesz, os.Getpagesize())
	}

	pers, err := ReadPersonality(pid)
	if err != nil {
		t.Fatal(err)
	}
	// 0xffffffff queries without changing (man 2 personality).
	want, _, errno := unix.RawSyscall(unix.SYS_PERSONALITY, 0xffffffff, 0, 0)
	if errno != 0 {
		t.Fatal(errno)
	}
	if pers != uint32(want) {
		t.Errorf("ReadPersonality = %#x, want %#x", pers, want)
	}
}

func TestThreadsChildren(t *testing.T) {
	pid := os.Getpid()
	tids, err := Threads(pid)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.IsSorted(tids) || !slices.Contains(tids, pid) {
		t.Errorf("Threads = %v, want sorted and containing %d", tids, pid)
	}
	var cmds []*exec.Cmd
	var want []int
	for range 2 {
		cmd := exec.Command("sleep", "60")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			cmd.Process.Kill()
			cmd.Wait()
		})
		cmds = append(cmds, cmd)
		want = append(want, cmd.Process.Pid)
	}
	slices.Sort(want)
	got, err := Children(pid)
	if err != nil {
		t.Fatal(err)
	}
	// Other tests may have children of their own; ours must be there.
	for _, c := range want {
		if !slices.Contains(got, c) {
			t.Errorf("Children = %v, want it to contain %v", got, want)
		}
	}
	if !slices.IsSorted(got) {
		t.Errorf("Children = %v, not sorted", got)
	}
}

func TestPagemapSelf(t *testing.T) {
	ps := os.Getpagesize()
	mem, err := unix.Mmap(-1, 0, 4*ps, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Munmap(mem) })
	mem[ps] = 1 // only page 1 is touched
	start := addrOf(mem)

	pm, err := OpenPagemap(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pm.Close() })
	dst := make([]uint64, 0, 1)
	// An end inside the last page still covers it.
	got, err := pm.Read(start, start+uint64(3*ps)+1, dst)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 {
		t.Fatalf("got %d entries, want 4", len(got))
	}
	for i, e := range got {
		present := e&PagemapPresent != 0
		if present != (i == 1) {
			t.Errorf("page %d entry %#x: present %v, want %v", i, e, present, i == 1)
		}
	}
	// A fresh anonymous page belongs to this process alone.
	if got[1]&PagemapExclusive == 0 || got[1]&PagemapFileOrShared != 0 {
		t.Errorf("touched page entry %#x: want exclusive, not file/shared", got[1])
	}

	again, err := pm.Read(start+uint64(ps), start+uint64(2*ps), got)
	if err != nil || len(again) != 1 || &again[0] != &got[0] || again[0]&PagemapPresent == 0 {
		t.Errorf("Read reusing dst = %x, %v; want one present entry in dst's storage", again, err)
	}
	if empty, err := pm.Read(start, start, got); err != nil || len(empty) != 0 {
		t.Errorf("empty range: %v, %v", empty, err)
	}
	// [vsyscall] lies above the user address space, where pagemap ends.
	const vsyscall = 0xffffffffff600000
	if high, err := pm.Read(vsyscall-uint64(ps), vsyscall+uint64(ps), nil); err != nil || len(high) != 2 || high[1] != 0 {
		t.Errorf("Read across the end of pagemap = %x, %v; want 2 entries, the last 0", high, err)
	}
	if _, err := pm.Read(start+1, start, nil); err == nil {
		t.Errorf("reversed range succeeded, want error")
	}
}

// deadPid returns the pid of a child that has exited and been reaped.
func deadPid(t *testing.T) int {
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

func TestNoProcess(t *testing.T) {
	pid := deadPid(t)
	if Exists(pid) {
		t.Skipf("pid %d was reused already", pid)
	}
	if !Exists(os.Getpid()) || Exists(0) || Exists(-1) {
		t.Errorf("Exists wrong for self, 0 or -1")
	}
	calls := map[string]func() error{
		"ReadMaps":        func() error { _, err := ReadMaps(pid); return err },
		"ReadStat":        func() error { _, err := ReadStat(pid); return err },
		"ReadStatus":      func() error { _, err := ReadStatus(pid); return err },
		"ReadLimits":      func() error { _, err := ReadLimits(pid); return err },
		"ReadAuxv":        func() error { _, err := ReadAuxv(pid); return err },
		"ReadPersonality": func() error { _, err := ReadPersonality(pid); return err },
		"ReadFdInfo":      func() error { _, err := ReadFdInfo(pid, 0); return err },
		"ListFds":         func() error { _, err := ListFds(pid); return err },
		"FdTarget":        func() error { _, err := FdTarget(pid, 0); return err },
		"Threads":         func() error { _, err := Threads(pid); return err },
		"Children":        func() error { _, err := Children(pid); return err },
		"Exe":             func() error { _, err := Exe(pid); return err },
		"Cwd":             func() error { _, err := Cwd(pid); return err },
		"Root":            func() error { _, err := Root(pid); return err },
		"OpenPagemap":     func() error { _, err := OpenPagemap(pid); return err },
	}
	want := fmt.Sprintf("no process with pid %d", pid)
	for name, call := range calls {
		err := call()
		if !errors.Is(err, ErrNoProcess) || !strings.Contains(fmt.Sprint(err), want) {
			t.Errorf("%s of a dead pid: %v; want ErrNoProcess naming the pid", name, err)
		}
	}
	if err := calls["ReadStat"](); err.Error() != fmt.Sprintf("read /proc/%d/stat: %s", pid, want) {
		t.Errorf("ReadStat error %q: want one line naming the file and the pid once", err)
	}
}

// atPageSize is AT_PAGESZ (include/uapi/linux/auxvec.h).
const atPageSize = 6

func TestReadVmFlagsAtSelf(t *testing.T) {
	b, err := unix.Mmap(-1, 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(b)
	if err := unix.Madvise(b, unix.MADV_DONTFORK); err != nil {
		t.Fatal(err)
	}
	start := addrOf(b)
	flags, err := ReadVmFlagsAt(os.Getpid(), start)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(flags, "dc") || !slices.Contains(flags, "wr") {
		t.Errorf("VmFlags of the mapping at %#x: %v, want dc (MADV_DONTFORK) and wr among them", start, flags)
	}
	if _, err := ReadVmFlagsAt(os.Getpid(), start+1); err == nil {
		t.Errorf("VmFlags at %#x, where no mapping starts: no error", start+1)
	}
}

func TestReadTracerPidSelf(t *testing.T) {
	st, err := ReadStatus(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	tracer, threads, err := ReadTracerPid(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// The Go runtime starts threads, and may start more meanwhile.
	if tracer != st.TracerPid || threads < 2 {
		t.Errorf("ReadTracerPid = %d, %d threads; status says tracer %d, want at least 2 threads", tracer, threads, st.TracerPid)
	}
	if _, _, err := ReadTracerPid(1 << 30); !errors.Is(err, ErrNoProcess) {
		t.Errorf("ReadTracerPid of no process: %v, want ErrNoProcess", err)
	}
}
