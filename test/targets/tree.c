/*
 * tree: a three-level tree of 20 processes that checks itself after restore.
 *
 *   root (session leader: setsid at start, so also its own group)
 *   ├── zombie  exits with status 42 at once and is never reaped before
 *   │           the dump
 *   ├── grp     setpgid(0,0): a second process group in the session
 *   │   ├── grp1, grp2            (in grp's group by inheritance)
 *   ├── joiner
 *   │   ├── join1                 setpgid(0, grp): joins grp's group
 *   │   └── join2, join3, join4
 *   ├── writer  wrote DATA_LEN pattern bytes into the data pipe (fd 60/61,
 *   │   │       F_SETPIPE_SZ 256 KiB, O_NONBLOCK), unread at dump time
 *   │   └── writer1, writer2
 *   ├── reader
 *   │   ├── reader1   reads the data pipe after restore: exactly DATA_LEN
 *   │   │             pattern bytes, then EAGAIN; pipe size still 256 KiB
 *   │   ├── shmw      after restore writes a fresh token into the shared
 *   │   │             anonymous memory, then sends it over the token pipe
 *   │   └── reader3
 *   └── shmr
 *       ├── shmr1     reads the token from the pipe and requires the same
 *       │             value in the shared memory: one object again
 *       └── shmr2
 *
 * The shared memory (MAP_SHARED|MAP_ANONYMOUS, mapped by the root before
 * any fork) holds a pattern the root wrote before forking and one slot per
 * process written at setup; every process checks all of them after restore.
 * Every process records its pid, ppid, pgid and sid at setup and checks them
 * after restore (the root's parent is whoever restored it, so not its ppid).
 *
 * SIGTERM to the root is passed down: the root signals its children, they
 * signal theirs. Each process sends a fixed-size verdict record to the root
 * over the verdict pipe (atomic: below PIPE_BUF); parents also check their
 * children's exit status. Before reaping anything the root checks that the
 * zombie is still state Z in /proc, then reaps it and checks status 42.
 * The root writes one PASS/FAIL; on FAIL it SIGKILLs every process first.
 *
 * Usage: tree RESULT_PATH
 */
#include "target.h"

#include <poll.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/wait.h>

#define NPROC 20
#define DATA_LEN 100000
#define PIPE_SIZE (256 << 10)
#define ZOMBIE_STATUS 42
#define PATTERN_LEN (16 << 10)

#define DATA_R 60
#define DATA_W 61
#define TOKEN_R 62
#define TOKEN_W 63
#define VERDICT_R 64
#define VERDICT_W 65
#define SETUP_R 66
#define SETUP_W 67

enum role { PLAIN, ZOMBIE, NEWGRP, JOINGRP, DATAWRITE, DATAREAD, SHMWRITE, SHMREAD };

struct node {
	const char *name;
	int parent;
	enum role role;
};

static const struct node nodes[NPROC] = {
	{ "root", -1, PLAIN },
	{ "zombie", 0, ZOMBIE },
	{ "grp", 0, NEWGRP },
	{ "grp1", 2, PLAIN },
	{ "grp2", 2, PLAIN },
	{ "joiner", 0, PLAIN },
	{ "join1", 5, JOINGRP },
	{ "join2", 5, PLAIN },
	{ "join3", 5, PLAIN },
	{ "join4", 5, PLAIN },
	{ "writer", 0, DATAWRITE },
	{ "writer1", 10, PLAIN },
	{ "writer2", 10, PLAIN },
	{ "reader", 0, PLAIN },
	{ "reader1", 13, DATAREAD },
	{ "shmw", 13, SHMWRITE },
	{ "reader3", 13, PLAIN },
	{ "shmr", 0, PLAIN },
	{ "shmr1", 17, SHMREAD },
	{ "shmr2", 17, PLAIN },
};
#define ZOMBIE_IDX 1
#define GRP_IDX 2

struct shared {
	unsigned char pattern[PATTERN_LEN];
	volatile uint64_t slot[NPROC];
	volatile pid_t pid[NPROC];
	volatile uint64_t token;
};

struct verdict {
	int idx;
	char msg[120];
};

static struct shared *shm;
static int me;                 /* index into nodes */
static pid_t pids[NPROC];      /* filled in as processes are forked */
static pid_t zombie_pid;
static pid_t rec_pid, rec_ppid, rec_pgid, rec_sid;
static char fail_msg[120];

static uint64_t slot_value(int idx, pid_t pid)
{
	return 0x5eed000000000000ULL ^ ((uint64_t)idx << 32) ^ (uint64_t)pid;
}

static void kill_all(void)
{
	for (int i = 1; i < NPROC; i++)
		if (i != ZOMBIE_IDX && pids[i] > 0)
			kill(pids[i], SIGKILL);
}

/* The root reports at once (killing the tree first); the others send
 * their verdict record and exit 1. */
__attribute__((format(printf, 1, 2), noreturn))
static void fail(const char *fmt, ...)
{
	struct verdict v = { .idx = me };
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(v.msg, sizeof(v.msg), fmt, ap);
	va_end(ap);
	if (me == 0) {
		kill_all();
		tgt_fail("root: %s", v.msg);
	}
	tgt_write_all(2, v.msg, strlen(v.msg));
	tgt_write_all(2, "\n", 1);
	if (write(VERDICT_W, &v, sizeof(v)) != sizeof(v))
		_exit(3);
	_exit(1);
}

static void record_ids(void)
{
	rec_pid = getpid();
	rec_ppid = getppid();
	rec_pgid = getpgid(0);
	rec_sid = getsid(0);
}

static void check_ids(void)
{
	if (getpid() != rec_pid)
		fail("%s: pid %d, want %d", nodes[me].name, getpid(), rec_pid);
	if (me != 0 && getppid() != rec_ppid)
		fail("%s: ppid %d, want %d", nodes[me].name, getppid(), rec_ppid);
	if (getpgid(0) != rec_pgid)
		fail("%s: pgid %d, want %d", nodes[me].name, getpgid(0), rec_pgid);
	if (getsid(0) != rec_sid)
		fail("%s: sid %d, want %d", nodes[me].name, getsid(0), rec_sid);
}

static void check_shared(void)
{
	for (int i = 0; i < PATTERN_LEN; i++)
		if (shm->pattern[i] != (unsigned char)(i * 13 + 7))
			fail("%s: shared pattern byte %d is %#x, want %#x", nodes[me].name, i,
			     shm->pattern[i], (unsigned char)(i * 13 + 7));
	if (shm->pid[me] != getpid())
		fail("%s: shared pid table says %d, want %d", nodes[me].name, shm->pid[me], getpid());
	for (int i = 0; i < NPROC; i++) {
		uint64_t want = i == ZOMBIE_IDX ? 0 : slot_value(i, shm->pid[i]);
		if ((i != ZOMBIE_IDX && shm->pid[i] <= 0) || shm->slot[i] != want)
			fail("%s: shared slot of %s is %#llx, want %#llx", nodes[me].name, nodes[i].name,
			     (unsigned long long)shm->slot[i], (unsigned long long)want);
	}
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static void data_byte_check(const unsigned char *buf, size_t off, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (buf[i] != (unsigned char)((off + i) * 7 + ((off + i) >> 10)))
			fail("%s: data pipe byte %zu is %#x, want %#x", nodes[me].name, off + i, buf[i],
			     (unsigned char)((off + i) * 7 + ((off + i) >> 10)));
}

static void role_setup(void)
{
	switch (nodes[me].role) {
	case NEWGRP:
		if (setpgid(0, 0) < 0)
			fail("grp: setpgid(0,0): %s", strerror(errno));
		break;
	case JOINGRP:
		if (setpgid(0, pids[GRP_IDX]) < 0)
			fail("join1: setpgid(0, %d): %s", pids[GRP_IDX], strerror(errno));
		break;
	case DATAWRITE: {
		static unsigned char buf[DATA_LEN];
		for (size_t i = 0; i < DATA_LEN; i++)
			buf[i] = (unsigned char)(i * 7 + (i >> 10));
		if (write(DATA_W, buf, DATA_LEN) != DATA_LEN)
			fail("writer: write %d bytes to the data pipe: %s", DATA_LEN, strerror(errno));
		break;
	}
	default:
		break;
	}
}

static void role_verify(void)
{
	switch (nodes[me].role) {
	case DATAREAD: {
		static unsigned char buf[DATA_LEN + 1];
		size_t got = 0;
		ssize_t n;
		int sz = fcntl(DATA_R, F_GETPIPE_SZ);

		if (sz != PIPE_SIZE)
			fail("reader1: data pipe size %d, want %d", sz, PIPE_SIZE);
		while (got < DATA_LEN) {
			n = read(DATA_R, buf + got, DATA_LEN - got);
			if (n <= 0)
				fail("reader1: data pipe read after %zu of %d bytes returned %zd (%s)", got,
				     DATA_LEN, n, n < 0 ? strerror(errno) : "EOF");
			data_byte_check(buf + got, got, (size_t)n);
			got += (size_t)n;
		}
		n = read(DATA_R, buf, 1);
		if (n >= 0 || errno != EAGAIN)
			fail("reader1: data pipe has more than %d bytes (read returned %zd)", DATA_LEN, n);
		break;
	}
	case DATAWRITE: {
		int sz = fcntl(DATA_W, F_GETPIPE_SZ);
		if (sz != PIPE_SIZE)
			fail("writer: data pipe size %d, want %d", sz, PIPE_SIZE);
		break;
	}
	case SHMWRITE: {
		uint64_t tok;
		if (getrandom(&tok, sizeof(tok), 0) != sizeof(tok))
			fail("shmw: getrandom: %s", strerror(errno));
		tok |= 1;
		shm->token = tok;
		__sync_synchronize();
		if (write(TOKEN_W, &tok, sizeof(tok)) != sizeof(tok))
			fail("shmw: write token: %s", strerror(errno));
		break;
	}
	case SHMREAD: {
		struct pollfd p = { .fd = TOKEN_R, .events = POLLIN };
		uint64_t tok;
		if (poll(&p, 1, 5000) != 1)
			fail("shmr1: no token from shmw within 5 s");
		if (read(TOKEN_R, &tok, sizeof(tok)) != sizeof(tok))
			fail("shmr1: read token: %s", strerror(errno));
		__sync_synchronize();
		if (shm->token != tok)
			fail("shmr1: shared memory token %#llx, shmw sent %#llx: not one object",
			     (unsigned long long)shm->token, (unsigned long long)tok);
		break;
	}
	default:
		break;
	}
}

/* Waits for the verdict-less exit of each of this process's children. */
static void reap_children(void)
{
	for (int i = 1; i < NPROC; i++) {
		int status;
		if (nodes[i].parent != me || i == ZOMBIE_IDX)
			continue;
		if (waitpid(pids[i], &status, 0) != pids[i])
			fail("%s: waitpid %s (%d): %s", nodes[me].name, nodes[i].name, pids[i], strerror(errno));
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			fail("%s: child %s exited with status %#x", nodes[me].name, nodes[i].name, status);
	}
}

static void signal_children(void)
{
	for (int i = 1; i < NPROC; i++)
		if (nodes[i].parent == me && i != ZOMBIE_IDX && kill(pids[i], SIGTERM) < 0)
			fail("%s: SIGTERM %s (%d): %s", nodes[me].name, nodes[i].name, pids[i], strerror(errno));
}

static void spawn_children(void);

/* Body of every process but the root. */
__attribute__((noreturn))
static void node_main(void)
{
	struct verdict v = { .idx = me };
	char c = 1;

	if (nodes[me].role == ZOMBIE)
		_exit(ZOMBIE_STATUS);
	role_setup();
	record_ids();
	spawn_children();
	shm->pid[me] = getpid();
	shm->slot[me] = slot_value(me, getpid());
	if (write(SETUP_W, &c, 1) != 1)
		_exit(4);
	tgt_wait();
	signal_children();
	check_ids();
	check_shared();
	role_verify();
	reap_children();
	strcpy(v.msg, "ok");
	if (write(VERDICT_W, &v, sizeof(v)) != sizeof(v))
		_exit(3);
	_exit(0);
}

static void spawn_children(void)
{
	for (int i = 1; i < NPROC; i++) {
		pid_t pid;
		if (nodes[i].parent != me)
			continue;
		pid = fork();
		if (pid < 0)
			fail("%s: fork %s: %s", nodes[me].name, nodes[i].name, strerror(errno));
		if (pid == 0) {
			me = i;
			node_main();
		}
		pids[i] = pid;
		/* The shell's trick: set the child's group from both sides, so
		 * a later sibling can join it without a race. */
		if (nodes[i].role == NEWGRP && setpgid(pid, pid) < 0)
			fail("setpgid(%d, %d): %s", pid, pid, strerror(errno));
	}
}

static char proc_state(pid_t pid)
{
	char path[64], buf[512], *p;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	p = strrchr(buf, ')');
	return p && p[1] && p[2] ? p[2] : 0;
}

static void place_pipe(int want_r, int want_w, int flags)
{
	int p[2];
	if (pipe2(p, flags) < 0)
		tgt_fail("pipe2: %s", strerror(errno));
	/* Above every fd pipe2 can return here, so the dups do not collide. */
	if (dup3(p[0], want_r, O_CLOEXEC) < 0 || dup3(p[1], want_w, O_CLOEXEC) < 0)
		tgt_fail("dup3 pipe: %s", strerror(errno));
	close(p[0]);
	close(p[1]);
}

int main(int argc, char **argv)
{
	struct verdict v;
	char pidline[64];
	int status, got;

	tgt_init(argc, argv);
	if (setsid() < 0)
		tgt_fail("setsid: %s", strerror(errno));
	record_ids();
	shm = mmap(NULL, sizeof(*shm), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (shm == MAP_FAILED)
		tgt_fail("mmap shared: %s", strerror(errno));
	for (int i = 0; i < PATTERN_LEN; i++)
		shm->pattern[i] = (unsigned char)(i * 13 + 7);
	place_pipe(DATA_R, DATA_W, O_NONBLOCK);
	if (fcntl(DATA_W, F_SETPIPE_SZ, PIPE_SIZE) != PIPE_SIZE)
		tgt_fail("F_SETPIPE_SZ %d: %s", PIPE_SIZE, strerror(errno));
	place_pipe(TOKEN_R, TOKEN_W, 0);
	place_pipe(VERDICT_R, VERDICT_W, 0);
	place_pipe(SETUP_R, SETUP_W, 0);

	/* The root forks its children; each of them forks its own. pids[]
	 * of grandchildren is only known to their parent and, through the
	 * setup records, to the root. */
	me = 0;
	pids[0] = getpid();
	shm->pid[0] = getpid();
	shm->slot[0] = slot_value(0, getpid());
	spawn_children();
	zombie_pid = pids[ZOMBIE_IDX];
	for (got = 0; got < NPROC - 2; got++) {
		char c;
		struct pollfd p = { .fd = SETUP_R, .events = POLLIN };
		if (poll(&p, 1, 10000) != 1 || read(SETUP_R, &c, 1) != 1)
			fail("only %d of %d processes set up within 10 s", got, NPROC - 2);
	}
	/* Grandchildren's pids are known to the root through the shared
	 * table only (for kill_all). */
	for (int i = 1; i < NPROC; i++)
		if (i != ZOMBIE_IDX && !pids[i])
			pids[i] = shm->pid[i];
	for (int i = 0; i < 50 && proc_state(zombie_pid) != 'Z'; i++)
		sleep_ms(20);
	if (proc_state(zombie_pid) != 'Z')
		fail("zombie %d is in state %c, not Z", zombie_pid, proc_state(zombie_pid));
	for (int i = 0; i < NPROC; i++) {
		snprintf(pidline, sizeof(pidline), "%s %d\n", nodes[i].name, pids[i]);
		tgt_write_all(1, pidline, strlen(pidline));
	}
	tgt_ready();
	tgt_wait();

	/* The zombie first, before anything could reap it. */
	if (proc_state(zombie_pid) != 'Z')
		fail("zombie %d is in state %c after restore, want Z", zombie_pid, proc_state(zombie_pid) ?: '-');
	if (waitpid(zombie_pid, &status, WNOHANG) != zombie_pid)
		fail("waitpid(zombie %d, WNOHANG): %s", zombie_pid, strerror(errno));
	if (!WIFEXITED(status) || WEXITSTATUS(status) != ZOMBIE_STATUS)
		fail("zombie %d status %#x, want exit %d", zombie_pid, status, ZOMBIE_STATUS);
	signal_children();
	check_ids();
	check_shared();
	/* Root reaps its children after collecting every verdict. */
	for (got = 0; got < NPROC - 2; got++) {
		struct pollfd p = { .fd = VERDICT_R, .events = POLLIN };
		if (poll(&p, 1, 10000) != 1)
			fail("only %d of %d verdicts within 10 s", got, NPROC - 2);
		if (read(VERDICT_R, &v, sizeof(v)) != sizeof(v))
			fail("read verdict: %s", strerror(errno));
		v.msg[sizeof(v.msg) - 1] = 0;
		if (v.idx < 1 || v.idx >= NPROC)
			fail("verdict from unknown index %d", v.idx);
		if (strcmp(v.msg, "ok") != 0) {
			snprintf(fail_msg, sizeof(fail_msg), "%s", v.msg);
			fail("%s", fail_msg);
		}
	}
	reap_children();
	tgt_pass();
}
