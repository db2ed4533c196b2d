//go:build linux

package files

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/gocrpb"
	"github.com/gocr/gocr/internal/testhook"
)

// TCP connections are read and made again in repair mode (TCP_REPAIR,
// man 7 tcp; include/uapi/linux/tcp.h; CRIU's "TCP connection" page): a
// socket in repair mode sends nothing, gives its sequence numbers
// (TCP_QUEUE_SEQ of the queue TCP_REPAIR_QUEUE selects), lets its send
// queue be peeked like its receive queue, and its window (TCP_REPAIR_WINDOW);
// a new socket in repair mode takes them back, connect(2) making it
// ESTABLISHED without a handshake, TCP_REPAIR_OPTIONS its MSS, window
// scale, SACK and timestamps, TCP_TIMESTAMP its clock, and what it sends
// goes into the queue selected (the send queue's counts as sent).
//
// gocr reads them through its own handle of each socket (pidfd_getfd(2))
// while the processes are frozen: every connection of the dump is put in
// repair mode before any is read, so both ends of a connection inside the
// dump are read at one point of their exchange; then repair mode is
// turned off again. A watchdog process holds the same sockets meanwhile,
// should gocr die (tcpwatch.go), and the processes' threads wait for it
// (dump/tcphold.go). Once the processes are killed, gocr's handles, which
// keep the sockets alive, are put back in repair mode and closed: a socket
// closed in repair mode is disconnected before anything else is looked at
// and sends neither FIN nor RST, going straight to CLOSE with no TIME_WAIT
// (net/ipv4/tcp.c __tcp_close, tcp_disconnect: both test tp->repair
// first), so its four-tuple is free for the restore and its peer, if
// outside the dump, hears nothing. (Repair mode need not be kept on from
// the capture to the kill for that: the processes are frozen meanwhile,
// and gocr's handles keep the sockets from being closed by the kill.)

// TCP_REPAIR_QUEUE's queues (include/uapi/linux/tcp.h).
const (
	tcpNoQueue   = 0
	tcpRecvQueue = 1
	tcpSendQueue = 2
)

// tcpRepairWindowLen is sizeof(struct tcp_repair_window).
const tcpRepairWindowLen = 20

// CaptureOptions say which connections a dump may take.
type CaptureOptions struct {
	// External: connections to peers outside the dump are dumped too,
	// their packets blocked with nftables from now until the restore
	// ends (--tcp-established).
	External bool
}

// Connections are the TCP connections of a dump, held by gocr until the
// dump ends, and watched meanwhile by a process of gocr's own, should gocr
// die (tcpwatch.go).
type Connections struct {
	held   []*heldConn
	block  *nftBlock
	watch  *watchdog
	sealed bool
}

type heldConn struct {
	ref    Ref
	h      int
	repair bool
	reuse  bool // SO_REUSEADDR is on: repair mode clears it
}

// CaptureConnections reads the state of every TCP connection in the
// dumped processes' fd tables (tables, once linked) into their images.
// The caller must call Complete once the images are complete and before
// it ends the processes, and Seal once they are killed; or Close them if
// the dump fails or the processes run on. A connection to a peer outside
// the dump is refused, naming the fd and the peer, unless opts.External.
func CaptureConnections(tables []*gocrpb.Files, opts CaptureOptions) (_ *Connections, err error) {
	// c, not the result: a failure returns nil, and c's connections
	// must still leave repair mode before the processes run on.
	c := &Connections{}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	ends := map[[2]netip.AddrPort]bool{}
	for _, t := range tables {
		for _, fd := range t.Fds {
			if u := fd.GetInetSocket(); u.GetTcp() != nil && fd.SharedWith < 0 {
				c.held = append(c.held, &heldConn{ref: Ref{Pid: int(t.Pid), Fd: fd}, h: -1, reuse: optionOn(u, unix.SOL_SOCKET, unix.SO_REUSEADDR)})
				ends[connKey(u)] = true
			}
		}
	}
	var external []*gocrpb.InetSocketFd
	for _, hc := range c.held {
		u := hc.ref.Fd.GetInetSocket()
		k := connKey(u)
		if ends[[2]netip.AddrPort{k[1], k[0]}] {
			continue
		}
		peer := inetAddrPort(u.GetPeerAddr(), u.GetPeerPort())
		where := fmt.Sprintf("pid %d fd %d (%s)", hc.ref.Pid, hc.ref.Fd.Fd, hc.ref.Fd.Description)
		if !opts.External {
			return nil, fmt.Errorf("%s: a TCP connection to %s, outside the dumped processes (dump it with --tcp-established)", where, peer)
		}
		if t := u.GetTcp(); t.GetFinSent() || t.GetFinReceived() {
			return nil, fmt.Errorf("%s: a half-closed TCP connection to %s, outside the dumped processes (not restored)", where, peer)
		}
		external = append(external, u)
	}
	if len(c.held) == 0 {
		return c, nil
	}
	var block *nftBlock
	if len(external) > 0 {
		if block, err = newNftBlock(external); err != nil {
			return nil, err
		}
	}
	for _, hc := range c.held {
		if hc.h, err = takeFd(hc.ref.Pid, int(hc.ref.Fd.Fd)); err != nil {
			return nil, fmt.Errorf("pid %d fd %d: take a handle of it: %w", hc.ref.Pid, hc.ref.Fd.Fd, err)
		}
	}
	// From here until the dump ends, a gocr that dies leaves the
	// connections to the watchdog, which holds them too.
	if c.watch, err = startWatchdog(c.held, block); err != nil {
		return nil, err
	}
	if block != nil {
		if err := block.add(); err != nil {
			return nil, err
		}
		c.block = block
	}
	// Every connection stops before any is read.
	for _, hc := range c.held {
		if err := setRepair(hc.h, unix.TCP_REPAIR_ON); err != nil {
			return nil, fmt.Errorf("pid %d fd %d: %w", hc.ref.Pid, hc.ref.Fd.Fd, err)
		}
		hc.repair = true
	}
	testhook.Pause(testhook.PauseAfterTCPRepairOn)
	if _, ok := testhook.Int(testhook.FailInTCPCapture); ok {
		return nil, fmt.Errorf("test hook %s: failing with every connection in repair mode", testhook.FailInTCPCapture)
	}
	for _, hc := range c.held {
		if err := readConnection(hc.h, hc.ref.Fd.GetInetSocket()); err != nil {
			return nil, fmt.Errorf("pid %d fd %d (%s): %w", hc.ref.Pid, hc.ref.Fd.Fd, hc.ref.Fd.Description, err)
		}
		if c.block != nil && !ends[reverse(connKey(hc.ref.Fd.GetInetSocket()))] {
			hc.ref.Fd.GetInetSocket().NftTable = c.block.kept
		}
	}
	if err := c.repairAll(unix.TCP_REPAIR_OFF); err != nil {
		return nil, err
	}
	testhook.Pause(testhook.PauseAfterTCPCapture)
	return c, nil
}

// optionOn tells whether the dumped socket u had int option name at level
// on (readInetOptions records those that differ from a new socket's).
func optionOn(u *gocrpb.InetSocketFd, level, name int) bool {
	for _, o := range u.GetOptions() {
		if int(o.GetLevel()) == level && int(o.GetName()) == name {
			return o.GetValue() != 0
		}
	}
	return false
}

// connKey is a connection by its two ends, IPv4-mapped addresses as IPv4
// (a dual-stack socket's peer is the IPv4 socket's local address).
func connKey(u *gocrpb.InetSocketFd) [2]netip.AddrPort {
	l := inetAddrPort(u.GetLocalAddr(), u.GetLocalPort())
	p := inetAddrPort(u.GetPeerAddr(), u.GetPeerPort())
	return [2]netip.AddrPort{netip.AddrPortFrom(l.Addr().Unmap(), l.Port()), netip.AddrPortFrom(p.Addr().Unmap(), p.Port())}
}

func reverse(k [2]netip.AddrPort) [2]netip.AddrPort { return [2]netip.AddrPort{k[1], k[0]} }

func setRepair(h, v int) error {
	if err := unix.SetsockoptInt(h, unix.SOL_TCP, unix.TCP_REPAIR, v); err != nil {
		return fmt.Errorf("setsockopt TCP_REPAIR %d: %w", v, err)
	}
	return nil
}

// repairAll turns repair mode on or off on every held connection.
func (c *Connections) repairAll(v int) error {
	var errs []error
	for _, hc := range c.held {
		if hc.h < 0 || hc.repair == (v == unix.TCP_REPAIR_ON) {
			continue
		}
		var err error
		if v == unix.TCP_REPAIR_ON {
			err = setRepair(hc.h, v)
		} else {
			err = leaveRepair(hc.h, hc.reuse)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("pid %d fd %d: %w", hc.ref.Pid, hc.ref.Fd.Fd, err))
			continue
		}
		hc.repair = v == unix.TCP_REPAIR_ON
	}
	return errors.Join(errs...)
}

// Complete says the images are complete and the processes are about to
// be ended: should gocr die from now on, the watchdog ends them and seals
// the connections, as Seal does.
func (c *Connections) Complete() error {
	if c == nil {
		return nil
	}
	return c.watch.tell(phaseComplete)
}

// Seal ends the dump of connections whose processes are gone: each is put
// in repair mode and closed, so that it goes without a word, and the
// connections to peers outside are kept blocked until the restore.
func (c *Connections) Seal() error {
	if c == nil {
		return nil
	}
	c.sealed = true
	err := c.repairAll(unix.TCP_REPAIR_ON)
	if c.block != nil {
		err = errors.Join(err, c.block.keep())
	}
	err = errors.Join(err, c.watch.finish())
	c.watch = nil
	c.closeHandles()
	return err
}

// Close ends the dump of connections whose processes run on: their repair
// mode is off, and their packets flow again.
func (c *Connections) Close() error {
	if c == nil || c.sealed {
		return nil
	}
	err := c.repairAll(unix.TCP_REPAIR_OFF)
	if c.block != nil {
		err = errors.Join(err, c.block.remove())
		c.block = nil
	}
	// Only now: a gocr dying before this leaves the watchdog to do it.
	err = errors.Join(err, c.watch.finish())
	c.watch = nil
	c.closeHandles()
	return err
}

func (c *Connections) closeHandles() {
	for _, hc := range c.held {
		if hc.h >= 0 {
			unix.Close(hc.h)
			hc.h = -1
		}
	}
}

// readConnection reads connection h (in repair mode) into u.Tcp.
func readConnection(h int, u *gocrpb.InetSocketFd) error {
	t := u.GetTcp()
	if off, err := unix.GetsockoptInt(h, unix.SOL_SOCKET, unix.SO_PEEK_OFF); err == nil && off >= 0 {
		return fmt.Errorf("SO_PEEK_OFF is %d (not restored on a TCP socket)", off)
	}
	var b [1]byte
	if _, _, err := unix.Recvfrom(h, b[:], unix.MSG_OOB|unix.MSG_PEEK|unix.MSG_DONTWAIT); err == nil {
		return errors.New("urgent data (MSG_OOB) waits to be read (not restored)")
	}
	fin := func(b bool) uint32 {
		if b {
			return 1
		}
		return 0
	}
	// The receive queue: TCP_QUEUE_SEQ gives rcv_nxt, which counts a
	// FIN received; SIOCINQ the bytes not read, without the FIN
	// (net/ipv4/tcp.c tcp_inq).
	rcvNxt, err := queueSeq(h, tcpRecvQueue)
	if err != nil {
		return err
	}
	inq, err := unix.IoctlGetInt(h, unix.SIOCINQ)
	if err != nil {
		return fmt.Errorf("SIOCINQ: %w", err)
	}
	if t.RecvQueue, err = peekQueue(h, inq); err != nil {
		return fmt.Errorf("receive queue: %w", err)
	}
	t.RecvSeq = rcvNxt - fin(t.FinReceived) - uint32(len(t.RecvQueue))
	// The send queue: TCP_QUEUE_SEQ gives write_seq, which counts a FIN
	// sent; SIOCOUTQ what is not acknowledged and SIOCOUTQNSD what is not
	// sent yet, both counting a FIN not acknowledged or not sent
	// (tcp_ioctl). The peek gives the data only.
	writeSeq, err := queueSeq(h, tcpSendQueue)
	if err != nil {
		return err
	}
	outq, err := unix.IoctlGetInt(h, unix.SIOCOUTQ)
	if err != nil {
		return fmt.Errorf("SIOCOUTQ: %w", err)
	}
	notSent, err := unix.IoctlGetInt(h, unix.SIOCOUTQNSD)
	if err != nil {
		return fmt.Errorf("SIOCOUTQNSD: %w", err)
	}
	if t.SendQueue, err = peekQueue(h, outq); err != nil {
		return fmt.Errorf("send queue: %w", err)
	}
	if t.FinSent && notSent > 0 {
		notSent-- // the FIN, last of all, is not sent either
	}
	if notSent > len(t.SendQueue) {
		return fmt.Errorf("%d bytes not sent of %d in the send queue", notSent, len(t.SendQueue))
	}
	t.Unsent = uint32(notSent)
	t.SendSeq = writeSeq - fin(t.FinSent) - uint32(len(t.SendQueue))
	if err := setRepairQueue(h, tcpNoQueue); err != nil {
		return err
	}
	// In repair mode TCP_MAXSEG reads mss_clamp (net/ipv4/tcp.c
	// do_tcp_getsockopt), the MSS TCP_REPAIR_OPTIONS sets.
	mss, err := unix.GetsockoptInt(h, unix.SOL_TCP, unix.TCP_MAXSEG)
	if err != nil {
		return fmt.Errorf("getsockopt TCP_MAXSEG: %w", err)
	}
	t.Mss = uint32(mss)
	// struct tcp_info: tcpi_options at byte 5, then the scales'
	// 4-bit fields, tcpi_snd_wscale first (include/uapi/linux/tcp.h).
	info := make([]byte, 8)
	if n, err := getsockoptBytes(h, unix.SOL_TCP, unix.TCP_INFO, info); err != nil || n < 7 {
		return fmt.Errorf("getsockopt TCP_INFO: %d bytes (%v)", n, err)
	}
	opts := info[5]
	t.Timestamps = opts&tcpiOptTimestamps != 0
	t.Sack = opts&tcpiOptSack != 0
	t.Wscale = opts&tcpiOptWscale != 0
	t.SndWscale, t.RcvWscale = uint32(info[6]&0xf), uint32(info[6]>>4)
	if opts&tcpiOptEcn != 0 {
		return errors.New("ECN was negotiated on it (not restored)")
	}
	if t.Timestamps {
		ts, err := unix.GetsockoptInt(h, unix.SOL_TCP, unix.TCP_TIMESTAMP)
		if err != nil {
			return fmt.Errorf("getsockopt TCP_TIMESTAMP: %w", err)
		}
		t.Timestamp = uint32(ts)
	}
	w := make([]byte, tcpRepairWindowLen)
	if n, err := getsockoptBytes(h, unix.SOL_TCP, unix.TCP_REPAIR_WINDOW, w); err != nil || n != tcpRepairWindowLen {
		return fmt.Errorf("getsockopt TCP_REPAIR_WINDOW: %d bytes (%v)", n, err)
	}
	ne := binary.NativeEndian
	t.SndWl1, t.SndWnd, t.MaxWindow = ne.Uint32(w[0:]), ne.Uint32(w[4:]), ne.Uint32(w[8:])
	t.RcvWnd, t.RcvWup = ne.Uint32(w[12:]), ne.Uint32(w[16:])
	if t.FinReceived {
		// The connection is made again as before the FIN came, and
		// TCP_REPAIR_WINDOW refuses a window updated past rcv_nxt
		// (net/ipv4/tcp.c tcp_repair_set_window).
		end := rcvNxt - 1
		if int32(t.RcvWup-end) > 0 {
			t.RcvWup = end
		}
		if int32(t.SndWl1-end) > 0 {
			t.SndWl1 = end
		}
	}
	return nil
}

// tcp_info's option bits (include/uapi/linux/tcp.h TCPI_OPT_*).
const (
	tcpiOptTimestamps = 1
	tcpiOptSack       = 2
	tcpiOptWscale     = 4
	tcpiOptEcn        = 8
)

func setRepairQueue(h, q int) error {
	if err := unix.SetsockoptInt(h, unix.SOL_TCP, unix.TCP_REPAIR_QUEUE, q); err != nil {
		return fmt.Errorf("setsockopt TCP_REPAIR_QUEUE %d: %w", q, err)
	}
	return nil
}

// queueSeq selects queue q and reads its TCP_QUEUE_SEQ.
func queueSeq(h, q int) (uint32, error) {
	if err := setRepairQueue(h, q); err != nil {
		return 0, err
	}
	v, err := unix.GetsockoptInt(h, unix.SOL_TCP, unix.TCP_QUEUE_SEQ)
	if err != nil {
		return 0, fmt.Errorf("getsockopt TCP_QUEUE_SEQ of queue %d: %w", q, err)
	}
	return uint32(v), nil
}

// peekQueue reads the n bytes of the queue selected, without consuming
// them: in repair mode a MSG_PEEK reads the selected queue (net/ipv4/tcp.c
// tcp_recvmsg_locked, tcp_peek_sndq).
func peekQueue(h, n int) ([]byte, error) {
	if n == 0 {
		return nil, nil
	}
	buf := make([]byte, n+1)
	for {
		got, _, err := unix.Recvfrom(h, buf, unix.MSG_PEEK|unix.MSG_DONTWAIT)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("peek: %w", err)
		}
		if got != n {
			return nil, fmt.Errorf("peeked %d bytes, the kernel counts %d", got, n)
		}
		return buf[:n], nil
	}
}

// restoredConn is a connection made again in repair mode, waiting for
// ReleaseConnections.
type restoredConn struct {
	h int
	u *gocrpb.InetSocketFd
}

// openTCPConnection gives connection u its socket h, made again once every
// other socket is (ReleaseConnections): a listening socket must be bound
// to its port before the connections it accepted are, unless it allows
// others there (SO_REUSEADDR), and the fds come in any order.
func openTCPConnection(s *Sources, h int, u *gocrpb.InetSocketFd) error {
	rel := inetReleaser(s)
	rel.conns = append(rel.conns, &restoredConn{h: h, u: u})
	if u.GetNftTable() != "" {
		rel.tables[u.GetNftTable()] = true
	}
	return nil
}

// repairConnection makes connection u again on new socket h, in repair
// mode, in the order the kernel takes it: sequence numbers before
// connect(2), which then needs no handshake (net/ipv4/tcp_output.c
// tcp_connect in repair mode); options, queues and window after.
func repairConnection(h int, u *gocrpb.InetSocketFd) error {
	t := u.GetTcp()
	if err := setRepair(h, unix.TCP_REPAIR_ON); err != nil {
		return err
	}
	if err := setInetOptions(h, u, stepBeforeBind, true); err != nil {
		return err
	}
	for _, q := range []struct {
		queue int
		seq   uint32
	}{{tcpRecvQueue, t.GetRecvSeq()}, {tcpSendQueue, t.GetSendSeq()}} {
		if err := setRepairQueue(h, q.queue); err != nil {
			return err
		}
		if err := unix.SetsockoptInt(h, unix.SOL_TCP, unix.TCP_QUEUE_SEQ, int(q.seq)); err != nil {
			return fmt.Errorf("setsockopt TCP_QUEUE_SEQ of queue %d: %w", q.queue, err)
		}
	}
	local := inetAddrPort(u.GetLocalAddr(), u.GetLocalPort())
	peer := inetAddrPort(u.GetPeerAddr(), u.GetPeerPort())
	// In repair mode a socket may bind where another is bound or
	// listens (sk_reuse SK_FORCE_REUSE, net/ipv4/tcp.c).
	if err := unix.Bind(h, inetSockaddr(u.GetLocalAddr(), u.GetLocalPort())); err != nil {
		return fmt.Errorf("bind to %s: %w", local, err)
	}
	if err := unix.Connect(h, inetSockaddr(u.GetPeerAddr(), u.GetPeerPort())); err != nil {
		return fmt.Errorf("connect to %s in repair mode: %w", peer, err)
	}
	opts := []unix.TCPRepairOpt{{Code: unix.TCPOPT_MAXSEG, Val: t.GetMss()}}
	if t.GetWscale() {
		// TCPOPT_WINDOW: the send scale, and the receive scale in the
		// upper 16 bits (net/ipv4/tcp.c tcp_repair_options_est).
		opts = append(opts, unix.TCPRepairOpt{Code: unix.TCPOPT_WINDOW, Val: t.GetSndWscale() | t.GetRcvWscale()<<16})
	}
	if t.GetSack() {
		opts = append(opts, unix.TCPRepairOpt{Code: unix.TCPOPT_SACK_PERMITTED})
	}
	if t.GetTimestamps() {
		opts = append(opts, unix.TCPRepairOpt{Code: unix.TCPOPT_TIMESTAMP})
	}
	if err := unix.SetsockoptTCPRepairOpt(h, unix.SOL_TCP, unix.TCP_REPAIR_OPTIONS, opts); err != nil {
		return fmt.Errorf("setsockopt TCP_REPAIR_OPTIONS: %w", err)
	}
	if t.GetTimestamps() {
		// The socket's clock goes on from the dumped value
		// (tp->tsoffset), so the peer sees time go forward.
		if err := unix.SetsockoptInt(h, unix.SOL_TCP, unix.TCP_TIMESTAMP, int(t.GetTimestamp())); err != nil {
			return fmt.Errorf("setsockopt TCP_TIMESTAMP: %w", err)
		}
	}
	if err := fillTCPQueue(h, tcpRecvQueue, t.GetRecvQueue()); err != nil {
		return fmt.Errorf("receive queue: %w", err)
	}
	sent := t.GetSendQueue()[:len(t.GetSendQueue())-int(t.GetUnsent())]
	if err := fillTCPQueue(h, tcpSendQueue, sent); err != nil {
		return fmt.Errorf("send queue: %w", err)
	}
	if err := setRepairQueue(h, tcpNoQueue); err != nil {
		return err
	}
	w := make([]byte, tcpRepairWindowLen)
	ne := binary.NativeEndian
	ne.PutUint32(w[0:], t.GetSndWl1())
	ne.PutUint32(w[4:], t.GetSndWnd())
	ne.PutUint32(w[8:], t.GetMaxWindow())
	ne.PutUint32(w[12:], t.GetRcvWnd())
	ne.PutUint32(w[16:], t.GetRcvWup())
	if err := unix.SetsockoptString(h, unix.SOL_TCP, unix.TCP_REPAIR_WINDOW, string(w)); err != nil {
		return fmt.Errorf("setsockopt TCP_REPAIR_WINDOW: %w", err)
	}
	if err := setInetOptions(h, u, stepAfterBind, true); err != nil {
		return err
	}
	return nil
}

// fillTCPQueue writes data into queue q of h in repair mode: into the
// receive queue as if received (net/ipv4/tcp_input.c tcp_send_rcvq), into
// the send queue as if sent, not acknowledged yet (tcp_write_xmit skips
// the transmission in repair mode). A buffer too small for it grows.
func fillTCPQueue(h, q int, data []byte) error {
	if len(data) == 0 {
		return nil
	}
	if err := setRepairQueue(h, q); err != nil {
		return err
	}
	opt, force := unix.SO_SNDBUF, unix.SO_SNDBUFFORCE
	if q == tcpRecvQueue {
		opt, force = unix.SO_RCVBUF, unix.SO_RCVBUFFORCE
	}
	return sendGrowing(h, data, opt, force)
}

// sendGrowing sends all of data on h without waiting, growing buffer opt
// (with force) when it is full: the restored queues hold what the dumped
// ones held, but not packed in the same buffers, so their memory can
// differ. The buffer is then set back to its size.
func sendGrowing(h int, data []byte, opt, force int) error {
	size, err := unix.GetsockoptInt(h, unix.SOL_SOCKET, opt)
	if err != nil {
		return err
	}
	grown := false
	for off := 0; off < len(data); {
		n, err := unix.SendmsgN(h, data[off:], nil, nil, unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EAGAIN), errors.Is(err, unix.ENOMEM):
			if gerr := growBuffer(h, opt, force, len(data)); gerr != nil {
				return fmt.Errorf("queue %d bytes: %w (%w)", len(data)-off, err, gerr)
			}
			grown = true
			continue
		case err != nil:
			return fmt.Errorf("queue %d bytes: %w", len(data)-off, err)
		}
		off += n
	}
	if grown {
		return setBufferSize(h, "buffer", opt, force, size)
	}
	return nil
}

// growBuffer doubles a socket buffer, to at least twice need.
func growBuffer(h, opt, force, need int) error {
	cur, err := unix.GetsockoptInt(h, unix.SOL_SOCKET, opt)
	if err != nil {
		return err
	}
	if cur >= unixMaxSndbuf {
		return fmt.Errorf("buffer at %d bytes", cur)
	}
	// The kernel doubles what it is given (man 7 socket).
	want := max(cur, 2*need)
	if err := unix.SetsockoptInt(h, unix.SOL_SOCKET, force, want); err != nil {
		return err
	}
	if now, err := unix.GetsockoptInt(h, unix.SOL_SOCKET, opt); err != nil || now <= cur {
		return fmt.Errorf("buffer stays at %d bytes", cur)
	}
	return nil
}

// ReleaseConnections makes every TCP connection again in repair mode,
// then takes them out of it, all of them one after the other before
// anything else, so both ends of a connection inside the dump go on
// together; then sends again what
// was not sent yet and the FINs that were, and sets what repair mode
// overrides. gocr's handles of every restored TCP and UDP socket
// are closed then: the processes hold theirs. Called once the processes
// have their fds, before they run. The packets of connections to peers
// outside the dump stay blocked until UnblockConnections, once the
// processes run: a restore that ends before must not let those peers
// see the connection close.
func (s *Sources) ReleaseConnections() error {
	r, ok := s.shared[inetReleaseKey{}].(*inetRelease)
	if !ok {
		return nil
	}
	if len(r.tables) > 0 {
		// Before anything the peers could see: should gocr die once the
		// processes run, the watchdog removes the tables.
		var kept []string
		for table := range r.tables {
			kept = append(kept, table)
		}
		if s.Lifeline == nil {
			return errors.New("TCP connections to peers outside the dump: no lifeline to watch the restore by")
		}
		w, err := startRestoreWatchdog(kept, s.Lifeline)
		if err != nil {
			return err
		}
		r.watch = w
		// A restore that fails ends the watchdog, the tables kept.
		s.OnUndo(func() {
			if err := w.finish(); err != nil {
				warnf("%v", err)
			}
		})
	}
	for _, c := range r.conns {
		if err := repairConnection(c.h, c.u); err != nil {
			return fmt.Errorf("%s: %w", connName(c.u), err)
		}
	}
	testhook.Pause(testhook.PauseInTCPRelease)
	var errs []error
	for _, c := range r.conns {
		if err := setRepair(c.h, unix.TCP_REPAIR_OFF); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", connName(c.u), err))
		}
	}
	for _, c := range r.conns {
		if err := finishConnection(c); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", connName(c.u), err))
		}
	}
	for _, n := range r.handles {
		s.File(n).Close()
	}
	r.conns, r.handles = nil, nil
	return errors.Join(errs...)
}

// UnblockConnections lets the packets of connections to peers outside
// the dump flow again: their nftables tables, kept since the dump, are
// removed. Called once the restore has committed, and only then; should
// gocr die before it has, the watchdog removes them.
func (s *Sources) UnblockConnections() error {
	r, ok := s.shared[inetReleaseKey{}].(*inetRelease)
	if !ok || r.watch == nil {
		return nil
	}
	var errs []error
	testhook.Pause(testhook.PauseAfterRelease)
	for table := range r.tables {
		errs = append(errs, removeNftTable(table))
	}
	errs = append(errs, r.watch.finish())
	r.tables = map[string]bool{}
	return errors.Join(errs...)
}

func connName(u *gocrpb.InetSocketFd) string {
	return fmt.Sprintf("TCP connection %s -> %s", inetAddrPort(u.GetLocalAddr(), u.GetLocalPort()), inetAddrPort(u.GetPeerAddr(), u.GetPeerPort()))
}

// finishConnection does for a connection out of repair mode what repair
// mode could not: the options it overrides, the data not sent yet, the FIN
// the connection had sent, and the user's shutdown of reading.
func finishConnection(c *restoredConn) error {
	t := c.u.GetTcp()
	if err := setInetOptions(c.h, c.u, stepAfterRepair, true); err != nil {
		return err
	}
	unsent := t.GetSendQueue()[len(t.GetSendQueue())-int(t.GetUnsent()):]
	if err := sendGrowing(c.h, unsent, unix.SO_SNDBUF, unix.SO_SNDBUFFORCE); err != nil {
		return fmt.Errorf("send what was not sent yet: %w", err)
	}
	if t.GetFinSent() {
		if err := unix.Shutdown(c.h, unix.SHUT_WR); err != nil {
			return fmt.Errorf("send its FIN again (shutdown SHUT_WR): %w", err)
		}
	}
	if c.u.GetShutdown()&1 != 0 {
		if err := unix.Shutdown(c.h, unix.SHUT_RD); err != nil {
			return fmt.Errorf("shutdown SHUT_RD: %w", err)
		}
	}
	return nil
}

// warnf reports what goes wrong once the processes are the job again.
func warnf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "gocr: warning: "+format+"\n", args...)
}
