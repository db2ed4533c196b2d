//go:build linux

package dump

import (
	"testing"

	"github.com/gocr/gocr/gocrpb"
	"github.com/gocr/gocr/proc"
)

func TestMayAlter(t *testing.T) {
	user := &gocrpb.Creds{Euid: 1000, Egid: 1000, Groups: []uint32{1000, 27}}
	for _, c := range []struct {
		creds *gocrpb.Creds
		set   proc.SysvObject
		want  bool
	}{
		{user, proc.SysvObject{UID: 1000, Mode: 0o600}, true},
		{user, proc.SysvObject{UID: 1000, Mode: 0o400}, false},
		{user, proc.SysvObject{UID: 0, CUID: 1000, Mode: 0o600}, true},
		{user, proc.SysvObject{UID: 0, GID: 27, Mode: 0o620}, true},
		{user, proc.SysvObject{UID: 0, GID: 27, Mode: 0o602}, false},
		{user, proc.SysvObject{UID: 0, GID: 0, Mode: 0o602}, true},
		{user, proc.SysvObject{UID: 0, GID: 0, Mode: 0o660}, false},
		{&gocrpb.Creds{Euid: 1000, CapEff: 1 << capIPCOwner}, proc.SysvObject{Mode: 0}, true},
	} {
		if got := mayAlter(c.creds, c.set); got != c.want {
			t.Errorf("mayAlter(%v, %+v) = %v, want %v", c.creds, c.set, got, c.want)
		}
	}
}
