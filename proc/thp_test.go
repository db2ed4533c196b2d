//go:build linux

package proc

import (
	"os"
	"path/filepath"
	"testing"
)

// TestSysfsChoice: the bracketed choice of a sysfs setting, "" when it
// has none or cannot be read.
func TestSysfsChoice(t *testing.T) {
	dir := t.TempDir()
	for in, want := range map[string]string{
		"always [madvise] never\n":                "madvise",
		"[always] madvise never\n":                "always",
		"always inherit madvise [never]\n":        "never",
		"always [inherit] madvise never\n":        "inherit",
		"always madvise never\n":                  "",
		"":                                        "",
		"always [madvise never\n":                 "",
		"[always] [madvise] never, but malformed": "always",
	} {
		path := filepath.Join(dir, "enabled")
		if err := os.WriteFile(path, []byte(in), 0o600); err != nil {
			t.Fatal(err)
		}
		if got := sysfsChoice(path); got != want {
			t.Errorf("sysfsChoice(%q) = %q, want %q", in, got, want)
		}
	}
	if got := sysfsChoice(filepath.Join(dir, "missing")); got != "" {
		t.Errorf("sysfsChoice(missing file) = %q, want \"\"", got)
	}
}
