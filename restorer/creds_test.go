//go:build linux

package restorer

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gocr/gocr/gocrpb"
)

// TestCheckUserCreds: an ordinary user's restore takes the user's own
// credentials and refuses every other, naming the one that differs.
func TestCheckUserCreds(t *testing.T) {
	own := &ownCreds{uid: 1000, gid: 1000, groups: []uint32{20, 1000}, inh: 0, bnd: 1<<41 - 1, securebits: 0}
	exe := filepath.Join(t.TempDir(), "prog")
	if err := os.WriteFile(exe, nil, 0o755); err != nil {
		t.Fatal(err)
	}
	setuid := filepath.Join(t.TempDir(), "setuid-prog")
	if err := os.WriteFile(setuid, nil, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(setuid, os.ModeSetuid|0o755); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		edit func(*gocrpb.Task, *gocrpb.Mm)
		own  func(*ownCreds)
		want string // "" for accepted
	}{
		{"Own", nil, nil, ""},
		{"GroupsInAnotherOrder", func(t *gocrpb.Task, _ *gocrpb.Mm) { t.Creds.Groups = []uint32{1000, 20} }, nil, "supplementary groups"},
		{"NoNewPrivsKept", func(t *gocrpb.Task, _ *gocrpb.Mm) { t.Flags = &gocrpb.ProcessFlags{NoNewPrivs: true} }, func(o *ownCreds) { o.noNewPrivs = true }, ""},
		{"NoCreds", func(t *gocrpb.Task, _ *gocrpb.Mm) { t.Creds = nil }, nil, "no credentials"},
		{"Fsuid", func(t *gocrpb.Task, _ *gocrpb.Mm) { t.Creds.Fsuid = 0 }, nil, "uids [1000 1000 1000 0]"},
		{"Sgid", func(t *gocrpb.Task, _ *gocrpb.Mm) { t.Creds.Sgid = 0 }, nil, "gids"},
		{"ExtraGroup", func(t *gocrpb.Task, _ *gocrpb.Mm) { t.Creds.Groups = append(t.Creds.Groups, 0) }, nil, "supplementary groups"},
		{"FewerGroups", func(t *gocrpb.Task, _ *gocrpb.Mm) { t.Creds.Groups = nil }, nil, "supplementary groups"},
		{"Permitted", func(t *gocrpb.Task, _ *gocrpb.Mm) { t.Creds.CapPrm = 1 << 21 }, nil, "permitted capabilities 0x200000"},
		{"Effective", func(t *gocrpb.Task, _ *gocrpb.Mm) { t.Creds.CapEff = 1 }, nil, "effective"},
		{"Ambient", func(t *gocrpb.Task, _ *gocrpb.Mm) { t.Creds.CapAmb = 1 << 10 }, nil, "ambient"},
		{"Inheritable", func(t *gocrpb.Task, _ *gocrpb.Mm) { t.Creds.CapInh = 1 << 10 }, nil, "inheritable"},
		{"Bounding", func(t *gocrpb.Task, _ *gocrpb.Mm) { t.Creds.CapBnd = 1<<40 - 1 }, nil, "bounding"},
		{"Securebits", func(t *gocrpb.Task, _ *gocrpb.Mm) { t.Creds.Securebits = 1 }, nil, "securebits"},
		{"NoNewPrivsOff", nil, func(o *ownCreds) { o.noNewPrivs = true }, "no_new_privs"},
		{"SetuidExe", func(_ *gocrpb.Task, m *gocrpb.Mm) { m.Exe.Path = setuid }, nil, "set-id"},
		{"ZombieUnchecked", func(t *gocrpb.Task, _ *gocrpb.Mm) { t.Zombie, t.Creds = true, nil }, nil, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			task := &gocrpb.Task{Pid: 42, Creds: &gocrpb.Creds{
				Ruid: 1000, Euid: 1000, Suid: 1000, Fsuid: 1000, Rgid: 1000, Egid: 1000, Sgid: 1000, Fsgid: 1000,
				Groups: []uint32{20, 1000}, CapBnd: 1<<41 - 1,
			}}
			mm := &gocrpb.Mm{Exe: &gocrpb.FileRef{Path: exe}}
			o := *own
			if c.edit != nil {
				c.edit(task, mm)
			}
			if c.own != nil {
				c.own(&o)
			}
			err := checkUserCreds(&o, task, mm)
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case c.want != "" && err == nil:
				t.Fatalf("accepted, want a refusal naming %q", c.want)
			case c.want != "" && !strings.Contains(err.Error(), c.want):
				t.Fatalf("error %q does not name %q", err, c.want)
			}
		})
	}
}
