/*
 * inotifydeleted: an inotify watch on a file deleted since, which the
 * process still holds open.
 *
 *   held    DIR/watched, 6 bytes, open read-write at fd RD and watched
 *           (IN_MODIFY|IN_ATTRIB|IN_CLOSE_WRITE|IN_DELETE_SELF) under wd 2
 *           (wd 1 is DIR/other), then unlinked (its IN_ATTRIB read away).
 *           After the restore: fd RD shows "DIR/watched (deleted)" with
 *           its contents, nothing is queued, a write through RD is
 *           IN_MODIFY on wd 2, and closing RD, the file's last holder, is
 *           IN_CLOSE_WRITE, IN_DELETE_SELF and IN_IGNORED on wd 2: the
 *           watch is on that file, held by that fd alone.
 *   mapped  the same file held only by a private mapping: refused at
 *           dump; the watch is still there.
 *
 * usage: inotifydeleted RESULT_PATH MODE DIR
 */
#include "target.h"

#include <poll.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#define RD 30
#define IN 31
#define WATCHED_MASK (IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_DELETE_SELF)

static int queued(void)
{
	int n = -1;
	if (ioctl(IN, FIONREAD, &n) < 0)
		tgt_fail("FIONREAD: %s", strerror(errno));
	return n;
}

/* Reads events until want (masks on wd, in order) have come, waiting
 * for each at most 5 s; any other event fails. */
static void expect(int wd, const uint32_t *want, int n, const char *when)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	int got = 0;
	while (got < n) {
		struct pollfd p = { .fd = IN, .events = POLLIN };
		if (poll(&p, 1, 5000) != 1)
			tgt_fail("%s: no event %#x after 5 s (%d of %d came)", when, want[got], got, n);
		ssize_t len = read(IN, buf, sizeof(buf));
		if (len <= 0)
			tgt_fail("%s: read events: %s", when, strerror(errno));
		for (char *q = buf; q < buf + len;) {
			struct inotify_event *ev = (struct inotify_event *)q;
			if (got >= n || ev->wd != wd || ev->mask != want[got])
				tgt_fail("%s: event %#x on wd %d, want %#x on wd %d", when, ev->mask, ev->wd,
					 got < n ? want[got] : 0, wd);
			got++;
			q += sizeof(*ev) + ev->len;
		}
	}
}

int main(int argc, char **argv)
{
	tgt_init(argc, argv);
	if (argc < 4)
		tgt_fail("usage: inotifydeleted RESULT_PATH MODE DIR");
	int mapped = strcmp(argv[2], "mapped") == 0;
	char path[4200], other[4200];
	snprintf(path, sizeof(path), "%s/watched", argv[3]);
	snprintf(other, sizeof(other), "%s/other", argv[3]);
	int fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0640);
	int ofd = open(other, O_WRONLY | O_CREAT | O_EXCL, 0640);
	if (fd < 0 || ofd < 0 || write(fd, "hello\n", 6) != 6)
		tgt_fail("make %s: %s", path, strerror(errno));
	close(ofd);
	if (dup2(fd, RD) < 0)
		tgt_fail("dup2: %s", strerror(errno));
	close(fd);
	int in = inotify_init1(IN_NONBLOCK);
	if (in < 0 || dup2(in, IN) < 0)
		tgt_fail("inotify: %s", strerror(errno));
	close(in);
	if (inotify_add_watch(IN, other, IN_MODIFY) != 1)
		tgt_fail("watch %s: not wd 1: %s", other, strerror(errno));
	int wd = inotify_add_watch(IN, path, WATCHED_MASK);
	if (wd != 2)
		tgt_fail("watch %s: wd %d, want 2: %s", path, wd, strerror(errno));
	void *m = NULL;
	if (mapped) {
		m = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, RD, 0);
		if (m == MAP_FAILED)
			tgt_fail("mmap: %s", strerror(errno));
		/* Not the file's last close: the mapping holds it. */
		close(RD);
	}
	if (unlink(path) < 0)
		tgt_fail("unlink: %s", strerror(errno));
	static const uint32_t unlinked[] = { IN_ATTRIB };
	expect(wd, unlinked, 1, "before the dump");
	tgt_ready();
	tgt_wait();
	if (queued() != 0)
		tgt_fail("%d bytes of events queued after the restore", queued());
	if (mapped) {
		if (memcmp(m, "hello\n", 6) != 0)
			tgt_fail("the mapping lost its contents");
		tgt_pass();
	}
	char link[64], target[4300], buf[16];
	snprintf(link, sizeof(link), "/proc/self/fd/%d", RD);
	ssize_t n = readlink(link, target, sizeof(target) - 1);
	if (n < 0)
		tgt_fail("readlink fd %d: %s", RD, strerror(errno));
	target[n] = 0;
	char want[4300];
	snprintf(want, sizeof(want), "%s (deleted)", path);
	if (strcmp(target, want) != 0)
		tgt_fail("fd %d names %s, want %s", RD, target, want);
	if (pread(RD, buf, sizeof(buf), 0) != 6 || memcmp(buf, "hello\n", 6) != 0)
		tgt_fail("fd %d lost the file's contents", RD);
	if (write(RD, "!", 1) != 1)
		tgt_fail("write: %s", strerror(errno));
	static const uint32_t modified[] = { IN_MODIFY };
	expect(wd, modified, 1, "after the restore, a write");
	close(RD);
	static const uint32_t gone[] = { IN_CLOSE_WRITE, IN_DELETE_SELF, IN_IGNORED };
	expect(wd, gone, 3, "after the restore, its last close");
	tgt_pass();
}
