/*
 * attrs: process and thread attributes come back as they were.
 *
 * The process (a session leader, so that its autogroup is its own):
 *   oom_score_adj 345, coredump_filter 0x7f, autogroup nice 7, audit
 *   loginuid 4321, THP disabled but where madvised (PR_SET_THP_DISABLE,
 *   PR_THP_DISABLE_EXCEPT_ADVISED where the kernel has it), KSM for the whole
 *   process (PR_SET_MEMORY_MERGE), a futex hash of 32 slots
 *   (PR_FUTEX_HASH, where the kernel has it), new mappings locked on
 *   fault (mlockall MCL_FUTURE|MCL_ONFAULT), NUMA policy MPOL_BIND with
 *   MPOL_F_STATIC_NODES on node 0 (every thread has it).
 * Each thread its own:
 *   main:  I/O priority best-effort 5, timer slack 123456 ns, memory
 *          errors killed early (PR_MCE_KILL_EARLY)
 *   idle:  I/O priority idle, timer slack 7777 ns, PR_MCE_KILL_LATE
 *   tsc:   PR_TSC_SIGSEGV, I/O priority best-effort 1 (it runs nothing
 *          that reads the TSC: no clock_gettime)
 * Each thread checks its own before the dump and after the restore.
 */
#include "target.h"

#include <pthread.h>
#include <semaphore.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

/* include/uapi/linux/ioprio.h, include/uapi/linux/mempolicy.h,
 * include/uapi/linux/prctl.h */
#define IOPRIO_WHO_PROCESS 1
#define IOPRIO_CLASS_BE 2
#define IOPRIO_CLASS_IDLE 3
#define IOPRIO(class, level) ((class) << 13 | (level))
#define MPOL_BIND 2
#define MPOL_F_STATIC_NODES (1 << 15)
#define TGT_PR_SET_MEMORY_MERGE 67
#define TGT_PR_GET_MEMORY_MERGE 68
#define TGT_PR_FUTEX_HASH 78
#define TGT_PR_FUTEX_HASH_SET_SLOTS 1
#define TGT_PR_FUTEX_HASH_GET_SLOTS 2
#define TGT_PR_THP_DISABLE_EXCEPT_ADVISED (1 << 1)

struct want {
	const char *name;
	int ioprio;
	unsigned long slack;
	int mce;
	int tsc; /* 0: leave it */
	volatile pid_t tid;
	sem_t check, checked;
	char err[512];
};
static struct want want[3];
static int futex_slots; /* what the process set, 0 if the kernel lacks it */
static int thp_disable = 1; /* what PR_GET_THP_DISABLE gives */
static int mempolicy_mode = MPOL_BIND | MPOL_F_STATIC_NODES;
static unsigned long mempolicy_nodes = 1;

static void werr(struct want *w, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (!w->err[0])
		vsnprintf(w->err, sizeof(w->err), fmt, ap);
	va_end(ap);
}

static void apply(struct want *w)
{
	w->tid = (pid_t)syscall(SYS_gettid);
	if (syscall(SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, w->ioprio) < 0)
		werr(w, "ioprio_set: %s", strerror(errno));
	if (prctl(PR_SET_TIMERSLACK, w->slack, 0, 0, 0) < 0)
		werr(w, "PR_SET_TIMERSLACK: %s", strerror(errno));
	if (prctl(PR_MCE_KILL, PR_MCE_KILL_SET, w->mce, 0, 0) < 0)
		werr(w, "PR_MCE_KILL: %s", strerror(errno));
	if (w->tsc && prctl(PR_SET_TSC, w->tsc, 0, 0, 0) < 0)
		werr(w, "PR_SET_TSC: %s", strerror(errno));
}

/* Each thread's own attributes, read by the thread itself: timer slack,
 * the MCE policy, TSC mode and memory policy cannot be read of another
 * thread (man 2 prctl, man 2 get_mempolicy). */
static void check_self(struct want *w, const char *when)
{
	long prio = syscall(SYS_ioprio_get, IOPRIO_WHO_PROCESS, 0);
	if (prio != w->ioprio)
		werr(w, "%s: %s has I/O priority %#lx, want %#x", when, w->name, prio, w->ioprio);
	long slack = prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0);
	if (slack != (long)w->slack)
		werr(w, "%s: %s has timer slack %ld, want %lu", when, w->name, slack, w->slack);
	int mce = prctl(PR_MCE_KILL_GET, 0, 0, 0, 0);
	if (mce != w->mce)
		werr(w, "%s: %s has PR_MCE_KILL_GET %d, want %d", when, w->name, mce, w->mce);
	int tsc = 0;
	if (prctl(PR_GET_TSC, &tsc, 0, 0, 0) < 0)
		werr(w, "%s: %s: PR_GET_TSC: %s", when, w->name, strerror(errno));
	if (tsc != (w->tsc ? w->tsc : PR_TSC_ENABLE))
		werr(w, "%s: %s has TSC mode %d, want %d", when, w->name, tsc, w->tsc ? w->tsc : PR_TSC_ENABLE);
	int mode = -1;
	unsigned long nodes[16] = {0};
	if (syscall(SYS_get_mempolicy, &mode, nodes, 16 * 64, 0, 0) < 0)
		werr(w, "%s: %s: get_mempolicy: %s", when, w->name, strerror(errno));
	else if (mode != mempolicy_mode || nodes[0] != mempolicy_nodes)
		werr(w, "%s: %s has memory policy %#x on nodes %#lx, want %#x on %#lx", when, w->name, mode, nodes[0],
		     mempolicy_mode, mempolicy_nodes);
}

static void *thread_main(void *arg)
{
	struct want *w = arg;
	apply(w);
	for (int round = 0; round < 2; round++) {
		sem_wait(&w->check);
		check_self(w, round == 0 ? "before the dump" : "after the restore");
		sem_post(&w->checked);
	}
	for (;;)
		pause();
	return NULL;
}

static void check_thread(struct want *w)
{
	sem_post(&w->check);
	while (sem_wait(&w->checked) < 0 && errno == EINTR)
		;
	if (w->err[0])
		tgt_fail("%s", w->err);
}

static long read_long(const char *path, int base)
{
	char buf[64];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		tgt_fail("open %s: %s", path, strerror(errno));
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		tgt_fail("read %s: %s", path, strerror(errno));
	buf[n] = 0;
	return strtol(buf, NULL, base);
}

static void write_text(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, text, strlen(text)) < 0)
		tgt_fail("write %s to %s: %s", text, path, strerror(errno));
	close(fd);
}

/* VmLck of /proc/self/status, in kB. */
static long locked_kb(void)
{
	static char buf[8192];
	int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);
	if (fd >= 0)
		close(fd);
	if (n <= 0)
		tgt_fail("read /proc/self/status: %s", strerror(errno));
	buf[n] = 0;
	char *p = strstr(buf, "VmLck:");
	if (!p)
		tgt_fail("/proc/self/status has no VmLck");
	return strtol(p + 6, NULL, 10);
}

static void check_process(const char *when)
{
	long v;
	if ((v = read_long("/proc/self/oom_score_adj", 10)) != 345)
		tgt_fail("%s: oom_score_adj is %ld, want 345", when, v);
	if ((v = read_long("/proc/self/coredump_filter", 16)) != 0x7f)
		tgt_fail("%s: coredump_filter is %#lx, want 0x7f", when, v);
	if ((v = read_long("/proc/self/loginuid", 10)) != 4321)
		tgt_fail("%s: loginuid is %ld, want 4321", when, v);
	char ag[128];
	int fd = open("/proc/self/autogroup", O_RDONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : read(fd, ag, sizeof(ag) - 1);
	if (fd >= 0)
		close(fd);
	if (n <= 0)
		tgt_fail("%s: read /proc/self/autogroup: %s", when, strerror(errno));
	ag[n] = 0;
	if (!strstr(ag, " nice 7\n"))
		tgt_fail("%s: autogroup is %s, want nice 7", when, ag);
	if ((v = prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0)) != thp_disable)
		tgt_fail("%s: PR_GET_THP_DISABLE is %ld, want %d", when, v, thp_disable);
	if ((v = prctl(TGT_PR_GET_MEMORY_MERGE, 0, 0, 0, 0)) != 1)
		tgt_fail("%s: PR_GET_MEMORY_MERGE is %ld, want 1", when, v);
	if (futex_slots && (v = prctl(TGT_PR_FUTEX_HASH, TGT_PR_FUTEX_HASH_GET_SLOTS, 0, 0, 0)) != futex_slots)
		tgt_fail("%s: the futex hash has %ld slots, want %d", when, v, futex_slots);
	/* A new mapping is locked (VmLck grows) but, with MCL_ONFAULT, not
	 * populated (mincore). */
	long before = locked_kb();
	void *m = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		tgt_fail("%s: mmap: %s", when, strerror(errno));
	long after = locked_kb();
	unsigned char resident = 1;
	if (mincore(m, 4096, &resident) < 0)
		tgt_fail("%s: mincore: %s", when, strerror(errno));
	munmap(m, 4096);
	if (after - before != 4 || resident)
		tgt_fail("%s: a new page is %ld kB more locked (want 4) and %sresident (want not): mlockall(MCL_FUTURE|MCL_ONFAULT) is gone",
			 when, after - before, resident ? "" : "not ");
}

int main(int argc, char **argv)
{
	tgt_init(argc, argv);

	if (setsid() < 0)
		tgt_fail("setsid: %s", strerror(errno));
	write_text("/proc/self/oom_score_adj", "345");
	write_text("/proc/self/coredump_filter", "0x7f");
	write_text("/proc/self/autogroup", "7");
	write_text("/proc/self/loginuid", "4321");
	/* Linux 6.18 can keep THP for mappings madvised for it; before,
	 * the flag is EINVAL and THP is off for all. */
	if (prctl(PR_SET_THP_DISABLE, 1, TGT_PR_THP_DISABLE_EXCEPT_ADVISED, 0, 0) == 0)
		thp_disable = 1 | TGT_PR_THP_DISABLE_EXCEPT_ADVISED;
	else if (prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0) < 0)
		tgt_fail("PR_SET_THP_DISABLE: %s", strerror(errno));
	if (prctl(TGT_PR_SET_MEMORY_MERGE, 1, 0, 0, 0) < 0)
		tgt_fail("PR_SET_MEMORY_MERGE: %s", strerror(errno));
	/* Linux 6.16; EINVAL before. Set before any thread, so it is the
	 * process's own size and not the one the kernel picks. */
	if (prctl(TGT_PR_FUTEX_HASH, TGT_PR_FUTEX_HASH_SET_SLOTS, 32, 0, 0) == 0)
		futex_slots = 32;
	if (syscall(SYS_set_mempolicy, mempolicy_mode, &mempolicy_nodes, 64 + 1) < 0)
		tgt_fail("set_mempolicy: %s", strerror(errno));
	if (mlockall(MCL_FUTURE | MCL_ONFAULT) < 0)
		tgt_fail("mlockall: %s", strerror(errno));

	want[0] = (struct want){ .name = "main", .ioprio = IOPRIO(IOPRIO_CLASS_BE, 5), .slack = 123456,
				 .mce = PR_MCE_KILL_EARLY };
	want[1] = (struct want){ .name = "idle", .ioprio = IOPRIO(IOPRIO_CLASS_IDLE, 0), .slack = 7777,
				 .mce = PR_MCE_KILL_LATE };
	want[2] = (struct want){ .name = "tsc", .ioprio = IOPRIO(IOPRIO_CLASS_BE, 1), .slack = 50000,
				 .mce = PR_MCE_KILL_EARLY, .tsc = PR_TSC_SIGSEGV };
	for (int i = 0; i < 3; i++)
		if (sem_init(&want[i].check, 0, 0) < 0 || sem_init(&want[i].checked, 0, 0) < 0)
			tgt_fail("sem_init: %s", strerror(errno));
	pthread_t th;
	for (int i = 1; i < 3; i++)
		if (pthread_create(&th, NULL, thread_main, &want[i]) != 0)
			tgt_fail("pthread_create");
	apply(&want[0]);
	if (want[0].err[0])
		tgt_fail("%s", want[0].err);
	check_self(&want[0], "before the dump");
	if (want[0].err[0])
		tgt_fail("%s", want[0].err);
	for (int i = 1; i < 3; i++)
		check_thread(&want[i]);
	check_process("before the dump");
	tgt_ready();
	tgt_wait();
	check_self(&want[0], "after the restore");
	if (want[0].err[0])
		tgt_fail("%s", want[0].err);
	for (int i = 1; i < 3; i++)
		check_thread(&want[i]);
	check_process("after the restore");
	tgt_pass();
}
