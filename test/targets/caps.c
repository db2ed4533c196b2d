/*
 * caps: a process that changed its capabilities and credentials, with a
 * second thread that has them too (credentials are per thread, man 7
 * capabilities). Started as root with full capabilities.
 *
 *   root  stays uid 0 and drops CAP_SYS_MODULE, CAP_SYS_BOOT and
 *         CAP_MKNOD from its bounding set; makes CAP_NET_BIND_SERVICE and
 *         CAP_CHOWN inheritable and CAP_NET_BIND_SERVICE ambient; drops
 *         CAP_SYS_TIME and CAP_SYS_NICE from permitted and effective and
 *         CAP_KILL from effective only; sets its supplementary groups to
 *         {4242}; sets the securebits SECBIT_KEEP_CAPS, SECBIT_NOROOT,
 *         SECBIT_NOROOT_LOCKED and SECBIT_NO_CAP_AMBIENT_RAISE, and
 *         no_new_privs.
 *   user  becomes uid 1000 (real, effective, saved), gid 2000, groups
 *         {2001, 2002}, keeping some capabilities across the change
 *         (SECBIT_KEEP_CAPS): permitted CAP_NET_BIND_SERVICE,
 *         CAP_DAC_OVERRIDE (to write its result) and CAP_SETPCAP,
 *         inheritable and ambient CAP_NET_BIND_SERVICE, a bounding set
 *         without CAP_SYS_MODULE; securebits SECBIT_KEEP_CAPS and
 *         SECBIT_NO_SETUID_FIXUP|SECBIT_NO_SETUID_FIXUP_LOCKED; then it
 *         drops CAP_SETPCAP.
 *
 *   thread-caps, thread-securebits
 *         as root, but the second thread, alone, drops CAP_CHOWN from its
 *         effective set (a raw capset), or clears SECBIT_KEEP_CAPS: a dump
 *         refuses threads with credentials of their own, and the target
 *         checks afterwards that each thread still has its own.
 *
 * Both threads record every credential (capget's three sets, the bounding
 * set by PR_CAPBSET_READ, the ambient set by PR_CAP_AMBIENT_IS_SET,
 * PR_GET_SECUREBITS, PR_GET_NO_NEW_PRIVS, getresuid, getresgid,
 * getgroups) before ready, and again after SIGTERM; each must be
 * unchanged, in each thread.
 *
 * Usage: caps RESULT_PATH root|user|thread-caps|thread-securebits
 */
#include "target.h"

#include <grp.h>
#include <linux/capability.h>
#include <linux/securebits.h>
#include <pthread.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

struct creds {
	unsigned long long eff, prm, inh, bnd, amb;
	int securebits, nnp;
	uid_t uid[3];
	gid_t gid[3];
	int ngroups;
	gid_t groups[16];
};

static int last_cap;

static unsigned long long bit(int cap) { return 1ULL << cap; }

static void caps_get(unsigned long long *eff, unsigned long long *prm, unsigned long long *inh)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2];

	if (syscall(SYS_capget, &h, d) < 0)
		tgt_fail("capget: %s", strerror(errno));
	*eff = d[0].effective | (unsigned long long)d[1].effective << 32;
	*prm = d[0].permitted | (unsigned long long)d[1].permitted << 32;
	*inh = d[0].inheritable | (unsigned long long)d[1].inheritable << 32;
}

static void caps_set(unsigned long long eff, unsigned long long prm, unsigned long long inh)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2] = {
		{ (unsigned)eff, (unsigned)prm, (unsigned)inh },
		{ (unsigned)(eff >> 32), (unsigned)(prm >> 32), (unsigned)(inh >> 32) },
	};

	if (syscall(SYS_capset, &h, d) < 0)
		tgt_fail("capset eff %#llx prm %#llx inh %#llx: %s", eff, prm, inh, strerror(errno));
}

static void record(struct creds *c)
{
	memset(c, 0, sizeof(*c));
	caps_get(&c->eff, &c->prm, &c->inh);
	for (int cap = 0; cap <= last_cap; cap++) {
		if (prctl(PR_CAPBSET_READ, cap, 0, 0, 0) == 1)
			c->bnd |= bit(cap);
		if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, cap, 0, 0) == 1)
			c->amb |= bit(cap);
	}
	c->securebits = prctl(PR_GET_SECUREBITS, 0, 0, 0, 0);
	c->nnp = prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0);
	getresuid(&c->uid[0], &c->uid[1], &c->uid[2]);
	getresgid(&c->gid[0], &c->gid[1], &c->gid[2]);
	c->ngroups = getgroups(16, c->groups);
}

static void compare(const char *who, const struct creds *want, const struct creds *got)
{
#define SAME_SET(f, what) \
	if (got->f != want->f) \
		tgt_fail("thread %s: %s %#llx, want %#llx", who, what, got->f, want->f)
	SAME_SET(eff, "effective set");
	SAME_SET(prm, "permitted set");
	SAME_SET(inh, "inheritable set");
	SAME_SET(bnd, "bounding set");
	SAME_SET(amb, "ambient set");
	if (got->securebits != want->securebits)
		tgt_fail("thread %s: securebits %#x, want %#x", who, got->securebits, want->securebits);
	if (got->nnp != want->nnp)
		tgt_fail("thread %s: no_new_privs %d, want %d", who, got->nnp, want->nnp);
	for (int i = 0; i < 3; i++)
		if (got->uid[i] != want->uid[i] || got->gid[i] != want->gid[i])
			tgt_fail("thread %s: uids %d %d %d gids %d %d %d, want %d %d %d and %d %d %d", who,
				 got->uid[0], got->uid[1], got->uid[2], got->gid[0], got->gid[1], got->gid[2],
				 want->uid[0], want->uid[1], want->uid[2], want->gid[0], want->gid[1], want->gid[2]);
	if (got->ngroups != want->ngroups || memcmp(got->groups, want->groups, sizeof(gid_t) * (size_t)want->ngroups) != 0)
		tgt_fail("thread %s: %d supplementary groups (first %d), want %d (first %d)", who, got->ngroups,
			 got->ngroups > 0 ? (int)got->groups[0] : -1, want->ngroups,
			 want->ngroups > 0 ? (int)want->groups[0] : -1);
}

static void setup_root(void)
{
	unsigned long long eff, prm, inh;
	gid_t g = 4242;

	if (setgroups(1, &g) < 0)
		tgt_fail("setgroups: %s", strerror(errno));
	for (int cap = 0; cap <= last_cap; cap++)
		if (cap == CAP_SYS_MODULE || cap == CAP_SYS_BOOT || cap == CAP_MKNOD)
			if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0)
				tgt_fail("PR_CAPBSET_DROP %d: %s", cap, strerror(errno));
	caps_get(&eff, &prm, &inh);
	prm &= ~(bit(CAP_SYS_TIME) | bit(CAP_SYS_NICE));
	eff &= prm & ~bit(CAP_KILL);
	caps_set(eff, prm, bit(CAP_NET_BIND_SERVICE) | bit(CAP_CHOWN));
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_NET_BIND_SERVICE, 0, 0) < 0)
		tgt_fail("raise ambient: %s", strerror(errno));
	if (prctl(PR_SET_SECUREBITS, SECBIT_KEEP_CAPS | SECBIT_NOROOT | SECBIT_NOROOT_LOCKED |
					     SECBIT_NO_CAP_AMBIENT_RAISE, 0, 0, 0) < 0)
		tgt_fail("PR_SET_SECUREBITS: %s", strerror(errno));
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		tgt_fail("PR_SET_NO_NEW_PRIVS: %s", strerror(errno));
}

static void setup_user(void)
{
	unsigned long long keep = bit(CAP_NET_BIND_SERVICE) | bit(CAP_DAC_OVERRIDE) | bit(CAP_SETPCAP);
	gid_t g[2] = { 2001, 2002 };

	if (prctl(PR_CAPBSET_DROP, CAP_SYS_MODULE, 0, 0, 0) < 0)
		tgt_fail("PR_CAPBSET_DROP: %s", strerror(errno));
	if (prctl(PR_SET_SECUREBITS, SECBIT_KEEP_CAPS, 0, 0, 0) < 0)
		tgt_fail("PR_SET_SECUREBITS keep caps: %s", strerror(errno));
	if (setgroups(2, g) < 0 || setresgid(2000, 2000, 2000) < 0 || setresuid(1000, 1000, 1000) < 0)
		tgt_fail("become uid 1000: %s", strerror(errno));
	/* KEEP_CAPS kept the permitted set; the effective one is empty. */
	caps_set(keep, keep, bit(CAP_NET_BIND_SERVICE));
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_NET_BIND_SERVICE, 0, 0) < 0)
		tgt_fail("raise ambient: %s", strerror(errno));
	if (prctl(PR_SET_SECUREBITS, SECBIT_KEEP_CAPS | SECBIT_NO_SETUID_FIXUP | SECBIT_NO_SETUID_FIXUP_LOCKED, 0, 0,
		  0) < 0)
		tgt_fail("PR_SET_SECUREBITS: %s", strerror(errno));
	keep &= ~bit(CAP_SETPCAP);
	caps_set(keep, keep, bit(CAP_NET_BIND_SERVICE));
}

static struct creds before, thread_before, after_thread;
static volatile int check_now, thread_ready, thread_done;
static const char *mode;

static void *second_thread(void *arg)
{
	(void)arg;
	if (strcmp(mode, "thread-caps") == 0) {
		unsigned long long eff, prm, inh;
		caps_get(&eff, &prm, &inh);
		caps_set(eff & ~bit(CAP_CHOWN), prm, inh);
	} else if (strcmp(mode, "thread-securebits") == 0) {
		int bits = prctl(PR_GET_SECUREBITS, 0, 0, 0, 0);
		if (prctl(PR_SET_SECUREBITS, bits & ~SECBIT_KEEP_CAPS, 0, 0, 0) < 0)
			tgt_fail("PR_SET_SECUREBITS in the second thread: %s", strerror(errno));
	}
	record(&thread_before);
	__atomic_store_n(&thread_ready, 1, __ATOMIC_RELEASE);
	while (!check_now) {
		struct timespec ts = { 0, 5 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	record(&after_thread);
	__atomic_store_n(&thread_done, 1, __ATOMIC_RELEASE);
	return NULL;
}

int main(int argc, char **argv)
{
	struct creds mine;
	pthread_t th;
	char buf[16];
	int fd, err;
	ssize_t n;

	tgt_init(argc, argv);
	if (argc < 3)
		tgt_fail("usage: caps RESULT_PATH root|user|thread-caps|thread-securebits");
	mode = argv[2];
	fd = open("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC);
	n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);
	if (n <= 0)
		tgt_fail("read /proc/sys/kernel/cap_last_cap: %s", strerror(errno));
	buf[n] = 0;
	last_cap = atoi(buf);
	close(fd);
	if (getuid() != 0)
		tgt_fail("must start as root");
	if (strcmp(mode, "root") == 0 || strncmp(mode, "thread-", 7) == 0)
		setup_root();
	else if (strcmp(mode, "user") == 0)
		setup_user();
	else
		tgt_fail("unknown mode %s", mode);
	record(&before);
	/* Created after: a thread starts with its creator's credentials. */
	if ((err = pthread_create(&th, NULL, second_thread, NULL)) != 0)
		tgt_fail("pthread_create: %s", strerror(err));
	while (!__atomic_load_n(&thread_ready, __ATOMIC_ACQUIRE)) {
		struct timespec ts = { 0, 5 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	tgt_log("caps: eff %#llx prm %#llx inh %#llx bnd %#llx amb %#llx securebits %#x uid %d\n", before.eff,
		before.prm, before.inh, before.bnd, before.amb, before.securebits, before.uid[0]);
	tgt_ready();
	tgt_wait();
	record(&mine);
	compare("main", &before, &mine);
	check_now = 1;
	while (!__atomic_load_n(&thread_done, __ATOMIC_ACQUIRE)) {
		struct timespec ts = { 0, 5 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	compare("second", &thread_before, &after_thread);
	tgt_pass();
}
