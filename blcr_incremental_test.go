//go:build linux

package main

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/gocr/gocr/contextfile"
)

// generationsWith makes a directory of empty generations 1..n whose
// parents are parents (generation -> parent, 0: full).
func generationsWith(t *testing.T, n int, parents map[int]int, keep int) *generations {
	t.Helper()
	g := &generations{dir: t.TempDir(), keep: keep, incremental: true}
	for i := 1; i <= n; i++ {
		if err := os.WriteFile(contextfile.GenerationPath(g.dir, i), nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := g.recordParent(i, parents[i]); err != nil {
			t.Fatal(err)
		}
	}
	return g
}

func remaining(t *testing.T, g *generations) []int {
	t.Helper()
	gens, err := contextfile.Generations(g.dir)
	if err != nil {
		t.Fatal(err)
	}
	var ns []int
	for _, gen := range gens {
		ns = append(ns, gen.N)
	}
	return ns
}

// TestPruneKeepsChains: --keep keeps the newest generations and every
// one they take pages from, back to their full one, and no other.
func TestPruneKeepsChains(t *testing.T) {
	// 1 full, 2-3 on 1, 4 full, 5-6 on 4.
	g := generationsWith(t, 6, map[int]int{2: 1, 3: 2, 5: 4, 6: 5}, 2)
	if err := g.prune(); err != nil {
		t.Fatal(err)
	}
	if got := remaining(t, g); !slices.Equal(got, []int{4, 5, 6}) {
		t.Errorf("kept %v, want 4 5 6 (5 and 6, and the full 4 they take pages from)", got)
	}
	g = generationsWith(t, 4, map[int]int{2: 1, 3: 2, 4: 3}, 1)
	if err := g.prune(); err != nil {
		t.Fatal(err)
	}
	if got := remaining(t, g); !slices.Equal(got, []int{1, 2, 3, 4}) {
		t.Errorf("kept %v, want the whole chain of 4", got)
	}
}

// TestChainLengthBounded: once the newest generation's chain is
// maxChainLength long, the next generation is given no parent.
func TestChainLengthBounded(t *testing.T) {
	parents := map[int]int{}
	for i := 2; i <= maxChainLength; i++ {
		parents[i] = i - 1
	}
	g := generationsWith(t, maxChainLength, parents, 2)
	dir := filepath.Join(g.dir, prevImagesDir, "gen-000010")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if prev, _ := g.prevImages(); prev != "" {
		t.Errorf("a chain of %d generations is continued (%s)", maxChainLength, prev)
	}
	delete(parents, maxChainLength) // generation 10 full: a chain of 1
	g = generationsWith(t, maxChainLength, parents, 2)
	if err := os.MkdirAll(filepath.Join(g.dir, prevImagesDir, "gen-000010"), 0o700); err != nil {
		t.Fatal(err)
	}
	if prev, n := g.prevImages(); prev == "" || n != 10 {
		t.Errorf("the parent of a short chain: %q, %d; want generation 10", prev, n)
	}
}
