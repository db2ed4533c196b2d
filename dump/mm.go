//go:build linux

package dump

import (
	"fmt"
	"strings"

	"github.com/gocr/gocr/files"
	"github.com/gocr/gocr/gocrpb"
	"github.com/gocr/gocr/proc"
)

// collectMm describes the process's memory from maps, its mappings with
// their smaps VmFlags, and returns where its [vdso] starts, 0 if it has
// none (it unmapped it): the parasite then runs on the process's own
// code (ptrace.Injection), and the restore leaves the kernel's vDSO
// out (restorer/checks.go). A vDSO area mapping is whole or gone: the
// kernel refuses to split one, by munmap or mprotect of a part
// (mm/mmap.c special_mapping_split), so the restore, which moves the
// kernel's whole ones, gives back what the process had.
func collectMm(pid int, stat *proc.Stat, saver *fileSaver, maps []proc.Mapping) (*gocrpb.Mm, uint64, error) {
	auxv, err := proc.ReadAuxv(pid)
	if err != nil {
		return nil, 0, err
	}
	exe, err := collectExe(pid)
	if err != nil {
		return nil, 0, err
	}
	brk, err := currentBrk(stat, maps)
	if err != nil {
		return nil, 0, err
	}
	mm := &gocrpb.Mm{
		Pid: int32(pid), StartCode: stat.StartCode, EndCode: stat.EndCode, StartData: stat.StartData,
		EndData: stat.EndData, StartBrk: stat.StartBrk, Brk: brk, StartStack: stat.StartStack,
		ArgStart: stat.ArgStart, ArgEnd: stat.ArgEnd, EnvStart: stat.EnvStart, EnvEnd: stat.EnvEnd,
		Auxv: auxv, Exe: exe.ref,
	}
	var vdso uint64
	refs := map[string]*gocrpb.FileRef{}
	for _, m := range maps {
		v, err := vmaFromMapping(m, refs)
		if err == nil && v != nil {
			err = saveMapped(saver, mm, m, v, exe)
		}
		if err != nil {
			return nil, 0, err
		}
		if v == nil {
			continue
		}
		if v.Kind == gocrpb.VmaKind_VMA_VDSO {
			vdso = v.Start
		}
		mm.Vmas = append(mm.Vmas, v)
	}
	if sf := saver.saved[exe.key]; sf != nil && savedIn(mm, sf.Id) {
		mm.ExeSavedFile = sf.Id
		mm.Exe = sf.File
	} else if exe.detached != "" {
		return nil, 0, fmt.Errorf("executable %s %s", exe.ref.Path, exe.detached)
	}
	return mm, vdso, nil
}

// currentBrk is the program break. /proc/PID/stat shows start_brk but not
// brk itself; the [heap] mapping ends at brk rounded up to a page
// (mm/mmap.c brk), which is what a restore can reproduce.
func currentBrk(stat *proc.Stat, maps []proc.Mapping) (uint64, error) {
	for _, m := range maps {
		if m.Path == "[heap]" {
			return m.End, nil
		}
	}
	return stat.StartBrk, nil
}

func vmaFromMapping(m proc.Mapping, refs map[string]*gocrpb.FileRef) (*gocrpb.Vma, error) {
	v := &gocrpb.Vma{Start: m.Start, End: m.End, Pgoff: m.Offset, Prot: uint32(m.Prot), Name: m.Path, VmFlags: m.VmFlags,
		AnonHugeBytes: m.AnonHugeBytes}
	switch {
	case m.Path == "[vdso]":
		v.Kind = gocrpb.VmaKind_VMA_VDSO
	case m.Path == "[vvar]":
		v.Kind = gocrpb.VmaKind_VMA_VVAR
	case m.Path == "[vvar_vclock]":
		v.Kind = gocrpb.VmaKind_VMA_VVAR_VCLOCK
	case m.Path == "[vsyscall]":
		return nil, nil
	case m.HasVmFlag("ht"):
		return nil, fmt.Errorf("mapping %#x-%#x: hugetlbfs mappings are not supported yet", m.Start, m.End)
	case m.HasVmFlag("io") || m.HasVmFlag("pf"):
		return nil, fmt.Errorf("mapping %#x-%#x %s: device (I/O or PFN) mappings cannot be checkpointed", m.Start, m.End, m.Path)
	case m.Inode == 0 && (m.Path == "" || m.Path == "[heap]" || m.Path == "[stack]" || strings.HasPrefix(m.Path, "[anon:")):
		if m.Shared {
			v.Kind = gocrpb.VmaKind_VMA_ANON_SHARED
			v.ShmemId = m.Inode
		} else {
			v.Kind = gocrpb.VmaKind_VMA_ANON_PRIVATE
		}
	case m.Shared && strings.HasPrefix(m.Path, "/SYSV"):
		// A shmat attachment: its inode number is the segment's id
		// (ipc/shm.c newseg), the name "SYSV" and its key.
		v.Kind = gocrpb.VmaKind_VMA_SYSV_SHM
		v.SysvShmId = int32(m.Inode)
	case m.Shared && strings.HasPrefix(m.Path, "/dev/zero"):
		// MAP_SHARED|MAP_ANONYMOUS shows as "/dev/zero (deleted)"
		// (mm/shmem.c shmem_zero_setup).
		v.Kind = gocrpb.VmaKind_VMA_ANON_SHARED
		v.ShmemId = m.Inode
	case files.IsMemfdPath(m.Path):
		if m.Shared {
			v.Kind = gocrpb.VmaKind_VMA_FILE_SHARED
		} else {
			v.Kind = gocrpb.VmaKind_VMA_FILE_PRIVATE
		}
		v.MemfdId = m.Inode
	case strings.HasPrefix(m.Path, "/"):
		if m.Shared {
			v.Kind = gocrpb.VmaKind_VMA_FILE_SHARED
		} else {
			v.Kind = gocrpb.VmaKind_VMA_FILE_PRIVATE
		}
		if m.Deleted {
			// Its path leads nowhere: only a saved copy can restore it
			// (saveMapped).
			v.File = &gocrpb.FileRef{Path: strings.TrimSuffix(m.Path, " (deleted)"), Ino: m.Inode}
			break
		}
		ref := refs[m.Path]
		if ref == nil {
			var err error
			if ref, err = fileRef(m.Path); err != nil {
				return nil, fmt.Errorf("mapping %#x-%#x: %w", m.Start, m.End, err)
			}
			refs[m.Path] = ref
		}
		// An inode other than the mapped one: replaced since it was
		// mapped, which saveMapped refuses unless it saves the file.
		v.File = ref
	default:
		return nil, fmt.Errorf("mapping %#x-%#x %q: unsupported kind of mapping", m.Start, m.End, m.Path)
	}
	if err := checkVmFlags(v); err != nil {
		return nil, err
	}
	return v, nil
}
