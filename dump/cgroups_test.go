//go:build linux

package dump

import "testing"

func TestUnder(t *testing.T) {
	for _, c := range []struct {
		p, base string
		want    bool
	}{
		{"/a", "/a", true}, {"/a/b", "/a", true}, {"/ab", "/a", false},
		{"/x", "/", true}, {"/", "/a", false},
	} {
		if got := under(c.p, c.base); got != c.want {
			t.Errorf("under(%q, %q) = %v, want %v", c.p, c.base, got, c.want)
		}
	}
}
