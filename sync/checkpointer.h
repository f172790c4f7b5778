/*
 * checkpointer.h - the checkpoint thread.
 *
 * The writer begins a checkpoint (store_checkpoint_begin: the state's pages
 * and free list are written, not synced) and posts it here; this thread
 * makes it durable (store_checkpoint_write: sync, meta page, sync) while the
 * writer goes on, and the writer settles it later (store_checkpoint_settle).
 * Apart from the committer's thread, so that a checkpoint's syncs of the
 * database file never hold up the WAL syncs that acknowledge commits. The
 * same thread grows the WAL file ahead of the log when the writer asks
 * (store_log_room), for the same reason: its zeros and their sync stay off
 * the commit path, but for what a commit's sync meanwhile has to write
 * (one piece of zeros at most, and its journal commit: wal.c). A checkpoint posted meanwhile waits
 * for the growth: a few milliseconds at most.
 *
 * Threads: checkpointer_post and checkpointer_grow are the writer's; `job`
 * and `grow_to` are guarded by the worker's lock.
 */
#ifndef SOMBRA_CHECKPOINTER_H
#define SOMBRA_CHECKPOINTER_H

#include <stdint.h>

#include "worker.h"

struct store;
struct store_ckpt;

struct checkpointer {
        struct store *store;
        struct worker w;        /* the thread, and the lock over `job` */
        struct store_ckpt *job; /* posted, not yet taken */
        uint64_t grow_to;       /* a log file size asked for, not yet taken (0: none) */
};

/*
 * Starts the thread, unless it runs already (the writer calls it at each
 * checkpoint it begins). SOMBRA_ENOMEM when it cannot be created.
 */
int checkpointer_start(struct checkpointer *c, struct store *s);
/*
 * Writes the job posted, if any, then joins the thread: after the writer has
 * stopped. A growth not yet begun is dropped.
 */
void checkpointer_stop(struct checkpointer *c);
/* Writer: job (from store_checkpoint_begin) is to be written. One at a time. */
void checkpointer_post(struct checkpointer *c, struct store_ckpt *job);
/* Writer: the log file is to grow to `to` bytes (store_log_grow), after any job. */
void checkpointer_grow(struct checkpointer *c, uint64_t to);

#endif
