//go:build linux

package restorer

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// writePidFile writes pid and a newline to path, as a new file renamed
// into place: a reader sees no file or the whole PID, never a part, and a
// symbolic link at path is replaced rather than followed (rename(2)
// replaces the link itself).
func writePidFile(path string, pid int) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("pid file %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.WriteString(strconv.Itoa(pid) + "\n"); err == nil {
		err = tmp.Chmod(0o644)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("pid file %s: %w", path, err)
	}
	return nil
}
