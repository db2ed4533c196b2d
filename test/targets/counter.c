/*
 * counter: increments a counter every ~5 ms and appends "N\n" to stdout (a
 * regular file) with write(2). After restore it must continue from exactly
 * the dumped value at exactly the dumped file offset; the harness checks the
 * log holds 1..N with no gap or repeat, and this program checks that the
 * line ending at its stdout offset is its in-memory counter.
 *
 * Usage: counter RESULT_PATH [MIB]. With MIB it also holds MIB MiB of
 * memory, every word a function of its index, and checks all of it at the
 * end (a dump of it takes long enough to be interrupted mid-write).
 */
#include "target.h"

#include <stdint.h>
#include <sys/mman.h>
#include <sys/stat.h>

static uint64_t word(size_t i)
{
	uint64_t x = i * 0x9E3779B97F4A7C15ULL + 1;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return x;
}

/* Reads the line that ends just before stdout's current offset through a
 * separate open of the same file, so the check sees what is on disk rather
 * than trusting the restored fd. */
static long line_before_offset(void)
{
	char path[64], file[4096], buf[64];
	ssize_t n;
	off_t off;
	int fd, i, start;

	off = lseek(1, 0, SEEK_CUR);
	if (off < 0)
		tgt_fail("lseek(stdout): %s", strerror(errno));
	if (off < 2)
		tgt_fail("stdout offset is %lld, nothing written", (long long)off);
	snprintf(path, sizeof(path), "/proc/self/fd/1");
	n = readlink(path, file, sizeof(file) - 1);
	if (n < 0)
		tgt_fail("readlink %s: %s", path, strerror(errno));
	file[n] = 0;
	fd = open(file, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		tgt_fail("open log %s: %s", file, strerror(errno));
	start = off > (off_t)sizeof(buf) ? (int)sizeof(buf) : (int)off;
	n = pread(fd, buf, (size_t)start, off - start);
	close(fd);
	if (n != start)
		tgt_fail("pread log %s at %lld: got %zd of %d bytes", file,
			 (long long)(off - start), n, start);
	if (buf[start - 1] != '\n')
		tgt_fail("byte before stdout offset %lld is not a newline", (long long)off);
	for (i = start - 2; i >= 0 && buf[i] != '\n'; i--)
		;
	buf[start - 1] = 0;
	return strtol(buf + i + 1, NULL, 10);
}

int main(int argc, char **argv)
{
	long counter = 0;
	struct stat st;
	uint64_t *mem = NULL;
	size_t words = 0;

	tgt_init(argc, argv);
	if (argc > 2) {
		words = (size_t)strtoul(argv[2], NULL, 10) * 1024 * 1024 / 8;
		mem = mmap(NULL, words * 8, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (mem == MAP_FAILED)
			tgt_fail("mmap %s MiB: %s", argv[2], strerror(errno));
		for (size_t i = 0; i < words; i++)
			mem[i] = word(i);
	}
	if (fstat(1, &st) < 0)
		tgt_fail("fstat(stdout): %s", strerror(errno));
	if (!S_ISREG(st.st_mode))
		tgt_fail("stdout must be a regular file (mode %o)", st.st_mode);
	tgt_ready();

	/* The flag is only looked at between complete steps, so the last line
	 * written is always the current counter value. */
	while (!got_term) {
		char line[32];
		int n;

		counter++;
		n = snprintf(line, sizeof(line), "%ld\n", counter);
		if (write(1, line, (size_t)n) != n)
			tgt_fail("write(stdout) at %ld: %s", counter, strerror(errno));
		usleep(5000);
	}

	for (size_t i = 0; i < words; i++)
		if (mem[i] != word(i))
			tgt_fail("memory word %zu is %#llx, want %#llx", i, (unsigned long long)mem[i],
				 (unsigned long long)word(i));
	long last = line_before_offset();
	if (last != counter)
		tgt_fail("counter is %ld but the line before stdout's offset is %ld",
			 counter, last);
	tgt_pass();
}
