//go:build linux

// Command gocr checkpoints a running Linux process to a directory of image
// files and restarts it from them later, with the same PID, memory, open
// files and signal state, continuing where it was.
package main

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/gocr/gocr/dump"
	"github.com/gocr/gocr/images"
	"github.com/gocr/gocr/restorer"
)

// version is recorded in every dump's inventory.
const version = "0.1.0"

// exitCode carries a restored process's exit status out of a command.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// deferSignals holds off SIGINT, SIGTERM and SIGHUP while gocr has
// processes stopped, infected or half restored: dying then would leave a
// parasite in a job, or a half-built process. They take effect, as gocr's
// default action, once the returned function is called.
func deferSignals() func() {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	var once sync.Once
	return func() {
		once.Do(func() {
			signal.Stop(ch)
			select {
			case sig := <-ch:
				fmt.Fprintf(os.Stderr, "gocr: %v arrived during the operation; the processes were left consistent\n", sig)
				signal.Reset(sig)
				syscall.Kill(os.Getpid(), sig.(syscall.Signal))
				time.Sleep(time.Second) // the signal ends gocr here
				os.Exit(128 + int(sig.(syscall.Signal)))
			default:
			}
		})
	}
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
			"It needs no changes to the program and no kernel module. Run it as root.",
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
					"checkpoint to fall back to.\n" +
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
					&cli.IntFlag{Name: "page-streams", Usage: "write each process's memory as `N` page images at once, one thread each (1-4; 0: by size, up to one per CPU)"},
					&cli.StringFlag{Name: "page-transfer", Value: "write", Hidden: true,
						Usage: "how memory reaches the image: write (the process writes it) or splice (through pipes)"},
				},
				Action: func(c *cli.Context) error {
					defer deferSignals()()
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
					return dump.Run(dump.Options{
						Pid: pids["tree"], Pgid: pids["pgid"], Sid: pids["sid"], Dir: c.String("images-dir"),
						LeaveRunning: c.Bool("leave-running"), Version: version, PageTransfer: c.String("page-transfer"),
						PageStreams: c.Int("page-streams"),
					})
				},
			},
			{
				Name:      "restore",
				Usage:     "start a process again from a directory of images",
				UsageText: "gocr restore -D DIR [-d]",
				Description: "Recreates the process saved in DIR with its original process ID and lets it continue\n" +
					"from where it was dumped. The original process must be gone (its PID must be free).\n" +
					"Without -d gocr stays in the foreground until the process ends and exits with its exit\n" +
					"status; with -d gocr returns as soon as the process runs. If the process's standard\n" +
					"input/output was a terminal or a pipe, it gets gocr's own. The same images can be\n" +
					"restored again and again. If the restore fails, no process is left behind.\n" +
					"Images that a user other than you (or root) could have written are refused, as\n" +
					"they decide what the restored process runs, unless --trust-images is given.",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "images-dir", Aliases: []string{"D"}, Usage: "`DIR` holding the images", Required: true},
					&cli.BoolFlag{Name: "detach", Aliases: []string{"d"}, Usage: "return once the process runs instead of waiting for it"},
					trustImagesFlag,
				},
				Action: func(c *cli.Context) error {
					release := deferSignals()
					defer release()
					res, err := restorer.Run(restorer.Options{
						Dir: c.String("images-dir"), Detach: c.Bool("detach"),
						Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr,
						Released: release, TrustImages: c.Bool("trust-images"),
					})
					if err != nil {
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
		},
	}
	// A flag that does not parse is one line, like every other error,
	// not the command's whole help.
	for _, cmd := range app.Commands {
		cmd.OnUsageError = func(_ *cli.Context, err error, _ bool) error { return err }
	}
	if err := app.Run(os.Args); err != nil {
		var code exitCode
		if errors.As(err, &code) {
			os.Exit(int(code))
		}
		fmt.Fprintf(os.Stderr, "gocr: %v\n", err)
		os.Exit(1)
	}
}
