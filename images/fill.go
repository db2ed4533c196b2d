package images

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// ErrContentsDiffer: what a file was filled with is not what the dump
// saved (its SHA-256 differs).
var ErrContentsDiffer = errors.New("does not hold the contents the dump saved (SHA-256 differs)")

// FillFile makes w hold d's data, Size bytes from offset 0, copying only
// its data extents so that holes stay holes (lseek SEEK_DATA/SEEK_HOLE,
// man 2 lseek), and then checks what w holds, read back, against the
// SHA-256 sum the dump recorded: what a job will read is what is checked.
// In a context the image's checksums and other entries follow its data,
// so an extent past Size ends the copy.
func (d *Data) FillFile(w *os.File, sum []byte) error {
	if err := w.Truncate(d.Size); err != nil {
		return err
	}
	fd := int(d.Fd())
	base, end := d.Off, d.Off+d.Size
	for off := base; off < end; {
		data, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) || (err == nil && data >= end) {
			break // the rest is a hole
		} else if err != nil {
			return fmt.Errorf("SEEK_DATA: %w", err)
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil {
			return fmt.Errorf("SEEK_HOLE: %w", err)
		}
		hole = min(hole, end)
		if _, err := io.Copy(io.NewOffsetWriter(w, data-base), io.NewSectionReader(d, data, hole-data)); err != nil {
			return err
		}
		off = hole
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(w, 0, d.Size)); err != nil {
		return fmt.Errorf("read back: %w", err)
	}
	if !bytes.Equal(h.Sum(nil), sum) {
		return ErrContentsDiffer
	}
	return nil
}
