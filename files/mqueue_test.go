//go:build linux

package files

import "testing"

func TestNotifyPid(t *testing.T) {
	for state, want := range map[string]int{
		"QSIZE:0          NOTIFY:0     SIGNO:0     NOTIFY_PID:0     \n": 0,
		"QSIZE:12         NOTIFY:0     SIGNO:10    NOTIFY_PID:4321  \n": 4321,
		"": 0,
	} {
		if got := notifyPid(state); got != want {
			t.Errorf("notifyPid(%q) = %d, want %d", state, got, want)
		}
	}
}
