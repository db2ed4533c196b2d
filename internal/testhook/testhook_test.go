package testhook

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParse(t *testing.T) {
	got := parse(" pause-after-infect=5s, page-helper-tid=300,no-such-hook=1,,")
	want := map[string]string{PauseAfterInfect: "5s", PageHelperTid: "300"}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("parse (-want +got):\n%s", d)
	}
}

func TestSetting(t *testing.T) {
	if got, want := Setting(PauseBeforeFinish, "10s"), "GOCR_TEST_HOOKS=pause-before-finish=10s"; got != want {
		t.Errorf("Setting = %q, want %q", got, want)
	}
}

func TestSecureModeIgnoresSetting(t *testing.T) {
	if got := setting("pause-after-infect=5s", true); got != "" {
		t.Errorf("setting in secure mode = %q, want none", got)
	}
	if got := setting("pause-after-infect=5s", false); got != "pause-after-infect=5s" {
		t.Errorf("setting = %q, want it as given", got)
	}
}

// The test binary is not run in secure mode: nothing gave it privilege.
func TestNotSecure(t *testing.T) {
	if secure() {
		t.Error("secure() = true for a test binary run without set-id bits or file capabilities")
	}
}

// A pause hook set to a path holds until that file exists, not for a time.
func TestPauseUntilFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "go")
	saved := hooks
	hooks = map[string]string{PauseBeforeLaunch: path}
	t.Cleanup(func() { hooks = saved })
	done := make(chan struct{})
	go func() { Pause(PauseBeforeLaunch); close(done) }()
	select {
	case <-done:
		t.Fatal("Pause returned before the file existed")
	case <-time.After(100 * time.Millisecond):
	}
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Pause still holds 10 s after the file was made")
	}
}
