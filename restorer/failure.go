//go:build linux

package restorer

import (
	"errors"
	"io/fs"

	"golang.org/x/sys/unix"
)

// Class is the kind of a restore failure, as BLCR's cr_restart sorts them
// (cr_restart(1), "Error handling"), so a batch system can tell "retry
// later" from "this checkpoint is no good" from "fix the node".
type Class int

const (
	// Permanent: the checkpoint itself cannot be restored, here or
	// anywhere like here: damaged, of another format, or using what
	// gocr does not restore. The default for a failure not classed.
	Permanent Class = iota
	// Temporary: trying again later may work: a PID the job needs is in
	// use, another process holds a lock the job held.
	Temporary
	// Environment: this machine lacks what the job needs: a file or
	// directory it had open, mapped or worked in is missing or changed,
	// or cannot be opened.
	Environment
)

func (c Class) String() string {
	switch c {
	case Temporary:
		return "temporary"
	case Environment:
		return "environment"
	}
	return "permanent"
}

// ClassError is a restore failure of a known class.
type ClassError struct {
	Class Class
	Err   error
}

func (e *ClassError) Error() string { return e.Err.Error() }
func (e *ClassError) Unwrap() error { return e.Err }

// classed marks err (if not nil) as of class c.
func classed(c Class, err error) error {
	if err == nil {
		return nil
	}
	return &ClassError{Class: c, Err: err}
}

// ClassOf tells the class of a restore failure: the innermost one marked
// by the restorer, else Permanent.
func ClassOf(err error) Class {
	var ce *ClassError
	if errors.As(err, &ce) {
		return ce.Class
	}
	return Permanent
}

// environmentFailure classes an error opening the files the job had: a
// file that is missing, or that the user restoring cannot open, is the
// environment's (open(2): ENOENT, ENOTDIR, EACCES, EPERM, ELOOP).
func environmentFailure(err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) ||
		errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP) {
		return classed(Environment, err)
	}
	return err
}
