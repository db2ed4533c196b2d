package cheader

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestDefines(t *testing.T) {
	src := `#ifndef GUARD
#define GUARD
#define A 0x10UL /* sixteen */
#define B A // the same
#define C 7
#define BAD (A + 1)
#define F(x) x
`
	defs, errs := Defines(src, map[string]string{"GUARD": "include guard", "GONE": "no longer there"})
	if d := cmp.Diff(map[string]uint64{"A": 16, "B": 16, "C": 7}, defs); d != "" {
		t.Errorf("defines (-want +got):\n%s", d)
	}
	var msgs []string
	for _, e := range errs {
		msgs = append(msgs, e.Error())
	}
	for _, want := range []string{"BAD = \"(A + 1)\"", "F takes parameters", "GONE is exempt but not defined"} {
		if !strings.Contains(strings.Join(msgs, "\n"), want) {
			t.Errorf("errors %q lack %q", msgs, want)
		}
	}
}

func TestCompare(t *testing.T) {
	errs := Compare(map[string]uint64{"A": 1, "B": 2, "C": 3}, map[string]uint64{"A": 1, "B": 5, "D": 4}, "table")
	want := []string{
		"B: C says 0x2, Go says 0x5",
		"C (0x3) in the C header has no Go constant in table",
		"D: in table but not in the C header",
	}
	var got []string
	for _, e := range errs {
		got = append(got, e.Error())
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("Compare (-want +got):\n%s", d)
	}
}

func TestLayout(t *testing.T) {
	src := "BUILD_BUG_ON_OFFSET(struct s, f, 8);\n_Static_assert(sizeof(struct s) == 16, \"\");\n"
	if d := cmp.Diff(map[string]uint64{"s.f": 8, "sizeof s": 16}, Layout(src)); d != "" {
		t.Errorf("Layout (-want +got):\n%s", d)
	}
}
