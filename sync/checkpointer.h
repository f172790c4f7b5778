/*
 * checkpointer.h - the checkpoint thread.
 *
 * The writer begins a checkpoint (store_checkpoint_begin: the state's pages
 * and free list are written, not synced) and posts it here; this thread
 * makes it durable (store_checkpoint_write: sync, meta page, sync) while the
 * writer goes on, and the writer settles it later (store_checkpoint_settle).
 * Apart from the committer's thread, so that a checkpoint's syncs of the
 * database file never hold up the WAL syncs that acknowledge commits.
 *
 * Threads: checkpointer_post is the writer's; `job` is guarded by the
 * worker's lock.
 */
#ifndef SOMBRA_CHECKPOINTER_H
#define SOMBRA_CHECKPOINTER_H

#include "worker.h"

struct store;
struct store_ckpt;

struct checkpointer {
        struct store *store;
        struct worker w;        /* the thread, and the lock over `job` */
        struct store_ckpt *job; /* posted, not yet taken */
};

/*
 * Starts the thread, unless it runs already (the writer calls it at each
 * checkpoint it begins). SOMBRA_ENOMEM when it cannot be created.
 */
int checkpointer_start(struct checkpointer *c, struct store *s);
/* Writes the job posted, if any, then joins the thread: after the writer has stopped. */
void checkpointer_stop(struct checkpointer *c);
/* Writer: job (from store_checkpoint_begin) is to be written. One at a time. */
void checkpointer_post(struct checkpointer *c, struct store_ckpt *job);

#endif
