/*
 * engine.c - opening and closing a database, the connection pool, and the
 * hand-over of requests between callers and the writer.
 *
 * The pool is an array of connections with an `in_use` word each: acquiring
 * is a compare-and-swap on the first free one, releasing a store, so neither
 * takes a lock. A caller who finds none sleeps on `pool_seq`, which every
 * release bumps. One more connection than max_connections exists, kept for
 * the engine's own requests (sombra_checkpoint, sombra_stats); its mutex
 * lets any thread use it.
 *
 * Waking the writer: a producer pushes, bumps `writer_seq`, and wakes the
 * writer if `writer_sleeping` is set; the writer sets `writer_sleeping`, then
 * looks at every ring once more before it sleeps on `writer_seq`. Both sides
 * use sequentially consistent atomics, so one of them always sees the other.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "futex.h"
#include "status.h"
#include "store.h"
#include "zpages.h"

static struct request *
request_of(struct commit_waiter *w)
{
        return (struct request *)(void *)((char *)w - offsetof(struct request, waiter));
}

static void
complete_from_committer(struct commit_waiter *w, int status, uint64_t now_ns)
{
        struct request *req = request_of(w);

        engine_ack(req->conn->db, req, status, now_ns);
}

void
engine_ack(struct sombra_db *db, struct request *req, int status, uint64_t now_ns)
{
        /* Before completing: the request may live on the caller's stack, gone once it is done. */
        if (now_ns != 0 && status == SOMBRA_OK)
                hist_record(&db->commit_latency, now_ns - req->submit_ns);
        engine_complete(req, status);
}

void
engine_complete(struct request *req, int status)
{
        req->status = status;
        futex_once_set(&req->done);
}

bool
engine_alone(struct sombra_db *db)
{
        /* In FULL an answer waits for an fdatasync: too long to spin for, and the
         * spinning would keep the committer from a core. */
        return db->cfg.sync_mode != SOMBRA_SYNC_FULL &&
               __atomic_load_n(&db->acquired, __ATOMIC_RELAXED) <= 1;
}

void
engine_wait(struct request *req)
{
        if (engine_alone(req->conn->db))
                (void)spin_until(&req->done, FUTEX_ONCE_PENDING, clock_now_ns() + LONE_SPIN_NS);
        futex_once_wait(&req->done);
}

static void
writer_wake(struct sombra_db *db)
{
        __atomic_add_fetch(&db->writer_seq, 1, __ATOMIC_SEQ_CST);
        if (__atomic_load_n(&db->writer_sleeping, __ATOMIC_SEQ_CST))
                futex_wake(&db->writer_seq, 1);
}

/* store_reader_begin found commits answered unpublished: the writer publishes them (writer.c). */
static void
reader_wants_publication(void *arg)
{
        struct sombra_db *db = arg;

        __atomic_store_n(&db->publish_wanted, 1, __ATOMIC_SEQ_CST);
        writer_wake(db);
}

/*
 * Starts the committer and the writer, once: at the first request, not at
 * open, so that a process that only reads (a tool, a reader opening a
 * database after a crash) starts no thread: on the project machine two
 * thread starts were 0.5-0.8 ms of an open. They start with every signal
 * blocked, and so do the threads the writer starts later: the program's
 * signals go to its own threads, whichever thread made the first request,
 * and never interrupt a sync of ours.
 */
static int
writer_start(struct sombra_db *db)
{
        sigset_t all, old;
        int rc = SOMBRA_OK;

        if (__atomic_load_n(&db->writer_started, __ATOMIC_ACQUIRE))
                return SOMBRA_OK;
        sigfillset(&all);
        pthread_mutex_lock(&db->start_lock);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        if (!db->writer_started) {
                rc = committer_start(&db->committer, graph_store(db->g), &db->cfg,
                                     complete_from_committer);
                /* The publisher and the checkpointer start when the writer first needs them. */
                if (rc == SOMBRA_OK && pthread_create(&db->writer, NULL, writer_main, db) != 0) {
                        committer_stop(&db->committer);
                        rc = SOMBRA_ENOMEM;
                } else if (rc == SOMBRA_OK) {
                        worker_name(db->writer, "sombra-writer");
                }
                if (rc == SOMBRA_OK)
                        __atomic_store_n(&db->writer_started, 1, __ATOMIC_RELEASE);
        }
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        pthread_mutex_unlock(&db->start_lock);
        return rc;
}

int
engine_submit(struct sombra_conn *c, struct request *req, bool wait_for_room)
{
        int rc = writer_start(c->db);

        if (rc != SOMBRA_OK)
                return rc;
        req->conn = c;
        req->status = SOMBRA_OK;
        req->lsn = 0;
        req->done = FUTEX_ONCE_PENDING;
        req->submit_ns = c->db->cfg.metrics ? clock_now_ns() : 0;
        for (;;) {
                uint32_t seq = __atomic_load_n(&c->space, __ATOMIC_ACQUIRE);
                if (ring_push(&c->ring, req))
                        break;
                if (!wait_for_room)
                        return SOMBRA_EAGAIN;
                metrics_add(&c->metrics.backpressure_waits, 1);
                /*
                 * Back-pressure: the writer bumps `space` as it takes from the
                 * ring, then wakes us if space_wait is set. Setting it before the
                 * wait, both in one total order (seq_cst), means either the writer
                 * sees it and wakes us, or its bump came first and the wait
                 * returns at once because `space` moved past seq.
                 */
                writer_wake(c->db);
                __atomic_store_n(&c->space_wait, 1, __ATOMIC_SEQ_CST);
                futex_wait(&c->space, seq, 1000000);
                __atomic_store_n(&c->space_wait, 0, __ATOMIC_SEQ_CST);
        }
        writer_wake(c->db);
        return SOMBRA_OK;
}

/* ---- open and close ---- */

static int
config_check(const struct sombra_config *cfg)
{
        if ((unsigned)cfg->sync_mode > SOMBRA_SYNC_OFF || cfg->max_connections == 0 ||
            cfg->max_connections > 4096 || cfg->ring_capacity < 2 || cfg->ring_capacity > 65536 ||
            (cfg->ring_capacity & (cfg->ring_capacity - 1)) != 0 ||
            cfg->group_commit_delay_us >= 1000000 ||
            (cfg->sync_mode == SOMBRA_SYNC_NORMAL && cfg->sync_interval == 0))
                return SOMBRA_EINVAL;
        return SOMBRA_OK;
}

static void
conn_init(struct sombra_db *db, struct sombra_conn *c)
{
        c->db = db;
        pthread_mutex_init(&c->lock, NULL);
}

/*
 * Makes a connection: its lock, ring and snapshot reader, at its first
 * acquire (or, for the engine's own, its first use: run_on_writer). Most
 * programs use a few of the pool's connections, and making all of them at
 * open took 3.8 ms of a process's first open with 128 of them, mostly first
 * touches of fresh memory. Only the thread holding the connection calls it
 * (the engine's own: under its lock); its bit in `ready_conns` then
 * publishes the ring to the writer and to sombra_metrics, which look only
 * at rings that are ready. Asynchronous slots wait longer still, for the
 * first asynchronous submission.
 */
int
engine_conn_prepare(struct sombra_db *db, struct sombra_conn *c)
{
        int rc = SOMBRA_OK;

        if (c->db == NULL)
                conn_init(db, c);
        if (c->ring.slots == NULL)
                rc = ring_init(&c->ring, db->cfg.ring_capacity);
        if (rc == SOMBRA_OK && c->reader == NULL)
                rc = graph_reader_open(db->g, &c->reader);
        if (rc == SOMBRA_OK) {
                size_t i = (size_t)(c - db->conns);
                __atomic_fetch_or(&db->ready_conns[i / 64], 1ull << (i % 64), __ATOMIC_RELEASE);
        }
        return rc;
}

bool
engine_conn_ready(const struct sombra_db *db, const struct sombra_conn *c)
{
        size_t i = (size_t)(c - db->conns);

        return (__atomic_load_n(&db->ready_conns[i / 64], __ATOMIC_ACQUIRE) >> (i % 64)) & 1;
}

static void
conn_free(struct sombra_conn *c)
{
        if (c->db == NULL)
                return;
        graph_reader_close(c->reader);
        ring_free(&c->ring);
        graph_entity_free(&c->entity);
        graph_adjvec_free(&c->adj);
        graph_ids_free(&c->ids);
        free(c->nbrs);
        free(c->async);
        pthread_mutex_destroy(&c->lock);
}

static void
engine_free(struct sombra_db *db)
{
        for (uint32_t i = 0; db->conns != NULL && i <= db->nconns; i++)
                conn_free(&db->conns[i]);
        zpages_free(db->conns, db->nconns + 1, sizeof(*db->conns));
        free(db->ready_conns);
        if (db->g != NULL)
                graph_close(db->g);
        pthread_mutex_destroy(&db->start_lock);
        free(db);
}

int
sombra_open(const char *path, const struct sombra_config *config, sombra_db **out)
{
        return engine_open(path, config, NULL, out);
}

int
engine_open(const char *path, const struct sombra_config *config, struct io_faults *faults,
            sombra_db **out)
{
        struct sombra_config graph_cfg;
        struct sombra_db *db;
        int rc;

        if (path == NULL || out == NULL)
                return SOMBRA_EINVAL;
        db = calloc(1, sizeof(*db));
        if (db == NULL)
                return SOMBRA_ENOMEM;
        pthread_mutex_init(&db->start_lock, NULL);
        db->open_ns = db->counters.window_start_ns = clock_now_ns();
        rc = status_config_read(config, &db->cfg);
        if (rc == SOMBRA_OK)
                rc = config_check(&db->cfg);
        if (rc != SOMBRA_OK)
                goto label_fail;
        /* The graph never syncs for a commit here: the committer does. */
        graph_cfg = db->cfg;
        graph_cfg.sync_mode = SOMBRA_SYNC_OFF;
        rc = graph_open(path, &graph_cfg, faults, &db->g);
        if (rc != SOMBRA_OK)
                goto label_fail;
        store_set_autopublish(graph_store(db->g), false);
        store_set_publish_hook(graph_store(db->g), reader_wants_publication, db);
        store_set_background_checkpoints(graph_store(db->g), true);
        db->nconns = db->cfg.max_connections;
        /* About 4.7 KiB a connection, made as they are first acquired (zpages.h). */
        db->conns = zpages_alloc(db->nconns + 1, sizeof(*db->conns));
        db->ready_conns = calloc((db->nconns + 64) / 64, sizeof(*db->ready_conns));
        if (db->conns == NULL || db->ready_conns == NULL) {
                rc = SOMBRA_ENOMEM;
                goto label_fail;
        }
        conn_init(db, engine_conn(db)); /* its lock now: run_on_writer prepares it under it */
        *out = db; /* the writer starts with the first request (writer_start) */
        return SOMBRA_OK;
label_fail:
        engine_free(db);
        return rc;
}

int
engine_enter(struct sombra_db *db)
{
        engine_hold(db);
        if (!__atomic_load_n(&db->closing, __ATOMIC_SEQ_CST))
                return SOMBRA_OK;
        engine_leave(db);
        return SOMBRA_ECLOSED;
}

void
engine_hold(struct sombra_db *db)
{
        __atomic_add_fetch(&db->calls, 1, __ATOMIC_SEQ_CST);
}

void
engine_leave(struct sombra_db *db)
{
        __atomic_sub_fetch(&db->calls, 1, __ATOMIC_SEQ_CST);
}

/*
 * Whether anything may still use db, read with `closing` set. Calls, then
 * connections, then calls again: an acquire that began before `closing` was
 * set is counted until after it claimed its connection, and a release is
 * counted from before it frees its connection until it is done, so a
 * connection cannot change hands unseen between the reads.
 */
static bool
engine_busy(struct sombra_db *db)
{
        if (__atomic_load_n(&db->calls, __ATOMIC_SEQ_CST) != 0)
                return true;
        for (uint32_t i = 0; i < db->nconns; i++)
                if (__atomic_load_n(&db->conns[i].in_use, __ATOMIC_SEQ_CST))
                        return true;
        return __atomic_load_n(&db->calls, __ATOMIC_SEQ_CST) != 0;
}

int
sombra_close(sombra_db *db)
{
        uint32_t open = 0;
        int rc;

        if (db == NULL)
                return SOMBRA_EINVAL;
        /* Another close is deciding: it answers for db. */
        if (!__atomic_compare_exchange_n(&db->closing, &open, 1, false, __ATOMIC_SEQ_CST,
                                         __ATOMIC_SEQ_CST))
                return SOMBRA_EBUSY;
        if (engine_busy(db)) {
                /* Nothing was stopped: db goes on as if close had not been called. */
                __atomic_store_n(&db->closing, 0, __ATOMIC_SEQ_CST);
                return SOMBRA_EBUSY;
        }
        __atomic_store_n(&db->stopping, 1, __ATOMIC_SEQ_CST);
        /* No request can come now (engine_busy): the writer started or never will. */
        if (__atomic_load_n(&db->writer_started, __ATOMIC_ACQUIRE)) {
                writer_wake(db);
                pthread_join(db->writer, NULL);
        }
        publisher_stop(db); /* it hands FULL commits to the committer */
        committer_stop(&db->committer);
        checkpointer_stop(&db->checkpointer); /* graph_close settles what it wrote */
        for (uint32_t i = 0; i <= db->nconns; i++) {
                graph_reader_close(db->conns[i].reader);
                db->conns[i].reader = NULL;
        }
        rc = graph_close(db->g);
        db->g = NULL;
        engine_free(db);
        return rc;
}

/* ---- the pool ---- */

static bool
conn_claim(struct sombra_conn *c)
{
        uint32_t idle = 0;
        return __atomic_compare_exchange_n(&c->in_use, &idle, 1, false, __ATOMIC_ACQ_REL,
                                           __ATOMIC_RELAXED);
}

int
sombra_conn_acquire_timeout(sombra_db *db, uint32_t timeout_ms, sombra_conn **out)
{
        uint64_t deadline;

        int rc;

        if (db == NULL || out == NULL)
                return SOMBRA_EINVAL;
        rc = engine_enter(db);
        if (rc != SOMBRA_OK)
                return rc;
        deadline = clock_now_ns() + (uint64_t)timeout_ms * 1000000u;
        for (;;) {
                uint32_t seq = __atomic_load_n(&db->pool_seq, __ATOMIC_ACQUIRE);
                uint64_t now;
                for (uint32_t i = 0; i < db->nconns; i++) {
                        if (!conn_claim(&db->conns[i]))
                                continue;
                        rc = engine_conn_ready(db, &db->conns[i])
                                 ? SOMBRA_OK
                                 : engine_conn_prepare(db, &db->conns[i]);
                        if (rc != SOMBRA_OK) { /* back to the pool, for anyone waiting */
                                __atomic_store_n(&db->conns[i].in_use, 0, __ATOMIC_RELEASE);
                                __atomic_add_fetch(&db->pool_seq, 1, __ATOMIC_RELEASE);
                                futex_wake(&db->pool_seq, INT32_MAX);
                                goto label_done;
                        }
                        __atomic_add_fetch(&db->acquired, 1, __ATOMIC_RELAXED);
                        *out = &db->conns[i];
                        goto label_done;
                }
                now = clock_now_ns();
                if (timeout_ms != UINT32_MAX && now >= deadline) {
                        rc = SOMBRA_EBUSY;
                        goto label_done;
                }
                futex_wait(&db->pool_seq, seq, timeout_ms == UINT32_MAX ? 0 : deadline - now);
        }
label_done:
        engine_leave(db);
        return rc;
}

int
sombra_conn_acquire(sombra_db *db, sombra_conn **out)
{
        return sombra_conn_acquire_timeout(db, UINT32_MAX, out);
}

/* The engine's own connection, for requests that come with no connection. */
struct sombra_conn *
engine_conn(struct sombra_db *db)
{
        return &db->conns[db->nconns];
}
