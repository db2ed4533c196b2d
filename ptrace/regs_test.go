//go:build linux && amd64

package ptrace

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// Per-thread CPU state read and written through ptrace: the XSAVE area and
// the rseq registration.

// TestXstate: the XSAVE area of a stopped target holds its XCR0 and its
// ymm0 at the named offsets, writes back unchanged, refuses a short image,
// and a changed ymm0 is what the target sees after the detach.
func TestXstate(t *testing.T) {
	tg := startTarget(t, "xmm")
	settle()
	tr := newTracer(t)
	seizeStop(t, tr, tg.pid)
	xs, err := tr.GetXstate(tg.pid)
	if err != nil {
		t.Fatal(err)
	}
	xcr0 := XCR0(xs)
	t.Logf("xstate %d bytes, XCR0 %#x, xstate_bv %#x", len(xs), xcr0, XstateBV(xs))
	if xcr0&(XfeatureFP|XfeatureSSE) != XfeatureFP|XfeatureSSE {
		t.Errorf("XCR0 %#x lacks x87|SSE", xcr0)
	}
	var targetXCR0 uint64
	if _, err := fmt.Sscanf(tg.ready, "READY xcr0=%x", &targetXCR0); err != nil {
		t.Fatalf("parse %q: %v", tg.ready, err)
	}
	if xcr0 != targetXCR0 {
		t.Errorf("XCR0 in the ptrace image %#x, xgetbv(0) in the target %#x", xcr0, targetXCR0)
	}

	// The target loaded ymm0 = {in[0..3]}: low half in the legacy area,
	// high half in the AVX component.
	le := binary.LittleEndian
	wantLo := []uint64{0x1122334455667788, 0x99aabbccddeeff00}
	wantHi := []uint64{0x0123456789abcdef, 0xfedcba9876543210}
	gotLo := []uint64{le.Uint64(xs[XstateXMMOffset:]), le.Uint64(xs[XstateXMMOffset+8:])}
	gotHi := []uint64{le.Uint64(xs[XstateExtendedOffset:]), le.Uint64(xs[XstateExtendedOffset+8:])}
	if diff := cmp.Diff(wantLo, gotLo); diff != "" {
		t.Errorf("xmm0 in image (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantHi, gotHi); diff != "" {
		t.Errorf("ymm0 high half in image (-want +got):\n%s", diff)
	}

	// Round trip.
	if err := tr.SetXstate(tg.pid, xs); err != nil {
		t.Fatal(err)
	}
	again, err := tr.GetXstate(tg.pid)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(xs, again) {
		t.Fatalf("xstate changed across Set/Get of the same bytes")
	}

	// A wrong size is refused rather than half-applied.
	if err := tr.SetXstate(tg.pid, xs[:len(xs)-64]); err == nil {
		t.Errorf("SetXstate with a short image succeeded")
	}

	mod := bytes.Clone(xs)
	le.PutUint64(mod[XstateXMMOffset:], 0xa5a5a5a5a5a5a5a5)
	le.PutUint64(mod[XstateXMMOffset+8:], 0x5a5a5a5a5a5a5a5a)
	le.PutUint64(mod[XstateExtendedOffset:], 0xc3c3c3c3c3c3c3c3)
	le.PutUint64(mod[XstateExtendedOffset+8:], 0x3c3c3c3c3c3c3c3c)
	le.PutUint64(mod[XstateHeaderOffset:], XstateBV(mod)|XfeatureSSE|XfeatureYMM)
	if err := tr.SetXstate(tg.pid, mod); err != nil {
		t.Fatal(err)
	}
	if err := tr.Detach(tg.pid, 0); err != nil {
		t.Fatal(err)
	}
	got := tg.expect("YMM0", 5*time.Second)
	if want := "YMM0 a5a5a5a5a5a5a5a5 5a5a5a5a5a5a5a5a c3c3c3c3c3c3c3c3 3c3c3c3c3c3c3c3c"; got != want {
		t.Fatalf("target saw %q, want %q", got, want)
	}
}

// TestRseqConfig: the rseq area glibc registered for the target is seen
// with glibc's signature and at least the kernel's struct size.
func TestRseqConfig(t *testing.T) {
	tg := startTarget(t, "pause")
	settle()
	tr := newTracer(t)
	seizeStop(t, tr, tg.pid)
	c, err := tr.GetRseqConfig(tg.pid)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("rseq %+v", c)
	if c.AbiPointer == 0 {
		t.Errorf("AbiPointer = 0: glibc 2.35+ registers rseq for every thread")
	}
	if c.Signature != 0x53053053 { // glibc's RSEQ_SIG for x86
		t.Errorf("Signature = %#x, want 0x53053053", c.Signature)
	}
	if c.AbiSize < 32 { // sizeof(struct rseq), include/uapi/linux/rseq.h
		t.Errorf("AbiSize = %d, want >= 32", c.AbiSize)
	}
	if err := tr.Detach(tg.pid, 0); err != nil {
		t.Fatal(err)
	}
}

// TestIOBitmap: a thread given port permissions with ioperm shows them
// through its regset; on a kernel without CONFIG_X86_IOPL_IOPERM the
// regset is absent and no thread has any.
func TestIOBitmap(t *testing.T) {
	plain := startTarget(t, "pause")
	withPorts := startTarget(t, "ioperm")
	settle()
	tr := newTracer(t)
	seizeStop(t, tr, plain.pid)
	seizeStop(t, tr, withPorts.pid)
	if has, err := tr.HasIOBitmap(plain.pid); err != nil || has {
		t.Errorf("a thread without ioperm: HasIOBitmap = %v, %v; want false, nil", has, err)
	}
	has, err := tr.HasIOBitmap(withPorts.pid)
	if err != nil {
		t.Fatal(err)
	}
	switch withPorts.ready {
	case "READY ioperm ok":
		if !has {
			t.Error("a thread with ioperm(0x80): HasIOBitmap = false")
		}
	case "READY ioperm ENOSYS":
		if has {
			t.Error("ioperm is not in this kernel, yet HasIOBitmap = true")
		}
		t.Skip("this kernel has no ioperm (CONFIG_X86_IOPL_IOPERM unset): only the regset's absence was checked")
	default:
		t.Fatalf("target: %q", withPorts.ready)
	}
}

// TestRegsSizeError: an NT_PRSTATUS answer of struct user_regs_struct32's
// size is a thread running 32-bit code (ErrIA32); any other short answer
// is a disagreement with the kernel, named with both sizes.
func TestRegsSizeError(t *testing.T) {
	if err := regsSizeError(68); !errors.Is(err, ErrIA32) {
		t.Errorf("68 bytes: %v, want ErrIA32", err)
	}
	err := regsSizeError(100)
	if errors.Is(err, ErrIA32) || !strings.Contains(err.Error(), "100") || !strings.Contains(err.Error(), strconv.Itoa(regsSize)) {
		t.Errorf("100 bytes: %v, want a size error naming 100 and %d", err, regsSize)
	}
}
