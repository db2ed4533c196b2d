package gocr

/*
#cgo CFLAGS: -I${SRCDIR}/../..
#cgo LDFLAGS: -lgocr -pthread
#include <stdint.h>
#include <gocr.h>

// gocrRunCallback is the Go function in export.go.
extern int gocrRunCallback(void *arg);

// register_go registers gocrRunCallback with the handle of a Go function
// as its argument. The handle goes through C as a uintptr_t so that Go
// never turns an integer into a pointer.
static int register_go(uintptr_t handle)
{
	return gocr_register_callback(gocrRunCallback, (void *)handle, GOCR_CALLBACK_THREAD);
}
*/
import "C"

import (
	"errors"
	"fmt"
	"runtime/cgo"
	"syscall"
)

// Result is how a checkpoint ended, as Checkpoint tells a callback.
type Result int

const (
	// Continue: the checkpoint was taken and this process went on (gocr
	// dump --leave-running). GOCR_CONTINUE in C.
	Continue Result = iota
	// Restarted: this process was restored from the checkpoint.
	// GOCR_RESTARTED in C.
	Restarted
	// Cancelled: the checkpoint was not taken (the dump failed, gocr gave
	// up waiting for the callbacks, or gocr died); the process goes on as
	// before. gocr_checkpoint() failing with ECANCELED in C.
	Cancelled
)

func (r Result) String() string {
	switch r {
	case Continue:
		return "continue"
	case Restarted:
		return "restarted"
	case Cancelled:
		return "cancelled"
	}
	return fmt.Sprintf("Result(%d)", int(r))
}

// RegisterCallback registers fn to run before every checkpoint of this
// process, in libgocr's callbacks thread (see the package documentation).
// Callbacks run in the reverse order of registration, each calling
// Checkpoint, which runs the next one; the last one's call tells gocr the
// process is ready. A callback that returns without calling Checkpoint has
// it called on its behalf. It returns libgocr's id of the callback (0 for
// the first one). fn stays referenced for the life of the process: libgocr
// has no way to unregister.
func RegisterCallback(fn func()) (int, error) {
	if fn == nil {
		return -1, fmt.Errorf("gocr_register_callback: nil callback: %w", syscall.EINVAL)
	}
	h := cgo.NewHandle(fn)
	id, err := C.register_go(C.uintptr_t(h))
	if id < 0 {
		h.Delete()
		return -1, fmt.Errorf("gocr_register_callback: %w", err)
	}
	return int(id), nil
}

// Checkpoint, called from a callback, says this callback is ready for the
// checkpoint and returns once the checkpoint is over, with how it ended.
// Called again in the same callback, it returns the same answer. The error
// is set only when it is not called from a callback's own goroutine
// (syscall.EINVAL).
func Checkpoint() (Result, error) {
	r, err := C.gocr_checkpoint()
	switch {
	case r > 0:
		return Restarted, nil
	case r == 0:
		return Continue, nil
	case errors.Is(err, syscall.ECANCELED):
		return Cancelled, nil
	}
	return Cancelled, fmt.Errorf("gocr_checkpoint: %w", err)
}
