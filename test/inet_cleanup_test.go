//go:build linux

package test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// addTable makes an empty nftables table, removed at the test's end.
func addTable(t *testing.T, name string) {
	t.Helper()
	if out, err := exec.Command("nft", "add", "table", "inet", name).CombinedOutput(); err != nil {
		t.Fatalf("nft add table inet %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() { exec.Command("nft", "delete", "table", "inet", name).Run() })
}

// selfStartTime is field 22 of the test's /proc/self/stat (man 5 proc).
func selfStartTime(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))[22-3]
}

// TestInetCleanup: `gocr cleanup` removes the nftables table of a dump
// whose gocr is gone (a PID no process can have), keeps the table of one
// whose gocr runs (the test stands in for it, by PID and start time) and
// the tables kept for a restore, unless told with --abandon that the dump
// naming one will not be restored; given a dump's directory, it removes
// the half-written dumps beside it that no process has open, and keeps
// the one the test holds open and one holding what is not a dump's file.
func TestInetCleanup(t *testing.T) {
	needsRoot(t)
	needsGocr(t)
	needsNft(t)
	// A complete dump with a connection to a peer outside keeps a table.
	peer, port := startOutsidePeer(t)
	tg := startTarget(t, "inet", "external", port)
	peer.greet(t, nil)
	before := gocrTables(t)
	parent := t.TempDir()
	dir := filepath.Join(parent, "ckpt")
	dump(t, tg.pid, dir, "--tcp-established")
	tg.waitDead(t, "a dump without --leave-running")
	var kept string
	for _, n := range gocrTables(t) {
		if strings.HasPrefix(n, "gocr_keep_") && !slices.Contains(before, n) {
			kept = n
		}
	}
	if kept == "" {
		t.Fatalf("the dump kept no nftables table: %q", gocrTables(t))
	}
	t.Cleanup(func() { exec.Command("nft", "delete", "table", "inet", kept).Run() })
	// Made after the dump, which removes tables whose gocr is gone too.
	stale := "gocr_999999999_1"
	live := "gocr_" + strconv.Itoa(os.Getpid()) + "_" + selfStartTime(t)
	keptOther := "gocr_keep_999999999_1"
	for _, n := range []string{stale, live, keptOther} {
		addTable(t, n)
	}

	// Half-written dumps beside it.
	leftover := filepath.Join(parent, ".ckpt.gocr-tmp-aaaaaaaaaaaa")
	held := filepath.Join(parent, ".ckpt.gocr-tmp-bbbbbbbbbbbb")
	strange := filepath.Join(parent, ".ckpt.gocr-tmp-cccccccccccc")
	for _, d := range []string{leftover, held, filepath.Join(strange, "sub")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{leftover, held} {
		if err := os.WriteFile(filepath.Join(d, "pages-1.img"), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.Open(held)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	// Without --abandon the dump's table stays.
	r := runGocr(t, nil, "cleanup", dir)
	if r.code == 0 || !strings.Contains(r.stderr, strange) || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
		t.Errorf("gocr cleanup with a directory it must not remove: exit %d, want 1 and one line naming %s\n%v", r.code, strange, r)
	}
	tables := gocrTables(t)
	for _, n := range []string{live, keptOther, kept} {
		if !slices.Contains(tables, n) {
			t.Errorf("gocr cleanup removed table %s", n)
		}
	}
	if slices.Contains(tables, stale) {
		t.Errorf("gocr cleanup kept table %s, whose gocr is gone", stale)
	}
	if !strings.Contains(r.stdout, "removed nftables table "+stale) || !strings.Contains(r.stdout, "kept nftables table "+kept) {
		t.Errorf("gocr cleanup does not say what it removed and kept:\n%s", r.stdout)
	}
	for _, c := range []struct {
		path string
		want bool
	}{{leftover, false}, {held, true}, {strange, true}, {dir, true}} {
		if _, err := os.Stat(c.path); (err == nil) != c.want {
			t.Errorf("after gocr cleanup, %s exists: %v, want %v", c.path, err == nil, c.want)
		}
	}

	// --abandon removes the table the dump names, and only it.
	r = runGocr(t, nil, "cleanup", "--abandon", dir)
	if r.code != 0 {
		t.Fatalf("gocr cleanup --abandon: %v", r)
	}
	tables = gocrTables(t)
	if slices.Contains(tables, kept) || !slices.Contains(tables, keptOther) || !slices.Contains(tables, live) {
		t.Errorf("after gocr cleanup --abandon %s, gocr's tables are %q: want %s gone, %s and %s kept", dir, tables, kept, keptOther, live)
	}
}
