package images

import (
	"fmt"
	"os"
)

// VerifyData verifies every memfd, saved file and System V segment image
// of a dump directory against its checksums, as opening it does. A
// restore calls it first, with the rest of the images, so that a damaged
// image is what it reports, before any question of the machine (a PID in
// use) is asked; opening one later verifies it again (from the page
// cache: these are seldom large), as each open does. Page images are
// verified as the restore plans each process, or by the restorer as it
// reads them in (OpenPagesUnverified); a context read in place was
// verified whole when opened.
func (d *Dir) VerifyData() error {
	if d.ctx != nil {
		return nil
	}
	ents, err := os.ReadDir(d.current())
	if err != nil {
		return fmt.Errorf("open dump dir: %w", err)
	}
	opens := []struct {
		format string
		open   func(uint64) (*Data, error)
	}{
		{"memfd-%d.img", d.OpenMemfd},
		{"file-%d.img", d.OpenSavedFile},
		{"shm-%d.img", d.OpenSysvShm},
	}
	for _, e := range ents {
		for _, o := range opens {
			var id uint64
			if n, _ := fmt.Sscanf(e.Name(), o.format, &id); n != 1 || fmt.Sprintf(o.format, id) != e.Name() {
				continue
			}
			img, err := o.open(id)
			if err != nil {
				return err
			}
			img.Close()
		}
	}
	return nil
}
