//go:build linux

package restorer

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gocr/gocr/gocrpb"
)

func TestRelocationPath(t *testing.T) {
	rs, err := parseRelocations([]string{"/a=/b", "/a/deep/=/c", "/x=/", "/r=/s"})
	if err != nil {
		t.Fatal(err)
	}
	for in, want := range map[string]string{
		"/a":             "/b",
		"/a/f":           "/b/f",
		"/ab/f":          "/ab/f", // whole components only
		"/a/deep":        "/c",    // the longest OLD wins
		"/a/deep/f":      "/c/f",
		"/a/deeper":      "/b/deeper",
		"/x/y":           "/y",
		"/x":             "/",
		"/other":         "/other",
		"/r/s/r":         "/s/s/r", // one rule, once
		"pipe:[12]":      "pipe:[12]",
		"/memfd:m (del)": "/memfd:m (del)",
	} {
		if got := rs.path(in); got != want {
			t.Errorf("path(%q) = %q, want %q", in, got, want)
		}
	}
	root, err := parseRelocations([]string{"/=/new"})
	if err != nil {
		t.Fatal(err)
	}
	if got := root.path("/"); got != "/new" {
		t.Errorf("/ under /=/new: %q", got)
	}
	if got := root.path("/etc/x"); got != "/new/etc/x" {
		t.Errorf("/etc/x under /=/new: %q", got)
	}
}

func TestRelocationBadSpecs(t *testing.T) {
	for _, spec := range [][]string{{"a=/b"}, {"/a=b"}, {"/a"}, {"=/b"}, {"/a=/b", "/a/=/c"}} {
		if _, err := parseRelocations(spec); err == nil {
			t.Errorf("parseRelocations(%q) accepted", spec)
		}
	}
}

func TestRelocationApply(t *testing.T) {
	rs, err := parseRelocations([]string{"/a=/b"})
	if err != nil {
		t.Fatal(err)
	}
	shared := &gocrpb.FileRef{Path: "/a/lib.so"}
	task := &gocrpb.Task{Cwd: "/a/w", Root: "/"}
	mm := &gocrpb.Mm{Exe: &gocrpb.FileRef{Path: "/a/exe"},
		Vmas:       []*gocrpb.Vma{{File: shared}, {File: shared}, {}},
		SavedFiles: []*gocrpb.SavedFile{{File: &gocrpb.FileRef{Path: "/a/data"}}}}
	table := &gocrpb.Files{Fds: []*gocrpb.Fd{{File: &gocrpb.FileRef{Path: "/a/f"}}, {File: &gocrpb.FileRef{Path: "pipe:[3]"}}, {}}}
	rs.apply(task, mm, table)
	got := []string{task.Cwd, task.Root, mm.Exe.Path, mm.Vmas[0].File.Path, mm.SavedFiles[0].File.Path, table.Fds[0].File.Path, table.Fds[1].File.Path}
	want := []string{"/b/w", "/", "/b/exe", "/b/lib.so", "/b/data", "/b/f", "pipe:[3]"}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("relocated paths (-want +got):\n%s", d)
	}
}
