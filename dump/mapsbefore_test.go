//go:build linux

package dump

import (
	"strings"
	"testing"

	"github.com/gocr/gocr/gocrpb"
	"github.com/gocr/gocr/proc"
)

// TestCheckFlagsBefore: flags read before the freeze stand only when the
// instant's smaps show every mapping with the same range and flags, in
// any order; mappings only the instant has (gocr's region in a snapshot)
// do not matter.
func TestCheckFlagsBefore(t *testing.T) {
	mm := &gocrpb.Mm{Vmas: []*gocrpb.Vma{
		{Start: 0x1000, End: 0x3000, VmFlags: []string{"rd", "wr", "mr", "mw", "me", "ac"}},
		{Start: 0x5000, End: 0x6000, VmFlags: []string{"rd", "wr", "wf"}},
	}}
	same := []proc.Mapping{
		{Start: 0x5000, End: 0x6000, VmFlags: []string{"wf", "rd", "wr"}},
		{Start: 0x1000, End: 0x3000, VmFlags: []string{"rd", "wr", "mr", "mw", "me", "ac"}},
		{Start: 0x9000, End: 0xa000, VmFlags: []string{"rd", "wr", "ex", "sh"}},
	}
	if err := checkFlagsBefore(mm, same); err != nil {
		t.Fatalf("same mappings refused: %v", err)
	}
	for name, c := range map[string]struct {
		now  []proc.Mapping
		want string
	}{
		"flag added": {[]proc.Mapping{same[1], {Start: 0x5000, End: 0x6000, VmFlags: []string{"rd", "wr", "wf", "hg"}}}, "changed its flags"},
		"flag gone":  {[]proc.Mapping{same[1], {Start: 0x5000, End: 0x6000, VmFlags: []string{"rd", "wr"}}}, "changed its flags"},
		"shorter":    {[]proc.Mapping{same[0], {Start: 0x1000, End: 0x2000, VmFlags: same[1].VmFlags}}, "0x1000-0x3000 changed"},
		"missing":    {[]proc.Mapping{same[1]}, "0x5000-0x6000 changed"},
	} {
		err := checkFlagsBefore(mm, c.now)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error saying %q", name, err, c.want)
		}
	}
}

// TestSameLayout: the layout compares everything maps shows, not flags.
func TestSameLayout(t *testing.T) {
	a := []proc.Mapping{{Start: 0x1000, End: 0x2000, Prot: 3, Path: "/lib/x", Inode: 7, VmFlags: []string{"rd"}}}
	b := []proc.Mapping{{Start: 0x1000, End: 0x2000, Prot: 3, Path: "/lib/x", Inode: 7}}
	if !sameLayout(a, b) {
		t.Errorf("same layout with and without flags reads as different")
	}
	for _, change := range []func(*proc.Mapping){
		func(m *proc.Mapping) { m.End = 0x3000 },
		func(m *proc.Mapping) { m.Prot = 1 },
		func(m *proc.Mapping) { m.Inode = 8 },
		func(m *proc.Mapping) { m.Path = "/lib/y" },
		func(m *proc.Mapping) { m.Shared = true },
	} {
		c := []proc.Mapping{b[0]}
		change(&c[0])
		if sameLayout(a, c) {
			t.Errorf("changed mapping %+v reads as the same layout", c[0])
		}
	}
	if sameLayout(a, append(b, b[0])) {
		t.Errorf("an extra mapping reads as the same layout")
	}
}
