//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/callbacks"
	"github.com/gocr/gocr/contextfile"
	"github.com/gocr/gocr/files"
	"github.com/gocr/gocr/gocrpb"
	"github.com/gocr/gocr/images"
	"github.com/gocr/gocr/restorer"
)

func restartCommand() *cli.Command {
	hook := func(name, when string) cli.Flag {
		return &cli.StringFlag{Name: name, Usage: "run `CMD` with /bin/sh " + when}
	}
	flags := []cli.Flag{
		&cli.StringFlag{Name: "file", Aliases: []string{"f"}, Usage: "read the context from `FILE` (- for standard input)"},
		&cli.IntFlag{Name: "fd", Aliases: []string{"F"}, Value: -1, DefaultText: "none", Usage: "read the context from the open file descriptor `FD`"},
		&cli.BoolFlag{Name: "restore-pid", Usage: "restore every process and thread with its own PID (the default)"},
		&cli.BoolFlag{Name: "no-restore-pid", Usage: "give the processes new PIDs (not supported yet)"},
		&cli.BoolFlag{Name: "detach", Aliases: []string{"d"}, Usage: "return once the processes run, instead of waiting for the eldest"},
		hook("run-on-success", "once the processes run; if it exits non-zero, cr_restart exits with its status at once"),
		hook("run-on-fail-args", "if the command line is wrong or the context cannot be read"),
		hook("run-on-fail-temp", "on a temporary failure (a PID in use, a lock held); its non-zero status replaces cr_restart's"),
		hook("run-on-fail-perm", "on a permanent failure (a damaged or unsupported context); its non-zero status replaces cr_restart's"),
		hook("run-on-fail-env", "on a failure of the environment (a file or directory the job needs is missing); its non-zero status replaces cr_restart's"),
		hook("run-on-failure", "on any failure that has no --run-on-fail-* of its own"),
		trustImagesFlag,
		pidnsFlag(),
		relocateFlag(),
		&cli.StringSliceFlag{Name: "inherit-fd", Usage: "give cr_restart's own fd N to every fd of the job that was joined outside it through KEY (`fd[N]:KEY`, KEY as gocr show names it, e.g. pipe:[1234]; repeatable)"},
		statsFlag("restart"),
		&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print no error message (the exit code still tells)"},
		&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "print what is done"},
	}
	return &cli.Command{
		Name:      "restart",
		Usage:     "restart processes from a context file (BLCR's cr_restart)",
		UsageText: "cr_restart [options] FILE | DIR\n   cr_restart [options] -f FILE | -F FD\n   gocr restart [options] FILE | DIR",
		Description: "Starts the processes saved in the context FILE again, each with its own PID, where they\n" +
			"were checkpointed. cr_restart becomes the parent of the eldest and, unless -d is given,\n" +
			"waits for it and exits as it does (with its exit status, or killed by the same\n" +
			"signal). A FILE of - reads the context from standard input. The same context can be\n" +
			"restarted as often as wanted, once the processes with its PIDs are gone.\n" +
			"A DIR of periodic checkpoints (cr_run --checkpoint-every) restarts from its newest\n" +
			"generation that reads whole, going back past damaged ones with a note.\n" +
			"A PID in use by another program restarts the processes in a new PID namespace, where\n" +
			"each has its own PID (--pidns=auto); one in use by the job itself, still running\n" +
			"after a checkpoint that let it go on, is refused (give --pidns=always for a copy).\n" +
			"Standard input, output and error that were a terminal become cr_restart's\n" +
			"controlling terminal; ones that were a pipe or socket from outside the job become\n" +
			"cr_restart's own (standard input: /dev/null when the context comes from it), said in\n" +
			"one line, unless --inherit-fd fd[N]:KEY gives cr_restart's fd N in their place; another\n" +
			"fd on a pipe from outside gets a pipe whose other end is closed, said likewise; other\n" +
			"fds joined outside the job (a socket, a deleted file) need it.\n" +
			"A failed restart leaves no process behind, and exits with the code of its class:\n" +
			"64 the command line or the context file cannot be read, 65 permanent (the context is\n" +
			"damaged or cannot be restored), 69 environment (a file or directory the job needs is\n" +
			"missing or changed), 75 temporary (a PID in use, a lock held: try again later).",
		Flags:  append(flags, afterFlags("restart")...),
		Action: restartAction,
	}
}

// failClass is a class of restart failure (cr_restart(1), "Error
// handling"): its hook option and exit code.
type failClass struct {
	name string // as in --run-on-fail-NAME
	code int
}

var (
	failArgs = failClass{"args", exitUsage}
	failPerm = failClass{"perm", exitPermanent}
	failTemp = failClass{"temp", exitTemporary}
	failEnv  = failClass{"env", exitEnvironment}
)

func (f failClass) what() string {
	switch f.name {
	case "args":
		return "bad arguments"
	case "temp":
		return "temporary failure"
	case "env":
		return "failure of the environment"
	}
	return "permanent failure"
}

// classify tells the class of a restart failure.
func classify(err error) failClass {
	var ue usageError
	switch {
	case errors.As(err, &ue):
		return failArgs
	case errors.Is(err, contextfile.ErrNotContext), errors.Is(err, contextfile.ErrDamaged), errors.Is(err, contextfile.ErrVersion):
		return failPerm
	case errors.Is(err, unix.ENOSPC), errors.Is(err, unix.EDQUOT):
		return failTemp
	}
	switch restorer.ClassOf(err) {
	case restorer.Temporary:
		return failTemp
	case restorer.Environment:
		return failEnv
	}
	return failPerm
}

// restartOptions is what the command line of a restart says.
type restartOptions struct {
	in        *os.File
	genDir    string // a directory of generations, instead of in
	fromStdin bool
	detach    bool
	after     unix.Signal
	trust     bool
	pidns     string
	relocate  []string
	inherit   []string // --inherit-fd fd[N]:KEY
	stats     string   // --stats FILE, absolute
	quiet     bool
}

func restartAction(c *cli.Context) error {
	o, err := restartArgs(c)
	if err != nil {
		return failRestart(c, classify(err), err)
	}
	defer o.in.Close()
	sigs := catchSignals()
	const done = "the processes were restarted; they run on"
	res, err := runRestart(sigs.ctx, c, o, func() { sigs.release(done) })
	if err := sigs.end(err, "no process it created is left", done); err != nil {
		return failRestart(c, classify(err), err)
	}
	if o.detach {
		return nil
	}
	if res.Signal != 0 {
		// cr_restart(1): it kills itself with the signal that killed
		// the eldest, so whoever waits for it sees the same end.
		dieLike(unix.Signal(res.Signal))
	}
	if res.ExitStatus != 0 {
		return exitCode(res.ExitStatus)
	}
	return nil
}

// failRestart ends a failed restart: the hook of its class runs, and a
// non-zero status of it is cr_restart's, with no message; otherwise the
// message and the class's exit code (cr_restart(1), "Error handling").
func failRestart(c *cli.Context, class failClass, err error) error {
	hook := c.String("run-on-fail-" + class.name)
	if hook == "" {
		hook = c.String("run-on-failure")
	}
	if hook != "" {
		if code := runHook(hook); code != 0 {
			return exitCode(code)
		}
	}
	return report(fmt.Errorf("%s: %w", class.what(), err), class.code, c.Bool("quiet"))
}

// runHook runs cmd as system(3) does, with /bin/sh -c, and returns its
// exit status (128+N if killed by signal N).
func runHook(cmd string) int {
	sh := exec.Command("/bin/sh", "-c", cmd)
	sh.Stdin, sh.Stdout, sh.Stderr = os.Stdin, os.Stdout, os.Stderr
	err := sh.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	}
	fmt.Fprintf(os.Stderr, "%s: run %q: %v\n", progName, cmd, err)
	return 127
}

func restartArgs(c *cli.Context) (*restartOptions, error) {
	o := &restartOptions{detach: c.Bool("detach"), trust: c.Bool("trust-images"), quiet: c.Bool("quiet"),
		pidns: c.String("pidns"), relocate: c.StringSlice("relocate"), inherit: c.StringSlice("inherit-fd")}
	switch o.pidns {
	case restorer.PidnsAuto, restorer.PidnsAlways, restorer.PidnsNever:
	default:
		return nil, usagef("invalid --pidns %q: use auto, always or never", o.pidns)
	}
	if err := checkRelocations(o.relocate); err != nil {
		return nil, err
	}
	for _, spec := range o.inherit {
		n, _, err := files.ParseInheritFd(spec)
		if err != nil {
			return nil, usageError{err}
		}
		if _, err := unix.FcntlInt(uintptr(n), unix.F_GETFD, 0); err != nil {
			return nil, usagef("--inherit-fd %s: fd %d is not open", spec, n)
		}
	}
	if c.IsSet("stats") {
		abs, err := filepath.Abs(c.String("stats"))
		if err != nil {
			return nil, usageError{err}
		}
		o.stats = abs
	}
	if c.Bool("no-restore-pid") {
		if c.Bool("restore-pid") {
			return nil, usagef("give --restore-pid or --no-restore-pid, not both")
		}
		return nil, usagef("--no-restore-pid is not supported yet: gocr restarts every process with its own PID")
	}
	var err error
	if o.after, err = afterSignal(c); err != nil {
		return nil, err
	}
	var sources []string
	if c.IsSet("file") {
		sources = append(sources, "-f "+c.String("file"))
	}
	if c.IsSet("fd") {
		sources = append(sources, "-F "+strconv.Itoa(c.Int("fd")))
	}
	for _, a := range c.Args().Slice() {
		sources = append(sources, a)
	}
	switch {
	case len(sources) == 0:
		return nil, usagef("give the context FILE to restart from (- for standard input)")
	case len(sources) > 1:
		return nil, usagef("give one context, with the options before it, not %q", sources)
	}
	switch path := c.String("file"); {
	case c.IsSet("fd"):
		fd := c.Int("fd")
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); fd < 0 || err != nil {
			return nil, usagef("--fd %d: not an open file descriptor", fd)
		}
		o.in = os.NewFile(uintptr(fd), "fd "+strconv.Itoa(fd))
	case c.IsSet("file") && path == "-", !c.IsSet("file") && c.Args().First() == "-":
		o.in, o.fromStdin = os.Stdin, true
	default:
		if !c.IsSet("file") {
			path = c.Args().First()
		}
		if st, err := os.Stat(path); err == nil && st.IsDir() {
			o.genDir = path
			break
		}
		if o.in, err = openContext(path, o.trust); err != nil {
			return nil, err
		}
	}
	return o, nil
}

// openContext opens the context file path for reading. It holds the
// processes' memory and says what they run, so, as an image, one that
// another user could have written is refused unless trusted
// (images.OpenOptions); anything but a regular file is refused at once,
// never waited on (a FIFO: give it as standard input).
func openContext(path string, trust bool) (*os.File, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, usageError{&os.PathError{Op: "open context file", Path: path, Err: err}}
	}
	f := os.NewFile(uintptr(fd), path)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		f.Close()
		return nil, usageError{err}
	}
	uid := uint32(os.Geteuid())
	switch {
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		err = usagef("context file %s is not a regular file (to read a pipe, give it as standard input with -f -)", path)
	case trust:
	case st.Uid != uid && st.Uid != 0:
		err = fmt.Errorf("context file %s is owned by uid %d, not by you (uid %d) or root: %w", path, st.Uid, uid, images.ErrUntrusted)
	case st.Mode&0o022 != 0:
		err = fmt.Errorf("context file %s is writable by its group or all users (mode %#o): %w", path, st.Mode&0o7777, images.ErrUntrusted)
	}
	if err == nil {
		err = unix.SetNonblock(fd, false)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// runRestart opens the context, in place or extracted into a private
// directory (contextSource), closed and removed once the processes run
// (or the restart failed), and restores from it. released is called once
// the processes run on their own.
func runRestart(ctx context.Context, c *cli.Context, o *restartOptions, released func()) (*restorer.Result, error) {
	start := time.Now()
	prog := newProgress(o.quiet)
	var progOnce sync.Once
	endProgress := func() { progOnce.Do(prog.end) }
	defer endProgress()
	ex, err := contextSource{in: o.in, inPlace: o.in != nil && !o.fromStdin && readableInPlace(o.in), dir: o.genDir, trust: o.trust, progress: prog}.open()
	if err != nil {
		return nil, err
	}
	var closeOnce sync.Once
	remove := func() { closeOnce.Do(ex.close) }
	defer remove()
	st := &restartStats{Context: ex.name, ContextBytes: ex.bytes, ReadNs: ns(time.Since(start)), Skipped: ex.skipped, PagesBytes: ex.images.PageImageBytes()}
	verbosef(c, "context %s read", ex.name)
	if o.pidns == restorer.PidnsAuto {
		if err := checkJobGone(ex.images); err != nil {
			return nil, err
		}
	}
	stdio, pids, err := restartStdio(ex.images, o.fromStdin)
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, f := range stdio {
			if f != os.Stdin && f != os.Stdout && f != os.Stderr {
				f.Close()
			}
		}
	}()
	st.Processes = len(pids)
	what := fmt.Sprintf("restoring %d processes", len(pids))
	if len(pids) == 1 {
		what = "restoring 1 process"
	}
	prog.phase(what, nil, 0)
	restoreStart := time.Now()
	procs := newJobProcs()
	defer procs.close()
	var res *restorer.Result
	res, err = restorer.Run(ctx, restorer.Options{
		// The context was checked as an image is (openContext);
		// --trust-images is passed on, for the restorer's rule on who
		// may give it.
		Images: ex.images, Detach: o.detach, TrustImages: o.trust,
		Stdin: stdio[0], Stdout: stdio[1], Stderr: stdio[2],
		PidNamespace: o.pidns, Relocate: o.relocate, InheritFd: o.inherit,
		Restarted: callbacks.Restarted,
		Released: func() {
			endProgress()
			released()
			// Nothing reads the images once the processes run.
			remove()
			st.RestoreNs = ns(time.Since(restoreStart))
			st.TotalNs = ns(time.Since(start))
			if o.stats != "" {
				if err := writeStatsFile(o.stats, st); err != nil {
					fmt.Fprintf(os.Stderr, "%s: %v\n", progName, err)
				}
			}
			if o.after != 0 {
				procs.hold(pids)
				if err := procs.signal(o.after); err != nil {
					fmt.Fprintf(os.Stderr, "%s: %v\n", progName, err)
				}
			}
			verbosef(c, "%d processes restarted", len(pids))
			if hook := c.String("run-on-success"); hook != "" {
				if code := runHook(hook); code != 0 {
					// cr_restart(1): a hook that fails ends cr_restart
					// without waiting for the processes.
					os.Exit(code)
				}
			}
		},
	})
	return res, err
}

// readableInPlace tells whether the context f can be read in place: a
// regular file read from its start (a descriptor given with -F may be
// anywhere in its file). Anything else is extracted.
func readableInPlace(f *os.File) bool {
	var st unix.Stat_t
	if unix.Fstat(int(f.Fd()), &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return false
	}
	off, err := unix.Seek(int(f.Fd()), 0, io.SeekCurrent)
	return err == nil && off == 0
}

// restartStdio chooses what the restarted processes get for standard
// input, output and error that were joined to something outside the
// job (cr_restart(1)): a terminal becomes cr_restart's controlling
// terminal (/dev/tty, tty(4)), or cr_restart's own stdio if it has none;
// a pipe or socket becomes cr_restart's own, except standard input when
// the context comes from it: /dev/null then. It also lists the PIDs.
func restartStdio(d *images.Dir, contextOnStdin bool) ([3]*os.File, []int, error) {
	stdio := [3]*os.File{os.Stdin, os.Stdout, os.Stderr}
	var pids []int
	var terminal [3]bool
	for _, pid := range d.Inventory().Pids {
		pids = append(pids, int(pid))
		task, err := d.ReadTask(int(pid))
		if err != nil {
			return stdio, nil, err
		}
		if task.Zombie {
			continue
		}
		files, err := d.ReadFiles(int(pid))
		if err != nil {
			return stdio, nil, err
		}
		for _, fd := range files.Fds {
			if _, ok := fd.Kind.(*gocrpb.Fd_Inherit); ok && fd.Fd >= 0 && fd.Fd <= 2 && isTerminalName(fd.Description) {
				terminal[fd.Fd] = true
			}
		}
	}
	if contextOnStdin {
		null, err := os.Open(os.DevNull)
		if err != nil {
			return stdio, nil, err
		}
		stdio[0] = null
	}
	if terminal[0] || terminal[1] || terminal[2] {
		if tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0); err == nil {
			for n := range stdio {
				if terminal[n] {
					if stdio[n] != os.Stdin && stdio[n] != os.Stdout && stdio[n] != os.Stderr {
						stdio[n].Close()
					}
					stdio[n] = tty
				}
			}
		}
	}
	return stdio, pids, nil
}

// isTerminalName tells from an fd's link target whether it was a
// terminal: a pseudo-terminal, a virtual console or serial line, the
// console (Documentation/admin-guide/devices.txt).
func isTerminalName(name string) bool {
	return strings.HasPrefix(name, "/dev/pts/") || strings.HasPrefix(name, "/dev/tty") || name == "/dev/console"
}
