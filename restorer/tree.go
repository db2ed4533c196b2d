//go:build linux

package restorer

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/gocr/gocr/gocrpb"
)

// tree is the process table handed to the restorer.
type tree struct {
	procs []rstProc
	// pidfdSock is the source the restorer hands every new process's
	// pidfd to gocr through (created).
	pidfdSock int32
}

// buildTree orders the processes (parents first, as the inventory lists
// them) and works out how each gets its session and process group: a
// session or group led by a process of the dump is recreated by its
// leader; one led from outside (the shell that started the job) is the
// one gocr runs in, inherited.
func buildTree(procs []*proc) (*tree, error) {
	t := &tree{}
	in := map[int32]bool{}
	for _, pr := range procs {
		in[pr.task.Pid] = true
	}
	for _, pr := range procs {
		task := pr.task
		rp := rstProc{Pid: task.Pid, Parent: -1, Pgid: task.Pgid, ExitStatus: task.ExitStatus}
		if task.Zombie {
			rp.Zombie = 1
			copy(rp.Comm[:len(rp.Comm)-1], strings.Trim(task.Comm, "()"))
		}
		var parent *gocrpb.Task
		if pr.parent != nil {
			rp.Parent = int32(pr.parent.index)
			parent = pr.parent.task
		}
		switch {
		case task.Sid == task.Pid:
			rp.Flags |= rstProcSetsid
		case parent != nil && task.Sid != parent.Sid:
			return nil, fmt.Errorf("pid %d is in session %d, its parent %d in session %d: not supported", task.Pid, task.Sid, parent.Pid, parent.Sid)
		}
		switch {
		case task.Pgid == task.Pid && task.Sid != task.Pid:
			rp.Flags |= rstProcSetpgid
		case task.Pgid == task.Pid:
		case in[task.Pgid]:
			rp.Flags |= rstProcJoinPgid
		case parent != nil && task.Pgid != parent.Pgid:
			return nil, fmt.Errorf("pid %d is in process group %d, led from outside the dump: not supported", task.Pid, task.Pgid)
		}
		t.procs = append(t.procs, rp)
	}
	return t, nil
}

// encode lays out the tree header, the process table and every plan.
func (t *tree) encode(procs []*proc) ([]byte, error) {
	hdr := binary.Size(rstTree{})
	tableOff := hdr
	off := pageAlign(uint64(tableOff + len(t.procs)*binary.Size(rstProc{})))
	var plans [][]byte
	for i, pr := range procs {
		if pr.plan == nil {
			continue
		}
		b, err := pr.plan.encode()
		if err != nil {
			return nil, err
		}
		t.procs[i].PlanOff = uint32(off)
		pr.plan.offset = uint32(off)
		plans = append(plans, b)
		off += uint64(len(b))
	}
	total := off
	if total > 1<<31 {
		return nil, fmt.Errorf("restore plan of %d bytes is too large", total)
	}
	out := make([]byte, total)
	var head bytes.Buffer
	binary.Write(&head, binary.LittleEndian, rstTree{
		Magic: rstTreeMagic, Version: rstVersion, Size: uint32(total),
		NrProcs: uint32(len(t.procs)), ProcsOff: uint32(tableOff), PidfdSock: t.pidfdSock,
	})
	binary.Write(&head, binary.LittleEndian, t.procs)
	copy(out, head.Bytes())
	pi := 0
	for i := range procs {
		if procs[i].plan == nil {
			continue
		}
		b := plans[pi]
		pi++
		// Each plan records the size of the whole mapping it lives in:
		// the restorer moves all of it.
		binary.LittleEndian.PutUint32(b[offSize:], uint32(total))
		copy(out[t.procs[i].PlanOff:], b)
	}
	return out, nil
}
