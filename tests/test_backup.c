/*
 * test_backup.c - sombra_backup while writers commit, and the id scans
 * (sombra_node_ids, sombra_edge_ids) that `sombra export` pages through.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>

#include "support.h"

/* Every batch of the writers makes this many nodes and as many edges (a ring). */
#define RING 8

static sombra_db *db;

static void
setup(void)
{
        support_dir_make("backup");
        db = NULL;
}

static void
teardown(void)
{
        support_db_close(&db);
        support_dir_remove();
}

TestSuite(backup, .init = setup, .fini = teardown, .timeout = 240);

struct writer {
        pthread_t thread;
        uint32_t stop;
        uint64_t acked; /* batches acknowledged (atomic) */
        int status;
};

static uint64_t
acked(struct writer *w)
{
        return __atomic_load_n(&w[0].acked, __ATOMIC_ACQUIRE) +
               __atomic_load_n(&w[1].acked, __ATOMIC_ACQUIRE);
}

static void *
write_rings(void *arg)
{
        struct writer *w = arg;
        sombra_conn *c = support_conn_acquire(db);
        sombra_batch *b;
        const char *label[] = {"Ring"};

        cr_assert_eq(sombra_batch_new(&b), SOMBRA_OK);
        while (!__atomic_load_n(&w->stop, __ATOMIC_ACQUIRE) && w->status == SOMBRA_OK) {
                for (int i = 0; i < RING; i++)
                        sombra_batch_node_create(b, label, 1, NULL, 0, NULL);
                for (int i = 0; i < RING; i++)
                        sombra_batch_edge_create(b, SOMBRA_BATCH_REF(i),
                                                 SOMBRA_BATCH_REF((i + 1) % RING), "NEXT", NULL, 0,
                                                 NULL);
                w->status = sombra_batch_submit(c, b);
                if (w->status == SOMBRA_OK)
                        __atomic_add_fetch(&w->acked, 1, __ATOMIC_RELEASE);
                sombra_batch_reset(b);
        }
        sombra_batch_free(b);
        sombra_conn_release(c);
        return NULL;
}

/* Opens a backup on its own, verifies it, and returns its node count (edges must match). */
static uint64_t
backup_check(const char *name)
{
        sombra_db *copy;
        sombra_conn *c;
        char problem[256];
        uint64_t nodes, edges;

        cr_assert_eq(sombra_open(support_path(name), NULL, &copy), SOMBRA_OK);
        cr_assert_eq(sombra_verify(copy, problem, sizeof(problem)), SOMBRA_OK, "%s: %s", name,
                     problem);
        c = support_conn_acquire(copy);
        cr_assert_eq(sombra_count(c, &nodes, &edges), SOMBRA_OK);
        cr_assert_eq(sombra_conn_release(c), SOMBRA_OK);
        cr_assert_eq(sombra_close(copy), SOMBRA_OK);
        cr_expect_eq(nodes % RING, 0, "%s: %lu nodes: part of a batch", name, (unsigned long)nodes);
        cr_expect_eq(edges, nodes, "%s: %lu edges for %lu nodes", name, (unsigned long)edges,
                     (unsigned long)nodes);
        return nodes;
}

Test(backup, a_backup_taken_while_writers_commit_holds_whole_batches_and_every_acknowledged_one)
{
        struct sombra_config cfg;
        struct writer w[2] = {{0}, {0}};

        sombra_config_production(&cfg);
        /* Small, so that automatic checkpoints fall due while a copy holds them off. */
        cfg.checkpoint_threshold = 64 << 10;
        cr_assert_eq(sombra_open(support_path("db"), &cfg, &db), SOMBRA_OK);
        for (int i = 0; i < 2; i++)
                pthread_create(&w[i].thread, NULL, write_rings, &w[i]);
        for (int k = 0; k < 5; k++) {
                char name[32];
                uint64_t before = acked(w);
                /* The writers are well under way before each copy begins. */
                while (acked(w) < before + 100)
                        sched_yield();
                before = acked(w);
                snprintf(name, sizeof(name), "copy%d", k);
                cr_assert_eq(sombra_backup(db, support_path(name)), SOMBRA_OK);
                cr_expect_geq(backup_check(name), before * RING,
                              "%s lacks batches acknowledged before the backup began", name);
                cr_expect_gt(acked(w), before,
                             "no writer committed while the copy was taken and checked");
        }
        for (int i = 0; i < 2; i++) {
                __atomic_store_n(&w[i].stop, 1, __ATOMIC_RELEASE);
                pthread_join(w[i].thread, NULL);
                cr_expect_eq(w[i].status, SOMBRA_OK);
        }
        /* The hold is gone: checkpoints run again. */
        cr_expect_eq(sombra_checkpoint(db), SOMBRA_OK);
}

Test(backup, a_backup_never_overwrites_a_file)
{
        cr_assert_eq(sombra_open(support_path("db"), NULL, &db), SOMBRA_OK);
        support_write_file("taken", "mine", 4);
        cr_expect_eq(sombra_backup(db, support_path("taken")), SOMBRA_EEXIST);
        cr_expect_eq(support_file_size("taken"), 4);
        cr_expect_eq(sombra_backup(db, support_path("no/such/dir")), SOMBRA_ENOTFOUND);
        cr_expect_eq(sombra_backup(NULL, support_path("x")), SOMBRA_EINVAL);
        cr_expect_eq(sombra_backup(db, ""), SOMBRA_EINVAL);
        cr_expect(!support_file_exists("x"));
}

/* Pages through the ids with the given scan, `page` at a time, into all. */
static size_t
scan(sombra_conn *c, bool edges, size_t page, uint64_t *all)
{
        const uint64_t *ids;
        uint64_t after = 0;
        size_t n, total = 0;

        do {
                int rc = edges ? sombra_edge_ids(c, after, page, &ids, &n)
                               : sombra_node_ids(c, after, page, &ids, &n);
                cr_assert_eq(rc, SOMBRA_OK);
                cr_assert_leq(n, page);
                for (size_t i = 0; i < n; i++)
                        all[total++] = ids[i];
                if (n > 0)
                        after = ids[n - 1];
        } while (n == page);
        return total;
}

Test(backup, node_ids_and_edge_ids_page_through_every_live_id_in_order)
{
        static uint64_t made[2500], seen[2500];
        const uint64_t *ids;
        uint64_t nodes, edges;
        sombra_batch *b;
        sombra_conn *c;
        size_t n, live = 0;

        cr_assert_eq(sombra_open(support_path("db"), NULL, &db), SOMBRA_OK);
        c = support_conn_acquire(db);
        cr_expect_eq(sombra_node_ids(c, 0, 10, &ids, &n), SOMBRA_OK);
        cr_expect_eq(n, 0);
        cr_expect_eq(sombra_node_ids(c, 0, 0, &ids, &n), SOMBRA_EINVAL);
        cr_assert_eq(sombra_batch_new(&b), SOMBRA_OK);
        for (int i = 0; i < 2500; i++)
                sombra_batch_node_create(b, NULL, 0, NULL, 0, NULL);
        for (int i = 1; i < 2500; i++)
                sombra_batch_edge_create(b, SOMBRA_BATCH_REF(i - 1), SOMBRA_BATCH_REF(i), "E", NULL,
                                         0, NULL);
        cr_assert_eq(sombra_batch_submit(c, b), SOMBRA_OK);
        for (int i = 0; i < 2500; i++)
                sombra_batch_id(b, SOMBRA_BATCH_REF(i), &made[i]);
        sombra_batch_free(b);
        /* Every seventh node goes, and its edges with it: gaps in both id ranges. */
        for (int i = 0; i < 2500; i += 7)
                cr_assert_eq(sombra_node_delete(c, made[i]), SOMBRA_OK);
        for (int i = 0; i < 2500; i++)
                if (i % 7 != 0)
                        made[live++] = made[i];
        for (size_t page = 1; page <= 4096; page *= 8) {
                cr_assert_eq(scan(c, false, page, seen), live, "page %zu", page);
                cr_expect_arr_eq(seen, made, live * sizeof(*made));
        }
        cr_assert_eq(sombra_count(c, &nodes, &edges), SOMBRA_OK);
        cr_expect_eq(scan(c, true, 100, seen), edges);
        for (size_t i = 1; i < edges; i++)
                cr_expect_gt(seen[i], seen[i - 1]);
        cr_expect_eq(sombra_node_ids(c, UINT64_MAX, 10, &ids, &n), SOMBRA_OK);
        cr_expect_eq(n, 0);
        cr_assert_eq(sombra_conn_release(c), SOMBRA_OK);
}
