//go:build linux

package main

import (
	"os"

	"github.com/urfave/cli/v2"

	"github.com/gocr/gocr/wptrack"
)

// trackHolderCmd runs the holder of a job's write trackers between two
// dumps (wptrack.Serve), gocr itself: a dump starts it with the holder's
// listening socket as fd 3. /proc/self/exe is read by the forked child,
// so it names this binary even if its path changed meanwhile.
var trackHolderCmd = []string{"/proc/self/exe", "track-holder"}

var trackHolderCommand = &cli.Command{
	Name:   "track-holder",
	Hidden: true,
	Usage:  "keep a job's write trackers between two dumps (started by gocr dump --track)",
	Action: func(c *cli.Context) error {
		return wptrack.Serve(os.NewFile(3, "track-holder-socket"))
	},
}
