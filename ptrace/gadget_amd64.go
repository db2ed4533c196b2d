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
	start, end, err := vdsoRange(tid)
	if err != nil {
		return 0, fmt.Errorf("place the injection gadget: %w", err)
	}
	img := make([]byte, end-start)
	if err := ReadMemory(tid, start, img); err != nil {
		return 0, fmt.Errorf("place the injection gadget: read [vdso]: %w", err)
	}
	used, err := elfImageEnd(img)
	if err != nil {
		return 0, fmt.Errorf("place the injection gadget: [vdso] at %#x: %w", start, err)
	}
	off := uint64(len(img)) - gadgetSlot
	if used > off {
		return 0, fmt.Errorf("place the injection gadget: [vdso] at %#x: its image ends at %d of %d bytes, no room for %d more", start, used, len(img), gadgetSlot)
	}
	want := make([]byte, gadgetSlot)
	copy(want, gadget)
	switch slot := img[off:]; {
	case bytes.Equal(slot, want):
		return start + off, nil
	case !bytes.Equal(slot, make([]byte, gadgetSlot)):
		return 0, fmt.Errorf("place the injection gadget: [vdso] at %#x: its padding at %#x is not zero", start, start+off)
	}
	if _, err := unix.PtracePokeData(tid, uintptr(start+off), want); err != nil {
		return 0, fmt.Errorf("place the injection gadget: ptrace pokedata %d at %#x: %w", tid, start+off, err)
	}
	got := make([]byte, gadgetSlot)
	if err := ReadMemory(tid, start+off, got); err != nil || !bytes.Equal(got, want) {
		return 0, fmt.Errorf("place the injection gadget: [vdso] at %#x reads % x after the write (%v)", start+off, got, err)
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
