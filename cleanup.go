//go:build linux

package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/gocr/gocr/files"
	"github.com/gocr/gocr/gocrpb"
	"github.com/gocr/gocr/images"
)

// cleanupCommand removes what a gocr that could not finish left behind.
var cleanupCommand = &cli.Command{
	Name:      "cleanup",
	Usage:     "remove what a gocr killed mid-dump left behind",
	UsageText: "gocr cleanup [--abandon DIR]... [DIR...]",
	Description: "Removes the nftables tables of dumps that did not complete (gocr_PID_START, their\n" +
		"gocr and its TCP watchdog gone): they block a job's connections to peers outside\n" +
		"(--tcp-established). Tables kept for a restore (gocr_keep_*) stay: a complete dump\n" +
		"names them, and its connections last only while they are there; --abandon DIR says\n" +
		"the dump in DIR will not be restored, and removes the tables it names (its peers\n" +
		"outside are then reset). With DIR, also removes the half-written dumps beside it\n" +
		"(.DIR.gocr-tmp-*) that no process has open.",
	Flags: []cli.Flag{
		&cli.StringSliceFlag{Name: "abandon", Usage: "the dump in `DIR` will not be restored: remove the nftables tables kept for it"},
	},
	Action: func(c *cli.Context) error {
		return runCleanup(os.Stdout, c.StringSlice("abandon"), c.Args().Slice())
	},
}

// runCleanup removes the tables of dumps that did not complete, those kept
// for the dumps in abandon, and the temporary directories beside dirs,
// saying what it removed and what it kept on w.
func runCleanup(w io.Writer, abandon, dirs []string) error {
	var errs []error
	// The dumps named first: a dump that cannot be read removes nothing.
	drop := map[string]bool{}
	for _, dir := range abandon {
		names, err := keptTablesOf(dir)
		if err != nil {
			return err
		}
		for _, n := range names {
			drop[n] = true
		}
	}
	removed, kept, err := files.CleanNftTables()
	errs = append(errs, err)
	for _, n := range removed {
		fmt.Fprintf(w, "removed nftables table %s (a dump that did not complete)\n", n)
	}
	for _, n := range kept {
		if !drop[n] {
			fmt.Fprintf(w, "kept nftables table %s: a dump pending restore names it (gocr cleanup --abandon DIR removes it)\n", n)
			continue
		}
		if err := files.RemoveKeptNftTable(n); err != nil {
			errs = append(errs, err)
			continue
		}
		fmt.Fprintf(w, "removed nftables table %s (its dump abandoned)\n", n)
	}
	for _, dir := range dirs {
		errs = append(errs, removeTemporaryDumps(w, dir))
	}
	return errors.Join(errs...)
}

// keptTablesOf reads the dump in dir and returns the tables it keeps.
func keptTablesOf(dir string) ([]string, error) {
	d, err := images.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("--abandon %s: %w", dir, err)
	}
	defer d.Close()
	var tables []*gocrpb.Files
	for _, pid := range d.Inventory().GetPids() {
		task, err := d.ReadTask(int(pid))
		if err != nil {
			return nil, fmt.Errorf("--abandon %s: %w", dir, err)
		}
		if task.GetZombie() {
			continue
		}
		f, err := d.ReadFiles(int(pid))
		if err != nil {
			return nil, fmt.Errorf("--abandon %s: %w", dir, err)
		}
		tables = append(tables, f)
	}
	return files.KeptNftTables(tables), nil
}

// tmpMarker is in the name of a dump being written beside its directory
// (images.Create): .DIR.gocr-tmp-XXXXXXXXXXXX.
const tmpMarker = ".gocr-tmp-"

// removeTemporaryDumps removes the directories a dump into dir was
// writing, or the dump it replaced was left in, when no process holds
// them open (a gocr writing holds its directory open, images.Create) and
// they hold only files.
func removeTemporaryDumps(w io.Writer, dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	matches, err := filepath.Glob(filepath.Join(filepath.Dir(abs), "."+globEscape(filepath.Base(abs))+tmpMarker+"*"))
	if err != nil {
		return err
	}
	open := openDirectories()
	var errs []error
	for _, tmp := range matches {
		if pid, ok := open[tmp]; ok {
			fmt.Fprintf(w, "kept %s: pid %d has it open (a dump being written)\n", tmp, pid)
			continue
		}
		if err := removeFlatDir(tmp); err != nil {
			errs = append(errs, err)
			continue
		}
		fmt.Fprintf(w, "removed %s (a dump that did not complete)\n", tmp)
	}
	return errors.Join(errs...)
}

// globEscape escapes the characters filepath.Match gives a meaning.
func globEscape(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `*`, `\*`, `?`, `\?`, `[`, `\[`)
	return r.Replace(s)
}

// openDirectories maps every directory some process has open to one such
// process, from /proc/PID/fd (an open directory's link names its path
// now, man 5 proc).
func openDirectories() map[string]int {
	out := map[string]int{}
	fds, _ := filepath.Glob("/proc/[0-9]*/fd/*")
	for _, fd := range fds {
		target, err := os.Readlink(fd)
		if err != nil || !strings.Contains(target, tmpMarker) {
			continue
		}
		var pid int
		fmt.Sscanf(strings.TrimPrefix(fd, "/proc/"), "%d", &pid)
		out[target] = pid
	}
	return out
}

// removeFlatDir removes dir and the regular files in it; anything else in
// it (a directory, a link) is not a dump's, and leaves dir as it is.
func removeFlatDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			return fmt.Errorf("%s: %s is not a dump's file: left as it is", dir, e.Name())
		}
	}
	for _, e := range entries {
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return os.Remove(dir)
}
