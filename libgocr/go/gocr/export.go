package gocr

// The exported function lives apart from callbacks.go's preamble: a file
// with //export may only declare things in its preamble (cmd/cgo).

// #include <stdint.h>
import "C"

import (
	"runtime/cgo"
	"unsafe"
)

// gocrRunCallback runs, in libgocr's callbacks thread, the Go function
// whose handle RegisterCallback gave libgocr. Its return value is ignored
// by libgocr.
//
//export gocrRunCallback
func gocrRunCallback(arg unsafe.Pointer) C.int {
	cgo.Handle(uintptr(arg)).Value().(func())()
	return 0
}
