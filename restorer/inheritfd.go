//go:build linux

package restorer

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/files"
	"github.com/gocr/gocr/gocrpb"
)

// openGiven takes gocr's own fds that --inherit-fd (fd[N]:KEY, each)
// gives to the fds of the dump joined outside it through KEY: a dup of
// each, close-on-exec, by key. The caller closes them.
func openGiven(specs []string) (map[string]*os.File, error) {
	given := map[string]*os.File{}
	for _, spec := range specs {
		n, key, err := files.ParseInheritFd(spec)
		if err == nil && given[key] != nil {
			err = fmt.Errorf("--inherit-fd gives %s twice", key)
		}
		var dup int
		if err == nil {
			// F_DUPFD_CLOEXEC fails with EBADF on an fd that is not
			// open (man 2 fcntl).
			if dup, err = unix.FcntlInt(uintptr(n), unix.F_DUPFD_CLOEXEC, 0); err != nil {
				err = fmt.Errorf("--inherit-fd %s: gocr has no fd %d open: %w", spec, n, err)
			}
		}
		if err != nil {
			closeGiven(given)
			return nil, err
		}
		given[key] = os.NewFile(uintptr(dup), fmt.Sprintf("fd %d", n))
	}
	return given, nil
}

func closeGiven(given map[string]*os.File) {
	for _, f := range given {
		f.Close()
	}
}

// fdTables are the fd tables of the processes that have one (not
// zombies).
func fdTables(procs []*proc) []*gocrpb.Files {
	var tables []*gocrpb.Files
	for _, pr := range procs {
		if pr.files != nil {
			tables = append(tables, pr.files)
		}
	}
	return tables
}

// noteStdio says in one line which stdio joined outside the dump gets
// gocr restore's own in its place.
func noteStdio(procs []*proc, given map[string]*os.File) {
	if note := files.StdioNote(fdTables(procs), given); note != "" {
		fmt.Fprintf(os.Stderr, "gocr: %s\n", note)
	}
	if note := files.ClosedPipeNote(fdTables(procs), given); note != "" {
		fmt.Fprintf(os.Stderr, "gocr: %s\n", note)
	}
}
