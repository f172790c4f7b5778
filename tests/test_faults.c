/*
 * test_faults.c - I/O failures under the engine, swept over the moment they
 * strike.
 *
 * For each kind of fault (EIO or ENOSPC on a write, a short write, EIO on
 * fdatasync, a failed fdatasync that also loses what it did not make durable)
 * and for each N, the database is opened with the fault armed to fire at the
 * N-th matching call (or, sticky, at every one from the N-th on), and
 * WRITERS threads commit transactions through the public API in FULL (one
 * sweep in NORMAL) until the first one fails. The sweep ends at the first N
 * whose run never reaches the fault. Whenever the fault fired:
 *   - no commit was acknowledged that is not durable: after the lossy sync,
 *     every acknowledged transaction must still be in the file;
 *   - a failed sync, or a disk that keeps failing, leaves the database
 *     refusing writes;
 *   - reads of acknowledged data still work before close;
 *   - close, and a reopen without faults, give a database that verifies,
 *     holds every acknowledged transaction, and holds each transaction whole
 *     or not at all.
 *
 * Transaction (t, i) of writer t makes node A and node B, both with t and i,
 * and an edge A -PAIR-> B.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "engine.h"
#include "support.h"

#define WRITERS 3
#define TXNS    6 /* per writer */
#define DB      "f.sombra"

static void
setup(void)
{
        support_dir_make("faults");
}

TestSuite(faults, .init = setup, .fini = support_dir_remove, .timeout = 900);

struct writer {
        sombra_db *db;
        int t;
        bool acked[TXNS];
        int failure; /* the first failed commit's status, or SOMBRA_OK */
};

/* Commits until the first failure; a transaction counts only once its commit returned OK. */
static void *
txn_writer_main(void *arg)
{
        struct writer *w = arg;
        sombra_conn *c = NULL;
        sombra_batch *b = NULL;

        w->failure = sombra_conn_acquire(w->db, &c);
        if (w->failure == SOMBRA_OK)
                w->failure = sombra_batch_new(&b);
        for (int i = 0; i < TXNS && w->failure == SOMBRA_OK; i++) {
                struct sombra_prop p[2] = {
                    {"t", {.type = SOMBRA_INT, .u.i = w->t}},
                    {"i", {.type = SOMBRA_INT, .u.i = i}},
                };
                w->failure = support_pair_commit(c, b, p, 2);
                w->acked[i] = w->failure == SOMBRA_OK;
        }
        sombra_batch_free(b);
        if (c != NULL)
                sombra_conn_release(c);
        return NULL;
}

static bool
is_io_failure(int rc)
{
        return rc == SOMBRA_EIO || rc == SOMBRA_ENOSPC || rc == SOMBRA_EFAILED;
}

/*
 * Every A node has one PAIR edge out, to a B node of the same transaction,
 * and there are as many B nodes as A nodes: each transaction is whole or
 * absent. Marks present[t][i] for each one found.
 */
static void
pairs_check(const char *what, sombra_conn *c, bool present[WRITERS][TXNS])
{
        const uint64_t *ids;
        uint64_t *a;
        size_t na, nb;

        memset(present, 0, sizeof(bool) * WRITERS * TXNS);
        cr_assert(eq(int, sombra_nodes_by_label(c, "B", &ids, &nb), SOMBRA_OK), "%s", what);
        cr_assert(eq(int, sombra_nodes_by_label(c, "A", &ids, &na), SOMBRA_OK), "%s", what);
        cr_assert(eq(sz, na, nb), "%s: %zu A nodes, %zu B nodes: a half transaction", what, na, nb);
        a = malloc((na ? na : 1) * sizeof(*a)); /* ids live only until the next read */
        cr_assert(a != NULL);
        if (na > 0)
                memcpy(a, ids, na * sizeof(*a));
        for (size_t k = 0; k < na; k++) {
                const struct sombra_entity *e;
                const struct sombra_neighbor *nbr;
                int64_t t, i;
                size_t n;

                cr_assert(eq(int, sombra_node_get(c, a[k], &e), SOMBRA_OK), "%s", what);
                t = support_prop_int(e, "t");
                i = support_prop_int(e, "i");
                cr_assert(t >= 0 && t < WRITERS && i >= 0 && i < TXNS, "%s: A node %" PRIu64, what,
                          a[k]);
                cr_assert(eq(int, present[t][i], false),
                          "%s: transaction %" PRId64 "/%" PRId64 " twice", what, t, i);
                present[t][i] = true;
                cr_assert(
                    eq(int, sombra_neighbors(c, a[k], SOMBRA_OUT, NULL, 0, &nbr, &n), SOMBRA_OK));
                cr_assert(eq(sz, n, 1), "%s: A node of %" PRId64 "/%" PRId64 " has %zu edges", what,
                          t, i, n);
                cr_assert(eq(int, sombra_node_get(c, nbr[0].node, &e), SOMBRA_OK), "%s", what);
                cr_assert(e->nlabels == 1 && strcmp(e->labels[0], "B") == 0 &&
                              support_prop_int(e, "t") == t && support_prop_int(e, "i") == i,
                          "%s: the PAIR edge of %" PRId64 "/%" PRId64 " leads elsewhere", what, t,
                          i);
        }
        free(a);
}

static void
acked_present(const char *what, struct writer *w, bool present[WRITERS][TXNS])
{
        for (int t = 0; t < WRITERS; t++)
                for (int i = 0; i < TXNS; i++)
                        if (w[t].acked[i])
                                cr_assert(present[t][i],
                                          "%s: acknowledged transaction %d/%d is missing", what, t,
                                          i);
}

/* Reopens without faults: it must open, verify, and hold what was promised. */
static void
reopen_check(const char *what, struct writer *w)
{
        bool present[WRITERS][TXNS];
        char problem[256] = "";
        sombra_db *db;
        sombra_conn *c;
        int rc = sombra_open(support_path(DB), NULL, &db);

        cr_assert(eq(int, rc, SOMBRA_OK), "%s: reopen: %s", what, sombra_strerror(rc));
        rc = sombra_verify(db, problem, sizeof(problem));
        cr_assert(eq(int, rc, SOMBRA_OK), "%s: verify: %s", what, problem);
        cr_assert(eq(int, sombra_conn_acquire(db, &c), SOMBRA_OK));
        pairs_check(what, c, present);
        acked_present(what, w, present);
        cr_assert(eq(int, sombra_conn_release(c), SOMBRA_OK));
        cr_assert(eq(int, sombra_close(db), SOMBRA_OK), "%s: close after reopen", what);
}

/*
 * After the fault, before close: acknowledged data reads back, and after a
 * failed sync, or a fault that keeps failing, a write fails. When every
 * page write fails from the fault on, a read may
 * fail instead: commits answered before their pages were published
 * (deferred publication) can never be published, and a read must not show
 * a state without them. The reopen checks them.
 */
static void
live_check(const char *what, sombra_db *db, struct writer *w, const struct io_faults *f)
{
        bool refuse, dead_disk;
        bool present[WRITERS][TXNS];
        const uint64_t *ids;
        char live[128];
        sombra_conn *c;
        size_t n;
        int rc;

        cr_assert(eq(int, sombra_conn_acquire(db, &c), SOMBRA_OK));
        snprintf(live, sizeof(live), "%s, before close", what);
        rc = sombra_nodes_by_label(c, "B", &ids, &n);
        /* Read after this read: the publication it asks for may be what meets the fault. */
        refuse = (f->sticky || f->ops == 1u << IO_OP_SYNC) && f->fired > 0;
        dead_disk = f->sticky && (f->ops & 1u << IO_OP_WRITE) && f->fired > 0;
        cr_assert(rc == SOMBRA_OK || (dead_disk && rc == SOMBRA_EFAILED), "%s: a read after: %s",
                  live, sombra_strerror(rc));
        if (rc == SOMBRA_OK) {
                pairs_check(live, c, present);
                acked_present(live, w, present);
        }
        rc = sombra_node_create(c, NULL, 0, NULL, 0, NULL);
        if (refuse)
                cr_assert(is_io_failure(rc), "%s: a write after: %s", what, sombra_strerror(rc));
        else
                cr_assert(rc == SOMBRA_OK || is_io_failure(rc), "%s: a write after: %s", what,
                          sombra_strerror(rc));
        cr_assert(eq(int, sombra_conn_release(c), SOMBRA_OK));
}

/*
 * One run: the fault fires at the n-th matching call. Returns whether it
 * fired (the sweep goes on while it does).
 */
static bool
run_once(const char *kind, enum sombra_sync_mode mode, struct io_faults armed, int64_t n)
{
        struct io_faults faults = armed;
        struct writer w[WRITERS];
        pthread_t tid[WRITERS];
        struct sombra_config cfg;
        char what[96];
        sombra_db *db;
        int rc;

        snprintf(what, sizeof(what), "%s at call %" PRId64, kind, n);
        support_remove(DB);
        support_remove(DB "-wal");
        memset(w, 0, sizeof(w));
        faults.countdown = n;
        sombra_config_production(&cfg);
        cfg.sync_mode = mode;
        rc = engine_open(support_path(DB), &cfg, &faults, &db);
        if (rc != SOMBRA_OK) {
                cr_assert(is_io_failure(rc) && faults.fired > 0, "%s: open: %s", what,
                          sombra_strerror(rc));
                reopen_check(what, w);
                return true;
        }
        for (int t = 0; t < WRITERS; t++) {
                w[t] = (struct writer){.db = db, .t = t};
                cr_assert(eq(int, pthread_create(&tid[t], NULL, txn_writer_main, &w[t]), 0));
        }
        for (int t = 0; t < WRITERS; t++) {
                pthread_join(tid[t], NULL);
                cr_assert(w[t].failure == SOMBRA_OK || is_io_failure(w[t].failure),
                          "%s: writer %d: %s", what, t, sombra_strerror(w[t].failure));
        }
        live_check(what, db, w, &faults);
        rc = sombra_close(db);
        cr_assert(rc == SOMBRA_OK || is_io_failure(rc), "%s: close: %s", what, sombra_strerror(rc));
        reopen_check(what, w);
        return faults.fired > 0;
}

static void
sweep(const char *kind, enum sombra_sync_mode mode, struct io_faults armed)
{
        int64_t n = 0;

        while (run_once(kind, mode, armed, n))
                n++;
        cr_assert(gt(i64, n, 10), "%s: only %" PRId64 " calls to fail", kind, n);
        fprintf(stderr, "faults: %s: %" PRId64 " runs, each failing a different call\n", kind, n);
}

Test(faults, eio_on_every_write_in_turn)
{
        sweep("write EIO", SOMBRA_SYNC_FULL,
              (struct io_faults){.ops = 1u << IO_OP_WRITE, .err = EIO});
}

Test(faults, enospc_on_every_write_in_turn)
{
        sweep("write ENOSPC", SOMBRA_SYNC_FULL,
              (struct io_faults){.ops = 1u << IO_OP_WRITE, .err = ENOSPC});
}

Test(faults, a_short_write_at_every_write_in_turn)
{
        sweep("short write", SOMBRA_SYNC_FULL,
              (struct io_faults){.ops = 1u << IO_OP_WRITE, .err = EIO, .short_write = true});
}

Test(faults, eio_on_every_fdatasync_in_turn)
{
        sweep("fdatasync EIO", SOMBRA_SYNC_FULL,
              (struct io_faults){.ops = 1u << IO_OP_SYNC, .err = EIO});
}

Test(faults, a_failed_fdatasync_that_loses_the_unsynced_wal)
{
        sweep("lossy fdatasync", SOMBRA_SYNC_FULL,
              (struct io_faults){.ops = 1u << IO_OP_SYNC, .err = EIO, .drop_unsynced = true});
}

Test(faults, every_write_failing_from_the_nth_on)
{
        sweep("sticky write EIO", SOMBRA_SYNC_FULL,
              (struct io_faults){.ops = 1u << IO_OP_WRITE, .err = EIO, .sticky = true});
}

Test(faults, eio_on_every_write_in_turn_in_normal_mode)
{
        sweep("write EIO, NORMAL", SOMBRA_SYNC_NORMAL,
              (struct io_faults){.ops = 1u << IO_OP_WRITE, .err = EIO});
}

/*
 * The publisher's page write fails: the commits of its group, and every
 * later one, must get an error, never a success. An empty interactive txn
 * holds the writer while three connections queue more requests than a group
 * takes; the fault is armed before that txn's commit, which writes nothing,
 * so the first page write to fail is the publisher's (a full group with more
 * waiting is always its). An answer sent before the write would be a success.
 */
Test(faults, a_failed_page_write_on_the_publisher_answers_its_group_with_the_error)
{
        enum { QUEUES = 3, BATCHES = 150 };
        struct io_faults faults = {.ops = 1u << IO_OP_WRITE,
                                   .files = IO_FILE_DB,
                                   .countdown = INT64_MAX,
                                   .err = EIO,
                                   .sticky = true};
        static sombra_batch *b[QUEUES][BATCHES];
        static uint64_t ticket[QUEUES][BATCHES];
        sombra_conn *owner, *queued[QUEUES];
        struct sombra_config cfg;
        struct sombra_stats st;
        sombra_db *db;
        int rc;

        cr_assert(gt(int, QUEUES *BATCHES, 256), "more than a group takes");
        /* No sync before an answer: in FULL, the sync would report the failure too. */
        sombra_config_benchmark(&cfg);
        cfg.publish_every_group = true; /* a deferred group would be answered before any write */
        cr_assert(eq(int, engine_open(support_path(DB), &cfg, &faults, &db), SOMBRA_OK));
        for (int q = 0; q < QUEUES; q++)
                cr_assert(eq(int, sombra_conn_acquire(db, &queued[q]), SOMBRA_OK));
        cr_assert(eq(int, sombra_conn_acquire(db, &owner), SOMBRA_OK));
        cr_assert(eq(int, sombra_txn_begin(owner), SOMBRA_OK));
        for (int q = 0; q < QUEUES; q++) {
                for (int i = 0; i < BATCHES; i++) {
                        cr_assert(eq(int, sombra_batch_new(&b[q][i]), SOMBRA_OK));
                        cr_assert(eq(int, sombra_batch_node_create(b[q][i], NULL, 0, NULL, 0, NULL),
                                     SOMBRA_OK));
                        cr_assert(
                            eq(int,
                               sombra_batch_submit_async(queued[q], b[q][i], false, &ticket[q][i]),
                               SOMBRA_OK));
                }
        }
        io_faults_lock(&faults);
        faults.countdown = 0;
        io_faults_unlock(&faults);
        cr_assert(eq(int, sombra_txn_commit(owner), SOMBRA_OK)); /* nothing to write */
        for (int q = 0; q < QUEUES; q++) {
                for (int i = 0; i < BATCHES; i++) {
                        rc = sombra_wait(queued[q], ticket[q][i]);
                        cr_assert(is_io_failure(rc) || rc == SOMBRA_EFAILED,
                                  "batch %d of %d: %s after the page write failed", i, q,
                                  sombra_strerror(rc));
                        sombra_batch_free(b[q][i]);
                }
                cr_assert(eq(int, sombra_conn_release(queued[q]), SOMBRA_OK));
        }
        cr_assert(gt(u64, faults.fired, 0));
        cr_assert(eq(int, sombra_stats(db, &st), SOMBRA_OK));
        cr_assert(ge(u64, st.publisher_groups, 1));
        cr_assert(eq(int, sombra_conn_release(owner), SOMBRA_OK));
        rc = sombra_close(db);
        cr_assert(rc == SOMBRA_EFAILED || is_io_failure(rc), "close: %s", sombra_strerror(rc));
}

/*
 * Deferred publication after a failed log write: the group that failed got
 * an error, and a later group (refused, with nothing to log) must not make
 * the writer answer unpublished, nor publish the state with the failed
 * commit in it: a read shows the commits before, or fails. The file is
 * first made large enough for the writer to defer.
 */
Test(faults, a_commit_whose_log_write_failed_is_never_shown_to_readers)
{
        struct io_faults faults = {
            .ops = 1u << IO_OP_WRITE, .files = IO_FILE_WAL, .countdown = INT64_MAX, .err = EIO};
        static const uint8_t blob[1000];
        struct sombra_prop p = {"blob", {.type = SOMBRA_BYTES, .u.s = {blob, sizeof(blob)}}};
        struct sombra_config cfg;
        struct sombra_stats st;
        sombra_batch *b;
        sombra_conn *c, *r;
        uint64_t nodes = 0;
        sombra_db *db;
        int rc;

        sombra_config_benchmark(&cfg);
        cr_assert(eq(int, engine_open(support_path(DB), &cfg, &faults, &db), SOMBRA_OK));
        cr_assert(eq(int, sombra_conn_acquire(db, &c), SOMBRA_OK));
        cr_assert(eq(int, sombra_conn_acquire(db, &r), SOMBRA_OK));
        cr_assert(eq(int, sombra_batch_new(&b), SOMBRA_OK));
        for (int i = 0; i < 1000; i++)
                cr_assert(eq(int, sombra_batch_node_create(b, NULL, 0, &p, 1, NULL), SOMBRA_OK));
        cr_assert(eq(int, sombra_batch_submit(c, b), SOMBRA_OK));
        sombra_batch_free(b);
        for (int i = 0; i < 20; i++)
                cr_assert(eq(int, sombra_node_create(c, NULL, 0, NULL, 0, NULL), SOMBRA_OK));
        cr_assert(eq(int, sombra_stats(db, &st), SOMBRA_OK));
        cr_assert(gt(u64, st.unpublished_groups, 0), "the writer deferred before the fault");
        io_faults_lock(&faults);
        faults.countdown = 0;
        io_faults_unlock(&faults);
        rc = sombra_node_create(c, NULL, 0, NULL, 0, NULL);
        cr_assert(is_io_failure(rc), "the commit whose log write failed: %s", sombra_strerror(rc));
        cr_assert(gt(u64, faults.fired, 0));
        rc = sombra_node_create(c, NULL, 0, NULL, 0, NULL);
        cr_assert(is_io_failure(rc), "a commit after the failure: %s", sombra_strerror(rc));
        rc = sombra_count(r, &nodes, NULL);
        cr_assert(rc == SOMBRA_OK || rc == SOMBRA_EFAILED, "%s", sombra_strerror(rc));
        if (rc == SOMBRA_OK)
                cr_assert(eq(u64, nodes, 1020), "readers see %" PRIu64 " nodes", nodes);
        cr_assert(eq(int, sombra_conn_release(c), SOMBRA_OK));
        cr_assert(eq(int, sombra_conn_release(r), SOMBRA_OK));
        rc = sombra_close(db);
        cr_assert(rc == SOMBRA_OK || is_io_failure(rc), "close: %s", sombra_strerror(rc));
}
