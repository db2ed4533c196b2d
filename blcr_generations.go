//go:build linux

package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"

	"github.com/gocr/gocr/contextfile"
	"github.com/gocr/gocr/images"
	"github.com/gocr/gocr/proc"
	"github.com/gocr/gocr/restorer"
)

// What a restart reads: one context (a file, a descriptor, standard
// input), or the newest generation of a directory of periodic checkpoints
// that reads whole. A context in a regular file, uncompressed, is read in
// place (images.OpenContext): nothing of it is copied. One read from a
// stream, or compressed, is extracted into a private temporary directory.

// contextSource is where a restart's context comes from.
type contextSource struct {
	in       *os.File // one context; nil for dir
	inPlace  bool     // in can be read in place: a regular file, from its start
	dir      string   // a directory of generations
	trust    bool
	progress *progress
}

// extracted is the context a restart goes on with.
type extracted struct {
	name    string      // the context file (or stream) it came from
	images  *images.Dir // its images, read in place or extracted
	tmp     string      // the directory it was extracted into, if it was
	bytes   int64       // read from the context, or its size read in place
	skipped []string
}

// close closes the images and removes what was extracted. Nothing reads
// the images once the processes run.
func (ex *extracted) close() {
	if ex.images != nil {
		ex.images.Close()
	}
	if ex.tmp != "" {
		os.RemoveAll(ex.tmp)
	}
}

// open opens the context: in place, or extracted. From a directory of
// generations it takes the newest, and goes back one generation after
// another past any that is damaged or incomplete (a note on stderr says
// so); any other failure is the restart's.
func (s contextSource) open() (*extracted, error) {
	if s.in != nil {
		// One context: its page data is verified as the restorer
		// reads it in; there is no other to go back to.
		return s.openOne(s.in, s.inPlace, true)
	}
	gens, err := contextfile.Generations(s.dir)
	if err != nil {
		return nil, usageError{fmt.Errorf("directory of generations: %w", err)}
	}
	if len(gens) == 0 {
		return nil, usagef("%s holds no generation (gen-NNNNNN.ctx) to restart from", s.dir)
	}
	var skipped []string
	for i := len(gens) - 1; i >= 0; i-- {
		g := gens[i]
		f, err := openContext(g.Path, s.trust)
		if err != nil {
			return nil, err
		}
		ex, err := s.openOne(f, true, false)
		f.Close()
		if err == nil && ex.images.Inventory().GetParentDir() != "" {
			// An incremental generation needs the ones it takes
			// pages from (blcr_incremental.go); without them it
			// does not read whole.
			if ex, err = s.withParents(ex, g.Path); err != nil {
				err = fmt.Errorf("%w: %w", err, contextfile.ErrDamaged)
			}
		}
		if err == nil {
			ex.skipped = skipped
			return ex, nil
		}
		if !errors.Is(err, contextfile.ErrDamaged) && !errors.Is(err, contextfile.ErrNotContext) && !errors.Is(err, contextfile.ErrVersion) {
			return nil, err
		}
		skipped = append(skipped, g.Path)
		if i > 0 {
			fmt.Fprintf(os.Stderr, "%s: %v; restarting from the generation before it, %s\n", progName, err, filepath.Base(gens[i-1].Path))
		} else {
			fmt.Fprintf(os.Stderr, "%s: %v\n", progName, err)
		}
	}
	return nil, fmt.Errorf("no generation in %s reads whole (%d damaged or incomplete): %w", s.dir, len(skipped), contextfile.ErrDamaged)
}

// openOne opens the context f: in place when it can be, checked whole
// before anything is restored from it as extracting it checks it
// (images.OpenContext), but with pagesAsRead its page data, which the
// restorer verifies as it reads it in; else extracted into a new private
// directory.
func (s contextSource) openOne(f *os.File, inPlace, pagesAsRead bool) (*extracted, error) {
	var total int64
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
		total = st.Size()
	}
	if inPlace {
		s.progress.phase("checking "+filepath.Base(f.Name()), nil, 0)
		// openContext checked who could have written the file (a
		// descriptor given with -F is the caller's, as a stream is).
		d, err := images.OpenContext(f, images.OpenOptions{TrustImages: true, PagesAsRead: pagesAsRead})
		if err == nil {
			return &extracted{name: f.Name(), images: d, bytes: total}, nil
		}
		if !errors.Is(err, contextfile.ErrCompressed) {
			return nil, fmt.Errorf("context %s: %w", f.Name(), err)
		}
	}
	tmp, err := os.MkdirTemp("", "gocr-restart-")
	if err != nil {
		return nil, fmt.Errorf("directory for the context: %w", err)
	}
	ex, err := extractInto(f, tmp, total, s.progress)
	if err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	return ex, nil
}

// extractInto extracts the context f, of total bytes if known, into the
// new directory tmp (made private here) and opens its images.
func extractInto(f *os.File, tmp string, total int64, prog *progress) (*extracted, error) {
	if err := os.Chmod(tmp, 0o700); err != nil {
		return nil, err
	}
	dir := filepath.Join(tmp, "images")
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, fmt.Errorf("directory for the context: %w", err)
	}
	read := new(atomic.Int64)
	prog.phase("reading "+filepath.Base(f.Name()), read.Load, total)
	if _, err := contextfile.Extract(contextfile.CountingReader{R: f, N: read}, dir); err != nil {
		return nil, fmt.Errorf("context %s: %w", f.Name(), err)
	}
	// The images were extracted by gocr, as the user running it, from
	// a context checked as an image is (openContext).
	d, err := images.Open(dir)
	if err != nil {
		return nil, err
	}
	return &extracted{name: f.Name(), images: d, tmp: tmp, bytes: read.Load()}, nil
}

// checkJobGone refuses, for --pidns=auto, a restart whose PIDs are held
// by the checkpointed job itself: after a checkpoint that let it run on,
// a new PID namespace would start a second copy beside it, each writing
// the same files. A holder is the job when it runs the same program
// under the same name as the process of that PID in the images (its
// /proc/PID/exe and comm). A holder that is anything else is another
// program, and auto restarts in a new PID namespace past it. Images of a
// job that lived in a PID namespace of its own name PIDs of that
// namespace, and cannot be told this way.
func checkJobGone(d *images.Dir) error {
	if d.Inventory().PidNamespace {
		return nil
	}
	for _, pid := range d.Inventory().Pids {
		task, err := d.ReadTask(int(pid))
		if err != nil || task.Zombie {
			continue
		}
		st, err := proc.ReadStat(int(pid))
		if err != nil || st.State == 'Z' {
			continue
		}
		comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if err != nil || strings.TrimSpace(string(comm)) != strings.Trim(task.Comm, "()") {
			continue
		}
		mm, err := d.ReadMm(int(pid))
		if err != nil || mm.GetExe().GetPath() == "" {
			continue
		}
		if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); err != nil || exe != mm.GetExe().GetPath() {
			continue
		}
		return &restorer.ClassError{Class: restorer.Temporary, Err: fmt.Errorf(
			"pid %d is in use by %s (pid %d), which looks like the checkpointed job itself, still running: end it before restarting, or give --pidns=always to start a second copy beside it",
			pid, strings.Trim(task.Comm, "()"), pid)}
	}
	return nil
}
