//go:build linux

package files

import (
	"fmt"
	"os"

	"github.com/gocr/gocr/gocrpb"
	"github.com/gocr/gocr/images"
)

// Sources are the files gocr opens for the processes it restores: every
// open file description they had, and whatever else the restore hands to
// the restorer (page images, shared memory). The restorer gets them all as
// fds First, First+1, ...; every process it creates inherits them, takes
// its own and closes the rest.
type Sources struct {
	// First is the fd number the first source has in the restorer.
	First int32
	// Dir is the dump being restored, for kinds whose data has its own
	// image (memfd-ID.img).
	Dir *images.Dir
	// Stdio is given to the restored processes in place of stdio that
	// was connected outside the dump.
	Stdio [3]*os.File
	// Given are the restore's own files that --inherit-fd gives, by
	// the key of the fds joined outside the dump they stand for
	// (inherit.go). The caller owns them.
	Given map[string]*os.File
	// PeerCreds makes the calls that record unix sockets' peer
	// credentials (unixpeercred.go); nil: gocr makes them itself, and
	// they name gocr.
	PeerCreds PeerCredMaker
	// Rebase moves absolute times of the clocks that start at boot from
	// the dump's to this restore's (the restorer's time namespace); nil
	// when unknown (older images restored on another boot).
	Rebase *ClockRebase
	// NewPidNamespace and NewTimeNamespace: the restore puts the
	// processes in a new PID (and mount) namespace, or a new time
	// namespace, not gocr's (nsfs.go).
	NewPidNamespace, NewTimeNamespace bool
	// Lifeline is a read end of the restore's lifeline pipe, in which
	// its commit leaves a byte for good (restorer/finish.go): the TCP
	// watchdog tells by it whether the processes run (tcpwatch.go).
	Lifeline *os.File

	files []*os.File
	// desc maps a dumped open file description, named by its first
	// (pid, fd), to its source.
	desc map[[2]int32]int32
	// shared holds objects several sources are made from (a pipe, a
	// memfd), by a key of each kind's own type.
	shared map[any]any
	memfds map[uint64]*gocrpb.Memfd
	// ghosts are the deleted files the dump describes (ghost.go).
	ghosts map[uint64]*gocrpb.GhostFile
	// tables are the dumped fd tables OpenAll opens, for kinds whose
	// objects join fds of several processes (unix sockets).
	tables []*gocrpb.Files
	// undo are what Undo takes back: what the sources made outside
	// gocr (a unix socket's file, a POSIX message queue).
	undo []func()
	// settle are what Settle does, phase by phase.
	settle [settlePhases][]func() error
}

// Phases of Settle, in order.
const (
	// settleClose: gocr closes its own open files the processes do
	// not hold.
	settleClose = iota
	// settleDrain: what that queued in the processes' notification
	// instances is read away.
	settleDrain
	settlePhases
)

// OnSettle adds what Settle does in phase.
func (s *Sources) OnSettle(phase int, f func() error) { s.settle[phase] = append(s.settle[phase], f) }

// Settle is called once every restored process holds its files, before
// any runs: gocr closes the files it made only for the restore (a
// deleted file's own descriptions, ghost.go), whose last close is an
// event to whatever watches the file, and reads away what the restore
// itself queued in the processes' inotify instances (inotify.go). What
// the restore queued was not there at the dump, which refuses queued
// events; what another process did meanwhile would have been as lost
// had the instance been made a moment later.
func (s *Sources) Settle() error {
	for _, phase := range s.settle {
		for _, f := range phase {
			if err := f(); err != nil {
				return err
			}
		}
	}
	return nil
}

// Made records how to remove an object a kind made in the system (not
// only in gocr), should the restore fail: a failed restore removes what
// it created, and nothing else.
func (s *Sources) Made(remove func()) { s.OnUndo(remove) }

// NewSources starts an empty set of sources numbered from first.
func NewSources(dir *images.Dir, first int32, stdio [3]*os.File) *Sources {
	return &Sources{First: first, Dir: dir, Stdio: stdio, desc: map[[2]int32]int32{},
		shared: map[any]any{}, memfds: map[uint64]*gocrpb.Memfd{}, ghosts: map[uint64]*gocrpb.GhostFile{}}
}

// Add makes f a source, owned by s from now on, and returns its number.
func (s *Sources) Add(f *os.File) int32 {
	s.files = append(s.files, f)
	return s.First + int32(len(s.files)-1)
}

// AddFd is Add for a raw fd.
func (s *Sources) AddFd(fd int, name string) int32 { return s.Add(os.NewFile(uintptr(fd), name)) }

// File is the source numbered n.
func (s *Sources) File(n int32) *os.File { return s.files[n-s.First] }

// Files are every source, in number order.
func (s *Sources) Files() []*os.File { return s.files }

// Close closes every source.
//
// A restore closes its sources once the processes run, and what they made
// is the job's from then on: Undo takes nothing back after Close.
func (s *Sources) Close() {
	for _, f := range s.files {
		f.Close()
	}
	s.undo = nil
}

// OnUndo adds what Undo must take back.
func (s *Sources) OnUndo(f func()) { s.undo = append(s.undo, f) }

// Undo takes back, last first, what the sources made outside gocr, for a
// restore that failed: a failed restore removes what it created.
func (s *Sources) Undo() {
	for i := len(s.undo) - 1; i >= 0; i-- {
		s.undo[i]()
	}
	s.undo = nil
}

// once returns the object made for key, making it with make the first time.
func once[T any](s *Sources, key any, make func() (T, error)) (T, error) {
	if v, ok := s.shared[key]; ok {
		return v.(T), nil
	}
	v, err := make()
	if err != nil {
		return v, err
	}
	s.shared[key] = v
	return v, nil
}

// OpenAll opens every open file description the processes had, the way
// they had it: once, however many fds and processes share it.
func (s *Sources) OpenAll(tables []*gocrpb.Files) error {
	s.tables = tables
	for _, table := range tables {
		for _, m := range table.Memfds {
			s.memfds[m.Id] = m
		}
		for _, g := range table.GhostFiles {
			s.ghosts[g.Id] = g
		}
	}
	for _, table := range tables {
		for _, fd := range table.Fds {
			if fd.SharedWith >= 0 {
				continue
			}
			k, err := kindOf(fd)
			if err != nil {
				return fmt.Errorf("restore pid %d: %w", table.Pid, err)
			}
			n, err := k.Open(s, fd)
			if err == nil {
				err = lockDescription(s.File(n), fd)
			}
			if err != nil {
				return fmt.Errorf("restore pid %d: fd %d (%s): %w", table.Pid, fd.Fd, k.Name(), err)
			}
			s.desc[[2]int32{table.Pid, fd.Fd}] = n
		}
	}
	return nil
}

// Placed is an fd of a restored process: the number it had, and the
// source that becomes it.
type Placed struct {
	Fd, Src int32
	Cloexec bool
}

// SourceOf is the source of fd of process pid, a dumped one.
func (s *Sources) SourceOf(pid, fd int32) (int32, error) {
	for _, t := range s.tables {
		if t.Pid != pid {
			continue
		}
		for _, f := range t.Fds {
			if f.Fd != fd {
				continue
			}
			key := [2]int32{pid, fd}
			if f.SharedWith >= 0 {
				owner := f.SharedPid
				if owner == 0 {
					owner = pid
				}
				key = [2]int32{owner, f.SharedWith}
			}
			if src, ok := s.desc[key]; ok {
				return src, nil
			}
		}
	}
	return 0, fmt.Errorf("pid %d fd %d is not in the dump", pid, fd)
}

// Place says which source becomes each of the process's fds.
func (s *Sources) Place(table *gocrpb.Files) ([]Placed, error) {
	var out []Placed
	for _, fd := range table.Fds {
		key := [2]int32{table.Pid, fd.Fd}
		if fd.SharedWith >= 0 {
			owner := fd.SharedPid
			if owner == 0 {
				owner = table.Pid
			}
			key = [2]int32{owner, fd.SharedWith}
		}
		src, ok := s.desc[key]
		if !ok {
			return nil, fmt.Errorf("fd %d shares a file with pid %d fd %d, which is not in the dump", fd.Fd, key[0], key[1])
		}
		out = append(out, Placed{Fd: fd.Fd, Src: src, Cloexec: fd.Cloexec})
	}
	return out, nil
}
