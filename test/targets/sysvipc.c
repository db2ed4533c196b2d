/*
 * sysvipc: System V IPC objects a job of two processes uses (man 7 sysvipc),
 * each with state a restore must bring back:
 *
 *   segment A   key KEY_SHM, 10000 bytes, mode 0640, SHM_LOCK'ed, a pattern
 *               written; attached read-write by the parent (inherited by the
 *               child at the same address), and once more read-only
 *               (SHM_RDONLY) by the child: 3 attachments;
 *   segment B   IPC_PRIVATE, 3 pages, attached by the parent (and so by the
 *               child), then removed (IPC_RMID): it lives on through its
 *               attachments, SHM_DEST;
 *   sem set     key KEY_SEM, 3 semaphores set to {3, 0, 7}, then one semop
 *               (without SEM_UNDO) taking 1 from the first: {2, 0, 7};
 *   msg queue   key KEY_MSG, mode 0620, msg_qbytes lowered to 15000, five
 *               messages of types 5, 2, 5, 9 (empty) and 1 (4000 bytes).
 *
 * After the restore the parent checks every id still names its object (and
 * each key the same id), modes, sizes, nattch, SHM_DEST and SHM_LOCKED,
 * the segments' contents at their addresses, the semaphore values and
 * every message in order with its type; the child checks its read-only
 * attachment (and that it is read-only) and sees a write the parent makes
 * through A. Both detach with shmdt, which only a real attachment allows.
 *
 * The keys are made from the parent's PID (the test removes what a failed
 * run leaves). Mode "undo" adds a semop with SEM_UNDO, which a dump must
 * refuse: the target then checks nothing changed.
 *
 * Usage: sysvipc RESULT_PATH [undo]
 */
#include "target.h"

#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/wait.h>

#define KEY_SHM(pid) (0x6f630000 | ((pid) & 0xffff))
#define KEY_SEM(pid) (0x6f640000 | ((pid) & 0xffff))
#define KEY_MSG(pid) (0x6f650000 | ((pid) & 0xffff))
#define A_SIZE 10000
#define B_SIZE (3 * 4096)
#define QBYTES 15000

union semun {
	int val;
	struct semid_ds *buf;
	unsigned short *array;
};

struct msgdef {
	long type;
	int len;
	char fill;
};
static const struct msgdef msgs[] = {
	{ 5, 4, 'a' }, { 2, 3, 'b' }, { 5, 6, 'c' }, { 9, 0, 0 }, { 1, 4000, 'd' },
};
#define NMSGS (int)(sizeof(msgs) / sizeof(msgs[0]))

static int shm_a, shm_b, sem, msq;
static char *a_rw, *a_ro, *b;

static char pattern(int seg, long i) { return (char)(seg * 31 + i * 7 + i / 4096); }

static void check_pattern(const char *p, int seg, long n, const char *what)
{
	for (long i = 0; i < n; i++)
		if (p[i] != pattern(seg, i))
			tgt_fail("%s: byte %ld is %d, want %d", what, i, p[i], pattern(seg, i));
}

static void check_shm(int id, key_t key, size_t size, int mode, unsigned long nattch, const char *what)
{
	struct shmid_ds ds;
	if (shmctl(id, IPC_STAT, &ds) < 0)
		tgt_fail("%s: IPC_STAT of id %d: %s", what, id, strerror(errno));
	if (ds.shm_perm.__key != key || ds.shm_segsz != size || (int)ds.shm_perm.mode != mode ||
	    ds.shm_nattch != nattch || ds.shm_perm.uid != getuid())
		tgt_fail("%s: key %#x size %zu mode %#o nattch %lu uid %d, want %#x %zu %#o %lu %d", what,
			 ds.shm_perm.__key, ds.shm_segsz, ds.shm_perm.mode, ds.shm_nattch, ds.shm_perm.uid,
			 key, size, mode, nattch, getuid());
}

/* Whether the mapping at p is read-only and shared in /proc/self/maps. */
static const char *maps_perms(const void *p)
{
	static char perms[5];
	char line[512];
	FILE *f = fopen("/proc/self/maps", "r");
	if (!f)
		tgt_fail("open maps: %s", strerror(errno));
	perms[0] = 0;
	while (fgets(line, sizeof(line), f)) {
		unsigned long start;
		if (sscanf(line, "%lx-%*[0-9a-f] %4s", &start, perms) == 2 && start == (unsigned long)p)
			break;
		perms[0] = 0;
	}
	fclose(f);
	return perms;
}

static void child_main(int from_parent, int to_parent)
{
	char c;
	a_ro = shmat(shm_a, NULL, SHM_RDONLY);
	if (a_ro == (void *)-1)
		tgt_fail("child shmat SHM_RDONLY: %s", strerror(errno));
	if (write(to_parent, "r", 1) != 1)
		_exit(3);
	/* Asked after the restore: the parent has written 'W' at A[100]. */
	for (;;) {
		ssize_t n = read(from_parent, &c, 1);
		if (n == 1)
			break;
		if (n == 0 || errno != EINTR)
			_exit(4);
	}
	if (a_ro[100] != 'W' || a_rw[100] != 'W')
		_exit(10);
	for (long i = 0; i < A_SIZE; i++)
		if (i != 100 && a_ro[i] != pattern(0, i))
			_exit(13);
	if (strcmp(maps_perms(a_ro), "r--s") != 0 || strcmp(maps_perms(a_rw), "rw-s") != 0)
		_exit(11);
	if (shmdt(a_ro) < 0 || shmdt(a_rw) < 0)
		_exit(12);
	_exit(0);
}

int main(int argc, char **argv)
{
	tgt_init(argc, argv);
	int undo = argc > 2 && strcmp(argv[2], "undo") == 0;
	pid_t me = getpid();

	shm_a = shmget(KEY_SHM(me), A_SIZE, IPC_CREAT | IPC_EXCL | 0640);
	shm_b = shmget(IPC_PRIVATE, B_SIZE, IPC_CREAT | 0600);
	sem = semget(KEY_SEM(me), 3, IPC_CREAT | IPC_EXCL | 0600);
	msq = msgget(KEY_MSG(me), IPC_CREAT | IPC_EXCL | 0620);
	if (shm_a < 0 || shm_b < 0 || sem < 0 || msq < 0)
		tgt_fail("setup: get: %s", strerror(errno));
	a_rw = shmat(shm_a, NULL, 0);
	b = shmat(shm_b, NULL, 0);
	if (a_rw == (void *)-1 || b == (void *)-1)
		tgt_fail("setup: shmat: %s", strerror(errno));
	for (long i = 0; i < A_SIZE; i++)
		a_rw[i] = pattern(0, i);
	for (long i = 0; i < B_SIZE; i++)
		b[i] = pattern(1, i);
	if (shmctl(shm_a, SHM_LOCK, NULL) < 0)
		tgt_fail("setup: SHM_LOCK: %s", strerror(errno));
	if (shmctl(shm_b, IPC_RMID, NULL) < 0)
		tgt_fail("setup: IPC_RMID: %s", strerror(errno));

	unsigned short init[3] = { 3, 0, 7 };
	if (semctl(sem, 0, SETALL, (union semun){ .array = init }) < 0)
		tgt_fail("setup: SETALL: %s", strerror(errno));
	struct sembuf op = { .sem_num = 0, .sem_op = -1 };
	if (semop(sem, &op, 1) < 0)
		tgt_fail("setup: semop: %s", strerror(errno));
	if (undo) {
		struct sembuf u = { .sem_num = 2, .sem_op = -1, .sem_flg = SEM_UNDO };
		if (semop(sem, &u, 1) < 0)
			tgt_fail("setup: semop SEM_UNDO: %s", strerror(errno));
	}

	struct msqid_ds mds;
	if (msgctl(msq, IPC_STAT, &mds) < 0)
		tgt_fail("setup: msgctl IPC_STAT: %s", strerror(errno));
	mds.msg_qbytes = QBYTES;
	if (msgctl(msq, IPC_SET, &mds) < 0)
		tgt_fail("setup: msgctl IPC_SET: %s", strerror(errno));
	static struct {
		long type;
		char text[4096];
	} m;
	for (int i = 0; i < NMSGS; i++) {
		m.type = msgs[i].type;
		memset(m.text, msgs[i].fill, msgs[i].len);
		if (msgsnd(msq, &m, msgs[i].len, IPC_NOWAIT) < 0)
			tgt_fail("setup: msgsnd %d: %s", i, strerror(errno));
	}

	int down[2], up[2];
	if (pipe(down) < 0 || pipe(up) < 0)
		tgt_fail("setup: pipe: %s", strerror(errno));
	pid_t child = fork();
	if (child < 0)
		tgt_fail("setup: fork: %s", strerror(errno));
	if (child == 0) {
		/* Only the parent writes down: its end gone, the child ends. */
		close(down[1]);
		close(up[0]);
		child_main(down[0], up[1]);
	}
	close(down[0]);
	close(up[1]);
	char c;
	if (read(up[0], &c, 1) != 1)
		tgt_fail("setup: the child did not attach");

	tgt_ready();
	tgt_wait();

	/* Every id names its object still, and each key that id. */
	if (shmget(KEY_SHM(me), 0, 0) != shm_a || semget(KEY_SEM(me), 0, 0) != sem || msgget(KEY_MSG(me), 0) != msq)
		tgt_fail("a key names another id now: shm %d sem %d msg %d, want %d %d %d", shmget(KEY_SHM(me), 0, 0),
			 semget(KEY_SEM(me), 0, 0), msgget(KEY_MSG(me), 0), shm_a, sem, msq);
	check_shm(shm_a, KEY_SHM(me), A_SIZE, 0640 | SHM_LOCKED, 3, "segment A");
	/* The child inherited the parent's attachments (man 2 fork). */
	check_shm(shm_b, IPC_PRIVATE, B_SIZE, 0600 | SHM_DEST, 2, "segment B");
	check_pattern(a_rw, 0, A_SIZE, "segment A");
	check_pattern(b, 1, B_SIZE, "segment B");
	if (strcmp(maps_perms(a_rw), "rw-s") != 0 || strcmp(maps_perms(b), "rw-s") != 0)
		tgt_fail("attachments are %s and %s, want rw-s", maps_perms(a_rw), maps_perms(b));

	unsigned short vals[3];
	if (semctl(sem, 0, GETALL, (union semun){ .array = vals }) < 0)
		tgt_fail("GETALL: %s", strerror(errno));
	unsigned short want2 = undo ? 6 : 7;
	if (vals[0] != 2 || vals[1] != 0 || vals[2] != want2)
		tgt_fail("semaphores %d %d %d, want 2 0 %d", vals[0], vals[1], vals[2], want2);
	struct semid_ds sds;
	if (semctl(sem, 0, IPC_STAT, (union semun){ .buf = &sds }) < 0 || sds.sem_perm.mode != 0600 || sds.sem_nsems != 3)
		tgt_fail("semaphore set: mode %#o nsems %lu, want 0600 3", sds.sem_perm.mode, sds.sem_nsems);

	if (msgctl(msq, IPC_STAT, &mds) < 0)
		tgt_fail("msgctl IPC_STAT: %s", strerror(errno));
	if (mds.msg_qnum != NMSGS || mds.msg_qbytes != QBYTES || mds.msg_perm.mode != 0620)
		tgt_fail("queue: %lu messages, qbytes %lu, mode %#o; want %d, %d, 0620", mds.msg_qnum, mds.msg_qbytes,
			 mds.msg_perm.mode, NMSGS, QBYTES);
	for (int i = 0; i < NMSGS; i++) {
		ssize_t n = msgrcv(msq, &m, sizeof(m.text), 0, IPC_NOWAIT);
		if (n < 0)
			tgt_fail("msgrcv %d: %s", i, strerror(errno));
		if (m.type != msgs[i].type || n != msgs[i].len)
			tgt_fail("message %d: type %ld, %zd bytes; want %ld, %d", i, m.type, n, msgs[i].type, msgs[i].len);
		for (int j = 0; j < n; j++)
			if (m.text[j] != msgs[i].fill)
				tgt_fail("message %d: byte %d is %d", i, j, m.text[j]);
	}

	/* A write through A reaches the child's attachments. */
	a_rw[100] = 'W';
	if (write(down[1], "c", 1) != 1)
		tgt_fail("write to the child: %s", strerror(errno));
	int st;
	if (waitpid(child, &st, 0) != child)
		tgt_fail("waitpid: %s", strerror(errno));
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		tgt_fail("the child failed its checks (status %#x)", st);
	check_shm(shm_a, KEY_SHM(me), A_SIZE, 0640 | SHM_LOCKED, 1, "segment A after the child detached");
	if (shmdt(b) < 0 || shmdt(a_rw) < 0)
		tgt_fail("shmdt: %s", strerror(errno));
	shmctl(shm_a, IPC_RMID, NULL);
	semctl(sem, 0, IPC_RMID);
	msgctl(msq, IPC_RMID, NULL);
	tgt_pass();
}
