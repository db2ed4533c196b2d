//go:build linux

// Command gocr checkpoints a running Linux process to a directory of image
// files and restarts it from them later, with the same PID, memory, open
// files and signal state, continuing where it was.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/callbacks"
	"github.com/gocr/gocr/dump"
	"github.com/gocr/gocr/images"
	"github.com/gocr/gocr/restorer"
)

// version is recorded in every dump's inventory.
const version = "0.1.0"

// exitCode carries a restored process's exit status out of a command.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// interrupted is why an operation stopped early: gocr got a signal.
type interrupted struct{ sig syscall.Signal }

func (e *interrupted) Error() string { return "interrupted by " + unix.SignalName(e.sig) }

// signalStop turns SIGINT, SIGTERM and SIGHUP into the end of a context
// the dump or restore watches: dying at once could leave a parasite in a
// job or a half-built process, so the operation stops at its next step
// (or at once where it waits), puts everything back and fails; gocr then
// dies by the signal, as its default action would have it.
type signalStop struct {
	ch     chan os.Signal
	ctx    context.Context
	got    atomic.Pointer[interrupted] // the signal, once one came
	once   sync.Once
	ending sync.WaitGroup // the goroutine that waits for it
}

func catchSignals() *signalStop {
	s := &signalStop{ch: make(chan os.Signal, 1)}
	ctx, cancel := context.WithCancelCause(context.Background())
	s.ctx = ctx
	// A signal ignored when gocr started (nohup) stays ignored.
	for _, sig := range []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP} {
		if !signal.Ignored(sig) {
			signal.Notify(s.ch, sig)
		}
	}
	s.ending.Add(1)
	go func() {
		defer s.ending.Done()
		sig, ok := <-s.ch
		if !ok {
			return
		}
		e := &interrupted{sig.(syscall.Signal)}
		s.got.Store(e)
		cancel(e)
	}()
	return s
}

// stopCatching lets the signals act as by default from now on.
func (s *signalStop) stopCatching() {
	s.once.Do(func() {
		signal.Stop(s.ch)
		close(s.ch)
		s.ending.Wait()
	})
}

// release stops catching once the restored processes run on their own
// (gocr only waits for the job then). A signal caught before is honoured
// now, after saying so.
func (s *signalStop) release(done string) {
	s.stopCatching()
	if e := s.got.Load(); e != nil {
		fmt.Fprintf(os.Stderr, "gocr: %v arrived when %s\n", unix.SignalName(e.sig), done)
		dieBy(e.sig)
	}
}

// end finishes the operation s was caught for, with its error. Were it
// signalled, gocr says in one line how it ended (left: what an
// interrupted operation leaves; done: what a finished one did) and dies
// by the signal.
func (s *signalStop) end(err error, left, done string) error {
	s.stopCatching()
	e := s.got.Load()
	if e == nil {
		return err
	}
	var stopped *interrupted
	switch {
	case err == nil:
		fmt.Fprintf(os.Stderr, "gocr: %v arrived when %s\n", unix.SignalName(e.sig), done)
	case errors.As(err, &stopped):
		fmt.Fprintf(os.Stderr, "gocr: %v; %s\n", err, left)
	default:
		fmt.Fprintf(os.Stderr, "gocr: %v\n", err)
	}
	dieBy(e.sig)
	return err
}

// dieBy ends gocr by sig with its default action, so whoever started it
// sees how it ended; 128+sig should the signal not end it.
func dieBy(sig syscall.Signal) {
	signal.Reset(sig)
	syscall.Kill(os.Getpid(), sig)
	time.Sleep(time.Second)
	os.Exit(128 + int(sig))
}

// trustImagesFlag lets restore and show read images that another user
// could have written (images.OpenOptions).
var trustImagesFlag = &cli.BoolFlag{Name: "trust-images",
	Usage: "read images even if a user other than you or root could have written them (they decide what the restored process runs)"}

// maxPID is the kernel's PID_MAX_LIMIT on 64-bit (include/linux/threads.h:
// 4 * 1024 * 1024), the highest pid_max can be set to.
const maxPID = 4 << 20

// parsePID reads a PID given as --name: decimal digits, no sign, no
// leading zero, so that nothing a user types can mean another process
// than it seems to (strconv's base prefixes would read 020000 as 8192).
func parsePID(name, s string) (int, error) {
	bad := func(why string) error { return fmt.Errorf("invalid --%s %q: %s", name, s, why) }
	if s == "" {
		return 0, bad("empty")
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return 0, bad("a process ID is a decimal number above 0")
		}
	}
	if s[0] == '0' {
		if strings.Trim(s, "0") == "" {
			return 0, bad("a process ID is a decimal number above 0")
		}
		return 0, bad("a process ID is written in decimal without leading zeros")
	}
	pid, err := strconv.Atoi(s)
	if err != nil || pid > maxPID {
		return 0, bad(fmt.Sprintf("no process ID is above %d", maxPID))
	}
	return pid, nil
}

func main() {
	app := &cli.App{
		Name:    "gocr",
		Usage:   "checkpoint a running process to disk and restart it later",
		Version: version,
		Description: "gocr freezes a running program, saves everything it needs to continue (its memory,\n" +
			"registers, open files and signal state) into a directory of image files, and can later\n" +
			"start it again from that directory, with the same process ID, exactly where it stopped.\n" +
			"It needs no changes to the program and no kernel module. Run it as root, or as an ordinary\n" +
			"user for your own processes once it has cap_checkpoint_restore (make install-caps).",
		HideHelpCommand: true,
		Commands: []*cli.Command{
			{
				Name:      "dump",
				Usage:     "save a running process to a directory of images",
				UsageText: "gocr dump -t PID -D DIR [--leave-running]\n   gocr dump --pgid PGID | --sid SID -D DIR [--leave-running]",
				Description: "Freezes process PID and all its descendants (its children, their children, ...),\n" +
					"writes their complete state into DIR, and then ends them (they can be started again\n" +
					"from DIR with 'gocr restore'). --pgid or --sid take a whole process group or session.\n" +
					"With --leave-running the processes continue after the dump instead, so DIR is a\n" +
					"checkpoint to fall back to; they are frozen only while a copy-on-write snapshot of\n" +
					"each is taken (a fork: the page tables are copied, not the pages), and run on while\n" +
					"their memory is written from it (--snapshot=false: frozen until it is written).\n" +
					"If the dump fails for any reason the processes keep running, untouched, and DIR\n" +
					"keeps what it held: a checkpoint already there stays whole until a new one is\n" +
					"complete and takes its place. DIR must hold nothing but gocr's files, and only\n" +
					"you (or root) may be able to write to it and to the directory it is in.",
				Flags: []cli.Flag{
					// Strings, parsed by parsePID: cli's IntFlag reads
					// 020000 as octal.
					&cli.StringFlag{Name: "tree", Aliases: []string{"t"}, Usage: "`PID` of the process to dump, with all its descendants"},
					&cli.StringFlag{Name: "pgid", Usage: "dump the whole process group `PGID` (from its leader down)"},
					&cli.StringFlag{Name: "sid", Usage: "dump the whole session `SID` (from its leader down)"},
					&cli.StringFlag{Name: "images-dir", Aliases: []string{"D"}, Usage: "`DIR` to write the images to (created if missing)"},
					&cli.BoolFlag{Name: "leave-running", Aliases: []string{"R"}, Usage: "keep the process running after the dump"},
					&cli.BoolFlag{Name: "snapshot", Value: true, Usage: "with --leave-running: freeze the processes only while a copy-on-write snapshot of each is taken, and write their memory from it while they run on (--snapshot=false: frozen until their memory is written)"},
					&cli.StringSliceFlag{Name: "external", Usage: "a pipe whose other end is outside the dump, at an fd other than stdio, named `pipe:[INODE]`, must be given a file by gocr restore --inherit-fd (without it the restore gives a pipe whose other end is closed)"},
					&cli.StringSliceFlag{Name: "external-unix", Usage: "dump a unix socket connected to one outside the dump when either one is bound to `NAME` (a path, or @abstract); restored with its peer gone"},
					&cli.BoolFlag{Name: "tcp-established", Usage: "dump TCP connections to peers outside the dump too (their packets blocked with nftables until restore)"},
					ghostLimitFlag(),
					&cli.IntFlag{Name: "page-streams", Usage: "write each process's memory as `N` page images at once, one thread each (1-4; 0: by size, up to one per CPU, or all CPUs but one for the job with --snapshot)"},
					&cli.DurationFlag{Name: "callback-timeout", Value: callbacks.DefaultTimeout, Usage: "wait at most `TIME` for the checkpoint callbacks of processes using libgocr to be ready"},
					&cli.StringFlag{Name: "page-transfer", Value: "write", Hidden: true,
						Usage: "how memory reaches the image: write (the process writes it) or splice (through pipes)"},
					&cli.StringFlag{Name: "prev", Usage: "incremental: write only the pages written since the dump in `DIR` (of the same job, taken with --track or --prev); the others stay there, and the restore reads them from it. Full where the writes since it are not known"},
					&cli.BoolFlag{Name: "track", Usage: "with --leave-running: track the pages the job writes from now on, for a later dump with --prev"},
					&cli.StringSliceFlag{Name: "save", Usage: "also save the contents of mapped files, to restore where they are missing or changed: `WHAT` is exe, private (libraries too), shared (read-only shared mappings), all or none (the default; read left to right, none drops what came before)"},
				},
				Action: func(c *cli.Context) error {
					sigs := catchSignals()
					err := dumpAction(sigs.ctx, c)
					return sigs.end(err, "the processes run on as they were, and no dump was written", "the dump was complete; it was kept")
				},
			},
			{
				Name:      "restore",
				Usage:     "start a process again from a directory of images",
				UsageText: "gocr restore -D DIR [-d]",
				Description: "Recreates the process saved in DIR with its original process ID and lets it continue\n" +
					"from where it was dumped. The original process must be gone (its PID must be free),\n" +
					"unless --pidns=auto or always restarts it in a new PID namespace with the same PIDs.\n" +
					"Without -d gocr stays in the foreground until the process ends and exits with its exit\n" +
					"status; with -d gocr returns as soon as the process runs. If the process's standard\n" +
					"input/output was a pipe or a terminal joined outside the dump, it gets gocr's own, and\n" +
					"gocr says so, unless --inherit-fd fd[N]:KEY gives gocr's fd N in its place; another fd\n" +
					"on a pipe from outside gets a pipe whose other end is closed, said likewise; other fds\n" +
					"joined outside the dump (a socket, a deleted file, a pipe dumped with --external) need\n" +
					"it. The same images can be restored again and again. If the restore fails, no process\n" +
					"is left behind.\n" +
					"Images that a user other than you (or root) could have written are refused, as\n" +
					"they decide what the restored process runs, unless --trust-images is given.",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "images-dir", Aliases: []string{"D"}, Usage: "`DIR` holding the images", Required: true},
					&cli.BoolFlag{Name: "detach", Aliases: []string{"d"}, Usage: "return once the process runs instead of waiting for it"},
					&cli.BoolFlag{Name: "tcp-established", Usage: "restore TCP connections to peers outside the dump (dumped with --tcp-established)"},
					trustImagesFlag,
					&cli.StringFlag{Name: "pidns", Value: restorer.PidnsNever, Usage: "where the processes get their PIDs: `never` (here, failing if one is taken), " +
						"always (a new PID namespace, where each has its dumped PID), auto (here if every PID is free, else a new namespace)"},
					&cli.StringSliceFlag{Name: "relocate", Usage: "look up files, mappings, the cwd and the root under OLD under NEW instead (`OLD=NEW`, repeatable; the longest OLD wins)"},
					&cli.BoolFlag{Name: "shell-job", Aliases: []string{"j"}, Usage: "a job dumped on a terminal of its shell's gets this gocr's terminal, its termios, the foreground if it had it, and job control (Ctrl-Z, fg) through gocr"},
					&cli.StringSliceFlag{Name: "inherit-fd", Usage: "give this gocr's own fd N to every fd of the job that was joined outside the dump through KEY (`fd[N]:KEY`, KEY as the dump names it, e.g. pipe:[1234]; repeatable)"},
					&cli.StringFlag{Name: "pidfile", Usage: "write the restored root's PID, as seen here (outside a new PID namespace), to `FILE` before it runs"},
				},
				Action: func(c *cli.Context) error {
					sigs := catchSignals()
					const done = "the processes were restored; they run on"
					res, err := restorer.Run(sigs.ctx, restorer.Options{
						Dir: c.String("images-dir"), Detach: c.Bool("detach"),
						Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr,
						Released: func() { sigs.release(done) }, TrustImages: c.Bool("trust-images"),
						PidNamespace: c.String("pidns"),
						Relocate:     c.StringSlice("relocate"), TCPEstablished: c.Bool("tcp-established"),
						Restarted: callbacks.Restarted,
						ShellJob:  c.Bool("shell-job"), InheritFd: c.StringSlice("inherit-fd"),
						PidFile: c.String("pidfile"),
					})
					if err := sigs.end(err, "no process it created is left", done); err != nil {
						return err
					}
					if !c.Bool("detach") && res.ExitStatus != 0 {
						return exitCode(res.ExitStatus)
					}
					return nil
				},
			},
			{
				Name:      "check",
				Usage:     "tell whether this machine has what gocr needs",
				UsageText: "gocr check",
				Description: "Lists each kernel feature gocr relies on as ok or missing, and exits non-zero if\n" +
					"any is missing.",
				Action: func(c *cli.Context) error { return runCheck(os.Stdout) },
			},
			{
				Name:        "show",
				Usage:       "print a dump's images as JSON",
				UsageText:   "gocr show DIR",
				Description: "Prints every image file in DIR (or one image file) as JSON, for inspection.",
				Flags:       []cli.Flag{trustImagesFlag},
				Action: func(c *cli.Context) error {
					if c.NArg() != 1 {
						return errors.New("show needs exactly one DIR")
					}
					return images.Show(c.Args().First(), os.Stdout, images.OpenOptions{TrustImages: c.Bool("trust-images")})
				},
			},
			cleanupCommand,     // cleanup.go
			trackHolderCommand, // trackholder.go
		},
	}
	// A flag that does not parse is one line, like every other error,
	// not the command's whole help.
	for _, cmd := range app.Commands {
		cmd.OnUsageError = func(_ *cli.Context, err error, _ bool) error { return err }
	}
	// BLCR's tools, also as cr_checkpoint, cr_restart, cr_run (blcr.go).
	app.Commands = append(app.Commands, blcrCommands()...)
	if err := app.Run(blcrArgs(os.Args)); err != nil {
		var code exitCode
		if errors.As(err, &code) {
			os.Exit(int(code))
		}
		fmt.Fprintf(os.Stderr, "gocr: %v\n", err)
		os.Exit(1)
	}
}

// dumpAction runs gocr dump.
func dumpAction(ctx context.Context, c *cli.Context) error {
	var missing []string
	if !c.IsSet("tree") && !c.IsSet("pgid") && !c.IsSet("sid") {
		missing = append(missing, "tree")
	}
	if !c.IsSet("images-dir") {
		missing = append(missing, "images-dir")
	}
	if len(missing) > 0 {
		return fmt.Errorf("Required flags %q not set (-t PID, or --pgid/--sid, and -D DIR)", strings.Join(missing, ", "))
	}
	pids := map[string]int{}
	for _, name := range []string{"tree", "pgid", "sid"} {
		if !c.IsSet(name) {
			continue
		}
		pid, err := parsePID(name, c.String(name))
		if err != nil {
			return err
		}
		pids[name] = pid
	}
	if c.IsSet("snapshot") && c.Bool("snapshot") && !c.Bool("leave-running") {
		return fmt.Errorf("--snapshot needs --leave-running: a dump that ends the processes has no use for one")
	}
	if c.Bool("track") && !c.Bool("leave-running") {
		return fmt.Errorf("--track needs --leave-running: the processes of a dump that ends them write nothing more")
	}
	save, err := dump.ParseSave(c.StringSlice("save"))
	if err != nil {
		return err
	}
	return dump.Run(ctx, dump.Options{
		Prev: c.String("prev"), Track: c.Bool("track"), TrackHolder: trackHolderCmd,
		Pid: pids["tree"], Pgid: pids["pgid"], Sid: pids["sid"], Dir: c.String("images-dir"),
		LeaveRunning: c.Bool("leave-running"), NoSnapshot: !c.Bool("snapshot"), TCPEstablished: c.Bool("tcp-established"), Version: version, PageTransfer: c.String("page-transfer"),
		PageStreams: c.Int("page-streams"), GhostLimit: c.Int64("ghost-limit"), Save: save, ExternalUnix: c.StringSlice("external-unix"), External: c.StringSlice("external"),
		BeforeFreeze: callbacks.Before(c.Duration("callback-timeout")),
	})
}
