//go:build linux && amd64

package ptrace

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

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

// TestMemory: ReadMemory reads the target's vDSO; ReadMemory and
// WriteMemory report EFAULT where the target itself could not access,
// the read-only vDSO included.
func TestMemory(t *testing.T) {
	tg := startTarget(t, "pause")
	start, _, err := vdsoRange(tg.pid)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 4)
	if err := ReadMemory(tg.pid, start, b); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, []byte{0x7f, 'E', 'L', 'F'}) {
		t.Fatalf("bytes at [vdso] %#x = % x, want an ELF header", start, b)
	}
	if err := WriteMemory(tg.pid, start, b); !errors.Is(err, unix.EFAULT) {
		t.Fatalf("WriteMemory into [vdso] = %v, want EFAULT", err)
	}
	if err := ReadMemory(tg.pid, 0, b); !errors.Is(err, unix.EFAULT) {
		t.Fatalf("ReadMemory at 0 = %v, want EFAULT", err)
	}
}

// TestGadget: the injection gadget goes into the zero padding at the end
// of the target's vDSO, past its ELF image, once; the rest of the vDSO
// reads as before.
func TestGadget(t *testing.T) {
	tg := startTarget(t, "pause")
	settle()
	tr := newTracer(t)
	seizeStop(t, tr, tg.pid)
	start, end, err := vdsoRange(tg.pid)
	if err != nil {
		t.Fatal(err)
	}
	before := make([]byte, end-start)
	if err := ReadMemory(tg.pid, start, before); err != nil {
		t.Fatal(err)
	}
	used, err := elfImageEnd(before)
	if err != nil {
		t.Fatal(err)
	}
	var at [2]uint64
	for i := range at {
		tr.Do(func() { at[i], err = placeGadget(tg.pid) })
		if err != nil {
			t.Fatal(err)
		}
	}
	if at[0] != at[1] || at[0] != end-gadgetSlot || at[0] < start+used {
		t.Fatalf("gadget at %#x then %#x; want both at %#x, past the image's end %#x", at[0], at[1], end-gadgetSlot, start+used)
	}
	after := make([]byte, end-start)
	if err := ReadMemory(tg.pid, start, after); err != nil {
		t.Fatal(err)
	}
	off := at[0] - start
	if !bytes.Equal(before[:off], after[:off]) {
		t.Fatalf("the vDSO changed before the gadget's slot")
	}
	if !bytes.Equal(after[off:off+uint64(len(gadget))], gadget) {
		t.Fatalf("gadget slot holds % x", after[off:])
	}
}

// injectGetpid injects a few getpids and checks they return the target's
// pid; it leaves the target in the last one's syscall-exit-stop, for the
// caller to Finish the Injection or not.
func injectGetpid(t *testing.T, tr *Tracer, pid int) *Injection {
	t.Helper()
	in, err := tr.PrepareInjection(pid)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		ret, err := in.Syscall(unix.SYS_GETPID)
		if err != nil {
			t.Fatal(err)
		}
		if ret != int64(pid) {
			t.Fatalf("injected getpid = %d, want %d", ret, pid)
		}
	}
	// An error return comes back as -errno.
	ret, err := in.Syscall(unix.SYS_CLOSE, ^uint64(0))
	if err != nil {
		t.Fatal(err)
	}
	if err := SyscallError(ret); !errors.Is(err, unix.EBADF) {
		t.Fatalf("injected close(-1) = %d (%v), want EBADF", ret, err)
	}
	return in
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
	in, err := tr.PrepareInjection(tg.pid)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	run(tr, func() {
		for b.Loop() {
			ret, err := in.Syscall(unix.SYS_GETPID)
			if err != nil || ret != int64(tg.pid) {
				b.Fatalf("getpid = %d, %v", ret, err)
			}
		}
	})
	b.StopTimer()
	if err := in.Finish(); err != nil {
		b.Fatal(err)
	}
	if err := tr.Detach(tg.pid, 0); err != nil {
		b.Fatal(err)
	}
}

// TestInjectionSurvivesTracerDeath: the tracer thread ends (as it does
// when gocr is SIGKILLed: the kernel detaches every tracee) at each point
// of an injected system call. The thread runs the call, rt_sigreturns
// through its frame and goes on exactly as before: an interrupted pause
// restarts and returns once a handler ran (so the mask is its own
// again), and a read blocks until data comes.
func TestInjectionSurvivesTracerDeath(t *testing.T) {
	arm := func(t *testing.T, in *Injection) {
		in.t.Do(func() {
			if err := in.arm(unix.SYS_GETPID, nil); err != nil {
				t.Error(err)
			}
		})
	}
	inject := func(t *testing.T, in *Injection) {
		if _, err := in.Syscall(unix.SYS_GETPID); err != nil {
			t.Error(err)
		}
	}
	points := []struct {
		name string
		at   func(t *testing.T, in *Injection)
	}{
		{"Armed", arm},
		{"Held", func(t *testing.T, in *Injection) {
			if err := in.Hold(unix.SYS_GETPID); err != nil {
				t.Error(err)
			}
		}},
		{"Entered", func(t *testing.T, in *Injection) {
			arm(t, in)
			in.t.Do(func() {
				if _, err := in.step("syscall-enter-stop"); err != nil {
					t.Error(err)
				}
			})
		}},
		{"Exited", inject},
		{"SecondArmed", func(t *testing.T, in *Injection) { inject(t, in); arm(t, in) }},
	}
	for _, pt := range points {
		t.Run("Pause"+pt.name, func(t *testing.T) {
			tg, in := preparedTarget(t, "pause")
			pt.at(t, in)
			in.t.Close()
			tg.quiet(300 * time.Millisecond) // pause restarted, no spurious return
			if err := unix.Kill(tg.pid, unix.SIGUSR1); err != nil {
				t.Fatal(err)
			}
			if got, want := tg.expect("PAUSE", 5*time.Second), fmt.Sprintf("PAUSE -1 %d 1", unix.EINTR); got != want {
				t.Fatalf("target printed %q, want %q", got, want)
			}
		})
		t.Run("ReadNoVdso"+pt.name, func(t *testing.T) {
			tg, in := preparedTarget(t, "novdso-read")
			if in.chain == nil {
				t.Fatal("the injection into a process without a vDSO does not run on a chain")
			}
			code := codeBytes(t, tg.pid)
			pt.at(t, in)
			in.t.Close()
			tg.quiet(300 * time.Millisecond) // still blocked in read
			if !bytes.Equal(code, codeBytes(t, tg.pid)) {
				t.Fatal("the process's code changed")
			}
			if _, err := tg.stdin.WriteString("hello\n"); err != nil {
				t.Fatal(err)
			}
			if got, want := tg.expect("READ", 5*time.Second), "READ 6 hello"; got != want {
				t.Fatalf("target printed %q, want %q", got, want)
			}
		})
		t.Run("Read"+pt.name, func(t *testing.T) {
			tg, in := preparedTarget(t, "read")
			pt.at(t, in)
			in.t.Close()
			tg.quiet(300 * time.Millisecond) // still blocked in read
			if _, err := tg.stdin.WriteString("hello\n"); err != nil {
				t.Fatal(err)
			}
			if got, want := tg.expect("READ", 5*time.Second), "READ 6 hello"; got != want {
				t.Fatalf("target printed %q, want %q", got, want)
			}
		})
	}
}

// codeBytes is the content of pid's read-only code mappings.
func codeBytes(t *testing.T, pid int) []byte {
	t.Helper()
	spans, err := codeSpans(pid)
	if err != nil {
		t.Fatal(err)
	}
	var all []byte
	for _, s := range spans {
		b := make([]byte, s[1]-s[0])
		if err := ReadMemory(pid, s[0], b); err != nil {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	return all
}

// TestHoldFinished: a thread held (Injection.Hold) and then finished is
// back in its event stop as it was, the call never made: released, it
// goes on with its own read.
func TestHoldFinished(t *testing.T) {
	tg, in := preparedTarget(t, "read")
	if err := in.Hold(unix.SYS_EXIT, 7); err != nil {
		t.Fatal(err)
	}
	if err := in.Finish(); err != nil {
		t.Fatal(err)
	}
	in.t.Close()
	tg.quiet(300 * time.Millisecond) // still blocked in read
	if _, err := tg.stdin.WriteString("hello\n"); err != nil {
		t.Fatal(err)
	}
	if got, want := tg.expect("READ", 5*time.Second), "READ 6 hello"; got != want {
		t.Fatalf("target printed %q, want %q", got, want)
	}
}

// preparedTarget starts a target in mode, stops it under a tracer of its
// own and prepares an injection into it.
func preparedTarget(t *testing.T, mode string) (*target, *Injection) {
	t.Helper()
	tg := startTarget(t, mode)
	settle()
	tr := newTracer(t)
	seizeStop(t, tr, tg.pid)
	in, err := tr.PrepareInjection(tg.pid)
	if err != nil {
		t.Fatal(err)
	}
	return tg, in
}

// TestGate: a thread released into the gate waits on its fd (here its
// stdin, a pipe the test writes): a byte, and it closes the fd and goes
// on from the state PrepareInjection found, its interrupted nanosleep
// restarted; end of file, and its process exits with status 1, running
// none of its own code. With an alternate signal stack
// (PrepareInjectionOn: here the bottom of its stack mapping, far below
// its stack pointer), the frame goes at that stack's top.
func TestGate(t *testing.T) {
	for _, tc := range []struct {
		committed, altStack, noVdso bool
	}{{true, false, false}, {false, false, false}, {true, true, false},
		{true, false, true}, {false, false, true}, {true, true, true}} {
		committed := tc.committed
		t.Run(fmt.Sprintf("committed=%v,altstack=%v,novdso=%v", tc.committed, tc.altStack, tc.noVdso), func(t *testing.T) {
			mode := "nanosleep"
			if tc.noVdso {
				mode = "novdso-nanosleep"
			}
			tg := startTarget(t, mode)
			settle()
			tr := newTracer(t)
			seizeStop(t, tr, tg.pid)
			var lo, hi uint64
			if tc.altStack {
				lo, hi = stackBottom(t, tr, tg.pid)
			}
			in, err := tr.PrepareInjectionOn(tg.pid, lo, hi)
			if err != nil {
				t.Fatal(err)
			}
			if tc.altStack && (in.Scratch < lo || in.Scratch >= hi || in.sp < lo) {
				t.Fatalf("scratch %#x, frame %#x: want both in the alternate stack [%#x, %#x)", in.Scratch, in.sp, lo, hi)
			}
			if tc.noVdso != (in.chain != nil) {
				t.Fatalf("injection runs on a chain: %v, want %v", in.chain != nil, tc.noVdso)
			}
			at, err := in.Gate(0)
			if err != nil {
				t.Fatal(err)
			}
			if err := tr.DetachAll([]int{tg.pid}); err != nil {
				t.Fatal(err)
			}
			// It waits in the gate's read until told.
			buf := in.Scratch
			if in.chain != nil {
				buf = at.stack[0] + gateSlotOff
			}
			want := fmt.Sprintf("0 0x0 %#x 0x1 ", buf)
			deadline := time.Now().Add(5 * time.Second)
			for {
				b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/syscall", tg.pid))
				f := strings.Fields(string(b))
				if strings.HasPrefix(string(b), want) && f[len(f)-1] == fmt.Sprintf("%#x", at.Read+2) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the thread is not in the gate's read: /proc/%d/syscall %q, want %q... pc %#x", tg.pid, b, want, at.Read+2)
				}
				time.Sleep(time.Millisecond)
			}
			if !committed {
				tg.stdin.Close()
				var ws unix.WaitStatus
				if _, err := unix.Wait4(tg.pid, &ws, 0, nil); err != nil {
					t.Fatal(err)
				}
				if !ws.Exited() || ws.ExitStatus() != 1 {
					t.Fatalf("after the gate's end of file: wait status %#x, want exit status 1", uint32(ws))
				}
				if l, ok := <-tg.lines; ok {
					t.Fatalf("the thread ran its own code after the gate's end of file: printed %q", l)
				}
				return
			}
			if _, err := tg.stdin.Write([]byte{CommitByte}); err != nil {
				t.Fatal(err)
			}
			// Through the gate, its fd closed, in its nanosleep again.
			for {
				_, err := os.Stat(fmt.Sprintf("/proc/%d/fd/0", tg.pid))
				if errors.Is(err, os.ErrNotExist) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("fd 0, the gate's, still open after the byte (%v)", err)
				}
				time.Sleep(time.Millisecond)
			}
			tg.expect("OK", 5*time.Second)
		})
	}
}

// stackBottom is the lowest 32 KiB of pid's [stack] mapping, well below
// its stack pointer, for an alternate signal stack.
func stackBottom(t *testing.T, tr *Tracer, pid int) (lo, hi uint64) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if !strings.HasSuffix(strings.TrimSpace(line), "[stack]") {
			continue
		}
		var start, end uint64
		if _, err := fmt.Sscanf(line, "%x-%x", &start, &end); err != nil {
			t.Fatalf("/proc/%d/maps: %q: %v", pid, line, err)
		}
		r, err := tr.GetRegs(pid)
		if err != nil {
			t.Fatal(err)
		}
		// The kernel maps 128 KiB of stack at exec (fs/exec.c
		// setup_arg_pages, stack_expand), the arguments and the
		// environment at its top.
		if r.Rsp < start+48<<10 {
			t.Fatalf("the [stack] mapping %#x-%#x has %d bytes below the stack pointer, want 48 KiB", start, end, r.Rsp-start)
		}
		return start, start + 32<<10
	}
	t.Fatalf("/proc/%d/maps: no [stack]", pid)
	return 0, 0
}

// TestGateSiteHolds: a thread is in a vDSO gate while its pc is in the
// gate's code; in a chain gate, while its pc is in one of the chain's
// sequences and its sp in the chain, up to the frame's ucontext: the
// job's own code may run the same bytes, on another stack.
func TestGateSiteHolds(t *testing.T) {
	vdso := GateSite{Read: 0x1000, code: [][2]uint64{{0x1000, 0x1024}}}
	chain := GateSite{Read: 0x5000, code: [][2]uint64{{0x5000, 0x5003}, {0x6000, 0x6002}},
		stack: [2]uint64{0x7000, 0x7040}}
	for _, c := range []struct {
		g       GateSite
		pc, sp  uint64
		holds   bool
		comment string
	}{
		{vdso, 0x1002, 0, true, "in the read"},
		{vdso, 0x1023, 0, true, "last byte"},
		{vdso, 0x1024, 0, false, "past the code"},
		{chain, 0x5002, 0x7000, true, "in the read"},
		{chain, 0x5000, 0x7040, true, "at the rt_sigreturn"},
		{chain, 0x6001, 0x7048, false, "the job's stack"},
		{chain, 0x6001, 0x6ff8, false, "below the chain"},
		{chain, 0x5003, 0x7010, false, "past the code"},
	} {
		if got := c.g.Holds(c.pc, c.sp); got != c.holds {
			t.Errorf("%s: Holds(%#x, %#x) = %v, want %v", c.comment, c.pc, c.sp, got, c.holds)
		}
	}
}
