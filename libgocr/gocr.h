/*
 * gocr.h: checkpoint callbacks for programs that gocr checkpoints.
 *
 * A program registers callbacks that gocr runs before it checkpoints the
 * program, to flush, close or detach what a checkpoint cannot save (a
 * listening socket, a deleted scratch file, a connection to a service),
 * and that go on once the checkpoint is over, to reopen it. This is BLCR's
 * cr_register_callback()/cr_checkpoint() pair (docs/CALLBACKS.md has the
 * mapping and the protocol gocr speaks).
 *
 *	static int on_checkpoint(void *arg)
 *	{
 *		flush_and_close(arg);
 *		int r = gocr_checkpoint();	// ready: gocr checkpoints now
 *		if (r > 0)
 *			reopen_after_restart(arg);
 *		else
 *			reopen(arg);		// r == 0: continued; r < 0: not taken
 *		return 0;
 *	}
 *	...
 *	gocr_register_callback(on_checkpoint, state, GOCR_CALLBACK_THREAD);
 *
 * Link with -lgocr -pthread. Programs that do not use it are checkpointed
 * exactly as they would be otherwise.
 */
#ifndef GOCR_H
#define GOCR_H

#ifdef __cplusplus
extern "C" {
#endif

/* A callback. Its return value is ignored (kept for BLCR's signature). */
typedef int (*gocr_callback_t)(void *arg);

/* Where a callback runs. Only GOCR_CALLBACK_THREAD is offered: callbacks
 * run one after another in a thread libgocr starts at the first
 * registration, with every signal blocked, while the program's other
 * threads run on. BLCR's signal context (a handler interrupting one of the
 * program's threads) is refused with ENOTSUP: a callback interrupting
 * malloc or a held lock could only call async-signal-safe functions, which
 * rules out most of what callbacks are for. 0 means GOCR_CALLBACK_THREAD. */
#define GOCR_CALLBACK_THREAD 0x1
#define GOCR_CALLBACK_SIGNAL 0x2

/* gocr_checkpoint()'s answers. */
#define GOCR_CONTINUE 0  /* the checkpoint was taken and this process went on */
#define GOCR_RESTARTED 1 /* this process was restored from the checkpoint */

/*
 * gocr_register_callback registers fn(arg) to run before every checkpoint
 * of this process. Callbacks run in the reverse order of registration:
 * each calls gocr_checkpoint(), which runs the next one, and the last one's
 * call tells gocr the process is ready. So the part of each callback before
 * its gocr_checkpoint() runs newest first, the part after it oldest first,
 * like layers: one registered later (built on the earlier ones) saves
 * first and reopens last. A callback that returns without calling
 * gocr_checkpoint() has it called on its behalf after it returns.
 *
 * Returns an id >= 0, or -1 with errno set: EINVAL (fn is NULL or flags
 * unknown), ENOTSUP (GOCR_CALLBACK_SIGNAL), ENOSPC (256 callbacks are
 * registered already), or what memfd_create, mmap or pthread_create failed
 * with at the first registration.
 *
 * A child made by fork() starts with no callbacks: the helper thread is
 * not forked with it. It registers its own.
 */
int gocr_register_callback(gocr_callback_t fn, void *arg, int flags);

/*
 * gocr_checkpoint, called from a callback, says this callback is ready
 * for the checkpoint and returns once it is over:
 *   GOCR_RESTARTED (> 0)  this process runs again from the checkpoint;
 *   GOCR_CONTINUE (0)     the checkpoint was taken and the process went on
 *                         (gocr dump --leave-running);
 *   -1, errno ECANCELED   the checkpoint was not taken (it failed, gocr gave
 *                         up waiting for the callbacks, or gocr died): the
 *                         process goes on as before.
 * Called outside a callback, it returns -1 with errno EINVAL. Called again
 * in the same callback, it returns the same answer.
 */
int gocr_checkpoint(void);

#ifdef __cplusplus
}
#endif

#endif
