/*
 * forkshare: a pre-forking parent whose children still share most of its
 * private anonymous memory copy on write, as a pre-forked server, an MPI
 * launcher or Python's multiprocessing have it.
 *
 * The parent fills REGION (64 MiB, MAP_PRIVATE|MAP_ANONYMOUS) with a
 * pattern, one value per word, then forks NCHILD children. Each child
 * writes a few pages of its own (CHANGED pages from page child*STRIDE)
 * and drops one (MADV_DONTNEED: it reads zeros since, where the parent
 * still has its page). The first child then forks a grandchild, which
 * inherits the child's memory and writes one page of its own. The parent
 * writes a few pages after the forks: the children keep the old ones.
 *
 * After restore every process checks every word of REGION against what
 * it must hold (its own writes, its dropped page, the pattern elsewhere).
 * SIGTERM to the parent is passed to the children, the first child
 * passes it to the grandchild; each sends a verdict record over a pipe to
 * the parent, which reports one PASS or FAIL.
 *
 * With "huge", REGION is MADV_HUGEPAGE: filled, it is transparent huge
 * pages where the kernel has them, which the children share until they
 * write a page of one (the kernel then splits the mapping of it, mm/
 * huge_memory.c do_huge_pmd_wp_page).
 *
 * With "small", REGION is 8 MiB.
 *
 * Usage: forkshare RESULT_PATH [huge|small]
 */
#include "target.h"

#include <stdint.h>
#include <sys/mman.h>
#include <sys/wait.h>

#define PAGE 4096UL
#define NPAGES (REGION / PAGE)
#define NCHILD 3
#define STRIDE (NPAGES / (NCHILD + 1)) /* pages between the children's own pages */
#define CHANGED 4   /* pages each child writes */
#define GRANDCHILD NCHILD

static uint64_t *region;
static uint64_t REGION = 64UL << 20;
static int me = -1; /* -1 the parent, 0..NCHILD-1 a child, GRANDCHILD */
static int verdict_w;
static pid_t kids[NCHILD + 1];
static int nkids;

struct verdict {
	int who;
	char msg[120];
};

static uint64_t pattern(uint64_t word)
{
	uint64_t x = word * 0x9E3779B97F4A7C15ULL + 0x5eed;
	x ^= x >> 31;
	return x ? x : 1;
}

/* What the process that wrote page p as `who` put in word w of it. */
static uint64_t written(int who, uint64_t w)
{
	return pattern(w) ^ ((uint64_t)(who + 2) << 56);
}

/* Pages the parent writes after the forks. */
static int parent_page(uint64_t p)
{
	return p >= NPAGES - 8;
}

static int own_page(int who, uint64_t p)
{
	if (who < 0 || who == GRANDCHILD)
		return 0;
	return p >= (uint64_t)who * STRIDE + 10 && p < (uint64_t)who * STRIDE + 10 + CHANGED;
}

static uint64_t dropped_page(int who)
{
	return (uint64_t)who * STRIDE + STRIDE / 2;
}

static uint64_t grandchild_page(void)
{
	return NCHILD * STRIDE + 77;
}

/* What word w of REGION holds for the process `who`. */
static uint64_t expected(int who, uint64_t w)
{
	uint64_t p = w * 8 / PAGE;
	if (who < 0)
		return parent_page(p) ? written(-1, w) : pattern(w);
	if (who == GRANDCHILD) {
		if (p == grandchild_page())
			return written(GRANDCHILD, w);
		who = 0; /* inherited the first child's memory */
	}
	if (p == dropped_page(who))
		return 0;
	if (own_page(who, p))
		return written(who, w);
	return pattern(w);
}

static void write_page(int who, uint64_t p)
{
	for (uint64_t w = p * PAGE / 8; w < (p + 1) * PAGE / 8; w++)
		region[w] = written(who, w);
}

static const char *name(int who)
{
	static char buf[32];
	if (who < 0)
		return "parent";
	if (who == GRANDCHILD)
		return "grandchild";
	snprintf(buf, sizeof(buf), "child %d", who);
	return buf;
}

/* A child sends its verdict and exits; the parent reports at once. */
__attribute__((format(printf, 1, 2), noreturn)) static void fail(const char *fmt, ...)
{
	struct verdict v = { .who = me };
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(v.msg, sizeof(v.msg), fmt, ap);
	va_end(ap);
	if (me < 0) {
		for (int i = 0; i < nkids; i++)
			kill(kids[i], SIGKILL);
		tgt_fail("parent: %s", v.msg);
	}
	if (write(verdict_w, &v, sizeof(v)) != sizeof(v))
		_exit(3);
	_exit(1);
}

static void verify(void)
{
	for (uint64_t w = 0; w < REGION / 8; w++)
		if (region[w] != expected(me, w))
			fail("%s: word %llu (page %llu) is %#llx, want %#llx", name(me), (unsigned long long)w,
			     (unsigned long long)(w * 8 / PAGE), (unsigned long long)region[w],
			     (unsigned long long)expected(me, w));
}

/* Passes SIGTERM on to the children and waits for them to end; returns
 * the status of the first that did not exit 0, or 0. */
static int end_children(void)
{
	int bad = 0;
	for (int i = 0; i < nkids; i++)
		if (kill(kids[i], SIGTERM) < 0)
			fail("%s: kill %d: %s", name(me), kids[i], strerror(errno));
	for (int i = 0; i < nkids; i++) {
		int st;
		pid_t r;
		while ((r = waitpid(kids[i], &st, 0)) < 0 && errno == EINTR)
			;
		if (r < 0)
			fail("%s: waitpid %d: %s", name(me), kids[i], strerror(errno));
		if ((!WIFEXITED(st) || WEXITSTATUS(st) != 0) && !bad)
			bad = st ? st : -1;
	}
	return bad;
}

__attribute__((noreturn)) static void child_main(int who, int ready_w)
{
	me = who;
	nkids = 0;
	if (who == GRANDCHILD) {
		write_page(who, grandchild_page());
	} else {
		for (uint64_t p = (uint64_t)who * STRIDE + 10; p < (uint64_t)who * STRIDE + 10 + CHANGED; p++)
			write_page(who, p);
		if (madvise((char *)region + dropped_page(who) * PAGE, PAGE, MADV_DONTNEED) < 0)
			fail("%s: madvise: %s", name(who), strerror(errno));
		if (who == 0) {
			pid_t pid = fork();
			if (pid < 0)
				fail("child 0: fork: %s", strerror(errno));
			if (pid == 0)
				child_main(GRANDCHILD, ready_w);
			kids[nkids++] = pid;
		}
	}
	if (write(ready_w, "x", 1) != 1)
		_exit(3);
	close(ready_w); /* its read end goes once the parent has read it */
	tgt_wait();
	verify();
	int bad = end_children();
	if (bad)
		fail("%s: its child ended with status %#x", name(me), bad);
	_exit(0);
}

int main(int argc, char **argv)
{
	int ready[2], verdict[2];

	tgt_init(argc, argv);
	if (argc > 2 && strcmp(argv[2], "small") == 0)
		REGION = 8UL << 20;
	region = mmap(NULL, REGION, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (region == MAP_FAILED)
		tgt_fail("mmap: %s", strerror(errno));
	if (argc > 2 && strcmp(argv[2], "huge") == 0 && madvise(region, REGION, MADV_HUGEPAGE) < 0)
		tgt_fail("madvise(MADV_HUGEPAGE): %s", strerror(errno));
	for (uint64_t w = 0; w < REGION / 8; w++)
		region[w] = pattern(w);
	if (pipe(ready) < 0 || pipe(verdict) < 0)
		tgt_fail("pipe: %s", strerror(errno));
	verdict_w = verdict[1];
	for (int i = 0; i < NCHILD; i++) {
		pid_t pid = fork();
		if (pid < 0)
			fail("fork: %s", strerror(errno));
		if (pid == 0) {
			close(ready[0]);
			close(verdict[0]);
			child_main(i, ready[1]);
		}
		kids[nkids++] = pid;
	}
	close(ready[1]);
	close(verdict[1]);
	for (uint64_t p = NPAGES - 8; p < NPAGES; p++)
		write_page(-1, p);
	for (int i = 0; i < NCHILD + 1; i++) {
		char c;
		if (read(ready[0], &c, 1) != 1)
			tgt_fail("a child died before it was ready");
	}
	close(ready[0]);
	tgt_ready();

	tgt_wait();
	verify();
	int bad = end_children();
	/* Every writer has ended: the read sees a verdict or EOF. */
	struct verdict v;
	if (read(verdict[0], &v, sizeof(v)) == sizeof(v))
		tgt_fail("%s", v.msg);
	if (bad)
		tgt_fail("parent: a child ended with status %#x", bad);
	tgt_pass();
}
