/*
 * engine.h - the objects of the actor engine, shared by pool/ (connections,
 * requests, the writer thread, the public API) and sync/ (the committer).
 *
 * Threads:
 *   callers    any number; each uses a connection (sombra_conn) from the pool.
 *              Reads run on the caller's thread against a published snapshot
 *              (the connection's graph_reader). Writes become requests that
 *              travel over the connection's SPSC ring to the writer.
 *   writer     at most one, started with the committer at the first request
 *              (writer_start in engine.c, every signal blocked); owns the
 *              graph (every core write). Drains the rings, applies each
 *              request as its own transaction, publishes one snapshot per
 *              drained group, then completes the requests or hands them to
 *              the committer when their mode needs a sync.
 *   committer  at most one (sync/committer.c); fdatasyncs the WAL covering
 *              everything written so far and completes every request whose
 *              commit the sync covered.
 *   publisher  at most one (writer.c), started at the first full group;
 *              writes a full group's pages while the writer applies the
 *              next group.
 *   checkpointer at most one (sync/checkpointer.c), started at the first
 *              background checkpoint; makes the checkpoints the writer
 *              begins durable while the writer goes on.
 */
#ifndef SOMBRA_ENGINE_H
#define SOMBRA_ENGINE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "sombra.h"
#include "graph.h"
#include "ring.h"
#include "checkpointer.h"
#include "committer.h"
#include "metrics.h"

/*
 * Requests the writer applies between two publishes, at most. A cap below
 * what callers keep in flight leaves requests waiting when a group ends, so
 * that the publisher writes one group's pages while the writer applies the
 * next: durable_commit_async (1,024 in flight) made 74-81k commits/s with 256
 * against 54-66k with 1,024 (bench/README.md).
 */
#define ENGINE_GROUP_MAX 256

/* The public kinds, so that the writer counts an op under its own kind. */
enum op_kind {
        OP_NODE_CREATE = SOMBRA_OP_NODE_CREATE,
        OP_NODE_DELETE = SOMBRA_OP_NODE_DELETE,
        OP_NODE_SET = SOMBRA_OP_NODE_SET,
        OP_NODE_UNSET = SOMBRA_OP_NODE_UNSET,
        OP_LABEL_ADD = SOMBRA_OP_LABEL_ADD,
        OP_LABEL_REMOVE = SOMBRA_OP_LABEL_REMOVE,
        OP_EDGE_CREATE = SOMBRA_OP_EDGE_CREATE,
        OP_EDGE_DELETE = SOMBRA_OP_EDGE_DELETE,
        OP_EDGE_SET = SOMBRA_OP_EDGE_SET,
        OP_EDGE_UNSET = SOMBRA_OP_EDGE_UNSET,
        OP_INDEX_CREATE = SOMBRA_OP_INDEX_CREATE,
        OP_INDEX_DROP = SOMBRA_OP_INDEX_DROP,
};

/*
 * One graph write. Pointers refer to the caller's memory (a synchronous call,
 * which waits) or to a batch's own copies. In a batch, `id` and `dst` may be
 * SOMBRA_BATCH_REF(i): the node made by op i, an earlier op of the batch.
 *
 * The writer only reads ops; the id each one makes goes to an array of its
 * own (request.results). A batch's builder rewrites its ops in place, and
 * with the results among them every line the writer had written came back
 * to the builder's core on a miss: stalled stores, a tenth of the time to
 * build a batch of a thousand nodes.
 */
struct write_op {
        enum op_kind kind;
        uint64_t id;      /* node or edge; the source of a new edge */
        uint64_t dst;     /* the target of a new edge */
        const char *name; /* property key, label, edge type, or index label */
        const char *key;  /* index key */
        const char *const *labels;
        size_t nlabels;
        const struct sombra_prop *props;
        size_t nprops;
        const struct sombra_value *value;
};

/*
 * What asynchronous submissions of a batch report back to it. Both fields
 * are atomics: the ticket's collector (sombra_wait, sombra_poll or
 * sombra_conn_release, on any thread) writes them, the batch's owner reads
 * them to refuse changes the writer would race with.
 */
struct batch_status {
        uint32_t in_flight; /* submissions accepted and not yet collected */
        uint32_t applied;   /* the last submission collected committed: results are valid */
};

enum req_kind {
        REQ_WRITE,     /* ops as one transaction */
        REQ_TXN_BEGIN, /* the writer serves only this connection until commit/rollback */
        REQ_TXN_WRITE, /* ops inside the open interactive transaction */
        REQ_TXN_READ,  /* a read inside it, run on the writer (read-your-writes) */
        REQ_TXN_COMMIT,
        REQ_TXN_ROLLBACK,
        REQ_RUN /* read_fn on the writer thread, outside any transaction (checkpoint, stats) */
};

struct request {
        enum req_kind kind;
        struct sombra_conn *conn;
        struct write_op *ops;
        uint64_t *results; /* nops of them: the id each create made, once applied */
        size_t nops;
        int (*read_fn)(struct graph_reader *r, void *arg);
        void *read_arg;
        /* results, written by the engine before `done` */
        int status;
        uint64_t lsn;                /* the commit's LSN, 0 when nothing was committed */
        uint32_t done;               /* futex_once word: answers nobody sleeps on cost no syscall */
        uint64_t ticket;             /* asynchronous submissions: the ticket it answers */
        uint64_t submit_ns;          /* when it was submitted (metrics on), for commit latency */
        struct batch_status *batch;  /* asynchronous batches: told on collection */
        struct commit_waiter waiter; /* in the committer's queue (FULL) */
};

struct sombra_conn {
        struct sombra_db *db;
        uint32_t in_use;      /* acquired (atomic) */
        pthread_mutex_t lock; /* serialises two threads using one connection */
        struct ring ring;     /* requests to the writer */
        uint32_t space;       /* futex word: bumped when the writer frees ring slots */
        uint32_t space_wait;  /* set while the producer sleeps on `space`: only then is it woken */
        struct graph_reader *reader;
        bool in_txn;         /* an interactive transaction is open (caller side) */
        uint32_t txn_lost;   /* set by the writer when it rolled the txn back (timeout) */
        uint32_t read_depth; /* sombra_read_begin nesting */
        /* results of the last read, valid until the next one */
        struct graph_entity entity;
        struct sombra_entity pub;
        struct graph_adjvec adj;
        struct sombra_neighbor *nbrs;
        size_t nbrs_cap;
        struct graph_ids ids;
        /* written by the thread holding the connection, read by sombra_metrics on the writer */
        struct metrics_conn metrics;
        /* asynchronous submissions in flight: tickets are indexes here */
        struct request *async; /* slot = ticket % async_cap; conn != NULL while held */
        uint32_t async_cap;
        uint64_t async_next;
};

struct sombra_db {
        struct sombra_config cfg;
        struct graph *g;
        struct sombra_conn *conns;
        uint32_t nconns;
        /*
         * Bit i: conns[i] is ready, its ring and reader made
         * (engine_conn_prepare; release stores, acquire loads). The writer
         * looks for requests in ready rings only, and a connection is a few
         * KiB (its metrics): a flag in each one instead took 9% of the
         * writer's time in a load by one caller of 129 connections, page
         * faults included.
         */
        uint64_t *ready_conns;
        uint32_t pool_seq; /* futex word: bumped on every release */

        pthread_t writer;        /* once writer_started (writer_start in engine.c) */
        uint32_t writer_started; /* release store under start_lock, acquire loads */
        pthread_mutex_t start_lock;
        uint32_t writer_seq;      /* futex word: bumped after every push */
        uint32_t writer_sleeping; /* the writer is (about to be) asleep */
        uint32_t acquired;        /* connections handed out: 1 means a caller works alone */
        /*
         * sombra_close against the calls on db (engine_enter): `calls` counts
         * the db-level calls in flight, `closing` is set while a close decides
         * and, if nothing is in flight, frees. Both are seq-cst, Dekker style:
         * a call adds to `calls` and then reads `closing`; close sets
         * `closing` and then reads `calls` and the connections, so at least
         * one of the two sees the other.
         */
        uint32_t calls;
        uint32_t closing;
        uint32_t stopping;
        struct sombra_conn *txn_owner; /* writer only: the conn of the open interactive txn */
        uint64_t txn_deadline_ns;

        struct request *group[ENGINE_GROUP_MAX]; /* writer only: applied, not yet acknowledged */
        size_t group_n;
        uint32_t drain_at; /* writer only: the ring its next pass begins with */

        struct committer committer;
        struct checkpointer checkpointer;
        /*
         * The publisher thread (writer.c): writes a group's pages to the file,
         * publishes its state and acknowledges its requests while the writer
         * applies the next group. Two job slots: the writer fills one while
         * the publisher may still be acknowledging the other's requests. The
         * writer waits for a job's pages (store_publish_settle, before it
         * posts the next), never for its acknowledgements.
         */
        struct {
                pthread_t thread;
                bool started;
                uint32_t posted; /* jobs handed over, counted by the writer */
                uint32_t bell;   /* futex word: bumped by a post and by the stop */
                uint32_t sleeping;
                uint32_t stop;
                uint64_t groups; /* jobs finished: the publisher's, read with __atomic loads */
                struct publish_job {
                        struct store_publication *pub;
                        struct request *group[ENGINE_GROUP_MAX];
                        size_t n;
                } jobs[2];
        } publisher;
        /*
         * Deferred publication (writer.c): while no reader has asked for a
         * while, groups are answered without writing their pages for
         * readers. A reader that finds an answered commit unpublished sets
         * `publish_wanted` (seq-cst), wakes the writer and waits
         * (store_reader_begin).
         */
        uint32_t publish_wanted;
        uint32_t deferred;        /* writer only: groups answered since the last publication */
        uint64_t reader_asked_ns; /* writer only: when a reader last asked */
        /* The writer's counters: written by the writer only, read by it (sombra_stats). */
        struct {
                uint64_t requests, groups, txn_timeouts;
                uint64_t unpublished;          /* groups answered unpublished (publish_defer) */
                uint64_t ops[SOMBRA_OP_KINDS]; /* writes applied, by kind (metrics on) */
                /* commits_per_second: the window that the last sombra_metrics closed */
                uint64_t window_start_ns, window_commits;
                double commits_per_second;
        } counters;
        uint64_t open_ns;
        /* Recorded by the writer (commits it acknowledges, groups) and the committer (FULL). */
        struct hist commit_latency;
        struct hist writer_group;
};

/* pool/engine.c: sombra_open, with `faults` (may be NULL) on both files, for fault tests. */
int engine_open(const char *path, const struct sombra_config *config, struct io_faults *faults,
                sombra_db **out);
/* pool/engine.c: hand a request to the writer (engine_wait waits for it; engine_complete answers).
 */
int engine_submit(struct sombra_conn *c, struct request *req, bool wait_for_room);
struct sombra_conn *engine_conn(struct sombra_db *db);
/* Whether c's ring and reader exist yet (made at its first acquire): only then may others look. */
bool engine_conn_ready(const struct sombra_db *db, const struct sombra_conn *c);
/* Makes c's ring and reader; by the thread holding c (the engine's own: under its lock). */
int engine_conn_prepare(struct sombra_db *db, struct sombra_conn *c);
/*
 * pool/engine.c: a db-level call begins (engine_enter) and ends
 * (engine_leave); sombra_close refuses with SOMBRA_EBUSY while any is in
 * flight. engine_enter counts nothing and returns SOMBRA_ECLOSED once a close
 * has begun. engine_hold counts a call that a close cannot be freeing under:
 * one made on a connection still held (sombra_conn_release).
 */
int engine_enter(struct sombra_db *db);
void engine_hold(struct sombra_db *db);
void engine_leave(struct sombra_db *db);
/* pool/api.c: ops as one transaction (or a step of the open one), waited for. */
int engine_write(struct sombra_conn *c, struct write_op *ops, uint64_t *results, size_t n);
/*
 * pool/api.c: ops as one transaction, answered later under *ticket. batch->in_flight counts it
 * from acceptance until the ticket is collected, which also sets batch->applied.
 */
int engine_submit_async(struct sombra_conn *c, struct write_op *ops, uint64_t *results, size_t n,
                        bool nonblocking, struct batch_status *batch, uint64_t *ticket);
void engine_wait(struct request *req);
/*
 * How long a caller alone on the database (engine_alone) spins for its
 * answer, and the writer for that caller's next request, before sleeping:
 * about one unsynced commit, so that neither pays a futex round trip through
 * the scheduler. With more callers, spinning would take the cores the writer
 * and the others need.
 */
#define LONE_SPIN_NS 30000u
/*
 * Whether one caller works alone (at most one connection acquired) in a mode
 * that answers without a sync: then waiting sides spin before they sleep.
 */
bool engine_alone(struct sombra_db *db);
void engine_complete(struct request *req, int status);
/*
 * engine_complete for a commit request (a write, or an interactive txn's
 * commit), recording its latency when it succeeded and now_ns is not 0.
 */
void engine_ack(struct sombra_db *db, struct request *req, int status, uint64_t now_ns);

/*
 * pool/writer.c: the writer thread, which starts the publisher when a group
 * first needs it, and the publisher's stop (after the writer's).
 */
void *writer_main(void *arg);
void publisher_stop(struct sombra_db *db);

#endif
