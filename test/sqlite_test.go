//go:build linux

package test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gocr/gocr/internal/testhook"
)

var (
	sqliteOnce sync.Once
	sqliteErr  error
)

// buildSqliteJob compiles sqlitejob.c against libsqlite3 (make deps
// installs libsqlite3-dev and the sqlite3 shell), apart from the other
// targets so that a machine without it fails these tests only.
func buildSqliteJob(t *testing.T) {
	t.Helper()
	sqliteOnce.Do(func() {
		if _, err := exec.LookPath("sqlite3"); err != nil {
			sqliteErr = fmt.Errorf("no sqlite3 shell (make deps installs it): %w", err)
			return
		}
		out := filepath.Join(binDir, "sqlitejob")
		src := filepath.Join(moduleRoot, "test", "targets", "sqlitejob.c")
		if b, err := exec.Command("gcc", "-O1", "-g", "-Wall", "-Werror", "-o", out, src, "-lsqlite3").CombinedOutput(); err != nil {
			sqliteErr = fmt.Errorf("compile target sqlitejob (make deps installs libsqlite3-dev): %w\n%s", err, b)
			return
		}
		targets["sqlitejob"] = []string{out}
	})
	if sqliteErr != nil {
		t.Fatal(sqliteErr)
	}
}

// sqliteRounds and sqliteBatch: each job is dumped and restored
// sqliteRounds times, every time after sqliteBatch more transactions.
const sqliteRounds, sqliteBatch = 10, 20

// TestSqlite: a job writing transactions to an SQLite database
// (sqlitejob.c), in WAL and in rollback (DELETE) journal mode, is
// dumped, killed and restored ten times in a row, each time paused at the
// same kind of point: inside a transaction (BEGIN IMMEDIATE and an
// INSERT, not committed) or between two. Each time, another process (the
// sqlite3 shell) reads the database while the job waits there, before the
// dump, during it (once, the job frozen with the parasite in it) and after
// the restore: it must see exactly the committed rows, and
// it must not take the database from the restored job, whose POSIX locks
// on the database, journal and -shm file say it is there (a reader that
// finds no lock recovers the database and, in WAL mode, checkpoints and
// deletes the WAL under the job). The oracle compares every lock and the
// -shm mapping each time. The job then commits on, and at the end finds
// PRAGMA integrity_check ok and every row once with its checksum.
func TestSqlite(t *testing.T) {
	needsRoot(t)
	needsGocr(t)
	buildSqliteJob(t)
	for _, mode := range []string{"wal", "delete"} {
		for _, point := range []string{"mid", "between"} {
			t.Run(mode+"-"+point, func(t *testing.T) {
				t.Parallel()
				testSqlite(t, mode, point)
			})
		}
	}
}

func testSqlite(t *testing.T, mode, point string) {
	db := filepath.Join(t.TempDir(), "job.db")
	tg := startTarget(t, "sqlitejob", db, mode, point, strconv.Itoa(sqliteRounds), strconv.Itoa(sqliteBatch))
	pid := tg.pid
	for r := 0; r < sqliteRounds; r++ {
		if r > 0 {
			waitSqlitePause(t, tg, pid, db, r)
		}
		// Committed so far: a batch a round, and the transaction
		// each earlier round held open at its pause.
		want := (r + 1) * sqliteBatch
		if point == "mid" {
			want += r
		}
		readSqliteRows(t, db, want, fmt.Sprintf("round %d, before the dump", r))
		if standalone {
			syscall.Kill(pid, syscall.SIGUSR1)
			continue
		}
		before, err := readTreeView(t, pid)
		if err != nil {
			t.Fatalf("read what the kernel shows of pid %d: %v", pid, err)
		}
		dir := t.TempDir()
		if r == 1 {
			dumpWhileRead(t, pid, dir, db, want)
		} else {
			dump(t, pid, dir)
		}
		if r == 0 {
			tg.waitDead(t, "a dump without --leave-running")
		} else if !waitGone(pid, pidGoneTimeout) {
			t.Fatalf("round %d: restored pid %d still present %v after its dump", r, pid, pidGoneTimeout)
		}
		pid = restoreDetached(t, tg, dir, nil)
		checkTreeView(t, pid, before, nil)
		readSqliteRows(t, db, want, fmt.Sprintf("round %d, after the restore", r))
		if err := syscall.Kill(pid, syscall.SIGUSR1); err != nil {
			t.Fatalf("SIGUSR1 pid %d: %v", pid, err)
		}
	}
	waitSqlitePause(t, tg, pid, db, sqliteRounds)
	checkResult(t, tg, pid)
}

// dumpWhileRead dumps the job with another process reading the database
// while the job is frozen, the parasite in it (held there by a test hook
// until the read is done): the reader sees exactly want committed rows,
// and the dump completes.
func dumpWhileRead(t *testing.T, pid int, dir, db string, want int) {
	t.Helper()
	hook, goOn := heldAt(t, testhook.PauseAfterInfect)
	cmd := startGocr(t, hook, "dump", "-t", strconv.Itoa(pid), "-D", dir)
	waitHook(t, cmd, testhook.PauseAfterInfect)
	readSqliteRows(t, db, want, "while the job is dumped")
	goOn()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("dump of pid %d with a reader meanwhile: %v", pid, err)
	}
}

// waitSqlitePause waits until the job says it waits at round r's point.
func waitSqlitePause(t *testing.T, tg *target, pid int, db string, r int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		b, _ := os.ReadFile(db + ".paused")
		if strings.TrimSpace(string(b)) == strconv.Itoa(r) {
			return
		}
		if gone(pid) || time.Now().After(deadline) {
			t.Fatalf("job pid %d not at round %d's pause (it says %q)\n%s", pid, r, b, tg.diagnostics())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// readSqliteRows reads the database from another process, the sqlite3
// shell, and requires it to see exactly want committed rows.
func readSqliteRows(t *testing.T, db string, want int, when string) {
	t.Helper()
	out, err := exec.Command("sqlite3", "-bail", db, "SELECT count(*), coalesce(max(n), 0) FROM rows").CombinedOutput()
	if err != nil {
		t.Fatalf("%s: sqlite3 %s: %v\n%s", when, db, err, out)
	}
	if got, w := strings.TrimSpace(string(out)), fmt.Sprintf("%d|%d", want, want); got != w {
		t.Fatalf("%s: another process reads rows (count|max) %s, want %s", when, got, w)
	}
}
