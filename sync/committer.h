/*
 * committer.h - the group-commit thread.
 *
 * The writer appends commits to the WAL and never syncs. Commits whose mode
 * promises durability before acknowledgement (FULL) are queued here; the
 * committer takes the whole queue, makes one fdatasync that covers every
 * record written so far, and completes everything it took: under load one
 * fdatasync acknowledges a whole group. NORMAL commits are acknowledged by
 * the writer at once; the committer syncs after every `sync_interval` of them
 * or `sync_interval_ms`. CHECKPOINT and OFF never sync here.
 *
 * Threads: committer_enqueue and committer_note are the writer's and the
 * publisher's (pool/writer.c), committer_sync_inline the writer's. The queue
 * and `syncing` are guarded by the worker's lock (those threads and the committer only;
 * callers never touch them). Counters are read with __atomic loads.
 */
#ifndef SOMBRA_COMMITTER_H
#define SOMBRA_COMMITTER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "sombra.h"
#include "metrics.h"
#include "worker.h"

struct store;

/*
 * Embedded in whatever waits; the committer completes it through `complete`,
 * with the time the sync ended (0 when metrics are off).
 */
struct commit_waiter {
        struct commit_waiter *next;
};

struct committer {
        struct store *store;
        struct sombra_config cfg;
        void (*complete)(struct commit_waiter *w, int status, uint64_t now_ns);
        struct worker w;                   /* the thread, and the lock over what follows */
        struct commit_waiter *head, *tail; /* waiting for a sync */
        uint32_t unsynced;                 /* NORMAL: commits since the last sync */
        bool syncing;                      /* a sync is under way, on this thread or the writer's */
        uint64_t syncs;                    /* fdatasyncs done here */
        uint64_t synced_commits;           /* FULL commits they acknowledged */
        uint64_t max_group;
        /* metrics on: each group sync's duration and the FULL commits it acknowledged */
        struct hist sync_latency;
        struct hist sync_group;
};

/* Starts the thread. SOMBRA_ENOMEM when it cannot be created. */
int committer_start(struct committer *c, struct store *s, const struct sombra_config *cfg,
                    void (*complete)(struct commit_waiter *w, int status, uint64_t now_ns));
/* Syncs what is outstanding, completes every waiter, joins the thread. */
void committer_stop(struct committer *c);
/* Writer or publisher: the FULL commits chained from first to last wait for the next sync. */
void committer_enqueue(struct committer *c, struct commit_waiter *first,
                       struct commit_waiter *last);
/*
 * Writer: when no sync is under way and nobody waits for one, syncs on the
 * calling thread and completes the waiters chained from group, and returns
 * true: for a caller alone, the committer's wake-up would be one more thread
 * hand-off between the sync and the answer. Otherwise returns false and does
 * nothing. Syncs never overlap: the kernel reports a write-back error to one
 * fdatasync only, so a second sync running beside a failing one could
 * acknowledge a commit behind the lost records.
 */
bool committer_sync_inline(struct committer *c, struct commit_waiter *group);
/* Writer or publisher: n NORMAL commits were acknowledged without a sync. */
void committer_note(struct committer *c, uint32_t n);

#endif
