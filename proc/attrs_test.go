//go:build linux

package proc

import (
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseNumaPolicies(t *testing.T) {
	in := `55f6c9b8a000 default file=/usr/bin/cat mapped=2 N0=2 kernelpagesize_kB=4
7f0000000000 prefer (many):0-1 anon=3 dirty=3 N0=3 kernelpagesize_kB=4
7f0000100000 bind=static|balancing:0 heap anon=1 dirty=1 N0=1 kernelpagesize_kB=4
7ffd00000000 interleave:0-3 stack anon=2
`
	got, err := ParseNumaPolicies(strings.NewReader(in), 0)
	if err != nil {
		t.Fatal(err)
	}
	want := []NumaPolicy{
		{0x55f6c9b8a000, "default"},
		{0x7f0000000000, "prefer (many):0-1"},
		{0x7f0000100000, "bind=static|balancing:0"},
		{0x7ffd00000000, "interleave:0-3"},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("(-want +got)\n%s", d)
	}
	if got, _ := ParseNumaPolicies(strings.NewReader(in), 1); len(got) != 1 {
		t.Errorf("max 1 gave %d policies", len(got))
	}
	if _, err := ParseNumaPolicies(strings.NewReader("zz default\n"), 0); err == nil {
		t.Error("a bad address was taken")
	}
}

func TestParseCgroups(t *testing.T) {
	got, err := ParseCgroups([]byte("9:name=systemd:/\n4:memory:/a:b/c\n0::/\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []CgroupLine{{"name=systemd", "/"}, {"memory", "/a:b/c"}, {"", "/"}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("(-want +got)\n%s", d)
	}
	if _, err := ParseCgroups([]byte("1:cpu\n")); err == nil {
		t.Error("a line without a path was taken")
	}
}

// TestParseAutogroupNice: the default autogroup (a process descended
// from init without a setsid) shows as empty text, of nice 0.
func TestParseAutogroupNice(t *testing.T) {
	for _, c := range []struct {
		in   string
		nice int32
		ok   bool
	}{
		{"/autogroup-23364 nice 0", 0, true},
		{"/autogroup-7 nice -5", -5, true},
		{"", 0, true},
		{"/autogroup-7", 0, false},
		{"/autogroup-7 nice x", 0, false},
	} {
		nice, ok := parseAutogroupNice(c.in)
		if nice != c.nice || ok != c.ok {
			t.Errorf("%q: got %d %v, want %d %v", c.in, nice, ok, c.nice, c.ok)
		}
	}
}

// smapsEntry is one mapping's smaps text, as fs/proc/task_mmu.c
// show_smap prints it, with its VmFlags line last.
func smapsEntry(start uint64, flags string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%x-%x rw-p 00000000 00:00 0 \n", start, start+0x1000)
	for _, k := range []string{"Size", "KernelPageSize", "MMUPageSize", "Rss", "Pss", "Pss_Dirty",
		"Shared_Clean", "Shared_Dirty", "Private_Clean", "Private_Dirty", "Referenced", "Anonymous",
		"KSM", "LazyFree", "AnonHugePages", "ShmemPmdMapped", "FilePmdMapped", "Shared_Hugetlb",
		"Private_Hugetlb", "Swap", "SwapPss", "Locked"} {
		fmt.Fprintf(&b, "%-16s %8d kB\n", k+":", 4)
	}
	fmt.Fprintf(&b, "THPeligible:    0\nVmFlags: %s \n", flags)
	return b.String()
}

// countingReader counts the bytes read from it.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// TestVmFlagsAtReadsNoFurther: the entry's VmFlags are found, and
// nothing is read beyond the read that holds them: each entry read is
// one the kernel walked the page tables of.
func TestVmFlagsAtReadsNoFurther(t *testing.T) {
	first, second := smapsEntry(0x10000, "rd wr mr mw me sd"), smapsEntry(0x200000, "rd wr mr mw me lo lf ac sd")
	in := first + second + smapsEntry(0x7f0000000000, "rd wr mr mw me ac sd")
	for _, c := range []struct {
		start uint64
		want  []string
		upTo  int // bytes before the end of the entry that must not be reached
	}{
		{0x10000, []string{"rd", "wr", "mr", "mw", "me", "sd"}, len(first)},
		{0x200000, []string{"rd", "wr", "mr", "mw", "me", "lo", "lf", "ac", "sd"}, len(first) + len(second)},
		{0x300000, nil, len(first) + len(second)},
	} {
		cr := &countingReader{r: strings.NewReader(in)}
		got, err := vmFlagsAt(smallReads{cr, 512}, c.start)
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(c.want, got); d != "" {
			t.Errorf("%#x: (-want +got)\n%s", c.start, d)
		}
		if cr.n > c.upTo+512 {
			t.Errorf("%#x: read %d bytes, want at most %d: the read holding the entry's VmFlags and no more", c.start, cr.n, c.upTo+512)
		}
	}
}
