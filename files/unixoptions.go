//go:build linux

package files

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/gocrpb"
)

// A unix socket's options (man 7 socket, man 7 unix): those gocr
// restores, read at the dump and set at the restore, and those it
// refuses.

// unixIntOption is a socket option of one int (man 7 socket).
type unixIntOption struct {
	name string
	opt  int
}

// unixUnrestored are the options of SOL_SOCKET a user can set on a unix
// socket that gocr does not restore; a socket whose value differs from a
// new socket's is refused. SO_OOBINLINE is one: where in the stream an
// out-of-band byte read inline stood cannot be seen from outside.
var unixUnrestored = []unixIntOption{
	{"SO_KEEPALIVE", unix.SO_KEEPALIVE}, {"SO_OOBINLINE", unix.SO_OOBINLINE},
	{"SO_PRIORITY", unix.SO_PRIORITY}, {"SO_RCVLOWAT", unix.SO_RCVLOWAT},
	{"SO_REUSEPORT", unix.SO_REUSEPORT},
	{"SO_BROADCAST", unix.SO_BROADCAST}, {"SO_DONTROUTE", unix.SO_DONTROUTE},
	{"SO_MARK", unix.SO_MARK}, {"SO_RCVMARK", unix.SO_RCVMARK}, {"SO_RCVPRIORITY", unix.SO_RCVPRIORITY},
	{"SO_TIMESTAMP", unix.SO_TIMESTAMP}, {"SO_TIMESTAMPNS", unix.SO_TIMESTAMPNS},
	{"SO_TIMESTAMPING", unix.SO_TIMESTAMPING}, {"SO_RXQ_OVFL", unix.SO_RXQ_OVFL},
	{"SO_WIFI_STATUS", unix.SO_WIFI_STATUS}, {"SO_NOFCS", unix.SO_NOFCS},
	{"SO_SELECT_ERR_QUEUE", unix.SO_SELECT_ERR_QUEUE}, {"SO_BUSY_POLL", unix.SO_BUSY_POLL},
	{"SO_PREFER_BUSY_POLL", unix.SO_PREFER_BUSY_POLL}, {"SO_BUSY_POLL_BUDGET", unix.SO_BUSY_POLL_BUDGET},
	{"SO_INCOMING_CPU", unix.SO_INCOMING_CPU}, {"SO_ZEROCOPY", unix.SO_ZEROCOPY},
	{"SO_TXREHASH", unix.SO_TXREHASH}, {"SO_PASSRIGHTS", unix.SO_PASSRIGHTS},
}

// readUnixOptions records the options gocr restores into u, and refuses
// any other a user set: each is compared with a new socket's.
func readUnixOptions(h, typ int, u *gocrpb.UnixSocketFd) error {
	fresh, err := unix.Socketpair(unix.AF_UNIX, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("a socketpair to compare options with: %w", err)
	}
	defer unix.Close(fresh[0])
	defer unix.Close(fresh[1])
	for _, o := range unixUnrestored {
		v, err := unix.GetsockoptInt(h, unix.SOL_SOCKET, o.opt)
		if errors.Is(err, unix.ENOPROTOOPT) || errors.Is(err, unix.EOPNOTSUPP) {
			continue // not on this kernel, or not on unix sockets: nothing set it
		}
		if err != nil {
			return fmt.Errorf("getsockopt %s: %w", o.name, err)
		}
		if def, err := unix.GetsockoptInt(fresh[0], unix.SOL_SOCKET, o.opt); err != nil || v != def {
			return fmt.Errorf("socket option %s is %d, which gocr does not restore (a new socket has %d)", o.name, v, def)
		}
	}
	l, err := unix.GetsockoptLinger(h, unix.SOL_SOCKET, unix.SO_LINGER)
	if err != nil {
		return fmt.Errorf("getsockopt SO_LINGER: %w", err)
	}
	if l.Onoff != 0 || l.Linger != 0 {
		return fmt.Errorf("socket option SO_LINGER is on (%d s), which gocr does not restore", l.Linger)
	}
	if dev, err := unix.GetsockoptString(h, unix.SOL_SOCKET, unix.SO_BINDTODEVICE); err != nil {
		return fmt.Errorf("getsockopt SO_BINDTODEVICE: %w", err)
	} else if dev != "" {
		return fmt.Errorf("socket option SO_BINDTODEVICE is %q, which gocr does not restore", dev)
	}

	ints := []struct {
		name string
		opt  int
		dst  *int32
	}{
		{"SO_SNDBUF", unix.SO_SNDBUF, &u.Sndbuf},
		{"SO_RCVBUF", unix.SO_RCVBUF, &u.Rcvbuf},
		{"SO_PEEK_OFF", unix.SO_PEEK_OFF, &u.PeekOff},
	}
	for _, o := range ints {
		v, err := unix.GetsockoptInt(h, unix.SOL_SOCKET, o.opt)
		if err != nil {
			return fmt.Errorf("getsockopt %s: %w", o.name, err)
		}
		*o.dst = int32(v)
	}
	flags := []struct {
		name string
		opt  int
		dst  *bool
	}{
		{"SO_PASSCRED", unix.SO_PASSCRED, &u.Passcred},
		{"SO_PASSSEC", unix.SO_PASSSEC, &u.Passsec},
		{"SO_PASSPIDFD", unix.SO_PASSPIDFD, &u.Passpidfd},
		{"SO_REUSEADDR", unix.SO_REUSEADDR, &u.Reuseaddr},
	}
	for _, o := range flags {
		v, err := unix.GetsockoptInt(h, unix.SOL_SOCKET, o.opt)
		if errors.Is(err, unix.ENOPROTOOPT) {
			continue
		}
		if err != nil {
			return fmt.Errorf("getsockopt %s: %w", o.name, err)
		}
		*o.dst = v != 0
	}
	for _, o := range []struct {
		name string
		opt  int
		dst  *int64
	}{
		{"SO_RCVTIMEO", unix.SO_RCVTIMEO, &u.RcvtimeoNs},
		{"SO_SNDTIMEO", unix.SO_SNDTIMEO, &u.SndtimeoNs},
	} {
		tv, err := unix.GetsockoptTimeval(h, unix.SOL_SOCKET, o.opt)
		if err != nil {
			return fmt.Errorf("getsockopt %s: %w", o.name, err)
		}
		*o.dst = tv.Nano()
	}
	return nil
}

// setUnixOptions gives a new socket the dumped options, each checked by
// reading it back.
func setUnixOptions(h int, u *gocrpb.UnixSocketFd) error {
	for _, b := range []struct {
		name       string
		opt, force int
		want       int32
	}{
		{"SO_SNDBUF", unix.SO_SNDBUF, unix.SO_SNDBUFFORCE, u.GetSndbuf()},
		{"SO_RCVBUF", unix.SO_RCVBUF, unix.SO_RCVBUFFORCE, u.GetRcvbuf()},
	} {
		if err := setBufferSize(h, b.name, b.opt, b.force, int(b.want)); err != nil {
			return err
		}
	}
	for _, t := range []struct {
		name string
		opt  int
		ns   int64
	}{
		{"SO_RCVTIMEO", unix.SO_RCVTIMEO, u.GetRcvtimeoNs()},
		{"SO_SNDTIMEO", unix.SO_SNDTIMEO, u.GetSndtimeoNs()},
	} {
		tv := unix.NsecToTimeval(t.ns)
		if err := unix.SetsockoptTimeval(h, unix.SOL_SOCKET, t.opt, &tv); err != nil {
			return fmt.Errorf("setsockopt %s %d ns: %w", t.name, t.ns, err)
		}
		// The kernel keeps it in jiffies: what it gave at the dump
		// comes back the same.
		if got, err := unix.GetsockoptTimeval(h, unix.SOL_SOCKET, t.opt); err != nil || got.Nano() != t.ns {
			return fmt.Errorf("setsockopt %s %d ns: reads back as %v (%v)", t.name, t.ns, got, err)
		}
	}
	for _, o := range []struct {
		name string
		opt  int
		v    int
	}{
		{"SO_PASSCRED", unix.SO_PASSCRED, boolInt(u.GetPasscred())},
		{"SO_PASSSEC", unix.SO_PASSSEC, boolInt(u.GetPasssec())},
		{"SO_PASSPIDFD", unix.SO_PASSPIDFD, boolInt(u.GetPasspidfd())},
		{"SO_REUSEADDR", unix.SO_REUSEADDR, boolInt(u.GetReuseaddr())},
		{"SO_PEEK_OFF", unix.SO_PEEK_OFF, int(u.GetPeekOff())},
	} {
		if err := setIntOption(h, o.name, o.opt, o.v); err != nil {
			return err
		}
	}
	return nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// setIntOption sets an int option unless it has the value already.
func setIntOption(h int, name string, opt, v int) error {
	cur, err := unix.GetsockoptInt(h, unix.SOL_SOCKET, opt)
	if err == nil && cur == v {
		return nil
	}
	if err := unix.SetsockoptInt(h, unix.SOL_SOCKET, opt, v); err != nil {
		return fmt.Errorf("setsockopt %s %d: %w", name, v, err)
	}
	if got, err := unix.GetsockoptInt(h, unix.SOL_SOCKET, opt); err != nil || got != v {
		return fmt.Errorf("setsockopt %s %d: reads back as %d (%v)", name, v, got, err)
	}
	return nil
}

// setBufferSize sets SO_SNDBUF or SO_RCVBUF so that getsockopt gives want:
// the kernel keeps twice what it is given (man 7 socket), and at most
// twice net.core.wmem_max or rmem_max, unless set with the FORCE option
// (CAP_NET_ADMIN).
func setBufferSize(h int, name string, opt, force, want int) error {
	cur, err := unix.GetsockoptInt(h, unix.SOL_SOCKET, opt)
	if err == nil && cur == want {
		return nil
	}
	var got int
	for _, o := range []int{opt, force} {
		if err := unix.SetsockoptInt(h, unix.SOL_SOCKET, o, want/2); err != nil {
			continue
		}
		if got, err = unix.GetsockoptInt(h, unix.SOL_SOCKET, opt); err == nil && got == want {
			return nil
		}
	}
	return fmt.Errorf("setsockopt %s: %d bytes, want %d", name, got, want)
}
