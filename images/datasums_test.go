package images

import (
	"hash/crc32"
	"math/rand/v2"
	"strings"
	"testing"
)

// TestDataSums: the chunks that the pieces a writer summed cover exactly
// take their checksums from the pieces, every other chunk is read back:
// one covered in part, one covered twice, one whose pieces overlap, one
// with no pieces. The seal reads back a sample of the joined chunks (the
// first of each file here): a wrong sum there has it read back every
// chunk; a wrong sum elsewhere shows at verification (so it was used,
// not read back).
func TestDataSums(t *testing.T) {
	const chunks = 6
	const size = chunks*DataChunkSize - 4096 // the last chunk short
	data := make([]byte, size)
	r := rand.New(rand.NewPCG(7, 8))
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	sum := func(off, n int64) uint32 {
		return crc32.Checksum(data[off-PagesDataOffset:off-PagesDataOffset+n], castagnoli)
	}
	chunk := func(c int64) int64 { return PagesDataOffset + c*DataChunkSize }
	for _, tc := range []struct {
		name      string
		wrongAt   int64 // the chunk whose pieces are summed wrong, or -1
		distrusts bool  // the seal's sample finds it and reads all back
		wantFail  bool  // else it shows at verification
	}{
		{"right", -1, false, false},
		{"wrong piece in a sampled chunk", 0, true, false},
		{"wrong piece in a chunk not sampled", 5, false, true},
		{"wrong piece in a chunk covered in part", 1, false, false},
		{"wrong piece in a chunk covered twice", 2, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := Create(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			defer d.Abort()
			f, err := d.CreatePages(testPid, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteAt(data, PagesDataOffset); err != nil {
				t.Fatal(err)
			}
			if err := FinishPages(f, size); err != nil {
				t.Fatal(err)
			}
			add := func(c, off, n int64) {
				s := sum(off, n)
				if c == tc.wrongAt {
					s ^= 1
				}
				d.AddDataSum(f, off, n, s)
			}
			// Chunk 0: three pieces, not in order.
			add(0, chunk(0)+4096, 100<<10)
			add(0, chunk(0), 4096)
			add(0, chunk(0)+4096+100<<10, DataChunkSize-4096-100<<10)
			// Chunk 1: half of it.
			add(1, chunk(1), DataChunkSize/2)
			// Chunk 2: whole, twice.
			add(2, chunk(2), DataChunkSize)
			add(2, chunk(2), DataChunkSize)
			// Chunk 3: overlapping pieces.
			add(3, chunk(3), DataChunkSize/2+4096)
			add(3, chunk(3)+DataChunkSize/2, DataChunkSize/2)
			// Chunk 4: none. Chunk 5 (short): whole.
			add(5, chunk(5), DataChunkSize-4096)
			f.Close()
			if err := d.SealData(); err != nil {
				t.Fatal(err)
			}
			if d.SealSumsDistrusted() != tc.distrusts {
				t.Errorf("the seal distrusted the writers' sums: %v, want %v", d.SealSumsDistrusted(), tc.distrusts)
			}
			// Chunks 0 and 5 joined, unless all were distrusted.
			wantRead := int64(size - 2*DataChunkSize + 4096)
			if tc.distrusts {
				wantRead = size
			}
			if got := d.SealReadBytes(); got != wantRead {
				t.Errorf("the seal read back %d bytes, want %d", got, wantRead)
			}
			img, err := d.OpenPages(testPid, 0)
			if tc.wantFail {
				fe := requireFormatError(t, err, "a piece summed wrong")
				if want := "checksum mismatch"; !strings.Contains(fe.Reason, want) {
					t.Errorf("reason %q, want it to contain %q", fe.Reason, want)
				}
				return
			}
			if err != nil {
				t.Fatalf("OpenPages: %v", err)
			}
			img.Close()
		})
	}
}
