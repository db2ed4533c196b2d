package contextfile

import (
	"bufio"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"runtime"
	"sync"
)

// Reading a context in place: a context in a regular file need not be
// extracted, since every entry's data lies at a known offset in it,
// aligned to Align (a page), and can be read from there. ReadIndex reads
// the structure alone, hopping from one entry header to the next over the
// data; Verify checks the data of the entries the caller does not check
// otherwise.

// ErrCompressed: a compressed context cannot be read in place (its
// entries' data is not the files' bytes); it is read by extracting it.
var ErrCompressed = errors.New("the context is compressed: its entries cannot be read in place")

// ReadIndex reads the structure of the context in r, size bytes from its
// offset 0, without reading the entries' data: the file header, every
// entry header and the end record, each checked as Read checks them (the
// headers' and the end record's checksums, the end record's offsets,
// sizes and names against the entries, nothing after it), and that no
// name appears twice. The entries' CRCs are the end record's: their data
// is not checked until Verify checks it. A compressed context is refused
// with ErrCompressed.
func ReadIndex(r io.ReaderAt, size int64) ([]Entry, error) {
	// One page a read: an entry header and its padding are one page
	// (Align), so hopping reads no data.
	rd := &reader{br: bufio.NewReaderSize(io.NewSectionReader(r, 0, size), Align)}
	names := map[string]bool{}
	return rd.entries(func(e *Entry) error {
		if names[e.Name] {
			return damaged("entry %s appears twice", e.Name)
		}
		names[e.Name] = true
		if e.Size > size-e.Offset {
			return damaged("it ends in the data of entry %s: the context is incomplete", e.Name)
		}
		// Over the data, to the padding after it: the reader starts
		// again there.
		rd.off += e.Size
		rd.br.Reset(io.NewSectionReader(r, rd.off, size-rd.off))
		e.Stored = e.Size
		return nil
	}, false)
}

// Verify checks the data of every entry of es, read from r (the context
// ReadIndex read them from), against its CRC-32C, the entries spread over
// the CPUs. It names the first damaged entry in es's order.
func Verify(r io.ReaderAt, es []Entry) error {
	errs := make([]error, len(es))
	var next int
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range max(1, min(runtime.NumCPU(), len(es))) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 256<<10)
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= len(es) {
					return
				}
				errs[i] = verifyEntry(r, es[i], buf)
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// verifyEntry checks e's data as stored against its CRC-32C.
func verifyEntry(r io.ReaderAt, e Entry, buf []byte) error {
	h := crc32.New(castagnoli)
	n, err := io.CopyBuffer(h, io.NewSectionReader(r, e.Offset, e.Stored), buf)
	if err != nil {
		return fmt.Errorf("entry %s: %w", e.Name, err)
	}
	if n != e.Stored {
		return damaged("it ends in the data of entry %s: the context is incomplete", e.Name)
	}
	if crc := h.Sum32(); crc != e.CRC {
		return damaged("entry %s: its data's CRC-32C is %#08x, the end record says %#08x", e.Name, crc, e.CRC)
	}
	return nil
}
