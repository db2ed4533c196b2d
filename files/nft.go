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
// runs: a failed dump, or one with --leave-running, removes it; should
// gocr die meanwhile, its TCP watchdog removes it (tcpwatch.go), or, were
// the watchdog killed too, the next gocr that blocks connections or
// `gocr cleanup` (CleanNftTables). A dump that completes turns it, in one
// nft transaction, into "gocr_keep_PID_START", recorded in the images and
// removed by the restore once its processes run (or by the restore's
// watchdog, should gocr die then: tcpwatch.go); a restore that ends
// before, and a dump never restored, leave it (`gocr cleanup --abandon
// DIR`).

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

// newNftBlock names the table that will drop every packet of the
// connections conns, both ways, and writes its rules; add makes it.
func newNftBlock(conns []*gocrpb.InetSocketFd) (*nftBlock, error) {
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
	return b, nil
}

// add makes the table: from now on the connections' packets are dropped.
func (b *nftBlock) add() error {
	removeStaleNftTables()
	if err := nft(b.table(b.name)); err != nil {
		return fmt.Errorf("block the connections to peers outside the dump: %w", err)
	}
	return nil
}

func (b *nftBlock) table(name string) string {
	return "table inet " + name + " {\n" + b.rules + "}\n"
}

// keepScript turns the dump's table into the one the restore removes, in
// one transaction: it fails, changing nothing, once the dump's table is
// gone.
func (b *nftBlock) keepScript() string {
	return b.table(b.kept) + "delete table inet " + b.name + "\n"
}

// keep turns the dump's table into the one the restore removes.
func (b *nftBlock) keep() error {
	if err := nft(b.keepScript()); err != nil {
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

// removeStaleNftTables removes the tables of dumps that ended before
// finishing them, their gocr and its watchdog gone.
func removeStaleNftTables() {
	if _, _, err := CleanNftTables(); err != nil {
		warnf("%v", err)
	}
}

// CleanNftTables removes every table of a dump that ended before it was
// complete (gocr_PID_START, its gocr and its watchdog gone: the job ran
// on, and the table only keeps its connections blocked) and returns
// their names, and the names of the tables kept for a restore
// (gocr_keep_PID_START), which it leaves: a checkpoint names them, and
// its connections to peers outside stay whole only while they are there.
func CleanNftTables() (removed, kept []string, err error) {
	path, err := exec.LookPath("nft")
	if err != nil {
		return nil, nil, nil // no nft, no table
	}
	out, err := exec.Command(path, "list", "tables", "inet").Output()
	if err != nil {
		return nil, nil, fmt.Errorf("nft list tables inet: %w", err)
	}
	var errs []error
	for _, line := range strings.Split(string(out), "\n") {
		table, ok := strings.CutPrefix(strings.TrimSpace(line), "table inet ")
		if !ok || !strings.HasPrefix(table, nftPrefix) {
			continue
		}
		if strings.HasPrefix(table, nftKeepPrefix) {
			kept = append(kept, table)
			continue
		}
		pid, start, ok := strings.Cut(strings.TrimPrefix(table, nftPrefix), "_")
		if !ok || dumpTableInUse(table, pid, start) {
			continue
		}
		if err := removeNftTable(table); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, table)
	}
	return removed, kept, errors.Join(errs...)
}

// KeptNftTables are the tables the dump whose fd tables are tables keeps
// for its restore.
func KeptNftTables(tables []*gocrpb.Files) []string {
	seen := map[string]bool{}
	var names []string
	for _, t := range tables {
		for _, fd := range t.Fds {
			if n := fd.GetInetSocket().GetNftTable(); n != "" && !seen[n] {
				seen[n] = true
				names = append(names, n)
			}
		}
	}
	return names
}

// RemoveKeptNftTable removes a table kept for a restore that will not
// happen: the peers outside then find no connection (their next packet
// is answered by a reset).
func RemoveKeptNftTable(name string) error {
	if !strings.HasPrefix(name, nftKeepPrefix) {
		return fmt.Errorf("%q is not a table gocr keeps for a restore", name)
	}
	return removeNftTable(name)
}

// nftTableExists tells whether table inet name is there.
func nftTableExists(name string) bool {
	path, err := exec.LookPath("nft")
	return err == nil && exec.Command(path, "list", "table", "inet", name).Run() == nil
}
