//go:build linux

package files

import (
	"fmt"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// Security contexts of unix messages. Where the LSM labels them, a
// message carries the context of the socket that sent it, which the
// receiver reads as SCM_SECURITY with SO_PASSSEC on (man 7 unix;
// include/net/scm.h scm_passec; SELinux gives the sending socket's SID,
// security/selinux/hooks.c selinux_socket_getpeersec_dgram; AppArmor and
// no LSM give none). A socket is labelled when it is made, after its
// maker (security/selinux/hooks.c socket_sockcreate_sid). The restore
// sends the queued messages again from sockets gocr makes, so they come
// back with gocr's sockets' context: the dump keeps a queue only if all
// its messages carry that one context (or none), and the restore checks
// that its sockets carry it still.

// ownSocketLabel is the context a message sent from a socket gocr makes
// carries; "" where the kernel labels none.
var ownSocketLabel = sync.OnceValues(probeSocketLabel)

func probeSocketLabel() (string, error) {
	sv, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return "", fmt.Errorf("a socketpair to read the label of gocr's sockets: %w", err)
	}
	defer unix.Close(sv[0])
	defer unix.Close(sv[1])
	if err := unix.SetsockoptInt(sv[1], unix.SOL_SOCKET, unix.SO_PASSSEC, 1); err != nil {
		return "", fmt.Errorf("set SO_PASSSEC to read the label of gocr's sockets: %w", err)
	}
	if _, err := unix.Write(sv[0], []byte{0}); err != nil {
		return "", fmt.Errorf("send a message to read the label of gocr's sockets: %w", err)
	}
	oob := make([]byte, 4096)
	_, oobn, _, _, err := unix.Recvmsg(sv[1], make([]byte, 1), oob, unix.MSG_DONTWAIT)
	if err != nil {
		return "", fmt.Errorf("receive a message to read the label of gocr's sockets: %w", err)
	}
	cmsgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		return "", fmt.Errorf("the label of gocr's sockets: %w", err)
	}
	for _, m := range cmsgs {
		if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SCM_SECURITY {
			return securityContext(m.Data), nil
		}
	}
	return "", nil
}

// securityContext is an SCM_SECURITY message's context as text: the
// kernel's string, its terminating NUL counted in where the LSM counts
// it (security/selinux/ss/services.c context_struct_to_string).
func securityContext(b []byte) string {
	return strings.TrimRight(string(b), "\x00")
}

// queueLabel gathers the contexts of one queue's peeks.
type queueLabel struct {
	label                string
	labelled, unlabelled int
}

// add notes one peek's context ("" for none); every peek reads from one
// sender's messages alone (net/unix/af_unix.c unix_stream_read_generic
// glues no two whose unix_skb_scm_eq differs, the context included).
func (q *queueLabel) add(ctx string) error {
	if ctx == "" {
		q.unlabelled++
		return nil
	}
	if q.labelled > 0 && ctx != q.label {
		return fmt.Errorf("messages with two security contexts (SCM_SECURITY %q and %q) wait in its queue, and the restore sends them all from sockets of one", q.label, ctx)
	}
	q.label = ctx
	q.labelled++
	return nil
}

// check refuses a queue whose messages the restore would send with
// another context, and returns the one they all carry.
func (q *queueLabel) check() (string, error) {
	if q.labelled == 0 {
		return "", nil
	}
	if q.unlabelled > 0 {
		return "", fmt.Errorf("%d messages with security context %q (SCM_SECURITY) and %d with none wait in its queue, and the restore sends them all from sockets of one", q.labelled, q.label, q.unlabelled)
	}
	own, err := ownSocketLabel()
	if err != nil {
		return "", err
	}
	if own != q.label {
		return "", fmt.Errorf("messages with security context %q (SCM_SECURITY) wait in its queue, and the restore would send them from gocr's sockets, labelled %q", q.label, own)
	}
	return q.label, nil
}

// checkReceivedLabel refuses, at the restore, a queue whose messages
// gocr's sockets would send with a context other than the dumped one.
func checkReceivedLabel(want string) error {
	if want == "" {
		return nil
	}
	own, err := ownSocketLabel()
	if err != nil {
		return err
	}
	if own != want {
		if own == "" {
			return fmt.Errorf("its queued messages came with security context %q (SCM_SECURITY), and this kernel labels gocr's messages with none", want)
		}
		return fmt.Errorf("its queued messages came with security context %q (SCM_SECURITY), and gocr's sockets here are labelled %q", want, own)
	}
	return nil
}
