//go:build linux

package test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// The acceptance tests run real programs as their users run them:
// redis-server with clients (accept_redis_test.go), Python's http.server
// (TestPythonHTTPServer, inet_test.go) and an Open MPI job
// (accept_mpi_test.go). `make deps` installs the programs; a test skips,
// saying so, only where one is missing.
//
// The programs run as an ordinary user (jobUID), as they are meant to:
// mpirun refuses root unless told otherwise and Debian runs redis as a
// user of its own. As root they would also be refused on a machine that
// holds any System V semaphore set: root may alter every set
// (CAP_IPC_OWNER), and a process that made threads has a semaphore undo
// list gocr cannot read (docs/STATE.md; TestRedisRootRefused).

// jobUID is the user the acceptance tests run their programs as: one no
// other test uses, so no System V object another test leaves is its own.
const jobUID = 61234

// asJobUser is the argv prefix that runs a program as jobUID.
func asJobUser() []string {
	id := strconv.Itoa(jobUID)
	return []string{"setpriv", "--reuid=" + id, "--regid=" + id, "--clear-groups", "--"}
}

// needsProgram returns the path of program, or skips the test naming the
// Debian package that `make deps` installs it from.
func needsProgram(t *testing.T, program, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(program)
	if err != nil {
		t.Skipf("%s is not installed (Debian package %s): make deps installs it", program, pkg)
	}
	return p
}

// jobDir returns a new directory the job user owns, inside directories
// it may pass through.
func jobDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	// t.TempDir's parent is private to root (mode 0700).
	if err := os.Chmod(filepath.Dir(dir), 0o711); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, jobUID, jobUID); err != nil {
		t.Fatal(err)
	}
	return dir
}

// freeLoopbackPort returns a TCP port on 127.0.0.1 that nothing listens
// on now (the kernel picks it; it is free until someone else binds it).
func freeLoopbackPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// wrapAsJobUser is a startOpts.wrap that runs a target as jobUID, after
// letting it write its verdict in its root-owned directory. The target's
// RESULT_PATH is its argument number resultArg (1 for a program, 2 for a
// script after its interpreter).
func wrapAsJobUser(resultArg int) []string {
	script := fmt.Sprintf(`d=$(dirname "$%d"); chmod 0777 "$d" && chmod o+x "$(dirname "$d")" && exec %s "$0" "$@"`,
		resultArg, shellJoin(asJobUser()))
	return []string{"sh", "-c", script}
}

func shellJoin(args []string) string {
	s := ""
	for i, a := range args {
		if i > 0 {
			s += " "
		}
		s += "'" + a + "'"
	}
	return s
}
