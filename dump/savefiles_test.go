//go:build linux

package dump

import "testing"

func TestParseSave(t *testing.T) {
	for _, c := range []struct {
		in   []string
		want SaveFiles
	}{
		{nil, SaveFiles{}},
		{[]string{"exe"}, SaveFiles{Exe: true}},
		{[]string{"exe", "shared"}, SaveFiles{Exe: true, Shared: true}},
		{[]string{"private,shared"}, SaveFiles{Private: true, Shared: true}},
		{[]string{"all"}, SaveFiles{Exe: true, Private: true, Shared: true}},
		{[]string{"all", "none", "exe"}, SaveFiles{Exe: true}}, // none drops what came before
		{[]string{"exe", "none"}, SaveFiles{}},
	} {
		got, err := ParseSave(c.in)
		if err != nil || got != c.want {
			t.Errorf("ParseSave(%q) = %+v, %v; want %+v", c.in, got, err, c.want)
		}
	}
	for _, bad := range [][]string{{"libs"}, {"exe,"}, {""}} {
		if _, err := ParseSave(bad); err == nil {
			t.Errorf("ParseSave(%q) accepted", bad)
		}
	}
}
