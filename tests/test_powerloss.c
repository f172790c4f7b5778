/*
 * test_powerloss.c - power losses, modelled (powerloss.h): the disk keeps,
 * drops or tears each block written since the last fdatasync.
 *
 * The promises held to every crash image:
 *   - the database opens and verifies; each transaction is whole or absent;
 *   - each writer's transactions that survive are a prefix of the ones it
 *     committed: nothing after a lost commit survives;
 *   - FULL loses no acknowledged commit; NORMAL at most sync_interval of
 *     them; CHECKPOINT and OFF promise nothing more;
 *   - what one image showed, every later image of the same database shows
 *     again: a commit found survives later power losses, and a commit lost
 *     never comes back.
 * The rounds chain: each image is opened under the model again, recovered
 * there, written to, and cut once more, so that recovery after a power loss
 * is itself exposed to the next one. A copy of each image is checked.
 *
 * The first test is the exact pattern of issue 10: a WAL whose first record
 * was torn while the record after it survived.
 *
 * SOMBRA_POWERLOSS_LINEAGES=N (default 1) runs N lineages of ROUNDS power
 * losses per mode, each from a new database and seed: scripts/powerloss.sh.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "powerloss.h"
#include "store.h"
#include "support.h"

static void
setup(void)
{
        support_dir_make("powerloss");
}

TestSuite(powerloss, .init = setup, .fini = support_dir_remove, .timeout = 600);

/* ---- the torn first record ---- */

#define BIG 5000 /* record A spans the WAL's first two blocks */

static void
put_commit(struct store *s, const char *key, uint8_t fill, size_t len)
{
        uint8_t *val = malloc(len);

        cr_assert(val != NULL);
        memset(val, fill, len);
        cr_assert(eq(int, store_begin(s), SOMBRA_OK));
        cr_assert(eq(int, store_put(s, TREE_NAMES, key, strlen(key), val, len), SOMBRA_OK));
        cr_assert(eq(int, store_commit(s, NULL), SOMBRA_OK));
        free(val);
}

/* Drops block 0 of the WAL (the header, synced, and the head of record A); keeps the rest. */
static enum powerloss_fate
tear_first_wal_block(void *arg, uint32_t kind, uint64_t block, uint32_t *sectors)
{
        (void)arg;
        (void)sectors;
        return kind == IO_FILE_WAL && block == 0 ? POWERLOSS_DROP : POWERLOSS_KEEP;
}

/* Cuts the power under s, writes the image of both files to name, and closes s. */
static void
cut_to(struct store *s, struct powerloss *pl, const char *from, const char *name,
       powerloss_fate_fn fate)
{
        char from_wal[64], name_wal[64];

        snprintf(from_wal, sizeof(from_wal), "%s-wal", from);
        snprintf(name_wal, sizeof(name_wal), "%s-wal", name);
        powerloss_cut(pl);
        powerloss_image(pl, IO_FILE_DB, support_path(from), support_path(name), fate, NULL);
        powerloss_image(pl, IO_FILE_WAL, support_path(from_wal), support_path(name_wal), fate,
                        NULL);
        (void)store_close(s); /* fails: the disk is gone */
        powerloss_free(pl);
}

static struct store *
store_open_modelled(const char *name, struct io_faults *faults, struct powerloss **pl)
{
        struct store *s = NULL;

        *faults = (struct io_faults){0};
        *pl = powerloss_attach(faults);
        cr_assert(eq(int, store_open(support_path(name), NULL, faults, &s), SOMBRA_OK), "%s", name);
        return s;
}

Test(powerloss, a_torn_first_record_never_revives_the_records_after_it)
{
        struct io_faults faults;
        struct powerloss *pl;
        struct store *s = store_open_modelled("db", &faults, &pl);
        struct buf val = BUF_INIT;

        put_commit(s, "a", 0xAA, BIG); /* written, not synced */
        put_commit(s, "b", 0xBB, 1);   /* written after it, in block 1 */
        cr_assert(eq(u64, powerloss_unsynced(pl, IO_FILE_WAL), 2));
        cut_to(s, pl, "db", "img", tear_first_wal_block);

        /* Recovery stops at the torn A: neither is there. */
        s = store_open_modelled("img", &faults, &pl);
        cr_assert(
            eq(int, store_get(s, store_committed(s), TREE_NAMES, "a", 1, &val), SOMBRA_ENOTFOUND));
        cr_assert(
            eq(int, store_get(s, store_committed(s), TREE_NAMES, "b", 1, &val), SOMBRA_ENOTFOUND));
        /* A new commit as long as A, made durable: it ends where the old B begins. */
        put_commit(s, "a", 0xCC, BIG);
        cr_assert(eq(int, store_sync(s), SOMBRA_OK));
        cut_to(s, pl, "img", "img2", powerloss_keep_all);

        s = NULL;
        cr_assert(eq(int, store_open(support_path("img2"), NULL, NULL, &s), SOMBRA_OK));
        cr_assert(eq(int, store_get(s, store_committed(s), TREE_NAMES, "a", 1, &val), SOMBRA_OK),
                  "the acknowledged commit is lost");
        cr_assert(eq(sz, val.len, BIG));
        cr_assert(eq(u8, val.data[0], 0xCC));
        cr_assert(
            eq(int, store_get(s, store_committed(s), TREE_NAMES, "b", 1, &val), SOMBRA_ENOTFOUND),
            "the lost commit B came back");
        cr_assert(eq(int, store_close(s), SOMBRA_OK));
        buf_free(&val);
}

/* ---- rounds of random power losses under the public API ---- */

#define ROUNDS   24
#define WRITERS  4
#define MAX_TXNS 120 /* per writer and round */

struct writer {
        sombra_db *db;
        int round, t;
        int acked; /* transactions 0..acked-1 were acknowledged */
};

/* Commits until the first failure (the cut) or MAX_TXNS. */
static void *
txn_writer_main(void *arg)
{
        struct writer *w = arg;
        sombra_conn *c = support_conn_acquire(w->db);
        sombra_batch *b = NULL;

        cr_assert(eq(int, sombra_batch_new(&b), SOMBRA_OK));
        for (;;) {
                /* Transaction (r, t, i): nodes A and B with r, t and i, and A -PAIR-> B. */
                struct sombra_prop p[3] = {
                    {"r", {.type = SOMBRA_INT, .u.i = w->round}},
                    {"t", {.type = SOMBRA_INT, .u.i = w->t}},
                    {"i", {.type = SOMBRA_INT, .u.i = w->acked}},
                };
                if (w->acked == MAX_TXNS || support_pair_commit(c, b, p, 3) != SOMBRA_OK)
                        break;
                __atomic_add_fetch(&w->acked, 1, __ATOMIC_RELEASE);
        }
        sombra_batch_free(b);
        sombra_conn_release(c);
        return NULL;
}

/* What a check found: present[r][t][i], per transaction. */
struct found {
        bool present[ROUNDS][WRITERS][MAX_TXNS];
};

/* Records the A node `a` and checks that its transaction is whole. */
static void
pair_found(const char *what, sombra_conn *c, uint64_t a, struct found *f)
{
        const struct sombra_entity *e;
        const struct sombra_neighbor *nbr;
        static const char *const pair[] = {"PAIR"};
        int64_t r, t, i;
        size_t n;

        cr_assert(eq(int, sombra_node_get(c, a, &e), SOMBRA_OK), "%s", what);
        r = support_prop_int(e, "r");
        t = support_prop_int(e, "t");
        i = support_prop_int(e, "i");
        cr_assert(r >= 0 && r < ROUNDS && t >= 0 && t < WRITERS && i >= 0 && i < MAX_TXNS,
                  "%s: node %" PRIu64, what, a);
        cr_assert(not(f->present[r][t][i]), "%s: (%" PRId64 ",%" PRId64 ",%" PRId64 ") twice", what,
                  r, t, i);
        f->present[r][t][i] = true;
        cr_assert(eq(int, sombra_neighbors(c, a, SOMBRA_OUT, pair, 1, &nbr, &n), SOMBRA_OK));
        cr_assert(eq(sz, n, 1),
                  "%s: transaction (%" PRId64 ",%" PRId64 ",%" PRId64 ") is half there", what, r, t,
                  i);
        cr_assert(eq(int, sombra_node_get(c, nbr[0].node, &e), SOMBRA_OK));
        cr_assert(support_prop_int(e, "r") == r && support_prop_int(e, "t") == t &&
                      support_prop_int(e, "i") == i,
                  "%s: a PAIR edge to another transaction's node", what);
}

/* Opens a copy of the image, verifies it and records every transaction in it. */
static void
image_read(const char *what, const char *image, struct found *f)
{
        char image_wal[64];
        const uint64_t *ids;
        uint64_t *a;
        size_t na, nb;
        char problem[256] = "";
        sombra_db *db = NULL;
        sombra_conn *c;

        snprintf(image_wal, sizeof(image_wal), "%s-wal", image);
        support_remove("check");
        support_remove("check-wal");
        support_copy_file(image, "check");
        support_copy_file(image_wal, "check-wal");
        cr_assert(eq(int, sombra_open(support_path("check"), NULL, &db), SOMBRA_OK), "%s: open",
                  what);
        cr_assert(eq(int, sombra_verify(db, problem, sizeof(problem)), SOMBRA_OK), "%s: %s", what,
                  problem);
        c = support_conn_acquire(db);
        memset(f, 0, sizeof(*f));
        cr_assert(eq(int, sombra_nodes_by_label(c, "B", &ids, &nb), SOMBRA_OK));
        cr_assert(eq(int, sombra_nodes_by_label(c, "A", &ids, &na), SOMBRA_OK));
        cr_assert(eq(sz, na, nb), "%s: %zu A nodes, %zu B nodes", what, na, nb);
        a = malloc((na ? na : 1) * sizeof(*a)); /* ids live only until the next read */
        cr_assert(a != NULL);
        if (na > 0) /* an image may hold nothing yet, and ids is NULL then */
                memcpy(a, ids, na * sizeof(*a));
        for (size_t k = 0; k < na; k++)
                pair_found(what, c, a[k], f);
        free(a);
        cr_assert(eq(int, sombra_conn_release(c), SOMBRA_OK));
        support_db_close(&db);
}

/* How many of writer t's transactions of round r survive; they must be a prefix. */
static int
prefix_of(const char *what, const struct found *f, int r, int t)
{
        int m = 0;

        while (m < MAX_TXNS && f->present[r][t][m])
                m++;
        for (int i = m; i < MAX_TXNS; i++)
                cr_assert(not(f->present[r][t][i]),
                          "%s: writer %d's transaction %d survives, %d before it does not", what, t,
                          i, m);
        return m;
}

struct lineage {
        enum sombra_sync_mode mode;
        uint64_t rng;
        int kept[ROUNDS][WRITERS]; /* what the image after round r held of round r */
        uint64_t lost_acked;       /* acknowledged commits lost, all rounds */
        uint64_t images, blocks_dropped;
};

static void
config_for(enum sombra_sync_mode mode, struct sombra_config *cfg)
{
        cr_assert(eq(int, sombra_config_production(cfg), SOMBRA_OK));
        cfg->sync_mode = mode;
        /* NORMAL: only the count bounds what is at risk, so that the test can count it. */
        cfg->sync_interval = 4;
        cfg->sync_interval_ms = 60000;
        cfg->checkpoint_threshold = 64 * 1024; /* checkpoints happen inside rounds too */
}

/* Runs writers on db until the target is reached (or they are done), then cuts. */
static void
write_then_cut(sombra_db *db, struct powerloss *pl, int r, uint64_t *rng, int acked[WRITERS])
{
        struct writer w[WRITERS];
        pthread_t th[WRITERS];
        int target = 1 + (int)(support_next_rand(rng) % (WRITERS * MAX_TXNS / 2));

        for (int t = 0; t < WRITERS; t++) {
                w[t] = (struct writer){.db = db, .round = r, .t = t};
                cr_assert(eq(int, pthread_create(&th[t], NULL, txn_writer_main, &w[t]), 0));
        }
        for (;;) {
                int total = 0, done = 0;
                for (int t = 0; t < WRITERS; t++) {
                        int n = __atomic_load_n(&w[t].acked, __ATOMIC_ACQUIRE);
                        total += n;
                        done += n == MAX_TXNS;
                }
                if (total >= target || done == WRITERS)
                        break;
                sched_yield();
        }
        powerloss_cut(pl);
        for (int t = 0; t < WRITERS; t++) {
                pthread_join(th[t], NULL);
                acked[t] = w[t].acked;
        }
}

/* One round: open the last image under the model, write, cut, image, check. */
static void
round_run(struct lineage *l, int r)
{
        struct sombra_config cfg;
        struct io_faults faults = {0};
        struct powerloss *pl = powerloss_attach(&faults);
        struct powerloss_dice dice = {.rng = support_next_rand(&l->rng), .tear_pct = 30};
        static const uint32_t keep[] = {0, 25, 50, 90, 100};
        int acked[WRITERS];
        struct found f;
        sombra_db *db = NULL;
        char what[64];
        uint64_t lost = 0;

        snprintf(what, sizeof(what), "mode %d round %d", l->mode, r);
        config_for(l->mode, &cfg);
        cr_assert(eq(int, engine_open(support_path("db"), &cfg, &faults, &db), SOMBRA_OK), "%s",
                  what);
        write_then_cut(db, pl, r, &l->rng, acked);
        dice.keep_pct = keep[support_next_rand(&l->rng) % 5];
        l->blocks_dropped +=
            powerloss_unsynced(pl, IO_FILE_WAL) + powerloss_unsynced(pl, IO_FILE_DB);
        powerloss_image(pl, IO_FILE_DB, support_path("db"), support_path("next"), powerloss_random,
                        &dice);
        powerloss_image(pl, IO_FILE_WAL, support_path("db-wal"), support_path("next-wal"),
                        powerloss_random, &dice);
        (void)sombra_close(db); /* fails: the disk is gone */
        powerloss_free(pl);
        support_remove("db");
        support_remove("db-wal");
        support_copy_file("next", "db");
        support_copy_file("next-wal", "db-wal");
        l->images++;

        image_read(what, "db", &f);
        for (int t = 0; t < WRITERS; t++) {
                l->kept[r][t] = prefix_of(what, &f, r, t);
                if (acked[t] > l->kept[r][t])
                        lost += (uint64_t)(acked[t] - l->kept[r][t]);
                if (l->mode == SOMBRA_SYNC_FULL)
                        cr_assert(ge(int, l->kept[r][t], acked[t]),
                                  "%s: writer %d had %d acknowledged, %d survive", what, t,
                                  acked[t], l->kept[r][t]);
                for (int q = 0; q < r; q++)
                        cr_assert(eq(int, prefix_of(what, &f, q, t), l->kept[q][t]),
                                  "%s: round %d's commits of writer %d changed", what, q, t);
        }
        if (l->mode == SOMBRA_SYNC_NORMAL)
                cr_assert(le(u64, lost, cfg.sync_interval),
                          "%s: %" PRIu64 " acknowledged commits lost, sync_interval %u", what, lost,
                          cfg.sync_interval);
        l->lost_acked += lost;
}

static void
lineage_run(enum sombra_sync_mode mode, uint64_t seed)
{
        const char *env = getenv("SOMBRA_POWERLOSS_LINEAGES");
        long lineages = env != NULL ? strtol(env, NULL, 10) : 1;
        struct lineage *l = calloc(1, sizeof(*l));

        cr_assert(l != NULL);
        l->mode = mode;
        for (long k = 0; k < (lineages > 0 ? lineages : 1); k++) {
                support_remove("db");
                support_remove("db-wal");
                l->rng = seed * 1000003u + (uint64_t)k;
                for (int r = 0; r < ROUNDS; r++)
                        round_run(l, r);
        }
        /* The line scripts/powerloss.sh adds up. */
        cr_log_info("powerloss mode %d: %" PRIu64 " images, %" PRIu64
                    " unsynced blocks at the cuts, %" PRIu64 " acknowledged commits lost",
                    mode, l->images, l->blocks_dropped, l->lost_acked);
        free(l);
}

Test(powerloss, full_loses_no_acknowledged_commit)
{
        lineage_run(SOMBRA_SYNC_FULL, 1);
}

Test(powerloss, normal_loses_at_most_sync_interval_acknowledged_commits)
{
        lineage_run(SOMBRA_SYNC_NORMAL, 2);
}

Test(powerloss, checkpoint_and_off_keep_a_whole_prefix)
{
        lineage_run(SOMBRA_SYNC_CHECKPOINT, 3);
        lineage_run(SOMBRA_SYNC_OFF, 4);
}
