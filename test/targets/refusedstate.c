/*
 * refusedstate: sets up one piece of state that a restore would silently
 * change, so a dump must refuse it; after the refused dump the target
 * checks the state is still its own and works.
 *
 * usage: refusedstate RESULT_PATH MODE [ARG]
 *   thread-files   a thread with its own fd table (unshare CLONE_FILES)
 *   thread-fs      a thread with its own cwd and umask (unshare CLONE_FS)
 *   thread-ns      a thread in its own uts namespace (unshare CLONE_NEWUTS)
 *   pid-children   children go to a new PID namespace (unshare CLONE_NEWPID)
 *   time-children  children go to a new time namespace (unshare CLONE_NEWTIME)
 *   time-split     a child in a new time namespace, the process back in its
 *                  own (setns), so the tree spans two
 *   epoll-outside  an epoll watch on a pipe whose fd was closed and that only
 *                  a process outside the dump holds
 *   chardev PATH   an open character device with driver state
 *   async          an inotify fd with O_ASYNC, an owner and a signal
 *   detached       a file on a tmpfs mounted nowhere (fsmount)
 *   ldt            an LDT entry (modify_ldt)
 *   tracer PID     ptrace-seizes PID, a process outside the dump
 *   pkey           a page tagged with a protection key (pkey_mprotect)
 *   amx            permission for AMX tile data (ARCH_REQ_XCOMP_PERM)
 *   lam            tagged addresses (ARCH_ENABLE_TAGGED_ADDR)
 *   epoll-disarmed an EPOLLONESHOT watch that has fired
 *   inotify-queued an inotify fd with an event waiting to be read
 *   dumpable2      dumpable mode 2: its gid changed while the test holds
 *                  fs.suid_dumpable at 2 until the target is ready
 *   zombie-core    a child that dumped core (into a directory of its own)
 *                  and that the target has not reaped
 *   proc-shared    /proc/self/stat open, then a child forked that keeps
 *                  the same open file description of it
 *   lease          a read lease on a file of its own (F_SETLEASE)
 *   proc-ended KIND  a /proc file of a child it has reaped since: file
 *                  (/proc/CHILD/stat, read part way) or dir (/proc/CHILD)
 *   proc-thread KIND  a /proc file of its second thread: tid
 *                  (/proc/TID/status) or task (/proc/PID/task/TID/status)
 *   fdkind KIND    an fd of a kind gocr does not restore: pidfd,
 *                  userfaultfd, fanotify or perf_event
 *   pty KIND       a pseudo-terminal, both ends its own, with state gocr
 *                  does not restore: lockedtermios (TIOCSLCKTRMIOS),
 *                  pktstatus (a packet-mode status byte waiting on the
 *                  master), rdonly (a second master fd opened read-only
 *                  through /proc/self/fd), async (O_ASYNC on the master),
 *                  devtty (a session of its own with the pty as its
 *                  controlling terminal, and /dev/tty open), notty (the
 *                  same, with a child forked before the terminal was
 *                  taken, so in the session without it), ldisc (the
 *                  slave's line discipline N_NULL), orphan (bytes the
 *                  slave wrote wait on the master, the slave closed),
 *                  ixany (a byte waits for the slave with IXON and
 *                  IXANY), ixon (the STOP character waits for the slave,
 *                  written before IXON was set), extproc (a byte waits
 *                  for the slave, the master in packet mode, EXTPROC
 *                  set), full (more than the slave's input buffer
 *                  waits for it)
 *   devpts DIR WHICH  a pty pair of the devpts instance mounted at DIR
 *                  (the test mounts one with newinstance), its master
 *                  opened from DIR/ptmx and its slave from DIR/N: WHICH
 *                  (master or slave) is at fd 3, the other at fd 60
 *   hugetlb        a MAP_HUGETLB mapping of one huge page (the test
 *                  reserves it: vm.nr_hugepages)
 *   group-orphan   leads a process group of its own in which a grandchild,
 *                  orphaned (its parent exited), is no descendant of it
 */
#include "target.h"

#include <asm/ldt.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <termios.h>

#ifndef N_NULL
#define N_NULL 27 /* include/uapi/linux/tty.h */
#endif

#define THREAD_FD 77
#define THREAD_HOST "gocr-thread"

static volatile int thread_stop;
static char thread_err[512];
static int thread_ready_flag;
static const char *mode;

/* The thread makes its table, fs or namespace its own, then waits. */
static void *thread_main(void *arg)
{
	(void)arg;
	if (strcmp(mode, "thread-files") == 0) {
		if (unshare(CLONE_FILES) < 0 || dup2(0, THREAD_FD) < 0) {
			snprintf(thread_err, sizeof(thread_err), "unshare files: %s", strerror(errno));
			goto out;
		}
	} else if (strcmp(mode, "thread-fs") == 0) {
		if (unshare(CLONE_FS) < 0 || chdir("/usr") < 0) {
			snprintf(thread_err, sizeof(thread_err), "unshare fs: %s", strerror(errno));
			goto out;
		}
		umask(077);
	} else {
		if (unshare(CLONE_NEWUTS) < 0 || sethostname(THREAD_HOST, strlen(THREAD_HOST)) < 0) {
			snprintf(thread_err, sizeof(thread_err), "unshare uts: %s", strerror(errno));
			goto out;
		}
	}
	__atomic_store_n(&thread_ready_flag, 1, __ATOMIC_RELEASE);
	while (!thread_stop) {
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	/* Still its own? */
	if (strcmp(mode, "thread-files") == 0) {
		if (fcntl(THREAD_FD, F_GETFD) < 0)
			snprintf(thread_err, sizeof(thread_err), "thread lost its fd %d", THREAD_FD);
	} else if (strcmp(mode, "thread-fs") == 0) {
		char cwd[256];
		mode_t m = umask(077);
		if (!getcwd(cwd, sizeof(cwd)) || strcmp(cwd, "/usr") != 0 || m != 077)
			snprintf(thread_err, sizeof(thread_err), "thread cwd %s umask %o, want /usr 077", cwd, m);
	} else {
		struct utsname u;
		if (uname(&u) < 0 || strcmp(u.nodename, THREAD_HOST) != 0)
			snprintf(thread_err, sizeof(thread_err), "thread host name %s, want %s", u.nodename, THREAD_HOST);
	}
out:
	__atomic_store_n(&thread_ready_flag, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void run_thread_mode(void)
{
	pthread_t th;
	if (chdir("/") < 0)
		tgt_fail("chdir /: %s", strerror(errno));
	umask(022);
	int err = pthread_create(&th, NULL, thread_main, NULL);
	if (err)
		tgt_fail("pthread_create: %s", strerror(err));
	while (!__atomic_load_n(&thread_ready_flag, __ATOMIC_ACQUIRE)) {
		struct timespec ts = { 0, 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	if (thread_err[0])
		tgt_fail("%s", thread_err);
	tgt_ready();
	tgt_wait();
	thread_stop = 1;
	pthread_join(th, NULL);
	if (thread_err[0])
		tgt_fail("%s", thread_err);
	/* And the process kept its own. */
	char cwd[256];
	if (fcntl(THREAD_FD, F_GETFD) >= 0)
		tgt_fail("the thread's fd %d is in the process's table", THREAD_FD);
	if (!getcwd(cwd, sizeof(cwd)) || strcmp(cwd, "/") != 0)
		tgt_fail("process cwd %s, want /", cwd);
	struct utsname u;
	if (uname(&u) < 0 || strcmp(u.nodename, THREAD_HOST) == 0)
		tgt_fail("process host name is the thread's");
	tgt_pass();
}

/* The next child is the init of the new PID namespace, or in the new time
 * namespace. */
static void run_children_ns(int flag)
{
	char before[64] = "", path[64];
	ssize_t n = readlink("/proc/self/ns/time", before, sizeof(before) - 1);
	if (unshare(flag) < 0)
		tgt_fail("unshare %#x: %s", flag, strerror(errno));
	tgt_ready();
	tgt_wait();
	pid_t pid = fork();
	if (pid < 0)
		tgt_fail("fork: %s", strerror(errno));
	if (pid == 0) {
		if (flag == CLONE_NEWPID)
			_exit(getpid() == 1 ? 0 : 1);
		char now[64] = "";
		snprintf(path, sizeof(path), "/proc/self/ns/time");
		readlink(path, now, sizeof(now) - 1);
		_exit(n > 0 && strcmp(now, before) != 0 ? 0 : 1);
	}
	int st;
	if (waitpid(pid, &st, 0) != pid)
		tgt_fail("waitpid: %s", strerror(errno));
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		tgt_fail("the child is not in the new namespace (status %#x)", st);
	tgt_pass();
}

/* A child born in a new time namespace, then the process's children sent
 * back to its own by setns(2) on its own link: the tree is in two time
 * namespaces, each process creating children in its own. */
static void run_time_split(void)
{
	char own[64] = "", childs[64] = "", path[64];
	int fd = open("/proc/self/ns/time", O_RDONLY | O_CLOEXEC);
	if (fd < 0 || readlink("/proc/self/ns/time", own, sizeof(own) - 1) < 0)
		tgt_fail("read /proc/self/ns/time: %s", strerror(errno));
	if (unshare(CLONE_NEWTIME) < 0)
		tgt_fail("unshare CLONE_NEWTIME: %s", strerror(errno));
	pid_t pid = fork();
	if (pid < 0)
		tgt_fail("fork: %s", strerror(errno));
	if (pid == 0) {
		for (;;)
			pause();
	}
	if (setns(fd, CLONE_NEWTIME) < 0) {
		kill(pid, SIGKILL);
		tgt_fail("setns to its own time namespace: %s", strerror(errno));
	}
	close(fd);
	tgt_ready();
	tgt_wait();
	snprintf(path, sizeof(path), "/proc/%d/ns/time", pid);
	ssize_t n = readlink(path, childs, sizeof(childs) - 1);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	if (n <= 0 || strcmp(childs, own) == 0)
		tgt_fail("the child is not in another time namespace (%s, its parent's %s)", childs, own);
	tgt_pass();
}

/* Watch the read end of pipe a at fd N, keep it open by a dup, close N
 * and put the read end of pipe b there. */
static void run_epoll_outside(void)
{
	int a[2], life[2];
	if (pipe(a) < 0 || pipe(life) < 0)
		tgt_fail("pipe: %s", strerror(errno));
	int ep = epoll_create1(0);
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 0x1234 };
	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, a[0], &ev) < 0)
		tgt_fail("epoll: %s", strerror(errno));
	/* A grandchild, reparented away from the target once its parent
	 * exits and so outside the dump, is left the only holder of pipe
	 * a's read end; it ends at the EOF of the target's lifeline. */
	pid_t mid = fork();
	if (mid < 0)
		tgt_fail("fork: %s", strerror(errno));
	if (mid == 0) {
		pid_t g = fork();
		if (g == 0) {
			char c;
			for (int fd = 0; fd < 1024; fd++)
				if (fd != a[0] && fd != life[0])
					close(fd);
			while (read(life[0], &c, 1) < 0 && errno == EINTR)
				;
			_exit(0);
		}
		_exit(g < 0);
	}
	int st;
	if (waitpid(mid, &st, 0) != mid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		tgt_fail("the grandchild holding pipe a could not be made");
	close(a[0]);
	close(life[0]);
	tgt_ready();
	tgt_wait();
	/* The watch still follows pipe a. */
	struct epoll_event got;
	if (write(a[1], "a", 1) != 1)
		tgt_fail("write a: %s", strerror(errno));
	if (epoll_wait(ep, &got, 1, 0) != 1 || got.data.u64 != 0x1234)
		tgt_fail("pipe a does not report through its watch");
	tgt_pass();
}

static void run_chardev(const char *path)
{
	int fd = open(path, O_RDONLY | O_NONBLOCK);
	struct stat before, after;
	if (fd < 0 || fstat(fd, &before) < 0)
		tgt_fail("open %s: %s", path, strerror(errno));
	tgt_ready();
	tgt_wait();
	if (fstat(fd, &after) < 0 || after.st_rdev != before.st_rdev)
		tgt_fail("fd %d is no longer %s", fd, path);
	tgt_pass();
}

static void run_async(void)
{
	int fd = inotify_init1(0);
	if (fd < 0 || fcntl(fd, F_SETOWN, getpid()) < 0 || fcntl(fd, F_SETSIG, SIGRTMIN + 3) < 0 ||
	    fcntl(fd, F_SETFL, O_ASYNC) < 0)
		tgt_fail("inotify with O_ASYNC: %s", strerror(errno));
	tgt_ready();
	tgt_wait();
	if (!(fcntl(fd, F_GETFL) & O_ASYNC) || fcntl(fd, F_GETOWN) != getpid() || fcntl(fd, F_GETSIG) != SIGRTMIN + 3)
		tgt_fail("O_ASYNC, its owner or signal changed");
	tgt_pass();
}

/* include/uapi/linux/mount.h */
#define FSCONFIG_CMD_CREATE 6

static void run_detached(void)
{
	int fs = syscall(SYS_fsopen, "tmpfs", 0);
	if (fs < 0 || syscall(SYS_fsconfig, fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
		tgt_fail("fsopen tmpfs: %s", strerror(errno));
	int mnt = syscall(SYS_fsmount, fs, 0, 0);
	if (mnt < 0)
		tgt_fail("fsmount: %s", strerror(errno));
	int fd = openat(mnt, "file", O_RDWR | O_CREAT, 0600);
	if (fd < 0 || write(fd, "detached", 8) != 8)
		tgt_fail("create a file on the detached tmpfs: %s", strerror(errno));
	/* The file alone keeps the mount. */
	close(mnt);
	close(fs);
	tgt_ready();
	tgt_wait();
	char buf[8];
	if (pread(fd, buf, 8, 0) != 8 || memcmp(buf, "detached", 8) != 0)
		tgt_fail("the file on the detached tmpfs lost its contents");
	tgt_pass();
}

static void run_ldt(void)
{
	struct user_desc d;
	memset(&d, 0, sizeof(d));
	d.entry_number = 0;
	d.limit = 0xfff;
	d.seg_32bit = 1;
	d.useable = 1;
	if (syscall(SYS_modify_ldt, 1, &d, sizeof(d)) != 0)
		tgt_fail("modify_ldt write: %s", strerror(errno));
	tgt_ready();
	tgt_wait();
	unsigned char buf[8];
	if ((int)syscall(SYS_modify_ldt, 0, buf, sizeof(buf)) != sizeof(buf))
		tgt_fail("modify_ldt read: %s", strerror(errno));
	/* limit 0xfff in bits 0-15 of the descriptor (Intel SDM 3.4.5). */
	if (buf[0] != 0xff || buf[1] != 0x0f)
		tgt_fail("LDT entry 0 lost its limit");
	tgt_pass();
}

static void run_tracer(const char *arg)
{
	pid_t pid = atoi(arg);
	if (ptrace(PTRACE_SEIZE, pid, NULL, NULL) < 0)
		tgt_fail("PTRACE_SEIZE %d: %s", pid, strerror(errno));
	tgt_ready();
	tgt_wait();
	char path[64], buf[4096];
	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	int f = open(path, O_RDONLY);
	ssize_t n = f < 0 ? -1 : read(f, buf, sizeof(buf) - 1);
	if (n <= 0)
		tgt_fail("read %s: %s", path, strerror(errno));
	buf[n] = 0;
	char *t = strstr(buf, "TracerPid:");
	if (!t || atoi(t + 10) != getpid())
		tgt_fail("pid %d is no longer traced by this process", pid);
	tgt_pass();
}

/* arch/x86/include/uapi/asm/prctl.h; the xsave feature number of tile
 * data, arch/x86/include/asm/fpu/types.h. */
#define ARCH_GET_XCOMP_PERM 0x1022
#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18
#define ARCH_GET_UNTAG_MASK 0x4001
#define ARCH_ENABLE_TAGGED_ADDR 0x4002
#define LAM_U57_BITS 6

static void run_pkey(void)
{
	char *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int key = syscall(SYS_pkey_alloc, 0, 0);
	if (page == MAP_FAILED || key < 0 || syscall(SYS_pkey_mprotect, page, 4096, PROT_READ | PROT_WRITE, key) < 0)
		tgt_fail("pkey_alloc, pkey_mprotect: %s", strerror(errno));
	page[0] = 1;
	tgt_ready();
	tgt_wait();
	/* Still allocated: pkey_free fails with EINVAL on a key that is not
	 * (man 2 pkey_alloc). */
	if (page[0] != 1 || syscall(SYS_pkey_free, key) < 0)
		tgt_fail("protection key %d lost: %s", key, strerror(errno));
	tgt_pass();
}

static void run_amx(void)
{
	unsigned long long perm = 0;
	if (syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) < 0)
		tgt_fail("ARCH_REQ_XCOMP_PERM: %s", strerror(errno));
	tgt_ready();
	tgt_wait();
	if (syscall(SYS_arch_prctl, ARCH_GET_XCOMP_PERM, &perm) < 0 || !(perm & (1ULL << XFEATURE_XTILEDATA)))
		tgt_fail("AMX permission lost (%#llx)", perm);
	tgt_pass();
}

static void run_lam(void)
{
	unsigned long mask = 0;
	if (syscall(SYS_arch_prctl, ARCH_ENABLE_TAGGED_ADDR, LAM_U57_BITS) < 0)
		tgt_fail("ARCH_ENABLE_TAGGED_ADDR: %s", strerror(errno));
	tgt_ready();
	tgt_wait();
	if (syscall(SYS_arch_prctl, ARCH_GET_UNTAG_MASK, &mask) < 0 || mask == ~0UL)
		tgt_fail("LAM lost (untag mask %#lx)", mask);
	tgt_pass();
}

static void run_epoll_disarmed(void)
{
	int p[2];
	struct epoll_event ev = { .events = EPOLLIN | EPOLLONESHOT, .data.u64 = 0x0e };
	int ep = epoll_create1(0);
	if (ep < 0 || pipe(p) < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev) < 0 || write(p[1], "x", 1) != 1)
		tgt_fail("epoll: %s", strerror(errno));
	if (epoll_wait(ep, &ev, 1, 0) != 1)
		tgt_fail("the one-shot watch did not fire");
	tgt_ready();
	tgt_wait();
	/* Still disarmed: the pipe is readable (and hangs up), unreported. */
	close(p[1]);
	if (epoll_wait(ep, &ev, 1, 0) != 0)
		tgt_fail("the disarmed one-shot watch reported events %#x", ev.events);
	ev.events = EPOLLIN | EPOLLONESHOT;
	if (epoll_ctl(ep, EPOLL_CTL_MOD, p[0], &ev) < 0 || epoll_wait(ep, &ev, 1, 0) != 1)
		tgt_fail("the one-shot watch, re-armed, did not report the pipe");
	tgt_pass();
}

static void run_inotify_queued(void)
{
	char dir[] = "/tmp/gocr-refusedstate-XXXXXX", path[64];
	int fd = inotify_init1(IN_NONBLOCK);
	if (!mkdtemp(dir) || fd < 0 || inotify_add_watch(fd, dir, IN_CREATE) != 1)
		tgt_fail("inotify: %s", strerror(errno));
	snprintf(path, sizeof(path), "%s/made", dir);
	int f = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (f < 0)
		tgt_fail("create %s: %s", path, strerror(errno));
	close(f);
	unlink(path);
	rmdir(dir);
	int queued = 0;
	if (ioctl(fd, FIONREAD, &queued) < 0 || queued == 0)
		tgt_fail("no inotify event queued");
	tgt_ready();
	tgt_wait();
	/* The IN_CREATE is still the first event. */
	union {
		struct inotify_event ev;
		char buf[4096];
	} u;
	if (read(fd, u.buf, sizeof(u.buf)) < (ssize_t)sizeof(u.ev) || u.ev.wd != 1 || u.ev.mask != IN_CREATE ||
	    strcmp(u.ev.name, "made") != 0)
		tgt_fail("the queued IN_CREATE event is gone");
	tgt_pass();
}

/* The test set fs.suid_dumpable to 2: a change of effective gid now
 * leaves the process dumpable in mode 2 (kernel/cred.c commit_creds). */
static void run_dumpable2(void)
{
	if (setresgid(65534, 65534, 65534) < 0)
		tgt_fail("setresgid: %s", strerror(errno));
	if (prctl(PR_GET_DUMPABLE) != 2)
		tgt_fail("PR_GET_DUMPABLE %d, want 2 (is fs.suid_dumpable 2?)", prctl(PR_GET_DUMPABLE));
	tgt_ready();
	tgt_wait();
	if (prctl(PR_GET_DUMPABLE) != 2)
		tgt_fail("PR_GET_DUMPABLE %d, want 2", prctl(PR_GET_DUMPABLE));
	tgt_pass();
}

/* A child dumps core into a directory of its own (core_pattern "core",
 * as the test checks) and stays a zombie until the target reaps it. */
static void run_zombie_core(void)
{
	char dir[] = "/tmp/gocr-refusedstate-XXXXXX", path[64], stat[64], buf[512];
	if (!mkdtemp(dir))
		tgt_fail("mkdtemp: %s", strerror(errno));
	pid_t pid = fork();
	if (pid < 0)
		tgt_fail("fork: %s", strerror(errno));
	if (pid == 0) {
		struct rlimit rl = { RLIM_INFINITY, RLIM_INFINITY };
		if (chdir(dir) < 0 || setrlimit(RLIMIT_CORE, &rl) < 0)
			_exit(3);
		abort();
	}
	/* Wait for the zombie: stat's state, then its exit_code (man 5
	 * proc_pid_stat, field 52) with the core bit. */
	snprintf(stat, sizeof(stat), "/proc/%d/stat", pid);
	for (int i = 0;; i++) {
		int f = open(stat, O_RDONLY | O_CLOEXEC);
		ssize_t n = f < 0 ? -1 : read(f, buf, sizeof(buf) - 1);
		if (f >= 0)
			close(f);
		if (n <= 0)
			tgt_fail("read %s: %s", stat, strerror(errno));
		buf[n] = 0;
		char *p = strrchr(buf, ')');
		if (p && p[2] == 'Z') {
			char *last = strrchr(buf, ' ');
			if (!(atoi(last + 1) & 0x80))
				tgt_fail("the child died without dumping core (exit code %s)", last + 1);
			break;
		}
		if (i > 5000)
			tgt_fail("the child %d is not a zombie after 5 s", pid);
		usleep(1000);
	}
	tgt_ready();
	tgt_wait();
	int st;
	if (waitpid(pid, &st, 0) != pid)
		tgt_fail("waitpid %d: %s", pid, strerror(errno));
	snprintf(path, sizeof(path), "%s/core", dir);
	unlink(path);
	rmdir(dir);
	if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGABRT || !WCOREDUMP(st))
		tgt_fail("the child's status is %#x, want SIGABRT with a core dumped", st);
	tgt_pass();
}

/* A /proc file's open file description in two processes: each restored
 * process reopens its own, so they could not share it again. The child
 * checks its offset moves with the parent's. */
static void run_proc_shared(void)
{
	int fd = open("/proc/self/stat", O_RDONLY);
	if (fd < 0)
		tgt_fail("open /proc/self/stat: %s", strerror(errno));
	pid_t pid = fork();
	if (pid < 0)
		tgt_fail("fork: %s", strerror(errno));
	if (pid == 0) {
		for (;;)
			pause();
	}
	tgt_ready();
	tgt_wait();
	char path[64], buf[256];
	if (lseek(fd, 5, SEEK_SET) != 5)
		tgt_fail("lseek: %s", strerror(errno));
	snprintf(path, sizeof(path), "/proc/%d/fdinfo/%d", (int)pid, fd);
	int f = open(path, O_RDONLY);
	ssize_t n = f < 0 ? -1 : read(f, buf, sizeof(buf) - 1);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	if (n <= 0)
		tgt_fail("read %s: %s", path, strerror(errno));
	buf[n] = 0;
	if (strncmp(buf, "pos:\t5\n", 7) != 0)
		tgt_fail("the child's fd is not at the parent's offset 5: %s", buf);
	tgt_pass();
}

/* An fd on a /proc file of a process that has ended reads ESRCH, and
 * nothing opens under its directory: so it must stay after the failed
 * dump. */
static void run_proc_ended(const char *kind)
{
	int dir = strcmp(kind, "dir") == 0;
	pid_t pid = fork();
	if (pid < 0)
		tgt_fail("fork: %s", strerror(errno));
	if (pid == 0) {
		for (;;)
			pause();
	}
	char path[64], buf[16];
	snprintf(path, sizeof(path), dir ? "/proc/%d" : "/proc/%d/stat", (int)pid);
	int fd = open(path, dir ? O_RDONLY | O_DIRECTORY : O_RDONLY);
	if (fd < 0)
		tgt_fail("open %s: %s", path, strerror(errno));
	if (!dir && read(fd, buf, sizeof(buf)) != sizeof(buf))
		tgt_fail("read %s: %s", path, strerror(errno));
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	tgt_ready();
	tgt_wait();
	if (dir) {
		int f = openat(fd, "stat", O_RDONLY);
		if (f >= 0 || (errno != ENOENT && errno != ESRCH))
			tgt_fail("openat %s/stat after its process ended: fd %d, %s", path, f, strerror(errno));
	} else {
		ssize_t n = pread(fd, buf, sizeof(buf), 0);
		if (n >= 0 || errno != ESRCH)
			tgt_fail("read %s after its process ended: %zd, %s, want ESRCH", path, n, strerror(errno));
	}
	tgt_pass();
}

static int proc_thread_tid;

static void *proc_thread_main(void *arg)
{
	(void)arg;
	__atomic_store_n(&proc_thread_tid, (int)syscall(SYS_gettid), __ATOMIC_RELEASE);
	for (;;)
		pause();
	return NULL;
}

/* The thread's /proc file still shows it after the failed dump. */
static void run_proc_thread(const char *kind)
{
	pthread_t th;
	int err = pthread_create(&th, NULL, proc_thread_main, NULL);
	if (err)
		tgt_fail("pthread_create: %s", strerror(err));
	while (!__atomic_load_n(&proc_thread_tid, __ATOMIC_ACQUIRE)) {
		struct timespec ts = { 0, 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	char path[64], buf[4096], want[64];
	if (strcmp(kind, "task") == 0)
		snprintf(path, sizeof(path), "/proc/%d/task/%d/status", (int)getpid(), proc_thread_tid);
	else
		snprintf(path, sizeof(path), "/proc/%d/status", proc_thread_tid);
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		tgt_fail("open %s: %s", path, strerror(errno));
	tgt_ready();
	tgt_wait();
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
	if (n <= 0)
		tgt_fail("read %s: %s", path, strerror(errno));
	buf[n] = 0;
	snprintf(want, sizeof(want), "\nPid:\t%d\n", proc_thread_tid);
	if (!strstr(buf, want))
		tgt_fail("%s is not of thread %d:\n%s", path, proc_thread_tid, buf);
	tgt_pass();
}

/* A lease is kept with the file open: the target checks it still holds
 * it after the refused dump (man 2 fcntl, "Leases"). */
static void run_lease(void)
{
	char path[] = "/tmp/gocr-refusedstate-lease-XXXXXX";
	int fd = mkstemp(path);
	if (fd < 0)
		tgt_fail("mkstemp: %s", strerror(errno));
	close(fd);
	fd = open(path, O_RDONLY);
	if (fd < 0 || fcntl(fd, F_SETLEASE, F_RDLCK) < 0)
		tgt_fail("F_SETLEASE F_RDLCK: %s", strerror(errno));
	tgt_ready();
	tgt_wait();
	unlink(path);
	if (fcntl(fd, F_GETLEASE) != F_RDLCK)
		tgt_fail("the read lease is gone (F_GETLEASE %d)", fcntl(fd, F_GETLEASE));
	tgt_pass();
}

/* perf_event_open's attribute, its first fields (linux/perf_event.h);
 * the kernel takes a size of PERF_ATTR_SIZE_VER0 (64 bytes). */
struct perf_attr0 {
	uint32_t type, size;
	uint64_t config, sample_period, sample_type, read_format, flags;
	uint32_t wakeup_events, bp_type;
	uint64_t bp_addr;
};

static void run_fdkind(const char *kind)
{
	int fd = -1;
	if (strcmp(kind, "pidfd") == 0) {
		fd = (int)syscall(SYS_pidfd_open, getpid(), 0);
	} else if (strcmp(kind, "userfaultfd") == 0) {
		fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC);
	} else if (strcmp(kind, "fanotify") == 0) {
		fd = (int)syscall(SYS_fanotify_init, 0 /* FAN_CLASS_NOTIF */, O_RDONLY);
	} else if (strcmp(kind, "perf_event") == 0) {
		/* A software counter of this process's task clock. */
		struct perf_attr0 a = { .type = 1 /* PERF_TYPE_SOFTWARE */, .size = sizeof(a),
					.config = 1 /* PERF_COUNT_SW_TASK_CLOCK */ };
		fd = (int)syscall(SYS_perf_event_open, &a, 0, -1, -1, 0);
	} else {
		tgt_fail("unknown fd kind %s", kind);
	}
	if (fd < 0)
		tgt_fail("make a %s fd: %s", kind, strerror(errno));
	char link[64], before[256], after[256];
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	ssize_t n = readlink(link, before, sizeof(before) - 1);
	if (n < 0)
		tgt_fail("readlink %s: %s", link, strerror(errno));
	before[n] = 0;
	tgt_log("%s: fd %d is %s", kind, fd, before);
	tgt_ready();
	tgt_wait();
	n = readlink(link, after, sizeof(after) - 1);
	if (n < 0)
		tgt_fail("%s fd %d is gone: %s", kind, fd, strerror(errno));
	after[n] = 0;
	if (strcmp(before, after) != 0)
		tgt_fail("%s fd %d is %s, was %s", kind, fd, after, before);
	tgt_pass();
}

/* pty_wait_in waits until at least n bytes wait to be read at fd of a
 * pty: a poll pushes the driver's buffer into the line discipline first
 * (drivers/tty/n_tty.c n_tty_poll), TIOCINQ counts them. */
static void pty_wait_in(int fd, int n)
{
	for (int i = 0; i < 5000; i++) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int q = 0;
		poll(&p, 1, 1);
		if (ioctl(fd, TIOCINQ, &q) < 0)
			tgt_fail("TIOCINQ: %s", strerror(errno));
		if (q >= n)
			return;
	}
	tgt_fail("fewer than %d bytes arrived at the pty", n);
}

static void run_pty(const char *kind)
{
	pid_t notty_child = -1;
	int m = posix_openpt(O_RDWR | O_NOCTTY);
	if (m < 0 || grantpt(m) < 0 || unlockpt(m) < 0)
		tgt_fail("open a pty: %s", strerror(errno));
	int sl = open(ptsname(m), O_RDWR | O_NOCTTY);
	if (sl < 0)
		tgt_fail("open %s: %s", ptsname(m), strerror(errno));
	struct termios lock;
	int extra = -1;
	memset(&lock, 0, sizeof(lock));
	if (strcmp(kind, "lockedtermios") == 0) {
		/* Lock ECHO (man 2 ioctl_tty: a set bit in a field locks it). */
		lock.c_lflag = ECHO;
		if (ioctl(sl, TIOCSLCKTRMIOS, &lock) < 0)
			tgt_fail("TIOCSLCKTRMIOS: %s", strerror(errno));
	} else if (strcmp(kind, "pktstatus") == 0) {
		int on = 1;
		/* A flush of the slave's input queues TIOCPKT_FLUSHREAD for
		 * the master in packet mode (drivers/tty/pty.c pty_flush_buffer). */
		if (ioctl(m, TIOCPKT, &on) < 0 || tcflush(sl, TCIFLUSH) < 0)
			tgt_fail("packet mode status: %s", strerror(errno));
	} else if (strcmp(kind, "async") == 0) {
		if (fcntl(m, F_SETFL, O_ASYNC) < 0)
			tgt_fail("O_ASYNC on the master: %s", strerror(errno));
	} else if (strcmp(kind, "devtty") == 0 || strcmp(kind, "notty") == 0) {
		if (setsid() < 0)
			tgt_fail("setsid: %s", strerror(errno));
		if (strcmp(kind, "notty") == 0) {
			notty_child = fork();
			if (notty_child < 0)
				tgt_fail("fork: %s", strerror(errno));
			if (notty_child == 0)
				for (;;)
					pause();
		}
		if (ioctl(sl, TIOCSCTTY, 0) < 0)
			tgt_fail("TIOCSCTTY: %s", strerror(errno));
		if (strcmp(kind, "devtty") == 0 && (extra = open("/dev/tty", O_RDWR)) < 0)
			tgt_fail("open /dev/tty: %s", strerror(errno));
	} else if (strcmp(kind, "rdonly") == 0) {
		char path[64];
		snprintf(path, sizeof(path), "/proc/self/fd/%d", m);
		if ((extra = open(path, O_RDONLY | O_NOCTTY)) < 0)
			tgt_fail("open %s read-only: %s", path, strerror(errno));
	} else if (strcmp(kind, "ldisc") == 0) {
		int d = N_NULL;
		if (ioctl(sl, TIOCSETD, &d) < 0)
			tgt_fail("TIOCSETD N_NULL: %s", strerror(errno));
	} else if (strcmp(kind, "orphan") == 0) {
		if (write(sl, "abc", 3) != 3)
			tgt_fail("write to the slave: %s", strerror(errno));
		close(sl);
		sl = -1;
		pty_wait_in(m, 3);
	} else if (strcmp(kind, "ixany") == 0 || strcmp(kind, "ixon") == 0 ||
		   strcmp(kind, "extproc") == 0 || strcmp(kind, "full") == 0) {
		struct termios tio;
		if (tcgetattr(sl, &tio) < 0)
			tgt_fail("tcgetattr: %s", strerror(errno));
		cfmakeraw(&tio);
		if (strcmp(kind, "extproc") == 0)
			tio.c_lflag |= EXTPROC;
		if (tcsetattr(sl, TCSANOW, &tio) < 0)
			tgt_fail("tcsetattr: %s", strerror(errno));
		if (strcmp(kind, "extproc") == 0) {
			int on = 1;
			if (ioctl(m, TIOCPKT, &on) < 0)
				tgt_fail("TIOCPKT: %s", strerror(errno));
		}
		if (strcmp(kind, "full") == 0) {
			/* More than N_TTY_BUF_SIZE (drivers/tty/n_tty.c, 4096):
			 * the rest waits in the driver's buffer. */
			char buf[6000];
			memset(buf, 'f', sizeof(buf));
			if (write(m, buf, sizeof(buf)) != (ssize_t)sizeof(buf))
				tgt_fail("write to the master: %s", strerror(errno));
			pty_wait_in(sl, 4095);
		} else {
			/* The STOP character (^S by default) read as data while
			 * IXON is off, then IXON on. */
			if (write(m, "a\023b", 3) != 3)
				tgt_fail("write to the master: %s", strerror(errno));
			pty_wait_in(sl, 3);
			if (strcmp(kind, "ixon") == 0 || strcmp(kind, "ixany") == 0) {
				tio.c_iflag |= IXON;
				if (strcmp(kind, "ixany") == 0)
					tio.c_iflag |= IXANY;
				if (tcsetattr(sl, TCSANOW, &tio) < 0)
					tgt_fail("tcsetattr IXON: %s", strerror(errno));
			}
		}
	} else {
		tgt_fail("unknown pty kind %s", kind);
	}
	tgt_ready();
	tgt_wait();
	struct termios now;
	int d = -1;
	if (strcmp(kind, "ldisc") == 0 && (ioctl(sl, TIOCGETD, &d) < 0 || d != N_NULL))
		tgt_fail("the slave's line discipline is %d, want N_NULL", d);
	if (strcmp(kind, "orphan") == 0) {
		char buf[8];
		if (read(m, buf, sizeof(buf)) != 3 || memcmp(buf, "abc", 3) != 0)
			tgt_fail("the slave's bytes are gone from the master");
	}
	if (strcmp(kind, "ixany") == 0 || strcmp(kind, "ixon") == 0 || strcmp(kind, "extproc") == 0) {
		char buf[8];
		if (read(sl, buf, sizeof(buf)) != 3 || memcmp(buf, "a\023b", 3) != 0)
			tgt_fail("the bytes for the slave are gone");
	}
	if (strcmp(kind, "full") == 0) {
		char buf[6000];
		size_t got = 0;
		int fl = fcntl(sl, F_GETFL);
		fcntl(sl, F_SETFL, fl | O_NONBLOCK);
		while (got < sizeof(buf)) {
			pty_wait_in(sl, 1);
			ssize_t n = read(sl, buf, sizeof(buf));
			if (n < 0 && errno == EAGAIN)
				continue;
			if (n <= 0)
				tgt_fail("read the bytes for the slave: %s", n < 0 ? strerror(errno) : "end of file");
			for (ssize_t i = 0; i < n; i++)
				if (buf[i] != 'f')
					tgt_fail("byte %zu for the slave is %#x, want 'f'", got + i, buf[i]);
			got += n;
		}
		if (got != sizeof(buf))
			tgt_fail("%zu bytes for the slave, want %zu", got, sizeof(buf));
	}
	if (strcmp(kind, "lockedtermios") == 0 &&
	    (ioctl(sl, TIOCGLCKTRMIOS, &now) < 0 || now.c_lflag != ECHO))
		tgt_fail("the slave's termios lock is gone");
	if (strcmp(kind, "pktstatus") == 0) {
		struct pollfd pfd = { .fd = m, .events = POLLPRI };
		if (poll(&pfd, 1, 0) != 1 || !(pfd.revents & POLLPRI))
			tgt_fail("the packet-mode status byte is gone");
	}
	if (strcmp(kind, "rdonly") == 0 && (fcntl(extra, F_GETFL) & O_ACCMODE) != O_RDONLY)
		tgt_fail("the read-only master fd changed");
	if (strcmp(kind, "async") == 0 && !(fcntl(m, F_GETFL) & O_ASYNC))
		tgt_fail("O_ASYNC is off on the master");
	if (strcmp(kind, "devtty") == 0 && tcgetpgrp(extra) != getpgrp())
		tgt_fail("/dev/tty is no longer its terminal");
	if (strcmp(kind, "notty") == 0) {
		kill(notty_child, SIGKILL);
		waitpid(notty_child, NULL, 0);
		if (tcgetsid(sl) != getpid())
			tgt_fail("the pty is no longer its session's terminal");
	}
	tgt_pass();
}

static void run_devpts(const char *dir, const char *which)
{
	char path[4200];
	unsigned int n;
	int m, sl, unlock = 0;

	snprintf(path, sizeof(path), "%s/ptmx", dir);
	if ((m = open(path, O_RDWR | O_NOCTTY)) < 0)
		tgt_fail("open %s: %s", path, strerror(errno));
	if (ioctl(m, TIOCSPTLCK, &unlock) < 0 || ioctl(m, TIOCGPTN, &n) < 0)
		tgt_fail("unlock and index of %s: %s", path, strerror(errno));
	snprintf(path, sizeof(path), "%s/%u", dir, n);
	if ((sl = open(path, O_RDWR | O_NOCTTY)) < 0)
		tgt_fail("open %s: %s", path, strerror(errno));
	/* fds 3 and 4 now: WHICH to 3, the other to 60. */
	if (strcmp(which, "slave") == 0) {
		int t = dup(m);
		if (t < 0 || dup2(sl, m) < 0 || dup2(t, sl) < 0 || close(t) < 0)
			tgt_fail("swap the fds: %s", strerror(errno));
	}
	if (dup2(4, 60) < 0 || close(4) < 0)
		tgt_fail("move fd 4 to 60: %s", strerror(errno));
	m = strcmp(which, "slave") == 0 ? 60 : 3;
	sl = strcmp(which, "slave") == 0 ? 3 : 60;
	struct termios raw;
	if (tcgetattr(sl, &raw) < 0)
		tgt_fail("tcgetattr: %s", strerror(errno));
	cfmakeraw(&raw);
	if (tcsetattr(sl, TCSANOW, &raw) < 0)
		tgt_fail("tcsetattr: %s", strerror(errno));
	if (write(m, "d", 1) != 1)
		tgt_fail("write to the master: %s", strerror(errno));
	tgt_ready();
	tgt_wait();
	unsigned int now;
	char c;
	if (ioctl(m, TIOCGPTN, &now) < 0 || now != n)
		tgt_fail("the master's index is no longer %u", n);
	if (read(sl, &c, 1) != 1 || c != 'd')
		tgt_fail("the byte for the slave is gone");
	tgt_pass();
}

static void run_hugetlb(void)
{
	/* The default huge page size (man 5 proc_meminfo, Hugepagesize). */
	size_t size = 0;
	char line[256];
	FILE *f = fopen("/proc/meminfo", "r");
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "Hugepagesize: %zu kB", &size) == 1)
			break;
	if (f)
		fclose(f);
	if (size == 0)
		tgt_fail("no Hugepagesize in /proc/meminfo");
	size <<= 10;
	char *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
	if (p == MAP_FAILED)
		tgt_fail("mmap MAP_HUGETLB: %s", strerror(errno));
	memset(p, 'h', size);
	tgt_ready();
	tgt_wait();
	for (size_t i = 0; i < size; i += 4096)
		if (p[i] != 'h')
			tgt_fail("the huge page changed at byte %zu", i);
	tgt_pass();
}

static void run_group_orphan(void)
{
	if (setpgid(0, 0) < 0)
		tgt_fail("setpgid: %s", strerror(errno));
	pid_t orphan = tgt_fork_orphan(0);
	tgt_ready();
	tgt_wait();
	int in_group = getpgid(orphan) == getpgrp();
	kill(orphan, SIGKILL);
	if (!in_group)
		tgt_fail("the orphan %d left the group", orphan);
	tgt_pass();
}

int main(int argc, char **argv)
{
	tgt_init(argc, argv);
	if (argc < 3)
		tgt_fail("usage: refusedstate RESULT_PATH MODE [ARG]");
	mode = argv[2];
	if (strncmp(mode, "thread-", 7) == 0)
		run_thread_mode();
	else if (strcmp(mode, "pid-children") == 0)
		run_children_ns(CLONE_NEWPID);
	else if (strcmp(mode, "time-children") == 0)
		run_children_ns(CLONE_NEWTIME);
	else if (strcmp(mode, "time-split") == 0)
		run_time_split();
	else if (strcmp(mode, "epoll-outside") == 0)
		run_epoll_outside();
	else if (strcmp(mode, "chardev") == 0 && argc > 3)
		run_chardev(argv[3]);
	else if (strcmp(mode, "async") == 0)
		run_async();
	else if (strcmp(mode, "detached") == 0)
		run_detached();
	else if (strcmp(mode, "ldt") == 0)
		run_ldt();
	else if (strcmp(mode, "tracer") == 0 && argc > 3)
		run_tracer(argv[3]);
	else if (strcmp(mode, "pkey") == 0)
		run_pkey();
	else if (strcmp(mode, "amx") == 0)
		run_amx();
	else if (strcmp(mode, "lam") == 0)
		run_lam();
	else if (strcmp(mode, "epoll-disarmed") == 0)
		run_epoll_disarmed();
	else if (strcmp(mode, "inotify-queued") == 0)
		run_inotify_queued();
	else if (strcmp(mode, "dumpable2") == 0)
		run_dumpable2();
	else if (strcmp(mode, "zombie-core") == 0)
		run_zombie_core();
	else if (strcmp(mode, "proc-shared") == 0)
		run_proc_shared();
	else if (strcmp(mode, "lease") == 0)
		run_lease();
	else if (strcmp(mode, "proc-ended") == 0 && argc > 3)
		run_proc_ended(argv[3]);
	else if (strcmp(mode, "proc-thread") == 0 && argc > 3)
		run_proc_thread(argv[3]);
	else if (strcmp(mode, "fdkind") == 0 && argc > 3)
		run_fdkind(argv[3]);
	else if (strcmp(mode, "pty") == 0 && argc > 3)
		run_pty(argv[3]);
	else if (strcmp(mode, "devpts") == 0 && argc > 4)
		run_devpts(argv[3], argv[4]);
	else if (strcmp(mode, "hugetlb") == 0)
		run_hugetlb();
	else if (strcmp(mode, "group-orphan") == 0)
		run_group_orphan();
	tgt_fail("unknown mode %s", mode);
}
