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

type limitHelper struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
}

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

func (h *limitHelper) stop() {
	h.in.Close()
	h.cmd.Wait()
}
