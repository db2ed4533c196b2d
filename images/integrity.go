package images

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"runtime"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Integrity: every image of a dump carries the dump's ID in its header,
// so images of two dumps are never mixed, and everything in it is
// checksummed with CRC32-C: each record of a record image, the header of
// a data image, and its data in chunks, whose checksums follow the data
// (docs/IMAGES.md). A restore verifies all of it before it creates any
// process.
//
// CRC32-C because it is what the SSE4.2 crc32 instruction computes, which
// Go's hash/crc32 uses (with a pure-Go fallback on a CPU without it).
// Measured here (2 × AMD EPYC), it runs at 20–25 GB/s on data in the
// cache; what costs is reading page data back from the page cache
// (pread, about 6.5 GB/s a core), which any checksum pays alike (CRC-32
// IEEE, 32 GB/s in the cache, made no measurable difference end to end).

var le = binary.LittleEndian

// dumpIDSize is the length of a dump ID.
const dumpIDSize = 16

// DumpID identifies one dump: 128 random bits.
type DumpID [dumpIDSize]byte

func (id DumpID) String() string { return hex.EncodeToString(id[:]) }

// newDumpID draws a fresh dump ID from crypto/rand.
func newDumpID() (DumpID, error) {
	var id DumpID
	if _, err := rand.Read(id[:]); err != nil {
		return id, fmt.Errorf("draw a dump ID: %w", err)
	}
	return id, nil
}

// headerDumpID is the dump ID in hdr, a file header.
func headerDumpID(hdr []byte) DumpID {
	var id DumpID
	copy(id[:], hdr[dumpIDOffset:dumpIDOffset+dumpIDSize])
	return id
}

// checkDumpID refuses an image whose header carries another dump's ID
// than d's. A Dir that knows no ID yet (one made for a single image
// without its inventory) checks nothing.
func (d *Dir) checkDumpID(path string, id DumpID) error {
	d.mu.Lock()
	want, known := d.id, d.idKnown
	d.mu.Unlock()
	if known && id != want {
		e := formatErrorf(path, "belongs to dump %v, but %s is of dump %v: %v", id, inventoryName, want, ErrMixedDumps)
		e.Err = ErrMixedDumps
		return e
	}
	return nil
}

// ErrMixedDumps is wrapped by the error for an image of another dump
// than its inventory's.
var ErrMixedDumps = errors.New("images of two dumps are mixed")

// setDumpID makes id the ID every image d reads must carry.
func (d *Dir) setDumpID(id DumpID) {
	d.mu.Lock()
	d.id, d.idKnown = id, true
	d.mu.Unlock()
}

// The data image header (pages-PID.img, pages-PID.S.img, memfd-ID.img)
// is one page: the file header, then these fields; the rest is zero but
// for the header's own checksum in its last four bytes.
const (
	dataSizeOffset    = fileHeaderSize      // u64 bytes of data
	dataChunkOffset   = dataSizeOffset + 8  // u32 bytes per checksummed chunk
	dataStreamOffset  = dataChunkOffset + 4 // u32 page stream (0 for a memfd)
	dataSubjectOffset = dataStreamOffset + 4
	dataFieldsEnd     = dataSubjectOffset + 8 // u64 the pid, or the memfd's ID
	dataHeaderSumAt   = PagesDataOffset - 4   // u32 CRC32-C of the bytes before it
	minChunkSize      = 4096                  // a page
	maxChunkSize      = 64 << 20              // bounds a reader's work per checksum
	dataChunkSize     = 1 << 20               // what a dump writes
	sumReadSize       = 256 << 10             // per read: fits a core's L2 with room
	sumSize           = 4                     // bytes of one chunk's checksum
)

// dataHeader describes a data image.
type dataHeader struct {
	kind    kind
	id      DumpID
	size    int64  // bytes of data
	chunk   int64  // bytes per checksummed chunk; 0 until sealed
	stream  uint32 // page stream
	subject uint64 // the pid, or the memfd ID
}

// chunks is how many checksums follow the data.
func (h *dataHeader) chunks() int64 {
	if h.chunk == 0 {
		return 0
	}
	return (h.size + h.chunk - 1) / h.chunk
}

// fileSize is how long the image is: header, data, checksums.
func (h *dataHeader) fileSize() int64 {
	return PagesDataOffset + h.size + sumSize*h.chunks()
}

func (h *dataHeader) encode() []byte {
	hdr := make([]byte, PagesDataOffset)
	appendFileHeader(hdr[:0], h.kind, h.id)
	le.PutUint64(hdr[dataSizeOffset:], uint64(h.size))
	le.PutUint32(hdr[dataChunkOffset:], uint32(h.chunk))
	le.PutUint32(hdr[dataStreamOffset:], h.stream)
	le.PutUint64(hdr[dataSubjectOffset:], h.subject)
	le.PutUint32(hdr[dataHeaderSumAt:], crc32.Checksum(hdr[:dataHeaderSumAt], castagnoli))
	return hdr
}

// decodeDataHeader checks hdr, a whole data header of kind want, and
// returns what it says.
func decodeDataHeader(path string, hdr []byte, want kind) (*dataHeader, error) {
	if err := checkFileHeader(path, hdr, want); err != nil {
		return nil, err
	}
	if got, sum := crc32.Checksum(hdr[:dataHeaderSumAt], castagnoli), le.Uint32(hdr[dataHeaderSumAt:]); got != sum {
		return nil, formatErrorf(path, "header checksum mismatch (stored %#08x, computed %#08x)", sum, got)
	}
	if !allZero(hdr[dataFieldsEnd:dataHeaderSumAt]) {
		return nil, formatErrorf(path, "reserved header bytes are not zero")
	}
	h := &dataHeader{
		kind:    want,
		id:      headerDumpID(hdr),
		chunk:   int64(le.Uint32(hdr[dataChunkOffset:])),
		stream:  le.Uint32(hdr[dataStreamOffset:]),
		subject: le.Uint64(hdr[dataSubjectOffset:]),
	}
	size := le.Uint64(hdr[dataSizeOffset:])
	if size > 1<<62 {
		return nil, formatErrorf(path, "data size %d is impossible", size)
	}
	h.size = int64(size)
	if h.chunk < minChunkSize || h.chunk > maxChunkSize || h.chunk&(h.chunk-1) != 0 {
		return nil, formatErrorf(path, "chunk size %d is not a power of two from %d to %d", h.chunk, minChunkSize, maxChunkSize)
	}
	return h, nil
}

func allZero(b []byte) bool {
	return len(b) == 0 || b[0] == 0 && bytes.Equal(b[1:], b[:len(b)-1])
}

// dataFile is one data image whose chunks are checksummed, or verified.
type dataFile struct {
	fd   int
	base int64 // where the image starts in fd: 0 but in a context
	path string
	hdr  *dataHeader
	sums []uint32 // by chunk: computed (seal) or stored (verify)
	// known: by chunk, whether its sum is already joined from what its
	// writers summed (seal; joinSums).
	known []bool
	// later: by chunk, whether a reader verifies it as it reads it in
	// (verify skips it; VerifyPageChunks).
	later []bool
}

// chunkErr is a chunk that did not verify, or could not be read.
type chunkErr struct {
	file, chunk int
	stored, got uint32
	err         error // an I/O error, else a mismatch
}

// sumChunks computes the checksum of every chunk of every file, spread
// over cpus CPUs. With verify, it compares each with the one stored in
// sums and reports the first file's first bad chunk (deterministically:
// the lowest file, then chunk); without, it fills sums in.
func sumChunks(files []*dataFile, verify bool, cpus int) *chunkErr {
	type unit struct{ file, chunk int }
	var units []unit
	for i, f := range files {
		n := f.hdr.chunks()
		if !verify && f.sums == nil {
			f.sums = make([]uint32, n)
		}
		for c := range int(n) {
			if !verify && f.known != nil && f.known[c] {
				continue
			}
			if verify && f.later != nil && f.later[c] {
				continue
			}
			units = append(units, unit{i, c})
		}
	}
	workers := max(1, min(cpus, len(units)))
	var next atomic.Int64
	var mu sync.Mutex
	var first *chunkErr
	worse := func(e *chunkErr) {
		mu.Lock()
		defer mu.Unlock()
		if first == nil || e.file < first.file || e.file == first.file && e.chunk < first.chunk {
			first = e
		}
	}
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, sumReadSize)
			for {
				i := int(next.Add(1)) - 1
				if i >= len(units) {
					return
				}
				u := units[i]
				f := files[u.file]
				start := int64(u.chunk) * f.hdr.chunk
				n := min(f.hdr.chunk, f.hdr.size-start)
				got, err := sumRange(f.fd, f.base+PagesDataOffset+start, n, buf)
				switch {
				case err != nil:
					worse(&chunkErr{file: u.file, chunk: u.chunk, err: fmt.Errorf("read %s: %w", f.path, err)})
				case !verify:
					f.sums[u.chunk] = got
				case got != f.sums[u.chunk]:
					worse(&chunkErr{file: u.file, chunk: u.chunk, stored: f.sums[u.chunk], got: got})
				}
			}
		}()
	}
	wg.Wait()
	return first
}

// zeroSums caches the CRC32-C of n zero bytes by n: a sparse image of a
// terabyte would otherwise have a million chunks of zeros summed.
var zeroSums sync.Map

// zeroSum is the CRC32-C of n zero bytes, what a hole of n bytes reads as.
func zeroSum(n int64) uint32 {
	if v, ok := zeroSums.Load(n); ok {
		return v.(uint32)
	}
	zeros := make([]byte, min(n, sumReadSize))
	var sum uint32
	for left := n; left > 0; {
		k := min(left, int64(len(zeros)))
		sum = crc32.Update(sum, castagnoli, zeros[:k])
		left -= k
	}
	zeroSums.Store(n, sum)
	return sum
}

// sumRange is the CRC32-C of the n bytes of fd at off, read through buf.
// A range that is all hole (SEEK_DATA finds no data in it, lseek(2)) is
// summed as the zeros it reads as, without reading it: a memfd image may
// be mostly holes. (Only SEEK_DATA: SEEK_HOLE would scan to the end of
// the data, across every chunk after this one.)
func sumRange(fd int, off, n int64, buf []byte) (uint32, error) {
	var sum uint32
	end := off + n
	data, err := unix.Seek(fd, off, unix.SEEK_DATA)
	if errors.Is(err, unix.ENXIO) {
		data = end // only a hole is left
	} else if err != nil {
		return 0, err
	}
	if data >= end {
		return zeroSum(n), nil
	}
	for off < end {
		k := min(end-off, int64(len(buf)))
		m, err := unix.Pread(fd, buf[:k], off)
		if err != nil {
			return 0, err
		}
		if m == 0 {
			return 0, io.ErrUnexpectedEOF
		}
		sum = crc32.Update(sum, castagnoli, buf[:m])
		off += int64(m)
	}
	return sum, nil
}

// LeaveCPUFree has SealData use every CPU but one, which the dumped
// processes keep (with --leave-running they run on meanwhile): with more
// runnable threads than CPUs the scheduler shares a CPU in turns as long
// as its timer tick or longer (kernel/sched/fair.c; 4 ms at HZ=250), and
// a job that keeps a CPU busy would stop that long each turn.
func (d *Dir) LeaveCPUFree() {
	if d.w != nil {
		d.w.sealCPUs = max(1, runtime.NumCPU()-1)
	}
}

// SealData completes every data image of the dump being written: the
// checksum of each chunk of its data, joined from the sums its writers
// took of it (AddDataSum) or else computed from the page cache over
// every CPU (LeaveCPUFree: all but one), and appended to it, its header
// with the chunk size and its own checksum, and an fsync. The disk's writeback of every image is
// started first, so that on a disk it runs while the checksums are
// computed. WriteInventory seals what is left; a dump calls it earlier
// only to time it.
func (d *Dir) SealData() error {
	if d.w == nil || d.w.committed || d.w.closed {
		return fmt.Errorf("seal: %s is not a dump being written", d.Path)
	}
	d.mu.Lock()
	names := d.w.data
	d.w.data = nil
	d.mu.Unlock()
	var files []*dataFile
	defer func() {
		for _, f := range files {
			unix.Close(f.fd)
		}
	}()
	for _, name := range names {
		f, err := d.openToSeal(name)
		if err != nil {
			return err
		}
		files = append(files, f)
		f.joinSums(d.takeDataSums(name))
		// SYNC_FILE_RANGE_WRITE starts writeback of the dirty pages
		// without waiting for it (sync_file_range(2)); the fsync below
		// waits.
		if err := unix.SyncFileRange(f.fd, 0, 0, unix.SYNC_FILE_RANGE_WRITE); err != nil && !errors.Is(err, unix.ENOSYS) {
			return fmt.Errorf("seal %s: sync_file_range: %w", f.path, err)
		}
	}
	cpus := runtime.NumCPU()
	if d.w.sealCPUs > 0 {
		cpus = d.w.sealCPUs
	}
	if !checkJoined(files) {
		// Trust none of them: every chunk is read back.
		d.w.sumsDistrusted = true
		for _, f := range files {
			clear(f.known)
		}
	}
	if e := sumChunks(files, false, cpus); e != nil {
		return fmt.Errorf("seal %s: %w", files[e.file].path, e.err)
	}
	for _, f := range files {
		for c, k := range f.known {
			if !k {
				d.w.sealRead += min(f.hdr.chunk, f.hdr.size-int64(c)*f.hdr.chunk)
			}
		}
	}
	for _, f := range files {
		if err := f.writeSeal(); err != nil {
			return err
		}
	}
	return nil
}

// SealSumsDistrusted says whether SealData found a checksum a writer gave
// that disagreed with the data it read back, and so read back all.
func (d *Dir) SealSumsDistrusted() bool {
	return d.w != nil && d.w.sumsDistrusted
}

// SealReadBytes is how many bytes of data SealData has checksummed by
// reading them back, all the others having been summed by their writers.
func (d *Dir) SealReadBytes() int64 {
	if d.w == nil {
		return 0
	}
	return d.w.sealRead
}

// openToSeal opens the data image name of the dump being written and
// reads the header it was created with and the size FinishPages recorded.
func (d *Dir) openToSeal(name string) (*dataFile, error) {
	path := d.file(name)
	fd, err := unix.Openat(d.w.tmp, name, unix.O_RDWR|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("seal %s: %w", path, err)
	}
	f := &dataFile{fd: fd, path: path}
	hdr := make([]byte, PagesDataOffset)
	if _, err := unix.Pread(fd, hdr, 0); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("seal %s: %w", path, err)
	}
	k := kind(le.Uint32(hdr[len(magic)+4:]))
	f.hdr = &dataHeader{
		kind:    k,
		id:      headerDumpID(hdr),
		size:    int64(le.Uint64(hdr[dataSizeOffset:])),
		chunk:   dataChunkSize,
		stream:  le.Uint32(hdr[dataStreamOffset:]),
		subject: le.Uint64(hdr[dataSubjectOffset:]),
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("seal %s: %w", path, err)
	}
	if want := PagesDataOffset + f.hdr.size; st.Size != want {
		unix.Close(fd)
		return nil, fmt.Errorf("seal %s: file is %d bytes, its header records %d data bytes (was FinishPages called?)", path, st.Size, f.hdr.size)
	}
	return f, nil
}

// writeSeal appends f's checksums, completes its header and syncs it.
func (f *dataFile) writeSeal() error {
	b := make([]byte, 0, sumSize*len(f.sums))
	for _, s := range f.sums {
		b = le.AppendUint32(b, s)
	}
	if err := pwriteAll(f.fd, b, PagesDataOffset+f.hdr.size); err != nil {
		return fmt.Errorf("seal %s: %w", f.path, err)
	}
	if err := pwriteAll(f.fd, f.hdr.encode(), 0); err != nil {
		return fmt.Errorf("seal %s: %w", f.path, err)
	}
	if err := unix.Fsync(f.fd); err != nil {
		return fmt.Errorf("seal %s: fsync: %w", f.path, err)
	}
	return nil
}

func pwriteAll(fd int, b []byte, off int64) error {
	for len(b) > 0 {
		n, err := unix.Pwrite(fd, b, off)
		if err != nil {
			return err
		}
		b, off = b[n:], off+int64(n)
	}
	return nil
}
