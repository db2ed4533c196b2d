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
// that reads whole.

// contextSource is where a restart's context comes from.
type contextSource struct {
	in       *os.File // one context; nil for dir
	dir      string   // a directory of generations
	trust    bool
	progress *progress
}

// extracted is the context a restart goes on with.
type extracted struct {
	name    string // the context file (or stream) it came from
	dir     string // its images
	bytes   int64  // read from the context
	skipped []string
}

// extract reads the context into a new directory under tmp. From a
// directory of generations it takes the newest, and goes back one
// generation after another past any that is damaged or incomplete (a
// note on stderr says so); any other failure is the restart's.
func (s contextSource) extract(tmp string) (*extracted, error) {
	if s.in != nil {
		return s.extractOne(s.in, filepath.Join(tmp, "images"))
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
		ex, err := s.extractOne(f, filepath.Join(tmp, filepath.Base(g.Path)))
		f.Close()
		if err == nil {
			// An incremental generation needs the ones it takes
			// pages from (blcr_incremental.go); without them it
			// does not read whole.
			if perr := s.extractParents(tmp, ex); perr != nil {
				err = fmt.Errorf("%w: %w", perr, contextfile.ErrDamaged)
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
		// With the generations extracted for it as its parents.
		if olds, _ := filepath.Glob(filepath.Join(tmp, "gen-*.ctx")); len(olds) > 0 {
			for _, o := range olds {
				os.RemoveAll(o)
			}
		}
		if i > 0 {
			fmt.Fprintf(os.Stderr, "%s: %v; restarting from the generation before it, %s\n", progName, err, filepath.Base(gens[i-1].Path))
		} else {
			fmt.Fprintf(os.Stderr, "%s: %v\n", progName, err)
		}
	}
	return nil, fmt.Errorf("no generation in %s reads whole (%d damaged or incomplete): %w", s.dir, len(skipped), contextfile.ErrDamaged)
}

func (s contextSource) extractOne(f *os.File, dir string) (*extracted, error) {
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, fmt.Errorf("directory for the context: %w", err)
	}
	var total int64
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
		total = st.Size()
	}
	read := new(atomic.Int64)
	s.progress.phase("reading "+filepath.Base(f.Name()), read.Load, total)
	if _, err := contextfile.Extract(contextfile.CountingReader{R: f, N: read}, dir); err != nil {
		return nil, fmt.Errorf("context %s: %w", f.Name(), err)
	}
	return &extracted{name: f.Name(), dir: dir, bytes: read.Load()}, nil
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
func checkJobGone(dir string) error {
	d, err := images.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
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
