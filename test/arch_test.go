//go:build linux

package test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestIA32Refused: a 32-bit (ia32) process is refused at dump in one line
// naming it, before anything else, and runs on untouched (ia32pause.c,
// built here with gcc -m32 -nostdlib, which needs no 32-bit C library).
func TestIA32Refused(t *testing.T) {
	needsRoot(t)
	needsGocr(t)
	bin := filepath.Join(t.TempDir(), "ia32pause")
	out, err := exec.Command("gcc", "-m32", "-nostdlib", "-static", "-ffreestanding", "-fno-pic", "-no-pie", "-O2",
		"-o", bin, filepath.Join("targets", "ia32pause.c")).CombinedOutput()
	if err != nil {
		t.Skipf("gcc cannot build a 32-bit program here: %v: %s", err, strings.TrimSpace(string(out)))
	}
	cmd := exec.Command(bin)
	if err := cmd.Start(); err != nil {
		if errors.Is(err, syscall.ENOEXEC) {
			t.Skip("this kernel runs no 32-bit programs (no CONFIG_IA32_EMULATION)")
		}
		t.Fatalf("start %s: %v", bin, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	defer func() { cmd.Process.Kill(); <-done }()
	pid := cmd.Process.Pid
	// Sleeping in pause once exec is done: the only place it sleeps.
	deadline := time.Now().Add(5 * time.Second)
	for {
		exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if exe == bin && strings.Contains(string(b), ") S ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d (%s) not asleep in pause after 5s: exe %q, stat %q", pid, bin, exe, b)
		}
		time.Sleep(10 * time.Millisecond)
	}
	r := runGocr(t, nil, "dump", "-t", strconv.Itoa(pid), "-D", t.TempDir())
	assertRefused(t, r, []string{"pid " + strconv.Itoa(pid), "32-bit (ia32) process"}, nil)
	assertUntouched(t, pid)
	select {
	case <-done:
		t.Fatalf("pid %d exited after the refused dump: %v", pid, cmd.ProcessState)
	default:
	}
}

// TestSecretMemRefused: memfd_secret(2) memory is readable by no process
// but its own, so a mapping of it is refused at dump, named by its
// addresses, and so is an fd of it; the target runs on with it intact
// (secretmem.c).
func TestSecretMemRefused(t *testing.T) {
	needsRoot(t)
	needsGocr(t)
	// ENOSYS: a kernel without CONFIG_SECRETMEM, or one booted without
	// secretmem enabled (secretmem.enable=0, mm/secretmem.c).
	fd, _, errno := syscall.Syscall(unix.SYS_MEMFD_SECRET, 0, 0, 0)
	if errno == syscall.ENOSYS {
		t.Skip("this kernel has no memfd_secret (CONFIG_SECRETMEM, secretmem.enable)")
	}
	if errno == 0 {
		syscall.Close(int(fd))
	}
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"mapping", nil, "is memfd_secret memory"},
		{"fd", []string{"fd"}, "fd 3"},
	} {
		t.Run(c.name, func(t *testing.T) {
			tg := startTarget(t, "secretmem", c.args...)
			r := runGocr(t, nil, "dump", "-t", strconv.Itoa(tg.pid), "-D", t.TempDir())
			assertRefused(t, r, []string{"pid " + strconv.Itoa(tg.pid), c.want, "memfd_secret memory"}, nil)
			checkIntact(t, tg)
		})
	}
}
