/*
 * tsan_stress.c - the concurrency scenarios as a plain program, for the
 * ThreadSanitizer build (Criterion's runner does not start under TSan).
 * Prints one line per scenario and "N passed, N failed"; exits non-zero on
 * any failure. TSan itself aborts the run on a data race (halt_on_error).
 */
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine.h"
#include "stress.h"

/* A scratch directory with one scenario's database `name` in it, and that database's log. */
struct scratch {
        char dir[24], path[64], wal[80];
};

static bool
scratch_make(struct scratch *t, const char *name)
{
        snprintf(t->dir, sizeof(t->dir), "/tmp/sombra-tsan-XXXXXX");
        if (mkdtemp(t->dir) == NULL)
                return false;
        snprintf(t->path, sizeof(t->path), "%s/%s", t->dir, name);
        snprintf(t->wal, sizeof(t->wal), "%s-wal", t->path);
        return true;
}

static void
scratch_remove(const struct scratch *t)
{
        unlink(t->path);
        unlink(t->wal);
        rmdir(t->dir);
}

static int
scenario(const char *name, const struct sombra_config *cfg, int64_t txns)
{
        struct scratch t;
        struct stress_result res;
        bool ok;

        if (!scratch_make(&t, "t.sombra"))
                return 0;
        stress_readers_vs_writer(t.path, cfg, txns, 4, &res);
        ok = res.status == SOMBRA_OK && res.failures == 0 && res.reads > 0;
        printf("%s %s: %lu read transactions, %d broken%s%s\n", ok ? "PASS" : "FAIL", name,
               (unsigned long)res.reads, res.failures, res.status ? ", " : "", res.problem);
        scratch_remove(&t);
        return ok;
}

/* The public API from 16 threads in FULL mode: the writer, the committer, readers. */
static int
engine_scenario(void)
{
        struct scratch t;
        struct engine_stress_result res;
        sombra_db *db;
        bool ok = false;

        if (!scratch_make(&t, "e.sombra"))
                return 0;
        if (sombra_open(t.path, NULL, &db) == SOMBRA_OK) {
                engine_stress(db, 16, 1500, &res);
                ok = res.failures == 0 && res.writes > 0;
                ok = sombra_close(db) == SOMBRA_OK && ok;
                printf("%s engine_16_threads_full: %lu reads, %lu writes%s%s\n",
                       ok ? "PASS" : "FAIL", (unsigned long)res.reads, (unsigned long)res.writes,
                       res.failures ? ", " : "", res.problem);
        }
        scratch_remove(&t);
        return ok;
}

struct stress_job {
        sombra_db *db;
        struct engine_stress_result res;
};

static void *
stress_job_main(void *arg)
{
        struct stress_job *job = arg;

        engine_stress(job->db, 8, 1000, &job->res);
        return NULL;
}

/* Whether the file at path opens and verifies; removes it and its WAL after. */
static bool
copy_healthy(const char *path)
{
        char wal[96];
        sombra_db *db;
        bool ok = false;

        if (sombra_open(path, NULL, &db) == SOMBRA_OK) {
                ok = sombra_verify(db, NULL, 0) == SOMBRA_OK;
                ok = sombra_close(db) == SOMBRA_OK && ok;
        }
        snprintf(wal, sizeof(wal), "%s-wal", path);
        unlink(path);
        unlink(wal);
        return ok;
}

/*
 * Four backups while 8 threads write and read, plain and compacted in turn
 * (sombra_backup_compact walks the trees on this thread): every copy is healthy.
 */
static int
backup_scenario(void)
{
        struct scratch t;
        char copy[80];
        struct stress_job job = {0};
        pthread_t tid;
        int copies = 0, rc;
        bool ok = false;

        if (!scratch_make(&t, "b.sombra"))
                return 0;
        if (sombra_open(t.path, NULL, &job.db) == SOMBRA_OK &&
            pthread_create(&tid, NULL, stress_job_main, &job) == 0) {
                for (int k = 0; k < 4; k++) {
                        struct timespec pause = {0, 200 * 1000000};
                        nanosleep(&pause, NULL);
                        snprintf(copy, sizeof(copy), "%s/copy%d.sombra", t.dir, k);
                        rc = k % 2 ? sombra_backup_compact(job.db, copy)
                                   : sombra_backup(job.db, copy);
                        copies += rc == SOMBRA_OK && copy_healthy(copy);
                }
                pthread_join(tid, NULL);
                ok = copies == 4 && job.res.failures == 0 && job.res.writes > 0;
        }
        ok = job.db != NULL && sombra_close(job.db) == SOMBRA_OK && ok;
        printf("%s backup_under_8_threads: %d healthy copies, %lu writes meanwhile%s%s\n",
               ok ? "PASS" : "FAIL", copies, (unsigned long)job.res.writes,
               job.res.failures ? ", " : "", job.res.problem);
        scratch_remove(&t);
        return ok;
}

struct close_round;

/* A call of close_race_scenario's, on a thread of its own. */
struct close_call {
        pthread_t thread;
        struct close_round *round;
        int rc;
};

/* One round of close_race_scenario. */
struct close_round {
        sombra_db *db;
        const char *copy;
        uint32_t returned; /* calls that have returned (atomic) */
        struct close_call calls[3];
};

static void
close_call_returned(struct close_call *call)
{
        __atomic_add_fetch(&call->round->returned, 1, __ATOMIC_SEQ_CST);
}

static void *
close_call_backup(void *arg)
{
        struct close_call *call = arg;

        call->rc = sombra_backup(call->round->db, call->round->copy);
        close_call_returned(call);
        return NULL;
}

/* Waits for a connection (the pool has one left for two of these), writes, releases. */
static void *
close_call_acquire(void *arg)
{
        struct close_call *call = arg;
        sombra_conn *c;

        call->rc = sombra_conn_acquire(call->round->db, &c);
        close_call_returned(call);
        if (call->rc != SOMBRA_OK)
                return NULL;
        call->rc = sombra_node_create(c, NULL, 0, NULL, 0, NULL);
        if (sombra_conn_release(c) != SOMBRA_OK)
                call->rc = SOMBRA_ECLOSED;
        return NULL;
}

/*
 * sombra_close in a loop against a backup and two callers waiting for the
 * pool's last connection, released by the main thread just before: close
 * must refuse until every call has returned, and every call must succeed.
 * The engine's count of calls in flight tells when all three have begun.
 */
static int
close_race_scenario(void)
{
        struct scratch t;
        char copy[80];
        struct sombra_config cfg;
        uint64_t refused = 0;
        int rounds = 0;

        if (!scratch_make(&t, "c.sombra"))
                return 0;
        sombra_config_balanced(&cfg);
        cfg.max_connections = 2;
        for (; rounds < 10; rounds++) {
                struct close_round r = {.copy = copy};
                sombra_conn *held;
                bool ok;
                int rc;

                snprintf(copy, sizeof(copy), "%s/copy%d.sombra", t.dir, rounds);
                if (sombra_open(t.path, &cfg, &r.db) != SOMBRA_OK ||
                    sombra_conn_acquire(r.db, &held) != SOMBRA_OK)
                        break;
                for (int i = 0; i < 3; i++) {
                        r.calls[i].round = &r;
                        pthread_create(&r.calls[i].thread, NULL,
                                       i == 0 ? close_call_backup : close_call_acquire,
                                       &r.calls[i]);
                }
                while (__atomic_load_n(&r.db->calls, __ATOMIC_SEQ_CST) +
                           __atomic_load_n(&r.returned, __ATOMIC_SEQ_CST) <
                       3)
                        sched_yield();
                sombra_conn_release(held);
                while ((rc = sombra_close(r.db)) == SOMBRA_EBUSY) {
                        refused++;
                        sched_yield();
                }
                ok = rc == SOMBRA_OK;
                for (int i = 0; i < 3; i++) {
                        pthread_join(r.calls[i].thread, NULL);
                        ok = ok && r.calls[i].rc == SOMBRA_OK;
                }
                if (!ok || !copy_healthy(copy))
                        break;
        }
        printf("%s close_vs_backup_and_acquire: %d of 10 rounds, close refused %lu times\n",
               rounds == 10 ? "PASS" : "FAIL", rounds, (unsigned long)refused);
        scratch_remove(&t);
        return rounds == 10;
}

/*
 * Writers only, each keeping ASYNC_WINDOW one-node batches in flight: full
 * groups go to the publisher thread while no reader asks, so the writer
 * defers groups beside a publication under way (README, "Deferred
 * publication"); then one reader counts every answered node.
 */
enum { ASYNC_WRITERS = 4, ASYNC_WINDOW = 128, ASYNC_BATCHES = 3000 };

static void *
async_writer_main(void *arg)
{
        sombra_db *db = arg;
        sombra_batch *b[ASYNC_WINDOW] = {0};
        uint64_t ticket[ASYNC_WINDOW];
        bool in_flight[ASYNC_WINDOW] = {0};
        sombra_conn *c = NULL;
        intptr_t failures = sombra_conn_acquire(db, &c) != SOMBRA_OK;

        for (int i = 0; !failures && i < ASYNC_BATCHES; i++) {
                int k = i % ASYNC_WINDOW;
                bool failed;
                if (in_flight[k])
                        failures += sombra_wait(c, ticket[k]) != SOMBRA_OK;
                failed = (b[k] == NULL && sombra_batch_new(&b[k]) != SOMBRA_OK) ||
                         sombra_batch_reset(b[k]) != SOMBRA_OK ||
                         sombra_batch_node_create(b[k], NULL, 0, NULL, 0, NULL) != SOMBRA_OK ||
                         sombra_batch_submit_async(c, b[k], false, &ticket[k]) != SOMBRA_OK;
                in_flight[k] = !failed;
                failures += failed;
        }
        /* Every submission is collected before its batch goes, whatever failed. */
        for (int k = 0; k < ASYNC_WINDOW; k++) {
                if (in_flight[k])
                        failures += sombra_wait(c, ticket[k]) != SOMBRA_OK;
                sombra_batch_free(b[k]);
        }
        if (c != NULL)
                sombra_conn_release(c);
        return (void *)failures;
}

static int
async_writers_scenario(void)
{
        struct scratch t;
        char problem[128] = "";
        struct sombra_config cfg;
        struct sombra_stats st = {0};
        pthread_t tids[ASYNC_WRITERS];
        uint64_t nodes = 0;
        intptr_t failures = 0;
        sombra_conn *c;
        sombra_db *db;
        bool ok = false;

        if (!scratch_make(&t, "a.sombra"))
                return 0;
        sombra_config_benchmark(&cfg);
        if (sombra_open(t.path, &cfg, &db) == SOMBRA_OK) {
                for (int i = 0; i < ASYNC_WRITERS; i++)
                        pthread_create(&tids[i], NULL, async_writer_main, db);
                for (int i = 0; i < ASYNC_WRITERS; i++) {
                        void *r;
                        pthread_join(tids[i], &r);
                        failures += (intptr_t)r;
                }
                if (sombra_conn_acquire(db, &c) == SOMBRA_OK) {
                        ok = sombra_count(c, &nodes, NULL) == SOMBRA_OK &&
                             nodes == (uint64_t)ASYNC_WRITERS * ASYNC_BATCHES && failures == 0;
                        sombra_conn_release(c);
                }
                ok = sombra_stats(db, &st) == SOMBRA_OK && ok;
                ok = sombra_verify(db, problem, sizeof(problem)) == SOMBRA_OK && ok;
                ok = sombra_close(db) == SOMBRA_OK && ok;
                printf("%s async_writers_deferred: %lu nodes, %lu groups unpublished, %lu by the "
                       "publisher%s%s\n",
                       ok ? "PASS" : "FAIL", (unsigned long)nodes,
                       (unsigned long)st.unpublished_groups, (unsigned long)st.publisher_groups,
                       problem[0] ? ", " : "", problem);
        }
        scratch_remove(&t);
        return ok;
}

int
main(void)
{
        struct sombra_config cfg;
        int passed = 0, total = 0;

        sombra_config_benchmark(&cfg);
        cfg.checksums = true;
        passed += scenario("readers_vs_writer", &cfg, 1500);
        total++;
        cfg.checkpoint_threshold = 64u << 10;
        cfg.page_cache_size = SOMBRA_MIN_CACHE_PAGES;
        passed += scenario("readers_vs_writer_checkpoints_small_cache", &cfg, 1000);
        total++;
        passed += engine_scenario();
        total++;
        passed += backup_scenario();
        total++;
        passed += close_race_scenario();
        total++;
        passed += async_writers_scenario();
        total++;
        printf("tsan: %d passed, %d failed\n", passed, total - passed);
        return passed == total ? 0 : 1;
}
