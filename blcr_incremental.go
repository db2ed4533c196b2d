//go:build linux

package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/gocr/gocr/contextfile"
	"github.com/gocr/gocr/images"
)

// Incremental generations (--incremental): each generation after the
// first is an incremental dump (gocr dump --prev, dump/incremental.go)
// whose parent is the generation before it. Two files in the directory
// of the generations make it work:
//
//   - .gocr-prev/gen-NNNNNN holds the inventory and page maps of the
//     newest generation, all an incremental dump reads of its parent
//     (the context file itself is not read again); it is replaced once
//     the next generation is complete.
//   - .gocr-chain lists each generation's parent ("N P", P 0 for a full
//     one), written before the generation's context takes its name, so
//     that --keep never removes a generation a kept one takes pages from:
//     the chain of every kept generation is kept whole, back to its full
//     generation (no generation is merged into another).
//
// Each incremental generation names its parent as ../gen-NNNNNN.ctx: a
// restart extracts every generation to tmp/gen-NNNNNN.ctx, so the chain
// resolves there (extractParents).

const (
	prevImagesDir = ".gocr-prev"
	chainIndex    = ".gocr-chain"
)

// maxChainLength is how many generations a chain holds at most, its full
// one included, unless --keep asks for more: the generation after is
// full again, so that the generations kept for the newest stay bounded
// (nothing is merged).
const maxChainLength = 10

// chainLength is how many generations n's chain holds, n and its full
// one included.
func chainLength(parents map[int]int, n int) int {
	length := 0
	for seen := map[int]bool{}; n != 0 && !seen[n]; n = parents[n] {
		seen[n] = true
		length++
	}
	return length
}

var generationDir = regexp.MustCompile(`^gen-([0-9]{6,})$`)

// prevImages is the directory holding the newest generation's inventory
// and page maps, and its number; "" if none, if that generation is gone,
// or if its chain is as long as chains may be (maxChainLength).
func (g *generations) prevImages() (string, int) {
	ents, err := os.ReadDir(filepath.Join(g.dir, prevImagesDir))
	if err != nil || len(ents) != 1 {
		return "", 0
	}
	m := generationDir.FindStringSubmatch(ents[0].Name())
	if m == nil {
		return "", 0
	}
	n, _ := strconv.Atoi(m[1])
	if _, err := os.Stat(contextfile.GenerationPath(g.dir, n)); err != nil {
		return "", 0
	}
	if chainLength(g.parents(), n) >= max(maxChainLength, g.keep) {
		return "", 0
	}
	return filepath.Join(g.dir, prevImagesDir, ents[0].Name()), n
}

// keepPrevImages keeps the inventory and page maps of generation n's
// dump, in dumpDir, for the next generation.
func (g *generations) keepPrevImages(dumpDir string, n int) error {
	tmp := filepath.Join(g.dir, prevImagesDir+".new")
	os.RemoveAll(tmp)
	dst := filepath.Join(tmp, fmt.Sprintf("gen-%06d", n))
	if err := os.MkdirAll(dst, 0o700); err != nil {
		return err
	}
	names, err := filepath.Glob(filepath.Join(dumpDir, "pagemap-*.img"))
	if err != nil {
		return err
	}
	for _, src := range append(names, filepath.Join(dumpDir, "inventory.img")) {
		if err := copyFile(src, filepath.Join(dst, filepath.Base(src))); err != nil {
			os.RemoveAll(tmp)
			return err
		}
	}
	old := filepath.Join(g.dir, prevImagesDir)
	if err := os.RemoveAll(old); err != nil {
		return err
	}
	return os.Rename(tmp, old)
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// recordParent notes that generation n takes pages from parent (0: none).
func (g *generations) recordParent(n, parent int) error {
	f, err := os.OpenFile(filepath.Join(g.dir, chainIndex), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(f, "%d %d\n", n, parent); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// parents reads the chain index: generation -> parent.
func (g *generations) parents() map[int]int {
	out := map[int]int{}
	f, err := os.Open(filepath.Join(g.dir, chainIndex))
	if err != nil {
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		a, b, ok := strings.Cut(sc.Text(), " ")
		n, err1 := strconv.Atoi(a)
		p, err2 := strconv.Atoi(b)
		if ok && err1 == nil && err2 == nil {
			out[n] = p
		}
	}
	return out
}

// prune removes the generations beyond g.keep, but for those a kept one
// takes pages from, directly or further up its chain.
func (g *generations) prune() error {
	if !g.incremental {
		return contextfile.PruneGenerations(g.dir, g.keep)
	}
	gens, err := contextfile.Generations(g.dir)
	if err != nil {
		return err
	}
	parents := g.parents()
	keep := map[int]bool{}
	for i := max(0, len(gens)-g.keep); i < len(gens); i++ {
		for n := gens[i].N; n != 0 && !keep[n]; n = parents[n] {
			keep[n] = true
		}
	}
	var errs []error
	for _, gen := range gens {
		if !keep[gen.N] {
			if err := os.Remove(gen.Path); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// removeIncremental removes the files of incremental generations, with
// the generations themselves (removeAll).
func (g *generations) removeIncremental() {
	os.RemoveAll(filepath.Join(g.dir, prevImagesDir))
	os.RemoveAll(filepath.Join(g.dir, prevImagesDir+".new"))
	os.Remove(filepath.Join(g.dir, chainIndex))
}

// parentGeneration is the generation an extracted one takes pages from
// (its inventory's parent_dir, ../gen-NNNNNN.ctx), or "".
var parentGeneration = regexp.MustCompile(`^\.\./(gen-[0-9]{6,}\.ctx)$`)

// withParents makes the generation ex, opened from path, find the
// generations of s.dir it takes pages from, up its chain. Read in place,
// it finds them beside it (its inventory's parent_dir, ../gen-NNNNNN.ctx,
// resolved from path; images.Dir.OpenParent) if the next one is there.
// Extracted (a compressed one), it is extracted again with them into one
// new private directory, each generation into a directory named as its
// file, where each parent_dir finds the next. On failure ex is closed.
func (s contextSource) withParents(ex *extracted, path string) (*extracted, error) {
	ref := ex.images.Inventory().GetParentDir()
	m := parentGeneration.FindStringSubmatch(ref)
	if m == nil || s.dir == "" {
		ex.close()
		return nil, fmt.Errorf("%s takes pages from %s, which is not a generation beside it", filepath.Base(path), ref)
	}
	if ex.tmp == "" {
		if _, err := os.Stat(filepath.Join(s.dir, m[1])); err != nil {
			ex.close()
			return nil, fmt.Errorf("%s takes pages from generation %s: %w", filepath.Base(path), m[1], err)
		}
		return ex, nil
	}
	ex.close()
	tmp, err := os.MkdirTemp("", "gocr-restart-")
	if err != nil {
		return nil, fmt.Errorf("directory for the context: %w", err)
	}
	chain := &extracted{name: path, tmp: tmp}
	fail := func(err error) (*extracted, error) {
		chain.close()
		return nil, err
	}
	name := path
	for {
		dir := filepath.Join(tmp, filepath.Base(name))
		f, err := openContext(name, s.trust)
		if err != nil {
			return fail(fmt.Errorf("%s takes pages from generation %s: %w", filepath.Base(path), filepath.Base(name), err))
		}
		n, ref, err := extractGeneration(f, dir, s.progress)
		f.Close()
		if err != nil {
			return fail(err)
		}
		chain.bytes += n
		if ref == "" {
			break
		}
		m := parentGeneration.FindStringSubmatch(ref)
		if m == nil {
			return fail(fmt.Errorf("%s takes pages from %s, which is not a generation beside it", filepath.Base(name), ref))
		}
		if _, err := os.Stat(filepath.Join(tmp, m[1])); err == nil {
			break // extracted already, with its own parents
		}
		name = filepath.Join(s.dir, m[1])
	}
	// Extracted by gocr, as the user running it, from contexts checked
	// as images are (openContext).
	d, err := images.OpenWith(filepath.Join(tmp, filepath.Base(path)), images.OpenOptions{TrustImages: true})
	if err != nil {
		return fail(err)
	}
	chain.images = d
	return chain, nil
}

// extractGeneration extracts the context f into the new directory dir
// and returns the bytes it read and the parent_dir its inventory names.
func extractGeneration(f *os.File, dir string, prog *progress) (int64, string, error) {
	if err := os.Mkdir(dir, 0o700); err != nil {
		return 0, "", fmt.Errorf("directory for the context: %w", err)
	}
	var total int64
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
		total = st.Size()
	}
	read := new(atomic.Int64)
	prog.phase("reading "+filepath.Base(f.Name()), read.Load, total)
	if _, err := contextfile.Extract(contextfile.CountingReader{R: f, N: read}, dir); err != nil {
		return 0, "", fmt.Errorf("context %s: %w", f.Name(), err)
	}
	d, err := images.OpenWith(dir, images.OpenOptions{TrustImages: true})
	if err != nil {
		return 0, "", err
	}
	defer d.Close()
	return read.Load(), d.Inventory().GetParentDir(), nil
}
