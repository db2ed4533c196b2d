//go:build linux

package test

import (
	"os"
	"os/exec"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/internal/ipc"
	"github.com/gocr/gocr/proc"
)

func init() {
	cTargets["sysvipc"] = struct {
		src   string
		flags []string
	}{"sysvipc.c", nil}
	cTargets["mqueue"] = struct {
		src   string
		flags []string
	}{"mqueue.c", nil}
}

// sysvKeys are the keys sysvipc.c makes its objects with, from its PID.
func sysvKeys(pid int) (shm, sem, msg int32) {
	low := int32(pid & 0xffff)
	return 0x6f630000 | low, 0x6f640000 | low, 0x6f650000 | low
}

// sysvIDs finds the objects of sysvipc.c pid in /proc/sysvipc: their ids,
// or -1.
func sysvIDs(t *testing.T, pid int) (shm, sem, msg int) {
	t.Helper()
	kshm, ksem, kmsg := sysvKeys(pid)
	find := func(read func() ([]proc.SysvObject, error), key int32) int {
		rows, err := read()
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			if r.Key == key {
				return int(r.ID)
			}
		}
		return -1
	}
	shm = find(proc.ReadSysvShm, kshm)
	sem = find(proc.ReadSysvSem, ksem)
	msg = find(proc.ReadSysvMsg, kmsg)
	return
}

// removeSysv removes sysvipc.c pid's objects, if left.
func removeSysv(t *testing.T, pid int) {
	shm, sem, msg := sysvIDs(t, pid)
	if shm >= 0 {
		unix.SysvShmCtl(shm, ipc.IPCRmid, nil)
	}
	if sem >= 0 {
		ipc.SemRemove(sem)
	}
	if msg >= 0 {
		ipc.MsgRemove(msg)
	}
}

// startSysvTarget starts sysvipc.c and removes what it leaves behind.
func startSysvTarget(t *testing.T, args ...string) *target {
	t.Helper()
	return startSysvTargetOpts(t, startOpts{args: args})
}

func startSysvTargetOpts(t *testing.T, o startOpts) *target {
	t.Helper()
	needsRoot(t)
	if _, err := os.Stat("/proc/sysvipc/shm"); err != nil {
		t.Skipf("this kernel has no System V IPC (CONFIG_SYSVIPC): %v", err)
	}
	tg := startTargetOpts(t, "sysvipc", o)
	t.Cleanup(func() { removeSysv(t, tg.pid) })
	return tg
}

// TestSysvIpc: a two-process job's segments (one attached read-only, one
// removed while attached), semaphore set and message queue, dumped and
// restored on the same machine: the objects the dump's end left behind
// are the job's own, found again and set back to their dumped state; the
// removed segment is made again with its id (sysvipc.c checks it all).
func TestSysvIpc(t *testing.T) {
	tg := startSysvTarget(t)
	checkResult(t, tg, checkpointRestoreTree(t, tg))
}

// TestSysvIpcMadeAgain: the same, restored where the objects are gone
// (as on another machine): each is made again with its id, key, owner,
// mode and contents.
func TestSysvIpcMadeAgain(t *testing.T) {
	needsGocr(t)
	t.Run("Root", func(t *testing.T) { testSysvIpcMadeAgain(t, startOpts{}) })
	// Made by a user: each object is made again by a thread of gocr with
	// the user's ids, so it has its creator (cuid, cgid) back.
	t.Run("User", func(t *testing.T) {
		if _, err := exec.LookPath("setpriv"); err != nil {
			t.Skipf("needs setpriv to run the target as another user: %v", err)
		}
		// The target, as nobody, writes its verdict in its directory.
		asNobody := `d=$(dirname "$1"); chmod 0777 "$d" && chmod o+x "$(dirname "$d")" &&
exec setpriv --reuid=65534 --regid=65534 --clear-groups -- "$0" "$@"`
		testSysvIpcMadeAgain(t, startOpts{wrap: []string{"sh", "-c", asNobody}})
	})
}

func testSysvIpcMadeAgain(t *testing.T, o startOpts) {
	tg := startSysvTargetOpts(t, o)
	var before []proc.SysvObject
	for _, read := range []func() ([]proc.SysvObject, error){proc.ReadSysvShm, proc.ReadSysvSem, proc.ReadSysvMsg} {
		rows, err := read()
		if err != nil {
			t.Fatal(err)
		}
		before = append(before, rows...)
	}
	pids := trackTree(t, tg.pid)
	view, dir := dumpTreeViewed(t, tg, pids)
	removeSysv(t, tg.pid)
	if shm, sem, msg := sysvIDs(t, tg.pid); shm >= 0 || sem >= 0 || msg >= 0 {
		t.Fatalf("objects left after removal: %d %d %d", shm, sem, msg)
	}
	pid := restoreDetached(t, tg, dir, nil)
	checkTreeView(t, pid, view, nil)
	// Owner and creator as they were; the target checks the rest.
	kshm, ksem, kmsg := sysvKeys(tg.pid)
	for _, read := range []func() ([]proc.SysvObject, error){proc.ReadSysvShm, proc.ReadSysvSem, proc.ReadSysvMsg} {
		rows, err := read()
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			if r.Key != kshm && r.Key != ksem && r.Key != kmsg {
				continue
			}
			for _, b := range before {
				if b.ID == r.ID && b.Key == r.Key && (b.UID != r.UID || b.CUID != r.CUID || b.GID != r.GID || b.CGID != r.CGID) {
					t.Errorf("object %d: owner %d:%d creator %d:%d, want %d:%d %d:%d", r.ID, r.UID, r.GID, r.CUID, r.CGID, b.UID, b.GID, b.CUID, b.CGID)
				}
			}
		}
	}
	checkResult(t, tg, pid)
}

// TestSysvIpcIDTaken: where another user's object holds the segment's id
// at restore, the restore fails in one line naming it, creates no
// process, and removes what it made (the removed segment, made first);
// the other object is untouched.
func TestSysvIpcIDTaken(t *testing.T) {
	needsGocr(t)
	tg := startSysvTarget(t)
	pids := trackTree(t, tg.pid)
	shm, _, _ := sysvIDs(t, tg.pid)
	dir := t.TempDir()
	dump(t, tg.pid, dir)
	tg.waitDead(t, "a dump without --leave-running")
	waitAllGone(t, pids, "the dump")
	removeSysv(t, tg.pid)
	// Another user's segment, at the id.
	if err := os.WriteFile("/proc/sys/kernel/shm_next_id", []byte(strconv.Itoa(shm)), 0); err != nil {
		t.Fatal(err)
	}
	other, err := unix.SysvShmGet(0, 4096, ipc.IPCCreat|0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.SysvShmCtl(other, ipc.IPCRmid, nil) })
	if other != shm {
		t.Fatalf("made segment %d, wanted the id %d", other, shm)
	}
	desc := unix.SysvShmDesc{Perm: unix.SysvIpcPerm{Uid: 65534, Gid: 65534, Mode: 0o600}}
	if _, err := unix.SysvShmCtl(other, unix.IPC_SET, &desc); err != nil {
		t.Fatal(err)
	}
	before, err := proc.ReadSysvShm()
	if err != nil {
		t.Fatal(err)
	}
	r := runGocr(t, nil, "restore", "-d", "-D", dir)
	assertRefused(t, r, []string{"segment " + strconv.Itoa(shm), "id is taken", "owned by uid 65534"}, nil)
	assertNoProcess(t, tg.pid)
	after, err := proc.ReadSysvShm()
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range after {
		if o.ID == int32(other) && o.UID != 65534 {
			t.Errorf("the other user's segment changed: %+v", o)
		}
	}
	if len(after) > len(before) {
		t.Errorf("the failed restore left segments behind:\nbefore %+v\nafter %+v", before, after)
	}
	if _, sem, msg := sysvIDs(t, tg.pid); sem >= 0 || msg >= 0 {
		t.Errorf("the failed restore left semaphore set %d, message queue %d", sem, msg)
	}
}

// TestSysvIpcRefusals: what a dump cannot restore exactly is refused in
// one line, the job running on untouched.
func TestSysvIpcRefusals(t *testing.T) {
	needsGocr(t)
	t.Run("SemUndo", func(t *testing.T) {
		tg := startSysvTarget(t, "undo")
		r := runGocr(t, nil, "dump", "-t", strconv.Itoa(tg.pid), "-D", t.TempDir())
		assertRefused(t, r, []string{strconv.Itoa(tg.pid), "SEM_UNDO"}, nil)
		checkIntact(t, tg)
	})
	t.Run("AttachedOutside", func(t *testing.T) {
		tg := startSysvTarget(t)
		shm, _, _ := sysvIDs(t, tg.pid)
		b, err := unix.SysvShmAttach(shm, 0, unix.SHM_RDONLY)
		if err != nil {
			t.Fatal(err)
		}
		r := runGocr(t, nil, "dump", "-t", strconv.Itoa(tg.pid), "-D", t.TempDir())
		unix.SysvShmDetach(b)
		assertRefused(t, r, []string{"segment " + strconv.Itoa(shm), "outside the dump"}, nil)
		checkIntact(t, tg)
	})
	// The job dumped with --leave-running still uses its objects: a
	// restore next to it must not set them back under it.
	t.Run("RestoreWhileInUse", func(t *testing.T) {
		tg := startSysvTarget(t)
		dir := t.TempDir()
		dump(t, tg.pid, dir, "--leave-running")
		r := runGocr(t, nil, "restore", "-d", "--pidns=always", "-D", dir)
		// Segment B, removed while attached, is made first: its id is
		// still the running job's segment.
		assertRefused(t, r, []string{"segment", "its id is taken"}, nil)
		checkIntact(t, tg)
	})
	t.Run("IpcNamespace", func(t *testing.T) {
		unshare, err := exec.LookPath("unshare")
		if err != nil {
			t.Skipf("needs unshare(1) to start a process in its own IPC namespace: %v", err)
		}
		tg := startTargetOpts(t, "counter", startOpts{wrap: []string{unshare, "--ipc", "--"}})
		waitCounter(t, tg, 10)
		r := runGocr(t, nil, "dump", "-t", strconv.Itoa(tg.pid), "-D", t.TempDir())
		assertRefused(t, r, []string{strconv.Itoa(tg.pid), "ipc namespace"}, nil)
		checkIntactCounter(t, tg)
	})
}

// startMqueueTarget starts mqueue.c and removes the queue it leaves.
func startMqueueTarget(t *testing.T, args ...string) *target {
	t.Helper()
	needsRoot(t)
	tg := startTarget(t, "mqueue", args...)
	t.Cleanup(func() { ipc.MqUnlink("gocr-mq-" + strconv.Itoa(tg.pid) + "-a") })
	return tg
}

// TestMqueue: POSIX message queues, one opened twice (its own open file
// descriptions, O_NONBLOCK on one), one unlinked, restored with their
// attributes, modes and every message in order with its priority
// (mqueue.c): on the machine of the dump, where the named queue was left
// behind by the dump's end.
func TestMqueue(t *testing.T) {
	tg := startMqueueTarget(t)
	checkResult(t, tg, checkpointRestore(t, tg, cycleOpts{}))
}

// TestMqueueMadeAgain: the same where the named queue is gone (as on
// another machine): made again by its name.
func TestMqueueMadeAgain(t *testing.T) {
	needsGocr(t)
	tg := startMqueueTarget(t)
	view, err := readTreeView(t, tg.pid)
	if err != nil {
		t.Fatalf("read what the kernel shows of pid %d: %v", tg.pid, err)
	}
	dir := t.TempDir()
	dump(t, tg.pid, dir)
	tg.waitDead(t, "a dump without --leave-running")
	if err := ipc.MqUnlink("gocr-mq-" + strconv.Itoa(tg.pid) + "-a"); err != nil {
		t.Fatalf("unlink the queue the dumped job left: %v", err)
	}
	pid := restoreDetached(t, tg, dir, nil)
	checkTreeView(t, pid, view, nil)
	checkResult(t, tg, pid)
}

// TestMqueueRefusals: a queue with a notification registered is refused
// in one line, the job running on; at restore, another queue at the name
// fails the restore in one line and is left as it is.
func TestMqueueRefusals(t *testing.T) {
	needsGocr(t)
	t.Run("Notify", func(t *testing.T) {
		tg := startMqueueTarget(t, "notify")
		r := runGocr(t, nil, "dump", "-t", strconv.Itoa(tg.pid), "-D", t.TempDir())
		assertRefused(t, r, []string{"fd 50", "mq_notify"}, nil)
		checkIntact(t, tg)
	})
	t.Run("RestoreWhileInUse", func(t *testing.T) {
		tg := startMqueueTarget(t)
		dir := t.TempDir()
		dump(t, tg.pid, dir, "--leave-running")
		r := runGocr(t, nil, "restore", "-d", "--pidns=always", "-D", dir)
		assertRefused(t, r, []string{"/gocr-mq-" + strconv.Itoa(tg.pid) + "-a", "open in pid " + strconv.Itoa(tg.pid)}, nil)
		checkIntact(t, tg)
	})
	t.Run("NameTaken", func(t *testing.T) {
		tg := startMqueueTarget(t)
		dir := t.TempDir()
		dump(t, tg.pid, dir)
		tg.waitDead(t, "a dump without --leave-running")
		name := "gocr-mq-" + strconv.Itoa(tg.pid) + "-a"
		if err := ipc.MqUnlink(name); err != nil {
			t.Fatal(err)
		}
		other, err := ipc.MqOpen(name, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o600, &ipc.MqAttr{Maxmsg: 8, Msgsize: 64})
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(other)
		if err := ipc.MqSend(other, []byte("theirs"), 1); err != nil {
			t.Fatal(err)
		}
		r := runGocr(t, nil, "restore", "-d", "-D", dir)
		assertRefused(t, r, []string{"/" + name, "another queue"}, nil)
		assertNoProcess(t, tg.pid)
		if a, err := ipc.MqGetAttr(other); err != nil || a.Curmsgs != 1 {
			t.Errorf("the other queue changed: %+v %v", a, err)
		}
	})
}

// TestIpcTargetsDetectCorruption proves sysvipc.c and mqueue.c check what
// they claim: each case damages one object of a ready target from
// outside, as a faulty restore would, and the target must FAIL naming it.
func TestIpcTargetsDetectCorruption(t *testing.T) {
	needsRoot(t)
	for _, c := range []struct {
		name, target string
		damage       func(t *testing.T, pid int)
		want         string
	}{
		{"SysvShmContent", "sysvipc", func(t *testing.T, pid int) {
			shm, _, _ := sysvIDs(t, pid)
			b, err := unix.SysvShmAttach(shm, 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			b[5000]++
			unix.SysvShmDetach(b)
		}, "segment A: byte 5000"},
		{"SysvSemValue", "sysvipc", func(t *testing.T, pid int) {
			_, sem, _ := sysvIDs(t, pid)
			if err := ipc.SemSetAll(sem, []uint16{2, 0, 6}); err != nil {
				t.Fatal(err)
			}
		}, "semaphores 2 0 6, want 2 0 7"},
		{"SysvMsgOrder", "sysvipc", func(t *testing.T, pid int) {
			_, _, msg := sysvIDs(t, pid)
			buf := make([]byte, 8+4096)
			typ, n, err := ipc.MsgRecv(msg, buf, 0, ipc.IPCNowait)
			if err == nil {
				err = ipc.MsgSend(msg, typ, buf[8:8+n], ipc.IPCNowait)
			}
			if err != nil {
				t.Fatal(err)
			}
		}, "message 0: type 2"},
		{"MqueuePriority", "mqueue", func(t *testing.T, pid int) {
			h, err := unix.Open("/proc/"+strconv.Itoa(pid)+"/fd/50", unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(h)
			buf := make([]byte, 64)
			n, _, err := ipc.MqReceive(h, buf)
			if err == nil {
				err = ipc.MqSend(h, buf[:n], 4)
			}
			if err != nil {
				t.Fatal(err)
			}
		}, "message 0: p5-b prio 5, want p5-a prio 5"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var tg *target
			if c.target == "sysvipc" {
				tg = startSysvTarget(t)
			} else {
				tg = startMqueueTarget(t)
			}
			trackTree(t, tg.pid)
			c.damage(t, tg.pid)
			expectFail(t, tg, c.want)
		})
	}
}

// TestDumpLeavesNoSemUndoList: a dump's page-stream threads leave the
// job without a System V semaphore undo list it did not have (ipc/sem.c
// copy_semundo gives one to a thread made with CLONE_SYSVSEM), which
// would outlive the dump and make the next dump see a process that may
// hold undo adjustments. kcmp KCMP_SYSVSEM of two processes without one
// says they are the same (both none).
func TestDumpLeavesNoSemUndoList(t *testing.T) {
	needsGocr(t)
	tg := startTarget(t, "counter")
	waitCounter(t, tg, 5)
	other := exec.Command("sleep", "60")
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Process.Kill(); other.Wait() })
	same := func() bool {
		t.Helper()
		s, err := ipc.SameSemUndo(other.Process.Pid, tg.pid)
		if err != nil {
			t.Fatalf("kcmp KCMP_SYSVSEM: %v", err)
		}
		return s
	}
	if !same() {
		t.Fatalf("the counter (pid %d) has a semaphore undo list before any dump", tg.pid)
	}
	dump(t, tg.pid, t.TempDir(), "--leave-running", "--page-streams", "2")
	if !same() {
		t.Fatalf("after dump --leave-running --page-streams 2 the counter (pid %d) has a semaphore undo list", tg.pid)
	}
	waitCounter(t, tg, counterLines(t, tg.logPath, false)+5)
}
