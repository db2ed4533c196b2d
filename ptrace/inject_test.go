//go:build linux && amd64

package ptrace

import (
	"bytes"
	"errors"
	"testing"

	"golang.org/x/sys/unix"
)

// Syscall injection and target memory: the syscall instruction in the vDSO,
// errno decoding, what an injection costs.

// TestSyscallError: a raw syscall return is an error only in the -errno
// range.
func TestSyscallError(t *testing.T) {
	if err := SyscallError(42); err != nil {
		t.Errorf("SyscallError(42) = %v", err)
	}
	if err := SyscallError(-int64(unix.ENOENT)); !errors.Is(err, unix.ENOENT) {
		t.Errorf("SyscallError(-ENOENT) = %v, want ENOENT", err)
	}
	// mmap returns addresses that look negative as int64 but are not errors.
	if err := SyscallError(-5000); err != nil {
		t.Errorf("SyscallError(-5000) = %v, want nil", err)
	}
}

// TestMemory: FindSyscallInsn finds a syscall instruction in the target's
// vDSO, ReadMemory reads it, and ReadMemory and WriteMemory report EFAULT
// where the target itself could not access.
func TestMemory(t *testing.T) {
	tg := startTarget(t, "pause")
	start, end, err := vdsoRange(tg.pid)
	if err != nil {
		t.Fatal(err)
	}
	insn, err := FindSyscallInsn(tg.pid)
	if err != nil {
		t.Fatal(err)
	}
	if insn < start || insn+2 > end {
		t.Fatalf("syscall insn %#x outside [vdso] %#x-%#x", insn, start, end)
	}
	b := make([]byte, 2)
	if err := ReadMemory(tg.pid, insn, b); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, []byte{0x0f, 0x05}) {
		t.Fatalf("bytes at %#x = % x", insn, b)
	}
	// The vDSO is read-only: process_vm_writev honours that.
	if err := WriteMemory(tg.pid, insn, b); !errors.Is(err, unix.EFAULT) {
		t.Fatalf("WriteMemory into [vdso] = %v, want EFAULT", err)
	}
	if err := ReadMemory(tg.pid, 0, b); !errors.Is(err, unix.EFAULT) {
		t.Fatalf("ReadMemory at 0 = %v, want EFAULT", err)
	}
}

// injectGetpid injects a few getpids and checks they return the target's pid.
func injectGetpid(t *testing.T, tr *Tracer, pid int) {
	t.Helper()
	insn, err := FindSyscallInsn(pid)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		ret, err := tr.InjectSyscall(pid, insn, unix.SYS_GETPID)
		if err != nil {
			t.Fatal(err)
		}
		if ret != int64(pid) {
			t.Fatalf("injected getpid = %d, want %d", ret, pid)
		}
	}
	// An error return comes back as -errno.
	ret, err := tr.InjectSyscall(pid, insn, unix.SYS_CLOSE, ^uint64(0))
	if err != nil {
		t.Fatal(err)
	}
	if err := SyscallError(ret); !errors.Is(err, unix.EBADF) {
		t.Fatalf("injected close(-1) = %d (%v), want EBADF", ret, err)
	}
}

// BenchmarkInjectSyscall is the cost of one injected getpid, each in a Do
// of its own.
func BenchmarkInjectSyscall(b *testing.B) {
	benchInject(b, func(tr *Tracer, loop func()) { loop() })
}

// BenchmarkInjectSyscallBatched injects inside one Do, the way the parasite
// layer should when it runs a sequence of syscalls.
func BenchmarkInjectSyscallBatched(b *testing.B) {
	benchInject(b, func(tr *Tracer, loop func()) { tr.Do(loop) })
}

// benchInject times injected getpids in a stopped target; run runs the
// timed loop, on the tracer thread at once or call by call. The target
// gets its registers back and is released afterwards.
func benchInject(b *testing.B, run func(tr *Tracer, loop func())) {
	tg := startTarget(b, "pause")
	settle()
	tr := newTracer(b)
	seizeStop(b, tr, tg.pid)
	saved, err := tr.GetRegs(tg.pid)
	if err != nil {
		b.Fatal(err)
	}
	insn, err := FindSyscallInsn(tg.pid)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	run(tr, func() {
		for b.Loop() {
			ret, err := tr.InjectSyscall(tg.pid, insn, unix.SYS_GETPID)
			if err != nil || ret != int64(tg.pid) {
				b.Fatalf("getpid = %d, %v", ret, err)
			}
		}
	})
	b.StopTimer()
	if err := tr.ReturnToEventStop(tg.pid); err != nil {
		b.Fatal(err)
	}
	if err := tr.SetRegs(tg.pid, &saved); err != nil {
		b.Fatal(err)
	}
	if err := tr.Detach(tg.pid, 0); err != nil {
		b.Fatal(err)
	}
}
