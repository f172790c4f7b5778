/*
 * test_store.c - transactions, the meta pages, checkpoints, recovery and the
 * store's failure policy, through the store API and the io fault hook.
 *
 * Most tests run a deterministic workload against the store and the same
 * workload against an in-memory model, then compare the two: while open,
 * after close and reopen, after a crash. Two ways to crash:
 *   - a forked child does the work and leaves with _exit or SIGKILL, never
 *     closing the store;
 *   - crash_copy() copies the database and its WAL while the store is open:
 *     the copy is exactly what a process crash at that moment leaves behind
 *     (what was written is in the files, nothing else).
 * expect_pages_accounted() checks after recovery that every page of the file
 * belongs to exactly one tree or the free space, so that a recovery which
 * reads right but will later overwrite live pages is caught too.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <xxhash.h>

#include "sombra.h"
#include "btree.h"
#include "pager.h"
#include "store.h"
#include "support.h"
#include "wal.h"

static void
setup(void)
{
        support_dir_make("store");
}

TestSuite(store, .init = setup, .fini = support_dir_remove);

/* The name of database `name`'s WAL, in one of a few static buffers used in turn. */
static const char *
wal_of(const char *name)
{
        static char names[4][64];
        static unsigned next;
        char *p = names[next++ % 4];

        cr_assert(lt(int, snprintf(p, 64, "%s-wal", name), 64));
        return p;
}

/* Copies database `name` and its WAL to `copy`: the files a crash now would leave. */
static void
crash_copy(const char *name, const char *copy)
{
        support_copy_file(name, copy);
        support_copy_file(wal_of(name), wal_of(copy));
}

/* A big-endian u64 field of the file. */
static uint64_t
read_u64(const char *name, uint64_t off)
{
        uint8_t b[8];

        support_read_at(name, off, b, sizeof(b));
        return get_be64(b);
}

/* Meta page layout (store.c): 192 bytes of fields, generation at 16, pages in the file at 32. */
#define PS         8192u
#define META_GEN   16u
#define META_NPG   32u
#define META_BYTES 192u

static uint64_t
meta_gen(const char *name, int slot)
{
        return read_u64(name, (uint64_t)slot * PS + META_GEN);
}

static int
newest_meta(const char *name)
{
        return meta_gen(name, 1) > meta_gen(name, 0) ? 1 : 0;
}

/* ---- configs and opening ---- */

static struct sombra_config
config(uint32_t cache_pages)
{
        struct sombra_config c;

        cr_assert(eq(int, sombra_config_production(&c), SOMBRA_OK));
        cr_assert(eq(u32, c.page_size, PS));
        c.page_cache_size = cache_pages;
        return c;
}

static struct store *
open_db(const char *name, const struct sombra_config *cfg, struct io_faults *faults)
{
        struct store *s = NULL;

        cr_assert(eq(int, store_open(support_path(name), cfg, faults, &s), SOMBRA_OK), "open %s",
                  name);
        cr_assert(not(eq(ptr, s, NULL)));
        return s;
}

static struct store_stats
stats(const struct store *s)
{
        struct store_stats st;

        store_stats(s, &st);
        return st;
}

/* ---- keys, values and the model ---- */

#define NKEYS  8192
#define NTREES 3
#define MAXVAL 9600

static const enum store_tree trees[NTREES] = {TREE_NODES, TREE_EDGES, TREE_NAMES};

/* The expected contents: ver[t][i] is the version of key i in trees[t], -1 when absent. */
struct model {
        int32_t ver[NTREES][NKEYS];
        uint32_t hi; /* keys 0..hi-1 are the ones checked */
};

static void
model_init(struct model *m)
{
        memset(m->ver, 0xff, sizeof(m->ver));
        m->hi = 1024;
}

static size_t
val_len(uint32_t i, uint32_t ver)
{
        if ((i + ver) % 97 == 0)
                return 9000 + i % 500; /* spills to overflow pages */
        return (size_t)((i * 31 + ver * 7) % 180) + 1;
}

static void
val_fill(uint8_t *v, uint32_t i, uint32_t ver)
{
        size_t len = val_len(i, ver);

        for (size_t j = 0; j < len; j++)
                v[j] = (uint8_t)(i * 131 + ver * 17 + j * 7 + (j >> 8));
}

static int
put_kv(struct store *s, enum store_tree t, uint32_t i, uint32_t ver)
{
        uint8_t k[8], v[MAXVAL];

        put_be64(k, i);
        val_fill(v, i, ver);
        return store_put(s, t, k, sizeof(k), v, val_len(i, ver));
}

static int
del_kv(struct store *s, enum store_tree t, uint32_t i)
{
        uint8_t k[8];

        put_be64(k, i);
        return store_del(s, t, k, sizeof(k));
}

/* SOMBRA_OK when key i of t in state st has version ver (ver < 0: is absent). */
static int
check_kv(struct store *s, const struct store_state *st, enum store_tree t, uint32_t i, int32_t ver)
{
        uint8_t k[8], v[MAXVAL];
        struct buf got = BUF_INIT;
        int rc;

        put_be64(k, i);
        rc = store_get(s, st, t, k, sizeof(k), &got);
        if (ver < 0) {
                rc = rc == SOMBRA_ENOTFOUND ? SOMBRA_OK : rc == SOMBRA_OK ? SOMBRA_EEXIST : rc;
        } else if (rc == SOMBRA_OK) {
                val_fill(v, i, (uint32_t)ver);
                if (got.len != val_len(i, (uint32_t)ver) || memcmp(got.data, v, got.len) != 0)
                        rc = SOMBRA_ECORRUPT;
        }
        buf_free(&got);
        return rc;
}

/* Entries in tree t of state st, counted with a cursor. */
static uint64_t
count_entries(struct store *s, const struct store_state *st, enum store_tree t)
{
        struct btree_cursor c;
        uint64_t n = 0;

        store_cursor(s, st, t, &c);
        cr_assert(eq(int, btree_cursor_seek(&c, NULL, 0), SOMBRA_OK));
        while (btree_cursor_valid(&c)) {
                n++;
                cr_assert(eq(int, btree_cursor_next(&c), SOMBRA_OK));
        }
        btree_cursor_close(&c);
        return n;
}

/* SOMBRA_OK when the committed state holds exactly the model. */
static int
model_compare(struct store *s, const struct model *m, char *why, size_t whylen)
{
        const struct store_state *st = store_committed(s);

        for (int t = 0; t < NTREES; t++) {
                uint64_t live = 0;
                for (uint32_t i = 0; i < NKEYS; i++) {
                        int rc;
                        if (m->ver[t][i] >= 0)
                                live++;
                        if (i >= m->hi)
                                continue;
                        rc = check_kv(s, st, trees[t], i, m->ver[t][i]);
                        if (rc != SOMBRA_OK) {
                                snprintf(why, whylen, "tree %d key %u (want version %d): %s", t, i,
                                         m->ver[t][i], sombra_strerror(rc));
                                return rc;
                        }
                }
                if (count_entries(s, st, trees[t]) != live) {
                        snprintf(why, whylen, "tree %d holds %llu entries, want %llu", t,
                                 (unsigned long long)count_entries(s, st, trees[t]),
                                 (unsigned long long)live);
                        return SOMBRA_ECORRUPT;
                }
        }
        return SOMBRA_OK;
}

static void
expect_model(struct store *s, const struct model *m)
{
        char why[200] = "";

        cr_assert(eq(int, model_compare(s, m, why, sizeof(why)), SOMBRA_OK), "%s", why);
}

/*
 * Commit number c of the standard workload: 30 writes spread over three trees
 * and 1000 keys, every fifth one a delete of a present key. With s NULL only
 * the model changes; otherwise the model changes only if the commit succeeds.
 * Returns the first failure (the transaction is then rolled back).
 */
static int
workload_rc(struct store *s, struct model *m, uint32_t c, uint64_t *lsn)
{
        struct model *next = malloc(sizeof(*next));
        int rc = s == NULL ? SOMBRA_OK : store_begin(s);

        cr_assert(not(eq(ptr, next, NULL)));
        memcpy(next, m, sizeof(*next));
        for (uint32_t j = 0; j < 30 && rc == SOMBRA_OK; j++) {
                uint32_t i = (c * 37 + j * 11) % 1000;
                int t = (int)((i + j) % NTREES);
                if (j % 5 == 4 && next->ver[t][i] >= 0) {
                        next->ver[t][i] = -1;
                        rc = s == NULL ? SOMBRA_OK : del_kv(s, trees[t], i);
                } else {
                        next->ver[t][i] = (int32_t)c;
                        rc = s == NULL ? SOMBRA_OK : put_kv(s, trees[t], i, c);
                }
        }
        if (s != NULL && rc != SOMBRA_OK)
                store_rollback(s);
        else if (s != NULL)
                rc = store_commit(s, lsn);
        if (rc == SOMBRA_OK)
                memcpy(m, next, sizeof(*m));
        free(next);
        return rc;
}

/* Runs commits first..last of the workload, each of which must succeed. */
static uint64_t
workload(struct store *s, struct model *m, uint32_t first, uint32_t last)
{
        uint64_t lsn = 0;

        for (uint32_t c = first; c <= last; c++)
                cr_assert(eq(int, workload_rc(s, m, c, &lsn), SOMBRA_OK), "commit %u", c);
        return lsn;
}

/* The model after commits 0..n-1. */
static void
model_after(struct model *m, uint32_t n)
{
        model_init(m);
        for (uint32_t c = 0; c < n; c++)
                workload_rc(NULL, m, c, NULL);
}

/* Asserts that the store holds the model after k commits for some k in lo..hi; returns k. */
static uint32_t
expect_some_prefix(struct store *s, uint32_t lo, uint32_t hi)
{
        struct model *m = malloc(sizeof(*m));
        char why[200];

        cr_assert(not(eq(ptr, m, NULL)));
        for (uint32_t k = lo; k <= hi; k++) {
                model_after(m, k);
                if (model_compare(s, m, why, sizeof(why)) == SOMBRA_OK) {
                        free(m);
                        return k;
                }
        }
        cr_fatal("the store holds none of the states after %u..%u commits", lo, hi);
        return 0;
}

/* ---- page accounting ---- */

struct page_map {
        uint8_t *seen;
        uint64_t npages;
};

static int
mark_page(void *arg, pgno_t pgno)
{
        struct page_map *pm = arg;

        if (pgno < 2 || pgno >= pm->npages || pm->seen[pgno]++ != 0)
                return SOMBRA_ECORRUPT;
        return SOMBRA_OK;
}

/* Every page but the metas is in exactly one tree or in the free space. */
static void
expect_pages_accounted(struct store *s)
{
        struct pager *p = store_pager(s);
        struct page_map pm = {NULL, pager_npages(p)};
        uint64_t entries;

        pm.seen = calloc(pm.npages, 1);
        cr_assert(not(eq(ptr, pm.seen, NULL)));
        for (int t = 0; t < STORE_TREES; t++)
                cr_assert(eq(int,
                             btree_check(p, store_committed(s)->roots[t], mark_page, &pm, &entries),
                             SOMBRA_OK),
                          "tree %d", t);
        cr_assert(
            eq(int, pager_visit_unreachable(p, store_freelist_head(s), mark_page, &pm), SOMBRA_OK),
            "a free page is also used, or listed twice");
        for (uint64_t pg = 2; pg < pm.npages; pg++)
                cr_assert(eq(u8, pm.seen[pg], 1), "page %llu is neither used nor free",
                          (unsigned long long)pg);
        free(pm.seen);
}

/* ---- reopening ---- */

/* Opens `name` and asserts that it holds the model with every page accounted for. */
static struct store *
open_expecting(const char *name, const struct sombra_config *cfg, const struct model *m)
{
        struct store *s = open_db(name, cfg, NULL);

        expect_model(s, m);
        expect_pages_accounted(s);
        return s;
}

/* Opens `name`, checks it as open_expecting does, and closes it again. */
static void
expect_reopened(const char *name, const struct sombra_config *cfg, const struct model *m)
{
        cr_assert(eq(int, store_close(open_expecting(name, cfg, m)), SOMBRA_OK), "%s", name);
}

/* Likewise, for a database whose opening replays exactly `replayed` commits from its WAL. */
static void
expect_recovered(const char *name, const struct sombra_config *cfg, const struct model *m,
                 uint64_t replayed)
{
        struct store *s = open_expecting(name, cfg, m);

        cr_assert(eq(u64, stats(s).replayed, replayed), "%s", name);
        cr_assert(eq(int, store_close(s), SOMBRA_OK), "%s", name);
}

/*
 * Runs commits first..last on s, which has database `name` open, closes it,
 * and asserts that the database reopens to the model. Returns the LSN of the
 * last commit.
 */
static uint64_t
commit_close_reopen(struct store *s, const char *name, const struct sombra_config *cfg,
                    struct model *m, uint32_t first, uint32_t last)
{
        uint64_t lsn = workload(s, m, first, last);

        cr_assert(eq(int, store_close(s), SOMBRA_OK), "%s", name);
        expect_reopened(name, cfg, m);
        return lsn;
}

/* Commits 0..19, a checkpoint, then commits 20..39 synced to the WAL only; m follows from empty. */
static void
checkpoint_then_log(struct store *s, struct model *m)
{
        model_init(m);
        workload(s, m, 0, 19);
        cr_assert(eq(int, store_checkpoint(s), SOMBRA_OK));
        workload(s, m, 20, 39);
        cr_assert(eq(int, store_sync(s), SOMBRA_OK));
}

/* Database "crash": what a process crash leaves after checkpoint_then_log. */
static void
make_crash(struct model *m)
{
        struct store *s = open_db("db", NULL, NULL);

        checkpoint_then_log(s, m);
        crash_copy("db", "crash");
        store_close(s);
}

/* Makes database `name` with commits 0..n-1 and closes it; m is set to what it holds. */
static void
make_db(const char *name, struct model *m, uint32_t n)
{
        struct store *s = open_db(name, NULL, NULL);

        model_init(m);
        workload(s, m, 0, n - 1);
        cr_assert(eq(int, store_close(s), SOMBRA_OK));
}

/* Opens "try", a fresh copy of "crash", with `faults` armed; returns store_open's status. */
static int
open_try(struct io_faults *faults, struct store **s)
{
        crash_copy("crash", "try");
        *s = NULL;
        return store_open(support_path("try"), NULL, faults, s);
}

/* ---- forked children: no Criterion assertions there, only exit codes ---- */

/* A child's exit code, or minus the signal that killed it. */
static int
exit_code(int status)
{
        return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}

/* Runs body in a forked child and waits for it; returns its exit_code. */
static int
run_child(int (*body)(void))
{
        pid_t pid = fork();
        int status;

        cr_assert(ge(int, pid, 0));
        if (pid == 0)
                _exit(body());
        cr_assert(eq(int, waitpid(pid, &status, 0), pid));
        return exit_code(status);
}

/* ---- transactions ---- */

Test(store, writes_need_a_transaction_and_only_one_is_open_at_a_time)
{
        struct store *s = open_db("db", NULL, NULL);
        struct model m;

        cr_assert(eq(int, put_kv(s, TREE_NODES, 1, 0), SOMBRA_ENOTXN));
        cr_assert(eq(int, del_kv(s, TREE_NODES, 1), SOMBRA_ENOTXN));
        cr_assert(eq(int, store_commit(s, NULL), SOMBRA_ENOTXN));
        cr_assert(eq(int, store_begin(s), SOMBRA_OK));
        cr_assert(store_in_txn(s));
        cr_assert(eq(int, store_begin(s), SOMBRA_EBUSY));
        cr_assert(eq(int, store_checkpoint(s), SOMBRA_EBUSY));
        store_rollback(s);
        cr_assert(not(store_in_txn(s)));
        cr_assert(eq(int, store_checkpoint(s), SOMBRA_OK));

        /* Refused writes do not spoil the transaction they were made in. */
        model_init(&m);
        cr_assert(eq(int, store_begin(s), SOMBRA_OK));
        cr_assert(eq(int, store_put(s, TREE_NODES, "", 0, "v", 1), SOMBRA_EINVAL));
        cr_assert(eq(int, store_put(s, STORE_TREES, "k", 1, "v", 1), SOMBRA_EINVAL));
        cr_assert(eq(int, del_kv(s, TREE_NODES, 5), SOMBRA_ENOTFOUND));
        cr_assert(eq(int, put_kv(s, TREE_NODES, 5, 1), SOMBRA_OK));
        cr_assert(eq(int, store_commit(s, NULL), SOMBRA_OK));
        m.ver[0][5] = 1;
        expect_model(s, &m);
        cr_assert(eq(int, store_close(s), SOMBRA_OK));

        /* ... and the log replays without them. */
        expect_reopened("db", NULL, &m);
}

Test(store, a_transaction_sees_its_writes_and_the_committed_state_only_after_commit)
{
        struct store *s = open_db("db", NULL, NULL);
        uint64_t lsn = 0, before;

        cr_assert(eq(int, store_begin(s), SOMBRA_OK));
        for (uint32_t i = 0; i < 50; i++)
                cr_assert(eq(int, put_kv(s, TREE_EDGES, i, 3), SOMBRA_OK));
        cr_assert(eq(int, del_kv(s, TREE_EDGES, 7), SOMBRA_OK));
        for (uint32_t i = 0; i < 50; i++) {
                cr_assert(eq(int, check_kv(s, store_txn_state(s), TREE_EDGES, i, i == 7 ? -1 : 3),
                             SOMBRA_OK));
                cr_assert(eq(int, check_kv(s, store_committed(s), TREE_EDGES, i, -1), SOMBRA_OK));
        }
        before = store_committed(s)->lsn;
        cr_assert(eq(int, store_commit(s, &lsn), SOMBRA_OK));
        cr_assert(eq(u64, lsn, before + 1));
        cr_assert(eq(u64, store_committed(s)->lsn, lsn));
        for (uint32_t i = 0; i < 50; i++)
                cr_assert(eq(int, check_kv(s, store_committed(s), TREE_EDGES, i, i == 7 ? -1 : 3),
                             SOMBRA_OK));

        /* A transaction that wrote nothing logs nothing and takes no LSN. */
        before = stats(s).wal_size;
        cr_assert(eq(int, store_begin(s), SOMBRA_OK));
        cr_assert(eq(int, store_commit(s, &lsn), SOMBRA_OK));
        cr_assert(eq(u64, lsn, 1));
        cr_assert(eq(u64, store_committed(s)->lsn, 1));
        cr_assert(eq(u64, stats(s).wal_size, before));
        cr_assert(eq(int, store_begin(s), SOMBRA_OK));
        cr_assert(eq(int, put_kv(s, TREE_EDGES, 60, 0), SOMBRA_OK));
        cr_assert(eq(int, store_commit(s, &lsn), SOMBRA_OK));
        cr_assert(eq(u64, lsn, 2), "the empty commit took no LSN");
        store_close(s);
}

Test(store, many_commits_survive_close_and_reopen)
{
        struct sombra_config cfg = config(256);
        struct store *s = open_db("db", &cfg, NULL);
        struct model m;
        uint64_t lsn;

        model_init(&m);
        lsn = workload(s, &m, 0, 199);
        cr_assert(eq(u64, lsn, 200));
        expect_model(s, &m);
        cr_assert(eq(int, store_close(s), SOMBRA_OK));

        s = open_expecting("db", &cfg, &m);
        cr_assert(eq(u64, stats(s).replayed, 0), "close checkpointed everything");
        cr_assert(eq(u64, store_committed(s)->lsn, 200));
        commit_close_reopen(s, "db", &cfg, &m, 200, 249);
}

Test(store, rollback_leaves_no_trace_in_file_or_wal)
{
        struct store *s = open_db("db", NULL, NULL);
        struct store_stats before;
        uint64_t db_bytes, lsn;
        size_t wal_len, wal_len_after;
        uint8_t *wal, *wal_after;
        struct model m;

        model_init(&m);
        lsn = workload(s, &m, 0, 9);
        cr_assert(eq(int, store_sync(s), SOMBRA_OK));
        before = stats(s);
        db_bytes = support_file_size("db");
        wal = support_read_file("db-wal", &wal_len); /* room past the log included (wal.h) */

        cr_assert(eq(int, store_begin(s), SOMBRA_OK));
        for (uint32_t i = 0; i < 2000; i++)
                cr_assert(eq(int, put_kv(s, TREE_NODES, i, 77), SOMBRA_OK));
        for (uint32_t i = 0; i < 1000; i++)
                if (m.ver[1][i] >= 0)
                        cr_assert(eq(int, del_kv(s, TREE_EDGES, i), SOMBRA_OK));
        store_rollback(s);

        cr_assert(eq(u64, stats(s).wal_size, before.wal_size));
        cr_assert(eq(u64, stats(s).wal_bytes, before.wal_bytes));
        cr_assert(eq(u64, stats(s).rollbacks, before.rollbacks + 1));
        wal_after = support_read_file("db-wal", &wal_len_after);
        cr_assert(eq(sz, wal_len_after, wal_len));
        cr_assert(eq(int, memcmp(wal_after, wal, wal_len), 0), "the log is byte for byte the same");
        free(wal);
        free(wal_after);
        cr_assert(eq(u64, support_file_size("db"), db_bytes));
        cr_assert(eq(u64, store_committed(s)->lsn, lsn));
        expect_model(s, &m);

        /* The next commit takes the LSN the rolled-back one would have had. */
        cr_assert(eq(u64, workload(s, &m, 10, 10), lsn + 1));
        cr_assert(eq(int, store_sync(s), SOMBRA_OK));
        crash_copy("db", "crash");
        cr_assert(eq(int, store_close(s), SOMBRA_OK));

        expect_recovered("crash", NULL, &m, 11);
        expect_reopened("db", NULL, &m);
}

/* ---- durability and recovery ---- */

static int
child_commits_and_exits_without_close(void)
{
        struct sombra_config cfg;
        struct store *s;
        struct model m;
        uint64_t lsn;

        sombra_config_benchmark(&cfg); /* OFF: the store itself never syncs */
        if (store_open(support_path("db"), &cfg, NULL, &s) != SOMBRA_OK)
                return 10;
        model_init(&m);
        for (uint32_t c = 0; c < 100; c++) {
                if (workload_rc(s, &m, c, &lsn) != SOMBRA_OK)
                        return 11;
                if (store_sync(s) != SOMBRA_OK)
                        return 12;
        }
        /* One more, written but never synced. */
        if (workload_rc(s, &m, 100, &lsn) != SOMBRA_OK)
                return 13;
        return 0;
}

Test(store, synced_commits_survive_a_crash_without_close)
{
        struct store *s;
        struct model m;

        cr_assert(eq(int, run_child(child_commits_and_exits_without_close), 0));

        model_after(&m, 101);
        s = open_expecting("db", NULL, &m);
        /*
         * The last commit was never synced, but a process crash leaves what it
         * wrote in the OS page cache, so recovery finds it too. It takes the
         * last state the child noted as published over from the file, and
         * replays the commits after it.
         */
        cr_assert(gt(u64, stats(s).adopted, 0));
        cr_assert(eq(u64, stats(s).adopted + stats(s).replayed, 101));
        cr_assert(eq(u64, store_committed(s)->lsn, 101));
        cr_assert(eq(int, store_close(s), SOMBRA_OK));

        /* Recovery checkpointed what it replayed. */
        expect_recovered("db", NULL, &m, 0);
}

/* Commits keys [first, last) with a value of `len` bytes each, one commit per key. */
static int
commit_values(struct store *s, uint32_t first, uint32_t last, size_t len)
{
        static uint8_t val[9000];
        int rc = SOMBRA_OK;

        for (uint32_t k = first; k < last && rc == SOMBRA_OK; k++) {
                memset(val, (int)(k & 0xff), len);
                rc = store_begin(s);
                if (rc == SOMBRA_OK)
                        rc = store_put(s, TREE_NAMES, &k, sizeof(k), val, len);
                if (rc == SOMBRA_OK)
                        rc = store_commit(s, NULL);
        }
        return rc;
}

#define HINT_KEYS 75u /* of 8,000 bytes: about 600 KiB of log, past two hint strides */

/*
 * A log longer than the WAL hint's stride, a checkpoint that starts a new
 * log, and a first group in it longer than where the old log's last note
 * was: the hint must then name a note of the new log, not the old one's
 * place (store.c, "WAL hint"). A small second group, so that its
 * publication moves the hint to the first's note. Dies without closing.
 */
static int
child_outgrows_the_old_logs_last_note(void)
{
        struct sombra_config cfg;
        struct store *s;

        sombra_config_benchmark(&cfg);
        cfg.checkpoint_threshold = 64u << 20;
        if (store_open(support_path("db"), &cfg, NULL, &s) != SOMBRA_OK)
                return 10;
        if (commit_values(s, 0, HINT_KEYS, 8000) != SOMBRA_OK || store_checkpoint(s) != SOMBRA_OK)
                return 11;
        store_set_autopublish(s, false);
        if (commit_values(s, HINT_KEYS, 2 * HINT_KEYS + 10, 8000) != SOMBRA_OK ||
            store_flush_log(s) != SOMBRA_OK || store_publish(s) != SOMBRA_OK)
                return 12;
        if (commit_values(s, 2 * HINT_KEYS + 10, 2 * HINT_KEYS + 20, 8000) != SOMBRA_OK ||
            store_flush_log(s) != SOMBRA_OK || store_publish(s) != SOMBRA_OK)
                return 13;
        return 0;
}

Test(store, the_wal_hint_names_a_note_of_the_log_that_follows_a_restart)
{
        uint32_t last = 2 * HINT_KEYS + 19;
        struct buf v = BUF_INIT;
        struct store *s;
        struct store_stats st;

        cr_assert(eq(int, run_child(child_outgrows_the_old_logs_last_note), 0));
        s = open_db("db", NULL, NULL);
        st = stats(s);
        cr_assert(gt(u64, st.adopted, 0), "the noted state was not taken over");
        cr_assert(lt(u64, st.scanned, st.wal_size / 2),
                  "%" PRIu64 " of %" PRIu64 " bytes of log read: the hint was passed over",
                  st.scanned, st.wal_size);
        cr_assert(eq(int, store_get(s, store_committed(s), TREE_NAMES, &last, sizeof(last), &v),
                     SOMBRA_OK));
        cr_assert(eq(sz, v.len, 8000));
        buf_free(&v);
        cr_assert(eq(int, store_close(s), SOMBRA_OK));
}

#define BIG_FIRST 2000u
#define BIG_LAST  6999u

static int
child_dies_in_a_spilling_transaction(void)
{
        struct sombra_config cfg;
        struct pager_stats ps;
        struct store *s;
        struct model m;
        uint64_t lsn;

        sombra_config_production(&cfg);
        cfg.page_cache_size = SOMBRA_MIN_CACHE_PAGES;
        if (store_open(support_path("db"), &cfg, NULL, &s) != SOMBRA_OK)
                return 10;
        model_init(&m);
        for (uint32_t c = 0; c < 40; c++) {
                if (workload_rc(s, &m, c, &lsn) != SOMBRA_OK || store_sync(s) != SOMBRA_OK)
                        return 11;
                if (c == 19 && store_checkpoint(s) != SOMBRA_OK)
                        return 12;
        }
        if (store_begin(s) != SOMBRA_OK)
                return 13;
        for (uint32_t i = BIG_FIRST; i <= BIG_LAST; i++)
                if (put_kv(s, TREE_NODES, i, 999) != SOMBRA_OK)
                        return 14;
        pager_stats(store_pager(s), &ps);
        if (ps.spills == 0)
                return 15; /* the test would not test what it says */
        raise(SIGKILL);
        return 16;
}

Test(store, a_crash_inside_a_spilling_transaction_keeps_exactly_the_commits)
{
        struct store *s;
        struct model m;

        cr_assert(eq(int, run_child(child_dies_in_a_spilling_transaction), -SIGKILL));

        model_after(&m, 40);
        m.hi = BIG_LAST + 1; /* the uncommitted keys must be absent */
        s = open_expecting("db", NULL, &m);
        cr_assert(eq(u64, stats(s).replayed, 20), "the commits after the checkpoint");
        commit_close_reopen(s, "db", NULL, &m, 40, 49);
}

Test(store, checkpoint_empties_the_wal_and_recovery_then_replays_nothing)
{
        struct store *s = open_db("db", NULL, NULL);
        struct store_stats st;
        struct model m;
        uint64_t lsn;

        model_init(&m);
        lsn = workload(s, &m, 0, 19);
        cr_assert(gt(u64, stats(s).wal_size, 0));
        cr_assert(eq(int, store_checkpoint(s), SOMBRA_OK));
        st = stats(s);
        cr_assert(eq(u64, st.wal_size, 0));
        cr_assert(eq(u64, st.checkpoint_lsn, lsn));
        cr_assert(eq(u64, st.durable_lsn, lsn));
        crash_copy("db", "crash");

        /* A second checkpoint with nothing new writes nothing. */
        cr_assert(eq(int, store_checkpoint(s), SOMBRA_OK));
        cr_assert(eq(u64, stats(s).checkpoints, st.checkpoints));
        store_close(s);

        s = open_expecting("crash", NULL, &m);
        cr_assert(eq(u64, stats(s).replayed, 0));
        cr_assert(eq(u64, store_committed(s)->lsn, lsn));
        /* New commits continue the LSNs after the checkpoint. */
        cr_assert(eq(u64, workload(s, &m, 20, 20), lsn + 1));
        store_close(s);
}

/*
 * After an OS crash a checkpoint's meta page can be on disk while the WAL
 * still has the previous generation's header and only some of its records
 * (in OFF mode they were never synced), all of them older than the meta.
 * Commits made after opening such a database must be found by the next
 * recovery, not hidden behind the missing LSNs.
 */
Test(store, commits_after_recovering_a_wal_that_ends_before_the_checkpoint_survive)
{
        struct sombra_config cfg;
        struct store *s;
        struct model m;
        uint64_t kept;

        cr_assert(eq(int, sombra_config_benchmark(&cfg), SOMBRA_OK));
        s = open_db("db", &cfg, NULL);
        model_init(&m);
        workload(s, &m, 0, 4);
        kept = WAL_HDR + stats(s).wal_size;
        workload(s, &m, 5, 9);
        support_copy_file("db-wal", "old-wal");
        cr_assert(eq(int, store_checkpoint(s), SOMBRA_OK));
        support_copy_file("db", "old");
        store_close(s);
        support_truncate("old-wal", kept);

        s = open_expecting("old", &cfg, &m);
        cr_assert(eq(u64, stats(s).replayed, 0));
        cr_assert(eq(u64, workload(s, &m, 10, 14), 15));
        crash_copy("old", "crash");
        store_close(s);

        expect_recovered("crash", &cfg, &m, 5);
}

Test(store, automatic_checkpoints_keep_the_wal_bounded)
{
        struct sombra_config cfg = config(1024);
        struct store_stats st;
        struct store *s;
        struct model m;
        uint64_t ckpt0, largest = 0, lsn;

        cfg.checkpoint_threshold = 64u << 10;
        s = open_db("db", &cfg, NULL);
        ckpt0 = stats(s).checkpoints;
        model_init(&m);
        for (uint32_t c = 0; c < 300; c++) {
                uint64_t bytes = stats(s).wal_bytes;
                workload(s, &m, c, c);
                st = stats(s);
                if (st.wal_bytes - bytes > largest)
                        largest = st.wal_bytes - bytes;
                cr_assert(lt(u64, st.wal_size, cfg.checkpoint_threshold), "after commit %u", c);
        }
        st = stats(s);
        cr_assert(eq(int, store_failure(s), SOMBRA_OK));
        /* Each checkpoint came once the log reached the threshold, not earlier or later. */
        cr_assert(ge(u64, st.checkpoints - ckpt0, 2));
        cr_assert(le(u64, (st.checkpoints - ckpt0) * cfg.checkpoint_threshold, st.wal_bytes));
        cr_assert(gt(u64, (st.checkpoints - ckpt0 + 1) * (cfg.checkpoint_threshold + largest),
                     st.wal_bytes));
        cr_assert(eq(int, store_sync(s), SOMBRA_OK));
        crash_copy("db", "crash");
        lsn = st.written_lsn;
        store_close(s);

        cr_assert(gt(u64, lsn, st.checkpoint_lsn));
        expect_recovered("crash", &cfg, &m, lsn - st.checkpoint_lsn);
}

Test(store, a_transaction_larger_than_the_page_cache_commits_and_reads_back)
{
        struct sombra_config cfg = config(SOMBRA_MIN_CACHE_PAGES);
        struct pager_stats ps;
        struct store *s = open_db("db", &cfg, NULL);
        struct model m;

        model_init(&m);
        m.hi = BIG_LAST + 1;
        cr_assert(eq(int, store_begin(s), SOMBRA_OK));
        for (uint32_t i = BIG_FIRST; i <= BIG_LAST; i++) {
                cr_assert(eq(int, put_kv(s, TREE_NODES, i, 5), SOMBRA_OK));
                m.ver[0][i] = 5;
        }
        for (uint32_t i = BIG_FIRST; i <= BIG_LAST; i += 3) {
                cr_assert(eq(int, del_kv(s, TREE_NODES, i), SOMBRA_OK));
                m.ver[0][i] = -1;
        }
        for (uint32_t i = BIG_FIRST; i <= BIG_LAST; i += 7)
                cr_assert(eq(int, check_kv(s, store_txn_state(s), TREE_NODES, i, m.ver[0][i]),
                             SOMBRA_OK));
        cr_assert(eq(int, store_commit(s, NULL), SOMBRA_OK));
        pager_stats(store_pager(s), &ps);
        cr_assert(gt(u64, ps.spills, 0), "the transaction did not outgrow the cache");
        expect_model(s, &m);
        cr_assert(eq(int, store_sync(s), SOMBRA_OK));
        crash_copy("db", "crash");
        cr_assert(eq(int, store_close(s), SOMBRA_OK));

        expect_reopened("db", &cfg, &m);
        expect_recovered("crash", &cfg, &m, 1);
}

/* ---- meta pages ---- */

Test(store, checkpoints_alternate_between_the_two_meta_pages)
{
        struct store *s = open_db("db", NULL, NULL);
        struct model m;
        int slot = newest_meta("db");
        uint64_t gen = meta_gen("db", slot);

        model_init(&m);
        cr_assert(eq(u64, gen % 2, (uint64_t)slot));
        for (uint32_t c = 0; c < 6; c++) {
                workload(s, &m, c, c);
                cr_assert(eq(int, store_checkpoint(s), SOMBRA_OK));
                cr_assert(eq(int, newest_meta("db"), 1 - slot), "checkpoint %u", c);
                cr_assert(eq(u64, meta_gen("db", 1 - slot), gen + 1));
                cr_assert(eq(u64, meta_gen("db", slot), gen), "the older meta stays");
                slot = 1 - slot;
                gen++;
        }
        store_close(s); /* nothing new since the last checkpoint */
        cr_assert(eq(u64, meta_gen("db", slot), gen));
        cr_assert(eq(u64, meta_gen("db", 1 - slot), gen - 1));
}

Test(store, a_damaged_newest_meta_after_a_wal_reset_is_corrupt_not_an_old_state)
{
        struct store *s, *t = NULL;
        struct model m;
        int slot;

        make_db("db", &m, 10);
        slot = newest_meta("db");
        for (uint64_t off = 8; off < META_BYTES; off++) {
                support_flip_byte("db", slot * PS + off, 0x10);
                cr_assert(eq(int, store_open(support_path("db"), NULL, NULL, &t), SOMBRA_ECORRUPT),
                          "meta byte %llu", (unsigned long long)off);
                support_flip_byte("db", slot * PS + off, 0x10);
        }
        expect_reopened("db", NULL, &m);

        /* The same with commits in the WAL after the checkpoint. */
        s = open_db("db", NULL, NULL);
        workload(s, &m, 10, 14);
        cr_assert(eq(int, store_sync(s), SOMBRA_OK));
        crash_copy("db", "crash");
        store_close(s);
        support_flip_byte("crash", newest_meta("crash") * PS + 40, 0x10);
        cr_assert(eq(int, store_open(support_path("crash"), NULL, NULL, &t), SOMBRA_ECORRUPT));
}

Test(store, a_damaged_newest_meta_falls_back_when_both_are_equivalent)
{
        struct store *s = open_db("db", NULL, NULL);
        struct model m;
        int slot;

        cr_assert(eq(int, store_close(s), SOMBRA_OK));
        slot = newest_meta("db");
        for (uint64_t off = 8; off < META_BYTES; off++) {
                support_flip_byte("db", slot * PS + off, 0x10);
                s = open_db("db", NULL, NULL);
                cr_assert(eq(u64, store_committed(s)->lsn, 0));
                store_close(s);
                support_flip_byte("db", slot * PS + off, 0x10);
        }

        /* The store that opened on the older meta works on. */
        support_flip_byte("db", slot * PS + 100, 0x10);
        model_init(&m);
        commit_close_reopen(open_db("db", NULL, NULL), "db", NULL, &m, 0, 9);
}

/*
 * A checkpoint that made its meta page durable but failed to reset the WAL:
 * the WAL still holds every commit since the older meta, so losing the newer
 * one loses nothing.
 */
Test(store, a_damaged_newest_meta_falls_back_when_the_wal_still_covers_it)
{
        bool found = false;

        for (int64_t n = 0; n < 200 && !found; n++) {
                char name[32], crash[32];
                struct io_faults faults = {0};
                struct store *s;
                struct model m;
                uint64_t gen;

                snprintf(name, sizeof(name), "db%lld", (long long)n);
                snprintf(crash, sizeof(crash), "crash%lld", (long long)n);
                s = open_db(name, NULL, &faults);
                model_init(&m);
                workload(s, &m, 0, 9);
                cr_assert(eq(int, store_sync(s), SOMBRA_OK));
                gen = meta_gen(name, newest_meta(name));
                faults = (struct io_faults){.ops = 1u << IO_OP_WRITE, .countdown = n, .err = EIO};
                cr_assert(eq(int, store_checkpoint(s), faults.fired ? SOMBRA_EIO : SOMBRA_OK));
                cr_assert(eq(u64, faults.fired, 1), "the checkpoint's last write was not the WAL");
                if (meta_gen(name, newest_meta(name)) == gen) {
                        store_close(s);
                        continue; /* failed before its meta page: not the case here */
                }
                found = true;
                crash_copy(name, crash);
                store_close(s);
                support_flip_byte(crash, newest_meta(crash) * PS + 50, 0x10);
                expect_recovered(crash, NULL, &m, 10);
        }
        cr_assert(found);
}

/*
 * Rewrites both meta pages of `name` in an earlier format version: 5, 4 and
 * 3 have the layout of 6; 2 had neither the WAL place (176..192) nor room
 * for it, and its checksum sat at 176.
 */
static void
meta_make_version(const char *name, uint32_t version)
{
        uint8_t b[200];

        for (int slot = 0; slot < 2; slot++) {
                support_read_at(name, (uint64_t)slot * PS, b, sizeof(b));
                cr_assert(eq(u64, get_be64(b + 176), 0), "a checkpoint that started the WAL anew");
        }
        support_meta_set_version(name, PS, version > 2 ? version : 3);
        for (int slot = 0; slot < 2 && version == 2; slot++) {
                support_read_at(name, (uint64_t)slot * PS, b, sizeof(b));
                put_be32(b + 8, 2);
                memset(b + 176, 0, sizeof(b) - 176);
                put_be64(b + 176, XXH3_64bits(b, 176));
                support_write_at(name, (uint64_t)slot * PS, b, sizeof(b));
        }
}

/*
 * A file of format `version` from its creation on (so that its leaves have
 * the fixed layout), and a crashed copy of it, their meta pages made
 * `version` again: both open.
 */
static void
expect_version_opens(uint32_t version)
{
        struct store *s = open_db("db", NULL, NULL);
        struct model m;

        cr_assert(eq(int, store_close(s), SOMBRA_OK));
        meta_make_version("db", version);
        make_db("db", &m, 10);
        s = open_db("db", NULL, NULL);
        workload(s, &m, 10, 14);
        cr_assert(eq(int, store_sync(s), SOMBRA_OK));
        crash_copy("db", "crash");
        store_close(s);
        meta_make_version("db", version);
        meta_make_version("crash", version);
        expect_reopened("db", NULL, &m);
        expect_recovered("crash", NULL, &m, 5);
        /* Both slots now say 4 (or the later format they had), so that a library of format 3
         * refuses the file. */
        for (int slot = 0; slot < 2; slot++) {
                uint32_t want = version < 4 ? 4 : version;
                cr_assert(eq(u32, (uint32_t)(read_u64("db", (uint64_t)slot * PS + 8) >> 32), want),
                          "slot %d", slot);
                cr_assert(
                    eq(u32, (uint32_t)(read_u64("crash", (uint64_t)slot * PS + 8) >> 32), want),
                    "slot %d", slot);
        }
}

Test(store, a_version_2_meta_page_still_opens)
{
        expect_version_opens(2);
}

Test(store, a_version_3_meta_page_still_opens)
{
        expect_version_opens(3);
}

Test(store, a_version_4_meta_page_still_opens_and_keeps_fixed_keys)
{
        struct store *s;

        expect_version_opens(4);
        s = open_db("db", NULL, NULL);
        cr_assert(not(store_compact_keys(s)));
        cr_assert(eq(int, store_checkpoint(s), SOMBRA_OK));
        store_close(s);
        s = open_db("db", NULL, NULL);
        cr_assert(not(store_compact_keys(s)), "a checkpoint writes format 4 again, not 5");
        store_close(s);
        s = open_db("new", NULL, NULL);
        cr_assert(store_compact_keys(s), "a new file has compact keys");
        store_close(s);
}

Test(store, a_version_5_file_keeps_its_fixed_cells_and_a_new_file_gets_varint_cells)
{
        struct store *s;

        expect_version_opens(5);
        s = open_db("db", NULL, NULL);
        cr_assert(store_compact_keys(s));
        cr_assert(eq(int, pager_leaf_cells(store_pager(s)), PAGE_CELLS_FIXED));
        cr_assert(eq(int, store_checkpoint(s), SOMBRA_OK));
        store_close(s);
        for (int slot = 0; slot < 2; slot++)
                cr_assert(eq(u32, (uint32_t)(read_u64("db", (uint64_t)slot * PS + 8) >> 32), 5),
                          "slot %d", slot);
        support_meta_set_version("db", PS, 5); /* checks that every leaf is of the fixed layout */
        s = open_db("new", NULL, NULL);
        cr_assert(eq(int, pager_leaf_cells(store_pager(s)), PAGE_CELLS_VARINT));
        store_close(s);
}

Test(store, a_meta_page_of_a_later_version_is_not_a_database)
{
        struct store *s = NULL;
        struct model m;

        make_db("db", &m, 5);
        support_meta_set_version("db", PS, 7);
        cr_assert(eq(int, store_open(support_path("db"), NULL, NULL, &s), SOMBRA_ENOTDB));
}

Test(store, both_meta_pages_damaged_is_corrupt)
{
        struct store *s = NULL;
        struct model m;

        make_db("db", &m, 5);
        support_flip_byte("db", 20, 0x10);
        support_flip_byte("db", PS + 120, 0x10);
        cr_assert(eq(int, store_open(support_path("db"), NULL, NULL, &s), SOMBRA_ECORRUPT));
}

static void
expect_not_a_database(const char *name, const uint8_t *data, size_t len)
{
        struct store *s = NULL;
        size_t after_len;
        uint8_t *after;

        cr_assert(eq(int, store_open(support_path(name), NULL, NULL, &s), SOMBRA_ENOTDB), "%s",
                  name);
        after = support_read_file(name, &after_len);
        cr_assert(eq(sz, after_len, len), "%s was changed", name);
        cr_assert(eq(int, memcmp(after, data, len), 0), "%s was changed", name);
        cr_assert(not(support_file_exists(wal_of(name))), "a WAL was made");
        free(after);
}

Test(store, a_file_of_another_format_is_not_a_database)
{
        static uint8_t text[3 * PS], noise[3 * PS];
        uint64_t x = 88172645463325252ull;

        for (size_t i = 0; i < sizeof(text); i++)
                text[i] = (uint8_t) "Not a database, just a text file.\n"[i % 34];
        for (size_t i = 0; i < sizeof(noise); i++) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                noise[i] = (uint8_t)x;
        }
        support_write_file("text", text, sizeof(text));
        expect_not_a_database("text", text, sizeof(text));
        support_write_file("noise", noise, sizeof(noise));
        expect_not_a_database("noise", noise, sizeof(noise));
        support_write_file("tiny", "abc", 3);
        expect_not_a_database("tiny", (const uint8_t *)"abc", 3);
}

Test(store, a_truncated_database_file_is_corrupt)
{
        struct store *t = NULL;
        struct model m;
        uint64_t npages;

        make_db("db", &m, 30);
        npages = read_u64("db", newest_meta("db") * PS + META_NPG);
        cr_assert(gt(u64, npages, 4));
        cr_assert(eq(u64, support_file_size("db"), npages * PS));

        const uint64_t cuts[] = {npages * PS - 1,
                                 (npages - 1) * PS,
                                 3 * PS,
                                 PS + META_BYTES,
                                 PS + 100,
                                 PS,
                                 4096,
                                 META_BYTES,
                                 100,
                                 8};
        for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
                support_copy_file("db", "cut");
                support_truncate("cut", cuts[i]);
                cr_assert(eq(int, store_open(support_path("cut"), NULL, NULL, &t), SOMBRA_ECORRUPT),
                          "cut to %llu bytes", (unsigned long long)cuts[i]);
        }
}

/*
 * A crash inside db_create leaves meta 0 alone, or meta 0 and the start of
 * meta 1's page: a file shorter than its two pages that holds nothing yet.
 * Open creates it again; it used to call it corrupt, for good. A failed
 * (or torn) second meta write stands in for the kill, and the truncation
 * with which a failed creation cleans up fails too, as a kill skips it.
 */
Test(store, a_creation_cut_short_by_a_crash_is_created_again)
{
        for (int torn = 0; torn < 2; torn++) {
                struct io_faults faults = {.ops = 1u << IO_OP_WRITE | 1u << IO_OP_TRUNCATE,
                                           .countdown = 1,
                                           .err = EIO,
                                           .short_write = torn,
                                           .sticky = true,
                                           .files = IO_FILE_DB};
                const char *name = torn ? "torn" : "half";
                struct store *s = NULL;
                struct model m;

                cr_assert(eq(int, store_open(support_path(name), NULL, &faults, &s), SOMBRA_EIO));
                cr_assert(eq(u64, support_file_size(name), torn ? PS + PS / 2 : PS));
                model_init(&m);
                commit_close_reopen(open_db(name, NULL, NULL), name, NULL, &m, 0, 9);
        }
}

/*
 * A creation by a library of format 3 cut short (one slot written, as
 * format 3): this library creates the file again, as format 6 with compact
 * keys in both slots, not as an upgraded older file (format 4, fixed keys),
 * which would misname every key written since.
 */
Test(store, a_creation_cut_short_under_an_older_format_is_created_anew)
{
        struct io_faults faults = {.ops = 1u << IO_OP_WRITE | 1u << IO_OP_TRUNCATE,
                                   .countdown = 1,
                                   .err = EIO,
                                   .sticky = true,
                                   .files = IO_FILE_DB};
        struct store *s = NULL;
        uint8_t b[200];

        cr_assert(eq(int, store_open(support_path("half"), NULL, &faults, &s), SOMBRA_EIO));
        support_read_at("half", 0, b, sizeof(b));
        put_be32(b + 8, 3);
        put_be64(b + 192, XXH3_64bits(b, 192));
        support_write_at("half", 0, b, sizeof(b));
        s = open_db("half", NULL, NULL);
        cr_assert(store_compact_keys(s));
        cr_assert(eq(int, store_close(s), SOMBRA_OK));
        for (int slot = 0; slot < 2; slot++)
                cr_assert(eq(u32, (uint32_t)(read_u64("half", (uint64_t)slot * PS + 8) >> 32), 6),
                          "slot %d", slot);
        s = open_db("half", NULL, NULL);
        cr_assert(store_compact_keys(s));
        cr_assert(eq(int, store_close(s), SOMBRA_OK));
}

/* A creation that fails (rather than being killed) cleans up after itself. */
Test(store, a_failed_creation_leaves_an_empty_file_that_opens_as_new)
{
        struct io_faults faults = {
            .ops = 1u << IO_OP_WRITE, .countdown = 1, .err = EIO, .files = IO_FILE_DB};
        struct store *s = NULL;
        struct model m;

        cr_assert(eq(int, store_open(support_path("db"), NULL, &faults, &s), SOMBRA_EIO));
        cr_assert(eq(u64, support_file_size("db"), 0));
        model_init(&m);
        commit_close_reopen(open_db("db", NULL, NULL), "db", NULL, &m, 0, 9);
}

Test(store, opening_a_directory_fails_cleanly)
{
        struct store *s = NULL;

        cr_assert(eq(int, mkdir(support_path("sub"), 0755), 0));
        cr_assert(eq(int, store_open(support_path("sub"), NULL, NULL, &s), SOMBRA_EINVAL));
        cr_assert(eq(ptr, s, NULL));
        cr_assert(not(support_file_exists("sub-wal")));
        cr_assert(eq(int, store_open(support_dir(), NULL, NULL, &s), SOMBRA_EINVAL));
}

/* ---- the advisory lock ---- */

Test(store, a_second_open_in_the_same_process_is_locked_out)
{
        struct store *s = open_db("db", NULL, NULL), *t = NULL;
        struct model m;

        cr_assert(eq(int, store_open(support_path("db"), NULL, NULL, &t), SOMBRA_ELOCKED));
        cr_assert(eq(ptr, t, NULL));
        /* The refused open disturbed nothing. */
        model_init(&m);
        commit_close_reopen(s, "db", NULL, &m, 0, 4);
}

static int
child_tries_to_open(void)
{
        struct store *s;

        return store_open(support_path("db"), NULL, NULL, &s) == SOMBRA_ELOCKED ? 0 : 1;
}

static int ready[2], done[2];

/* Holds the database open until the parent writes to `done`, then dies without closing. */
static int
child_holds_the_lock(void)
{
        struct store *s;
        char c = 'x';

        if (store_open(support_path("db"), NULL, NULL, &s) != SOMBRA_OK)
                return 10;
        if (write(ready[1], &c, 1) != 1 || read(done[0], &c, 1) != 1)
                return 11;
        return 0;
}

Test(store, another_process_is_locked_out_while_the_database_is_open)
{
        struct store *s = open_db("db", NULL, NULL), *t = NULL;
        int status;
        char c = 'x';

        cr_assert(eq(int, run_child(child_tries_to_open), 0), "the child was not locked out");
        cr_assert(eq(int, store_close(s), SOMBRA_OK));

        /* The other way round: the child holds it, then dies without closing. */
        cr_assert(eq(int, pipe(ready), 0));
        cr_assert(eq(int, pipe(done), 0));
        pid_t pid = fork();
        cr_assert(ge(int, pid, 0));
        if (pid == 0)
                _exit(child_holds_the_lock());
        cr_assert(eq(int, (int)read(ready[0], &c, 1), 1));
        cr_assert(eq(int, store_open(support_path("db"), NULL, NULL, &t), SOMBRA_ELOCKED));
        cr_assert(eq(int, (int)write(done[1], &c, 1), 1));
        cr_assert(eq(int, waitpid(pid, &status, 0), pid));
        cr_assert(eq(int, exit_code(status), 0));
        t = open_db("db", NULL, NULL);
        store_close(t);
}

/* ---- injected I/O failures ---- */

Test(store, a_failed_wal_write_rolls_back_that_commit_only)
{
        for (int torn = 0; torn < 2; torn++) {
                for (int64_t n = 0; n < 10; n++) {
                        struct io_faults faults = {0};
                        char name[32], crash[32];
                        struct store *s;
                        struct model m;
                        uint64_t lsn = 0, prev;
                        uint32_t ok = 3;

                        snprintf(name, sizeof(name), "db%d-%lld", torn, (long long)n);
                        snprintf(crash, sizeof(crash), "crash%d-%lld", torn, (long long)n);
                        s = open_db(name, NULL, &faults);
                        model_init(&m);
                        prev = workload(s, &m, 0, 2);
                        /* Only the WAL: each commit also writes its pages back for readers. */
                        faults = (struct io_faults){.ops = 1u << IO_OP_WRITE,
                                                    .countdown = n,
                                                    .err = EIO,
                                                    .short_write = torn,
                                                    .files = IO_FILE_WAL};
                        for (uint32_t c = 3; c < 13; c++) {
                                int rc = workload_rc(s, &m, c, &lsn);
                                if (c - 3 == n) {
                                        cr_assert(eq(int, rc, SOMBRA_EIO));
                                        cr_assert(not(store_in_txn(s)));
                                        cr_assert(eq(u64, store_committed(s)->lsn, prev));
                                        continue;
                                }
                                cr_assert(eq(int, rc, SOMBRA_OK), "commit %u (fault at %lld)", c,
                                          (long long)n);
                                cr_assert(eq(u64, lsn, prev + 1), "LSNs stay consecutive");
                                prev = lsn;
                                ok++;
                        }
                        cr_assert(eq(u64, faults.fired, 1));
                        cr_assert(eq(int, store_failure(s), SOMBRA_OK));
                        expect_model(s, &m);
                        cr_assert(eq(int, store_sync(s), SOMBRA_OK));
                        crash_copy(name, crash);
                        cr_assert(eq(int, store_close(s), SOMBRA_OK));

                        expect_recovered(crash, NULL, &m, ok);
                        expect_reopened(name, NULL, &m);
                }
        }
}

Test(store, a_full_disk_is_reported_as_enospc)
{
        struct io_faults faults = {0};
        struct store *s = open_db("db", NULL, &faults);
        struct model m;
        uint64_t lsn;

        model_init(&m);
        workload(s, &m, 0, 2);
        faults = (struct io_faults){.ops = 1u << IO_OP_WRITE, .err = ENOSPC};
        cr_assert(eq(int, workload_rc(s, &m, 3, &lsn), SOMBRA_ENOSPC));
        cr_assert(eq(int, store_failure(s), SOMBRA_OK), "a refused commit is no failure");
        workload(s, &m, 3, 4);

        faults = (struct io_faults){.ops = 1u << IO_OP_WRITE, .err = ENOSPC};
        cr_assert(eq(int, store_checkpoint(s), SOMBRA_ENOSPC));
        cr_assert(eq(int, store_failure(s), SOMBRA_ENOSPC));
        cr_assert(eq(int, store_begin(s), SOMBRA_EFAILED));
        expect_model(s, &m);
        store_close(s);

        expect_reopened("db", NULL, &m);
}

Test(store, a_failed_fsync_refuses_writes_keeps_reads_and_loses_no_synced_commit)
{
        for (int64_t n = 0; n < 4; n++) {
                struct io_faults faults = {0};
                char name[32], crash[32];
                struct store *s;
                struct store_stats st;
                struct model m;
                uint64_t gen;
                uint32_t c;

                snprintf(name, sizeof(name), "db%lld", (long long)n);
                snprintf(crash, sizeof(crash), "crash%lld", (long long)n);
                s = open_db(name, NULL, &faults);
                model_init(&m);
                faults = (struct io_faults){.ops = 1u << IO_OP_SYNC, .countdown = n, .err = EIO};
                for (c = 0; c < 6; c++) {
                        workload(s, &m, c, c);
                        st = stats(s);
                        if (store_sync(s) != SOMBRA_OK)
                                break;
                        cr_assert(eq(u64, stats(s).durable_lsn, st.written_lsn));
                }
                cr_assert(eq(u32, c, (uint32_t)n), "sync %u failed, not %lld", c, (long long)n);
                cr_assert(eq(u64, stats(s).durable_lsn, st.durable_lsn),
                          "a failed sync claims nothing");
                cr_assert(eq(int, store_failure(s), SOMBRA_EIO));
                cr_assert(eq(int, store_begin(s), SOMBRA_EFAILED));
                cr_assert(eq(int, store_sync(s), SOMBRA_EFAILED));
                cr_assert(eq(int, store_checkpoint(s), SOMBRA_EFAILED));
                cr_assert(eq(u64, faults.fired, 1));
                expect_model(s, &m); /* reads still work */
                crash_copy(name, crash);
                gen = meta_gen(name, newest_meta(name));
                store_close(s);
                cr_assert(eq(u64, meta_gen(name, newest_meta(name)), gen),
                          "closing a failed store checkpointed it");

                /* Every synced commit, and the written one only if whole. */
                for (int i = 0; i < 2; i++) {
                        s = open_db(i == 0 ? crash : name, NULL, NULL);
                        expect_some_prefix(s, c, c + 1);
                        expect_pages_accounted(s);
                        store_close(s);
                }
        }
}

/*
 * Sweeps a failure over every write, sync and truncate of one checkpoint, as
 * an I/O error and as a torn write: the store must refuse writes but keep
 * reading, and a reopen must find every commit, with consistent free space
 * that later commits and checkpoints can use.
 */
Test(store, a_failed_checkpoint_refuses_writes_and_reopen_recovers_everything)
{
        /* Torn or not, with a cache that holds everything or one that spills. */
        for (int variant = 0; variant < 4; variant++) {
                struct sombra_config cfg = config(variant < 2 ? 8192 : SOMBRA_MIN_CACHE_PAGES);
                bool torn = variant % 2;
                int64_t n;

                for (n = 0; n < 1000; n++) {
                        struct io_faults faults = {0};
                        char name[32];
                        struct store *s;
                        struct model m;
                        int rc;

                        snprintf(name, sizeof(name), "db%d-%lld", variant, (long long)n);
                        s = open_db(name, &cfg, &faults);
                        checkpoint_then_log(s, &m);
                        faults = (struct io_faults){.ops = 1u << IO_OP_WRITE | 1u << IO_OP_SYNC |
                                                           1u << IO_OP_TRUNCATE,
                                                    .countdown = n,
                                                    .err = EIO,
                                                    .short_write = torn};
                        rc = store_checkpoint(s);
                        if (faults.fired == 0) {
                                cr_assert(eq(int, rc, SOMBRA_OK));
                                store_close(s);
                                break;
                        }
                        cr_assert(eq(int, rc, SOMBRA_EIO), "variant %d, call %lld", variant,
                                  (long long)n);
                        cr_assert(eq(int, store_failure(s), SOMBRA_EIO));
                        cr_assert(eq(int, store_begin(s), SOMBRA_EFAILED));
                        expect_model(s, &m);
                        store_close(s);

                        s = open_expecting(name, &cfg, &m);
                        commit_close_reopen(s, name, &cfg, &m, 40, 59);
                        support_remove(name);
                        support_remove(wal_of(name));
                }
                cr_assert(gt(i64, n, 5), "the checkpoint made only %lld calls", (long long)n);
                cr_assert(lt(i64, n, 1000));
        }
}

Test(store, a_failed_spill_rolls_back_the_transaction_and_the_store_carries_on)
{
        struct sombra_config cfg = config(SOMBRA_MIN_CACHE_PAGES);
        struct io_faults faults = {0};
        struct store *s = open_db("db", &cfg, &faults);
        struct model m;
        int rc = SOMBRA_OK;

        model_init(&m);
        m.hi = BIG_LAST + 1;
        workload(s, &m, 0, 4);
        faults = (struct io_faults){.ops = 1u << IO_OP_WRITE, .err = EIO};
        cr_assert(eq(int, store_begin(s), SOMBRA_OK));
        for (uint32_t i = BIG_FIRST; i <= BIG_LAST && rc == SOMBRA_OK; i++)
                rc = put_kv(s, TREE_NODES, i, 1);
        cr_assert(eq(int, rc, SOMBRA_EIO));
        cr_assert(eq(u64, faults.fired, 1));
        cr_assert(eq(int, put_kv(s, TREE_NODES, 1, 1), SOMBRA_EIO), "the txn can only roll back");
        cr_assert(eq(int, store_commit(s, NULL), SOMBRA_EIO));
        cr_assert(not(store_in_txn(s)));
        cr_assert(eq(int, store_failure(s), SOMBRA_OK));
        expect_model(s, &m);
        workload(s, &m, 5, 9);
        cr_assert(eq(int, store_sync(s), SOMBRA_OK));
        crash_copy("db", "crash");
        cr_assert(eq(int, store_close(s), SOMBRA_OK));

        expect_reopened("crash", &cfg, &m);
        expect_reopened("db", &cfg, &m);
}

/* A read error anywhere in open (meta pages, WAL, replay) is reported as such. */
Test(store, a_read_error_during_open_is_an_io_error_and_changes_nothing)
{
        struct store *s;
        struct model m;
        int64_t n;

        make_crash(&m);

        for (n = 0; n < 1000; n++) {
                struct io_faults faults = {.ops = 1u << IO_OP_READ, .countdown = n, .err = EIO};
                int rc;

                rc = open_try(&faults, &s);
                if (faults.fired == 0) {
                        cr_assert(eq(int, rc, SOMBRA_OK));
                        store_close(s);
                        break;
                }
                cr_assert(eq(int, rc, SOMBRA_EIO), "read %lld", (long long)n);
                expect_recovered("try", NULL, &m, 20);
        }
        cr_assert(gt(i64, n, 3));
}

/*
 * The checkpoint that recovery makes after replaying the WAL, failed at each
 * of its writes, syncs and truncates in turn (torn or not): the open fails
 * with the I/O error, and the next open recovers the same commits.
 */
Test(store, a_failed_recovery_checkpoint_fails_the_open_and_the_next_open_recovers)
{
        struct store *s;
        struct model m;

        make_crash(&m);

        for (int torn = 0; torn < 2; torn++) {
                int64_t n;

                for (n = 0; n < 1000; n++) {
                        struct io_faults faults = {.ops = 1u << IO_OP_WRITE | 1u << IO_OP_SYNC |
                                                          1u << IO_OP_TRUNCATE,
                                                   .countdown = n,
                                                   .err = EIO,
                                                   .short_write = torn};
                        uint64_t replayed;
                        int rc;

                        rc = open_try(&faults, &s);
                        if (faults.fired == 0) {
                                cr_assert(eq(int, rc, SOMBRA_OK));
                                cr_assert(eq(u64, stats(s).replayed, 20));
                                store_close(s);
                                break;
                        }
                        cr_assert(eq(int, rc, SOMBRA_EIO), "call %lld", (long long)n);
                        cr_assert(eq(ptr, s, NULL));
                        s = open_expecting("try", NULL, &m);
                        replayed = stats(s).replayed;
                        cr_assert(replayed == 0 || replayed == 20, "replayed %llu",
                                  (unsigned long long)replayed);
                        commit_close_reopen(s, "try", NULL, &m, 40, 44);
                        model_after(&m, 40);
                }
                cr_assert(gt(i64, n, 5), "the recovery checkpoint made only %lld calls",
                          (long long)n);
        }
}

Test(store, a_failed_automatic_checkpoint_keeps_the_commit_that_triggered_it)
{
        struct sombra_config cfg = config(1024);
        struct io_faults faults = {0};
        struct store *s;
        struct model m;
        uint64_t ckpt0, lsn;
        uint32_t c;

        cfg.checkpoint_threshold = 16u << 10;
        s = open_db("db", &cfg, &faults);
        ckpt0 = stats(s).checkpoints;
        model_init(&m);
        faults = (struct io_faults){.ops = 1u << IO_OP_SYNC, .err = EIO, .sticky = true};
        for (c = 0; store_failure(s) == SOMBRA_OK; c++) {
                cr_assert(lt(u32, c, 100), "no automatic checkpoint was tried");
                cr_assert(eq(int, workload_rc(s, &m, c, &lsn), SOMBRA_OK), "commit %u", c);
        }
        cr_assert(eq(int, store_failure(s), SOMBRA_EIO));
        cr_assert(eq(u64, stats(s).checkpoints, ckpt0));
        cr_assert(ge(u64, stats(s).wal_size, cfg.checkpoint_threshold));
        cr_assert(eq(int, store_begin(s), SOMBRA_EFAILED));
        expect_model(s, &m);
        crash_copy("db", "crash");
        store_close(s);

        expect_recovered("crash", &cfg, &m, c);
}

/*
 * After a failed sync of the database file, pages written since the last
 * checkpoint may never reach the disk and may leave the kernel's cache: the
 * notes that describe them must not be trusted. The failure voids them with
 * a restart record, and recovery replays the whole log.
 */
Test(store, a_failed_sync_of_the_database_file_voids_the_notes_before_it)
{
        struct io_faults faults = {0};
        struct store *s = open_db("db", NULL, &faults);
        struct model m;

        model_init(&m);
        workload(s, &m, 0, 9);
        faults = (struct io_faults){.ops = 1u << IO_OP_SYNC, .err = EIO, .files = IO_FILE_DB};
        cr_assert(eq(int, store_checkpoint(s), SOMBRA_EIO));
        cr_assert(eq(int, store_failure(s), SOMBRA_EIO));
        crash_copy("db", "crash");
        store_close(s);
        cr_assert(gt(sz, support_notes_voided("crash"), 0));
        s = open_expecting("crash", NULL, &m);
        cr_assert(eq(u64, stats(s).adopted, 0));
        cr_assert(eq(u64, stats(s).replayed, 10));
        cr_assert(eq(int, store_close(s), SOMBRA_OK));
}

/*
 * A background checkpoint whose sync fails while a publication is under
 * way: the failure voids the notes, and the publication settled after it
 * must not note its state after the restart (its older pages are the ones
 * the failed sync may have lost).
 */
Test(store, a_publication_settled_after_a_failed_checkpoint_writes_no_note)
{
        struct io_faults faults = {0};
        struct sombra_config cfg = config(256);
        struct store_publication *pub;
        struct store_ckpt *c;
        struct store *s;
        struct model m;

        cfg.checkpoint_threshold = 1;
        s = open_db("db", &cfg, &faults);
        store_set_background_checkpoints(s, true);
        model_init(&m);
        workload(s, &m, 0, 9); /* published and noted */
        cr_assert(eq(int, store_checkpoint_begin(s, &c), SOMBRA_OK));
        cr_assert(not(eq(ptr, c, NULL)));
        faults = (struct io_faults){.ops = 1u << IO_OP_SYNC, .err = EIO, .files = IO_FILE_DB};
        store_checkpoint_write(s, c);
        store_set_autopublish(s, false);
        workload(s, &m, 10, 10);
        cr_assert(eq(int, store_publish_begin(s, &pub), SOMBRA_OK));
        cr_assert(not(eq(ptr, pub, NULL)));
        cr_assert(eq(int, store_publish_write(s, pub, false), SOMBRA_OK));
        cr_assert(eq(int, store_checkpoint_settle(s, true), SOMBRA_EIO));
        cr_assert(eq(int, store_publish_settle(s), SOMBRA_OK));
        (void)store_flush_log(s);
        crash_copy("db", "crash");
        store_close(s);
        cr_assert(gt(sz, support_notes_voided("crash"), 0));
}

/*
 * Commit 0 is published, but its note reaches the log only after 4,097 more
 * commits: more than recovery keeps the places of (NOTE_TAIL in store.c).
 */
#define NOTE_LAG 4097u

static int
child_notes_a_state_long_after_it(void)
{
        struct sombra_config cfg = config(1024);
        struct store_publication *pub;
        struct store *s;
        struct model m;
        uint64_t lsn;

        cfg.checkpoint_threshold = 1u << 30; /* no checkpoint settles the publication early */
        if (store_open(support_path("db"), &cfg, NULL, &s) != SOMBRA_OK)
                return 10;
        store_set_autopublish(s, false);
        model_init(&m);
        if (workload_rc(s, &m, 0, &lsn) != SOMBRA_OK || store_flush_log(s) != SOMBRA_OK)
                return 11;
        if (store_publish_begin(s, &pub) != SOMBRA_OK || pub == NULL ||
            store_publish_write(s, pub, false) != SOMBRA_OK)
                return 12;
        for (uint32_t c = 1; c <= NOTE_LAG; c++)
                if (workload_rc(s, &m, c, &lsn) != SOMBRA_OK || store_flush_log(s) != SOMBRA_OK)
                        return 13;
        if (store_publish_settle(s) != SOMBRA_OK || store_flush_log(s) != SOMBRA_OK)
                return 14;
        return 0; /* no close: a crash */
}

Test(store, a_note_whose_next_commit_recovery_no_longer_knows_is_not_used)
{
        struct store *s;
        struct model m;

        cr_assert(eq(int, run_child(child_notes_a_state_long_after_it), 0));
        model_after(&m, NOTE_LAG + 1);
        s = open_expecting("db", NULL, &m);
        cr_assert(eq(u64, stats(s).adopted, 0));
        cr_assert(eq(u64, stats(s).replayed, NOTE_LAG + 1));
        cr_assert(eq(int, store_close(s), SOMBRA_OK));
}

Test(store, a_torn_last_commit_in_the_wal_is_dropped_by_recovery)
{
        struct store *s = open_db("db", NULL, NULL);
        struct model m;
        uint64_t start, end;

        model_init(&m);
        workload(s, &m, 0, 9);
        start = WAL_HDR + stats(s).wal_size;
        workload(s, &m, 10, 10);
        end = WAL_HDR + stats(s).wal_size;
        crash_copy("db", "crash");
        store_close(s);

        model_after(&m, 10);
        const uint64_t cuts[] = {
            start,  start + 1, start + WAL_REC_HDR - 1, start + WAL_REC_HDR, (start + end) / 2,
            end - 1};
        for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
                crash_copy("crash", "torn");
                support_truncate("torn-wal", cuts[i]);
                s = open_expecting("torn", NULL, &m);
                cr_assert(eq(u64, stats(s).replayed, 10), "cut at %llu of %llu..%llu",
                          (unsigned long long)cuts[i], (unsigned long long)start,
                          (unsigned long long)end);
                cr_assert(eq(u64, commit_close_reopen(s, "torn", NULL, &m, 11, 11), 11));
                model_after(&m, 10);
        }
}

static int
mark_tree_page(void *arg, pgno_t pgno)
{
        ((uint8_t *)arg)[pgno] = 1;
        return SOMBRA_OK;
}

/* With checksums on, a damaged page is refused wherever it is read; a free one does not matter. */
Test(store, a_damaged_page_is_an_error_never_wrong_data)
{
        struct store *s = open_db("db", NULL, NULL), *t;
        struct model m;
        uint64_t npages, entries;
        uint8_t *in_tree;
        char why[200];

        model_init(&m);
        workload(s, &m, 0, 39);
        cr_assert(eq(int, store_checkpoint(s), SOMBRA_OK));
        workload(s, &m, 40, 59); /* leaves some free pages and a free list */
        cr_assert(eq(int, store_close(s), SOMBRA_OK));
        s = open_db("db", NULL, NULL);
        npages = pager_npages(store_pager(s));
        in_tree = calloc(npages, 1);
        cr_assert(not(eq(ptr, in_tree, NULL)));
        for (int i = 0; i < STORE_TREES; i++)
                cr_assert(eq(int,
                             btree_check(store_pager(s), store_committed(s)->roots[i],
                                         mark_tree_page, in_tree, &entries),
                             SOMBRA_OK));
        store_close(s);

        for (uint64_t pg = 2; pg < npages; pg++) {
                int rc;

                support_copy_file("db", "bad");
                support_remove("bad-wal"); /* the last copy's log continues a newer state */
                support_flip_byte("bad", pg * PS + PS / 2 + pg, 0x10);
                t = NULL;
                rc = store_open(support_path("bad"), NULL, NULL, &t);
                if (rc != SOMBRA_OK) {
                        cr_assert(eq(int, rc, SOMBRA_ECORRUPT), "page %llu",
                                  (unsigned long long)pg);
                        cr_assert(not(in_tree[pg]), "open read tree page %llu",
                                  (unsigned long long)pg);
                        continue;
                }
                rc = model_compare(t, &m, why, sizeof(why));
                cr_assert(eq(int, rc, in_tree[pg] ? SOMBRA_ECORRUPT : SOMBRA_OK), "page %llu: %s",
                          (unsigned long long)pg, why);
                store_close(t);
        }
        free(in_tree);
}

Test(store, a_database_keeps_the_page_size_it_was_made_with)
{
        struct sombra_config big = config(256), other = config(256);
        struct store *s;
        struct model m;

        big.page_size = 16384;
        s = open_db("db", &big, NULL);
        cr_assert(eq(u32, store_page_size(s), 16384));
        cr_assert(eq(int, store_close(s), SOMBRA_OK));
        cr_assert(eq(u64, support_file_size("db"), 2 * 16384));

        /* Meta 0 damaged: meta 1 is found at the database's page size, not the config's. */
        support_flip_byte("db", 30, 0x10);
        s = open_db("db", &other, NULL);
        cr_assert(eq(u32, store_page_size(s), 16384));
        model_init(&m);
        workload(s, &m, 0, 19);
        cr_assert(eq(int, store_close(s), SOMBRA_OK));
        s = open_expecting("db", &other, &m);
        cr_assert(eq(u32, store_page_size(s), 16384));
        store_close(s);
}

Test(store, a_bad_page_size_is_refused_when_creating)
{
        struct sombra_config cfg = config(256);
        struct store *s = NULL;
        const uint32_t bad[] = {0, 5000, 2048, 131072};

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                cfg.page_size = bad[i];
                cr_assert(eq(int, store_open(support_path("db"), &cfg, NULL, &s), SOMBRA_EINVAL),
                          "page size %u", bad[i]);
                cr_assert(eq(ptr, s, NULL));
        }
        s = open_db("db", NULL, NULL);
        cr_assert(eq(u32, store_page_size(s), PS));
        store_close(s);
}

Test(store, the_state_counters_survive_replay_and_checkpoint)
{
        struct store *s = open_db("db", NULL, NULL);
        struct store_state *st, want;

        for (uint32_t c = 1; c <= 3; c++) {
                cr_assert(eq(int, store_begin(s), SOMBRA_OK));
                st = store_txn_state(s);
                st->next_node = 1000 * c;
                st->next_edge = 2000 * c + 1;
                st->nodes = 5 * c;
                st->edges = 7 * c;
                st->next_name = 42 * c;
                cr_assert(eq(int, put_kv(s, TREE_LABELS, c, c), SOMBRA_OK));
                cr_assert(eq(int, store_commit(s, NULL), SOMBRA_OK));
        }
        want = *store_committed(s);
        cr_assert(eq(u64, want.next_node, 3000));
        crash_copy("db", "crash");
        cr_assert(eq(int, store_close(s), SOMBRA_OK));

        const char *names[] = {"crash", "db"};
        for (int i = 0; i < 2; i++) {
                const struct store_state *got;

                s = open_db(names[i], NULL, NULL);
                got = store_committed(s);
                cr_assert(eq(u64, stats(s).replayed, i == 0 ? 3 : 0));
                cr_assert(eq(u64, got->next_node, want.next_node), "%s", names[i]);
                cr_assert(eq(u64, got->next_edge, want.next_edge), "%s", names[i]);
                cr_assert(eq(u64, got->nodes, want.nodes), "%s", names[i]);
                cr_assert(eq(u64, got->edges, want.edges), "%s", names[i]);
                cr_assert(eq(u32, got->next_name, want.next_name), "%s", names[i]);
                cr_assert(eq(u64, got->lsn, want.lsn), "%s", names[i]);
                store_close(s);
        }
}

Test(store, keys_and_values_at_their_size_limits_survive_replay)
{
        static uint8_t big[1u << 20];
        uint8_t key[BTREE_MAX_KEY + 1];
        struct store *s = open_db("db", NULL, NULL);
        struct buf got = BUF_INIT;

        memset(key, 'k', sizeof(key));
        for (size_t i = 0; i < sizeof(big); i++)
                big[i] = (uint8_t)(i * 2654435761u >> 13);
        cr_assert(eq(int, store_begin(s), SOMBRA_OK));
        cr_assert(eq(int, store_put(s, TREE_PROPS, key, BTREE_MAX_KEY + 1, "v", 1), SOMBRA_EINVAL));
        cr_assert(eq(int, store_put(s, TREE_PROPS, key, BTREE_MAX_KEY, "", 0), SOMBRA_OK));
        cr_assert(eq(int, store_put(s, TREE_PROPS, "a", 1, big, sizeof(big)), SOMBRA_OK));
        cr_assert(eq(int, store_put(s, TREE_PROPS, "b", 1, "", 0), SOMBRA_OK));
        cr_assert(eq(int, store_commit(s, NULL), SOMBRA_OK));
        crash_copy("db", "crash");
        store_close(s);

        s = open_db("crash", NULL, NULL);
        cr_assert(eq(u64, stats(s).replayed, 1));
        cr_assert(eq(int, store_get(s, store_committed(s), TREE_PROPS, key, BTREE_MAX_KEY, &got),
                     SOMBRA_OK));
        cr_assert(eq(sz, got.len, 0));
        cr_assert(eq(int, store_get(s, store_committed(s), TREE_PROPS, "a", 1, &got), SOMBRA_OK));
        cr_assert(eq(sz, got.len, sizeof(big)));
        cr_assert(eq(int, memcmp(got.data, big, sizeof(big)), 0));
        cr_assert(eq(int, store_get(s, store_committed(s), TREE_PROPS, "b", 1, &got), SOMBRA_OK));
        cr_assert(eq(sz, got.len, 0));
        cr_assert(eq(u64, count_entries(s, store_committed(s), TREE_PROPS), 3));
        expect_pages_accounted(s);
        buf_free(&got);
        store_close(s);
}

Test(store, a_group_whose_log_write_fails_is_not_kept)
{
        struct io_faults faults = {0};
        struct store *s = open_db("db", NULL, &faults);
        uint8_t key[8];
        struct buf val = BUF_INIT;

        /* Without autopublish, commits wait in memory for one write of the group. */
        store_set_autopublish(s, false);
        for (uint64_t k = 1; k <= 3; k++) {
                put_be64(key, k);
                cr_assert(eq(int, store_begin(s), SOMBRA_OK));
                cr_assert(eq(int, store_put(s, TREE_NODES, key, 8, "v", 1), SOMBRA_OK));
                cr_assert(eq(int, store_commit(s, NULL), SOMBRA_OK));
        }
        faults = (struct io_faults){.ops = 1u << IO_OP_WRITE, .err = EIO, .files = IO_FILE_WAL};
        cr_assert(eq(int, store_flush_log(s), SOMBRA_EIO));
        cr_assert(eq(int, store_begin(s), SOMBRA_EFAILED));
        cr_assert(eq(int, store_close(s), SOMBRA_EFAILED));
        s = open_db("db", NULL, NULL);
        put_be64(key, 1);
        cr_assert(
            eq(int, store_get(s, store_committed(s), TREE_NODES, key, 8, &val), SOMBRA_ENOTFOUND));
        cr_assert(eq(int, store_close(s), SOMBRA_OK));
        buf_free(&val);
}

Test(store, a_transaction_open_when_the_store_fails_cannot_commit)
{
        struct io_faults faults = {0};
        struct store *s = open_db("db", NULL, &faults);
        uint8_t key[8];

        put_be64(key, 1);
        cr_assert(eq(int, store_begin(s), SOMBRA_OK));
        cr_assert(eq(int, store_put(s, TREE_NODES, key, 8, "v", 1), SOMBRA_OK));
        /* The sync of earlier commits fails (as on the committer thread) while it is open. */
        faults = (struct io_faults){.ops = 1u << IO_OP_SYNC, .err = EIO, .files = IO_FILE_WAL};
        cr_assert(eq(int, store_sync(s), SOMBRA_EIO));
        cr_assert(eq(int, store_commit(s, NULL), SOMBRA_EFAILED));
        cr_assert(not(store_in_txn(s)));
        cr_assert(eq(int, store_close(s), SOMBRA_EFAILED));
        s = open_db("db", NULL, NULL);
        cr_assert(
            eq(int, store_get(s, store_committed(s), TREE_NODES, key, 8, NULL), SOMBRA_ENOTFOUND));
        cr_assert(eq(int, store_close(s), SOMBRA_OK));
}

/* ---- groups: transactions sharing one pager transaction ---- */

static void
group_put(struct store *s, uint64_t k, bool commit)
{
        uint8_t key[8];

        put_be64(key, k);
        cr_assert(eq(int, store_begin_shared(s), SOMBRA_OK));
        cr_assert(eq(int, store_put(s, TREE_NODES, key, 8, "v", 1), SOMBRA_OK));
        if (commit)
                cr_assert(eq(int, store_commit(s, NULL), SOMBRA_OK));
        else
                store_rollback(s);
}

static bool
has_key(struct store *s, uint64_t k)
{
        uint8_t key[8];
        int rc;

        put_be64(key, k);
        rc = store_get(s, store_committed(s), TREE_NODES, key, 8, NULL);
        cr_assert(rc == SOMBRA_OK || rc == SOMBRA_ENOTFOUND, "get %" PRIu64 ": %d", k, rc);
        return rc == SOMBRA_OK;
}

Test(store, a_group_copies_a_page_once_for_all_its_commits)
{
        struct store *s = open_db("db", NULL, NULL);
        pgno_t root;

        store_set_autopublish(s, false);
        group_put(s, 1, true);
        store_group_end(s);
        cr_assert(eq(int, store_flush_log(s), SOMBRA_OK));
        cr_assert(eq(int, store_publish(s), SOMBRA_OK));

        group_put(s, 2, true);
        root = store_committed(s)->roots[TREE_NODES];
        group_put(s, 3, true);
        group_put(s, 4, true);
        cr_assert(eq(u64, store_committed(s)->roots[TREE_NODES], root),
                  "later commits of the group change the leaf in place");
        cr_assert(eq(u64, store_committed(s)->lsn, 4));
        store_group_end(s);
        cr_assert(eq(int, store_flush_log(s), SOMBRA_OK));
        cr_assert(eq(int, store_publish(s), SOMBRA_OK));

        group_put(s, 5, true);
        cr_assert(not(eq(u64, store_committed(s)->roots[TREE_NODES], root)),
                  "the next group copies the published leaf");
        store_group_end(s);
        cr_assert(eq(int, store_close(s), SOMBRA_OK));
}

/*
 * A rolled-back transaction in the middle of a group changed pages the
 * group's earlier commits had written: the group is applied again from its
 * records. Its commits stay, its own writes go, and the log and the file
 * agree after a crash.
 */
Test(store, a_rollback_in_a_group_keeps_the_commits_before_it)
{
        struct store *s = open_db("db", NULL, NULL);

        store_set_autopublish(s, false);
        for (uint64_t k = 1; k <= 300; k++)
                group_put(s, k, k % 7 != 0); /* every seventh rolls back, writes made */
        cr_assert(eq(u64, stats(s).group_redos, 300 / 7));
        cr_assert(eq(int, store_begin_shared(s), SOMBRA_OK));
        store_rollback(s); /* wrote nothing: nothing to apply again */
        cr_assert(eq(u64, stats(s).group_redos, 300 / 7));
        for (uint64_t k = 1; k <= 300; k++)
                cr_assert(eq(int, has_key(s, k), k % 7 != 0), "key %" PRIu64, k);
        store_group_end(s);
        cr_assert(eq(int, store_flush_log(s), SOMBRA_OK));
        cr_assert(eq(int, store_publish(s), SOMBRA_OK));
        cr_assert(eq(int, store_sync(s), SOMBRA_OK));

        crash_copy("db", "crash");
        cr_assert(eq(int, store_close(s), SOMBRA_OK));
        s = open_db("crash", NULL, NULL);
        cr_assert(eq(u64, stats(s).replayed, 300 - 300 / 7));
        for (uint64_t k = 1; k <= 300; k++)
                cr_assert(eq(int, has_key(s, k), k % 7 != 0), "key %" PRIu64 " after a crash", k);
        cr_assert(eq(int, store_close(s), SOMBRA_OK));
}

/* A checkpoint ends the group: a rollback after it applies again only what came after. */
Test(store, a_checkpoint_inside_a_group_ends_it)
{
        struct store *s = open_db("db", NULL, NULL);

        store_set_autopublish(s, false);
        group_put(s, 1, true);
        group_put(s, 2, true);
        cr_assert(eq(int, store_checkpoint(s), SOMBRA_OK));
        group_put(s, 3, true);
        group_put(s, 4, false);
        cr_assert(eq(u64, stats(s).group_redos, 1));
        cr_assert(has_key(s, 1) && has_key(s, 2) && has_key(s, 3) && !has_key(s, 4));
        store_group_end(s);
        cr_assert(eq(int, store_flush_log(s), SOMBRA_OK));
        cr_assert(eq(int, store_close(s), SOMBRA_OK));
        s = open_db("db", NULL, NULL);
        cr_assert(has_key(s, 1) && has_key(s, 2) && has_key(s, 3) && !has_key(s, 4));
        cr_assert(eq(int, store_close(s), SOMBRA_OK));
}

/* ---- background checkpoints ---- */

/* Asserts that database `name` recovers to the state after `n` commits, replaying `replayed`. */
static void
expect_recovered_after(const char *name, const struct sombra_config *cfg, uint32_t n,
                       uint64_t replayed)
{
        struct model *m = malloc(sizeof(*m));

        cr_assert(not(eq(ptr, m, NULL)));
        model_after(m, n);
        expect_recovered(name, cfg, m, replayed);
        free(m);
}

/*
 * Opens "db" with background checkpoints due as soon as anything is logged,
 * runs commits 0..19 (m from empty) and begins a checkpoint of that state.
 */
static struct store *
background_begun(struct sombra_config *cfg, struct model *m, struct store_ckpt **c)
{
        struct store *s;

        *cfg = config(256);
        cfg->checkpoint_threshold = 1;
        s = open_db("db", cfg, NULL);
        store_set_background_checkpoints(s, true);
        model_init(m);
        workload(s, m, 0, 19);
        cr_assert(eq(int, store_checkpoint_begin(s, c), SOMBRA_OK));
        cr_assert(not(eq(ptr, *c, NULL)));
        return s;
}

/*
 * A background checkpoint of the state after commit 20, written while later
 * commits retire that state's pages. Until its meta page is durable a crash
 * recovers from the older one; after, from its place in the log. The pages
 * of its state that later commits retire must wait for the next checkpoint:
 * reused any earlier, recovery from this one would read what the later
 * commits wrote over them.
 */
Test(store, a_background_checkpoint_keeps_its_pages_and_recovery_starts_at_its_place)
{
        struct sombra_config cfg;
        struct store_ckpt *c, *again;
        struct model m;
        struct store *s = background_begun(&cfg, &m, &c);

        workload(s, &m, 20, 59);
        cr_assert(eq(int, store_checkpoint_begin(s, &again), SOMBRA_OK));
        cr_assert(eq(ptr, again, NULL), "one checkpoint at a time");
        crash_copy("db", "before");

        store_checkpoint_write(s, c);
        workload(s, &m, 60, 79);
        crash_copy("db", "written");

        cr_assert(eq(int, store_checkpoint_settle(s, false), SOMBRA_OK));
        cr_assert(eq(u64, stats(s).checkpoints, 1));
        workload(s, &m, 80, 119);
        crash_copy("db", "settled");
        cr_assert(eq(u64, stats(s).wal_size > 0, 1), "the log was left as it was");
        cr_assert(eq(int, store_close(s), SOMBRA_OK));

        expect_reopened("db", &cfg, &m);
        expect_recovered_after("before", &cfg, 60, 60);
        expect_recovered_after("written", &cfg, 80, 60);
        expect_recovered_after("settled", &cfg, 120, 100);
}

/* A checkpoint on the writer waits for the background one, and then starts the log anew. */
Test(store, a_checkpoint_on_the_writer_settles_the_background_one_first)
{
        struct sombra_config cfg;
        struct store_ckpt *c;
        struct model m;
        struct store *s = background_begun(&cfg, &m, &c);

        store_checkpoint_write(s, c);
        workload(s, &m, 20, 29);
        cr_assert(eq(int, store_checkpoint(s), SOMBRA_OK));
        cr_assert(eq(u64, stats(s).checkpoints, 2));
        cr_assert(eq(u64, stats(s).wal_size, 0));
        workload(s, &m, 30, 39);
        crash_copy("db", "crash");
        cr_assert(eq(int, store_close(s), SOMBRA_OK));
        expect_recovered("crash", &cfg, &m, 10);
}

/*
 * Two background checkpoints, both settled, with commits 0..19 before the
 * first and 20..last before the second, in one WAL generation.
 */
static struct store *
two_background_checkpoints(struct sombra_config *cfg, struct model *m, uint32_t last)
{
        struct store_ckpt *c;
        struct store *s = background_begun(cfg, m, &c);

        store_checkpoint_write(s, c);
        cr_assert(eq(int, store_checkpoint_settle(s, true), SOMBRA_OK));
        workload(s, m, 20, last);
        cr_assert(eq(int, store_checkpoint_begin(s, &c), SOMBRA_OK));
        cr_assert(not(eq(ptr, c, NULL)));
        store_checkpoint_write(s, c);
        cr_assert(eq(int, store_checkpoint_settle(s, true), SOMBRA_OK));
        cr_assert(eq(u64, stats(s).checkpoints, 2));
        return s;
}

/*
 * Two background checkpoints continue one WAL generation, so if the newer
 * meta page is damaged, open falls back to the older one and replays the log
 * from its place. That needs the older checkpoint's pages whole: they must
 * not be reused just because the newer checkpoint is durable. (A checkpoint
 * that restarts the log needs no such care: the fallback is refused, see
 * a_damaged_newest_meta_after_a_wal_reset_is_corrupt_not_an_old_state.)
 */
Test(store, a_damaged_newest_meta_falls_back_to_an_older_background_checkpoint_intact)
{
        struct sombra_config cfg;
        struct model m;
        struct store *s = two_background_checkpoints(&cfg, &m, 39);

        workload(s, &m, 40, 99); /* would overwrite the older checkpoint's pages if freed */
        crash_copy("db", "crash");
        cr_assert(eq(int, store_close(s), SOMBRA_OK));
        support_flip_byte("crash", newest_meta("crash") * PS + 40, 0x10);
        expect_recovered("crash", &cfg, &m, 80);
}

/*
 * The same after a reopen: the newest meta page's free list names pages that
 * the older one reaches, so they are not reused before the next checkpoint.
 */
Test(store, the_free_list_read_at_open_spares_the_older_background_checkpoint)
{
        struct sombra_config cfg;
        struct model m;
        struct store *s = two_background_checkpoints(&cfg, &m, 59);

        crash_copy("db", "crash");
        cr_assert(eq(int, store_close(s), SOMBRA_OK));

        s = open_db("crash", &cfg, NULL);
        store_set_background_checkpoints(s, true); /* no checkpoint comes before the crash */
        cr_assert(eq(u64, stats(s).replayed, 0));
        workload(s, &m, 60, 119); /* would overwrite the older checkpoint's pages if freed */
        crash_copy("crash", "again");
        cr_assert(eq(int, store_close(s), SOMBRA_OK));
        support_flip_byte("again", newest_meta("again") * PS + 40, 0x10);
        expect_recovered("again", &cfg, &m, 100);
}

/*
 * Pages that go free while a transaction is open (a publish inside it lets
 * go of what a reader held) must leave room for the transaction's own pages:
 * its rollback gives them back without allocating. Found by a review; ASan
 * reported a heap overflow in the rollback here.
 */
/* Puts key i of TREE_NODES with a value of 6000 bytes, `fill` in each. */
static int
put_big(struct store *s, uint32_t i, uint8_t fill)
{
        uint8_t k[8], v[6000];

        put_be64(k, i);
        memset(v, fill, sizeof(v));
        return store_put(s, TREE_NODES, k, sizeof(k), v, sizeof(v));
}

Test(store, pages_freed_inside_a_transaction_leave_room_for_its_rollback)
{
        struct store *s = open_db("db", NULL, NULL);
        struct store_reader *r;
        struct buf got = BUF_INIT;
        uint8_t k[8];

        cr_assert(eq(int, store_reader_open(s, &r), SOMBRA_OK));
        (void)store_reader_begin(r); /* holds every page the commits below retire */
        for (uint32_t i = 0; i < 400; i++) {
                cr_assert(eq(int, store_begin(s), SOMBRA_OK));
                cr_assert(eq(int, put_big(s, i, 1), SOMBRA_OK));
                cr_assert(eq(int, store_commit(s, NULL), SOMBRA_OK));
        }
        cr_assert(eq(int, store_begin(s), SOMBRA_OK));
        for (uint32_t i = 0; i < 400; i++)
                cr_assert(eq(int, put_big(s, i, 2), SOMBRA_OK));
        store_reader_end(r);
        cr_assert(eq(int, store_publish(s), SOMBRA_OK)); /* frees what the reader held */
        store_rollback(s);
        put_be64(k, 399);
        cr_assert(eq(int, store_get(s, store_committed(s), TREE_NODES, k, 8, &got), SOMBRA_OK));
        cr_assert(eq(u8, got.data[0], 1));
        buf_free(&got);
        store_reader_close(r);
        cr_assert(eq(int, store_close(s), SOMBRA_OK));
}
