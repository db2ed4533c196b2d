/*
 * protocol.h: the page libgocr shares with gocr (Go side: callbacks/page.go,
 * checked against this file by callbacks/page_test.go). Not installed:
 * programs use gocr.h.
 *
 * The page is a memfd named GOCR_CB_MEMFD_NAME, mapped MAP_SHARED once per
 * process; its fd is closed at once, so gocr finds it in /proc/PID/maps and
 * opens it through /proc/PID/map_files. Everything in it is state gocr
 * checkpoints and restores already (a memfd mapping; a thread waiting on a
 * futex in it), so a registered process stays restorable.
 *
 * Two futex words, each a sequence number and a code, (seq << 4) | code:
 *   request  written by gocr: CHECKPOINT, then CONTINUE, RESTARTED or FAILED;
 *   status   written by libgocr: the seq of the request it is at, and its
 *            state (IDLE, BUSY running callbacks, READY waiting for the
 *            verdict, AFTER running the rest of the callbacks).
 * gocr sends CHECKPOINT only to an IDLE process and freezes it once its
 * status reads (seq << 4) | READY. Shared (not private) futexes: the words
 * are in a MAP_SHARED mapping, keyed by inode and offset in both processes
 * (man 2 futex, "FUTEX_PRIVATE_FLAG").
 */
#ifndef GOCR_CALLBACKS_PROTOCOL_H
#define GOCR_CALLBACKS_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

#define GOCR_CB_MEMFD_NAME "gocr-callbacks" /* also the helper thread's name */
#define GOCR_CB_MAGIC 0x42434f47 /* "GOCB" little-endian */
#define GOCR_CB_VERSION 1
#define GOCR_CB_PAGE_SIZE 4096

#define GOCR_CB_SEQ_SHIFT 4
#define GOCR_CB_CODE_MASK 0xf

/* request codes */
#define GOCR_CB_REQ_CHECKPOINT 1
#define GOCR_CB_REQ_CONTINUE 2
#define GOCR_CB_REQ_RESTARTED 3
#define GOCR_CB_REQ_FAILED 4

/* status codes */
#define GOCR_CB_IDLE 0
#define GOCR_CB_BUSY 1
#define GOCR_CB_READY 2
#define GOCR_CB_AFTER 3

struct gocr_cb_page {
	uint32_t magic;      /* written last at registration */
	uint32_t version;
	uint32_t pid;        /* the process that registered */
	uint32_t tid;        /* its helper thread, which runs the callbacks */
	uint32_t request;    /* futex, gocr's */
	uint32_t status;     /* futex, libgocr's */
	uint32_t gocr_pid;   /* the gocr that sent request... */
	uint32_t pad;
	uint64_t gocr_start; /* ...and its start time (/proc/PID/stat field 22), to notice it died */
};

#define GOCR_CB_BUILD_BUG_ON_OFFSET(type, field, off) \
	_Static_assert(offsetof(type, field) == (off), #type "." #field " moved")
GOCR_CB_BUILD_BUG_ON_OFFSET(struct gocr_cb_page, magic, 0);
GOCR_CB_BUILD_BUG_ON_OFFSET(struct gocr_cb_page, version, 4);
GOCR_CB_BUILD_BUG_ON_OFFSET(struct gocr_cb_page, pid, 8);
GOCR_CB_BUILD_BUG_ON_OFFSET(struct gocr_cb_page, tid, 12);
GOCR_CB_BUILD_BUG_ON_OFFSET(struct gocr_cb_page, request, 16);
GOCR_CB_BUILD_BUG_ON_OFFSET(struct gocr_cb_page, status, 20);
GOCR_CB_BUILD_BUG_ON_OFFSET(struct gocr_cb_page, gocr_pid, 24);
GOCR_CB_BUILD_BUG_ON_OFFSET(struct gocr_cb_page, gocr_start, 32);
_Static_assert(sizeof(struct gocr_cb_page) == 40, "struct gocr_cb_page size");

#endif
