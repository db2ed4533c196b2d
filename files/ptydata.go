//go:build linux

package files

import (
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/gocrpb"
)

// A pair's unread data sits in each end's line discipline buffer, after
// the processing of the end it came through (drivers/tty/n_tty.c), and no
// interface shows it without reading it. So gocr reads it, and writes it
// straight back into the dumped pair, and at restore into the new one,
// with the slave's processing turned off meanwhile so the bytes land as
// they were: output processing (OPOST) for what goes to the master, input
// processing, echo and signals for what goes to the slave. The processes
// are frozen throughout and see nothing of it. (TIOCSTI would do no
// better: it feeds the same input processing, and needs CAP_SYS_ADMIN
// once dev.tty.legacy_tiocsti is 0, man 2 ioctl_tty.)
//
// What cannot come back exactly is refused: complete lines in canonical
// mode (their ends are marks beside the buffer, n_tty read_flags, that
// neither TIOCINQ nor a read shows), data waiting for a slave no process
// holds, a full buffer (more may wait in the driver's flip buffer), and
// bytes IXON could take as flow control when written again.
//
// A line typed but not ended in canonical mode (bytes past canon_head)
// shows neither to TIOCINQ, which counts complete lines only (n_tty.c
// n_tty_ioctl, inq_canon), nor to a read, which waits for the line's end.
// So gocr turns ICANON off for a moment: n_tty_set_termios then makes the
// whole buffer readable (canon_head = read_tail), TIOCINQ counts it
// (read_cnt) and a read takes it. Turned on again with the buffer empty,
// the line discipline is as after any line was read (canon_head,
// line_start at read_tail, no line marks), and the bytes are typed again
// in canonical mode with echo off, so the other end does not see them
// twice, each after a ^V so that none acts as a line end, erase, flow
// control or signal: they land past canon_head as an unfinished line, and
// the termios are set back exactly. The toggle also clears two states nothing shows: a
// pending ^V (lnext) and the ECHOPRT erase display (erasing).

// nTTYBufSize is N_TTY_BUF_SIZE (drivers/tty/n_tty.c): an end's input
// buffer; with that much in it minus one, the rest stays in the driver.
const nTTYBufSize = 4096

// readPtyData records, in st, what the pair holds unread: m is a handle of
// its master, s of a slave (-1 if no process holds one).
func readPtyData(m, s int, st *gocrpb.PtyState) (err error) {
	// A poll flushes the driver's pending input into the line discipline
	// first (n_tty_poll, tty_buffer_flush_work), so TIOCINQ then counts
	// everything written so far. The slave's first: what it takes in
	// may echo to the master.
	toSlave := 0
	if s >= 0 {
		if _, err := pollNow(s, unix.POLLIN); err != nil {
			return err
		}
		if toSlave, err = unix.IoctlGetInt(s, unix.TIOCINQ); err != nil {
			return fmt.Errorf("TIOCINQ on the slave: %w", err)
		}
	}
	if _, err := pollNow(m, unix.POLLIN); err != nil {
		return err
	}
	toMaster, err := unix.IoctlGetInt(m, unix.TIOCINQ)
	if err != nil {
		return fmt.Errorf("TIOCINQ on the master: %w", err)
	}
	if toSlave > 0 && st.Lflag&unix.ICANON != 0 {
		return fmt.Errorf("%d bytes of complete lines wait to be read from the slave in canonical mode, whose line ends are not restored", toSlave)
	}
	switch {
	case s < 0 && toMaster == 0:
		return nil
	case s < 0:
		return fmt.Errorf("%d bytes written by a slave no dumped process holds wait to be read from the master (not restored)", toMaster)
	case st.Packet && st.Lflag&unix.EXTPROC != 0 && toMaster+toSlave > 0:
		// With EXTPROC, every termios change in packet mode queues a
		// TIOCPKT_IOCTL status byte (drivers/tty/pty.c pty_set_termios).
		return errors.New("unread data in a pty in packet mode with EXTPROC, which writing it back would announce to the master (not restored)")
	case toSlave > 0 && st.Iflag&unix.IXON != 0 && !isCanonical(st):
		// Read, these bytes would go back through the slave's input
		// processing with IXON on, which takes the START and STOP
		// characters (with IXANY, any byte) as flow control, not data
		// (drivers/tty/n_tty.c n_tty_receive_char_flow_ctrl); and IXON
		// turned off meanwhile would restart output a STOP had stopped
		// (n_tty_set_termios) and, in packet mode, queue a status byte
		// for the master (drivers/tty/pty.c pty_set_termios). So they
		// are refused before anything is read.
		return fmt.Errorf("%d bytes wait to be read by the slave with IXON on outside canonical mode, which writing them again could take as flow control (not restored)", toSlave)
	}
	canon := isCanonical(st)
	if toMaster == 0 && toSlave == 0 && !canon {
		return nil
	}
	final, err := termiosOf(st)
	if err != nil {
		return err
	}
	peer, err := openPeerLocked(m, st.Locked)
	if err != nil {
		return err
	}
	defer unix.Close(peer)
	if canon {
		// Out of canonical mode, the unfinished line counts (see
		// above); back in it once the line is read, or at once if
		// there is none.
		raw := *final
		raw.Lflag &^= unix.ICANON
		if err := unix.IoctlSetTermios(s, unix.TCSETS2, &raw); err != nil {
			return fmt.Errorf("TCSETS2 out of canonical mode: %w", err)
		}
		toSlave, err = unix.IoctlGetInt(s, unix.TIOCINQ)
		if toSlave == 0 || err != nil {
			if serr := unix.IoctlSetTermios(s, unix.TCSETS2, final); serr != nil {
				return fmt.Errorf("TCSETS2 back to canonical mode: %w", serr)
			}
		}
		if err != nil {
			return fmt.Errorf("TIOCINQ on the slave out of canonical mode: %w", err)
		}
		if toMaster == 0 && toSlave == 0 {
			return nil
		}
	}
	full := toMaster >= nTTYBufSize-1 || toSlave >= nTTYBufSize-1
	if full && !(canon && toSlave > 0) {
		return errFullBuffer
	}
	var toM, toS []byte
	if toM, err = readTty(m, toMaster, st.Packet); err == nil {
		toS, err = readTty(peer, toSlave, false)
	}
	if canon && toSlave > 0 {
		// The buffer read empty (or as empty as it could be), the
		// line discipline goes back to canonical mode.
		if serr := unix.IoctlSetTermios(s, unix.TCSETS2, final); serr != nil {
			return errors.Join(err, fmt.Errorf("TCSETS2 back to canonical mode: %w", serr))
		}
	}
	if err == nil && full {
		err = errFullBuffer
	}
	if err != nil {
		// Whatever was read goes back before anything else can happen.
		if werr := injectPtyData(m, peer, st, toS, toM); werr != nil {
			return fmt.Errorf("%w; and %d bytes read from it could not be written back: %v", err, len(toS)+len(toM), werr)
		}
		return err
	}
	if err := injectPtyData(m, peer, st, toS, toM); err != nil {
		return fmt.Errorf("%d bytes read from it could not be written back: %w", len(toS)+len(toM), err)
	}
	st.ToMaster, st.ToSlave = toM, toS
	return checkFlowChars(st)
}

var errFullBuffer = errors.New("an end's input buffer is full, and more may wait in the driver (not restored)")

// isCanonical tells whether the slave's line discipline keeps lines:
// ICANON without EXTPROC, under which TIOCINQ counts every byte
// (n_tty_ioctl).
func isCanonical(st *gocrpb.PtyState) bool {
	return st.Lflag&unix.ICANON != 0 && st.Lflag&unix.EXTPROC == 0
}

// openPeerLocked opens a description of the slave of gocr's own,
// non-blocking, to read without the dumped description's VMIN and VTIME.
// A locked pair refuses any open of its slave (drivers/tty/pty.c
// pty_open), so it is unlocked for the open, and locked again at once.
func openPeerLocked(m int, locked bool) (int, error) {
	if locked {
		if err := unix.IoctlSetPointerInt(m, unix.TIOCSPTLCK, 0); err != nil {
			return -1, fmt.Errorf("TIOCSPTLCK: %w", err)
		}
	}
	peer, err := ptyPeer(m, unix.O_RDWR|unix.O_NOCTTY|unix.O_NONBLOCK|unix.O_CLOEXEC)
	if locked {
		if lerr := unix.IoctlSetPointerInt(m, unix.TIOCSPTLCK, 1); lerr != nil {
			if err == nil {
				unix.Close(peer)
			}
			return -1, fmt.Errorf("lock the pty again: %w", lerr)
		}
	}
	if err != nil {
		return -1, fmt.Errorf("open the slave: %w", err)
	}
	return peer, nil
}

// readTty reads n bytes from an end of the pair. In packet mode each read
// of the master starts with a status byte, TIOCPKT_DATA (0) before data
// (man 2 ioctl_tty, TIOCPKT).
func readTty(fd, n int, packet bool) ([]byte, error) {
	var out []byte
	buf := make([]byte, n+1)
	for len(out) < n {
		k, err := unix.Read(fd, buf[:n-len(out)+1])
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return out, fmt.Errorf("read %d queued bytes: %w", n, err)
		}
		got := buf[:k]
		if packet {
			if k == 0 || got[0] != unix.TIOCPKT_DATA {
				return out, errors.New("a packet-mode status byte came with the data (not restored)")
			}
			got = got[1:]
		}
		if len(got) == 0 {
			return out, fmt.Errorf("read %d queued bytes: got %d", n, len(out))
		}
		out = append(out, got...)
	}
	return out, nil
}

// checkFlowChars refuses an unfinished line for the slave with IXANY on:
// typed again after ^V, each byte stays data, but with IXANY any byte
// restarts output a STOP had stopped (drivers/tty/n_tty.c
// n_tty_receive_char). Outside canonical mode data for the slave with IXON
// on is refused before it is read (readPtyData).
func checkFlowChars(st *gocrpb.PtyState) error {
	if len(st.ToSlave) > 0 && st.Iflag&unix.IXON != 0 && st.Iflag&unix.IXANY != 0 {
		return errors.New("unread data for the slave with IXANY on, which writing it again would act on (not restored)")
	}
	return nil
}

// injectPtyData queues toSlave for the slave to read and toMaster for the
// master to read, exactly, into the pair of master m and slave s: with the
// slave's termios made transparent meanwhile, then set back. ICANON,
// EXTPROC and the flow-control settings stay as they are: changing the
// first two rebuilds the buffer's line marks (n_tty_set_termios), the
// others queue a packet-mode status byte (drivers/tty/pty.c
// pty_set_termios). In canonical mode toSlave is an unfinished line,
// each byte of which is typed after a ^V (LNEXT, with IEXTEN on
// meanwhile): the line discipline then stores it as it is, with no line
// end, erase, flow control or signal acted on (n_tty.c
// n_tty_receive_buf_standard, n_tty_receive_char_lnext), and the ^V
// itself is not stored.
func injectPtyData(m, s int, st *gocrpb.PtyState, toSlave, toMaster []byte) error {
	if len(toSlave) == 0 && len(toMaster) == 0 {
		return nil
	}
	final, err := termiosOf(st)
	if err != nil {
		return err
	}
	t := *final
	t.Oflag &^= unix.OPOST
	t.Iflag &^= unix.ICRNL | unix.INLCR | unix.IGNCR | unix.ISTRIP | unix.IUCLC | unix.PARMRK | unix.INPCK | unix.IMAXBEL
	t.Lflag &^= unix.ECHO | unix.ECHOE | unix.ECHOK | unix.ECHONL | unix.ECHOCTL | unix.ECHOPRT | unix.ECHOKE | unix.ISIG | unix.IEXTEN
	canon := isCanonical(st)
	if canon && len(toSlave) > 0 {
		t.Lflag |= unix.IEXTEN
		t.Cc[unix.VLNEXT] = lnext
		toSlave = literally(toSlave)
	}
	if err := unix.IoctlSetTermios(s, unix.TCSETS2, &t); err != nil {
		return fmt.Errorf("TCSETS2: %w", err)
	}
	err = queueBoth(m, s, toSlave, toMaster, canon)
	if serr := unix.IoctlSetTermios(s, unix.TCSETS2, final); serr != nil && err == nil {
		err = fmt.Errorf("TCSETS2: %w", serr)
	}
	return err
}

// queueBoth writes the data, and waits until each end's line discipline
// holds it: a write only reaches the other end's driver buffer, which a
// kernel worker then pushes (drivers/tty/tty_buffer.c flush_to_ldisc).
// An unfinished line (canon) is not counted by TIOCINQ: the slave's poll,
// which waits for that worker (n_tty_poll, tty_buffer_flush_work), is
// what shows it taken in.
func queueBoth(m, s int, toSlave, toMaster []byte, canon bool) error {
	baseS, err := unix.IoctlGetInt(s, unix.TIOCINQ)
	if err != nil {
		return err
	}
	baseM, err := unix.IoctlGetInt(m, unix.TIOCINQ)
	if err != nil {
		return err
	}
	if err := writeAll(m, toSlave); err != nil {
		return fmt.Errorf("write to the master: %w", err)
	}
	if err := writeAll(s, toMaster); err != nil {
		return fmt.Errorf("write to the slave: %w", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		pollNow(s, unix.POLLIN)
		pollNow(m, unix.POLLIN)
		inS, err := unix.IoctlGetInt(s, unix.TIOCINQ)
		if err != nil {
			return err
		}
		inM, err := unix.IoctlGetInt(m, unix.TIOCINQ)
		if err != nil {
			return err
		}
		if (canon || inS >= baseS+len(toSlave)) && inM >= baseM+len(toMaster) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after 5 s the ends hold %d and %d of the %d and %d bytes written", inS-baseS, inM-baseM, len(toSlave), len(toMaster))
		}
		time.Sleep(time.Millisecond)
	}
}

// lnext is the LNEXT character injectPtyData types, ^V.
const lnext = 0x16

// literally puts an LNEXT before each byte of b.
func literally(b []byte) []byte {
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, lnext, c)
	}
	return out
}

func writeAll(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := unix.Write(fd, b)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return errors.New("wrote nothing (output stopped)")
		}
		b = b[n:]
	}
	return nil
}
