package contextfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
)

// Periodic checkpoints (cr_run --checkpoint-every, gocr checkpoint
// --every) keep their generations in one directory: gen-NNNNNN.ctx, each
// a context file written under a temporary name and renamed once
// complete (WriteFile), numbered from 1 up. A restart takes the newest
// one that reads whole.

// generationName matches a generation's file name; its number has at
// least six digits, more once it passes 999999.
var generationName = regexp.MustCompile(`^gen-([0-9]{6,})\.ctx$`)

// Generation is one context file of a generation directory.
type Generation struct {
	N    int
	Path string
}

// GenerationPath is the path of generation n in dir.
func GenerationPath(dir string, n int) string {
	return filepath.Join(dir, fmt.Sprintf("gen-%06d.ctx", n))
}

// Generations lists the generations in dir, oldest first. A temporary
// file of one being written is not one: it has no such name until it is
// complete.
func Generations(dir string) ([]Generation, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var gens []Generation
	for _, e := range ents {
		m := generationName.FindStringSubmatch(e.Name())
		if m == nil || !e.Type().IsRegular() {
			continue
		}
		n, err := strconv.Atoi(m[1])
		if err != nil {
			continue
		}
		gens = append(gens, Generation{N: n, Path: filepath.Join(dir, e.Name())})
	}
	sort.Slice(gens, func(i, j int) bool { return gens[i].N < gens[j].N })
	return gens, nil
}

// NextGeneration is the number the next generation in dir gets: one above
// the highest there, 1 in an empty directory.
func NextGeneration(dir string) (int, error) {
	gens, err := Generations(dir)
	if err != nil {
		return 0, err
	}
	if len(gens) == 0 {
		return 1, nil
	}
	return gens[len(gens)-1].N + 1, nil
}

// PruneGenerations removes the oldest generations in dir beyond the keep
// newest. It is called only once a new generation is complete and in
// place, so the newest complete one is never removed.
func PruneGenerations(dir string, keep int) error {
	if keep < 1 {
		return fmt.Errorf("keep %d generations: at least 1", keep)
	}
	gens, err := Generations(dir)
	if err != nil {
		return err
	}
	var errs []error
	for len(gens) > keep {
		if err := os.Remove(gens[0].Path); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
		gens = gens[1:]
	}
	if len(errs) == 0 {
		return syncDir(dir)
	}
	return errors.Join(errs...)
}

// RemoveStaleTemporaries removes the temporary files of generations that
// a checkpointer killed while writing left in dir. The caller holds the
// directory (a lock): no other is writing one.
func RemoveStaleTemporaries(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	stale := regexp.MustCompile(`^\.gen-[0-9]{6,}\.ctx\.gocr-tmp-[0-9a-f]+$`)
	for _, e := range ents {
		if stale.MatchString(e.Name()) && e.Type().IsRegular() {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
		}
	}
	return nil
}
