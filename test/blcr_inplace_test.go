//go:build linux

package test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gocr/gocr/contextfile"
)

// TestCrRestartInPlace: cr_restart of an uncompressed context file reads
// it in place, copying nothing: with $TMPDIR a directory that does not
// exist, where no temporary file or directory can be made, the job
// restarts, and its 48 MiB of memory, every word checked by the job
// itself, come back. The same context from standard input, which is
// extracted, fails there, so the test tells the two apart. A memfd's and
// a System V segment's contents come back from the context too. A context
// whose page data is damaged in one chunk is refused, naming the chunk
// (found by the restorer as it reads the pages in), and leaves no process
// and the job's log as it was: the restored process never ran.
func TestCrRestartInPlace(t *testing.T) {
	needsGocr(t)
	missing := filepath.Join(t.TempDir(), "missing")
	noTmp := blcrCall{env: []string{"TMPDIR=" + missing}}
	t.Run("restart", func(t *testing.T) {
		tg := startTarget(t, "counter", "48")
		before, err := readTreeView(t, tg.pid)
		if err != nil {
			t.Fatal(err)
		}
		ctx := checkpointed(t, tg)
		f, err := os.Open(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		r := runBLCR(t, blcrCall{env: noTmp.env, stdin: f}, "cr_restart", "-d", "-f", "-")
		if r.code == 0 {
			t.Cleanup(func() { tg.killRestored(t, tg.pid) })
			t.Fatalf("cr_restart -f - with no $TMPDIR succeeded: it extracts the context, and cannot without one\n%v", r)
		}
		if !strings.Contains(r.stderr, missing) {
			t.Fatalf("cr_restart -f - with no $TMPDIR: want it refused for want of %s\n%v", missing, r)
		}
		assertNoProcess(t, tg.pid)
		pid := restartDetached(t, tg, noTmp, ctx)
		checkTreeView(t, pid, before, counterVolatile)
		checkResult(t, tg, pid)
	})
	// The other data images are read in place too: a memfd's contents,
	// and a System V segment's, made again (their objects removed before
	// the restart, as on another machine).
	t.Run("memfd", func(t *testing.T) {
		tg := startTarget(t, "fdkinds", "memfd")
		before, err := readTreeView(t, tg.pid)
		if err != nil {
			t.Fatal(err)
		}
		ctx := checkpointed(t, tg)
		pid := restartDetached(t, tg, noTmp, ctx)
		checkTreeView(t, pid, before, nil)
		checkResult(t, tg, pid)
	})
	t.Run("sysvipc", func(t *testing.T) {
		// The data kinds are read in place by one code path
		// (images.Data); the segments' own restore, 4 s, is TestSysvIpc's.
		soakOnly(t)
		tg := startSysvTarget(t)
		pids := trackTree(t, tg.pid)
		ctx := checkpointed(t, tg)
		waitAllGone(t, pids, "cr_checkpoint --kill")
		removeSysv(t, tg.pid)
		checkResult(t, tg, restartDetached(t, tg, noTmp, ctx))
	})
	t.Run("damaged", func(t *testing.T) {
		tg := startTarget(t, "counter", "8")
		ctx := checkpointed(t, tg)
		name := fmt.Sprintf("pages-%d.img", tg.pid)
		damageEntry(t, ctx, name)
		log := readLog(t, tg)
		r := runBLCR(t, noTmp, "cr_restart", "-d", ctx)
		blcrFailure(t, r, 65, "permanent", name, "page data bytes", "checksum mismatch")
		if !strings.Contains(r.stderr, contextfile.ErrDamaged.Error()) {
			t.Fatalf("want the context named damaged\n%v", r)
		}
		assertNoProcess(t, tg.pid)
		if now := readLog(t, tg); now != log {
			t.Fatalf("the job's log changed during the failed restart: the restored process ran\n%s", now[len(log):])
		}
	})
}
