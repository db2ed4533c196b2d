package images

import (
	"fmt"
	"os"
)

// sysvShmName is shm-ID.img, the contents of the System V shared memory
// segment ID (gocrpb.SysvShm), in the page image format.
func sysvShmName(id uint64) string { return fmt.Sprintf("shm-%d.img", id) }

// CreateSysvShm creates shm-ID.img like CreateMemfd (data at the
// segment's own offsets, holes kept as holes); FinishPages completes it.
func (d *Dir) CreateSysvShm(id uint64) (*os.File, error) {
	f, err := d.createData(sysvShmName(id), &dataHeader{kind: kindSysvShm, subject: id})
	if err != nil {
		return nil, fmt.Errorf("create System V segment image %d: %w", id, err)
	}
	return f, nil
}

// OpenSysvShm opens shm-ID.img like OpenPages.
func (d *Dir) OpenSysvShm(id uint64) (*Data, error) {
	img, err := d.openData(sysvShmName(id), &dataHeader{kind: kindSysvShm, subject: id})
	if err != nil {
		return nil, fmt.Errorf("open System V segment image %d: %w", id, err)
	}
	return img, nil
}
