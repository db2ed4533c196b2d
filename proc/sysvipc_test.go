//go:build linux

package proc

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The fixtures were captured on Linux 6.18 after ipcmk -M 8192 -p 0640,
// ipcmk -S 3 and ipcmk -Q.
func TestParseSysv(t *testing.T) {
	for _, tc := range []struct {
		file string
		want []SysvObject
	}{
		{"sysvipc.shm", []SysvObject{{Key: -1367429037, ID: 1, Mode: 0o640, Size: 8192, Cpid: 1258}}},
		{"sysvipc.sem", []SysvObject{{Key: -1556108228, ID: 2, Mode: 0o644, Nsems: 3}}},
		{"sysvipc.msg", []SysvObject{{Key: 2070700507, ID: 0, Mode: 0o644}}},
	} {
		got, err := ParseSysv(fixture(t, tc.file))
		if err != nil {
			t.Fatalf("%s: %v", tc.file, err)
		}
		if d := cmp.Diff(tc.want, got); d != "" {
			t.Errorf("%s (-want +got):\n%s", tc.file, d)
		}
	}
	for _, bad := range []string{"", "key shmid perms\n1 2\n", "key shmid perms\n1 2 99\n"} {
		if _, err := ParseSysv([]byte(bad)); err == nil {
			t.Errorf("ParseSysv(%q) succeeded", bad)
		}
	}
}
