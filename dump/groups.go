package dump

import "fmt"

// checkGroups refuses a process whose session or process group the
// restore could not give back. The restorer makes every process by
// forking it from its parent (restorer/c/restorer.c run_proc), so:
//   - a session is made by its leader (setsid), and every other process
//     inherits its parent's: no process can join a session (man 2
//     setsid), so one in a session other than its parent's, and not its
//     leader, cannot be made again;
//   - a group is made by its leader, or inherited, or joined with
//     setpgid(2) once every process exists;
//   - the root's session and group, when led from outside the dump (the
//     shell that started the job), are the ones gocr restore runs in: the
//     root inherits them, the others in them inherit or join them
//     (restorer/tree.go buildTree).
//
// A group or session led from outside the dump that is not the root's
// would be gocr restore's too, or nobody's, so it is refused.
func (tr *frozenTree) checkGroups() error {
	in := map[int]*frozenProc{}
	for _, fp := range tr.procs {
		in[fp.pid] = fp
	}
	root := tr.procs[0]
	for _, fp := range tr.procs[1:] {
		st := fp.stat
		parent := in[st.PPid]
		if parent == nil {
			continue // not made by a parent of the dump (checked elsewhere)
		}
		switch sid := st.Session; {
		case sid == fp.pid || sid == parent.stat.Session:
		case in[sid] == nil && sid != root.stat.Session:
			return fmt.Errorf("pid %d (%s) is in session %d, led from outside the dump and not the one of the root %d: gocr cannot restore it", fp.pid, st.Comm, sid, root.pid)
		default:
			return fmt.Errorf("pid %d (%s) is in session %d, its parent %d in session %d: no process can join a session, so gocr cannot restore it", fp.pid, st.Comm, sid, parent.pid, parent.stat.Session)
		}
		if pgid := st.Pgrp; in[pgid] == nil && pgid != root.stat.Pgrp {
			return fmt.Errorf("pid %d (%s) is in process group %d, led from outside the dump and not the one of the root %d: gocr cannot restore it", fp.pid, st.Comm, pgid, root.pid)
		}
	}
	return nil
}
