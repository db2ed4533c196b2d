//go:build linux

package proc

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Stat holds the fields of /proc/PID/stat that a checkpoint needs. Field
// numbers in comments are those of man 5 proc. The kernel prints the
// address fields as 0 (start_code and end_code as 1) when the reader may
// not ptrace the task (fs/proc/array.c, do_task_stat).
type Stat struct {
	Pid        int    // (1)
	Comm       string // (2), without the parentheses
	State      byte   // (3)
	PPid       int    // (4)
	Pgrp       int    // (5)
	Session    int    // (6)
	TtyNr      int    // (7) the controlling terminal's device number, 0 for none
	Tpgid      int    // (8) its foreground process group, -1 for none
	Flags      uint64 // (9) PF_* bits
	NumThreads int    // (20)
	// StartTime is when the process started, in clock ticks since boot
	// (22; sysconf(_SC_CLK_TCK), 100 on x86-64: USER_HZ).
	StartTime uint64
	// ExitSignal is the signal the parent gets when it exits (38),
	// clone(2)'s exit_signal.
	ExitSignal int
	Processor  int    // (39) the CPU the task last ran on
	StartStack uint64 // (28)
	StartCode  uint64 // (26)
	EndCode    uint64 // (27)
	StartData  uint64 // (45)
	EndData    uint64 // (46)
	StartBrk   uint64 // (47)
	ArgStart   uint64 // (48)
	ArgEnd     uint64 // (49)
	EnvStart   uint64 // (50)
	EnvEnd     uint64 // (51)
	ExitCode   int    // (52) as waitpid would report it
}

// statFields is the number of fields since Linux 3.5 (man 5 proc).
const statFields = 52

// ParseStat parses /proc/PID/stat. Comm is printed raw between
// parentheses and can itself hold spaces, '(' and ')' (fs/proc/array.c,
// proc_task_name with escape false), so it ends at the last ')'. On error
// the Stat is zero: a line cut short must not pass for a process with
// half its fields.
func ParseStat(b []byte) (Stat, error) {
	s, err := parseStat(b)
	if err != nil {
		return Stat{}, err
	}
	return s, nil
}

func parseStat(b []byte) (Stat, error) {
	var s Stat
	lp := bytes.IndexByte(b, '(')
	rp := bytes.LastIndexByte(b, ')')
	if lp < 0 || rp < lp {
		return s, fmt.Errorf("no (comm) in %q", b)
	}
	pid, ok := decIntN(trimSpace(b[:lp]))
	if !ok {
		return s, fmt.Errorf("bad pid %q", b[:lp])
	}
	s.Pid = pid
	s.Comm = string(b[lp+1 : rp])

	rest := b[rp+1:]
	n := 2
	for {
		var tok []byte
		tok, rest = nextField(rest)
		if len(tok) == 0 {
			break
		}
		n++
		if err := s.setField(n, tok); err != nil {
			return s, err
		}
	}
	if n < statFields {
		return s, fmt.Errorf("%d fields, want at least %d", n, statFields)
	}
	return s, nil
}

func (s *Stat) setField(n int, tok []byte) error {
	ok := true
	intField := func(dst *int) {
		*dst, ok = decIntN(tok)
	}
	uintField := func(dst *uint64) {
		*dst, ok = decUint(tok)
	}
	switch n {
	case 3:
		ok = len(tok) == 1
		s.State = tok[0]
	case 4:
		intField(&s.PPid)
	case 5:
		intField(&s.Pgrp)
	case 6:
		intField(&s.Session)
	case 7:
		intField(&s.TtyNr)
	case 8:
		intField(&s.Tpgid)
	case 9:
		uintField(&s.Flags)
	case 20:
		intField(&s.NumThreads)
	case 22:
		uintField(&s.StartTime)
	case 38:
		intField(&s.ExitSignal)
	case 39:
		intField(&s.Processor)
	case 26:
		uintField(&s.StartCode)
	case 27:
		uintField(&s.EndCode)
	case 28:
		uintField(&s.StartStack)
	case 45:
		uintField(&s.StartData)
	case 46:
		uintField(&s.EndData)
	case 47:
		uintField(&s.StartBrk)
	case 48:
		uintField(&s.ArgStart)
	case 49:
		uintField(&s.ArgEnd)
	case 50:
		uintField(&s.EnvStart)
	case 51:
		uintField(&s.EnvEnd)
	case 52:
		intField(&s.ExitCode)
	default:
		// Unused fields are still checked to be numbers (some are
		// negative, e.g. tpgid (8) and nice (19)), so a misplaced ')'
		// in a corrupt line is caught.
		if _, ok = decInt(tok); !ok {
			_, ok = decUint(tok)
		}
	}
	if !ok {
		return fmt.Errorf("bad field %d %q", n, tok)
	}
	return nil
}

// ReadStat reads /proc/PID/stat.
func ReadStat(pid int) (Stat, error) {
	b, err := readFile(pid, "stat")
	if err != nil {
		return Stat{}, err
	}
	s, err := ParseStat(b)
	if err != nil {
		return s, fmt.Errorf("read /proc/%d/stat: %w", pid, err)
	}
	return s, nil
}

// BootTime is when the machine booted, in seconds since the epoch: the
// btime line of /proc/stat (man 5 proc_stat).
func BootTime() (int64, error) {
	b, err := ReadAll("/proc/stat")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "btime "); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("/proc/stat: btime %q: %w", v, err)
			}
			return n, nil
		}
	}
	return 0, errors.New("/proc/stat has no btime line")
}
