/*
 * test_backup.c - sombra_backup and sombra_backup_compact while writers
 * commit, what a compacted copy holds (the same trees entry for entry, no
 * free page), their failures, and the id scans (sombra_node_ids,
 * sombra_edge_ids) that `sombra export` pages through.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>

#include "engine.h"
#include "store.h"
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

/*
 * Five copies with `backup` while two writers commit: each holds whole
 * batches, every batch acknowledged before it began, and verifies.
 */
static void
backups_while_writers_commit(int (*backup)(sombra_db *db, const char *dest_path))
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
                cr_assert_eq(backup(db, support_path(name)), SOMBRA_OK);
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

Test(backup, a_backup_taken_while_writers_commit_holds_whole_batches_and_every_acknowledged_one)
{
        backups_while_writers_commit(sombra_backup);
}

Test(backup, a_compact_backup_taken_while_writers_commit_holds_whole_batches)
{
        backups_while_writers_commit(sombra_backup_compact);
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
        cr_expect_eq(sombra_backup_compact(db, support_path("taken")), SOMBRA_EEXIST);
        cr_expect_eq(support_file_size("taken"), 4);
        cr_expect_eq(sombra_backup_compact(db, support_path("no/such/dir")), SOMBRA_ENOTFOUND);
        cr_expect_eq(sombra_backup_compact(NULL, support_path("x")), SOMBRA_EINVAL);
        cr_expect_eq(sombra_backup_compact(db, NULL), SOMBRA_EINVAL);
        cr_expect_eq(sombra_backup_compact(db, ""), SOMBRA_EINVAL);
        cr_expect(!support_file_exists("x"));
}

/* ---- what a compacted copy holds ---- */

#define BIO_LEN 20000 /* a property value that needs overflow pages */

/*
 * A graph that reaches every tree: two labels, properties of every type
 * under a dozen keys (one value long enough for overflow pages), two edge
 * types with properties, an index; then every fifth node deleted (with its
 * edges), a label and a property taken off others. Nodes made: n.
 */
static void
graph_make(sombra_db *target, int n, int edges_per_node)
{
        static char bio[BIO_LEN];
        const char *person[] = {"Person"}, *admin[] = {"Person", "Admin"};
        sombra_conn *c = support_conn_acquire(target);
        uint64_t *ids = malloc(n * sizeof(*ids));
        sombra_batch *b;

        cr_assert(ids != NULL);
        memset(bio, 'b', sizeof(bio));
        cr_assert_eq(sombra_batch_new(&b), SOMBRA_OK);
        for (int at = 0; at < n; at += 1000) {
                int end = at + 1000 < n ? at + 1000 : n;
                for (int i = at; i < end; i++) {
                        char name[32], key[16];
                        uint8_t blob[4] = {(uint8_t)i, 0, 0xff, (uint8_t)(i >> 8)};
                        snprintf(name, sizeof(name), "name-%d", i);
                        snprintf(key, sizeof(key), "k%d", i % 7);
                        struct sombra_prop p[] = {
                            {"name", {.type = SOMBRA_STRING, .u.s = {name, strlen(name)}}},
                            {"age", {.type = SOMBRA_INT, .u.i = i % 90}},
                            {"score", {.type = SOMBRA_DOUBLE, .u.d = i / 3.0}},
                            {"ok", {.type = SOMBRA_BOOL, .u.b = i % 2}},
                            {"blob", {.type = SOMBRA_BYTES, .u.s = {blob, (size_t)(i % 5)}}},
                            {key, {.type = SOMBRA_NULL}},
                            {"bio", {.type = SOMBRA_STRING, .u.s = {bio, BIO_LEN}}},
                        };
                        cr_assert_eq(sombra_batch_node_create(b, i % 3 ? person : admin,
                                                              i % 3 ? 1 : 2, p,
                                                              i % 500 == 0 ? 7 : 6, NULL),
                                     SOMBRA_OK);
                }
                cr_assert_eq(sombra_batch_submit(c, b), SOMBRA_OK);
                for (int i = at; i < end; i++)
                        cr_assert_eq(sombra_batch_id(b, SOMBRA_BATCH_REF(i - at), &ids[i]),
                                     SOMBRA_OK);
                sombra_batch_reset(b);
        }
        cr_assert_eq(sombra_index_create(c, "Person", "age"), SOMBRA_OK);
        for (int at = 0; at < n; at += 1000) {
                for (int i = at; i < n && i < at + 1000; i++)
                        for (int k = 1; k <= edges_per_node; k++) {
                                struct sombra_prop since = {"since",
                                                            {.type = SOMBRA_INT, .u.i = i * k}};
                                cr_assert_eq(sombra_batch_edge_create(
                                                 b, ids[i], ids[(i * 7 + k * 13) % n],
                                                 k % 2 ? "KNOWS" : "LIKES", &since, 1, NULL),
                                             SOMBRA_OK);
                        }
                cr_assert_eq(sombra_batch_submit(c, b), SOMBRA_OK);
                sombra_batch_reset(b);
        }
        for (int i = 0; i < n; i += 5)
                cr_assert_eq(sombra_batch_node_delete(b, ids[i]), SOMBRA_OK);
        cr_assert_eq(sombra_batch_submit(c, b), SOMBRA_OK);
        for (int i = 3; i < n; i += 15) {
                cr_assert_eq(sombra_node_label_remove(c, ids[i], "Admin"), SOMBRA_OK);
                cr_assert_eq(sombra_node_unset(c, ids[i], "score"), SOMBRA_OK);
        }
        sombra_batch_free(b);
        cr_assert_eq(sombra_conn_release(c), SOMBRA_OK);
        free(ids);
}

static struct store *
store_must_open(const char *name)
{
        struct sombra_config cfg;
        struct store *s;
        int rc;

        sombra_config_production(&cfg);
        cfg.read_only = true;
        rc = store_open(support_path(name), &cfg, NULL, &s);
        cr_assert_eq(rc, SOMBRA_OK, "%s: %s", name, sombra_strerror(rc));
        return s;
}

/*
 * The databases a and b (closed) hold the same entries in every tree, in the
 * same order with the same values, and the same counts and next ids. Every
 * tree of a must have entries, so that nothing goes unchecked.
 */
static void
expect_same_contents(const char *a, const char *b)
{
        struct store *sa = store_must_open(a), *sb = store_must_open(b);
        const struct store_state *x = store_committed(sa), *y = store_committed(sb);
        struct buf va = BUF_INIT, vb = BUF_INIT;

        cr_expect_eq(x->next_node, y->next_node);
        cr_expect_eq(x->next_edge, y->next_edge);
        cr_expect_eq(x->nodes, y->nodes);
        cr_expect_eq(x->edges, y->edges);
        cr_expect_eq(x->next_name, y->next_name);
        for (int t = 0; t < STORE_TREES; t++) {
                struct btree_cursor ca, cb;
                uint64_t n = 0;
                store_cursor(sa, x, t, &ca);
                store_cursor(sb, y, t, &cb);
                cr_assert_eq(btree_cursor_seek(&ca, NULL, 0), SOMBRA_OK);
                cr_assert_eq(btree_cursor_seek(&cb, NULL, 0), SOMBRA_OK);
                for (; btree_cursor_valid(&ca); n++) {
                        const uint8_t *ka, *kb;
                        size_t la, lb;
                        cr_assert(btree_cursor_valid(&cb), "tree %d: %s ends after %lu entries", t,
                                  b, (unsigned long)n);
                        btree_cursor_key(&ca, &ka, &la);
                        btree_cursor_key(&cb, &kb, &lb);
                        cr_assert(la == lb && memcmp(ka, kb, la) == 0, "tree %d: entry %lu's key",
                                  t, (unsigned long)n);
                        cr_assert_eq(btree_cursor_value(&ca, &va), SOMBRA_OK);
                        cr_assert_eq(btree_cursor_value(&cb, &vb), SOMBRA_OK);
                        cr_assert(va.len == vb.len && memcmp(va.data, vb.data, va.len) == 0,
                                  "tree %d: entry %lu's value", t, (unsigned long)n);
                        cr_assert_eq(btree_cursor_next(&ca), SOMBRA_OK);
                        cr_assert_eq(btree_cursor_next(&cb), SOMBRA_OK);
                }
                cr_assert(!btree_cursor_valid(&cb), "tree %d: %s has more than %lu entries", t, b,
                          (unsigned long)n);
                cr_assert_gt(n, 0, "tree %d of %s is empty: the test misses it", t, a);
                btree_cursor_close(&ca);
                btree_cursor_close(&cb);
        }
        buf_free(&va);
        buf_free(&vb);
        cr_assert_eq(store_close(sa), SOMBRA_OK);
        cr_assert_eq(store_close(sb), SOMBRA_OK);
}

static void
verify_ok(sombra_db *target, const char *name)
{
        char problem[256];
        int rc = sombra_verify(target, problem, sizeof(problem));

        cr_assert_eq(rc, SOMBRA_OK, "%s: %s (%s)", name, sombra_strerror(rc), problem);
}

/* Opens name, checks it, and gives its stats. */
static struct sombra_stats
copy_stats(const char *name)
{
        struct sombra_stats st;
        sombra_db *copy;

        cr_assert_eq(sombra_open(support_path(name), NULL, &copy), SOMBRA_OK, "%s", name);
        verify_ok(copy, name);
        cr_assert_eq(sombra_stats(copy, &st), SOMBRA_OK);
        support_db_close(&copy);
        return st;
}

Test(backup, a_compact_copy_holds_every_entry_of_every_tree_and_verifies)
{
        const struct sombra_value age = {.type = SOMBRA_INT, .u.i = 42};
        const uint64_t *ids;
        size_t n, in_source;
        sombra_db *copy;
        sombra_conn *c;

        cr_assert_eq(sombra_open(support_path("db"), NULL, &db), SOMBRA_OK);
        graph_make(db, 3000, 4);
        cr_assert_eq(sombra_backup_compact(db, support_path("copy")), SOMBRA_OK);
        cr_expect(!support_file_exists("copy-wal"));
        c = support_conn_acquire(db);
        cr_assert_eq(sombra_nodes_by_prop(c, "Person", "age", &age, &ids, &n), SOMBRA_OK);
        in_source = n;
        cr_assert_eq(sombra_conn_release(c), SOMBRA_OK);
        support_db_close(&db);

        cr_assert_eq(sombra_open(support_path("copy"), NULL, &copy), SOMBRA_OK);
        verify_ok(copy, "copy");
        c = support_conn_acquire(copy);
        cr_assert_eq(sombra_nodes_by_prop(c, "Person", "age", &age, &ids, &n), SOMBRA_OK);
        cr_expect_eq(n, in_source);
        cr_expect_gt(n, 0);
        cr_assert_eq(sombra_conn_release(c), SOMBRA_OK);
        support_db_close(&copy);
        expect_same_contents("db", "copy");
}

/*
 * Deletions leave free pages and part-filled leaves behind in the source and
 * in a plain copy; the compacted copy has neither, so it is much smaller.
 */
Test(backup, after_deleting_most_nodes_a_compact_copy_is_much_smaller_and_has_no_free_page)
{
        struct sombra_stats plain, compact;
        sombra_conn *c;

        cr_assert_eq(sombra_open(support_path("db"), NULL, &db), SOMBRA_OK);
        graph_make(db, 6000, 5);
        c = support_conn_acquire(db);
        for (uint64_t id = 1; id <= 6000; id++)
                if (id % 5 != 1 && id % 4 != 0) /* every fifth was deleted already */
                        cr_assert_eq(sombra_node_delete(c, id), SOMBRA_OK, "node %lu",
                                     (unsigned long)id);
        cr_assert_eq(sombra_conn_release(c), SOMBRA_OK);
        cr_assert_eq(sombra_backup(db, support_path("plain")), SOMBRA_OK);
        cr_assert_eq(sombra_backup_compact(db, support_path("compact")), SOMBRA_OK);
        support_db_close(&db);
        expect_same_contents("db", "compact");

        plain = copy_stats("plain");
        compact = copy_stats("compact");
        cr_expect_gt(plain.free_pages, plain.pages / 2, "%lu of %lu pages free in the plain copy",
                     (unsigned long)plain.free_pages, (unsigned long)plain.pages);
        cr_expect_eq(compact.free_pages, 0);
        cr_expect_eq(compact.pages * compact.page_size, support_file_size("compact"));
        cr_expect_lt(support_file_size("compact") * 8, support_file_size("plain"),
                     "compact %lu bytes, plain %lu", (unsigned long)support_file_size("compact"),
                     (unsigned long)support_file_size("plain"));
}

/*
 * A compact copy that fails to be written, synced, or to have its directory
 * entry synced, is removed; the source carries on. Every write of the copy
 * fails in turn (the last run is the first that no fault reaches), once as
 * a short write.
 */
Test(backup, a_compact_copy_that_fails_to_be_written_or_synced_is_removed)
{
        struct io_faults faults = {0};
        int64_t k;
        int rc;

        cr_assert_eq(engine_open(support_path("db"), NULL, &faults, &db), SOMBRA_OK);
        graph_make(db, 400, 2);
        for (k = 0;; k++) {
                io_faults_lock(&faults);
                faults.ops = 1u << IO_OP_WRITE;
                faults.files = IO_FILE_COPY;
                faults.err = k % 2 ? ENOSPC : EIO;
                faults.short_write = k == 3;
                faults.countdown = k;
                faults.fired = 0;
                io_faults_unlock(&faults);
                rc = sombra_backup_compact(db, support_path("copy"));
                if (faults.fired == 0)
                        break;
                cr_assert_eq(rc, k % 2 ? SOMBRA_ENOSPC : SOMBRA_EIO, "write %ld: %s", (long)k,
                             sombra_strerror(rc));
                cr_assert(!support_file_exists("copy"), "write %ld failed, the copy stayed",
                          (long)k);
        }
        cr_assert_eq(rc, SOMBRA_OK);
        cr_assert_gt(k, 10, "only %ld writes: the sweep missed the trees", (long)k);
        support_remove("copy");
        for (int i = 0; i < 2; i++) {
                io_faults_lock(&faults);
                faults.ops = 1u << IO_OP_SYNC;
                faults.files = i == 0 ? IO_FILE_COPY : IO_FILE_DIR;
                faults.err = EIO;
                faults.countdown = 0;
                faults.fired = 0;
                io_faults_unlock(&faults);
                rc = sombra_backup_compact(db, support_path("copy"));
                cr_assert_eq(faults.fired, 1, "sync %d", i);
                cr_assert_eq(rc, SOMBRA_EIO, "sync %d: %s", i, sombra_strerror(rc));
                cr_assert(!support_file_exists("copy"), "sync %d failed, the copy stayed", i);
        }
        io_faults_lock(&faults);
        faults.ops = 0;
        io_faults_unlock(&faults);
        verify_ok(db, "db");
        cr_assert_eq(sombra_backup_compact(db, support_path("copy")), SOMBRA_OK);
        support_db_close(&db);
        expect_same_contents("db", "copy");
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
