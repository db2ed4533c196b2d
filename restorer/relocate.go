//go:build linux

package restorer

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"github.com/gocr/gocr/gocrpb"
)

// relocation is one --relocate OLD=NEW (BLCR's cr_restart --relocate):
// a path under OLD is looked up under NEW instead.
type relocation struct{ old, new string }

// relocations are a restore's --relocate rules, the longest OLD first, so
// the longest matching prefix wins.
type relocations []relocation

// parseRelocations reads OLD=NEW specs: both absolute paths (cleaned), each
// OLD given once.
func parseRelocations(specs []string) (relocations, error) {
	var rs relocations
	seen := map[string]bool{}
	for _, spec := range specs {
		old, new, ok := strings.Cut(spec, "=")
		if !ok || !filepath.IsAbs(old) || !filepath.IsAbs(new) {
			return nil, fmt.Errorf("invalid --relocate %q: use OLD=NEW, two absolute paths", spec)
		}
		old, new = filepath.Clean(old), filepath.Clean(new)
		if seen[old] {
			return nil, fmt.Errorf("invalid --relocate %q: %s is relocated twice", spec, old)
		}
		seen[old] = true
		rs = append(rs, relocation{old, new})
	}
	sort.SliceStable(rs, func(i, j int) bool { return len(rs[i].old) > len(rs[j].old) })
	return rs, nil
}

// path is p under the rule with the longest OLD that is p itself or one
// of its parent directories (whole components: /a matches /a and /a/b,
// not /ab), or p as it is.
func (rs relocations) path(p string) string {
	for _, r := range rs {
		if p == r.old {
			return r.new
		}
		prefix := r.old
		if prefix != "/" {
			prefix += "/"
		}
		rest, ok := strings.CutPrefix(p, prefix)
		if !ok {
			continue
		}
		if r.new == "/" {
			return "/" + rest
		}
		return r.new + "/" + rest
	}
	return p
}

// apply relocates, in one process's images, every path a restore opens:
// its cwd and root, its executable, its mapped files (saved ones too) and
// its open files. It runs before anything reads them, so every check and
// every open (by gocr, or by the restorer: mappings, FixupOpen) sees the
// relocated path.
func (rs relocations) apply(task *gocrpb.Task, mm *gocrpb.Mm, table *gocrpb.Files) {
	if len(rs) == 0 {
		return
	}
	task.Cwd = rs.path(task.Cwd)
	task.Root = rs.path(task.Root)
	done := map[*gocrpb.FileRef]bool{} // each once, should images share one
	ref := func(f *gocrpb.FileRef) {
		// Only absolute paths: "pipe:[N]" and the like name no file.
		if f != nil && !done[f] && strings.HasPrefix(f.Path, "/") {
			f.Path = rs.path(f.Path)
			done[f] = true
		}
	}
	if mm != nil {
		ref(mm.Exe)
		for _, v := range mm.Vmas {
			ref(v.File)
		}
		for _, sf := range mm.SavedFiles {
			ref(sf.File)
		}
	}
	if table != nil {
		for _, fd := range table.Fds {
			ref(fd.File)
		}
		for _, g := range table.GhostFiles {
			ref(g.File)
		}
	}
}
