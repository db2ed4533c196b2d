//go:build linux

package dump

import (
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestTimerIDsRestorable: POSIX timers are refused on a kernel whose
// timer_create cannot be given their IDs, and only then.
func TestTimerIDsRestorable(t *testing.T) {
	lacks := func() error { return unix.EINVAL }
	has := func() error { return nil }
	if err := checkTimerIDsRestorable(2, lacks); err == nil || !strings.Contains(err.Error(), "2 POSIX timers") {
		t.Errorf("2 timers on a kernel without PR_TIMER_CREATE_RESTORE_IDS: %v, want a refusal naming them", err)
	}
	if err := checkTimerIDsRestorable(0, lacks); err != nil {
		t.Errorf("no timers on a kernel without it: %v, want none", err)
	}
	if err := checkTimerIDsRestorable(2, has); err != nil {
		t.Errorf("2 timers on a kernel with it: %v, want none", err)
	}
}
