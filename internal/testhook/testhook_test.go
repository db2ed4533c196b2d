package testhook

import (
	"testing"

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
