//go:build linux

package test

import (
	"strconv"
	"testing"
)

// TestInotifyDeletedFile: an inotify watch on a file deleted since, which
// the target still holds open, comes back on that file made again (a
// ghost file) under its watch descriptor and mask, with nothing queued:
// a write through the fd is reported, and its last close is reported as
// the end of the file and of the watch (inotifydeleted.c held). The
// watch's file handle is the new inode's, so the oracle leaves the
// inotify fd's fdinfo to the target.
func TestInotifyDeletedFile(t *testing.T) {
	needsRoot(t)
	tg := startTargetOpts(t, "inotifydeleted", startOpts{args: []string{"held", t.TempDir()}})
	pid := checkpointRestore(t, tg, cycleOpts{volatile: []string{"fd/31/info"}})
	checkResult(t, tg, pid)
}

// TestInotifyDeletedFileRefused: a watch on a deleted file that only a
// private mapping holds (restored from a copy, not the file) is refused
// at dump, naming it, and the target runs on (inotifydeleted.c mapped).
func TestInotifyDeletedFileRefused(t *testing.T) {
	needsRoot(t)
	needsGocr(t)
	tg := startTargetOpts(t, "inotifydeleted", startOpts{args: []string{"mapped", t.TempDir()}})
	r := runGocr(t, nil, "dump", "-t", strconv.Itoa(tg.pid), "-D", t.TempDir())
	assertRefused(t, r, []string{strconv.Itoa(tg.pid), "inotify watch 2", "/watched,", "no fd or shared mapping"}, nil)
	checkIntact(t, tg)
}
