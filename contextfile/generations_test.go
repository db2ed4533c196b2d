package contextfile

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestGenerations: generations are listed by number, whatever the width
// of it; a temporary file or anything else in the directory is not one;
// pruning keeps the newest; stale temporaries are removed.
func TestGenerations(t *testing.T) {
	dir := t.TempDir()
	if n, err := NextGeneration(dir); err != nil || n != 1 {
		t.Fatalf("NextGeneration of an empty directory = %d, %v; want 1", n, err)
	}
	for _, name := range []string{"gen-000002.ctx", "gen-000010.ctx", "gen-1000000.ctx", "gen-000001.ctx",
		".gen-000011.ctx.gocr-tmp-0a1b2c", "gen-12.ctx", "notes.txt"} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	numbers := func() []int {
		gens, err := Generations(dir)
		if err != nil {
			t.Fatal(err)
		}
		var ns []int
		for _, g := range gens {
			if g.Path != GenerationPath(dir, g.N) {
				t.Errorf("generation %d at %s, want %s", g.N, g.Path, GenerationPath(dir, g.N))
			}
			ns = append(ns, g.N)
		}
		return ns
	}
	if diff := cmp.Diff([]int{1, 2, 10, 1000000}, numbers()); diff != "" {
		t.Errorf("Generations (-want +got):\n%s", diff)
	}
	if n, err := NextGeneration(dir); err != nil || n != 1000001 {
		t.Errorf("NextGeneration = %d, %v; want 1000001", n, err)
	}
	if err := PruneGenerations(dir, 2); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]int{10, 1000000}, numbers()); diff != "" {
		t.Errorf("after PruneGenerations(2) (-want +got):\n%s", diff)
	}
	if err := PruneGenerations(dir, 0); err == nil {
		t.Error("PruneGenerations(0) succeeded, want an error: the newest is always kept")
	}
	if err := RemoveStaleTemporaries(dir); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{".gen-000011.ctx.gocr-tmp-0a1b2c": false, "notes.txt": true, "gen-12.ctx": true} {
		if _, err := os.Stat(filepath.Join(dir, name)); (err == nil) != want {
			t.Errorf("%s present: %v, want %v", name, err == nil, want)
		}
	}
}
