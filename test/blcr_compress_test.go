//go:build linux

package test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"github.com/gocr/gocr/contextfile"
)

// Compressed contexts through the BLCR names (docs/BLCR.md, "Compression"):
// cr_checkpoint --compress through a pipe to cr_restart, cr_run --compress
// generations restored by cr_restart DIR, gocr show of a compressed context.

// contextCodecs requires the context file path to read whole and returns
// how each of its entries is stored.
func contextCodecs(t *testing.T, path string) map[string]contextfile.Codec {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	entries, err := contextfile.Read(f, nil)
	if err != nil {
		t.Fatalf("context %s: %v", path, err)
	}
	codecs := map[string]contextfile.Codec{}
	for _, e := range entries {
		codecs[e.Name] = e.Codec
	}
	return codecs
}

// requireCodec requires every entry of the context file path, the page
// image of pid among them, to be stored as want.
func requireCodec(t *testing.T, path string, pid int, want contextfile.Codec) {
	t.Helper()
	codecs := contextCodecs(t, path)
	if _, ok := codecs[fmt.Sprintf("pages-%d.img", pid)]; !ok {
		t.Fatalf("context %s has no page image of pid %d: %v", path, pid, codecs)
	}
	for name, c := range codecs {
		if c != want {
			t.Errorf("context %s: entry %s stored as %v, want %v", path, name, c, want)
		}
	}
}

// TestBLCRCompressPipe: cr_checkpoint --compress --kill -f - PID |
// cr_restart -f - moves the counter through a pipe as a zstd-compressed
// context (a copy of the stream, taken with tee, says so), and the
// restored counter checks its own state. --compress alone leaves the
// option after it (--kill) to the command line.
func TestBLCRCompressPipe(t *testing.T) {
	needsGocr(t)
	tg := startTarget(t, "counter")
	waitCounter(t, tg, 30)
	t.Cleanup(func() { tg.killRestored(t, tg.pid) })
	stream := filepath.Join(t.TempDir(), "stream")
	script := `set -e; "$1" --compress --kill -f - "$3" | tee "$4" | "$2" -d -f -`
	cmd := exec.Command("/bin/sh", "-c", script, "sh", blcrTool(t, "cr_checkpoint"), blcrTool(t, "cr_restart"), strconv.Itoa(tg.pid), stream)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", script, err, out)
	}
	tg.waitDead(t, "cr_checkpoint --kill")
	if gone(tg.pid) || !tg.belongsTo(tg.pid) {
		t.Fatalf("pid %d does not run target %s after the pipe\n%s", tg.pid, tg.name, tg.diagnostics())
	}
	requireCodec(t, stream, tg.pid, contextfile.CodecZstd)
	atDump := counterLines(t, tg.logPath, false)
	waitCounter(t, tg, atDump+20)
	checkResult(t, tg, tg.pid)
	counterLines(t, tg.logPath, true)
}

// TestBLCRCompressShow: cr_checkpoint --compress=lz4 -f FILE writes an
// LZ4-compressed context that gocr show reads as it reads any context,
// and cr_restart FILE restarts the counter from it; an unknown
// compression is a bad command line.
func TestBLCRCompressShow(t *testing.T) {
	needsGocr(t)
	tg := startTarget(t, "counter")
	waitCounter(t, tg, 30)
	ctx := filepath.Join(t.TempDir(), "ctx")
	mustBLCR(t, blcrCall{}, "cr_checkpoint", "--compress=lz4", "--kill", "-f", ctx, strconv.Itoa(tg.pid))
	tg.waitDead(t, "cr_checkpoint --kill")
	requireCodec(t, ctx, tg.pid, contextfile.CodecLZ4)
	r := runGocr(t, nil, "show", ctx)
	if r.code != 0 {
		t.Fatalf("show %s: %v", ctx, r)
	}
	blocks := showBlocks(t, r.stdout)
	for _, name := range []string{"inventory.img", fmt.Sprintf("task-%d.img", tg.pid), fmt.Sprintf("pages-%d.img", tg.pid)} {
		if _, ok := blocks[name]; !ok {
			t.Errorf("show of the compressed context lacks %s: has %v", name, keys(blocks))
		}
	}
	pid := restartDetached(t, tg, blcrCall{}, ctx)
	checkResult(t, tg, pid)

	if r := runBLCR(t, blcrCall{}, "cr_checkpoint", "--compress=gzip", "-f", ctx, strconv.Itoa(os.Getpid())); r.code != 64 {
		t.Errorf("cr_checkpoint --compress=gzip: want exit 64\n%v", r)
	}
}

// TestBLCRCompressGenerations: cr_run --compress writes its generations
// compressed (one taken on SIGUSR1), and cr_restart DIR restarts the
// counter from the newest.
func TestBLCRCompressGenerations(t *testing.T) {
	needsGocr(t)
	dir := filepath.Join(t.TempDir(), "gens")
	tg, job := startCrRun(t, dir, "--compress", "--checkpoint-every=1h")
	waitCounter(t, tg, 30)
	if err := syscall.Kill(tg.pid, syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	ns := waitGeneration(t, dir, 1)
	gen := contextfile.GenerationPath(dir, ns[len(ns)-1])
	requireCodec(t, gen, job, contextfile.CodecZstd)
	checkGeneration(t, dir, ns[len(ns)-1])
	if err := syscall.Kill(job, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	tg.waitDead(t, "SIGKILL to the job")
	waitGone(job, pidGoneTimeout)
	mustBLCR(t, blcrCall{}, "cr_restart", "-d", dir)
	if gone(job) || !tg.belongsTo(job) {
		t.Fatalf("pid %d is not the restarted counter\n%s", job, tg.diagnostics())
	}
	checkResult(t, tg, job)
}
