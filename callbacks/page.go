//go:build linux

package callbacks

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/proc"
	"github.com/gocr/gocr/sharedword"
)

// The page libgocr shares with gocr: libgocr/protocol.h, whose defines and
// asserted offsets page_test.go compares with these.
const (
	memfdName   = "gocr-callbacks"
	pageMagic   = 0x42434f47
	pageVersion = 1
	pageSize    = 4096

	seqShift = 4
	codeMask = 0xf

	reqCheckpoint = 1
	reqContinue   = 2
	reqRestarted  = 3
	reqFailed     = 4

	stIdle  = 0
	stBusy  = 1
	stReady = 2
	stAfter = 3

	offMagic     = 0
	offVersion   = 4
	offPid       = 8
	offTid       = 12
	offRequest   = 16
	offStatus    = 20
	offGocrPid   = 24
	offGocrStart = 32
	pageHeader   = 40 // sizeof(struct gocr_cb_page)
)

// seqMask keeps a sequence number to the bits the word has for it.
const seqMask = 1<<(32-seqShift) - 1

// stateNames name a status code in messages.
var stateNames = map[uint32]string{
	stIdle:  "idle",
	stBusy:  "running its callbacks",
	stReady: "ready",
	stAfter: "running the rest of its callbacks",
}

// page is one process's callbacks page, mapped into gocr.
type page struct {
	pid, tid int
	b        []byte
}

// openPage finds the callbacks page of process pid: nil, nil when it
// registered none (or is gone). The page is a shared mapping of a memfd
// whose fd libgocr closed, so it is opened through /proc/PID/map_files
// (man 5 proc_pid_map_files; needs CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE,
// as the rest of a dump does).
func openPage(pid int) (*page, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/maps")
	if err != nil {
		return nil, nil // gone: nothing to tell it
	}
	maps, err := proc.ParseMaps(f)
	f.Close()
	if err != nil {
		if !proc.Exists(pid) {
			return nil, nil
		}
		return nil, fmt.Errorf("read /proc/%d/maps: %w", pid, err)
	}
	for _, m := range maps {
		// mm/memfd.c names the file "memfd:" + name, always unlinked.
		if !m.Shared || !m.Deleted || m.Offset != 0 || m.End-m.Start != pageSize ||
			strings.TrimSuffix(m.Path, " (deleted)") != "/memfd:"+memfdName {
			continue
		}
		if p, err := mapPage(pid, m.Start, m.End); p != nil || err != nil {
			return p, err
		}
	}
	return nil, nil
}

// mapPage maps the page at [start, end) of pid, or returns nil if it is
// not a complete callbacks page of that process (a forked child's copy,
// one being registered right now).
func mapPage(pid int, start, end uint64) (*page, error) {
	path := fmt.Sprintf("/proc/%d/map_files/%x-%x", pid, start, end)
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH) {
			return nil, nil // unmapped or gone meanwhile
		}
		return nil, fmt.Errorf("pid %d registered checkpoint callbacks, but its page cannot be opened: %s: %w", pid, path, err)
	}
	b, err := unix.Mmap(fd, 0, pageSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	unix.Close(fd)
	if err != nil {
		return nil, fmt.Errorf("pid %d: map its checkpoint callbacks page: %w", pid, err)
	}
	p := &page{pid: pid, tid: int(sharedword.Load(b, offTid)), b: b}
	switch {
	case sharedword.Load(b, offMagic) != pageMagic || int(sharedword.Load(b, offPid)) != pid:
		p.close()
		return nil, nil
	case sharedword.Load(b, offVersion) != pageVersion:
		v := sharedword.Load(b, offVersion)
		p.close()
		return nil, fmt.Errorf("pid %d uses checkpoint callbacks protocol version %d; this gocr speaks version %d", pid, v, pageVersion)
	}
	if !proc.Exists(p.tid) {
		p.close()
		if !proc.Exists(pid) {
			return nil, nil
		}
		return nil, fmt.Errorf("pid %d registered checkpoint callbacks, but the thread that runs them (%d) is gone", pid, p.tid)
	}
	return p, nil
}

func (p *page) close() {
	if p.b != nil {
		unix.Munmap(p.b)
		p.b = nil
	}
}

func (p *page) request() uint32 { return sharedword.Load(p.b, offRequest) }

func (p *page) status() uint32 { return sharedword.Load(p.b, offStatus) }

// send makes code the request after the current one, signed with this
// gocr's PID and start time so libgocr can tell if gocr dies while it
// waits, and wakes libgocr's thread. It returns the request's seq.
func (p *page) send(code uint32, self identity) uint32 {
	seq := (p.request()>>seqShift + 1) & seqMask
	sharedword.Store(p.b, offGocrPid, uint32(self.pid))
	binary.LittleEndian.PutUint64(p.b[offGocrStart:], self.start)
	// The atomic store orders the plain writes above before it, for
	// libgocr's acquire load of the request.
	sharedword.Store(p.b, offRequest, seq<<seqShift|code)
	wake(p.b, offRequest)
	return seq
}

// state is the process's state letter (man 5 proc_pid_stat), 0 if gone.
func (p *page) state() byte {
	st, err := proc.ReadStat(p.pid)
	if err != nil {
		return 0
	}
	return st.State
}

// identity is a gocr's PID and start time (clock ticks after boot, field
// 22 of /proc/PID/stat, man 5 proc_pid_stat), which a reused PID does not
// share.
type identity struct {
	pid   int
	start uint64
}

func selfIdentity() (identity, error) {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return identity{}, fmt.Errorf("read /proc/self/stat: %w", err)
	}
	// Field 2, the command, is in parentheses and may hold anything:
	// fields are counted from the last ')'; field 3 follows it.
	i := strings.LastIndexByte(string(b), ')')
	fields := strings.Fields(string(b[i+1:]))
	const startField = 22
	if i < 0 || len(fields) < startField-2 {
		return identity{}, fmt.Errorf("read /proc/self/stat: too few fields")
	}
	start, err := strconv.ParseUint(fields[startField-3], 10, 64)
	if err != nil {
		return identity{}, fmt.Errorf("read /proc/self/stat: start time: %w", err)
	}
	return identity{pid: os.Getpid(), start: start}, nil
}
