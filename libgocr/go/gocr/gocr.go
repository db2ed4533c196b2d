// Package gocr lets a Go program register checkpoint callbacks with libgocr
// (libgocr/gocr.h, docs/CALLBACKS.md), through cgo: code that gocr runs
// before it checkpoints the program, to flush and close what a checkpoint
// cannot save, and that goes on after the checkpoint, told whether the
// program continued, was restarted from it, or the checkpoint was not
// taken.
//
//	gocr.RegisterCallback(func() {
//		scratch.Close()
//		res, _ := gocr.Checkpoint() // ready: gocr checkpoints now
//		if res == gocr.Restarted {
//			...
//		}
//		scratch = reopen()
//	})
//
// Building needs cgo (CGO_ENABLED=1, a C compiler) and libgocr installed
// (make install-lib: gocr.h and libgocr.so or libgocr.a where the C
// compiler and linker look, or CGO_CFLAGS=-I... CGO_LDFLAGS=-L...).
// Without cgo the package is empty.
//
// # The Go runtime
//
// libgocr runs the callbacks in a thread of its own that the Go runtime did
// not start, one after another, with every signal blocked. cgo lets C call
// Go from such a thread through an exported function (gocrRunCallback
// below): for the length of the call the runtime attaches that thread to
// itself, and the callback is an ordinary goroutine locked to it. The
// callback may allocate, lock mutexes, use channels and start goroutines;
// while it waits inside Checkpoint (a cgo call) the runtime runs the
// program's other goroutines on its other threads, so a checkpoint never
// blocks them. Only gocr's freeze stops them, as it stops every thread.
// When the first callback returns, the runtime gives the thread a signal
// mask of its own choosing: the thread no longer blocks every signal, and
// the runtime handles what is delivered there as on its own threads.
//
// Checkpoint must be called from the callback's own goroutine: libgocr
// knows the running callback by its thread, and a goroutine the callback
// starts runs elsewhere (Checkpoint then fails with EINVAL). A callback
// that panics ends the program, as a panic in any goroutine does. A
// callback that takes long delays the dump, which gives up after gocr
// dump --callback-timeout.
package gocr
