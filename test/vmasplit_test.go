//go:build linux

package test

import "testing"

func init() {
	cTargets["vmasplit"] = struct {
		src   string
		flags []string
	}{"vmasplit.c", nil}
}

// TestAdjacentAnonVMAs: two neighbouring private anonymous mappings the
// kernel keeps apart only because each has an anon_vma of its own
// (vmasplit.c) come back as the same two VMAs, not merged into one (the
// restorer gives each its own anon_vma before they meet), with their
// pages. Python's allocator makes such pairs by chance: TestRedisClientsInJob
// found it.
func TestAdjacentAnonVMAs(t *testing.T) {
	needsRoot(t)
	tg := startTarget(t, "vmasplit")
	pid := checkpointRestore(t, tg, cycleOpts{})
	checkResult(t, tg, pid)
}
