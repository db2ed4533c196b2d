//go:build linux

package dump

import (
	"fmt"
	"slices"

	"github.com/gocr/gocr/gocrpb"
)

// A mapping's flags as smaps shows them ("VmFlags:", fs/proc/task_mmu.c
// show_smap_vma_flags). Each is restored, follows from what is restored,
// or makes the dump refuse the mapping: a flag gocr does not know is
// refused too, so a newer kernel's flag is never dropped unseen.
var restorableVmFlags = map[string]string{
	// Follow from the protection, the kind of mapping and how its file
	// was opened, all restored.
	"rd": "readable", "wr": "writeable", "ex": "executable", "sh": "shared",
	"mr": "may read", "mw": "may write", "me": "may execute", "ms": "may share",
	// Restored by how the mapping is made (restorer/plan.go).
	"gd": "stack grows down", "ac": "accounted", "nr": "swap space not reserved",
	// Restored with madvise or mlock (restorer/c/restorer.c).
	"hg": "huge page advise", "nh": "no-huge page advise", "dc": "do not copy on fork",
	"dd": "do not include in core dump", "wf": "wipe on fork", "lo": "locked",
	"lf": "locked on fault", "sr": "sequential read advise", "rr": "random read advise",
	"mg": "mergeable advise",
	// Soft-dirty tracking state, not restored: a restored mapping is
	// new, and the kernel marks a new mapping soft-dirty (all its pages
	// report written; Documentation/admin-guide/mm/soft-dirty.rst), so
	// a tracker sees more written pages than it would have, never fewer.
	"sd": "soft-dirty",
}

// refusedVmFlags name the flags gocr knows it cannot restore, to say why.
var refusedVmFlags = map[string]string{
	"de": "do not expand on remap (set by a driver)", "ar": "architecture-specific (x86: PAT)",
	"sf": "synchronous page faults (DAX)", "mm": "mixed map (a device)",
	"um": "userfaultfd missing-page tracking", "uw": "userfaultfd write-protect tracking",
	"ui": "userfaultfd minor-fault tracking", "ss": "shadow stack", "sl": "sealed (mseal)",
	"dw": "disabled write", "bt": "branch target identification", "mt": "memory tagging",
}

// checkVmFlags refuses a mapping with a flag the restore would drop.
// The vDSO area's mappings are the kernel's own, moved as they are.
func checkVmFlags(v *gocrpb.Vma) error {
	if v.Kind >= gocrpb.VmaKind_VMA_VDSO && v.Kind <= gocrpb.VmaKind_VMA_VSYSCALL {
		return nil
	}
	for _, f := range v.VmFlags {
		if _, ok := restorableVmFlags[f]; ok {
			continue
		}
		why := refusedVmFlags[f]
		if why == "" {
			why = "unknown to gocr"
		}
		return fmt.Errorf("mapping %s has VmFlag %q (%s), which gocr cannot restore", vmaName(v), f, why)
	}
	if slices.Contains(v.VmFlags, "lf") && !slices.Contains(v.VmFlags, "lo") {
		return fmt.Errorf("mapping %s is locked on fault but not locked", vmaName(v))
	}
	return nil
}

// vmaName names a mapping for a message: its range, and its path if any.
func vmaName(v *gocrpb.Vma) string {
	if v.Name == "" {
		return fmt.Sprintf("%#x-%#x", v.Start, v.End)
	}
	return fmt.Sprintf("%#x-%#x %s", v.Start, v.End, v.Name)
}
