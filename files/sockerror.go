//go:build linux

package files

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/gocrpb"
)

// refuseSocketError refuses a socket with a pending error (SO_ERROR) or
// messages on its error queue (MSG_ERRQUEUE): reading either takes it
// away (man 7 socket, man 7 ip IP_RECVERR), and nothing queues it again.
// poll(2) on gocr's handle shows both without taking them: POLLERR is
// sk_err or a non-empty sk_error_queue (net/core/datagram.c
// datagram_poll for UDP, net/ipv4/tcp.c tcp_poll, net/unix/af_unix.c
// unix_poll and unix_dgram_poll).
func refuseSocketError(h int) error {
	pending, err := socketErrorPending(h)
	if err != nil {
		return err
	}
	if pending {
		return errors.New("a pending socket error (SO_ERROR) or messages on its error queue (MSG_ERRQUEUE), which reading takes away and gocr cannot queue again")
	}
	return nil
}

// socketErrorPending tells whether poll(2) says POLLERR on socket h.
func socketErrorPending(h int) (bool, error) {
	p := []unix.PollFd{{Fd: int32(h)}}
	for {
		_, err := unix.Poll(p, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("poll: %w", err)
		}
		break
	}
	return p[0].Revents&unix.POLLERR != 0, nil
}

// readUnixError records a unix socket's pending error, or refuses it.
// The kernel sets one error on a unix socket: ECONNRESET, on a stream or
// seqpacket socket whose peer is closed with data it had not read, and
// on a datagram socket whose peer, connected to it, connects elsewhere
// (net/unix/af_unix.c unix_release_sock, unix_dgram_disconnected); and
// queues nothing on its error queue (SO_TIMESTAMPING, the one way there,
// is refused: unixoptions.go). The first is made again: the restore
// closes such a peer with a byte it sent it unread (unixconnect.go).
func readUnixError(h int, u *gocrpb.UnixSocketFd) error {
	pending, err := socketErrorPending(h)
	if err != nil || !pending {
		return err
	}
	// A stream's peer closed shows as no peer (sock_diag
	// UNIX_DIAG_PEER): Link makes it PEER_GONE.
	if u.GetType() != gocrpb.UnixSocketFd_DGRAM && u.GetPeer() == 0 {
		u.ResetPending = true
		return nil
	}
	return refuseSocketError(h)
}

// checkUnixError checks a restored unix socket has its error pending
// exactly when the dumped one had.
func checkUnixError(h int, u *gocrpb.UnixSocketFd) error {
	pending, err := socketErrorPending(h)
	if err != nil {
		return err
	}
	if pending != u.GetResetPending() {
		return fmt.Errorf("a pending error (ECONNRESET) is %v after the restore, %v at the dump", pending, u.GetResetPending())
	}
	return nil
}
