//go:build linux && amd64

package ptrace

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// A process may have unmapped its vDSO (a sandbox, a runtime that wants
// every clock read to be a real system call): then there is no padding to
// put the gadget or the gate in, and gocr writes no code into the
// process at all, for a gocr killed while its code is in place would
// leave the process changed. Instead an injected call runs on code the
// process already has, chained through its stack as a signal handler's
// return is: three byte sequences, found anywhere in its read-only
// executable mappings (an x86 instruction may start at any byte, so the
// sequence need not be on the program's own instruction boundaries):
//
//	syscall; ret       0f 05 c3
//	pop %rax; ret      58 c3
//	pop %rdi; ret      5f c3
//
// An injected call starts at `syscall; ret` with rsp at the chain below
// the thread's signal frame (rt_sigframe.pretcode, arch/x86/include/asm/
// sigframe.h):
//
//	rsp+0   &pop %rax; ret
//	rsp+8   15                 __NR_rt_sigreturn
//	rsp+16  &syscall; ret      the frame's pretcode; rsp+24 is its ucontext
//
// so that a thread left to run (gocr gone) runs the call, then
// rt_sigreturn with rsp at the ucontext (arch/x86/kernel/signal_64.c
// rt_sigreturn: frame = sp - sizeof(long)), exactly as the vDSO gadget's
// `syscall; mov $15, %eax; syscall`. A live gocr stops it at the call's
// syscall-exit-stop, before the `ret`, as with the gadget.
//
// ret pops its target from the stack; a thread with a user shadow stack
// would fault on it (arch/x86/kernel/shstk.c), but a process with one has
// a shadow stack mapping, which the dump refuses (dump/vmflags.go "ss").
//
// Only mappings without PROT_WRITE are searched: their bytes cannot
// change under a thread still in the chain while another, through the
// release gate, runs the job's code. A restore finds the same bytes at
// the same addresses, the code being restored as it was dumped.
type codeChain struct {
	syscallRet, popRax, popRdi uint64
}

var (
	seqSyscallRet = []byte{0x0f, 0x05, 0xc3}
	seqPopRax     = []byte{0x58, 0xc3}
	seqPopRdi     = []byte{0x5f, 0xc3}
)

// errNoVdso is the error of vdsoRange for a process without a [vdso].
var errNoVdso = errors.New("no [vdso] mapping")

// chainScanChunk is how much of a mapping findChain reads at a time: it
// stops at the first chunk that completes the set, so that it brings in
// (faults in) as few of the process's code pages as it can.
const chainScanChunk = 64 << 10

// findChain finds the chain's three sequences in the read-only executable
// mappings of tid's process, the first of each in address order.
func findChain(tid int) (*codeChain, error) {
	spans, err := codeSpans(tid)
	if err != nil {
		return nil, err
	}
	var c codeChain
	want := []struct {
		seq []byte
		at  *uint64
	}{{seqSyscallRet, &c.syscallRet}, {seqPopRax, &c.popRax}, {seqPopRdi, &c.popRdi}}
	left := len(want)
	buf := make([]byte, chainScanChunk)
	for _, s := range spans {
		// Chunks overlap by two bytes, so that no sequence is split.
		for at := s[0]; at < s[1] && left > 0; at += chainScanChunk - 2 {
			n := min(uint64(chainScanChunk), s[1]-at)
			if err := ReadMemory(tid, at, buf[:n]); err != nil {
				return nil, fmt.Errorf("read code at %#x: %w", at, err)
			}
			for _, w := range want {
				if *w.at != 0 {
					continue
				}
				if i := bytes.Index(buf[:n], w.seq); i >= 0 {
					*w.at = at + uint64(i)
					left--
				}
			}
			if n < chainScanChunk {
				break
			}
		}
	}
	if left > 0 {
		return nil, fmt.Errorf("no [vdso], and its read-only code lacks one of `syscall; ret`, `pop %%rax; ret`, `pop %%rdi; ret` (found at %#x, %#x, %#x) to run injected system calls on", c.syscallRet, c.popRax, c.popRdi)
	}
	return &c, nil
}

// codeSpans lists the mappings of pid that are readable and executable
// but not writable, from /proc/PID/maps (man 5 proc_pid_maps).
func codeSpans(pid int) ([][2]uint64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var spans [][2]uint64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 || len(fields[1]) < 3 || fields[1][:3] != "r-x" {
			continue
		}
		lo, hi, ok := strings.Cut(fields[0], "-")
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if !ok || err1 != nil || err2 != nil {
			return nil, fmt.Errorf("/proc/%d/maps: bad range %q", pid, fields[0])
		}
		spans = append(spans, [2]uint64{start, end})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("/proc/%d/maps: %w", pid, err)
	}
	return spans, nil
}

// chainRoom is the stack below a signal frame that the chain of an
// injected call or of the release gate takes.
const chainRoom = 64

// callChain is the chain of an injected call, to be written at the
// frame's address minus 16 (the frame's pretcode is its last word).
func (c *codeChain) callChain() []byte {
	return words(c.popRax, 15, c.syscallRet)
}

// gateChain is the release gate (Injection.Gate) made of the chain, to
// be written 56 bytes below the frame, for a thread that starts at
// `syscall; ret` with rax = __NR_read, rdi its lifeline fd, rsi the
// address of the word at rsp+48, rdx 1:
//
//	read(fd, rsp+48, 1)   gocr's commit writes 15 into the low byte
//	                      of rsp+48, which holds 231 until then
//	rsp+0   &pop %rax; ret
//	rsp+8   3                   __NR_close, of rdi, its fd
//	rsp+16  &syscall; ret
//	rsp+24  &pop %rdi; ret
//	rsp+32  1                   exit status
//	rsp+40  &pop %rax; ret
//	rsp+48  231, or 15          __NR_exit_group, or __NR_rt_sigreturn
//	rsp+56  &syscall; ret       the frame's pretcode
//
// A byte read: the fd closed, rt_sigreturn into the frame's state. End
// of file (gocr gone without the commit) or an error: nothing written,
// so the fd closed, exit_group(1), as the vDSO gate. No branch: the byte
// read chooses the call. The syscall instruction clobbers rcx and r11
// only (arch/x86/entry/entry_64.S), so rdi still holds the fd for close.
func (c *codeChain) gateChain() []byte {
	return words(c.popRax, 3, c.syscallRet, c.popRdi, 1, c.popRax, 231, c.syscallRet)
}

// gateChainLen is the length of gateChain; gateSlotOff is its word that
// the commit's byte is read into.
const (
	gateChainLen = 64
	gateSlotOff  = 48
)

// CommitByte is the byte gocr's commit writes for each thread waiting at
// a release gate: __NR_rt_sigreturn, which the chain gate reads into its
// next call's number; the vDSO gate only counts it.
const CommitByte = 15

func words(w ...uint64) []byte {
	b := make([]byte, 8*len(w))
	for i, v := range w {
		binary.LittleEndian.PutUint64(b[8*i:], v)
	}
	return b
}
