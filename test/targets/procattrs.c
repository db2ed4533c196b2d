/*
 * procattrs: the attributes of a process gocr restores: rlimits,
 * personality, the mm fields PR_SET_MM_MAP restores (code/data/brk/stack/
 * arg/env bounds in /proc/self/stat fields 26-28 and 45-51, man 5 proc;
 * the program break; auxv; /proc/self/exe and cmdline), plus prctl state
 * (name, child subreaper, no_new_privs, dumpable) and umask.
 * Everything is recorded before ready and must be identical after restore.
 *
 * As a child subreaper it also adopts an orphan: a child forks a
 * grandchild, which starts a session of its own (as a daemon does), and
 * exits, so the grandchild is reparented to the target (man 2 prctl,
 * PR_SET_CHILD_SUBREAPER). After the restore the orphan must still be the
 * target's child, in its own session, and be reaped by it.
 *
 * Its robust futex list (get_robust_list) must be where glibc set it,
 * and its rseq area still registered: rseq(2) registering glibc's area
 * again fails with EBUSY while it is, and succeeds where it is not.
 */
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/auxv.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include "target.h"
#if __has_include(<sys/rseq.h>)
#include <sys/rseq.h>
#endif

struct attrs {
	struct rlimit nofile, core, stack, nproc;
	int personality;
	char stat_fields[1024];
	void *brk;
	unsigned long auxv_pagesz, auxv_random, auxv_phdr, auxv_entry;
	char exe[4096];
	char cmdline[4096];
	ssize_t cmdline_len;
	char name[16];
	int pdeath, subreaper, nnp, dumpable;
	mode_t umask;
};

/* stat fields 26-28 (startcode, endcode, startstack) and 45-51
 * (start_data .. env_end), after the ")" that ends comm. */
static void stat_fields(char *out, size_t n)
{
	char buf[4096];
	int fd = open("/proc/self/stat", O_RDONLY);
	ssize_t r = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);
	if (fd >= 0)
		close(fd);
	if (r <= 0)
		tgt_fail("read /proc/self/stat: %s", strerror(errno));
	buf[r] = 0;
	char *p = strrchr(buf, ')');
	int field = 2;
	out[0] = 0;
	for (char *tok = strtok(p + 1, " \n"); tok; tok = strtok(NULL, " \n")) {
		field++;
		if ((field >= 26 && field <= 28) || (field >= 45 && field <= 51)) {
			strncat(out, tok, n - strlen(out) - 2);
			strncat(out, " ", n - strlen(out) - 1);
		}
	}
}

static void record(struct attrs *a)
{
	memset(a, 0, sizeof(*a));
	getrlimit(RLIMIT_NOFILE, &a->nofile);
	getrlimit(RLIMIT_CORE, &a->core);
	getrlimit(RLIMIT_STACK, &a->stack);
	getrlimit(RLIMIT_NPROC, &a->nproc);
	a->personality = personality(0xffffffff);
	stat_fields(a->stat_fields, sizeof(a->stat_fields));
	a->brk = sbrk(0);
	a->auxv_pagesz = getauxval(AT_PAGESZ);
	a->auxv_random = getauxval(AT_RANDOM);
	a->auxv_phdr = getauxval(AT_PHDR);
	a->auxv_entry = getauxval(AT_ENTRY);
	ssize_t n = readlink("/proc/self/exe", a->exe, sizeof(a->exe) - 1);
	if (n < 0)
		tgt_fail("readlink exe: %s", strerror(errno));
	int fd = open("/proc/self/cmdline", O_RDONLY);
	a->cmdline_len = fd < 0 ? -1 : read(fd, a->cmdline, sizeof(a->cmdline));
	if (fd >= 0)
		close(fd);
	prctl(PR_GET_NAME, a->name);
	prctl(PR_GET_PDEATHSIG, &a->pdeath);
	prctl(PR_GET_CHILD_SUBREAPER, &a->subreaper);
	a->nnp = prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0);
	a->dumpable = prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);
	a->umask = umask(0);
	umask(a->umask);
}

/* stat_pid reads field n (ppid 4, session 6) of /proc/PID/stat. */
static long stat_pid(pid_t pid, int n)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t r = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);
	if (fd >= 0)
		close(fd);
	if (r <= 0)
		tgt_fail("read %s: %s", path, strerror(errno));
	buf[r] = 0;
	char *p = strrchr(buf, ')') + 2; /* field 3 */
	for (int field = 3; field < n; field++)
		p = strchr(p, ' ') + 1;
	return strtol(p, NULL, 10);
}

/* rseq_registered tells whether glibc's rseq area (glibc 2.35 and
 * later: sys/rseq.h) is registered, registering it if it is not. */
static int rseq_registered(void)
{
#ifdef RSEQ_SIG
	void *area = (char *)__builtin_thread_pointer() + __rseq_offset;
	if (__rseq_size == 0)
		return -1; /* glibc did not register it (glibc.pthread.rseq=0) */
	if (syscall(SYS_rseq, area, 32, 0, RSEQ_SIG) == 0)
		return 0;
	if (errno != EBUSY)
		tgt_fail("rseq: %s", strerror(errno));
	return 1;
#else
	return -1;
#endif
}

static pid_t orphan;

/* adopt_orphan makes the orphan (its pid in orphan). */
static void adopt_orphan(void)
{
	orphan = tgt_fork_orphan(1);
	/* The grandchild was reparented before its parent became a zombie
	 * (kernel/exit.c exit_notify); its setsid may still be to come. */
	for (int i = 0; stat_pid(orphan, 6) != orphan; i++) {
		if (i == 5000)
			tgt_fail("the orphan %d did not start its own session within 5 s", orphan);
		usleep(1000);
	}
}

static void check_orphan(const char *when)
{
	if (stat_pid(orphan, 4) != getpid())
		tgt_fail("%s: the orphan %d has parent %ld, not the subreaper %d", when, orphan, stat_pid(orphan, 4), getpid());
	if (stat_pid(orphan, 6) != orphan)
		tgt_fail("%s: the orphan %d is in session %ld, not its own", when, orphan, stat_pid(orphan, 6));
}

int main(int argc, char **argv)
{
	static struct attrs before, after;
	struct rlimit rl;

	tgt_init(argc, argv);
	rl.rlim_cur = 517;
	getrlimit(RLIMIT_NOFILE, &rl);
	rl.rlim_cur = 517;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		tgt_fail("setrlimit NOFILE: %s", strerror(errno));
	rl.rlim_cur = 0;
	rl.rlim_max = 4096;
	setrlimit(RLIMIT_CORE, &rl);
	getrlimit(RLIMIT_STACK, &rl);
	rl.rlim_cur = 3 << 20;
	setrlimit(RLIMIT_STACK, &rl);
	/* A flag that only affects future execs, so it changes nothing here. */
	if (personality(PER_LINUX | ADDR_NO_RANDOMIZE) < 0)
		tgt_fail("personality: %s", strerror(errno));
	if (sbrk(3 * 4096 + 100) == (void *)-1) /* a break not on a page boundary */
		tgt_fail("sbrk: %s", strerror(errno));
	prctl(PR_SET_NAME, "pattrs-main");
	/* No PR_SET_PDEATHSIG: the restored root's parent is gocr, which
	 * exits right away with -d, so gocr does not restore the root's. */
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
	umask(0057);
	adopt_orphan();
	check_orphan("before the dump");
	void *robust_before, *robust_after;
	size_t robust_len_before, robust_len_after;
	if (syscall(SYS_get_robust_list, 0, &robust_before, &robust_len_before) < 0)
		tgt_fail("get_robust_list: %s", strerror(errno));
	int rseq_before = rseq_registered();
	if (rseq_before < 0)
		tgt_log("rseq: not checked, glibc has no rseq area");
	record(&before);
	tgt_ready();
	while (!got_term)
		pause();
	record(&after);
	if (syscall(SYS_get_robust_list, 0, &robust_after, &robust_len_after) < 0)
		tgt_fail("get_robust_list: %s", strerror(errno));
	if (robust_after != robust_before || robust_len_after != robust_len_before)
		tgt_fail("robust futex list %p (%zu bytes), was %p (%zu)", robust_after, robust_len_after, robust_before,
			 robust_len_before);
	if (rseq_before >= 0 && rseq_registered() != 1)
		tgt_fail("the rseq area is no longer registered");
	check_orphan("after the restore");
	int st;
	if (kill(orphan, SIGKILL) < 0 || waitpid(orphan, &st, 0) != orphan || !WIFSIGNALED(st))
		tgt_fail("the subreaper could not reap the orphan %d: %s", orphan, strerror(errno));

#define SAME(field, fmt) \
	if (memcmp(&before.field, &after.field, sizeof(before.field)) != 0) \
		tgt_fail(#field " changed: " fmt, before.field, after.field)
	SAME(nofile.rlim_cur, "%lu -> %lu");
	SAME(nofile.rlim_max, "%lu -> %lu");
	SAME(core.rlim_cur, "%lu -> %lu");
	SAME(core.rlim_max, "%lu -> %lu");
	SAME(stack.rlim_cur, "%lu -> %lu");
	SAME(nproc.rlim_cur, "%lu -> %lu");
	SAME(personality, "%#x -> %#x");
	SAME(brk, "%p -> %p");
	SAME(auxv_pagesz, "%lu -> %lu");
	SAME(auxv_random, "%#lx -> %#lx");
	SAME(auxv_phdr, "%#lx -> %#lx");
	SAME(auxv_entry, "%#lx -> %#lx");
	SAME(pdeath, "%d -> %d");
	SAME(subreaper, "%d -> %d");
	SAME(nnp, "%d -> %d");
	SAME(dumpable, "%d -> %d");
	SAME(umask, "%o -> %o");
	if (strcmp(before.stat_fields, after.stat_fields) != 0)
		tgt_fail("mm fields in /proc/self/stat changed: %s-> %s", before.stat_fields, after.stat_fields);
	if (strcmp(before.exe, after.exe) != 0)
		tgt_fail("/proc/self/exe changed: %s -> %s", before.exe, after.exe);
	if (before.cmdline_len != after.cmdline_len || memcmp(before.cmdline, after.cmdline, (size_t)before.cmdline_len) != 0)
		tgt_fail("/proc/self/cmdline changed");
	if (strcmp(before.name, after.name) != 0)
		tgt_fail("name changed: %s -> %s", before.name, after.name);
	/* The break still moves from where it was. */
	char *b = sbrk(4096);
	if (b != before.brk)
		tgt_fail("sbrk grew from %p, want %p", (void *)b, before.brk);
	b[4095] = 1;
	tgt_pass();
}
