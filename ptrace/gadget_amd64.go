//go:build linux && amd64

package ptrace

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"
)

// gadget is the code every injected system call runs (Injection):
//
//	syscall            0f 05           the injected call
//	mov $15, %eax      b8 0f 00 00 00  __NR_rt_sigreturn
//	syscall            0f 05           back to the thread's own state
//	ud2                0f 0b           never reached: rt_sigreturn returns
//	                                   to the frame's rip, or kills
//
// rt_sigreturn is 15 in arch/x86/entry/syscalls/syscall_64.tbl.
var gadget = []byte{0x0f, 0x05, 0xb8, 0x0f, 0x00, 0x00, 0x00, 0x0f, 0x05, 0x0f, 0x0b}

// gadgetSlot is the room the gadget takes at the end of the vDSO, a
// multiple of the word PTRACE_POKEDATA writes.
const gadgetSlot = 16

// gate is the code a restored thread is released into (Injection.Gate),
// with rsp at its signal frame, rdi the fd of its lifeline, rsi one byte
// of scratch memory:
//
//	syscall            0f 05           read(fd, buf, 1), rax = 0
//	cmp $1, %rax       48 83 f8 01     gocr's commit: a byte for it
//	jne die            75 0e           else EOF (gocr died) or an error
//	mov $3, %eax       b8 03 00 00 00  __NR_close: its fd, rdi kept
//	syscall            0f 05
//	mov $15, %eax      b8 0f 00 00 00  __NR_rt_sigreturn
//	syscall            0f 05           into its final state
//	die:
//	mov $231, %eax     b8 e7 00 00 00  __NR_exit_group
//	mov $1, %edi       bf 01 00 00 00  status 1
//	syscall            0f 05
//	ud2                0f 0b
//
// The syscall instruction clobbers rcx and r11 only, and puts the result
// in rax (arch/x86/entry/entry_64.S), so rdi still holds the fd; system
// call numbers from arch/x86/entry/syscalls/syscall_64.tbl.
var gate = []byte{0x0f, 0x05, 0x48, 0x83, 0xf8, 0x01, 0x75, 0x0e, 0xb8, 0x03, 0x00, 0x00, 0x00, 0x0f, 0x05,
	0xb8, 0x0f, 0x00, 0x00, 0x00, 0x0f, 0x05, 0xb8, 0xe7, 0x00, 0x00, 0x00, 0xbf, 0x01, 0x00, 0x00, 0x00,
	0x0f, 0x05, 0x0f, 0x0b}

// gateSlot is the room the gate takes in the vDSO's padding, right below
// the gadget's.
const gateSlot = 48

// placeGadget returns the address of the gadget in the vDSO of tid's
// process, writing it there first if it is not there yet (an earlier
// gocr may have left it: it is never removed).
//
// Where: in the last gadgetSlot bytes of the [vdso] mapping, which must
// lie past everything its ELF image holds (headers, every segment's file
// bytes, every section, the section header table) and be zero. The kernel
// maps the image padded with zeros to whole pages (arch/x86/entry/vdso/
// vdso2c.h: the image is the stripped ELF rounded up to a page), and
// nothing refers to the padding: no code of the vDSO or of the process
// jumps there, and what the process reads of the vDSO (the dynamic
// loader reads its headers and symbols) lies inside the image.
//
// How: PTRACE_POKEDATA writes through the mapping's lack of PROT_WRITE
// (FOLL_FORCE, kernel/ptrace.c ptrace_access_vm), as a debugger's
// breakpoint does; the [vdso] mapping is private and may be written that
// way (VM_MAYWRITE, arch/x86/entry/vdso/vma.c map_vdso), so the page
// written becomes the process's own copy (copy-on-write), with the same
// bytes as the vDSO's everywhere but in the padding. The process keeps
// that copy: it behaves as the vDSO it was, and a dump does not save the
// vDSO (restore maps the kernel's own).
//
// Precondition: called on the tracer thread, tid stopped.
func placeGadget(tid int) (uint64, error) {
	at, err := placeCode(tid, gadget, gadgetSlot, gadgetSlot)
	if err != nil {
		return 0, fmt.Errorf("place the injection gadget: %w", err)
	}
	return at, nil
}

// placeGate returns the address of the gate in the vDSO of tid's process,
// in the gateSlot bytes below the gadget's, placed as placeGadget places
// the gadget.
//
// Precondition: called on the tracer thread, tid stopped.
func placeGate(tid int) (uint64, error) {
	at, err := placeCode(tid, gate, gateSlot, gadgetSlot+gateSlot)
	if err != nil {
		return 0, fmt.Errorf("place the release gate: %w", err)
	}
	return at, nil
}

// placeCode writes code, zero-padded to slot bytes, fromEnd bytes before
// the end of tid's [vdso] mapping (see placeGadget), unless it is there
// already, and returns its address.
func placeCode(tid int, code []byte, slot, fromEnd uint64) (uint64, error) {
	start, end, err := vdsoRange(tid)
	if err != nil {
		return 0, err
	}
	img := make([]byte, end-start)
	if err := ReadMemory(tid, start, img); err != nil {
		return 0, fmt.Errorf("read [vdso]: %w", err)
	}
	used, err := elfImageEnd(img)
	if err != nil {
		return 0, fmt.Errorf("[vdso] at %#x: %w", start, err)
	}
	if fromEnd > uint64(len(img)) || used > uint64(len(img))-fromEnd {
		return 0, fmt.Errorf("[vdso] at %#x: its image ends at %d of %d bytes, no room for %d more", start, used, len(img), fromEnd)
	}
	off := uint64(len(img)) - fromEnd
	want := make([]byte, slot)
	copy(want, code)
	switch have := img[off : off+slot]; {
	case bytes.Equal(have, want):
		return start + off, nil
	case !bytes.Equal(have, make([]byte, slot)):
		return 0, fmt.Errorf("[vdso] at %#x: its padding at %#x is not zero", start, start+off)
	}
	if _, err := unix.PtracePokeData(tid, uintptr(start+off), want); err != nil {
		return 0, fmt.Errorf("ptrace pokedata %d at %#x: %w", tid, start+off, err)
	}
	got := make([]byte, slot)
	if err := ReadMemory(tid, start+off, got); err != nil || !bytes.Equal(got, want) {
		return 0, fmt.Errorf("[vdso] at %#x reads % x after the write (%v)", start+off, got, err)
	}
	return start + off, nil
}

// elfImageEnd is the end of everything an ELF64 image holds, from its
// headers (include/uapi/linux/elf.h Elf64_Ehdr, Elf64_Phdr, Elf64_Shdr):
// the ELF header, the program and section header tables, every segment's
// file bytes and every section's but SHT_NOBITS ones.
func elfImageEnd(img []byte) (uint64, error) {
	const (
		ehdrSize  = 64
		shtNobits = 8
	)
	if len(img) < ehdrSize || !bytes.Equal(img[:4], []byte{0x7f, 'E', 'L', 'F'}) || img[4] != 2 || img[5] != 1 {
		return 0, fmt.Errorf("not a little-endian ELF64 image")
	}
	le := binary.LittleEndian
	size := uint64(len(img))
	phoff, shoff := le.Uint64(img[0x20:]), le.Uint64(img[0x28:])
	phentsize, phnum := uint64(le.Uint16(img[0x36:])), uint64(le.Uint16(img[0x38:]))
	shentsize, shnum := uint64(le.Uint16(img[0x3a:])), uint64(le.Uint16(img[0x3c:]))
	end := uint64(ehdrSize)
	table := func(off, entsize, num uint64, what string) error {
		if off > size || entsize != 0 && num > (size-off)/entsize {
			return fmt.Errorf("%s table past the mapping", what)
		}
		end = max(end, off+entsize*num)
		return nil
	}
	if err := table(phoff, phentsize, phnum, "program header"); err != nil {
		return 0, err
	}
	if err := table(shoff, shentsize, shnum, "section header"); err != nil {
		return 0, err
	}
	extent := func(off, n uint64, what string, i uint64) error {
		if off > size || n > size-off {
			return fmt.Errorf("%s %d past the mapping", what, i)
		}
		end = max(end, off+n)
		return nil
	}
	for i := range phnum {
		ph := img[phoff+i*phentsize:]
		if phentsize < 40 {
			return 0, fmt.Errorf("program header entries of %d bytes", phentsize)
		}
		if err := extent(le.Uint64(ph[8:]), le.Uint64(ph[32:]), "segment", i); err != nil {
			return 0, err
		}
	}
	for i := range shnum {
		sh := img[shoff+i*shentsize:]
		if shentsize < 40 {
			return 0, fmt.Errorf("section header entries of %d bytes", shentsize)
		}
		if le.Uint32(sh[4:]) == shtNobits {
			continue
		}
		if err := extent(le.Uint64(sh[24:]), le.Uint64(sh[32:]), "section", i); err != nil {
			return 0, err
		}
	}
	return end, nil
}
