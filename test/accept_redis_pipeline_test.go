//go:build linux

package test

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// waitPipelineStuck waits until redis has read every command of the
// pipelined client (its end of that connection has nothing left to read)
// and waits to write the rest of the replies (its epoll watches that end
// for EPOLLOUT). Until then redis works through the pipeline, and what
// the kernel shows of it changes as it goes: a view read then is no
// state to compare a restore with.
func (rs *redisServer) waitPipelineStuck(t *testing.T, rc *redisClients) {
	t.Helper()
	clientPort := rc.piped.conn.LocalAddr().(*net.TCPAddr).Port
	serverPort, _ := strconv.Atoi(rs.port)
	// /proc/net/tcp (man 5 proc): local and remote address:port in hex,
	// then tx_queue:rx_queue, ..., the socket's inode.
	local, remote := fmt.Sprintf(":%04X", serverPort), fmt.Sprintf(":%04X", clientPort)
	var inode string
	waitTCPRow(t, "redis having read the whole pipeline from port "+strconv.Itoa(clientPort), func(f []string) bool {
		if len(f) < 10 || !strings.HasSuffix(f[1], local) || !strings.HasSuffix(f[2], remote) {
			return false
		}
		_, rx, _ := strings.Cut(f[4], ":")
		n, err := strconv.ParseUint(rx, 16, 32)
		inode = f[9]
		return err == nil && n == 0
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		watched, err := epollWatchesOut(rs.pid, "socket:["+inode+"]")
		if err != nil {
			t.Fatalf("redis-server pid %d: %v", rs.pid, err)
		}
		if watched {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server pid %d does not wait to write to the pipelined client within 10 s", rs.pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// epollWatchesOut reports whether an epoll instance of pid watches the
// fd that links to target for EPOLLOUT: the "tfd: N events: MASK" lines
// of the epoll's fdinfo (man 5 proc_pid_fdinfo; EPOLLOUT is 0x4,
// include/uapi/linux/eventpoll.h).
func epollWatchesOut(pid int, target string) (bool, error) {
	fdDir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(fdDir)
	if err != nil {
		return false, err
	}
	fd, epolls := "", []string{}
	for _, e := range ents {
		switch link, _ := os.Readlink(fdDir + "/" + e.Name()); link {
		case target:
			fd = e.Name()
		case "anon_inode:[eventpoll]":
			epolls = append(epolls, e.Name())
		}
	}
	if fd == "" {
		return false, fmt.Errorf("no fd on %s", target)
	}
	for _, ep := range epolls {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%s", pid, ep))
		if err != nil {
			return false, err
		}
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) < 4 || f[0] != "tfd:" || f[1] != fd || f[2] != "events:" {
				continue
			}
			if mask, err := strconv.ParseUint(f[3], 16, 32); err == nil && mask&0x4 != 0 {
				return true, nil
			}
		}
	}
	return false, nil
}
