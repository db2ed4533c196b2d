//go:build linux

package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/urfave/cli/v2"
)

// manCommand prints a man page generated from the command definitions:
// gocr's (gocr.1) or that of one of BLCR's names (cr_checkpoint.1, ...).
// make install writes them.
func manCommand() *cli.Command {
	return &cli.Command{
		Name:      "man",
		Hidden:    true,
		Usage:     "print the man page of gocr or of a BLCR name",
		UsageText: "gocr man [gocr|cr_checkpoint|cr_restart|cr_run]",
		Action: func(c *cli.Context) error {
			name := c.Args().First()
			if name == "" {
				name = "gocr"
			}
			page, err := manPage(c.App, name)
			if err != nil {
				return err
			}
			_, err = fmt.Fprint(os.Stdout, page)
			return err
		},
	}
}

// manPage renders the man page of name: for a BLCR name, its command as
// a program of its own.
func manPage(app *cli.App, name string) (string, error) {
	if name == "gocr" {
		return app.ToManWithSection(1)
	}
	cmdName, ok := blcrNames[name]
	if !ok {
		return "", fmt.Errorf("no man page for %q: give gocr, cr_checkpoint, cr_restart or cr_run", name)
	}
	cmd := app.Command(cmdName)
	if cmd == nil {
		return "", fmt.Errorf("no command %s", cmdName)
	}
	usage := cmd.UsageText
	if i := strings.Index(usage, "\n   gocr "); i >= 0 {
		usage = usage[:i]
	}
	page := &cli.App{
		Name: name, Usage: cmd.Usage, UsageText: usage, Description: cmd.Description,
		Flags: cmd.Flags, HideHelp: true, HideVersion: true,
	}
	return page.ToManWithSection(1)
}
