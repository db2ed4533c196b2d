/*
 * leaderexit: the main thread exits (pthread_exit) while another thread
 * runs on, so /proc shows the process as a zombie with live threads. A
 * dump must refuse it and leave it running; the other thread answers the
 * harness's SIGTERM.
 */
#include "target.h"

#include <pthread.h>

static void *run(void *arg)
{
	(void)arg;
	tgt_ready();
	tgt_wait();
	tgt_pass();
}

int main(int argc, char **argv)
{
	tgt_init(argc, argv);
	pthread_t t;
	if (pthread_create(&t, NULL, run, NULL) != 0)
		tgt_fail("pthread_create");
	pthread_exit(NULL);
}
