//go:build linux

package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/gocr/gocr/callbacks"
	"github.com/gocr/gocr/contextfile"
	"github.com/gocr/gocr/dump"
	"github.com/gocr/gocr/restorer"
)

// Options shared by more than one of BLCR's tools: what a checkpoint saves
// (cr_checkpoint, cr_run), how a restart finds its files and PIDs
// (cr_restart, cr_run), and where the time went (--stats).

// saveKinds are BLCR's --save-* options, each a value of dump.ParseSave.
var saveKinds = []string{"exe", "private", "shared", "all", "none"}

func saveFlags() []cli.Flag {
	usage := map[string]string{
		"exe":     "save the executable's contents in the context, to restart where it is missing or changed",
		"private": "save the contents of every privately mapped file (the executable and libraries)",
		"shared":  "save the contents of files mapped shared that the job cannot write through the mapping",
		"all":     "--save-exe, --save-private and --save-shared",
		"none":    "save no mapped file's contents (the default), dropping every --save-* before it",
	}
	var flags []cli.Flag
	for _, k := range saveKinds {
		flags = append(flags, &cli.BoolFlag{Name: "save-" + k, Usage: usage[k]})
	}
	return flags
}

func callbackTimeoutFlag() cli.Flag {
	return &cli.DurationFlag{Name: "callback-timeout", Value: callbacks.DefaultTimeout,
		Usage: "wait at most `TIME` for the checkpoint callbacks of processes using libgocr to be ready"}
}

// ghostLimitFlag is gocr dump's and cr_checkpoint's --ghost-limit.
func ghostLimitFlag() cli.Flag {
	return &cli.Int64Flag{Name: "ghost-limit", Value: dump.DefaultGhostLimit, Usage: "save deleted files the job has open or mapped up to `BYTES` each (restored as deleted files again; 0: the default); refuse a larger one"}
}

func statsFlag(what string) cli.Flag {
	return &cli.StringFlag{Name: "stats", Usage: "write where the time of the " + what + " went to `FILE`, as JSON"}
}

// compressValue is --compress[=zstd|zstd-fastest|lz4]. Alone it means
// zstd: the flag package sets a value that says IsBoolFlag to "true"
// when no "=value" follows, and never takes the next argument for it.
type compressValue struct{ c contextfile.Compression }

func (v *compressValue) Set(s string) error {
	switch s {
	case "true":
		v.c = contextfile.Zstd
		return nil
	case "false":
		v.c = contextfile.NoCompression
		return nil
	}
	c, err := contextfile.ParseCompression(s)
	if err != nil {
		return err
	}
	v.c = c
	return nil
}

func (v *compressValue) String() string   { return string(v.c) }
func (v *compressValue) IsBoolFlag() bool { return true }

func compressFlag(what string) cli.Flag {
	return &cli.GenericFlag{Name: "compress", Value: &compressValue{}, Usage: "compress " + what +
		" as it is written `[=zstd|zstd-fastest|lz4]` (alone: zstd at its default level); " +
		"pays on slow disks and networks, costs time on a fast disk (docs/BLCR.md)"}
}

// compression is what --compress asks for.
func compression(c *cli.Context) contextfile.Compression {
	if v, ok := c.Generic("compress").(*compressValue); ok {
		return v.c
	}
	return contextfile.NoCompression
}

func relocateFlag() cli.Flag {
	return &cli.StringSliceFlag{Name: "relocate", Usage: "look up files, mappings and the cwd under OLD under NEW instead (`OLD=NEW`, repeatable; the longest OLD wins)"}
}

func pidnsFlag() cli.Flag {
	return &cli.StringFlag{Name: "pidns", Value: restorer.PidnsAuto, Usage: "where the processes get their PIDs: `auto` (here if every PID is free; " +
		"if one is taken by another program, a new PID namespace where each has its own PID), always (a new PID namespace), never (here, or fail)"}
}

// savedFiles reads the --save-* options in the order they were given:
// --save-none drops what came before it, as in BLCR. The flag parser
// keeps no order between options, so it is read from argv, the raw
// command line; flags are the command's, to know which options take a
// value (the next argument, unless given as --opt=value).
func savedFiles(argv []string, flags []cli.Flag) (dump.SaveFiles, error) {
	var values []string
	for _, name := range orderedBools(argv, flags) {
		if k, ok := strings.CutPrefix(name, "save-"); ok {
			values = append(values, k)
		}
	}
	return dump.ParseSave(values)
}

// orderedBools lists the boolean options set in argv, in their order. It
// reads options up to "--" or the first argument that is not one, as the
// flag parser does; an option of flags that takes a value skips it.
func orderedBools(argv []string, flags []cli.Flag) []string {
	takesValue := map[string]bool{}
	isBool := map[string]string{} // any of its names: its main name
	for _, f := range flags {
		names := f.Names()
		_, boolean := f.(*cli.BoolFlag)
		if g, ok := f.(*cli.GenericFlag); ok {
			if b, ok := g.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
				continue // its value, if any, is in "--opt=value"
			}
		}
		for _, n := range names {
			if boolean {
				isBool[n] = names[0]
			} else {
				takesValue[n] = true
			}
		}
	}
	var out []string
	for i := 0; i < len(argv); i++ {
		a := argv[i]
		if a == "--" || !strings.HasPrefix(a, "-") || a == "-" {
			break
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if main, ok := isBool[name]; ok {
			if !hasValue || value == "true" || value == "1" {
				out = append(out, main)
			}
			continue
		}
		if takesValue[name] && !hasValue {
			i++
		}
	}
	return out
}

// checkRelocations refuses a --relocate that is not OLD=NEW with two
// absolute paths, as an error of the command line (the restorer, which
// applies them, checks them again).
func checkRelocations(specs []string) error {
	for _, spec := range specs {
		old, new, ok := strings.Cut(spec, "=")
		if !ok || !filepath.IsAbs(old) || !filepath.IsAbs(new) {
			return usagef("invalid --relocate %q: use OLD=NEW, two absolute paths", spec)
		}
	}
	return nil
}

// writeStatsFile writes v as JSON to path, whole or not at all (a
// temporary name renamed over it).
func writeStatsFile(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp := fmt.Sprintf("%s.tmp-%d", path, os.Getpid())
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write --stats file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write --stats file: %w", err)
	}
	return nil
}

// checkpointStats is what --stats writes for a checkpoint: the dump's own
// figures (dump.Stats, also in the context as stats-dump.json) and the
// context file's.
type checkpointStats struct {
	Dump           *dump.Stats `json:"dump"`
	ContextBytes   int64       `json:"context_bytes"`
	ContextWriteNs int64       `json:"context_write_ns"` // writing and syncing the context file
	TotalNs        int64       `json:"total_ns"`
	Generation     int         `json:"generation,omitempty"` // a periodic checkpoint's
	Context        string      `json:"context,omitempty"`
}

// restartStats is what --stats writes for a restart.
type restartStats struct {
	Context      string `json:"context"`
	ContextBytes int64  `json:"context_bytes"`
	ReadNs       int64  `json:"read_ns"`    // reading and checking the context, extracting its images
	RestoreNs    int64  `json:"restore_ns"` // from the images to the processes running on
	TotalNs      int64  `json:"total_ns"`
	Processes    int    `json:"processes"`
	PagesBytes   int64  `json:"pages_bytes"` // page data in the context
	// Skipped are newer generations passed over as damaged.
	Skipped []string `json:"skipped,omitempty"`
}

func ns(d time.Duration) int64 { return d.Nanoseconds() }
