//go:build linux

package files

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/internal/childfds"
)

// The TCP watchdog keeps a dump's connections from being lost with a gocr
// that dies while it has them (SIGKILL, a crash). From before gocr puts
// the first connection in repair mode, or blocks the first one with
// nftables, until the dump has ended, a process of its own holds its own
// handles of the same sockets and waits for gocr's end of a pipe to close.
// If gocr closes it after saying the dump has ended, there is nothing to
// do. Otherwise gocr died, and the watchdog does what gocr would have
// done from where it stood:
//
//   - the dump was not complete (the job runs on: gocr's death detached
//     its processes): every connection still in repair mode leaves it,
//     SO_REUSEADDR set again where the connection had it, and the
//     dump's nftables table is removed, so the job's connections carry
//     on;
//   - the dump was complete (gocr was ending the job): the processes
//     holding the connections are killed, each connection is put in
//     repair mode, and the dump's table is turned into the one the
//     restore removes, so the connections go without a word and the
//     checkpoint's peers outside wait for the restore.
//
// A restore of a dump that kept its connections to peers outside blocked
// (--tcp-established) has a watchdog too, for the kept tables alone: they
// go once the processes run, and only then. Should gocr die before the
// restore's commit, the processes end with it (restorer/finish.go), and
// the tables stay, so the peers outside hear nothing and the images
// restore again; should it die after, the watchdog removes the tables,
// which gocr had not got to. It tells the two apart by the restore's
// lifeline, of which it holds a read end: the commit leaves a byte in it
// for good, which nothing reads.
//
// The watchdog holds its handles until it is done, so a socket whose
// processes died is closed by the watchdog's exit, in repair mode or not
// as it decided: closing the last handle of a socket in repair mode sends
// neither FIN nor RST (net/ipv4/tcp.c __tcp_close, tcp_disconnect).
//
// Why gocr executed again (/proc/self/exe, under the name watchdogName)
// and not a forked child: no Go code runs in a child before an exec, and
// what the watchdog must do (nft, setsockopt, pidfd_send_signal) is
// ordinary Go code. Why a pipe and not PR_SET_PDEATHSIG: the
// parent-death signal is sent when the thread that forked the child
// exits (man 2 prctl), which in Go is any thread the runtime ends, not
// gocr's death; the pipe's EOF comes when the last process holding its
// write end, gocr alone, is gone.

// watchdogName is argv[0] of gocr executed as a TCP watchdog.
const watchdogName = "gocr-tcp-watchdog"

// The watchdog's fds: its control pipe (gocr writes), the pipe it says it
// is ready on, then its sockets, then pidfds of their processes.
const (
	watchdogControlFd = 3
	watchdogReadyFd   = 4
	watchdogFirstFd   = 5
)

// The phases gocr tells the watchdog of, each a JSON watchdogMessage on
// the control pipe after the watchdogConfig.
const (
	phaseCapturing = "capturing" // until the images are complete
	phaseComplete  = "complete"  // the images are complete, the job is being ended
	phaseFinished  = "finished"  // gocr has done it all: nothing left to do
)

// watchdogConfig is the first message on the control pipe.
type watchdogConfig struct {
	Sockets []watchedSocket
	Owners  int    // how many pidfds follow the sockets
	Table   string // the dump's nftables table, "" without one
	Keep    string // the nft script that turns Table into the kept one
	// Restore: the watchdog of a restore, whose tables kept for it are
	// Kept (no sockets, no Table); its fd watchdogFirstFd is a read end
	// of the restore's lifeline.
	Restore bool
	Kept    []string
}

// watchedSocket is one connection the watchdog holds.
type watchedSocket struct {
	Name  string // for messages
	Reuse bool   // SO_REUSEADDR was on: repair mode clears it
	Owner int    // which pidfd is its process's
}

type watchdogMessage struct{ Phase string }

func init() {
	if len(os.Args) == 2 && os.Args[0] == watchdogName {
		os.Exit(runWatchdog())
	}
}

// watchdog is gocr's side of a running watchdog.
type watchdog struct {
	cmd  *exec.Cmd
	ctl  *os.File
	done chan struct{} // closed once cmd has been waited for
}

// watchdogWait bounds every wait for the watchdog: to start (exec, the Go
// runtime, reading its configuration) and to end once told to.
const watchdogWait = 10 * time.Second

// startWatchdog starts a watchdog of the connections held, whose dump
// blocks outside peers with block (nil if none), and returns once it
// holds them.
func startWatchdog(held []*heldConn, block *nftBlock) (w *watchdog, err error) {
	cfg := watchdogConfig{}
	if block != nil {
		cfg.Table, cfg.Keep = block.name, block.keepScript()
	}
	var extra []*os.File
	defer func() {
		for _, f := range extra {
			f.Close()
		}
	}()
	owners := map[int]int{}
	var pidfds []*os.File
	for _, hc := range held {
		d, err := unix.FcntlInt(uintptr(hc.h), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("pid %d fd %d: %w", hc.ref.Pid, hc.ref.Fd.Fd, err)
		}
		extra = append(extra, os.NewFile(uintptr(d), "socket"))
		i, ok := owners[hc.ref.Pid]
		if !ok {
			// The process is frozen: its PID names it until gocr
			// lets it go.
			pidfd, err := unix.PidfdOpen(hc.ref.Pid, 0)
			if err != nil {
				return nil, fmt.Errorf("pid %d: pidfd_open: %w", hc.ref.Pid, err)
			}
			i = len(pidfds)
			owners[hc.ref.Pid] = i
			pidfds = append(pidfds, os.NewFile(uintptr(pidfd), "pidfd"))
		}
		cfg.Sockets = append(cfg.Sockets, watchedSocket{Name: fmt.Sprintf("pid %d fd %d (%s)", hc.ref.Pid, hc.ref.Fd.Fd, hc.ref.Fd.Description),
			Reuse: hc.reuse, Owner: i})
	}
	extra = append(extra, pidfds...)
	cfg.Owners = len(pidfds)
	w, err = execWatchdog(cfg, extra)
	extra = nil // closed by execWatchdog
	return w, err
}

// startRestoreWatchdog starts the watchdog of a restore that removes the
// tables kept for it (nftables table names) should gocr die once the
// restore has committed, which a byte left in lifeline, a read end of the
// restore's lifeline, says.
func startRestoreWatchdog(kept []string, lifeline *os.File) (*watchdog, error) {
	d, err := unix.FcntlInt(lifeline.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("start the TCP watchdog: lifeline: %w", err)
	}
	return execWatchdog(watchdogConfig{Restore: true, Kept: kept}, []*os.File{os.NewFile(uintptr(d), "lifeline")})
}

// execWatchdog starts gocr again as a watchdog with configuration cfg and
// the sockets and pidfds extra (which it closes), and returns once the
// watchdog is ready.
func execWatchdog(cfg watchdogConfig, socks []*os.File) (w *watchdog, err error) {
	extra := socks
	defer func() {
		for _, f := range extra {
			f.Close()
		}
	}()
	ctlR, ctlW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			ctlW.Close()
		}
	}()
	readyR, readyW, err := os.Pipe()
	if err != nil {
		ctlR.Close()
		return nil, err
	}
	defer readyR.Close()
	extra = append([]*os.File{ctlR, readyW}, extra...)
	table := cfg.Table
	if table == "" {
		table = "-"
	}
	// argv[1] names the table, so that a gocr looking for tables left
	// behind sees that this one is still looked after (dumpTableInUse).
	cmd := &exec.Cmd{Path: "/proc/self/exe", Args: []string{watchdogName, table}, Stderr: os.Stderr, ExtraFiles: extra,
		// A session of its own: a terminal's SIGINT or SIGHUP for
		// gocr's process group does not reach it.
		SysProcAttr: &syscall.SysProcAttr{Setsid: true}}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the TCP watchdog: %w", err)
	}
	w = &watchdog{cmd: cmd, ctl: ctlW, done: make(chan struct{})}
	go func() { cmd.Wait(); close(w.done) }()
	defer func() {
		if err != nil {
			cmd.Process.Kill()
			<-w.done
		}
	}()
	for _, f := range extra {
		f.Close()
	}
	extra = nil
	if err := json.NewEncoder(ctlW).Encode(cfg); err != nil {
		return nil, fmt.Errorf("configure the TCP watchdog: %w", err)
	}
	readyR.SetReadDeadline(time.Now().Add(watchdogWait))
	var b [1]byte
	if _, err := io.ReadFull(readyR, b[:]); err != nil {
		return nil, fmt.Errorf("the TCP watchdog did not start: %w", err)
	}
	return w, nil
}

// tell moves the watchdog to phase.
func (w *watchdog) tell(phase string) error {
	if w == nil {
		return nil
	}
	if err := json.NewEncoder(w.ctl).Encode(watchdogMessage{Phase: phase}); err != nil {
		return fmt.Errorf("tell the TCP watchdog %s: %w", phase, err)
	}
	return nil
}

// finish tells the watchdog there is nothing left to do and waits until
// it has ended, its handles closed. Once is enough: it does nothing
// after the first time.
func (w *watchdog) finish() error {
	if w == nil || w.ctl == nil {
		return nil
	}
	defer func() { w.ctl = nil }()
	err := w.tell(phaseFinished)
	w.ctl.Close()
	select {
	case <-w.done:
	case <-time.After(watchdogWait):
		w.cmd.Process.Kill()
		<-w.done
		err = errors.Join(err, fmt.Errorf("the TCP watchdog (pid %d) did not end within %v: killed", w.cmd.Process.Pid, watchdogWait))
	}
	return err
}

// runWatchdog is the watchdog process: it reads its configuration, says it
// is ready, follows gocr's phases until the control pipe closes, and then
// acts on the last one.
func runWatchdog() int {
	// Its stderr may be a pipe nobody reads once gocr is gone.
	signal.Ignore(syscall.SIGPIPE, syscall.SIGINT, syscall.SIGHUP)
	// Its sockets and pidfds must not reach nft.
	if err := childfds.CloseOnExecInherited(); err != nil {
		watchdogWarn("%v", err)
		return 2
	}
	dec := json.NewDecoder(os.NewFile(watchdogControlFd, "control"))
	var cfg watchdogConfig
	if err := dec.Decode(&cfg); err != nil {
		watchdogWarn("read the configuration: %v", err)
		return 2
	}
	ready := os.NewFile(watchdogReadyFd, "ready")
	if _, err := ready.Write([]byte{1}); err != nil {
		return 2
	}
	ready.Close()
	phase := phaseCapturing
	for {
		var m watchdogMessage
		if err := dec.Decode(&m); err != nil {
			break // gocr closed the pipe, or died
		}
		phase = m.Phase
	}
	var err error
	switch {
	case phase == phaseFinished:
		return 0
	case cfg.Restore:
		err = unblockAfterDeath(cfg)
	case phase == phaseComplete:
		err = sealAfterDeath(cfg)
	default:
		err = releaseAfterDeath(cfg)
	}
	if err != nil {
		watchdogWarn("%v", err)
		return 1
	}
	return 0
}

func watchdogWarn(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "gocr: TCP watchdog: "+format+"\n", args...)
}

// releaseAfterDeath gives the job its connections back: out of repair
// mode, their packets let through.
func releaseAfterDeath(cfg watchdogConfig) error {
	var errs []error
	for i, s := range cfg.Sockets {
		h := watchdogFirstFd + i
		on, err := unix.GetsockoptInt(h, unix.SOL_TCP, unix.TCP_REPAIR)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: getsockopt TCP_REPAIR: %w", s.Name, err))
			continue
		}
		if on == 0 {
			continue
		}
		if err := leaveRepair(h, s.Reuse); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s.Name, err))
		}
	}
	if cfg.Table != "" {
		errs = append(errs, removeNftTable(cfg.Table))
	}
	return errors.Join(errs...)
}

// unblockAfterDeath removes the tables a restore whose processes run had
// not removed yet, if it had committed: a byte is left in the lifeline
// (FIONREAD, man 7 pipe: "the number of unread bytes"). Before the
// commit, the processes end with gocr, and the tables stay for the next
// restore.
func unblockAfterDeath(cfg watchdogConfig) error {
	// FIONREAD is TIOCINQ (include/uapi/asm-generic/ioctls.h).
	n, err := unix.IoctlGetInt(watchdogFirstFd, unix.TIOCINQ)
	if err != nil {
		return fmt.Errorf("the restore's lifeline: FIONREAD: %w", err)
	}
	if n == 0 {
		return nil
	}
	var errs []error
	for _, table := range cfg.Kept {
		errs = append(errs, removeNftTable(table))
	}
	return errors.Join(errs...)
}

// sealAfterDeath ends what gocr was ending: the processes holding the
// connections, then the connections themselves, silently, their peers
// outside kept blocked for the restore.
func sealAfterDeath(cfg watchdogConfig) error {
	var errs []error
	first := watchdogFirstFd + len(cfg.Sockets)
	for i := range cfg.Owners {
		pidfd := first + i
		// A process gocr killed already is gone, or going (ESRCH once
		// it has exited).
		if err := unix.PidfdSendSignal(pidfd, unix.SIGKILL, nil, 0); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("kill a dumped process: pidfd_send_signal: %w", err))
			continue
		}
		// A pidfd polls readable once its process has exited (man 2
		// pidfd_open).
		p := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
		deadline := time.Now().Add(watchdogWait)
		for {
			n, err := unix.Poll(p, int(max(0, time.Until(deadline).Milliseconds())))
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if n == 0 || err != nil {
				errs = append(errs, fmt.Errorf("a dumped process did not end within %v (%v)", watchdogWait, err))
			}
			break
		}
	}
	for i, s := range cfg.Sockets {
		if err := setRepair(watchdogFirstFd+i, unix.TCP_REPAIR_ON); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s.Name, err))
		}
	}
	if cfg.Table != "" {
		if err := nft(cfg.Keep); err != nil && nftTableExists(cfg.Table) {
			// Gone already: gocr had turned it into the kept one.
			errs = append(errs, fmt.Errorf("keep the connections to peers outside the dump blocked: %w", err))
		}
	}
	return errors.Join(errs...)
}

// leaveRepair takes a connection that the job still holds out of repair
// mode. TCP_REPAIR_OFF, not TCP_REPAIR_OFF_NO_WP: it sends a window probe
// and sets snd_wl1 so that the peer's answer updates the send window
// (net/ipv4/tcp.c do_tcp_setsockopt, tcp_send_window_probe): whatever the
// peer sent or announced while the connection was in repair mode, the
// two ends agree again at once (the _NO_WP form is for a connection made
// again whose window TCP_REPAIR_WINDOW has just set). Leaving repair mode
// sets sk_reuse to SK_NO_REUSE whatever it was, so SO_REUSEADDR is set
// back where the job had it.
func leaveRepair(h int, reuse bool) error {
	if err := setRepair(h, unix.TCP_REPAIR_OFF); err != nil {
		return err
	}
	if reuse {
		if err := unix.SetsockoptInt(h, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
			return fmt.Errorf("setsockopt SO_REUSEADDR 1 after repair mode: %w", err)
		}
	}
	return nil
}

// dumpTableInUse tells whether the table of a dump, gocr_PID_START, is
// still looked after: by its gocr (that PID, started then), or by a
// watchdog named after it.
func dumpTableInUse(name, pid, start string) bool {
	if n, err := strconv.Atoi(pid); err == nil {
		if st, err := startTime(n); err == nil && st == start {
			return true
		}
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	want := []byte(watchdogName + "\x00" + name + "\x00")
	for _, p := range procs {
		if b, err := os.ReadFile(p); err == nil && bytes.Equal(b, want) {
			return true
		}
	}
	return false
}
