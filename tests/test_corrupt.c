/*
 * test_corrupt.c - damaged files through the public API.
 *
 * A child process builds an image: TXNS transactions committed in FULL with
 * page checksums on, a checkpoint after the first CHECKPOINTED of them, and
 * an exit without closing, so that the rest live only in the WAL. Each case
 * damages a fresh copy of the image (a page flipped, zeroed or swapped with
 * another, the main file truncated, the WAL cut or flipped) and opens it.
 * The promise checked: open fails with a clear status, or it succeeds and
 * every read then gives exactly what was committed or an error - never other
 * data, never a crash (the sanitizers watch) and never a hang (the timeout).
 *
 * Damage to the main file may make reads fail, but may not make committed
 * data vanish: a transaction read back as absent is a failure. Damage to the
 * WAL may lose its tail, but what remains must be a prefix of the history,
 * whole transactions only, and must hold every checkpointed transaction.
 *
 * Transaction k makes size(k) nodes labelled T with properties txn = k,
 * j = 0.. and s = "k/j", a ring of NEXT edges through them, and a PREV edge
 * from its first node to the first node of transaction k - 1.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sombra.h"
#include "support.h"
#include "wal.h"

#define TXNS         40
#define CHECKPOINTED 30   /* transactions 0..29 are in the main file, the rest in the WAL */
#define PAGE         4096 /* small pages: more of them to damage */

#define IMAGE     "image.sombra"
#define IMAGE_WAL IMAGE "-wal"
#define TRY       "try.sombra"
#define TRY_WAL   TRY "-wal"

static void
setup(void)
{
        support_dir_make("corrupt");
}

TestSuite(corrupt, .init = setup, .fini = support_dir_remove, .timeout = 600);

/* Big transactions for the main file, small ones for the WAL, so that cuts are cheap. */
static uint64_t
txn_size(int k)
{
        return k < CHECKPOINTED ? 20 : 3;
}

/* Node ids are handed out from 1 in order (the image check asserts it). */
static uint64_t
node_id(int k, uint64_t j)
{
        uint64_t id = 1;

        for (int t = 0; t < k; t++)
                id += txn_size(t);
        return id + j;
}

static void
config(struct sombra_config *cfg)
{
        sombra_config_production(cfg);
        cfg->page_size = PAGE;
        cfg->checksums = true;
}

static int
txn_commit(sombra_conn *c, sombra_batch *b, int k)
{
        const char *label[] = {"T"};
        uint64_t n = txn_size(k);
        int rc = sombra_batch_reset(b);

        for (uint64_t j = 0; j < n && rc == SOMBRA_OK; j++) {
                char s[32];
                int len = snprintf(s, sizeof(s), "%d/%" PRIu64, k, j);
                struct sombra_prop p[3] = {
                    {"txn", {.type = SOMBRA_INT, .u.i = k}},
                    {"j", {.type = SOMBRA_INT, .u.i = (int64_t)j}},
                    {"s", {.type = SOMBRA_STRING, .u.s = {s, (size_t)len}}},
                };
                rc = sombra_batch_node_create(b, label, 1, p, 3, NULL);
        }
        for (uint64_t j = 0; j < n && rc == SOMBRA_OK; j++) {
                struct sombra_prop p = {"txn", {.type = SOMBRA_INT, .u.i = k}};
                rc = sombra_batch_edge_create(b, SOMBRA_BATCH_REF(j), SOMBRA_BATCH_REF((j + 1) % n),
                                              "NEXT", &p, 1, NULL);
        }
        if (rc == SOMBRA_OK && k > 0)
                rc = sombra_batch_edge_create(b, SOMBRA_BATCH_REF(0), node_id(k - 1, 0), "PREV",
                                              NULL, 0, NULL);
        return rc == SOMBRA_OK ? sombra_batch_submit(c, b) : rc;
}

/* The child: builds the image and dies without closing. Exit status says how far it got. */
static void
image_child(void)
{
        struct sombra_config cfg;
        sombra_db *db;
        sombra_conn *c;
        sombra_batch *b;

        config(&cfg);
        if (sombra_open(support_path(IMAGE), &cfg, &db) != SOMBRA_OK ||
            sombra_conn_acquire(db, &c) != SOMBRA_OK || sombra_batch_new(&b) != SOMBRA_OK ||
            sombra_index_create(c, "T", "j") != SOMBRA_OK)
                _exit(2);
        for (int k = 0; k < TXNS; k++) {
                if (txn_commit(c, b, k) != SOMBRA_OK)
                        _exit(3);
                if (k == CHECKPOINTED - 1 && sombra_checkpoint(db) != SOMBRA_OK)
                        _exit(4);
        }
        _exit(0); /* every commit was acknowledged in FULL: durable, and only in the WAL */
}

/*
 * What one transaction looks like in a damaged copy: how many of its nodes
 * read back whole, how many are absent, how many gave an error.
 */
struct txn_seen {
        uint64_t present, absent, damaged;
};

static bool
is_damage_error(int rc)
{
        return rc == SOMBRA_ECORRUPT || rc == SOMBRA_EIO;
}

/* A node read back whole must be exactly what transaction k wrote. */
static void
node_check(const char *what, const struct sombra_entity *e, int k, uint64_t j)
{
        char s[32];
        int len = snprintf(s, sizeof(s), "%d/%" PRIu64, k, j);
        bool s_ok = false;

        cr_assert(eq(sz, e->nlabels, 1), "%s: node %d/%" PRIu64 ": labels", what, k, j);
        cr_assert(eq(str, (char *)e->labels[0], "T"), "%s: node %d/%" PRIu64, what, k, j);
        cr_assert(eq(sz, e->nprops, 3), "%s: node %d/%" PRIu64 ": properties", what, k, j);
        cr_assert(eq(i64, support_prop_int(e, "txn"), k), "%s: node %d/%" PRIu64 ": txn", what, k,
                  j);
        cr_assert(eq(i64, support_prop_int(e, "j"), (int64_t)j), "%s: node %d/%" PRIu64 ": j", what,
                  k, j);
        for (size_t i = 0; i < e->nprops; i++)
                s_ok |= strcmp(e->props[i].key, "s") == 0 &&
                        e->props[i].value.type == SOMBRA_STRING &&
                        e->props[i].value.u.s.len == (size_t)len &&
                        memcmp(e->props[i].value.u.s.ptr, s, (size_t)len) == 0;
        cr_assert(s_ok, "%s: node %d/%" PRIu64 ": s", what, k, j);
}

/* The outgoing edges of a node read back whole: its NEXT, and PREV for a first node. */
static void
neighbors_check(const char *what, sombra_conn *c, int k, uint64_t j)
{
        const struct sombra_neighbor *nb;
        size_t n, want = j == 0 && k > 0 ? 2 : 1;
        int rc = sombra_neighbors(c, node_id(k, j), SOMBRA_OUT, NULL, 0, &nb, &n);

        if (is_damage_error(rc))
                return;
        cr_assert(eq(int, rc, SOMBRA_OK), "%s: neighbours of %d/%" PRIu64 ": %s", what, k, j,
                  sombra_strerror(rc));
        cr_assert(eq(sz, n, want), "%s: node %d/%" PRIu64 " has %zu out-edges", what, k, j, n);
        for (size_t i = 0; i < n; i++) {
                bool next = strcmp(nb[i].type, "NEXT") == 0;
                uint64_t to = next ? node_id(k, (j + 1) % txn_size(k)) : node_id(k - 1, 0);
                cr_assert(next || (want == 2 && strcmp(nb[i].type, "PREV") == 0),
                          "%s: node %d/%" PRIu64 ": edge type %s", what, k, j, nb[i].type);
                cr_assert(eq(u64, nb[i].node, to), "%s: node %d/%" PRIu64 ": %s edge target", what,
                          k, j, nb[i].type);
        }
}

static struct txn_seen
txn_read(const char *what, sombra_conn *c, int k)
{
        struct txn_seen seen = {0, 0, 0};

        for (uint64_t j = 0; j < txn_size(k); j++) {
                const struct sombra_entity *e;
                int rc = sombra_node_get(c, node_id(k, j), &e);

                if (rc == SOMBRA_OK) {
                        node_check(what, e, k, j);
                        neighbors_check(what, c, k, j);
                        seen.present++;
                } else if (rc == SOMBRA_ENOTFOUND) {
                        seen.absent++;
                } else {
                        cr_assert(is_damage_error(rc), "%s: node %d/%" PRIu64 ": %s", what, k, j,
                                  sombra_strerror(rc));
                        seen.damaged++;
                }
        }
        return seen;
}

/*
 * Opens the damaged copy and holds what it returns to the promise above.
 * Returns whether it opened.
 */
static bool
copy_check(const char *what, bool wal_damaged)
{
        struct sombra_config cfg;
        char problem[256];
        int first_missing = -1, rc;
        sombra_db *db;
        sombra_conn *c;

        config(&cfg);
        rc = sombra_open(support_path(TRY), &cfg, &db);
        if (rc != SOMBRA_OK) {
                cr_assert(is_damage_error(rc) || rc == SOMBRA_ENOTDB || rc == SOMBRA_EWAL,
                          "%s: open: %s", what, sombra_strerror(rc));
                return false;
        }
        rc = sombra_verify(db, problem, sizeof(problem));
        cr_assert(rc == SOMBRA_OK || is_damage_error(rc), "%s: verify: %s", what,
                  sombra_strerror(rc));
        cr_assert(eq(int, sombra_conn_acquire(db, &c), SOMBRA_OK));
        for (int k = 0; k < TXNS; k++) {
                struct txn_seen seen = txn_read(what, c, k);

                cr_assert(seen.present == 0 || seen.absent == 0,
                          "%s: transaction %d is half there (%" PRIu64 " of %" PRIu64 " nodes)",
                          what, k, seen.present, txn_size(k));
                if (seen.absent == 0) {
                        cr_assert(first_missing < 0 || seen.present == 0,
                                  "%s: transaction %d is there after %d is not: not a prefix", what,
                                  k, first_missing);
                        continue;
                }
                cr_assert(wal_damaged, "%s: committed transaction %d vanished", what, k);
                cr_assert(ge(int, k, CHECKPOINTED), "%s: checkpointed transaction %d vanished",
                          what, k);
                if (first_missing < 0)
                        first_missing = k;
        }
        cr_assert(eq(int, sombra_conn_release(c), SOMBRA_OK));
        rc = sombra_close(db);
        cr_assert(rc == SOMBRA_OK || is_damage_error(rc), "%s: close: %s", what,
                  sombra_strerror(rc));
        return true;
}

/* Builds the image and checks that, undamaged, it holds every transaction. */
static void
image_make(void)
{
        int status;
        pid_t pid = fork();

        cr_assert(ge(int, pid, 0), "fork");
        if (pid == 0)
                image_child();
        cr_assert(eq(int, waitpid(pid, &status, 0), pid));
        bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
        cr_assert(clean, "the image child failed: status %d", status);
        cr_assert(gt(u64, support_wal_end(IMAGE), WAL_HDR), "the last commits are in the WAL");
        support_copy_file(IMAGE, TRY);
        support_copy_file(IMAGE_WAL, TRY_WAL);
        cr_assert(copy_check("undamaged", false));
        /* The reopen recovered and checkpointed the copy: every node id is where node_id says. */
}

static void
copy_fresh(void)
{
        support_copy_file(IMAGE, TRY);
        support_copy_file(IMAGE_WAL, TRY_WAL);
}

/* What a test did, for the long-run figures in README.md. */
static void
report(const char *kind, uint64_t copies, uint64_t opened)
{
        fprintf(stderr, "corrupt: %s: %" PRIu64 " damaged copies, %" PRIu64 " opened\n", kind,
                copies, opened);
}

static void
page_swap(uint64_t a, uint64_t b)
{
        uint8_t pa[PAGE], pb[PAGE];

        support_read_at(TRY, a * PAGE, pa, PAGE);
        support_read_at(TRY, b * PAGE, pb, PAGE);
        support_write_at(TRY, a * PAGE, pb, PAGE);
        support_write_at(TRY, b * PAGE, pa, PAGE);
}

Test(corrupt, every_page_flipped_zeroed_or_swapped_is_caught_or_harmless)
{
        static const uint8_t zero[PAGE];
        uint64_t npages, rng = 1, opened = 0, cases = 0;
        char what[96];

        image_make();
        npages = support_file_size(IMAGE) / PAGE;
        cr_assert(gt(u64, npages, 20), "the image has %" PRIu64 " pages", npages);
        for (uint64_t p = 0; p < npages; p++) {
                for (int kind = 0; kind < 4; kind++) {
                        copy_fresh();
                        if (kind < 2) { /* two random bytes of the page, one at a time */
                                uint64_t off = support_next_rand(&rng) % PAGE;
                                uint8_t mask = (uint8_t)(1u + support_next_rand(&rng) % 255u);
                                support_flip_byte(TRY, p * PAGE + off, mask);
                                snprintf(what, sizeof(what),
                                         "page %" PRIu64 " byte %" PRIu64 " ^ %u", p, off, mask);
                        } else if (kind == 2) {
                                support_write_at(TRY, p * PAGE, zero, PAGE);
                                snprintf(what, sizeof(what), "page %" PRIu64 " zeroed", p);
                        } else {
                                uint64_t q =
                                    (p + 1 + support_next_rand(&rng) % (npages - 1)) % npages;
                                page_swap(p, q);
                                snprintf(what, sizeof(what),
                                         "pages %" PRIu64 " and %" PRIu64 " swapped", p, q);
                        }
                        opened += copy_check(what, false);
                        cases++;
                }
        }
        report("pages flipped, zeroed, swapped", cases, opened);
}

Test(corrupt, a_truncated_main_file_is_caught)
{
        uint64_t size, copies = 0, opened = 0;
        char what[64];

        image_make();
        size = support_file_size(IMAGE);
        for (uint64_t cut = 0; cut < size; cut += PAGE / 2, copies++) {
                copy_fresh();
                support_truncate(TRY, cut);
                snprintf(what, sizeof(what), "main file cut to %" PRIu64 " bytes", cut);
                opened += copy_check(what, false);
        }
        report("main file cut", copies, opened);
}

Test(corrupt, the_wal_cut_anywhere_in_its_last_records_recovers_a_prefix)
{
        uint64_t size, tail = 1200, opened = 0, copies = 0;
        char what[64];

        image_make();
        size = support_wal_end(IMAGE); /* the zeros past it are room (wal.h) */
        cr_assert(gt(u64, size, tail));
        /* Every byte of the last records; every 61st before them. */
        for (uint64_t cut = 0; cut < size; cut += cut < size - tail ? 61 : 1, copies++) {
                copy_fresh();
                support_truncate(TRY_WAL, cut);
                snprintf(what, sizeof(what), "WAL cut to %" PRIu64 " bytes", cut);
                opened += copy_check(what, true);
        }
        report("WAL cut", copies, opened);
        cr_assert(gt(u64, opened, 0), "a cut WAL never opened");
}

Test(corrupt, random_bytes_flipped_in_the_wal_recover_a_prefix_or_fail_cleanly)
{
        uint64_t size, rng = 7, opened = 0;
        char what[64];

        image_make();
        /* The log, and the start of the room after it (wal.h). */
        size = support_wal_end(IMAGE) + 4096;
        if (size > support_file_size(IMAGE_WAL))
                size = support_file_size(IMAGE_WAL);
        for (int i = 0; i < 300; i++) {
                uint64_t off = support_next_rand(&rng) % size;
                uint8_t mask = (uint8_t)(1u + support_next_rand(&rng) % 255u);

                copy_fresh();
                support_flip_byte(TRY_WAL, off, mask);
                snprintf(what, sizeof(what), "WAL byte %" PRIu64 " ^ %u", off, mask);
                opened += copy_check(what, true);
        }
        report("WAL bytes flipped", 300, opened);
}
