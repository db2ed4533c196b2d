//go:build linux

package main

import (
	"fmt"
	"os"
	"os/exec"

	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"
)

func runCommand() *cli.Command {
	return &cli.Command{
		Name:      "run",
		Usage:     "run a program ready to be checkpointed (BLCR's cr_run)",
		UsageText: "cr_run [--] PROGRAM [ARGS...]\n   gocr run [--] PROGRAM [ARGS...]",
		Description: "Runs PROGRAM with ARGS. gocr needs nothing loaded into a program to checkpoint it, so\n" +
			"cr_run becomes PROGRAM (execve(2)): it keeps cr_run's PID, process group, session,\n" +
			"standard input, output and error and environment, and its exit status is cr_run's.\n" +
			"As with BLCR, 'cr_run PROGRAM &' then 'cr_checkpoint $!' checkpoints it.",
		// Everything after the program name is the program's.
		SkipFlagParsing: true,
		Action:          runAction,
	}
}

// runAction becomes the program. Nothing of gocr stays between the job
// and whoever started it: its PID is the one the shell knows ($!), its
// signals and exit status are its own, and a checkpoint of it holds no
// gocr process. Periodic checkpoints (cr_run --checkpoint-every) need a
// process that stays to take them: that mode starts PROGRAM as a child
// instead and waits for it, here.
func runAction(c *cli.Context) error {
	args := c.Args().Slice()
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if len(args) == 0 {
		return report(usagef("give the PROGRAM to run"), exitUsage, false)
	}
	path, err := exec.LookPath(args[0])
	if err != nil {
		// The shell's code for a program not found (bash(1), "EXIT
		// STATUS").
		return report(err, 127, false)
	}
	err = unix.Exec(path, args, os.Environ())
	return report(fmt.Errorf("run %s: %w", path, err), 126, false)
}
