/*
 * test_close.c - sombra_close against calls in flight on other threads: a
 * backup copying, a caller waiting for a connection, maintenance calls
 * queued behind one another. Close must refuse with SOMBRA_EBUSY, closing
 * nothing, until every one of them has returned; the calls must succeed.
 *
 * The tests read the engine's count of calls in flight (struct sombra_db's
 * `calls`) only to know that a thread is inside its call before close runs:
 * a close that came first would be right to free the database under a call
 * that had not begun.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <time.h>

#include "engine.h"
#include "support.h"

/* Nodes of the filled database, each with a property of PAYLOAD bytes: about 16 MiB. */
#define NODES   16384
#define PAYLOAD 1024

static sombra_db *db;
static uint32_t finished; /* calls of the test's threads that have returned (atomic) */

static void
setup(void)
{
        support_dir_make("close");
        db = NULL;
        finished = 0;
}

static void
teardown(void)
{
        support_db_close(&db);
        support_dir_remove();
}

TestSuite(close, .init = setup, .fini = teardown, .timeout = 300);

/* Opens "db" with a pool of max_connections and fills it with NODES nodes, checkpointed. */
static void
open_filled(uint32_t max_connections)
{
        static char payload[PAYLOAD];
        struct sombra_config cfg;
        struct sombra_prop prop = {"p", {.type = SOMBRA_BYTES, .u.s = {payload, PAYLOAD}}};
        sombra_batch *b;
        sombra_conn *c;

        memset(payload, 'x', sizeof(payload));
        sombra_config_balanced(&cfg);
        cfg.max_connections = max_connections;
        cr_assert_eq(sombra_open(support_path("db"), &cfg, &db), SOMBRA_OK);
        c = support_conn_acquire(db);
        cr_assert_eq(sombra_batch_new(&b), SOMBRA_OK);
        for (int n = 0; n < NODES; n += 256) {
                for (int i = 0; i < 256; i++)
                        cr_assert_eq(sombra_batch_node_create(b, NULL, 0, &prop, 1, NULL),
                                     SOMBRA_OK);
                cr_assert_eq(sombra_batch_submit(c, b), SOMBRA_OK);
                cr_assert_eq(sombra_batch_reset(b), SOMBRA_OK);
        }
        sombra_batch_free(b);
        cr_assert_eq(sombra_conn_release(c), SOMBRA_OK);
        cr_assert_eq(sombra_checkpoint(db), SOMBRA_OK);
}

/* Waits until n calls of the test's threads have begun: in flight or returned. */
static void
wait_for_calls(uint32_t n)
{
        while (__atomic_load_n(&db->calls, __ATOMIC_SEQ_CST) +
                   __atomic_load_n(&finished, __ATOMIC_SEQ_CST) <
               n)
                sched_yield();
}

static void
call_returned(void)
{
        __atomic_add_fetch(&finished, 1, __ATOMIC_SEQ_CST);
}

/* Calls sombra_close until it stops answering SOMBRA_EBUSY; returns how often it did. */
static uint64_t
close_when_idle(void)
{
        uint64_t refused = 0;
        int rc;

        while ((rc = sombra_close(db)) == SOMBRA_EBUSY) {
                refused++;
                sched_yield();
        }
        cr_assert_eq(rc, SOMBRA_OK);
        db = NULL;
        return refused;
}

static void *
backup_thread(void *arg)
{
        int *rc = arg;

        *rc = sombra_backup(db, support_path("copy"));
        call_returned();
        return NULL;
}

Test(close, close_refuses_while_a_backup_copies_and_the_backup_completes)
{
        pthread_t t;
        sombra_conn *c;
        char problem[256];
        uint64_t nodes, edges, refused;
        int rc = SOMBRA_EIO;

        open_filled(4);
        pthread_create(&t, NULL, backup_thread, &rc);
        wait_for_calls(1);
        refused = close_when_idle();
        pthread_join(t, NULL);
        cr_assert_eq(rc, SOMBRA_OK, "backup: %s", sombra_strerror(rc));
        cr_expect_gt(refused, 0, "close was never refused while the backup ran");
        cr_assert_eq(sombra_open(support_path("copy"), NULL, &db), SOMBRA_OK);
        cr_assert_eq(sombra_verify(db, problem, sizeof(problem)), SOMBRA_OK, "%s", problem);
        c = support_conn_acquire(db);
        cr_assert_eq(sombra_count(c, &nodes, &edges), SOMBRA_OK);
        cr_assert_eq(nodes, NODES);
        cr_assert_eq(sombra_conn_release(c), SOMBRA_OK);
}

struct waiter {
        pthread_t thread;
        int acquire_rc;
        int write_rc;
        int release_rc;
};

/* Waits for the pool's only connection, writes through it, gives it back. */
static void *
acquire_thread(void *arg)
{
        struct waiter *w = arg;
        sombra_conn *c;

        const struct timespec work = {0, 20 * 1000000};

        w->acquire_rc = sombra_conn_acquire(db, &c);
        call_returned();
        if (w->acquire_rc != SOMBRA_OK)
                return NULL;
        nanosleep(&work, NULL); /* long enough for a close that did not wait to stop the writer */
        w->write_rc = sombra_node_create(c, NULL, 0, NULL, 0, NULL);
        w->release_rc = sombra_conn_release(c);
        return NULL;
}

/* The waiter wakes a moment after the release: a close right after it must still refuse. */
Test(close, close_refuses_while_a_caller_waits_for_a_connection)
{
        struct sombra_config cfg;
        const struct timespec nap = {0, 20 * 1000000};

        sombra_config_balanced(&cfg);
        cfg.max_connections = 1;
        for (uint32_t round = 1; round <= 10; round++) {
                struct waiter w = {0};
                sombra_conn *c;
                uint64_t nodes, edges;

                cr_assert_eq(sombra_open(support_path("db"), &cfg, &db), SOMBRA_OK);
                c = support_conn_acquire(db);
                finished = 0;
                pthread_create(&w.thread, NULL, acquire_thread, &w);
                wait_for_calls(1);
                nanosleep(&nap, NULL); /* asleep on the pool by now */
                cr_assert_eq(sombra_close(db), SOMBRA_EBUSY);
                cr_assert_eq(sombra_conn_release(c), SOMBRA_OK);
                close_when_idle();
                pthread_join(w.thread, NULL);
                cr_assert_eq(w.acquire_rc, SOMBRA_OK);
                cr_assert_eq(w.write_rc, SOMBRA_OK);
                cr_assert_eq(w.release_rc, SOMBRA_OK);
                cr_assert_eq(sombra_open(support_path("db"), NULL, &db), SOMBRA_OK);
                c = support_conn_acquire(db);
                cr_assert_eq(sombra_count(c, &nodes, &edges), SOMBRA_OK);
                cr_assert_eq(nodes, round);
                cr_assert_eq(sombra_conn_release(c), SOMBRA_OK);
                support_db_close(&db);
        }
}

static void *
verify_thread(void *arg)
{
        int *rc = arg;

        *rc = sombra_verify(db, NULL, 0);
        call_returned();
        return NULL;
}

static void *
stats_thread(void *arg)
{
        int *rc = arg;
        struct sombra_stats st;

        *rc = sombra_stats(db, &st);
        call_returned();
        return NULL;
}

Test(close, close_refuses_while_maintenance_calls_queue_for_the_writer)
{
        pthread_t verify, stats;
        int verify_rc = SOMBRA_EIO, stats_rc = SOMBRA_EIO;

        open_filled(4);
        /* The verify holds the engine's connection; the stats call waits for it. */
        pthread_create(&verify, NULL, verify_thread, &verify_rc);
        wait_for_calls(1);
        pthread_create(&stats, NULL, stats_thread, &stats_rc);
        wait_for_calls(2);
        cr_expect_gt(close_when_idle(), 0);
        pthread_join(verify, NULL);
        pthread_join(stats, NULL);
        cr_assert_eq(verify_rc, SOMBRA_OK);
        cr_assert_eq(stats_rc, SOMBRA_OK);
}

Test(close, a_refused_close_leaves_the_database_fully_usable)
{
        sombra_conn *c;
        struct sombra_stats st;
        uint64_t id;

        cr_assert_eq(sombra_open(support_path("db"), NULL, &db), SOMBRA_OK);
        c = support_conn_acquire(db);
        cr_assert_eq(sombra_close(db), SOMBRA_EBUSY);
        cr_assert_eq(sombra_node_create(c, NULL, 0, NULL, 0, &id), SOMBRA_OK);
        cr_assert_eq(sombra_conn_release(c), SOMBRA_OK);
        c = support_conn_acquire(db);
        cr_assert_eq(sombra_conn_release(c), SOMBRA_OK);
        cr_assert_eq(sombra_checkpoint(db), SOMBRA_OK);
        cr_assert_eq(sombra_stats(db, &st), SOMBRA_OK);
        cr_assert_eq(st.nodes, 1);
        cr_assert_eq(sombra_backup(db, support_path("copy")), SOMBRA_OK);
}
