//go:build linux

package test

import (
	"bytes"
	"debug/elf"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The counter target, the simplest whole-process test (its log on stdout
// must read 1..N across the dump and restore), and the log check that
// many tests use to prove a counter went on exactly where it was.

// parseCounterLog requires a counter log to be exactly the lines 1..N and
// returns N. A trailing partial line (a write in progress) is ignored
// unless complete is set.
func parseCounterLog(b []byte, complete bool) (int, error) {
	if complete && len(b) > 0 && b[len(b)-1] != '\n' {
		return 0, fmt.Errorf("ends in a partial line %q", b[bytes.LastIndexByte(b, '\n')+1:])
	}
	var lines []string
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		lines = strings.Split(string(b[:i]), "\n")
	}
	for n, line := range lines {
		if v, err := strconv.Atoi(line); err != nil || v != n+1 {
			return 0, fmt.Errorf("line %d is %q, want %d: the log must be 1..N without gap or repeat", n+1, line, n+1)
		}
	}
	return len(lines), nil
}

func counterLines(t *testing.T, path string, complete bool) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read counter log: %v", err)
	}
	n, err := parseCounterLog(b, complete)
	if err != nil {
		t.Fatalf("counter log %s: %v\nlast lines:\n%s", path, err, logTail(path, 20))
	}
	return n
}

// waitCounter waits until the counter log holds at least n lines.
func waitCounter(t *testing.T, tg *target, n int) int {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		got := counterLines(t, tg.logPath, false)
		if got >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("counter log stuck at %d lines, want %d\n%s", got, n, tg.diagnostics())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// counterVolatile: the counter writes its log (stdout and stderr) while
// the oracle reads it before the dump and after the restore; the exact
// offset is what the counter itself checks.
var counterVolatile = []string{"fd/1/pos", "fd/2/pos"}

// testCounter runs the counter flow: the restored process must continue
// from the exact dumped value at the exact file offset and keep going.
func testCounter(t *testing.T, name string) {
	needsRoot(t)
	tg := startTarget(t, name)
	waitCounter(t, tg, 50)
	pid := checkpointRestore(t, tg, cycleOpts{volatile: counterVolatile})
	// After the dump the original is dead, so this is the dumped value.
	atDump := counterLines(t, tg.logPath, false)
	// More lines after the restore than before the dump.
	waitCounter(t, tg, 2*atDump+10)
	checkResult(t, tg, pid)
	final := counterLines(t, tg.logPath, true)
	if final <= 2*atDump {
		t.Fatalf("counter wrote %d lines after the restore, %d before the dump; want more after", final-atDump, atDump)
	}
}

// TestCounter: a counter writing its log to stdout goes on after the
// restore from exactly the dumped value at exactly the dumped file offset.
func TestCounter(t *testing.T) { testCounter(t, "counter") }

// TestStaticBinary: the same with the counter linked statically, no
// program interpreter and no shared libraries.
func TestStaticBinary(t *testing.T) {
	f, err := elf.Open(targets["counter-static"][0])
	if err != nil {
		t.Fatalf("open counter-static: %v", err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Fatalf("counter-static has a %v program header: it is not a static executable", p.Type)
		}
	}
	testCounter(t, "counter-static")
}

// TestParseCounterLog shows the log check rejects what a bad restore leaves
// behind: a gap, a repeat, a torn line.
func TestParseCounterLog(t *testing.T) {
	for _, c := range []struct {
		log      string
		complete bool
		want     int
		bad      bool
	}{
		{log: "", complete: true, want: 0},
		{log: "1\n2\n3\n", complete: true, want: 3},
		{log: "1\n2\n3\n4", complete: false, want: 3},
		{log: "1\n2\n3\n4", complete: true, bad: true},
		{log: "1\n2\n4\n", complete: true, bad: true},
		{log: "1\n2\n2\n3\n", complete: true, bad: true},
		{log: "2\n3\n", complete: true, bad: true},
		{log: "1\n\n2\n", complete: true, bad: true},
	} {
		n, err := parseCounterLog([]byte(c.log), c.complete)
		if c.bad {
			if err == nil {
				t.Errorf("parseCounterLog(%q) = %d, want an error", c.log, n)
			}
			continue
		}
		if err != nil || n != c.want {
			t.Errorf("parseCounterLog(%q) = %d, %v; want %d", c.log, n, err, c.want)
		}
	}
}
