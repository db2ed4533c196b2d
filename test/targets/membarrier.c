/*
 * membarrier: the process registers for every expedited membarrier
 * command this kernel supports (MEMBARRIER_CMD_QUERY): global, private,
 * private with core serializing, private with rseq restart (man 2
 * membarrier). After the restore MEMBARRIER_CMD_GET_REGISTRATIONS (Linux
 * 6.3) gives the same registrations, and each private expedited command,
 * which fails with EPERM in a process not registered for it, works. A
 * second thread runs, so that the barriers have a thread to reach.
 *
 * Usage: membarrier RESULT_PATH
 */
#include "target.h"

#include <pthread.h>
#include <sys/syscall.h>

/* include/uapi/linux/membarrier.h */
enum {
	CMD_QUERY = 0,
	CMD_GLOBAL_EXPEDITED = 1 << 1,
	CMD_REGISTER_GLOBAL_EXPEDITED = 1 << 2,
	CMD_PRIVATE_EXPEDITED = 1 << 3,
	CMD_REGISTER_PRIVATE_EXPEDITED = 1 << 4,
	CMD_PRIVATE_EXPEDITED_SYNC_CORE = 1 << 5,
	CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE = 1 << 6,
	CMD_PRIVATE_EXPEDITED_RSEQ = 1 << 7,
	CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ = 1 << 8,
	CMD_GET_REGISTRATIONS = 1 << 9,
};

static long membarrier(int cmd)
{
	return syscall(SYS_membarrier, cmd, 0, 0);
}

static void *spin(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return NULL;
}

/* The registration commands, each with the command it allows. */
static const struct {
	int reg, cmd;
	const char *name;
} regs[] = {
	{ CMD_REGISTER_GLOBAL_EXPEDITED, CMD_GLOBAL_EXPEDITED, "GLOBAL_EXPEDITED" },
	{ CMD_REGISTER_PRIVATE_EXPEDITED, CMD_PRIVATE_EXPEDITED, "PRIVATE_EXPEDITED" },
	{ CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE, CMD_PRIVATE_EXPEDITED_SYNC_CORE, "PRIVATE_EXPEDITED_SYNC_CORE" },
	{ CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ, CMD_PRIVATE_EXPEDITED_RSEQ, "PRIVATE_EXPEDITED_RSEQ" },
};

static void check_commands(long want)
{
	long got = membarrier(CMD_GET_REGISTRATIONS);
	if (got != want)
		tgt_fail("MEMBARRIER_CMD_GET_REGISTRATIONS gives %#lx, want %#lx (errno %s)", got, want,
			 got < 0 ? strerror(errno) : "none");
	for (size_t i = 0; i < sizeof(regs) / sizeof(regs[0]); i++)
		if ((want & regs[i].reg) && membarrier(regs[i].cmd) != 0)
			tgt_fail("MEMBARRIER_CMD_%s: %s", regs[i].name, strerror(errno));
}

int main(int argc, char **argv)
{
	tgt_init(argc, argv);
	long supported = membarrier(CMD_QUERY);
	if (supported < 0 || !(supported & CMD_GET_REGISTRATIONS))
		tgt_fail("this kernel has no MEMBARRIER_CMD_GET_REGISTRATIONS (query %#lx)", supported);
	pthread_t th;
	if (pthread_create(&th, NULL, spin, NULL) != 0)
		tgt_fail("pthread_create");
	long want = 0;
	for (size_t i = 0; i < sizeof(regs) / sizeof(regs[0]); i++) {
		if (!(supported & regs[i].reg))
			continue;
		if (membarrier(regs[i].reg) != 0)
			tgt_fail("MEMBARRIER_CMD_REGISTER_%s: %s", regs[i].name, strerror(errno));
		want |= regs[i].reg;
	}
	if (!(want & CMD_REGISTER_PRIVATE_EXPEDITED))
		tgt_fail("no MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED (query %#lx)", supported);
	check_commands(want);
	tgt_ready();
	tgt_wait();
	check_commands(want);
	tgt_pass();
}
