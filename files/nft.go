//go:build linux

package files

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"github.com/gocr/gocr/gocrpb"
)

// Connections to peers outside the dump (--tcp-established) are kept from
// being reset while the job is dumped: from before they are read until
// the restore has them again, their packets are dropped by an nftables
// table of gocr's (nft(8), Debian's nftables package; `make deps`). Without
// it the peer's next packet would find no socket and be answered by a
// reset once the job is killed.
//
// The table is named after the gocr that dumps, "gocr_PID_START" (its PID
// and start time, man 5 proc /proc/PID/stat field 22), while the dump
// runs: a failed dump, or one with --leave-running, removes it; a gocr
// killed meanwhile leaves it, with the job running on blocked, until the
// next gocr that blocks connections, which removes every such table whose
// gocr is gone. A dump that completes turns it, in one nft transaction,
// into "gocr_keep_PID_START", recorded in the images and removed by the
// restore once the connections are back; a dump never restored leaves it
// (nft delete table inet NAME).

const (
	nftPrefix     = "gocr_"
	nftKeepPrefix = "gocr_keep_"
)

// nftBlock is the table blocking a dump's connections to peers outside.
type nftBlock struct {
	name, kept string
	rules      string // the table's chains
}

// nft runs nft with script as its input.
func nft(script string) error {
	path, err := exec.LookPath("nft")
	if err != nil {
		return errors.New("nft (nftables) is not installed: `make deps` installs it; it blocks connections to peers outside the dump")
	}
	cmd := exec.Command(path, "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("nft: %v: %s", err, strings.TrimSpace(out.String()))
	}
	return nil
}

// selfID is gocr's PID and start time, naming its tables.
func selfID() (string, error) {
	start, err := startTime(os.Getpid())
	if err != nil {
		return "", err
	}
	return strconv.Itoa(os.Getpid()) + "_" + start, nil
}

// startTime is field 22 of /proc/PID/stat, when the process started (man
// 5 proc): with the PID, it names one process for good. The fields are
// counted after the comm, which ends at the last ')'.
func startTime(pid int) (string, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", err
	}
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+1:]))
	if i < 0 || len(f) < 20 {
		return "", fmt.Errorf("/proc/%d/stat: no start time", pid)
	}
	return f[22-3], nil
}

// blockConnections drops every packet of the connections conns, both
// ways, from now on.
func blockConnections(conns []*gocrpb.InetSocketFd) (*nftBlock, error) {
	removeStaleNftTables()
	id, err := selfID()
	if err != nil {
		return nil, err
	}
	b := &nftBlock{name: nftPrefix + id, kept: nftKeepPrefix + id}
	var in, out strings.Builder
	for _, u := range conns {
		k := connKey(u)
		l, p := k[0], k[1]
		ip := "ip"
		if !l.Addr().Is4() {
			ip = "ip6"
		}
		fmt.Fprintf(&in, "\t\t%s saddr %s %s daddr %s tcp sport %d tcp dport %d drop\n", ip, p.Addr(), ip, l.Addr(), p.Port(), l.Port())
		fmt.Fprintf(&out, "\t\t%s saddr %s %s daddr %s tcp sport %d tcp dport %d drop\n", ip, l.Addr(), ip, p.Addr(), l.Port(), p.Port())
	}
	// Ahead of every other filter (priority raw, -300), both where
	// packets come in and where they go out (man 8 nft, "CHAINS").
	b.rules = "\tchain in {\n\t\ttype filter hook input priority -300; policy accept;\n" + in.String() + "\t}\n" +
		"\tchain out {\n\t\ttype filter hook output priority -300; policy accept;\n" + out.String() + "\t}\n"
	if err := nft(b.table(b.name)); err != nil {
		return nil, fmt.Errorf("block the connections to peers outside the dump: %w", err)
	}
	return b, nil
}

func (b *nftBlock) table(name string) string {
	return "table inet " + name + " {\n" + b.rules + "}\n"
}

// keep turns the dump's table into the one the restore removes.
func (b *nftBlock) keep() error {
	if err := nft(b.table(b.kept) + "delete table inet " + b.name + "\n"); err != nil {
		return fmt.Errorf("keep the connections to peers outside the dump blocked: %w", err)
	}
	return nil
}

// remove lets the connections' packets flow again.
func (b *nftBlock) remove() error { return removeNftTable(b.name) }

// removeNftTable removes table name, if it is there: adding a table that
// exists changes nothing (man 8 nft, "TABLES"), so the transaction never
// fails for a table already gone.
func removeNftTable(name string) error {
	if err := nft("add table inet " + name + "\ndelete table inet " + name + "\n"); err != nil {
		return fmt.Errorf("unblock connections (nftables table %s): %w", name, err)
	}
	return nil
}

// removeStaleNftTables removes the tables of dumps whose gocr is gone
// before finishing them.
func removeStaleNftTables() {
	path, err := exec.LookPath("nft")
	if err != nil {
		return
	}
	out, err := exec.Command(path, "list", "tables", "inet").Output()
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(out), "\n") {
		name, ok := strings.CutPrefix(strings.TrimSpace(line), "table inet "+nftPrefix)
		if !ok || strings.HasPrefix(nftPrefix+name, nftKeepPrefix) {
			continue
		}
		pid, start, ok := strings.Cut(name, "_")
		if !ok {
			continue
		}
		n, err := strconv.Atoi(pid)
		if err != nil {
			continue
		}
		if st, err := startTime(n); err == nil && st == start {
			continue // its gocr still runs
		}
		if err := removeNftTable(nftPrefix + name); err != nil {
			warnf("%v", err)
		}
	}
}
