//go:build linux

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/dump"
)

// gocrTimeout bounds one gocr command: a 4 GiB dump to the disk takes a
// few seconds, and a gocr that hangs must not hold up the whole run.
const gocrTimeout = 300 * time.Second

// gocrRun is one gocr command's outcome.
type gocrRun struct {
	wall      time.Duration
	maxRSSKiB int64
	output    string
}

// runGocr runs gocr with its output in a file, not a pipe: a restored
// process that took over gocr's stdio would otherwise hold the pipe open and
// keep the wait from returning.
func (b *bench) runGocr(args ...string) (*gocrRun, error) {
	out, err := os.CreateTemp(b.work, "gocr-out-")
	if err != nil {
		return nil, fmt.Errorf("gocr output file: %w", err)
	}
	defer os.Remove(out.Name())
	defer out.Close()
	ctx, cancel := context.WithTimeout(context.Background(), gocrTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, b.gocr, args...)
	cmd.Stdout, cmd.Stderr = out, out
	start := time.Now()
	runErr := cmd.Run()
	r := &gocrRun{wall: time.Since(start)}
	if cmd.ProcessState != nil {
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			r.maxRSSKiB = ru.Maxrss // KiB on Linux, getrusage(2)
		}
	}
	text, _ := os.ReadFile(out.Name())
	r.output = strings.TrimSpace(string(text))
	if runErr != nil {
		return r, fmt.Errorf("gocr %s: %w: %s", strings.Join(args, " "), runErr, r.output)
	}
	return r, nil
}

// dump dumps pid into dir (the dump kills it) and reaps it, so that its PID
// is free for the restore.
func (b *bench) dump(pid int, dir string) (*gocrRun, error) {
	args := []string{"dump", "-t", strconv.Itoa(pid), "-D", dir}
	if b.o.pageTransfer != "" {
		args = append(args, "--page-transfer", b.o.pageTransfer)
	}
	if b.o.pageStreams != 0 {
		args = append(args, "--page-streams", strconv.Itoa(b.o.pageStreams))
	}
	r, err := b.runGocr(args...)
	if err != nil {
		return r, err
	}
	var ws unix.WaitStatus
	if _, err := unix.Wait4(pid, &ws, 0, nil); err != nil {
		return r, fmt.Errorf("reap dumped process %d: %w", pid, err)
	}
	return r, nil
}

// restore restores from dir with -d and checks that pid runs again, as
// this process's child (gocr restore exited, so the restored process was
// reparented to this subreaper).
func (b *bench) restore(pid int, dir string) (*gocrRun, error) {
	r, err := b.runGocr("restore", "-D", dir, "-d")
	if err != nil {
		return r, err
	}
	if ppid, err := parentOf(pid); err != nil || ppid != os.Getpid() {
		return r, fmt.Errorf("restored process %d is not running as this bench's child (ppid %d, %v)", pid, ppid, err)
	}
	return r, nil
}

// readStats reads the figures gocr's dump measured itself.
func readStats(dir string) (*dump.Stats, error) {
	p := filepath.Join(dir, dump.StatsFile)
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("read dump stats: %w", err)
	}
	var s dump.Stats
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("parse %s: %w", p, err)
	}
	return &s, nil
}

// imageFiles lists the image files gocr wrote (not its stats) and their
// total size.
func imageFiles(dir string) ([]string, int64, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, 0, fmt.Errorf("list images: %w", err)
	}
	var files []string
	var total int64
	for _, e := range entries {
		if !e.Type().IsRegular() || e.Name() == dump.StatsFile {
			continue
		}
		info, err := e.Info()
		if err != nil {
			return nil, 0, fmt.Errorf("stat image %s: %w", e.Name(), err)
		}
		files = append(files, filepath.Join(dir, e.Name()))
		total += info.Size()
	}
	return files, total, nil
}
