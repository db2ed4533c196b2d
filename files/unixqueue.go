//go:build linux

package files

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// What waits in a unix socket's queue: read at the dump without consuming
// it, sent again at the restore.

// unixMessage is one message waiting at a socket, and its sender's name
// (sun_path bytes, an abstract name with its NUL; "" for none).
type unixMessage struct {
	data []byte
	from string
}

// sockaddrName is the name of a sender as sock_diag gives names:
// golang.org/x/sys/unix writes an abstract name's leading NUL as '@'.
func sockaddrName(sa unix.Sockaddr) string {
	u, ok := sa.(*unix.SockaddrUnix)
	if !ok || u.Name == "" {
		return ""
	}
	if strings.HasPrefix(u.Name, "@") {
		return "\x00" + u.Name[1:]
	}
	return u.Name
}

// unixPeekBuf is how much one peek asks for: a longer datagram comes in
// several, each flagged MSG_TRUNC but the last.
const unixPeekBuf = 64 << 10

// unixMaxMessages bounds the messages a queue may hold, against a peek
// that never ends: the memory a sender may fill (SO_SNDBUF, at most
// wmem_max times two) holds far fewer.
const unixMaxMessages = 1 << 20

// peekUnixQueue copies what waits to be read at socket fd of pid, as the
// messages it was sent in (a stream's bytes as one), without consuming it
// and through gocr's own handle of it. Each MSG_PEEK reads from the socket's
// peek offset on and moves it on (SO_PEEK_OFF, man 7 socket): from 0 on,
// a datagram longer than the buffer comes in pieces and the next peek
// starts at the next datagram. SO_PASSCRED on makes every message come
// with its sender's credentials (man 7 unix), so an empty datagram or
// record is told from the end of the queue of a socket shut for reading,
// and credentials sent with a message are seen; SO_PASSSEC on shows each
// message's security context, which it returns (unixlabel.go). The
// options are the socket's own, so they are put back as they were. Each
// message comes with its sender's name as recvmsg(2) gives it (none for
// an unnamed sender, net/unix/af_unix.c unix_copy_addr).
func peekUnixQueue(pid, fd, typ int) (msgs []unixMessage, label string, err error) {
	h, err := takeFd(pid, fd)
	if err != nil {
		return nil, "", fmt.Errorf("take a handle of it: %w", err)
	}
	defer unix.Close(h)
	inq, err := unix.IoctlGetInt(h, unix.SIOCINQ)
	if err != nil {
		return nil, "", fmt.Errorf("SIOCINQ: %w", err)
	}
	if typ == unix.SOCK_STREAM {
		// MSG_OOB|MSG_PEEK reads the out-of-band byte, if one waits
		// (net/unix/af_unix.c unix_stream_recv_urg), and fails with
		// EINVAL if none does.
		var b [1]byte
		if _, _, err := unix.Recvfrom(h, b[:], unix.MSG_OOB|unix.MSG_PEEK|unix.MSG_DONTWAIT); err == nil {
			return nil, "", errors.New("an out-of-band byte (MSG_OOB) waits to be read, and its place in the stream is not restored")
		}
	}
	restore, err := setPeekOptions(h)
	if err != nil {
		return nil, "", err
	}
	defer func() {
		if rerr := restore(); rerr != nil && err == nil {
			err = rerr
		}
	}()
	buf := make([]byte, unixPeekBuf)
	oob := make([]byte, 4096)
	var cur []byte
	var from string
	var labels queueLabel
	more := false // cur is a datagram whose rest comes next
	for len(msgs) < unixMaxMessages {
		n, oobn, flags, sa, err := unix.Recvmsg(h, buf, oob, unix.MSG_PEEK|unix.MSG_DONTWAIT|unix.MSG_CMSG_CLOEXEC)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if errors.Is(err, unix.EAGAIN) {
			break
		}
		if err != nil {
			return nil, "", fmt.Errorf("peek at its queue: %w", err)
		}
		sent, ctx, err := checkUnixControl(oob[:oobn], flags)
		if err != nil {
			return nil, "", err
		}
		if !sent {
			break // the end of the queue of a socket shut for reading
		}
		if err := labels.add(ctx); err != nil {
			return nil, "", err
		}
		if !more {
			from = sockaddrName(sa)
		}
		cur = append(cur, buf[:n]...)
		if typ == unix.SOCK_STREAM {
			if len(cur) >= inq {
				break
			}
			continue
		}
		if more = flags&unix.MSG_TRUNC != 0; !more {
			msgs = append(msgs, unixMessage{data: cur, from: from})
			cur = nil
		}
	}
	if typ == unix.SOCK_STREAM {
		if len(cur) > 0 {
			msgs = []unixMessage{{data: cur}}
		}
		cur = nil
	}
	if more || len(cur) > 0 || len(msgs) == unixMaxMessages {
		return nil, "", errors.New("its queue did not come to an end")
	}
	// What SIOCINQ counts (net/unix/af_unix.c unix_inq_len): a
	// datagram socket's first datagram; the others' every byte.
	got := 0
	for _, m := range msgs {
		got += len(m.data)
	}
	if typ == unix.SOCK_DGRAM && len(msgs) > 0 {
		got = len(msgs[0].data)
	}
	if got != inq {
		return nil, "", fmt.Errorf("read %d bytes of its queue, the kernel counts %d", got, inq)
	}
	if label, err = labels.check(); err != nil {
		return nil, "", err
	}
	return msgs, label, nil
}

// setPeekOptions sets SO_PEEK_OFF to 0 and SO_PASSCRED and SO_PASSSEC
// on, and returns what puts them back.
func setPeekOptions(h int) (func() error, error) {
	opts := []struct {
		name      string
		opt, peek int
		was       int
	}{
		{"SO_PEEK_OFF", unix.SO_PEEK_OFF, 0, 0},
		{"SO_PASSCRED", unix.SO_PASSCRED, 1, 0},
		{"SO_PASSSEC", unix.SO_PASSSEC, 1, 0},
	}
	for i := range opts {
		v, err := unix.GetsockoptInt(h, unix.SOL_SOCKET, opts[i].opt)
		if err != nil {
			return nil, fmt.Errorf("getsockopt %s: %w", opts[i].name, err)
		}
		opts[i].was = v
	}
	restore := func() error {
		var errs []error
		for _, o := range opts {
			if err := unix.SetsockoptInt(h, unix.SOL_SOCKET, o.opt, o.was); err != nil {
				errs = append(errs, fmt.Errorf("put back its %s %d: %w", o.name, o.was, err))
			}
		}
		return errors.Join(errs...)
	}
	for _, o := range opts {
		if err := unix.SetsockoptInt(h, unix.SOL_SOCKET, o.opt, o.peek); err != nil {
			return nil, errors.Join(fmt.Errorf("set %s %d to peek: %w", o.name, o.peek, err), restore())
		}
	}
	return restore, nil
}

// checkUnixControl reads the control messages of one peek: whether they
// came with a message (every message has its SCM_CREDENTIALS, as
// SO_PASSCRED is on), its security context if it has one (SO_PASSSEC
// is on), and an error for what the restore could not send again. Any
// fd they hold is closed.
func checkUnixControl(oob []byte, flags int) (sent bool, ctx string, err error) {
	cmsgs, perr := unix.ParseSocketControlMessage(oob)
	for _, m := range cmsgs {
		if m.Header.Level != unix.SOL_SOCKET {
			err = errors.Join(err, fmt.Errorf("control message level %d type %d is in its queue", m.Header.Level, m.Header.Type))
			continue
		}
		switch m.Header.Type {
		case unix.SCM_CREDENTIALS:
			sent = true
			// A message sent without credentials reads as pid 0
			// (net/core/scm.c, the pid of none).
			c, cerr := unix.ParseUnixCredentials(&m)
			switch {
			case cerr != nil:
				err = errors.Join(err, cerr)
			case c.Pid != 0:
				err = errors.Join(err, fmt.Errorf("credentials (SCM_CREDENTIALS of pid %d) are in flight to it, and the restore cannot send them again", c.Pid))
			}
		case unix.SCM_RIGHTS:
			fds, _ := unix.ParseUnixRights(&m)
			for _, f := range fds {
				unix.Close(f)
			}
			err = errors.Join(err, fmt.Errorf("fds in flight (SCM_RIGHTS: %d sent to it, not received yet) are not restored", len(fds)))
		case unix.SCM_PIDFD:
			// One int, a pidfd gocr now holds: it comes with
			// SO_PASSPIDFD for a message sent with credentials
			// (include/net/scm.h scm_pidfd_recv), which
			// SCM_CREDENTIALS refuses.
			if len(m.Data) >= 4 {
				unix.Close(int(int32(binary.NativeEndian.Uint32(m.Data))))
			}
		case unix.SCM_SECURITY:
			ctx = securityContext(m.Data)
		default:
			err = errors.Join(err, fmt.Errorf("control message type %d is in its queue", m.Header.Type))
		}
	}
	if perr != nil {
		err = errors.Join(err, fmt.Errorf("parse control messages: %w", perr))
	}
	if flags&unix.MSG_CTRUNC != 0 {
		err = errors.Join(err, errors.New("control messages in its queue did not fit"))
	}
	return sent, ctx, err
}

// fillUnixQueue sends msgs from socket h to the socket named to, or to
// its peer if to is nil, each datagram or record on its own. h's send
// buffer grows as far as the messages need: the socket's own size is set
// afterwards, when it is opened.
func fillUnixQueue(h, typ int, to unix.Sockaddr, msgs ...[]byte) error {
	for _, m := range msgs {
		for off := 0; ; {
			n, err := unix.SendmsgN(h, m[off:], nil, to, unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL)
			switch {
			case errors.Is(err, unix.EINTR):
				continue
			case errors.Is(err, unix.EAGAIN), errors.Is(err, unix.EMSGSIZE):
				if gerr := growSndbuf(h); gerr != nil {
					return fmt.Errorf("send %d bytes: %w (%w)", len(m)-off, err, gerr)
				}
				continue
			case err != nil:
				return fmt.Errorf("send %d bytes: %w", len(m)-off, err)
			}
			off += n
			if typ != unix.SOCK_STREAM || off >= len(m) {
				break
			}
		}
	}
	return nil
}

// unixMaxSndbuf bounds how far fillUnixQueue grows a send buffer.
const unixMaxSndbuf = 1 << 30

// growSndbuf doubles h's send buffer, beyond net.core.wmem_max if gocr
// may (SO_SNDBUFFORCE needs CAP_NET_ADMIN).
func growSndbuf(h int) error {
	cur, err := unix.GetsockoptInt(h, unix.SOL_SOCKET, unix.SO_SNDBUF)
	if err != nil {
		return err
	}
	if cur >= unixMaxSndbuf {
		return fmt.Errorf("send buffer at %d bytes", cur)
	}
	// The kernel doubles what it is given (man 7 socket).
	if err := unix.SetsockoptInt(h, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, cur); err != nil {
		if err := unix.SetsockoptInt(h, unix.SOL_SOCKET, unix.SO_SNDBUF, cur); err != nil {
			return err
		}
	}
	if now, err := unix.GetsockoptInt(h, unix.SOL_SOCKET, unix.SO_SNDBUF); err != nil || now <= cur {
		return fmt.Errorf("send buffer stays at %d bytes", cur)
	}
	return nil
}
