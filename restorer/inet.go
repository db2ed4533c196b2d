//go:build linux

package restorer

import (
	"fmt"
)

// checkConnections refuses images holding TCP connections to peers
// outside the dump unless the user asks for them (--tcp-established, as at
// the dump): their peers may have given up on them meanwhile.
func checkConnections(procs []*proc, opts Options) error {
	if opts.TCPEstablished {
		return nil
	}
	for _, pr := range procs {
		for _, fd := range pr.files.GetFds() {
			if u := fd.GetInetSocket(); u.GetNftTable() != "" {
				return fmt.Errorf("pid %d fd %d (%s): a TCP connection to a peer outside the dump: restore it with --tcp-established", pr.task.Pid, fd.Fd, fd.Description)
			}
		}
	}
	return nil
}
