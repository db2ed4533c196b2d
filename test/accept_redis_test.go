//go:build linux

package test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/internal/ipc"
)

// ipcPrivate is IPC_PRIVATE (include/uapi/linux/ipc.h): a new set, with no key.
const ipcPrivate = 0

// redis-server checkpointed with its clients: 10,000 keys, one client
// idle, one mid-pipeline (commands sent whose replies it has not all
// read). After the restore both carry on over the same connections, the
// pipeline's remaining replies arrive in order, and every key is intact.

const (
	redisKeys      = 10000
	redisReadFirst = 1000 // pipelined replies read before the checkpoint
)

func redisKey(i int) string { return fmt.Sprintf("key:%05d", i) }

// redisValue is long enough that the pipeline's replies left unread
// outgrow the largest send buffer the kernel may grow the server's end
// to (tcp_wmem's maximum, man 7 tcp) four times over, besides the
// client's small receive buffer: redis then waits to write them from the
// pipeline's start to the client's reading after the restore, whatever
// the buffers' growth. With less, it wrote them all at an instant no one
// chose, before the dump or after the restore, and stopped watching the
// connection for EPOLLOUT.
func redisValue(i int) string {
	head := fmt.Sprintf("value-%05d-", i)
	return head + strings.Repeat("abcdefghij", (redisValueLen()-len(head))/10)
}

var redisValueLen = sync.OnceValue(func() int {
	wmemMax := 4 << 20 // the kernel's default (net/ipv4/tcp.c tcp_init)
	if b, err := os.ReadFile("/proc/sys/net/ipv4/tcp_wmem"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 3 {
			if n, err := strconv.Atoi(f[2]); err == nil {
				wmemMax = n
			}
		}
	}
	return max(100, 4*wmemMax/(redisKeys-redisReadFirst))
})

// redisCommand encodes a command in RESP (the Redis serialization
// protocol): an array of bulk strings.
func redisCommand(args ...string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	return []byte(b.String())
}

// redisConn is a client connection to redis.
type redisConn struct {
	conn net.Conn
	r    *bufio.Reader
}

// dialRedis connects to redis at port; rcvbuf, if not 0, is set before
// the connection is made, so the window it advertises is small too.
func dialRedis(port string, rcvbuf int) (*redisConn, error) {
	d := net.Dialer{Timeout: 10 * time.Second}
	if rcvbuf > 0 {
		d.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			if err := c.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, rcvbuf)
			}); err != nil {
				return err
			}
			return serr
		}
	}
	c, err := d.Dial("tcp4", "127.0.0.1:"+port)
	if err != nil {
		return nil, err
	}
	return &redisConn{conn: c, r: bufio.NewReader(c)}, nil
}

// reply reads one reply: a simple string or integer as its text, a bulk
// string as its contents, an array's elements joined by "\n"; an error
// reply is an error.
func (rc *redisConn) reply() (string, error) {
	rc.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := rc.r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return "", errors.New("empty reply line")
	}
	switch line[0] {
	case '+', ':':
		return line[1:], nil
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return "", fmt.Errorf("bulk reply %q", line)
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(rc.r, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	case '*':
		n, err := strconv.Atoi(line[1:])
		if err != nil {
			return "", fmt.Errorf("array reply %q", line)
		}
		elems := make([]string, n)
		for i := range elems {
			if elems[i], err = rc.reply(); err != nil {
				return "", err
			}
		}
		return strings.Join(elems, "\n"), nil
	}
	return "", fmt.Errorf("redis answered %q", line)
}

// roundTrip sends one command and reads its reply.
func (rc *redisConn) roundTrip(args ...string) (string, error) {
	rc.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := rc.conn.Write(redisCommand(args...)); err != nil {
		return "", err
	}
	return rc.reply()
}

// do is roundTrip that fails the test on an error.
func (rc *redisConn) do(t *testing.T, args ...string) string {
	t.Helper()
	r, err := rc.roundTrip(args...)
	if err != nil {
		t.Fatalf("redis %s: %v", args[0], err)
	}
	return r
}

// redisServer is a redis-server the test started, as jobUID, on a free
// loopback port in a directory of its own, with no persistence.
type redisServer struct {
	cmd     *exec.Cmd
	pid     int
	port    string
	logPath string
	done    chan struct{} // closed once the original process is reaped
}

// startRedis starts redis-server (as root with asRoot) and waits until
// it answers; cleanup ends it, original or restored.
func startRedis(t *testing.T, asRoot bool) *redisServer {
	t.Helper()
	bin := needsProgram(t, "redis-server", "redis-server")
	dir := jobDir(t)
	rs := &redisServer{port: freeLoopbackPort(t), logPath: filepath.Join(dir, "log"), done: make(chan struct{})}
	argv := []string{bin, "--port", rs.port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", dir, "--daemonize", "no"}
	if !asRoot {
		argv = append(asJobUser(), argv...)
	}
	log, err := os.Create(rs.logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	rs.cmd = exec.Command(argv[0], argv[1:]...)
	rs.cmd.Stdout, rs.cmd.Stderr = log, log
	if err := rs.cmd.Start(); err != nil {
		t.Fatalf("start redis-server: %v", err)
	}
	rs.pid = rs.cmd.Process.Pid
	go func() { rs.cmd.Wait(); close(rs.done) }()
	cmdline := ""
	t.Cleanup(func() { rs.kill(t, cmdline) })
	deadline := time.Now().Add(readyTimeout)
	for {
		if c, err := dialRedis(rs.port, 0); err == nil {
			pong, err := c.roundTrip("PING")
			c.conn.Close()
			if err == nil && pong == "PONG" {
				break
			}
		}
		select {
		case <-rs.done:
			t.Fatalf("redis-server exited before it answered: %v\n%s", rs.cmd.ProcessState, logTail(rs.logPath, 20))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server does not answer on port %s after %v\n%s", rs.port, readyTimeout, logTail(rs.logPath, 20))
		}
		time.Sleep(20 * time.Millisecond)
	}
	cmdline = cmdlineOf(rs.pid)
	return rs
}

// kill ends redis: the original through its handle, a restored one (not
// the test's child) by PID while it still runs the same command line.
func (rs *redisServer) kill(t *testing.T, cmdline string) {
	select {
	case <-rs.done:
	default:
		rs.cmd.Process.Kill()
		<-rs.done
	}
	if cmdline != "" && !gone(rs.pid) && cmdlineOf(rs.pid) == cmdline {
		if err := syscall.Kill(rs.pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			t.Errorf("kill restored redis-server pid %d: %v", rs.pid, err)
		}
		if !waitGone(rs.pid, pidGoneTimeout) {
			t.Errorf("restored redis-server pid %d still present %v after SIGKILL", rs.pid, pidGoneTimeout)
		}
	}
}

// load sets every key in one pipeline.
func (rs *redisServer) load(t *testing.T) {
	t.Helper()
	c, err := dialRedis(rs.port, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer c.conn.Close()
	var cmds []byte
	for i := range redisKeys {
		cmds = append(cmds, redisCommand("SET", redisKey(i), redisValue(i))...)
	}
	go c.conn.Write(cmds) // redis answers as it reads; a reply that fails ends the test
	for i := range redisKeys {
		if r, err := c.reply(); err != nil || r != "OK" {
			t.Fatalf("SET %s: %q (%v)", redisKey(i), r, err)
		}
	}
}

// redisClients are the two clients of the acceptance test.
type redisClients struct {
	idle, piped *redisConn
	sent        chan error // the pipeline's commands all written
}

// connect makes the idle client (after a PING) and the pipelined one,
// which sends a GET of every key and reads the first replies only.
func (rs *redisServer) connect(t *testing.T) *redisClients {
	t.Helper()
	idle, err := dialRedis(rs.port, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idle.conn.Close() })
	if r := idle.do(t, "PING"); r != "PONG" {
		t.Fatalf("PING: %q", r)
	}
	piped, err := dialRedis(rs.port, 4096)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { piped.conn.Close() })
	rc := &redisClients{idle: idle, piped: piped, sent: make(chan error, 1)}
	var cmds []byte
	for i := range redisKeys {
		cmds = append(cmds, redisCommand("GET", redisKey(i))...)
	}
	go func() { _, err := piped.conn.Write(cmds); rc.sent <- err }()
	for i := range redisReadFirst {
		if r, err := piped.reply(); err != nil || r != redisValue(i) {
			t.Fatalf("pipelined GET %s: %q (%v)", redisKey(i), r, err)
		}
	}
	select {
	case err := <-rc.sent:
		if err != nil {
			t.Fatalf("send the pipeline: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the pipeline's commands not all sent after 10 s")
	}
	return rc
}

// carryOn checks both clients after the restore: the idle one is
// answered, the pipelined one reads every reply left in order, every key
// is intact; then redis is shut down.
func (rc *redisClients) carryOn(t *testing.T, rs *redisServer, pid int) {
	t.Helper()
	if r := rc.idle.do(t, "PING"); r != "PONG" {
		t.Fatalf("PING on the idle client's connection after the restore: %q", r)
	}
	for i := redisReadFirst; i < redisKeys; i++ {
		if r, err := rc.piped.reply(); err != nil || r != redisValue(i) {
			t.Fatalf("pipelined GET %s after the restore: %q (%v)", redisKey(i), r, err)
		}
	}
	for first := 0; first < redisKeys; first += 1000 {
		args := []string{"MGET"}
		for i := first; i < first+1000; i++ {
			args = append(args, redisKey(i))
		}
		got := strings.Split(rc.idle.do(t, args...), "\n")
		for i, v := range got {
			if v != redisValue(first+i) {
				t.Fatalf("MGET %s after the restore: %q", redisKey(first+i), v)
			}
		}
	}
	if n := rc.idle.do(t, "DBSIZE"); n != strconv.Itoa(redisKeys) {
		t.Fatalf("DBSIZE after the restore: %s, want %d", n, redisKeys)
	}
	// SHUTDOWN closes the connection rather than answering.
	rc.idle.conn.Write(redisCommand("SHUTDOWN", "NOSAVE"))
	if !waitGone(pid, pidGoneTimeout) {
		t.Fatalf("restored redis-server pid %d still runs %v after SHUTDOWN", pid, pidGoneTimeout)
	}
}

// TestRedisClientsOutside: redis-server alone is the job; its clients
// are the test's, outside it, so their connections need
// --tcp-established at dump and restore.
func TestRedisClientsOutside(t *testing.T) {
	needsGocr(t)
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("nft (nftables) is not installed: make deps installs it")
	}
	rs := startRedis(t, false)
	rs.load(t)
	clients := rs.connect(t)
	rs.waitPipelineStuck(t, clients)
	before, err := readTreeView(t, rs.pid)
	if err != nil {
		t.Fatalf("read what the kernel shows of redis-server, pid %d: %v", rs.pid, err)
	}
	dir := t.TempDir()
	dump(t, rs.pid, dir, "--tcp-established")
	select {
	case <-rs.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("redis-server pid %d still runs 10 s after the dump", rs.pid)
	}
	restore(t, nil, dir, "-d", "--tcp-established")
	if gone(rs.pid) {
		t.Fatalf("restored redis-server pid %d is not running\n%s", rs.pid, logTail(rs.logPath, 20))
	}
	checkTreeView(t, rs.pid, before, nil)
	clients.carryOn(t, rs, rs.pid)
	assertNoGocrTable(t)
}

// TestRedisClientsInJob: redis-server is the child of the process that
// holds both clients (redisjob.py), so the job is the whole tree and both
// ends of every connection are in it.
func TestRedisClientsInJob(t *testing.T) {
	needsRoot(t)
	server := needsProgram(t, "redis-server", "redis-server")
	out, err := exec.Command("python3", "-c", "import sys; print(sys.executable)").Output()
	if err != nil {
		t.Skipf("no python3: %v", err)
	}
	targets["redisjob"] = []string{strings.TrimSpace(string(out)), filepath.Join(moduleRoot, "test", "targets", "redisjob.py")}
	tg := startTargetOpts(t, "redisjob", startOpts{
		args: []string{server, freeLoopbackPort(t)},
		wrap: wrapAsJobUser(2),
	})
	checkResult(t, tg, checkpointRestoreTree(t, tg))
}

// TestRedisRootRefused: redis-server run by root, on a machine holding a
// System V semaphore set that a semop changed since redis started, is
// refused in one line (it made threads, so it has a semaphore undo list,
// root may alter every set, and nothing tells whether that semop was
// redis's with SEM_UNDO), and runs on.
func TestRedisRootRefused(t *testing.T) {
	needsGocr(t)
	rs := startRedis(t, true)
	rs.load(t)
	clients := rs.connect(t)
	id, err := ipc.SemGet(ipcPrivate, 1, unix.IPC_CREAT|0o600)
	if err != nil {
		t.Fatalf("semget: %v", err)
	}
	t.Cleanup(func() { ipc.SemRemove(id) })
	// A semop (perl's builtin: perl-base is in every Debian) sets the
	// set's sem_otime: it could have been redis's.
	if out, err := exec.Command("perl", "-e", `semop($ARGV[0], pack("s!3", 0, 1, 0)) or die "semop: $!\n"`, strconv.Itoa(id)).CombinedOutput(); err != nil {
		t.Fatalf("semop on set %d: %v\n%s", id, err, out)
	}
	dir := t.TempDir()
	// Should the dump be taken, its kept nftables table goes with it.
	t.Cleanup(func() { runGocr(t, nil, "cleanup", "--abandon", dir) })
	r := runGocr(t, nil, "dump", "-t", strconv.Itoa(rs.pid), "-D", dir, "--tcp-established")
	assertRefused(t, r, []string{fmt.Sprintf("pid %d", rs.pid), "SEM_UNDO"}, nil)
	assertUntouched(t, rs.pid)
	clients.carryOn(t, rs, rs.pid)
}
