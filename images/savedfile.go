package images

import (
	"fmt"
	"os"
)

// savedFileName is file-ID.img, a mapped file's contents saved by
// gocr dump --save (gocrpb.SavedFile).
func savedFileName(id uint64) string { return fmt.Sprintf("file-%d.img", id) }

// CreateSavedFile creates file-ID.img in the pages image format (data at
// the file's own offsets, holes kept as holes); FinishPages completes it.
func (d *Dir) CreateSavedFile(id uint64) (*os.File, error) {
	f, err := d.createData(savedFileName(id), &dataHeader{kind: kindSavedFile, subject: id})
	if err != nil {
		return nil, fmt.Errorf("create saved file image %d: %w", id, err)
	}
	return f, nil
}

// OpenSavedFile opens file-ID.img like OpenPages.
func (d *Dir) OpenSavedFile(id uint64) (*Data, error) {
	img, err := d.openData(savedFileName(id), &dataHeader{kind: kindSavedFile, subject: id})
	if err != nil {
		return nil, fmt.Errorf("open saved file image %d: %w", id, err)
	}
	return img, nil
}
