//go:build linux

package main

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

func TestBLCRArgs(t *testing.T) {
	for _, c := range []struct{ in, want []string }{
		{[]string{"/usr/bin/cr_checkpoint", "--kill", "7"}, []string{"/usr/bin/cr_checkpoint", "checkpoint", "--kill", "7"}},
		{[]string{"cr_restart", "-f", "-"}, []string{"cr_restart", "restart", "-f", "-"}},
		{[]string{"./cr_run", "--", "ls"}, []string{"./cr_run", "run", "--", "ls"}},
		{[]string{"gocr", "dump", "-t", "7"}, []string{"gocr", "dump", "-t", "7"}},
		// --backup alone never takes the next argument as its NAME.
		{[]string{"cr_checkpoint", "-f", "ctx", "--backup", "7"}, []string{"cr_checkpoint", "checkpoint", "-f", "ctx", "--backup=", "7"}},
		{[]string{"gocr", "checkpoint", "--backup=old", "7"}, []string{"gocr", "checkpoint", "--backup=old", "7"}},
		{[]string{"cr_run", "prog", "--backup"}, []string{"cr_run", "run", "prog", "--backup"}},
	} {
		if diff := cmp.Diff(c.want, blcrArgs(c.in)); diff != "" {
			t.Errorf("blcrArgs(%q) (-want +got):\n%s", c.in, diff)
		}
	}
}

func TestParseSignal(t *testing.T) {
	for in, want := range map[string]unix.Signal{"15": unix.SIGTERM, "TERM": unix.SIGTERM, "sigusr1": unix.SIGUSR1, "SIGKILL": unix.SIGKILL, "64": 64} {
		if got, err := parseSignal(in); err != nil || got != want {
			t.Errorf("parseSignal(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"0", "65", "-1", "NOSUCH", ""} {
		if got, err := parseSignal(in); err == nil {
			t.Errorf("parseSignal(%q) = %v, want an error", in, got)
		}
	}
}
