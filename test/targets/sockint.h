/*
 * Int socket options for the socket targets (inet.c, sockopts.c): set one,
 * or fail the target unless it reads as wanted.
 */
#ifndef GOCR_SOCKINT_H
#define GOCR_SOCKINT_H

#include "target.h"

#include <sys/socket.h>

static inline void setint(int fd, int level, int opt, int v, const char *name)
{
	if (setsockopt(fd, level, opt, &v, sizeof(v)) < 0)
		tgt_fail("setsockopt %s: %s", name, strerror(errno));
}

static inline void wantint(int fd, int level, int opt, int want, const char *name)
{
	int v = 0;
	socklen_t l = sizeof(v);

	if (getsockopt(fd, level, opt, &v, &l) < 0)
		tgt_fail("getsockopt %s: %s", name, strerror(errno));
	if (v != want)
		tgt_fail("%s is %d, want %d", name, v, want);
}

#endif
