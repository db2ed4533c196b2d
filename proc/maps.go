//go:build linux

package proc

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// Mapping is one VMA as /proc/PID/maps and smaps describe it.
type Mapping struct {
	Start, End uint64
	// Prot holds unix.PROT_READ, PROT_WRITE and PROT_EXEC.
	Prot int
	// Shared is the 's' of the perms column, which the kernel prints for
	// VM_MAYSHARE (fs/proc/task_mmu.c, show_vma_header_prefix): a
	// read-only MAP_SHARED mapping is still shared.
	Shared       bool
	Offset       uint64
	Major, Minor uint32
	Inode        uint64
	// Path is the last column as printed: a file path, a name such as
	// "[heap]", "[vvar_vclock]" or "[anon:NAME]", or "" for anonymous
	// memory. The kernel writes '\n' in a path as "\012" and escapes
	// nothing else (fs/proc/task_mmu.c, show_map_vma, seq_path with
	// "\n"), so a path containing a literal "\012" is ambiguous; use
	// /proc/PID/map_files when the exact file matters.
	Path string
	// Deleted reports that Path ends in " (deleted)", which d_path appends
	// for an unlinked file (fs/d_path.c). A file really named that way
	// looks the same.
	Deleted bool
	// VmFlags are the two-letter mnemonics of the smaps VmFlags line
	// (fs/proc/task_mmu.c, show_smap_vma_flags); nil when read from maps.
	VmFlags []string
	// ProtectionKey is the smaps ProtectionKey line, the mapping's
	// memory protection key (pkey_mprotect, man 7 pkeys), shown only on
	// CPUs with protection keys (fs/proc/task_mmu.c arch_show_smap); 0
	// otherwise and when read from maps.
	ProtectionKey int
	// AnonHugeBytes is the smaps AnonHugePages line in bytes: the
	// mapping's anonymous memory held in PMD-mapped transparent huge
	// pages (fs/proc/task_mmu.c smaps_pmd_entry, show_smap); 0 when read
	// from maps.
	AnonHugeBytes uint64
}

// HasVmFlag reports whether f, a mnemonic such as "dd" or "sh", is in
// m.VmFlags.
func (m Mapping) HasVmFlag(f string) bool {
	for _, v := range m.VmFlags {
		if v == f {
			return true
		}
	}
	return false
}

const deletedSuffix = " (deleted)"

// ParseMaps parses the /proc/PID/maps format (man 5 proc).
func ParseMaps(r io.Reader) ([]Mapping, error) {
	return parseMaps(r, false)
}

// ParseSmaps parses /proc/PID/smaps: each maps header line followed by
// "Key: value" lines (Documentation/filesystems/proc.rst). Of those only
// VmFlags is kept.
func ParseSmaps(r io.Reader) ([]Mapping, error) {
	return parseMaps(r, true)
}

// ReadMaps reads /proc/PID/smaps rather than maps so that each Mapping
// carries its VmFlags; the header lines are the same.
func ReadMaps(pid int) ([]Mapping, error) {
	op := "read /proc/" + strconv.Itoa(pid) + "/smaps"
	f, err := os.Open(pidPath(pid, "smaps"))
	if err != nil {
		return nil, wrapErr(pid, op, err)
	}
	defer f.Close()
	ms, err := ParseSmaps(f)
	if err != nil {
		return nil, wrapErr(pid, op, err)
	}
	return ms, nil
}

// mapsParser keeps what is shared between lines so that a 10,000-VMA
// smaps costs a handful of allocations per mapping, not per line.
type mapsParser struct {
	smaps bool
	out   []Mapping
	// prevPath lets consecutive mappings of one file share a string.
	prevPath string
	// flagNames interns VmFlags mnemonics; flagArena backs every
	// Mapping's VmFlags slice.
	flagNames map[string]string
	flagArena []string
}

func parseMaps(r io.Reader, smaps bool) ([]Mapping, error) {
	p := mapsParser{smaps: smaps}
	if smaps {
		p.flagNames = make(map[string]string)
	}
	sc := bufio.NewScanner(r)
	// A line holds at most a PATH_MAX path, but escaping can lengthen it.
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	sc.Split(splitLines)
	for n := 1; sc.Scan(); n++ {
		if err := p.line(sc.Bytes()); err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return p.out, nil
}

func (p *mapsParser) line(b []byte) error {
	if p.smaps {
		// A header starts with "start-end", which never ends in ':'
		// the way a smaps key does.
		tok, _ := nextField(b)
		if len(tok) > 0 && tok[len(tok)-1] == ':' {
			if string(tok) == "VmFlags:" {
				return p.vmFlags(b[len(tok):])
			}
			if len(p.out) == 0 {
				return fmt.Errorf("%q before any mapping", tok)
			}
			if string(tok) == "ProtectionKey:" {
				v, _ := nextField(b[len(tok):])
				n, ok := decIntN(v)
				if !ok {
					return fmt.Errorf("bad ProtectionKey %q", v)
				}
				p.out[len(p.out)-1].ProtectionKey = n
			}
			if string(tok) == "AnonHugePages:" {
				v, _ := nextField(b[len(tok):])
				kb, ok := decUint(v)
				if !ok || kb > 1<<53 {
					return fmt.Errorf("bad AnonHugePages %q", v)
				}
				p.out[len(p.out)-1].AnonHugeBytes = kb << 10
			}
			return nil
		}
	}
	m, err := p.header(b)
	if err != nil {
		return err
	}
	p.out = append(p.out, m)
	return nil
}

// header parses one maps line,
// "start-end perms offset major:minor inode [path]", laid out by
// show_vma_header_prefix and show_map_vma in fs/proc/task_mmu.c.
func (p *mapsParser) header(b []byte) (Mapping, error) {
	var m Mapping
	var ok bool
	tok, rest := nextField(b)
	lo, hi, _ := cut(tok, '-')
	if m.Start, ok = hexUint(lo); !ok {
		return m, fmt.Errorf("bad address range %q", tok)
	}
	if m.End, ok = hexUint(hi); !ok || m.End < m.Start {
		return m, fmt.Errorf("bad address range %q", tok)
	}

	tok, rest = nextField(rest)
	if len(tok) != 4 {
		return m, fmt.Errorf("bad perms %q", tok)
	}
	for i, want := range [3]struct {
		c    byte
		prot int
	}{{'r', unix.PROT_READ}, {'w', unix.PROT_WRITE}, {'x', unix.PROT_EXEC}} {
		switch tok[i] {
		case want.c:
			m.Prot |= want.prot
		case '-':
		default:
			return m, fmt.Errorf("bad perms %q", tok)
		}
	}
	switch tok[3] {
	case 's':
		m.Shared = true
	case 'p':
	default:
		return m, fmt.Errorf("bad perms %q", tok)
	}

	tok, rest = nextField(rest)
	if m.Offset, ok = hexUint(tok); !ok {
		return m, fmt.Errorf("bad offset %q", tok)
	}

	tok, rest = nextField(rest)
	maj, min, _ := cut(tok, ':')
	major, ok1 := hexUint(maj)
	minor, ok2 := hexUint(min)
	// MAJOR is 12 bits and MINOR 20 (include/linux/kdev_t.h).
	if !ok1 || !ok2 || major >= 1<<12 || minor >= 1<<20 {
		return m, fmt.Errorf("bad device %q", tok)
	}
	m.Major, m.Minor = uint32(major), uint32(minor)

	tok, rest = nextField(rest)
	if m.Inode, ok = decUint(tok); !ok {
		return m, fmt.Errorf("bad inode %q", tok)
	}

	// The path is padded to a column with spaces; every name the kernel
	// prints starts with '/' or '[' (or is a detached path), so leading
	// blanks are padding.
	for len(rest) > 0 && rest[0] == ' ' {
		rest = rest[1:]
	}
	if len(rest) > 0 {
		if string(rest) == p.prevPath {
			m.Path = p.prevPath
		} else {
			m.Path = string(rest)
			p.prevPath = m.Path
		}
		m.Deleted = len(m.Path) > len(deletedSuffix) &&
			m.Path[len(m.Path)-len(deletedSuffix):] == deletedSuffix
	}
	return m, nil
}

func (p *mapsParser) vmFlags(b []byte) error {
	if len(p.out) == 0 {
		return fmt.Errorf("VmFlags before any mapping")
	}
	m := &p.out[len(p.out)-1]
	if m.VmFlags != nil {
		return fmt.Errorf("second VmFlags line for %x-%x", m.Start, m.End)
	}
	start := len(p.flagArena)
	for {
		var tok []byte
		tok, b = nextField(b)
		if len(tok) == 0 {
			break
		}
		name, ok := p.flagNames[string(tok)]
		if !ok {
			name = string(tok)
			p.flagNames[name] = name
		}
		p.flagArena = append(p.flagArena, name)
	}
	// The full slice expression keeps a later append to one mapping's
	// flags from writing over the next mapping's.
	m.VmFlags = p.flagArena[start:len(p.flagArena):len(p.flagArena)]
	return nil
}
