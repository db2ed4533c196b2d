package images

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/gocr/gocr/gocrpb"
)

// Fuzz targets for every image reader. Each writes the fuzzed bytes as
// one image of a dump directory and reads it as a restore would. They
// assert no panic and no hang (the fuzzing engine catches both), that a
// refusal is a *FormatError (the bytes are a regular file of ours, so no
// other error is possible), and that what is accepted is what the format
// allows and re-marshals to the same message. The seeds are the images of
// the sample dump (writeSampleDump), whole and cut or changed in the
// places the format checks. testdata/fuzz holds more seeds (format 4
// images, intact, of another dump, with page data changed) and any
// crasher found.

// sampleImages returns every file of a sample dump, by name.
func sampleImages(f *testing.F) map[string][]byte {
	f.Helper()
	dir := filepath.Join(f.TempDir(), "dump")
	writeSampleDump(f, dir)
	ents, err := os.ReadDir(dir)
	if err != nil {
		f.Fatal(err)
	}
	out := make(map[string][]byte, len(ents))
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			f.Fatal(err)
		}
		out[e.Name()] = b
	}
	return out
}

// imageSeeds is good, an image of the sample dump, and variants of it
// that the reader must refuse or that sit at the format's edges.
func imageSeeds(good []byte) [][]byte {
	seeds := [][]byte{good, nil, good[:fileHeaderSize], good[:len(good)-1], append(slices.Clone(good), 0)}
	flipped := slices.Clone(good)
	flipped[len(flipped)/2] ^= 0x40
	seeds = append(seeds, flipped)
	// A header and an end record counting no records.
	var end [recordHeaderSize]byte
	binary.LittleEndian.PutUint32(end[0:], endOfRecords)
	seeds = append(seeds, append(slices.Clone(good[:fileHeaderSize]), end[:]...))
	// A record length over the limit, and one within it but past the
	// end of the file.
	long := slices.Clone(good[:fileHeaderSize+recordHeaderSize])
	binary.LittleEndian.PutUint32(long[fileHeaderSize:], maxRecordSize+1)
	pastEnd := slices.Clone(good[:fileHeaderSize+recordHeaderSize])
	binary.LittleEndian.PutUint32(pastEnd[fileHeaderSize:], maxRecordSize)
	return append(seeds, long, pastEnd)
}

// writeImage writes b as the image name of a new directory, as a dump
// writes it (mode 0600, owned by the user running the test).
func writeImage(t *testing.T, name string, b []byte) *Dir {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
		t.Fatal(err)
	}
	return sampleDir(dir)
}

// requireFormatErr fails t unless err is a *FormatError on one line.
func requireFormatErr(t *testing.T, err error) {
	t.Helper()
	var fe *FormatError
	if !errors.As(err, &fe) {
		t.Fatalf("got error %v, want a *FormatError", err)
	}
	if strings.Contains(err.Error(), "\n") {
		t.Fatalf("error spans lines: %q", err)
	}
}

// rewrite writes msgs as a fresh image of kind k named name and returns
// the directory holding it.
func rewrite(t *testing.T, name string, k kind, msgs ...proto.Message) *Dir {
	t.Helper()
	dir := t.TempDir()
	if err := writeRecordFile(newFile(t, filepath.Join(dir, name)), k, sampleDumpID, msgs...); err != nil {
		t.Fatalf("re-marshal %s: %v", name, err)
	}
	return sampleDir(dir)
}

func requireEqual(t *testing.T, what string, want, got proto.Message) {
	t.Helper()
	if !proto.Equal(want, got) {
		t.Fatalf("%s changed in a re-marshal:\n%v\n%v", what, want, got)
	}
}

func FuzzInventoryImage(f *testing.F) {
	for _, s := range imageSeeds(sampleImages(f)[inventoryName]) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		d := writeImage(t, inventoryName, b)
		inv, err := d.readInventory()
		if err != nil {
			requireFormatErr(t, err)
			return
		}
		if err := checkInventory(inv); err != nil {
			t.Fatalf("accepted an invalid inventory: %v", err)
		}
		if hdr := headerDumpID(b); DumpID(inv.GetDumpId()) != hdr {
			t.Fatalf("accepted an inventory recording dump %x in an image of dump %v", inv.GetDumpId(), hdr)
		}
		// The inventory is the one image that says which dump it is.
		dir := t.TempDir()
		if err := writeRecordFile(newFile(t, filepath.Join(dir, inventoryName)), kindInventory, DumpID(inv.GetDumpId()), inv); err != nil {
			t.Fatalf("re-marshal: %v", err)
		}
		again, err := (&Dir{Path: dir}).readInventory()
		if err != nil {
			t.Fatalf("re-read: %v", err)
		}
		requireEqual(t, "inventory", inv, again)
	})
}

// fuzzPerProcess fuzzes the single-message image of kind k that read
// reads for testPid.
func fuzzPerProcess[M perProcess](f *testing.F, name func(int) string, k kind, read func(*Dir, int) (M, error)) {
	for _, s := range imageSeeds(sampleImages(f)[name(testPid)]) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := read(writeImage(t, name(testPid), b), testPid)
		if err != nil {
			requireFormatErr(t, err)
			return
		}
		if m.GetPid() != testPid {
			t.Fatalf("%v image of pid %d holds pid %d", k, testPid, m.GetPid())
		}
		again, err := read(rewrite(t, name(testPid), k, m), testPid)
		if err != nil {
			t.Fatalf("re-read: %v", err)
		}
		requireEqual(t, k.String(), m, again)
	})
}

func FuzzTaskImage(f *testing.F)  { fuzzPerProcess(f, taskName, kindTask, (*Dir).ReadTask) }
func FuzzMmImage(f *testing.F)    { fuzzPerProcess(f, mmName, kindMm, (*Dir).ReadMm) }
func FuzzFilesImage(f *testing.F) { fuzzPerProcess(f, filesName, kindFiles, (*Dir).ReadFiles) }

func FuzzPagemapImage(f *testing.F) {
	for _, s := range imageSeeds(sampleImages(f)[pagemapName(testPid)]) {
		f.Add(s)
	}
	// Ranges whose end wraps past 2^64, which the reader once took.
	for _, r := range []*gocrpb.PageRange{
		{Vaddr: 0x1000, NrPages: 1 << 52},
		{Vaddr: 0xfffffffffffff000, NrPages: 2},
	} {
		f.Add(pagemapBytes(f, r))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ranges, err := writeImage(t, pagemapName(testPid), b).ReadPagemap(testPid)
		if err != nil {
			requireFormatErr(t, err)
			if ranges != nil {
				t.Fatalf("%d ranges returned with error %v", len(ranges), err)
			}
			return
		}
		msgs := make([]proto.Message, len(ranges))
		for i, r := range ranges {
			if r.GetNrPages() == 0 || r.GetStream() >= MaxPageStreams || r.GetNrPages() > (math.MaxUint64-r.GetVaddr())/4096+1 {
				t.Fatalf("accepted range %v", r)
			}
			msgs[i] = r
		}
		again, err := rewrite(t, pagemapName(testPid), kindPagemap, msgs...).ReadPagemap(testPid)
		if err != nil {
			t.Fatalf("re-read: %v", err)
		}
		if len(again) != len(ranges) {
			t.Fatalf("re-read %d ranges, wrote %d", len(again), len(ranges))
		}
		for i := range ranges {
			requireEqual(t, "page range", ranges[i], again[i])
		}
	})
}

// FuzzPagesHeader fuzzes a page image, whose header says how much page
// data follows it.
func FuzzPagesHeader(f *testing.F) {
	good := sampleImages(f)[pagesName(testPid, 0)]
	for _, s := range imageSeeds(good) {
		f.Add(s)
	}
	f.Add(good[:PagesDataOffset])
	f.Add(samplePagesHeader(0))
	f.Add(samplePagesHeader(-1))
	// A header whose chunk size makes the checksums the bulk of the file.
	small := &dataHeader{kind: kindPages, id: sampleDumpID, size: int64(len(good)) - PagesDataOffset - 4, chunk: minChunkSize, subject: testPid}
	f.Add(append(small.encode(), good[PagesDataOffset:]...))
	f.Fuzz(func(t *testing.T, b []byte) {
		file, err := writeImage(t, pagesName(testPid, 0), b).OpenPages(testPid, 0)
		if err != nil {
			requireFormatErr(t, err)
			return
		}
		defer file.Close()
		size := file.Size
		h, err := decodeDataHeader("fuzz", b, kindPages)
		if err != nil {
			t.Fatalf("accepted a header that does not decode: %v", err)
		}
		if size != h.size || int64(len(b)) != h.fileSize() {
			t.Fatalf("data size %d, file of %d bytes, header says %d and %d", size, len(b), h.size, h.fileSize())
		}
		// Every format from MinFormatVersion on is read: the header is
		// what a dump of its version writes.
		want := h.encode()
		copy(want[len(magic):len(magic)+4], b[len(magic):len(magic)+4])
		le.PutUint32(want[dataHeaderSumAt:], crc32.Checksum(want[:dataHeaderSumAt], castagnoli))
		if !bytes.Equal(b[:PagesDataOffset], want) {
			t.Fatalf("accepted a header that is not what a dump writes for %d bytes", size)
		}
		if h.id != sampleDumpID || h.subject != testPid || h.stream != 0 {
			t.Fatalf("accepted the pages of dump %v, pid %d, stream %d", h.id, h.subject, h.stream)
		}
		for c := range h.chunks() {
			start := PagesDataOffset + c*h.chunk
			data := b[start:min(start+h.chunk, PagesDataOffset+h.size)]
			if got, want := crc32.Checksum(data, castagnoli), le.Uint32(b[h.fileSize()-sumSize*(h.chunks()-c):]); got != want {
				t.Fatalf("accepted chunk %d with checksum %#x, its data sums to %#x", c, want, got)
			}
		}
		if file.Off != PagesDataOffset {
			t.Fatalf("data at %d, want %d", file.Off, PagesDataOffset)
		}
	})
}

// showReaders reads each image of the sample dump on its own.
var showReaders = map[string]func(*Dir) error{
	inventoryName:         recordImageReaders[inventoryName],
	taskName(testPid):     recordImageReaders[taskName(testPid)],
	taskName(testPid + 1): func(d *Dir) error { _, err := d.ReadTask(testPid + 1); return err },
	mmName(testPid):       recordImageReaders[mmName(testPid)],
	filesName(testPid):    recordImageReaders[filesName(testPid)],
	pagemapName(testPid):  recordImageReaders[pagemapName(testPid)],
	pagesName(testPid, 0): pagesReader,
}

// FuzzShow runs Show on a sample dump with one image, chosen by which,
// replaced by the fuzzed bytes. A bad image must make Show fail, and a
// Show that succeeds must have reported no image as bad.
func FuzzShow(f *testing.F) {
	images := sampleImages(f)
	names := make([]string, 0, len(images))
	for name := range images {
		if showReaders[name] == nil {
			f.Fatalf("no reader for sample image %s", name)
		}
		names = append(names, name)
	}
	slices.Sort(names)
	for i, name := range names {
		for _, s := range imageSeeds(images[name]) {
			f.Add(s, uint8(i))
		}
	}
	f.Fuzz(func(t *testing.T, b []byte, which uint8) {
		dir := t.TempDir()
		name := names[int(which)%len(names)]
		for n, data := range images {
			if n == name {
				data = b
			}
			if err := os.WriteFile(filepath.Join(dir, n), data, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		var out bytes.Buffer
		err := Show(dir, &out, OpenOptions{})
		readErr := showReaders[name](sampleDir(dir))
		if readErr != nil && err == nil {
			t.Fatalf("show passed a bad %s (%v):\n%s", name, readErr, out.String())
		}
		if err == nil && (strings.Contains(out.String(), "\nerror: ") || strings.Contains(out.String(), "\nmissing: ")) {
			t.Fatalf("show reported a bad image and returned no error:\n%s", out.String())
		}
		if err != nil && strings.Contains(err.Error(), "\n") {
			t.Fatalf("error spans lines: %q", err)
		}
	})
}

// pagemapBytes is a pagemap image holding ranges, written without the
// writer's checks.
func pagemapBytes(tb testing.TB, ranges ...*gocrpb.PageRange) []byte {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "pagemap.img")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		tb.Fatal(err)
	}
	msgs := make([]proto.Message, len(ranges))
	for i, r := range ranges {
		msgs[i] = r
	}
	if err := writeRecordFile(f, kindPagemap, sampleDumpID, msgs...); err != nil {
		tb.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func TestPagemapRangePastAddressSpaceRefused(t *testing.T) {
	for _, r := range []*gocrpb.PageRange{
		{Vaddr: 0x1000, NrPages: 1 << 52},
		{Vaddr: 0xfffffffffffff000, NrPages: 2},
	} {
		_, err := writeImage(t, pagemapName(testPid), pagemapBytes(t, r)).ReadPagemap(testPid)
		requireFormatErr(t, err)
	}
	// The last page of the address space is still a range.
	ranges, err := writeImage(t, pagemapName(testPid), pagemapBytes(t, &gocrpb.PageRange{Vaddr: 0xfffffffffffff000, NrPages: 1})).ReadPagemap(testPid)
	if err != nil || len(ranges) != 1 {
		t.Fatalf("last page: %v, %v", ranges, err)
	}
}
