//go:build linux

package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// limitHelper is a running c/limit.c: the machine's limit for the work a
// dump and a restore do, on a buffer filled exactly as the target's memory.
// It is a separate C process, not a buffer in this Go program, so that its
// pages are faulted and filled by the same code as bigmem's (no Go heap or
// GC in the way) and so that this process's own RSS stays small while gocr
// runs next to it. It answers one command a line on stdin with the
// nanoseconds the work took (limit.c says the protocol).
type limitHelper struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
}

// startLimit starts the helper with a buffer of mibs MiB and waits until
// it has filled it.
func (b *bench) startLimit(mibs int) (*limitHelper, error) {
	cmd := exec.Command(filepath.Join(b.bin, "limit"), strconv.Itoa(mibs))
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("limit helper stdin: %w", err)
	}
	outPipe, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("limit helper stdout: %w", err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start limit helper: %w", err)
	}
	h := &limitHelper{cmd: cmd, in: in, out: bufio.NewReader(outPipe)}
	line, err := h.out.ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready" {
		h.stop()
		return nil, fmt.Errorf("limit helper did not start: %q %v", line, err)
	}
	return h, nil
}

// write times one write() of the whole buffer to a new file, with fsync
// or without: a dump's work.
func (h *limitHelper) write(path string, fsync bool) (int64, error) {
	arg := "0"
	if fsync {
		arg = "1"
	}
	return h.do("w " + path + " " + arg)
}

// read times read()ing files into freshly mapped memory: a restore's work.
func (h *limitHelper) read(files []string) (int64, error) {
	return h.do("r " + strings.Join(files, " "))
}

func (h *limitHelper) do(cmd string) (int64, error) {
	if _, err := fmt.Fprintln(h.in, cmd); err != nil {
		return 0, fmt.Errorf("limit helper %q: %w", cmd, err)
	}
	line, err := h.out.ReadString('\n')
	if err != nil {
		return 0, fmt.Errorf("limit helper %q: %w", cmd, err)
	}
	ns, err := strconv.ParseInt(strings.TrimSpace(line), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("limit helper %q: %s", cmd, strings.TrimSpace(line))
	}
	return ns, nil
}

// stop closes the helper's stdin, which ends it, and waits for it.
func (h *limitHelper) stop() {
	h.in.Close()
	h.cmd.Wait()
}
