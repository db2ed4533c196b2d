//go:build linux

package files

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// refuseSocketError refuses a socket with a pending error (SO_ERROR) or
// messages on its error queue (MSG_ERRQUEUE): reading either takes it
// away (man 7 socket, man 7 ip IP_RECVERR), and nothing queues it again.
// poll(2) on gocr's handle shows both without taking them: POLLERR is
// sk_err or a non-empty sk_error_queue (net/core/datagram.c
// datagram_poll for UDP, net/ipv4/tcp.c tcp_poll, net/unix/af_unix.c
// unix_poll and unix_dgram_poll).
func refuseSocketError(h int) error {
	p := []unix.PollFd{{Fd: int32(h)}}
	for {
		_, err := unix.Poll(p, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("poll: %w", err)
		}
		break
	}
	if p[0].Revents&unix.POLLERR != 0 {
		return errors.New("a pending socket error (SO_ERROR) or messages on its error queue (MSG_ERRQUEUE), which reading takes away and gocr cannot queue again")
	}
	return nil
}
