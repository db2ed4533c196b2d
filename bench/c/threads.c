/* threads READY_PATH N: N-1 extra threads (N in all), each asleep. */
#include "bench.h"
#include <pthread.h>

static void *sleeper(void *arg)
{
	(void)arg;
	wait_forever();
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: threads READY_PATH N\n");
		return 2;
	}
	long n = strtol(argv[2], NULL, 10);
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	/* 1,000 default 8 MiB stacks would be 8 GiB of address space. */
	pthread_attr_setstacksize(&attr, 64 << 10);
	for (long i = 1; i < n; i++) {
		pthread_t t;
		int err = pthread_create(&t, &attr, sleeper, NULL);
		if (err != 0) {
			errno = err;
			die("pthread_create");
		}
	}
	ready(argv[1]);
	wait_forever();
}
