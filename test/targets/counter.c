/*
 * counter: increments a counter every ~5 ms and appends "N\n" to stdout (a
 * regular file) with write(2). After restore it must continue from exactly
 * the dumped value at exactly the dumped file offset; the harness checks the
 * log holds 1..N with no gap or repeat, and this program checks that the
 * line ending at its stdout offset is its in-memory counter.
 */
#include "target.h"

#include <sys/stat.h>

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

	tgt_init(argc, argv);
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

	long last = line_before_offset();
	if (last != counter)
		tgt_fail("counter is %ld but the line before stdout's offset is %ld",
			 counter, last);
	tgt_pass();
}
