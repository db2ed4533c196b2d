//go:build linux

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/contextfile"
)

// compressionMiB is the size of the process the compression rows
// checkpoint.
const compressionMiB = 1024

// compressions are the rows: the context as written without compression
// (the reference), then each --compress.
var compressions = []string{"none", "zstd-fastest", "zstd", "lz4"}

// compressionRows checkpoints a process holding 1 GiB of memory as a
// job's may be (c/mixedmem.c: half random, half text and zeros) with
// gocr checkpoint, which lets it run on, once per --compress and
// destination in each round: a context file on tmpfs, one on the disk,
// and a pipe to cat >/dev/null. The figure is the context's own writing
// (the checkpoint's --stats context_write_ns: compressing, writing,
// fsyncing), as a rate of the uncompressed bytes, beside the same without
// compression, in the same round; the ratio is of the context's sizes.
// The context on tmpfs is then read back in this process
// (contextfile.Read: decompressing and checking), the work cr_restart
// does before it restores. The limit for writing the same bytes
// (c/limit.c, write+fsync) is measured in each round too.
func (b *bench) compressionRows() {
	rows := map[string]*CompressionRow{}
	for _, c := range compressions {
		rows[c] = &CompressionRow{Name: c, MiB: compressionMiB}
		b.res.Compression = append(b.res.Compression, rows[c])
	}
	limit := &CompressionRow{Name: "limit (write+fsync)", MiB: compressionMiB}
	b.res.Compression = append(b.res.Compression, limit)
	if err := b.compressionRounds(rows, limit); err != nil {
		rows["none"].Err = err.Error()
		b.logf("compression rows: %v", err)
	}
	for _, row := range rows {
		row.RawBytes = rows["none"].ContextBytes
	}
	limit.RawBytes, limit.ContextBytes = compressionMiB*mib, compressionMiB*mib
}

func (b *bench) compressionRounds(rows map[string]*CompressionRow, limit *CompressionRow) error {
	runs := b.o.compressRuns
	b.logf("compression rows: %d rounds of %d checkpoints of %d MiB", runs, 3*len(compressions), compressionMiB)
	h, err := b.startLimit(compressionMiB)
	if err != nil {
		return err
	}
	defer h.stop()
	pid, err := b.startTarget("mixedmem", strconv.Itoa(compressionMiB))
	if err != nil {
		return err
	}
	defer b.kill(pid)
	tmpfs, err := os.MkdirTemp(tmpfsDir, "gocr-bench-ctx-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmpfs)
	disk, err := os.MkdirTemp(b.o.diskDir, "gocr-bench-ctx-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(disk)
	images := filepath.Join(tmpfs, "images")
	if _, err := b.runGocr("dump", "-t", strconv.Itoa(pid), "-D", images, "--leave-running"); err != nil {
		return err
	}
	for i := 0; i < runs; i++ {
		order := slices.Clone(compressions)
		if i%2 == 1 {
			// Neither first nor last always: a round's order is the
			// last one's reversed.
			slices.Reverse(order)
		}
		for _, c := range order {
			row := rows[c]
			tmpfsNs, tmpfsBytes, readNs, err := b.compressedToFile(pid, c, tmpfs, true)
			if err != nil {
				return err
			}
			diskNs, _, _, err := b.compressedToFile(pid, c, disk, false)
			if err != nil {
				return err
			}
			pipeNs, err := b.compressedToPipe(pid, c, tmpfs)
			if err != nil {
				return err
			}
			wallNs, cpuNs, err := compressOnly(images, c)
			if err != nil {
				return err
			}
			row.CompressNs = append(row.CompressNs, wallNs)
			row.CompressCPUNs = append(row.CompressCPUNs, cpuNs)
			row.TmpfsWriteNs = append(row.TmpfsWriteNs, tmpfsNs)
			row.DiskWriteNs = append(row.DiskWriteNs, diskNs)
			row.PipeWriteNs = append(row.PipeWriteNs, pipeNs)
			row.ReadNs = append(row.ReadNs, readNs)
			row.ContextBytes = tmpfsBytes
			b.logf("compression %s: round %d: tmpfs %v, disk %v, pipe %v, read %v, compress alone %v (%v of CPU), %.0f MiB", c, i+1,
				ms(tmpfsNs), ms(diskNs), ms(pipeNs), ms(readNs), ms(wallNs), ms(cpuNs), float64(tmpfsBytes)/mib)
		}
		for _, fs := range []struct {
			dir string
			ns  *[]int64
		}{{tmpfs, &limit.TmpfsWriteNs}, {disk, &limit.DiskWriteNs}} {
			f := filepath.Join(fs.dir, "limit.bin")
			unix.Sync()
			ns, err := h.write(f, true)
			os.Remove(f)
			if err != nil {
				return err
			}
			*fs.ns = append(*fs.ns, ns)
		}
	}
	return nil
}

// checkpointFigures are the figures of gocr checkpoint --stats this
// bench reads.
type checkpointFigures struct {
	ContextBytes   int64 `json:"context_bytes"`
	ContextWriteNs int64 `json:"context_write_ns"`
}

func compressArg(c string) []string {
	if c == "none" {
		return nil
	}
	return []string{"--compress=" + c}
}

// compressedToFile checkpoints pid to a context file in dir with
// compression c and returns the context's write time and size; with read,
// also the time to read it back whole (decompressing, checking every
// entry).
func (b *bench) compressedToFile(pid int, c, dir string, read bool) (writeNs, size, readNs int64, err error) {
	ctx := filepath.Join(dir, "ctx")
	stats := filepath.Join(dir, "stats.json")
	defer os.Remove(ctx)
	defer os.Remove(stats)
	unix.Sync()
	args := append(append([]string{"checkpoint", "--stats", stats}, compressArg(c)...), "-f", ctx, strconv.Itoa(pid))
	if _, err := b.runGocr(args...); err != nil {
		return 0, 0, 0, err
	}
	st, err := readCheckpointFigures(stats)
	if err != nil {
		return 0, 0, 0, err
	}
	if read {
		if readNs, err = readContext(ctx); err != nil {
			return 0, 0, 0, err
		}
	}
	return st.ContextWriteNs, st.ContextBytes, readNs, nil
}

// compressedToPipe checkpoints pid with -f - into a pipe to cat
// >/dev/null and returns the context's write time. The dump's own
// directory goes to tmp (TMPDIR), so no disk is involved.
func (b *bench) compressedToPipe(pid int, c, tmp string) (int64, error) {
	stats := filepath.Join(tmp, "stats.json")
	defer os.Remove(stats)
	ctx, cancel := context.WithTimeout(context.Background(), gocrTimeout)
	defer cancel()
	script := `"$@" | cat >/dev/null`
	args := append(append([]string{"-c", script, "sh", b.gocr, "checkpoint", "--stats", stats}, compressArg(c)...), "-f", "-", strconv.Itoa(pid))
	cmd := exec.CommandContext(ctx, "/bin/sh", args...)
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	if out, err := cmd.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("gocr checkpoint -f - | cat: %w: %s", err, out)
	}
	st, err := readCheckpointFigures(stats)
	if err != nil {
		return 0, err
	}
	return st.ContextWriteNs, nil
}

func readCheckpointFigures(path string) (*checkpointFigures, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read checkpoint stats: %w", err)
	}
	var st checkpointFigures
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	if st.ContextWriteNs <= 0 || st.ContextBytes <= 0 {
		return nil, fmt.Errorf("%s: no context figures: %s", path, data)
	}
	return &st, nil
}

// readContext reads the context file path whole, as cr_restart does
// before extracting it, and returns how long it took.
func readContext(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	start := time.Now()
	_, err = contextfile.Read(f, func(_ contextfile.Entry, data io.Reader) error {
		_, err := io.Copy(io.Discard, data)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", path, err)
	}
	return time.Since(start).Nanoseconds(), nil
}

// compressOnly writes the images in dir as a context with compression c
// to io.Discard, in this process, and returns the wall time and the CPU
// time (every thread's, user and system: getrusage(2) RUSAGE_SELF) it
// took. The CPU time says what compressing costs whatever else runs on
// the machine.
func compressOnly(dir, c string) (wallNs, cpuNs int64, err error) {
	comp := contextfile.NoCompression
	if c != "none" {
		if comp, err = contextfile.ParseCompression(c); err != nil {
			return 0, 0, err
		}
	}
	var before, after unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &before)
	start := time.Now()
	cw, err := contextfile.NewWriterOptions(io.Discard, contextfile.WriterOptions{Compression: comp})
	if err == nil {
		err = cw.AddDir(dir)
	}
	if err == nil {
		err = cw.Close()
	}
	wallNs = time.Since(start).Nanoseconds()
	unix.Getrusage(unix.RUSAGE_SELF, &after)
	if err != nil {
		return 0, 0, fmt.Errorf("compress %s with %s: %w", dir, c, err)
	}
	cpu := func(r *unix.Rusage) int64 { return r.Utime.Nano() + r.Stime.Nano() }
	return wallNs, cpu(&after) - cpu(&before), nil
}

// rate is bytes over the median of ns, in MB/s (10^6 bytes a second).
func rate(bytes int64, ns []int64) float64 {
	m := median(ns)
	if m <= 0 {
		return 0
	}
	return float64(bytes) / (float64(m) / 1e9) / 1e6
}

func printCompression(w io.Writer, rows []*CompressionRow) {
	fmt.Fprintf(w, "compression of a %d MiB process's context (half random, half text and zeros): the context's writing (compress, write, fsync)\n", compressionMiB)
	fmt.Fprintf(w, "as MB/s of the uncompressed bytes, median of the rounds; \"none\" is the same context uncompressed and the limit writes as many bytes, same rounds;\n")
	fmt.Fprintf(w, "read: the tmpfs context read back whole (decompressed, checked) as cr_restart does; alone: the context of the same images written to\n")
	fmt.Fprintf(w, "io.Discard in the bench's process, by wall time and by CPU time (MB per CPU-second: what compressing costs whatever the load)\n\n")
	fmt.Fprintf(w, "| compression | runs | context MiB | ratio | tmpfs MB/s | disk MB/s | pipe to cat MB/s | read MB/s | alone MB/s | alone MB per CPU-s |\n|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		if r.Err != "" && len(r.TmpfsWriteNs) == 0 {
			fmt.Fprintf(w, "| %s | 0 | error: %s ||||||||\n", r.Name, oneLine(r.Err))
			continue
		}
		ratio, pipe, read := "-", "-", "-"
		if r.ContextBytes > 0 {
			ratio = fmt.Sprintf("%.2f", float64(r.RawBytes)/float64(r.ContextBytes))
		}
		if len(r.PipeWriteNs) > 0 {
			pipe = fmt.Sprintf("%.0f", rate(r.RawBytes, r.PipeWriteNs))
		}
		if len(r.ReadNs) > 0 {
			read = fmt.Sprintf("%.0f", rate(r.RawBytes, r.ReadNs))
		}
		alone, cpu := "-", "-"
		if len(r.CompressNs) > 0 {
			alone = fmt.Sprintf("%.0f", rate(r.RawBytes, r.CompressNs))
			cpu = fmt.Sprintf("%.0f", rate(r.RawBytes, r.CompressCPUNs))
		}
		fmt.Fprintf(w, "| %s | %d | %.0f | %s | %.0f | %.0f | %s | %s | %s | %s |\n", r.Name, len(r.TmpfsWriteNs), float64(r.ContextBytes)/mib, ratio,
			rate(r.RawBytes, r.TmpfsWriteNs), rate(r.RawBytes, r.DiskWriteNs), pipe, read, alone, cpu)
		if r.Err != "" {
			fmt.Fprintf(w, "|  | error after %d rounds: %s ||||||||\n", len(r.TmpfsWriteNs), oneLine(r.Err))
		}
	}
	fmt.Fprintln(w)
}
