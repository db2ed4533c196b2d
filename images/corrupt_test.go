package images

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// recordImageReaders reads each record-framed image of the sample dump.
var recordImageReaders = map[string]func(d *Dir) error{
	inventoryName:        func(d *Dir) error { _, err := d.readInventory(); return err },
	taskName(testPid):    func(d *Dir) error { _, err := d.ReadTask(testPid); return err },
	mmName(testPid):      func(d *Dir) error { _, err := d.ReadMm(testPid); return err },
	filesName(testPid):   func(d *Dir) error { _, err := d.ReadFiles(testPid); return err },
	pagemapName(testPid): func(d *Dir) error { _, err := d.ReadPagemap(testPid); return err },
}

// pagesReader reads the sample dump's pages image.
func pagesReader(d *Dir) error {
	f, err := d.OpenPages(testPid, 0)
	if err == nil {
		f.Close()
	}
	return err
}

// mutateAndRead writes data in place of the image name in a copy of the
// sample dump and reads it back.
func mutateAndRead(t *testing.T, src *Dir, name string, data []byte, read func(*Dir) error) error {
	t.Helper()
	dir := t.TempDir()
	ents, err := os.ReadDir(src.Path)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(src.Path, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
		t.Fatal(err)
	}
	return read(sampleDir(dir))
}

// newFile creates the file path for a writer that takes it over.
func newFile(t *testing.T, path string) *os.File {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func requireFormatError(t *testing.T, err error, context string) *FormatError {
	t.Helper()
	var fe *FormatError
	if !errors.As(err, &fe) {
		t.Fatalf("%s: got error %v, want a *FormatError", context, err)
	}
	if strings.Contains(fe.Error(), "\n") {
		t.Errorf("%s: error spans lines: %q", context, fe.Error())
	}
	return fe
}

// positions lists the offsets of the image name, of length n, that the
// tests below cut or change: every one, but in page data, whose bytes
// all play the same part, every 61st and the last of each page.
func positions(name string, n int) []int {
	var out []int
	for i := range n {
		data := name == pagesName(testPid, 0) && i >= PagesDataOffset && i < n-sumSize
		if !data || (i-PagesDataOffset)%61 == 0 || i%4096 == 4095 {
			out = append(out, i)
		}
	}
	return out
}

func TestEveryTruncationRejected(t *testing.T) {
	src := writeSampleDump(t, t.TempDir())
	readers := map[string]func(*Dir) error{pagesName(testPid, 0): pagesReader}
	for name, read := range recordImageReaders {
		readers[name] = read
	}
	for name, read := range readers {
		data, err := os.ReadFile(src.file(name))
		if err != nil {
			t.Fatal(err)
		}
		if err := read(src); err != nil {
			t.Fatalf("%s: intact image rejected: %v", name, err)
		}
		dir := t.TempDir()
		d := sampleDir(dir)
		for _, n := range positions(name, len(data)) {
			if err := os.WriteFile(d.file(name), data[:n], 0o600); err != nil {
				t.Fatal(err)
			}
			fe := requireFormatError(t, read(d), name+" truncated to "+strconv.Itoa(n)+" bytes")
			if fe.Path != d.file(name) {
				t.Errorf("%s truncated to %d bytes: FormatError.Path = %q, want %q", name, n, fe.Path, d.file(name))
			}
		}
	}
}

// TestEveryFlippedByteRejected flips every byte of every image in turn,
// page data and its checksums included: each is refused.
func TestEveryFlippedByteRejected(t *testing.T) {
	src := writeSampleDump(t, t.TempDir())
	readers := map[string]func(*Dir) error{pagesName(testPid, 0): pagesReader}
	for name, read := range recordImageReaders {
		readers[name] = read
	}
	for name, read := range readers {
		data, err := os.ReadFile(src.file(name))
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		d := sampleDir(dir)
		for _, i := range positions(name, len(data)) {
			bad := bytes.Clone(data)
			bad[i] ^= 0xff
			if err := os.WriteFile(d.file(name), bad, 0o600); err != nil {
				t.Fatal(err)
			}
			requireFormatError(t, read(d), name+" with byte "+strconv.Itoa(i)+" flipped")
		}
	}
}

func TestTrailingDataRejected(t *testing.T) {
	src := writeSampleDump(t, t.TempDir())
	for name, read := range recordImageReaders {
		data, err := os.ReadFile(src.file(name))
		if err != nil {
			t.Fatal(err)
		}
		err = mutateAndRead(t, src, name, append(data, 0), read)
		fe := requireFormatError(t, err, name+" with a trailing byte")
		if !strings.Contains(fe.Reason, "trailing data") {
			t.Errorf("%s: reason %q does not mention trailing data", name, fe.Reason)
		}
	}
}

func TestHeaderChecks(t *testing.T) {
	src := writeSampleDump(t, t.TempDir())
	taskData, err := os.ReadFile(src.file(taskName(testPid)))
	if err != nil {
		t.Fatal(err)
	}
	pagesData, err := os.ReadFile(src.file(pagesName(testPid, 0)))
	if err != nil {
		t.Fatal(err)
	}
	readTask := recordImageReaders[taskName(testPid)]
	readMm := recordImageReaders[mmName(testPid)]

	newer := func(data []byte) []byte {
		b := bytes.Clone(data)
		binary.LittleEndian.PutUint32(b[len(magic):], FormatVersion+1)
		return b
	}
	wrongMagic := func(data []byte) []byte {
		b := bytes.Clone(data)
		copy(b, "CRIUIMG\x00")
		return b
	}
	oversized := bytes.Clone(taskData)
	binary.LittleEndian.PutUint32(oversized[fileHeaderSize:], maxRecordSize+1)
	zeroVersion := bytes.Clone(taskData)
	binary.LittleEndian.PutUint32(zeroVersion[len(magic):], 0)
	olderVersion := bytes.Clone(taskData)
	binary.LittleEndian.PutUint32(olderVersion[len(magic):], MinFormatVersion-1)

	tests := []struct {
		name   string
		file   string
		data   []byte
		read   func(*Dir) error
		reason string
	}{
		{"wrong magic", taskName(testPid), wrongMagic(taskData), readTask, "not a gocr image"},
		{"text file", taskName(testPid), []byte("hello, this is not an image\n"), readTask, "not a gocr image"},
		{"newer version", taskName(testPid), newer(taskData), readTask, fmt.Sprintf("written by a newer gocr (format %d), this gocr reads format %d", FormatVersion+1, FormatVersion)},
		{"version zero", taskName(testPid), zeroVersion, readTask, "invalid format version 0"},
		{"older version", taskName(testPid), olderVersion, readTask, fmt.Sprintf("written by an older gocr (format %d), this gocr reads formats %d to %d", MinFormatVersion-1, MinFormatVersion, FormatVersion)},
		{"wrong kind", mmName(testPid), taskData, readMm, "holds a task image, expected a mm image"},
		{"oversized record", taskName(testPid), oversized, readTask, "exceeds the 67108864-byte record limit"},
		{"pages wrong magic", pagesName(testPid, 0), wrongMagic(pagesData), pagesReader, "not a gocr image"},
		{"pages newer version", pagesName(testPid, 0), newer(pagesData), pagesReader, "written by a newer gocr"},
		{"pages wrong kind", pagesName(testPid, 0), taskData, pagesReader, "holds a task image, expected a pages image"},
		{"pages data missing", pagesName(testPid, 0), pagesData[:PagesDataOffset+100], pagesReader, "header promises 12288 data bytes"},
		{"pages data extra", pagesName(testPid, 0), append(bytes.Clone(pagesData), 0), pagesReader, "header promises 12288 data bytes"},
		{"pages header checksum", pagesName(testPid, 0), func() []byte { b := bytes.Clone(pagesData); b[100] = 1; return b }(), pagesReader, "header checksum mismatch"},
		{"pages reserved bytes", pagesName(testPid, 0), func() []byte { b := bytes.Clone(pagesData); b[100] = 1; return resumHeader(b) }(), pagesReader, "reserved header bytes"},
		{"pages size never recorded", pagesName(testPid, 0), append(samplePagesHeader(0), samplePageData()...), pagesReader, "header promises 0 data bytes"},
		{"pages chunk size", pagesName(testPid, 0), func() []byte { b := bytes.Clone(pagesData); b[dataChunkOffset] = 1; return resumHeader(b) }(), pagesReader, "chunk size"},
		{"pages of another stream", pagesName(testPid, 0), func() []byte { b := bytes.Clone(pagesData); b[dataStreamOffset] = 1; return resumHeader(b) }(), pagesReader, "holds page stream 1 of pid 4242"},
		{"pages of another pid", pagesName(testPid, 0), func() []byte { b := bytes.Clone(pagesData); b[dataSubjectOffset]++; return resumHeader(b) }(), pagesReader, "holds page stream 0 of pid 4243"},
		{"pages data", pagesName(testPid, 0), func() []byte { b := bytes.Clone(pagesData); b[PagesDataOffset+5000] ^= 1; return b }(), pagesReader, "page data bytes 0x0-0x3000 (chunk 0 of 1, pages 0x602000-0x603000, 0x7ffc0000-0x7ffc2000): checksum mismatch"},
		{"pages checksum", pagesName(testPid, 0), func() []byte { b := bytes.Clone(pagesData); b[len(b)-1] ^= 1; return b }(), pagesReader, "checksum mismatch"},
		{"pages of another dump", pagesName(testPid, 0), func() []byte { b := bytes.Clone(pagesData); b[dumpIDOffset] ^= 1; return resumHeader(b) }(), pagesReader, "images of two dumps are mixed"},
		{"task of another dump", taskName(testPid), func() []byte { b := bytes.Clone(taskData); b[dumpIDOffset+15] ^= 1; return b }(), readTask, "images of two dumps are mixed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := mutateAndRead(t, src, tt.file, tt.data, tt.read)
			fe := requireFormatError(t, err, tt.name)
			if !strings.Contains(fe.Reason, tt.reason) {
				t.Errorf("reason = %q, want it to contain %q", fe.Reason, tt.reason)
			}
			if !strings.Contains(err.Error(), "image "+fe.Path+": ") {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}

// resumHeader recomputes the checksum of the data header in b, so that
// a change to it is seen by the check that is about it.
func resumHeader(b []byte) []byte {
	le.PutUint32(b[dataHeaderSumAt:], crc32.Checksum(b[:dataHeaderSumAt], castagnoli))
	return b
}

func TestSingleMessageImageRecordCount(t *testing.T) {
	dir := t.TempDir()
	d := sampleDir(dir)
	if err := writeRecordFile(newFile(t, d.file(taskName(testPid))), kindTask, sampleDumpID, sampleTask(), sampleTask()); err != nil {
		t.Fatal(err)
	}
	_, err := d.ReadTask(testPid)
	requireFormatError(t, err, "task image with two records")

	if err := writeRecordFile(newFile(t, d.file(mmName(testPid))), kindMm, sampleDumpID); err != nil {
		t.Fatal(err)
	}
	_, err = d.ReadMm(testPid)
	requireFormatError(t, err, "mm image with no records")
}

func TestPidMismatchRejected(t *testing.T) {
	src := writeSampleDump(t, t.TempDir())
	data, err := os.ReadFile(src.file(taskName(testPid)))
	if err != nil {
		t.Fatal(err)
	}
	err = mutateAndRead(t, src, taskName(testPid+1), data, func(d *Dir) error {
		_, err := d.ReadTask(testPid + 1)
		return err
	})
	fe := requireFormatError(t, err, "task image under another pid's name")
	if !strings.Contains(fe.Reason, "holds pid 4242") {
		t.Errorf("reason = %q", fe.Reason)
	}
}

func TestMissingImageNamesFile(t *testing.T) {
	d := &Dir{Path: t.TempDir()}
	_, err := d.ReadMm(77)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("ReadMm of a missing image: got %v, want fs.ErrNotExist", err)
	}
	if !strings.Contains(err.Error(), "mm-77.img") {
		t.Errorf("error %q does not name mm-77.img", err)
	}
	_, err = d.OpenPages(77, 0)
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "pages-77.img") {
		t.Errorf("OpenPages of a missing image: got %v, want fs.ErrNotExist naming pages-77.img", err)
	}
}
