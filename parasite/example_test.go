//go:build linux

package parasite_test

import (
	"errors"
	"fmt"
	"os"

	"github.com/gocr/gocr/parasite"
	"github.com/gocr/gocr/ptrace"
)

// The whole life of an infection: infect, read the state only the process
// can read, write its pages, cure. Whatever fails after Infect, Cure still
// runs, and the thread ends in its event stop as Infect found it.
func Example() {
	var (
		t       *ptrace.Tracer  // the tracer that seized the process
		pid     int             // its thread to infect, in an event stop
		vdso    uint64          // the start of its [vdso]
		tids    []int           // its other threads, stopped
		xstates [][]byte        // their XSAVE images
		image   *os.File        // the page image
		spans   []parasite.Span // the memory to write into it
	)
	p, err := parasite.Infect(t, pid, parasite.Options{VdsoStart: vdso, Threads: 1 + len(tids)})
	if err != nil {
		fmt.Println(err) // Infect has cured what it did
		return
	}
	err = func() error {
		st, err := p.DumpState()
		if err != nil {
			return err
		}
		threads, err := p.ThreadStates(tids, xstates)
		if err != nil {
			return err
		}
		fmt.Println(st.SigActions, threads)
		_, err = p.WriteStreams([]parasite.Stream{{File: image, Spans: spans}})
		return err
	}()
	err = errors.Join(err, p.Cure())
	if err == nil && len(p.Signals) > 0 {
		// Signals the process took meanwhile; they must not be lost.
		err = fmt.Errorf("signals %v arrived while the parasite ran", p.Signals)
	}
	fmt.Println(err)
}
