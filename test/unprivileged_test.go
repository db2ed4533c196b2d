//go:build linux

package test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gocr/gocr/gocrpb"
	"github.com/gocr/gocr/internal/testhook"
)

// BLCR's security rules for ordinary users (README, "Ordinary users"): a
// user checkpoints and restarts their own jobs with a gocr that holds
// cap_checkpoint_restore in its file, may not checkpoint another user's
// process or a set-id one, and no image restores anything with more
// privilege than the user has. Everything runs as a user the test
// creates, with a copy of gocr given the capability with setcap.

// testUserName is the ordinary user the tests run as, created if missing.
const testUserName = "gocr-test"

// ordinaryUser is a user with no capabilities and no supplementary
// groups, and a copy of gocr with the file capability it needs.
type ordinaryUser struct {
	uid, gid int
	gocr     string
}

func setupOrdinaryUser(t *testing.T) *ordinaryUser {
	t.Helper()
	if !standalone && os.Geteuid() != 0 {
		t.Skipf("needs root: the test creates the user %s and gives a copy of gocr a file capability", testUserName)
	}
	needsGocr(t)
	for _, tool := range []string{"setcap", "setpriv"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s (make deps installs it): %v", tool, err)
		}
	}
	u, err := user.Lookup(testUserName)
	if err != nil {
		useradd, lerr := exec.LookPath("useradd")
		if lerr != nil {
			t.Skipf("needs user %s, and useradd to create it: %v", testUserName, lerr)
		}
		out, err := exec.Command(useradd, "--system", "--no-create-home", "--user-group",
			"--shell", "/usr/sbin/nologin", testUserName).CombinedOutput()
		// Another test binary may have created it meanwhile.
		if u, err = user.Lookup(testUserName); err != nil {
			t.Fatalf("create user %s: %v\n%s", testUserName, err, out)
		}
	}
	ou := &ordinaryUser{}
	ou.uid, _ = strconv.Atoi(u.Uid)
	ou.gid, _ = strconv.Atoi(u.Gid)
	if ou.uid == 0 {
		t.Fatalf("user %s is root", testUserName)
	}

	dir := reachableDir(t)
	ou.gocr = filepath.Join(dir, "gocr")
	copyFile(t, gocrBinary(t), ou.gocr, 0o755)
	if out, err := exec.Command("setcap", "cap_checkpoint_restore=ep", ou.gocr).CombinedOutput(); err != nil {
		t.Skipf("the filesystem of %s takes no file capabilities: setcap: %v: %s", dir, err, strings.TrimSpace(string(out)))
	}
	// gocr check says whether it got the capability (a nosuid mount
	// or no_new_privs would keep it from it).
	r := ou.run(t, nil, "check")
	first, _, _ := strings.Cut(r.stdout, "\n")
	if !strings.HasPrefix(first, "ok ") || !strings.Contains(first, "has cap_checkpoint_restore=ep") {
		t.Skipf("gocr with cap_checkpoint_restore=ep in %s does not get it when %s runs it: %s", dir, testUserName, first)
	}
	return ou
}

// reachableDir is a new directory everyone may enter and read, in a
// temporary directory others may enter.
func reachableDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// ownDir is a new directory the user owns, for their images.
func (ou *ordinaryUser) ownDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(reachableDir(t), "user")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, ou.uid, ou.gid); err != nil {
		t.Fatal(err)
	}
	return dir
}

// giveTree makes dir (in a t.TempDir) and everything in it the user's.
func (ou *ordinaryUser) giveTree(t *testing.T, dir string) {
	t.Helper()
	for _, d := range []string{filepath.Dir(filepath.Dir(dir)), filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	err := filepath.WalkDir(dir, func(p string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, ou.uid, ou.gid)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// run runs the capability-holding gocr as the user, with no
// supplementary groups, and extra environment entries.
func (ou *ordinaryUser) run(t *testing.T, env []string, args ...string) gocrRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), gocrTimeout)
	defer cancel()
	cmd, outPath, errPath := gocrCmd(t, ctx, nil, args...)
	cmd.Path, cmd.Args[0] = ou.gocr, ou.gocr
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(ou.uid), Gid: uint32(ou.gid), Groups: []uint32{}}}
	err := cmd.Run()
	r := gocrRun{args: append([]string{"(as " + testUserName + ")"}, args...), code: cmd.ProcessState.ExitCode()}
	out, _ := os.ReadFile(outPath)
	errb, _ := os.ReadFile(errPath)
	r.stdout, r.stderr = string(out), string(errb)
	if ctx.Err() != nil {
		t.Fatalf("gocr did not finish within %v\n%v", gocrTimeout, r)
	}
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatalf("run %v: %v", r.args, err)
	}
	return r
}

// asUser is a target wrap that runs the target as uid:gid with no
// supplementary groups, after giving it its test directory and log
// (startTarget creates both as root; the target writes its result there,
// and a restore reopens its log as the user).
func asUser(uid, gid int) []string {
	script := fmt.Sprintf(`d=$(dirname "$1") && chown %d:%d "$d" "$d/log" && chmod 755 "$(dirname "$d")" && `+
		`exec setpriv --reuid=%d --regid=%d --clear-groups -- "$0" "$@"`, uid, gid, uid, gid)
	return []string{"sh", "-c", script}
}

// capLines are the capability sets of /proc/PID/status.
var capLines = []string{"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"}

func capSets(t *testing.T, pid int) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, k := range capLines {
		m[k] = statusField(t, pid, k)
	}
	return m
}

// TestOrdinaryUserCheckpointRestart: the user checkpoints their own
// counter and restarts it; it goes on with exactly the capability sets
// it had (none of gocr's), and the user can checkpoint it again.
func TestOrdinaryUserCheckpointRestart(t *testing.T) {
	ou := setupOrdinaryUser(t)
	tg := startTargetOpts(t, "counter", startOpts{wrap: asUser(ou.uid, ou.gid)})
	if r, _ := uids(t, tg.pid); r != ou.uid {
		t.Fatalf("target pid %d runs as uid %d, want %d", tg.pid, r, ou.uid)
	}
	waitCounter(t, tg, 20)
	caps := capSets(t, tg.pid)
	for _, k := range []string{"CapInh", "CapPrm", "CapEff", "CapAmb"} {
		if n, err := strconv.ParseUint(caps[k], 16, 64); err != nil || n != 0 {
			t.Fatalf("target pid %d has %s %s: an ordinary user's process holds none", tg.pid, k, caps[k])
		}
	}
	before, err := readTreeView(t, tg.pid)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(ou.ownDir(t), "images")
	if r := ou.run(t, nil, "dump", "-t", strconv.Itoa(tg.pid), "-D", dir); r.code != 0 {
		t.Fatalf("dump as %s failed: %v", testUserName, r)
	}
	tg.waitDead(t, "a dump without --leave-running")
	t.Cleanup(func() { tg.killRestored(t, tg.pid) })
	if r := ou.run(t, nil, "restore", "-d", "-D", dir); r.code != 0 {
		t.Fatalf("restore as %s failed: %v", testUserName, r)
	}
	if gone(tg.pid) || !tg.belongsTo(tg.pid) {
		t.Fatalf("restore as %s exited 0 but pid %d is not the counter\n%s", testUserName, tg.pid, tg.diagnostics())
	}
	if got := capSets(t, tg.pid); fmt.Sprint(got) != fmt.Sprint(caps) {
		t.Fatalf("restored pid %d has capability sets %v, had %v", tg.pid, got, caps)
	}
	checkTreeView(t, tg.pid, before, counterVolatile)
	// Restored as the user's, dumpable: the user checkpoints it again.
	if r := ou.run(t, nil, "dump", "--leave-running", "-t", strconv.Itoa(tg.pid), "-D", dir); r.code != 0 {
		t.Fatalf("second dump as %s of the restored counter failed: %v", testUserName, r)
	}
	waitCounter(t, tg, counterLines(t, tg.logPath, false)+10)
	checkResult(t, tg, tg.pid)
	counterLines(t, tg.logPath, true)
}

// TestOrdinaryUserOthersProcess: the user may not checkpoint a process of
// root or of another user; it runs on untouched.
func TestOrdinaryUserOthersProcess(t *testing.T) {
	ou := setupOrdinaryUser(t)
	const nobody = 65534
	for _, c := range []struct {
		name string
		wrap []string
		uid  int
	}{
		{"Root", nil, 0},
		{"OtherUser", asUser(nobody, nobody), nobody},
	} {
		t.Run(c.name, func(t *testing.T) {
			tg := startTargetOpts(t, "counter", startOpts{wrap: c.wrap})
			waitCounter(t, tg, 10)
			r := ou.run(t, nil, "dump", "-t", strconv.Itoa(tg.pid), "-D", filepath.Join(ou.ownDir(t), "images"))
			assertRefused(t, r, []string{strconv.Itoa(tg.pid), fmt.Sprintf("uid %d", c.uid), "only its owner or root"}, nil)
			checkIntactCounter(t, tg)
		})
	}
}

// TestOrdinaryUserSetidProcess: the user may not checkpoint a process
// the kernel does not let them trace: a set-uid-root program they started
// (real uid theirs, effective uid 0), or one that is not dumpable.
func TestOrdinaryUserSetidProcess(t *testing.T) {
	ou := setupOrdinaryUser(t)
	t.Run("SetUID", func(t *testing.T) {
		suid := filepath.Join(reachableDir(t), "counter-setuid")
		copyFile(t, targets["counter"][0], suid, 0o755)
		// os.Chmod maps only os.ModeSetuid to S_ISUID, not 0o4000.
		if err := os.Chmod(suid, os.ModeSetuid|0o755); err != nil {
			t.Fatal(err)
		}
		tg := startTargetOpts(t, "counter", startOpts{binary: suid, wrap: asUser(ou.uid, ou.gid)})
		if ruid, euid := uids(t, tg.pid); ruid != ou.uid || euid != 0 {
			t.Fatalf("set-uid counter pid %d runs with uid %d euid %d, want %d and 0", tg.pid, ruid, euid, ou.uid)
		}
		waitCounter(t, tg, 10)
		r := ou.run(t, nil, "dump", "-t", strconv.Itoa(tg.pid), "-D", filepath.Join(ou.ownDir(t), "images"))
		assertRefused(t, r, []string{strconv.Itoa(tg.pid), "set-id"}, nil)
		checkIntactCounter(t, tg)
	})
	// The user's own counter made not dumpable (prctl PR_SET_DUMPABLE 0,
	// called in it by gdb), as a program that dropped privileges is.
	t.Run("NotDumpable", func(t *testing.T) {
		if _, err := exec.LookPath("gdb"); err != nil {
			t.Skipf("needs gdb to make the counter not dumpable (make deps installs it): %v", err)
		}
		tg := startTargetOpts(t, "counter", startOpts{wrap: asUser(ou.uid, ou.gid)})
		waitCounter(t, tg, 10)
		runGDB(t, tg, []string{"call (int)prctl(4, 0, 0, 0, 0)"})
		// /proc/PID/status of a process that is not dumpable is root's
		// (fs/proc/base.c task_dump_owner).
		if st, err := os.Stat(fmt.Sprintf("/proc/%d/status", tg.pid)); err != nil || st.Sys().(*syscall.Stat_t).Uid != 0 {
			t.Fatalf("counter pid %d still dumpable after PR_SET_DUMPABLE 0 (%v)", tg.pid, err)
		}
		r := ou.run(t, nil, "dump", "-t", strconv.Itoa(tg.pid), "-D", filepath.Join(ou.ownDir(t), "images"))
		assertRefused(t, r, []string{strconv.Itoa(tg.pid), "not dumpable", "only root"}, nil)
		checkIntactCounter(t, tg)
	})
}

// TestOrdinaryUserCraftedImages: the user's own dump, edited to give the
// process root's ids or groups or capabilities, restores nothing; nor do
// the user's images with --trust-images. The genuine dump then restores,
// with GOCR_TEST_HOOKS ignored: a gocr with file capabilities runs in
// secure mode, where a hook holding it for ten minutes does nothing.
func TestOrdinaryUserCraftedImages(t *testing.T) {
	ou := setupOrdinaryUser(t)
	tg := startTargetOpts(t, "counter", startOpts{wrap: asUser(ou.uid, ou.gid)})
	waitCounter(t, tg, 20)
	dir := filepath.Join(ou.ownDir(t), "images")
	if r := ou.run(t, nil, "dump", "-t", strconv.Itoa(tg.pid), "-D", dir); r.code != 0 {
		t.Fatalf("dump as %s failed: %v", testUserName, r)
	}
	tg.waitDead(t, "a dump without --leave-running")
	t.Cleanup(func() { tg.killRestored(t, tg.pid) })
	// A root-owned copy of the user's dump for rewriteDump, which reads
	// images only root or the user running it wrote.
	src := copyDir(t, dir)
	const all = uint64(1)<<41 - 1
	for _, c := range []struct {
		name string
		edit func(*gocrpb.Creds)
		want string
	}{
		{"RootUid", func(c *gocrpb.Creds) { c.Ruid, c.Euid, c.Suid, c.Fsuid = 0, 0, 0, 0 }, "uids"},
		{"RootEuid", func(c *gocrpb.Creds) { c.Euid = 0 }, "uids"},
		{"RootGid", func(c *gocrpb.Creds) { c.Rgid, c.Egid, c.Sgid, c.Fsgid = 0, 0, 0, 0 }, "gids"},
		{"RootGroup", func(c *gocrpb.Creds) { c.Groups = []uint32{0} }, "supplementary groups"},
		{"FullCaps", func(c *gocrpb.Creds) { c.CapPrm, c.CapEff = all, all }, "permitted capabilities"},
		{"Ambient", func(c *gocrpb.Creds) { c.CapAmb = 1 << 10 }, "ambient capabilities"},
		{"Securebits", func(c *gocrpb.Creds) { c.Securebits = 0x2f }, "securebits"},
	} {
		t.Run(c.name, func(t *testing.T) {
			crafted := rewriteDump(t, src, func(task *gocrpb.Task) { c.edit(task.Creds) })
			ou.giveTree(t, crafted)
			r := ou.run(t, nil, "restore", "-d", "-D", crafted)
			assertRefused(t, r, []string{c.want, "not yours", "only root"}, nil)
			assertNoProcess(t, tg.pid)
		})
	}
	// Dumped on another boot: its clocks need a time namespace, whose
	// offsets only CAP_SYS_TIME sets.
	t.Run("AnotherBoot", func(t *testing.T) {
		moved := rewriteInventory(t, src, func(inv *gocrpb.Inventory) { inv.BootId = "00000000-0000-4000-8000-000000000000" })
		ou.giveTree(t, moved)
		r := ou.run(t, nil, "restore", "-d", "-D", moved)
		assertRefused(t, r, []string{"time namespace", "CAP_SYS_TIME"}, nil)
		assertNoProcess(t, tg.pid)
	})
	t.Run("TrustImages", func(t *testing.T) {
		r := ou.run(t, nil, "restore", "-d", "--trust-images", "-D", dir)
		assertRefused(t, r, []string{"--trust-images", "root"}, nil)
		assertNoProcess(t, tg.pid)
	})
	r := ou.run(t, []string{testhook.Setting(testhook.PauseBeforeLaunch, "10m")}, "restore", "-d", "-D", dir)
	if r.code != 0 {
		t.Fatalf("restore as %s of the genuine dump failed: %v", testUserName, r)
	}
	if strings.Contains(r.stderr, testhook.Announcement(testhook.PauseBeforeLaunch)) || !strings.Contains(r.stderr, testhook.Env+" ignored") {
		t.Fatalf("gocr with file capabilities obeyed %s, or did not say it ignored it: %v", testhook.Env, r)
	}
	waitCounter(t, tg, counterLines(t, tg.logPath, false)+10)
	checkResult(t, tg, tg.pid)
	counterLines(t, tg.logPath, true)
}

// TestOrdinaryUserTree: the user's tree of 20 processes (two groups, a
// zombie, a pipe, shared anonymous memory, which a restore holds through
// /proc/self/map_files) is checkpointed and restarted by the user, every
// process with its PID and the user's credentials.
func TestOrdinaryUserTree(t *testing.T) {
	ou := setupOrdinaryUser(t)
	tg := startTargetOpts(t, "tree", startOpts{settle: 200 * time.Millisecond, wrap: asUser(ou.uid, ou.gid)})
	settledTree(t, tg.pid, 20)
	pids := trackTree(t, tg.pid)
	before, err := readTreeView(t, tg.pid)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(ou.ownDir(t), "images")
	if r := ou.run(t, nil, "dump", "-t", strconv.Itoa(tg.pid), "-D", dir); r.code != 0 {
		t.Fatalf("dump as %s failed: %v", testUserName, r)
	}
	tg.waitDead(t, "a dump without --leave-running")
	waitAllGone(t, pids, "the dump")
	t.Cleanup(func() { tg.killRestored(t, tg.pid) })
	if r := ou.run(t, nil, "restore", "-d", "-D", dir); r.code != 0 {
		t.Fatalf("restore as %s failed: %v", testUserName, r)
	}
	checkTreeView(t, tg.pid, before, nil)
	for _, pid := range pids {
		if st := procState(pid); st != "" && st != "Z" {
			if r, _ := uids(t, pid); r != ou.uid {
				t.Errorf("restored pid %d runs as uid %d, want %d", pid, r, ou.uid)
			}
			if caps := capSets(t, pid); caps["CapPrm"] != "0000000000000000" || caps["CapEff"] != "0000000000000000" {
				t.Errorf("restored pid %d holds capabilities %v", pid, caps)
			}
		}
	}
	checkResult(t, tg, tg.pid)
}
