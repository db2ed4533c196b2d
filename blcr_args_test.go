//go:build linux

package main

import (
	"flag"
	"io"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/contextfile"
	"github.com/gocr/gocr/dump"
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

// TestSavedFiles: the --save-* options count in the order given, --save-none
// dropping those before it; values of other options and what follows the
// options are not read as options.
func TestSavedFiles(t *testing.T) {
	flags := checkpointCommand().Flags
	for _, c := range []struct {
		argv []string
		want dump.SaveFiles
	}{
		{[]string{"--save-exe", "7"}, dump.SaveFiles{Exe: true}},
		{[]string{"--save-all", "--save-none", "--save-private", "7"}, dump.SaveFiles{Private: true}},
		{[]string{"--save-private", "--save-none", "7"}, dump.SaveFiles{}},
		{[]string{"--save-none", "--save-all", "7"}, dump.SaveFiles{Exe: true, Private: true, Shared: true}},
		{[]string{"--save-exe", "--save-shared=false", "7"}, dump.SaveFiles{Exe: true}},
		// A FILE named like an option is the value of -f.
		{[]string{"--save-exe", "-f", "--save-none", "7"}, dump.SaveFiles{Exe: true}},
		{[]string{"--save-exe", "7", "--save-none"}, dump.SaveFiles{Exe: true}},
		{[]string{"--save-exe", "--", "--save-none"}, dump.SaveFiles{Exe: true}},
		// --compress alone takes no value: the option after it counts.
		{[]string{"--compress", "--save-exe", "7"}, dump.SaveFiles{Exe: true}},
		{[]string{"--compress=lz4", "--save-exe", "7"}, dump.SaveFiles{Exe: true}},
	} {
		got, err := savedFiles(c.argv, flags)
		if err != nil {
			t.Errorf("savedFiles(%q): %v", c.argv, err)
			continue
		}
		if got != c.want {
			t.Errorf("savedFiles(%q) = %+v, want %+v", c.argv, got, c.want)
		}
	}
}

// TestCompressFlag: --compress alone is zstd and never takes the next
// argument; =NAME chooses; an unknown NAME is refused.
func TestCompressFlag(t *testing.T) {
	for _, c := range []struct {
		argv []string
		want contextfile.Compression
		args []string
	}{
		{[]string{"7"}, contextfile.NoCompression, []string{"7"}},
		{[]string{"--compress", "7"}, contextfile.Zstd, []string{"7"}},
		{[]string{"--compress", "--", "prog"}, contextfile.Zstd, []string{"prog"}},
		{[]string{"--compress=lz4", "7"}, contextfile.LZ4, []string{"7"}},
		{[]string{"--compress=zstd-fastest", "7"}, contextfile.ZstdFastest, []string{"7"}},
		{[]string{"--compress=none", "7"}, contextfile.NoCompression, []string{"7"}},
	} {
		set := flag.NewFlagSet("test", flag.ContinueOnError)
		v := &compressValue{}
		set.Var(v, "compress", "")
		if err := set.Parse(c.argv); err != nil {
			t.Errorf("parse %q: %v", c.argv, err)
			continue
		}
		if v.c != c.want || !slices.Equal(set.Args(), c.args) {
			t.Errorf("parse %q: --compress %q, arguments %q; want %q, %q", c.argv, v.c, set.Args(), c.want, c.args)
		}
	}
	set := flag.NewFlagSet("test", flag.ContinueOnError)
	set.SetOutput(io.Discard)
	set.Var(&compressValue{}, "compress", "")
	if err := set.Parse([]string{"--compress=gzip", "7"}); err == nil {
		t.Error("--compress=gzip accepted")
	}
}
