//go:build linux

package restorer

import (
	"errors"
	"fmt"
	"os"
	"testing"
)

func TestClassOf(t *testing.T) {
	_, missing := os.Stat("/nonexistent/gocr-class-test")
	for _, c := range []struct {
		err  error
		want Class
	}{
		{errors.New("bad image"), Permanent},
		{fmt.Errorf("restore pid 7: %w", classed(Temporary, errors.New("pid 7 is in use"))), Temporary},
		{fmt.Errorf("restore pid 7: %w", classed(Environment, errors.New("directory /x: gone"))), Environment},
		{environmentFailure(fmt.Errorf("fd 3: %w", missing)), Environment},
		{environmentFailure(errors.New("not a file error")), Permanent},
	} {
		if got := ClassOf(c.err); got != c.want {
			t.Errorf("ClassOf(%v) = %v, want %v", c.err, got, c.want)
		}
	}
	if classed(Temporary, nil) != nil {
		t.Error("classed(nil) is not nil")
	}
}
