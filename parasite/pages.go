//go:build linux

package parasite

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/internal/crc32c"
	"github.com/gocr/gocr/proc"
	"github.com/gocr/gocr/sharedword"
)

// Span is a run of target memory.
type Span struct {
	Addr, Len uint64
}

// dataUsable is how much of the data area one command's spans, or one
// round of thread-state blocks, may fill. The last 4 KiB stay free: they
// were scratch space for syscalls injected into other threads, and the
// bound stayed when that went.
const dataUsable = dataSize - 4<<10

// maxSpansPerCall is how many spans one command takes.
const maxSpansPerCall = dataUsable / iovecSize

// struct parasite_iovec (parasite/c/abi.h): a span as the parasite reads it.
const (
	iovBase = 0
	iovLen  = 8
)

// putIovec writes sp as the struct parasite_iovec at offset o of the region.
func (p *Parasite) putIovec(o int, sp Span) {
	binary.LittleEndian.PutUint64(p.local[o+iovBase:], sp.Addr)
	binary.LittleEndian.PutUint64(p.local[o+iovLen:], sp.Len)
}

// Stream is memory to write to one file: Spans in order, from file offset
// Off on; with Sums, also the checksums of what is written, but of the
// pieces that touch a span whose Skip is set (Skip: nil, or one per
// span), which the parasite does not read itself.
type Stream struct {
	File  *os.File
	Off   int64
	Spans []Span
	Sums  *Sums
	Skip  []bool
}

// The data area during PCMD_WRITE_STREAMS: the shift tables, the iovecs
// and a skip byte for each, and the sums in its last sumsReserve bytes.
const (
	writeTablesOff = dataOff
	writeIovecsOff = dataOff + crc32c.LaneTablesSize
	writeSumsOff   = dataOff + dataUsable - sumsReserve
	// maxStreamSpans is how many spans one command's streams take.
	maxStreamSpans = (writeSumsOff - writeIovecsOff) / (iovecSize + 1)
	writeSkipOff   = writeIovecsOff + maxStreamSpans*iovecSize
)

// WriteStreams has the parasite write every stream to its file with
// pwritev(2): one copy, from the target's pages into the image's page
// cache, the same work as a plain write() of that memory
// (docs/PERFORMANCE.md). Stream 0 is written by the parasite's thread,
// each other one at the same time by a helper thread the parasite starts
// in the target for the command, so that up to MaxStreams cores copy at
// once. gocr only hands the files over and waits. It returns the bytes
// written; on an error the streams' contents are undefined.
//
// A span the parasite is to sum (Sums, not Skip) must be memory the
// process can read whatever happens outside it while it is frozen: the
// parasite reads it itself after pwritev, and a fault there would end the
// process (its signals are blocked). Private anonymous memory is such; a
// shared or file mapping could be truncated by another process
// meanwhile (SIGBUS, man 2 mmap).
func (p *Parasite) WriteStreams(streams []Stream) (int64, error) {
	if len(streams) == 0 || len(streams) > MaxStreams {
		return 0, fmt.Errorf("write pages of %d: %d streams, want 1..%d", p.pid, len(streams), MaxStreams)
	}
	var chunk int64
	for _, s := range streams {
		if s.Skip != nil && len(s.Skip) != len(s.Spans) {
			return 0, fmt.Errorf("write pages of %d: %d skip flags for %d spans", p.pid, len(s.Skip), len(s.Spans))
		}
		if s.Sums == nil || !canSum {
			continue
		}
		if s.Sums.Chunk <= 0 || s.Sums.Chunk%8 != 0 || chunk != 0 && s.Sums.Chunk != chunk {
			return 0, fmt.Errorf("write pages of %d: checksum chunks of %d bytes", p.pid, s.Sums.Chunk)
		}
		chunk = s.Sums.Chunk
	}
	remote := make([]int64, len(streams))
	for i, s := range streams {
		var err error
		if remote[i], err = p.PassFile(s.File); err != nil {
			return 0, err
		}
	}
	rest := make([][]Span, len(streams))
	skip := make([][]bool, len(streams))
	offs := make([]int64, len(streams))
	for i, s := range streams {
		rest[i], skip[i], offs[i] = s.Spans, s.Skip, s.Off
	}
	perStream := maxStreamSpans / len(streams)
	// Each stream's sums: at most slots pieces a command, so at most
	// (slots-2)·chunk bytes (the parasite's bound, sums_inside).
	slots := sumsReserve / 4 / len(streams)
	// A summed batch: its file range, its sums, and the file ranges the
	// parasite did not read.
	type summed struct {
		i       int
		off, n  int64
		sumsOff int
		skipped [][2]int64
	}
	var written int64
	for {
		// This call's streams: the next batch of every stream with
		// spans left, packed at the front of the descriptor array.
		n, o := 0, writeIovecsOff
		var sums []summed
		for i, s := range streams {
			if len(rest[i]) == 0 {
				continue
			}
			sum := s.Sums != nil && chunk != 0
			budget := int64(-1)
			if sum {
				budget = int64(slots-2) * chunk
			}
			d := p.local[streamsOff+n*streamSize : streamsOff+(n+1)*streamSize]
			clear(d)
			binary.LittleEndian.PutUint64(d[streamIovOff:], uint64(o))
			binary.LittleEndian.PutUint64(d[streamFileOff:], uint64(offs[i]))
			binary.LittleEndian.PutUint32(d[streamFd:], uint32(remote[i]))
			sm := summed{i: i, off: offs[i]}
			skipStart := writeSkipOff + (o-writeIovecsOff)/iovecSize
			k, bytes := 0, int64(0)
			for k < perStream && len(rest[i]) > 0 && (budget < 0 || bytes < budget) {
				sp := rest[i][0]
				if budget >= 0 && int64(sp.Len) > budget-bytes {
					// Split: the rest waits for the next call.
					part := uint64(budget - bytes)
					rest[i][0] = Span{Addr: sp.Addr + part, Len: sp.Len - part}
					sp.Len = part
				} else {
					rest[i] = rest[i][1:]
				}
				skipped := false
				if skip[i] != nil {
					skipped = skip[i][0]
					if len(rest[i]) < len(skip[i]) {
						skip[i] = skip[i][1:]
					}
				}
				p.putIovec(o, sp)
				p.local[skipStart+k] = 0
				if skipped {
					p.local[skipStart+k] = 1
					sm.skipped = append(sm.skipped, [2]int64{offs[i] + bytes, offs[i] + bytes + int64(sp.Len)})
				}
				o += iovecSize
				k++
				bytes += int64(sp.Len)
			}
			binary.LittleEndian.PutUint64(d[streamNrIov:], uint64(k))
			if sum {
				sm.n, sm.sumsOff = bytes, writeSumsOff+n*slots*4
				binary.LittleEndian.PutUint64(d[streamSumsOff:], uint64(sm.sumsOff))
				binary.LittleEndian.PutUint64(d[streamSumCut:], uint64(s.Sums.nextCut(sm.off)))
				binary.LittleEndian.PutUint64(d[streamSkipOff:], uint64(skipStart))
				sums = append(sums, sm)
			}
			offs[i] += bytes
			written += bytes
			n++
		}
		if n == 0 {
			return written, nil
		}
		var args [3]uint64
		if len(sums) > 0 {
			copy(p.local[writeTablesOff:], crc32c.LaneTables())
			args = [3]uint64{uint64(chunk), writeTablesOff, crc32c.Lane}
		}
		if err := p.call(cmdWriteStreams, uint64(n), args[0], args[1], args[2]); err != nil {
			return 0, fmt.Errorf("write pages of %d: %w", p.pid, err)
		}
		for _, sm := range sums {
			s := streams[sm.i].Sums
			s.pieces(sm.off, sm.n, func(k int, off, n int64) {
				for _, r := range sm.skipped {
					if r[0] < off+n && off < r[1] {
						return
					}
				}
				s.Add(off, n, binary.LittleEndian.Uint32(p.local[sm.sumsOff+4*k:]))
			})
		}
	}
}

// ErrHelperStopped means a page-stream helper thread was stopped (SIGSTOP
// from outside) when gocr had to cure: its code, stack and files stay in
// the target until it has finished and exited on its own.
var ErrHelperStopped = errors.New("a parasite helper thread is stopped; its region and files stay in the process")

// helpersRunning tells whether a page-stream helper thread may still run
// in the region (its running word not yet cleared by the kernel,
// CLONE_CHILD_CLEARTID). Precondition: the parasite's own thread is
// stopped, so it starts no new helper.
func (p *Parasite) helpersRunning() bool {
	for i := 0; i < MaxStreams; i++ {
		if sharedword.Load(p.local, streamsOff+i*streamSize+streamRunning) != 0 {
			return true
		}
	}
	return false
}

// waitHelpers waits until no page-stream helper thread runs in the
// region. Precondition: the parasite's own thread is stopped, so it starts
// no new helper.
func (p *Parasite) waitHelpers() error {
	for i := 0; i < MaxStreams; i++ {
		o := streamsOff + i*streamSize
		for sharedword.Load(p.local, o+streamRunning) != 0 {
			tid := int(int32(binary.LittleEndian.Uint32(p.local[o+streamTid:])))
			st, err := proc.ReadStat(tid)
			if err != nil || gone(st.State) {
				// Gone with its process: nothing runs there.
				break
			}
			if stopped(st.State) {
				return fmt.Errorf("%w (thread %d)", ErrHelperStopped, tid)
			}
			// Until the kernel clears running (CLONE_CHILD_CLEARTID).
			sharedword.Wait(p.local, o+streamRunning, 1, pollInterval)
		}
	}
	return nil
}

// DumpPages hands the spans' memory to gocr through the page pipe and
// splices it to dst at dst's current offset, in order. The data never
// passes through gocr's heap: the parasite vmsplices the target's pages
// into the pipe and gocr splices the pipe into the file (man 2 vmsplice,
// man 2 splice).
func (p *Parasite) DumpPages(spans []Span, dst *os.File) (int64, error) {
	var written int64
	for len(spans) > 0 {
		n := min(len(spans), maxSpansPerCall)
		batch := spans[:n]
		spans = spans[n:]
		var total uint64
		for i, s := range batch {
			p.putIovec(dataOff+i*iovecSize, s)
			total += s.Len
		}
		var abort atomic.Bool
		done := make(chan spliceResult, 1)
		go func() {
			done <- drainPipes([2]int{int(p.pipes[0].Fd()), int(p.pipes[1].Fd())}, int(dst.Fd()), int64(total), int64(p.chunk), &abort)
		}()
		callErr := p.call(cmdDumpPages, dataOff, uint64(n), uint64(p.chunk))
		if callErr != nil {
			// Nothing more will come through the pipes.
			abort.Store(true)
		}
		res := <-done
		written += res.n
		if callErr != nil {
			return written, callErr
		}
		if res.err != nil {
			return written, fmt.Errorf("write pages of %d: %w", p.pid, res.err)
		}
	}
	return written, nil
}

// discardBufSize is what drainPipes reads at a time once the image takes
// no more: the parasite must still be able to empty its pipes.
const discardBufSize = 64 << 10

type spliceResult struct {
	n   int64
	err error
}

// drainPipes moves want bytes to dst, chunk by chunk from the two pipes
// in turn, as the parasite fills them. If writing to dst fails (a full
// disk, say) it goes on draining into nowhere, so the parasite never blocks
// on a full pipe, and reports the first error. It polls so that abort (the
// parasite failed) can end it.
func drainPipes(pipes [2]int, dstFd int, want, chunk int64, abort *atomic.Bool) spliceResult {
	var res spliceResult
	var got int64
	var discard []byte
	for i := 0; got < want; i++ {
		pipeFd := pipes[i%2]
		left := min(chunk, want-got)
		for left > 0 {
			pfd := []unix.PollFd{{Fd: int32(pipeFd), Events: unix.POLLIN}}
			n, err := unix.Poll(pfd, int(pollInterval.Milliseconds()))
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if err != nil {
				res.err = errors.Join(res.err, fmt.Errorf("poll page pipe: %w", err))
				return res
			}
			if n == 0 {
				if abort.Load() {
					return res
				}
				continue
			}
			if res.err == nil {
				m, err := unix.Splice(pipeFd, nil, dstFd, nil, int(left), unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
				switch {
				case errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR):
				case err != nil:
					res.err = fmt.Errorf("splice to page image: %w", err)
				case m == 0:
					res.err = fmt.Errorf("splice to page image: %w", io.ErrUnexpectedEOF)
					return res
				default:
					got += m
					left -= m
					res.n += m
				}
				continue
			}
			if discard == nil {
				discard = make([]byte, discardBufSize)
			}
			m, err := unix.Read(pipeFd, discard[:min(left, int64(len(discard)))])
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				continue
			}
			if err != nil || m == 0 {
				return res
			}
			got += int64(m)
			left -= int64(m)
		}
	}
	return res
}
