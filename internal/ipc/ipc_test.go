//go:build linux && amd64

package ipc

import (
	"errors"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// The layouts and commands, checked on private objects of the test's
// own: what is set is read back through another interface.
func TestMsgQueue(t *testing.T) {
	id, err := MsgGet(0, IPCCreat|0o600)
	if err != nil {
		t.Skipf("System V message queues unavailable: %v", err)
	}
	defer MsgRemove(id)
	ds, err := MsgStat(id)
	if err != nil {
		t.Fatal(err)
	}
	mnb, err := os.ReadFile("/proc/sys/kernel/msgmnb")
	if err != nil {
		t.Fatal(err)
	}
	if got := ds.Qbytes; string(mnb) != itoa(got)+"\n" {
		t.Errorf("msg_qbytes %d, /proc/sys/kernel/msgmnb says %q", got, mnb)
	}
	qbytes := ds.Qbytes - 1
	if err := MsgSet(id, uint32(os.Getuid()), uint32(os.Getgid()), 0o640, qbytes); err != nil {
		t.Fatal(err)
	}
	for i, m := range []string{"one", "", "three"} {
		if err := MsgSend(id, int64(i+7), []byte(m), IPCNowait); err != nil {
			t.Fatal(err)
		}
	}
	if ds, err = MsgStat(id); err != nil {
		t.Fatal(err)
	}
	if ds.Qnum != 3 || ds.Qbytes != qbytes || ds.Perm.Mode&0o777 != 0o640 || ds.Lspid != int32(os.Getpid()) {
		t.Errorf("after sends: %+v", ds)
	}
	buf := make([]byte, 8+64)
	for i, want := range []string{"one", "", "three"} {
		typ, n, err := MsgRecv(id, buf, int64(i), IPCNowait|MsgCopy)
		if err != nil {
			t.Fatalf("MSG_COPY %d: %v", i, err)
		}
		if typ != int64(i+7) || string(buf[8:8+n]) != want {
			t.Errorf("message %d: type %d %q, want %d %q", i, typ, buf[8:8+n], i+7, want)
		}
	}
	if _, _, err := MsgRecv(id, buf, 3, IPCNowait|MsgCopy); !errors.Is(err, unix.ENOMSG) {
		t.Errorf("MSG_COPY past the end: %v, want ENOMSG", err)
	}
	if ds, _ = MsgStat(id); ds.Qnum != 3 || ds.Lrpid != 0 {
		t.Errorf("MSG_COPY consumed or was recorded: %+v", ds)
	}
}

func TestSemaphores(t *testing.T) {
	id, err := SemGet(0, 3, IPCCreat|0o600)
	if err != nil {
		t.Skipf("System V semaphores unavailable: %v", err)
	}
	defer SemRemove(id)
	if err := SemSetAll(id, []uint16{1, 0, 65535 / 2}); err != nil {
		t.Fatal(err)
	}
	got, err := SemGetAll(id, 3)
	if err != nil {
		t.Fatal(err)
	}
	if got[0] != 1 || got[1] != 0 || got[2] != 65535/2 {
		t.Errorf("GETALL %v", got)
	}
	if pid, err := SemGetPid(id, 2); err != nil || pid != os.Getpid() {
		t.Errorf("GETPID: %d %v, want %d", pid, err, os.Getpid())
	}
	if err := SemSetPerm(id, uint32(os.Getuid()), uint32(os.Getgid()), 0o604); err != nil {
		t.Fatal(err)
	}
	same, err := SameSemUndo(os.Getpid(), os.Getpid())
	if err != nil {
		t.Skipf("kcmp: %v", err)
	}
	if !same {
		t.Errorf("a process's undo list differs from itself")
	}
}

func TestMqueue(t *testing.T) {
	name := "gocr-ipc-test-" + itoa(uint64(os.Getpid()))
	fd, err := MqOpen(name, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_NONBLOCK|unix.O_CLOEXEC, 0o600, &MqAttr{Maxmsg: 4, Msgsize: 16})
	if err != nil {
		t.Skipf("POSIX message queues unavailable: %v", err)
	}
	defer unix.Close(fd)
	defer MqUnlink(name)
	for i, m := range []string{"low", "high", "low2"} {
		prio := uint32(1)
		if i == 1 {
			prio = 9
		}
		if err := MqSend(fd, []byte(m), prio); err != nil {
			t.Fatal(err)
		}
	}
	a, err := MqGetAttr(fd)
	if err != nil {
		t.Fatal(err)
	}
	if a.Maxmsg != 4 || a.Msgsize != 16 || a.Curmsgs != 3 || a.Flags != unix.O_NONBLOCK {
		t.Errorf("attributes %+v", a)
	}
	buf := make([]byte, 16)
	for _, want := range []string{"high", "low", "low2"} {
		n, _, err := MqReceive(fd, buf)
		if err != nil || string(buf[:n]) != want {
			t.Errorf("receive: %q %v, want %q", buf[:n], err, want)
		}
	}
	if _, _, err := MqReceive(fd, buf); !errors.Is(err, unix.EAGAIN) {
		t.Errorf("receive from an empty queue: %v, want EAGAIN", err)
	}
}

func itoa(n uint64) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}
