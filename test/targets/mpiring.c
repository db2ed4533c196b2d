/*
 * mpiring: an MPI job for the acceptance test (test/accept_mpi_test.go),
 * not a zdtm target: it runs to its end by itself.
 *
 *	mpirun -np N mpiring STEPS HOLD RELEASE_PATH
 *
 * Every rank passes a value to the next rank of the ring and takes one
 * from the previous (MPI_Sendrecv) every 5 ms, and folds what it takes
 * into its own value, so one message lost, repeated or taken out of
 * order changes the result. Rank 0 prints "step K" every 100 steps (the
 * test waits for the job to be under way) and at the end "result X", the
 * sum of every rank's value, which an uninterrupted run gives too.
 * Before step HOLD rank 0 waits until RELEASE_PATH exists (the others
 * wait for its message meanwhile), so however late the test's dump
 * comes, the job is still running; the result does not depend on it.
 */
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	MPI_Init(&argc, &argv);
	int rank, size;
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Comm_size(MPI_COMM_WORLD, &size);
	if (argc != 4) {
		if (rank == 0)
			fprintf(stderr, "usage: mpiring STEPS HOLD RELEASE_PATH\n");
		MPI_Abort(MPI_COMM_WORLD, 2);
	}
	int steps = atoi(argv[1]), hold = atoi(argv[2]);
	const char *release = argv[3];
	uint64_t acc = (uint64_t)rank + 1;
	for (int i = 0; i < steps; i++) {
		while (rank == 0 && i == hold && access(release, F_OK) != 0) {
			struct timespec wait = {0, 5 * 1000 * 1000};
			nanosleep(&wait, NULL);
		}
		uint64_t out = acc * 6364136223846793005ULL + (uint64_t)i, in;
		MPI_Sendrecv(&out, 1, MPI_UINT64_T, (rank + 1) % size, i,
			     &in, 1, MPI_UINT64_T, (rank + size - 1) % size, i,
			     MPI_COMM_WORLD, MPI_STATUS_IGNORE);
		acc = acc * 31 + (in ^ (uint64_t)rank);
		struct timespec pause = {0, 5 * 1000 * 1000};
		nanosleep(&pause, NULL);
		if (rank == 0 && i % 100 == 0) {
			printf("step %d\n", i);
			fflush(stdout);
		}
	}
	uint64_t total = 0;
	MPI_Reduce(&acc, &total, 1, MPI_UINT64_T, MPI_SUM, 0, MPI_COMM_WORLD);
	if (rank == 0) {
		printf("result %016llx\n", (unsigned long long)total);
		fflush(stdout);
	}
	MPI_Finalize();
	return 0;
}
