/*
 * crash.c - the crash harness: kill a process that writes, reopen, check.
 *
 *   crash [--kills N] [--mode full|normal|checkpoint|off|all] [--seed S] [--dir D]
 *
 * A plain program rather than a Criterion test because it starts processes
 * and kills them, and so that it also runs under ThreadSanitizer.
 *
 * One round (a kill): the parent starts a child that opens the database
 * (the same file across rounds, so that recovery runs again and again on a
 * history that grows; now and then a fresh one) and starts WRITERS threads
 * (in some rounds it also stops them every few milliseconds to close and
 * reopen the database, so that kills land in close's checkpoint as well).
 * Each thread writes transactions one after another, cycling through the
 * write forms of the public API: an autocommit node create, a batch (every
 * other one submitted asynchronously and waited for by ticket), an
 * interactive transaction, an autocommit edge create. Transaction k
 * writes a group that can be recognised afterwards:
 *   node or batch or txn  a node labelled Txn {txn: k, leaves: L} with L
 *                         leaf nodes Leaf {txn: k}, each reached by an edge
 *                         Has {txn: k} (L = 0 for the autocommit node);
 *   edge                  one edge Auto {txn: k} from the thread's latest Txn
 *                         node to the Hub node;
 *   delete                a batch that makes a Txn node {txn: k, leaves: 0}
 *                         and deletes the whole group of the thread's
 *                         transaction k - DELETE_AFTER (a batch), so that
 *                         pages are freed and reused across kills too.
 * k encodes the round, the thread and the thread's sequence number (from 1).
 * After a commit returned, the thread writes one fixed-size record (k and
 * the ids it got) to a pipe; a write() of less than PIPE_BUF bytes to a pipe
 * is atomic, so records never interleave. The parent SIGKILLs the child at a
 * random moment and reads every record the child managed to send. Then it
 * reopens the database with sombra_open, runs sombra_verify and reads
 * everything back; or, one round in three (at most MAX_PENDING - 1 in a row),
 * it leaves the killed database to the next round's child, which recovers it
 * (and may be killed during that recovery), and checks after that round.
 *
 * What is asserted, and why it is all that can be:
 *   - open and verify succeed;
 *   - every group is whole: a Txn node has exactly its L Has edges, each with
 *     its txn to a Leaf with its txn; the Leaf nodes, Auto edges and the
 *     totals of sombra_count hold nothing else; at most one Hub; no txn twice;
 *   - what was there at the previous check is still there (that state was
 *     recovered, checkpointed and closed cleanly), and nothing new is from a
 *     round before it;
 *   - per thread, the transactions committed are its first m: their groups
 *     are there, except each doomed group whose deleting transaction is, and
 *     nothing later is. m is at most one more than the last it acknowledged
 *     (the kill may fall between a commit returning and its record being
 *     sent). A thread starts a transaction only after the previous returned,
 *     so its commits are in its order, and recovery restores a prefix of the
 *     commit order;
 *   - across threads a "prefix" can only be stated through the commit order,
 *     which the parent does not see directly. Ids are handed out by the one
 *     writer thread in commit order, so it shows in them: when an acknowledged
 *     transaction is missing, nothing with a larger node id (or edge id) than
 *     the ids it got may be present;
 *   - which acknowledged transactions may be missing depends on the mode. In
 *     every mode a commit returns only after its WAL record was written
 *     (sombra.h: FULL after the fdatasync, the others "once written"), and a
 *     process kill leaves what was written in the kernel's page cache. So in
 *     FULL and NORMAL nothing acknowledged may be missing: NORMAL's window of
 *     sync_interval commits is what a power loss can take, which no kill can
 *     show. In CHECKPOINT and OFF the promise is only the consistent prefix
 *     above (everything since the last checkpoint may go); acknowledged
 *     transactions they lose are counted and reported, not failed.
 * A delete leaves no ids of its own to order, hence the Txn node its batch
 * makes: the deletion is "there" when that node is.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sombra.h"

#define WRITERS      4  /* writer threads in the child */
#define LEAVES       4  /* L of a batch or interactive group */
#define ROUND_SHIFT  36 /* k = round << ROUND_SHIFT | thread << SEQ_BITS | seq */
#define SEQ_BITS     32
#define MAX_DELAY_MS 200
#define FIRST_ACK_MS 20000 /* how long a child may take to open and commit once */
#define PROBLEM_LEN  512
#define DOOMED       2         /* seq % 8 of the batches that a later transaction deletes */
#define DELETES      0         /* seq % 8 of the transactions that delete them */
#define DELETE_AFTER 6         /* DELETES - DOOMED, mod 8 */
#define CLOSING      (1u << 8) /* variant bit: the child closes and reopens now and then */
#define MAX_PENDING  3         /* rounds whose databases the next child recovers, unchecked */

/*
 * A transaction's group by its ids: what a child reports after each commit
 * that returned, and what the parent finds in the database.
 */
struct group {
        uint64_t txn;
        uint64_t node; /* the Txn node, 0 for an Auto edge */
        uint64_t edge; /* the Auto edge or the first (lowest) Has edge, 0 for none */
};

static uint64_t
txn_number(uint32_t round, uint32_t writer, uint32_t seq)
{
        return (uint64_t)round << ROUND_SHIFT | (uint64_t)writer << SEQ_BITS | seq;
}

static uint32_t
txn_round(uint64_t k)
{
        return (uint32_t)(k >> ROUND_SHIFT);
}

static uint32_t
txn_writer(uint64_t k)
{
        return (uint32_t)(k >> SEQ_BITS) & ((1u << (ROUND_SHIFT - SEQ_BITS)) - 1);
}

static uint32_t
txn_seq(uint64_t k)
{
        return (uint32_t)k;
}

static struct sombra_prop
int_prop(const char *key, uint64_t v)
{
        return (struct sombra_prop){key, {.type = SOMBRA_INT, .u.i = (int64_t)v}};
}

/*
 * The child's configuration: the mode, and settings that variant (random
 * per round) picks so that kills land in different places: checkpoints
 * (with their WAL resets) many times per round or never, in which case the
 * next open replays a long WAL and a short delay kills it mid-recovery;
 * caches small enough to evict; group-commit delays; page sizes.
 */
static void
child_config(enum sombra_sync_mode mode, uint32_t variant, struct sombra_config *cfg)
{
        static const uint64_t thresholds[] = {16u << 10, 64u << 10, 1u << 20, 64u << 20};
        static const uint32_t caches[] = {SOMBRA_MIN_CACHE_PAGES, 256, 256, 4096};
        static const uint32_t page_sizes[] = {4096, 8192, 16384, 8192};

        sombra_config_production(cfg);
        cfg->sync_mode = mode;
        cfg->sync_interval = 16;
        cfg->sync_interval_ms = 10;
        cfg->max_connections = WRITERS + 2;
        cfg->checkpoint_threshold = thresholds[variant & 3];
        cfg->page_cache_size = caches[(variant >> 2) & 3];
        cfg->group_commit_delay_us = (variant >> 4) & 1 ? 500 : 0;
        cfg->page_size = page_sizes[(variant >> 5) & 3];
        cfg->checksums = (variant >> 7) & 1;
        /* bit 8 (CLOSING): see child_main */
}

/* ---- the child: writers that report what was acknowledged ---- */

struct writer {
        sombra_db *db;
        const int *stop; /* set by the child's main thread (atomic) when it wants to close */
        int fd;          /* the pipe's write end */
        uint32_t round, id;
        uint32_t seq; /* the last transaction it wrote */
        uint64_t hub;
        uint64_t last_node; /* this thread's latest Txn node, the source of its Auto edges */
        uint64_t doomed[1 + LEAVES]; /* the nodes of its latest DOOMED group, deleted by the next
                                        DELETES */
};

static const char *const txn_label[] = {"Txn"};
static const char *const leaf_label[] = {"Leaf"};

/*
 * A batch, submitted and waited for, or (async) submitted for a ticket that
 * is then waited on. nodes (may be NULL) gets the ids of the group's nodes.
 */
static int
group_batch(sombra_conn *c, sombra_batch *b, uint64_t k, bool async, struct group *a,
            uint64_t *nodes)
{
        struct sombra_prop p[2] = {int_prop("txn", k), int_prop("leaves", LEAVES)};
        uint64_t ref[1 + LEAVES], edge = 0, ticket;
        int rc = sombra_batch_reset(b);

        if (rc == SOMBRA_OK)
                rc = sombra_batch_node_create(b, txn_label, 1, p, 2, &ref[0]);
        for (int i = 1; i <= LEAVES && rc == SOMBRA_OK; i++) {
                rc = sombra_batch_node_create(b, leaf_label, 1, p, 1, &ref[i]);
                if (rc == SOMBRA_OK)
                        rc = sombra_batch_edge_create(b, ref[0], ref[i], "Has", p, 1,
                                                      i == 1 ? &edge : NULL);
        }
        if (rc == SOMBRA_OK && async)
                rc = sombra_batch_submit_async(c, b, false, &ticket);
        if (rc == SOMBRA_OK)
                rc = async ? sombra_wait(c, ticket) : sombra_batch_submit(c, b);
        if (rc == SOMBRA_OK)
                rc = sombra_batch_id(b, ref[0], &a->node);
        if (rc == SOMBRA_OK)
                rc = sombra_batch_id(b, edge, &a->edge);
        for (int i = 0; i <= LEAVES && rc == SOMBRA_OK && nodes != NULL; i++)
                rc = sombra_batch_id(b, ref[i], &nodes[i]);
        return rc;
}

/* A batch that makes the group of k (no leaves) and deletes the group w->doomed. */
static int
group_delete(struct writer *w, sombra_conn *c, sombra_batch *b, uint64_t k, struct group *a)
{
        struct sombra_prop p[2] = {int_prop("txn", k), int_prop("leaves", 0)};
        uint64_t ref;
        int rc = sombra_batch_reset(b);

        if (rc == SOMBRA_OK)
                rc = sombra_batch_node_create(b, txn_label, 1, p, 2, &ref);
        for (int i = 0; i <= LEAVES && rc == SOMBRA_OK; i++)
                rc = sombra_batch_node_delete(b, w->doomed[i]);
        if (rc == SOMBRA_OK)
                rc = sombra_batch_submit(c, b);
        if (rc == SOMBRA_OK)
                rc = sombra_batch_id(b, ref, &a->node);
        return rc;
}

static int
group_txn(sombra_conn *c, uint64_t k, struct group *a)
{
        struct sombra_prop p[2] = {int_prop("txn", k), int_prop("leaves", LEAVES)};
        uint64_t leaf, edge;
        int rc = sombra_txn_begin(c);

        if (rc != SOMBRA_OK)
                return rc;
        rc = sombra_node_create(c, txn_label, 1, p, 2, &a->node);
        for (int i = 0; i < LEAVES && rc == SOMBRA_OK; i++) {
                rc = sombra_node_create(c, leaf_label, 1, p, 1, &leaf);
                if (rc == SOMBRA_OK)
                        rc = sombra_edge_create(c, a->node, leaf, "Has", p, 1, &edge);
                if (rc == SOMBRA_OK && i == 0)
                        a->edge = edge;
        }
        if (rc == SOMBRA_OK)
                return sombra_txn_commit(c);
        sombra_txn_rollback(c);
        return rc;
}

/*
 * Transaction seq of writer w: the form cycles with seq % 8 so that every
 * thread uses each. The DOOMED batch is deleted DELETE_AFTER transactions
 * later, by the DELETES batch.
 */
static int
write_group(struct writer *w, sombra_conn *c, sombra_batch *b, uint32_t seq, struct group *a)
{
        uint64_t k = txn_number(w->round, w->id, seq);
        struct sombra_prop p[2] = {int_prop("txn", k), int_prop("leaves", 0)};

        *a = (struct group){.txn = k};
        switch (seq % 8) {
        case 1:
        case 5:
                return sombra_node_create(c, txn_label, 1, p, 2, &a->node);
        case DOOMED:
                return group_batch(c, b, k, false, a, w->doomed);
        case 6:
                return group_batch(c, b, k, true, a, NULL);
        case 3:
        case 7:
                return group_txn(c, k, a);
        case 4: /* seqs 1 to 3 made last_node */
                return sombra_edge_create(c, w->last_node, w->hub, "Auto", p, 1, &a->edge);
        default: /* DELETES */
                return group_delete(w, c, b, k, a);
        }
}

/* Writes until the parent kills the process or *w->stop; any failure ends the child. */
static void *
writer_main(void *arg)
{
        struct writer *w = arg;
        sombra_batch *b = NULL;
        sombra_conn *c = NULL;
        struct group a;
        int rc = sombra_batch_new(&b);

        if (rc == SOMBRA_OK)
                rc = sombra_conn_acquire(w->db, &c);
        while (rc == SOMBRA_OK && !__atomic_load_n(w->stop, __ATOMIC_ACQUIRE)) {
                rc = write_group(w, c, b, w->seq + 1, &a);
                if (rc != SOMBRA_OK)
                        break;
                w->seq++;
                if (a.node != 0)
                        w->last_node = a.node;
                if (write(w->fd, &a, sizeof(a)) != (ssize_t)sizeof(a))
                        _exit(4);
        }
        if (rc != SOMBRA_OK) {
                fprintf(stderr, "crash child: writer %u: %s\n", w->id, sombra_strerror(rc));
                _exit(3);
        }
        sombra_conn_release(c);
        sombra_batch_free(b);
        return NULL;
}

/* The Hub node, made by the first child of a database before any writer starts. */
static int
hub_ensure(sombra_db *db, uint64_t *hub)
{
        static const char *const hub_label[] = {"Hub"};
        const uint64_t *ids;
        sombra_conn *c;
        size_t n;
        int rc = sombra_conn_acquire(db, &c);

        if (rc != SOMBRA_OK)
                return rc;
        rc = sombra_nodes_by_label(c, "Hub", &ids, &n);
        if (rc == SOMBRA_OK && n > 0)
                *hub = ids[0];
        else if (rc == SOMBRA_OK)
                rc = sombra_node_create(c, hub_label, 1, NULL, 0, hub);
        sombra_conn_release(c);
        return rc;
}

static int
child_open(const char *path, const struct sombra_config *cfg, sombra_db **db, uint64_t *hub)
{
        int rc = sombra_open(path, cfg, db);

        if (rc == SOMBRA_OK)
                rc = hub_ensure(*db, hub);
        return rc;
}

/*
 * The child: opens, runs the writers until it is killed. With the variant's
 * CLOSING bit it also stops them every few milliseconds, closes the
 * database (so that kills fall in close's checkpoint too), reopens it and
 * lets them go on.
 */
static _Noreturn void
child_main(const char *path, enum sombra_sync_mode mode, uint32_t variant, uint32_t round, int fd)
{
        struct writer w[WRITERS];
        pthread_t t[WRITERS];
        struct sombra_config cfg;
        sombra_db *db;
        uint64_t hub;
        int stop = 0, rc;

        child_config(mode, variant, &cfg);
        rc = child_open(path, &cfg, &db, &hub);
        for (uint32_t i = 0; i < WRITERS; i++)
                w[i] = (struct writer){.stop = &stop, .fd = fd, .round = round, .id = i};
        for (uint32_t cycle = 0; rc == SOMBRA_OK; cycle++) {
                struct timespec pause = {0, (long)(2 + (variant + cycle * 7919u) % 40) * 1000000};
                __atomic_store_n(&stop, 0, __ATOMIC_RELEASE);
                for (uint32_t i = 0; i < WRITERS; i++) {
                        w[i].db = db;
                        w[i].hub = hub;
                        if (pthread_create(&t[i], NULL, writer_main, &w[i]) != 0)
                                _exit(5);
                }
                if (!(variant & CLOSING))
                        pause.tv_sec = 3600; /* the parent kills it long before */
                nanosleep(&pause, NULL);
                __atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
                for (uint32_t i = 0; i < WRITERS; i++)
                        pthread_join(t[i], NULL);
                rc = sombra_close(db);
                if (rc == SOMBRA_OK)
                        rc = child_open(path, &cfg, &db, &hub);
        }
        fprintf(stderr, "crash child: open or close: %s\n", sombra_strerror(rc));
        _exit(2);
}

/* ---- the parent: kill, reopen, check ---- */

/* A growable array of groups. */
struct records {
        struct group *v;
        size_t n, cap;
};

static int
records_push(struct records *r, const struct group *x)
{
        if (r->n == r->cap) {
                size_t cap = r->cap ? 2 * r->cap : 256;
                struct group *v = realloc(r->v, cap * sizeof(*v));
                if (v == NULL)
                        return SOMBRA_ENOMEM;
                r->v = v;
                r->cap = cap;
        }
        r->v[r->n++] = *x;
        return SOMBRA_OK;
}

static int
by_txn(const void *a, const void *b)
{
        uint64_t x = ((const struct group *)a)->txn, y = ((const struct group *)b)->txn;
        return (x > y) - (x < y);
}

static const struct group *
records_find(const struct records *r, uint64_t txn)
{
        struct group key = {.txn = txn};
        return r->n == 0 ? NULL : bsearch(&key, r->v, r->n, sizeof(*r->v), by_txn);
}

/* A round's or a check's outcome; `problem` says what broke when `ok` is false. */
struct verdict {
        bool ok;
        char problem[PROBLEM_LEN];
};

/* A round not checked yet: how its child ran and what it acknowledged. */
struct round_log {
        uint32_t round;
        enum sombra_sync_mode mode;
        uint32_t variant;  /* the child's configuration (child_config) */
        uint64_t delay_ms; /* when it was killed: after the start or after its first commit */
        bool after_first;
        struct records acks;
};

static bool __attribute__((format(printf, 2, 3))) fail(struct verdict *v, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(v->problem, sizeof(v->problem), fmt, ap);
        va_end(ap);
        v->ok = false;
        return false;
}

static bool
prop_int(const struct sombra_entity *e, const char *key, uint64_t *out)
{
        for (size_t i = 0; i < e->nprops; i++) {
                if (strcmp(e->props[i].key, key) == 0 && e->props[i].value.type == SOMBRA_INT) {
                        *out = (uint64_t)e->props[i].value.u.i;
                        return true;
                }
        }
        return false;
}

/* The txn property of node or edge id. */
static int
txn_of(sombra_conn *c, bool edge, uint64_t id, uint64_t *txn, const struct sombra_entity **e)
{
        int rc = edge ? sombra_edge_get(c, id, e) : sombra_node_get(c, id, e);

        if (rc == SOMBRA_OK && !prop_int(*e, "txn", txn))
                rc = SOMBRA_ENOTFOUND;
        return rc;
}

/* What the parent reads back from a database. */
struct scan {
        struct records found; /* every transaction present, sorted by txn */
        uint64_t hub;         /* 0 when there is none */
        uint64_t leaves;      /* Leaf nodes the Txn nodes claim */
        uint64_t edges;       /* Has and Auto edges */
        struct sombra_neighbor *nbrs;
        size_t nbrs_cap;
};

/* Copies a neighbour list out of the connection, which the next read reuses. */
static int
neighbors_copy(sombra_conn *c, struct scan *s, uint64_t node, enum sombra_dir dir, const char *type,
               size_t *n)
{
        const struct sombra_neighbor *nb;
        int rc = sombra_neighbors(c, node, dir, &type, 1, &nb, n);

        if (rc != SOMBRA_OK || *n == 0)
                return rc;
        if (*n > s->nbrs_cap) {
                struct sombra_neighbor *v = realloc(s->nbrs, *n * sizeof(*v));
                if (v == NULL)
                        return SOMBRA_ENOMEM;
                s->nbrs = v;
                s->nbrs_cap = *n;
        }
        memcpy(s->nbrs, nb, *n * sizeof(*nb));
        return SOMBRA_OK;
}

/* Txn node id with its Has edges and Leaf nodes, all carrying the same txn. */
static bool
scan_group(sombra_conn *c, struct scan *s, uint64_t id, struct verdict *v)
{
        const struct sombra_entity *e;
        struct group f = {.node = id};
        uint64_t leaves, t = 0;
        size_t n;
        int rc = txn_of(c, false, id, &f.txn, &e);

        if (rc != SOMBRA_OK || !prop_int(e, "leaves", &leaves))
                return fail(v, "Txn node %lu: no txn or leaves (%s)", (unsigned long)id,
                            sombra_strerror(rc));
        rc = neighbors_copy(c, s, id, SOMBRA_OUT, "Has", &n);
        if (rc != SOMBRA_OK)
                return fail(v, "neighbors of %lu: %s", (unsigned long)id, sombra_strerror(rc));
        if (n != leaves)
                return fail(v, "txn %#lx is partial: %zu of %lu Has edges", (unsigned long)f.txn, n,
                            (unsigned long)leaves);
        for (size_t i = 0; i < n; i++) {
                const struct sombra_neighbor *nb = &s->nbrs[i];
                rc = txn_of(c, true, nb->edge, &t, &e);
                if (rc != SOMBRA_OK || t != f.txn)
                        return fail(v, "txn %#lx: edge %lu has txn %#lx (%s)", (unsigned long)f.txn,
                                    (unsigned long)nb->edge, (unsigned long)t, sombra_strerror(rc));
                rc = txn_of(c, false, nb->node, &t, &e);
                if (rc != SOMBRA_OK || t != f.txn || e->nlabels != 1 ||
                    strcmp(e->labels[0], "Leaf") != 0)
                        return fail(v, "txn %#lx: leaf %lu is not its Leaf (%s)",
                                    (unsigned long)f.txn, (unsigned long)nb->node,
                                    sombra_strerror(rc));
                if (f.edge == 0 || nb->edge < f.edge)
                        f.edge = nb->edge;
        }
        s->leaves += n;
        s->edges += n;
        if (records_push(&s->found, &f) != SOMBRA_OK)
                return fail(v, "out of memory");
        return true;
}

static bool
scan_auto_edges(sombra_conn *c, struct scan *s, struct verdict *v)
{
        const struct sombra_entity *e;
        size_t n;
        int rc;

        if (s->hub == 0)
                return true;
        rc = neighbors_copy(c, s, s->hub, SOMBRA_IN, "Auto", &n);
        if (rc != SOMBRA_OK)
                return fail(v, "neighbors of the hub: %s", sombra_strerror(rc));
        for (size_t i = 0; i < n; i++) {
                struct group f = {.edge = s->nbrs[i].edge};
                rc = txn_of(c, true, f.edge, &f.txn, &e);
                if (rc != SOMBRA_OK)
                        return fail(v, "Auto edge %lu: no txn (%s)", (unsigned long)f.edge,
                                    sombra_strerror(rc));
                if (records_push(&s->found, &f) != SOMBRA_OK)
                        return fail(v, "out of memory");
        }
        s->edges += n;
        return true;
}

/* Reads every group back and checks that each is whole and that nothing else is there. */
static bool
scan_db(sombra_conn *c, struct scan *s, struct verdict *v)
{
        const uint64_t *ids;
        uint64_t *txn_nodes = NULL, nodes = 0, edges = 0;
        size_t n = 0, ntxn = 0, nleaf = 0;
        bool ok = false;
        int rc = sombra_nodes_by_label(c, "Hub", &ids, &n);

        if (rc != SOMBRA_OK || n > 1) {
                fail(v, "%zu Hub nodes (%s)", n, sombra_strerror(rc));
                goto label_done;
        }
        s->hub = n ? ids[0] : 0;
        rc = sombra_nodes_by_label(c, "Txn", &ids, &ntxn);
        if (rc == SOMBRA_OK && ntxn > 0 && (txn_nodes = malloc(ntxn * sizeof(*ids))) == NULL)
                rc = SOMBRA_ENOMEM;
        if (rc != SOMBRA_OK) {
                fail(v, "Txn nodes: %s", sombra_strerror(rc));
                goto label_done;
        }
        if (ntxn > 0)
                memcpy(txn_nodes, ids, ntxn * sizeof(*ids));
        for (size_t i = 0; i < ntxn; i++)
                if (!scan_group(c, s, txn_nodes[i], v))
                        goto label_done;
        if (!scan_auto_edges(c, s, v))
                goto label_done;
        rc = sombra_nodes_by_label(c, "Leaf", &ids, &nleaf);
        if (rc != SOMBRA_OK || nleaf != s->leaves) {
                fail(v, "%zu Leaf nodes, the Txn nodes have %lu (%s)", nleaf,
                     (unsigned long)s->leaves, sombra_strerror(rc));
                goto label_done;
        }
        rc = sombra_count(c, &nodes, &edges);
        if (rc != SOMBRA_OK || nodes != (s->hub != 0) + ntxn + nleaf || edges != s->edges) {
                fail(v, "count says %lu nodes %lu edges, groups have %lu and %lu (%s)",
                     (unsigned long)nodes, (unsigned long)edges,
                     (unsigned long)((s->hub != 0) + ntxn + nleaf), (unsigned long)s->edges,
                     sombra_strerror(rc));
                goto label_done;
        }
        if (s->found.n > 0) /* qsort and bsearch want an array, even an empty one */
                qsort(s->found.v, s->found.n, sizeof(*s->found.v), by_txn);
        for (size_t i = 1; i < s->found.n; i++) {
                if (s->found.v[i].txn == s->found.v[i - 1].txn) {
                        fail(v, "txn %#lx is there twice", (unsigned long)s->found.v[i].txn);
                        goto label_done;
                }
        }
        ok = true;
label_done:
        free(txn_nodes);
        return ok;
}

/* Everything the driver carries from round to round. */
struct harness {
        char path[256], wal[264];
        struct records history; /* the transactions present after the last check, sorted */
        struct round_log pending[MAX_PENDING]; /* the rounds since that check */
        uint32_t npending;
        uint64_t rng; /* splitmix64 state */
        bool restart; /* the next round starts on a fresh database */
        uint64_t acked, lost, recovered, fresh, checks;
};

static uint64_t
rng_next(struct harness *h)
{
        uint64_t z = (h->rng += 0x9e3779b97f4a7c15ull);

        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
}

static uint64_t
now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static const char *
mode_name(enum sombra_sync_mode mode)
{
        static const char *const names[] = {"full", "normal", "checkpoint", "off"};
        return names[mode];
}

/* Whether doomed transaction k is missing because the transaction that deletes it is there. */
static bool
deleted(const struct records *found, uint64_t k)
{
        return txn_seq(k) % 8 == DOOMED && records_find(found, k + DELETE_AFTER) != NULL;
}

/*
 * Writer w of round: the transactions committed are its first m, m being the
 * highest seq present (top), and at most one more than it acknowledged.
 * The groups present are then exactly those, less the doomed ones whose
 * deleting transaction is among them.
 */
static bool
writer_prefix(const struct records *found, uint32_t round, uint32_t w, uint32_t top, uint32_t acked,
              struct verdict *v)
{
        if (top > acked + 1)
                return fail(v, "round %u writer %u: txn %u is there, %u acknowledged", round, w,
                            top, acked);
        for (uint32_t seq = 1; seq <= top; seq++) {
                uint64_t k = txn_number(round, w, seq);
                bool gone = seq % 8 == DOOMED && seq + DELETE_AFTER <= top;
                if ((records_find(found, k) == NULL) != gone)
                        return fail(v,
                                    gone ? "txn %#lx is there, and so is the txn that deletes it"
                                         : "txn %#lx is missing, a later txn of its writer is "
                                           "there",
                                    (unsigned long)k);
        }
        return true;
}

/*
 * The history rules of the comment at the top, given what was there at the
 * last check (h->history), what the children of the rounds since then
 * acknowledged (h->pending), and what is there now. Each of those rounds
 * opened a database that the one before left killed (its first, one that the
 * last check closed), so its own rules apply to its own transactions: ids
 * lost in one round may be handed out again in the next.
 */
static bool
check_history(struct harness *h, const struct records *found, struct verdict *v)
{
        uint32_t top[MAX_PENDING][WRITERS] = {{0}}, acked[MAX_PENDING][WRITERS] = {{0}};
        uint32_t first = h->pending[0].round;
        uint64_t lost_node[MAX_PENDING], lost_edge[MAX_PENDING];
        size_t j = 0;

        for (size_t i = 0; i < found->n; i++) {
                const struct group *f = &found->v[i];
                const struct group *old = j < h->history.n ? &h->history.v[j] : NULL;
                uint32_t p = txn_round(f->txn) - first, w = txn_writer(f->txn);
                if (old != NULL && old->txn < f->txn)
                        break; /* reported below */
                if (old != NULL && old->txn == f->txn) {
                        if (old->node != f->node || old->edge != f->edge)
                                return fail(v, "txn %#lx moved from node %lu edge %lu",
                                            (unsigned long)f->txn, (unsigned long)old->node,
                                            (unsigned long)old->edge);
                        j++;
                        continue;
                }
                if (txn_round(f->txn) < first || p >= h->npending || w >= WRITERS)
                        return fail(v, "txn %#lx was never written by a child since the last check",
                                    (unsigned long)f->txn);
                top[p][w] = txn_seq(f->txn); /* found is sorted: the last is the highest */
        }
        if (j < h->history.n)
                return fail(v, "txn %#lx, there at the last check, is gone",
                            (unsigned long)h->history.v[j].txn);
        for (uint32_t p = 0; p < h->npending; p++) {
                const struct round_log *r = &h->pending[p];
                bool lossless = r->mode == SOMBRA_SYNC_FULL || r->mode == SOMBRA_SYNC_NORMAL;
                lost_node[p] = lost_edge[p] = UINT64_MAX;
                for (size_t i = 0; i < r->acks.n; i++) {
                        const struct group *a = &r->acks.v[i];
                        const struct group *f = records_find(found, a->txn);
                        uint32_t w = txn_writer(a->txn);
                        if (txn_seq(a->txn) > acked[p][w])
                                acked[p][w] = txn_seq(a->txn);
                        if (f != NULL && (f->node != a->node || f->edge != a->edge))
                                return fail(v,
                                            "txn %#lx: acknowledged with node %lu edge %lu, "
                                            "found %lu %lu",
                                            (unsigned long)a->txn, (unsigned long)a->node,
                                            (unsigned long)a->edge, (unsigned long)f->node,
                                            (unsigned long)f->edge);
                        if (f != NULL || deleted(found, a->txn))
                                continue;
                        if (lossless)
                                return fail(v, "acknowledged txn %#lx is missing",
                                            (unsigned long)a->txn);
                        h->lost++;
                        if (a->node != 0 && a->node < lost_node[p])
                                lost_node[p] = a->node;
                        if (a->edge != 0 && a->edge < lost_edge[p])
                                lost_edge[p] = a->edge;
                }
                for (uint32_t w = 0; w < WRITERS; w++)
                        if (!writer_prefix(found, r->round, w, top[p][w], acked[p][w], v))
                                return false;
        }
        /* Ids follow a round's commit order: nothing after a lost transaction may be there. */
        for (size_t i = 0; i < found->n; i++) {
                const struct group *f = &found->v[i];
                uint32_t p = txn_round(f->txn) - first;
                if (txn_round(f->txn) >= first && p < h->npending &&
                    ((f->node != 0 && f->node > lost_node[p]) ||
                     (f->edge != 0 && f->edge > lost_edge[p])))
                        return fail(v, "txn %#lx is there, an acknowledged txn before it is not",
                                    (unsigned long)f->txn);
        }
        return true;
}

/* Reopens the database after the last kill and checks it. */
static bool
check_db(struct harness *h, struct verdict *v)
{
        struct scan s = {0};
        char problem[PROBLEM_LEN] = "";
        sombra_conn *c = NULL;
        sombra_db *db = NULL;
        int rc = sombra_open(h->path, NULL, &db);

        if (rc != SOMBRA_OK) {
                fail(v, "reopen: %s", sombra_strerror(rc));
                goto label_done;
        }
        rc = sombra_verify(db, problem, sizeof(problem));
        if (rc != SOMBRA_OK) {
                fail(v, "verify: %s: %s", sombra_strerror(rc), problem);
                goto label_done;
        }
        rc = sombra_conn_acquire(db, &c);
        if (rc != SOMBRA_OK) {
                fail(v, "acquire: %s", sombra_strerror(rc));
                goto label_done;
        }
        sombra_read_begin(c);
        h->checks++;
        if (scan_db(c, &s, v) && check_history(h, &s.found, v)) {
                struct records swap = h->history;
                h->recovered += s.found.n - h->history.n;
                h->history = s.found;
                s.found = swap;
        }
        sombra_read_end(c);
label_done:
        if (c != NULL)
                sombra_conn_release(c);
        rc = db != NULL ? sombra_close(db) : SOMBRA_OK;
        if (rc != SOMBRA_OK && v->ok)
                fail(v, "close: %s", sombra_strerror(rc));
        free(s.found.v);
        free(s.nbrs);
        return v->ok;
}

/* One whole record from the pipe: 1, 0 at the end (the child is gone), -1 on error. */
static int
read_ack(int fd, struct group *a)
{
        size_t got = 0;

        while (got < sizeof(*a)) {
                ssize_t r = read(fd, (char *)a + got, sizeof(*a) - got);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r <= 0)
                        return got == 0 && r == 0 ? 0 : -1;
                got += (size_t)r;
        }
        return 1;
}

/*
 * Collects records until the moment to kill: delay_ms after the start, or,
 * with after_first, delay_ms after the first record (when the writers run).
 * Returns false when the child ended before that moment.
 */
static bool
collect(int fd, struct records *acks, uint64_t delay_ms, bool after_first)
{
        uint64_t deadline = now_ms() + (after_first ? FIRST_ACK_MS : delay_ms);

        for (uint64_t now = now_ms(); now < deadline; now = now_ms()) {
                struct pollfd p = {.fd = fd, .events = POLLIN};
                struct group a;
                if (poll(&p, 1, (int)(deadline - now)) <= 0)
                        continue;
                if (read_ack(fd, &a) <= 0 || records_push(acks, &a) != SOMBRA_OK)
                        return false;
                if (after_first && acks->n == 1)
                        deadline = now_ms() + delay_ms;
        }
        return true;
}

/* Keeps a failed database for a look, so that the next round starts afresh. */
static void
set_aside(struct harness *h, uint32_t round)
{
        char to[300];

        snprintf(to, sizeof(to), "%s.fail-%u", h->path, round);
        rename(h->path, to);
        snprintf(to, sizeof(to), "%s.fail-%u-wal", h->path, round);
        rename(h->wal, to);
        h->restart = true;
}

/* Starts the round's child, kills it at the round's moment and collects its acknowledgements. */
static bool
run_child(struct harness *h, struct round_log *r, struct verdict *v)
{
        char mode_arg[12], variant_arg[12], round_arg[12], fd_arg[12];
        int fds[2], status;
        bool ended;
        pid_t pid;
        struct group a;

        if (pipe(fds) != 0)
                return fail(v, "pipe: %s", strerror(errno));
        snprintf(mode_arg, sizeof(mode_arg), "%d", (int)r->mode);
        snprintf(variant_arg, sizeof(variant_arg), "%u", r->variant);
        snprintf(round_arg, sizeof(round_arg), "%u", r->round);
        snprintf(fd_arg, sizeof(fd_arg), "%d", fds[1]);
        fflush(NULL);
        pid = fork();
        if (pid == 0) {
                /* A fresh process, not a fork's copy: see --child in main. */
                close(fds[0]);
                execl("/proc/self/exe", "crash", "--child", h->path, mode_arg, variant_arg,
                      round_arg, fd_arg, (char *)NULL);
                _exit(127);
        }
        close(fds[1]);
        if (pid < 0) {
                close(fds[0]);
                return fail(v, "fork: %s", strerror(errno));
        }
        ended = !collect(fds[0], &r->acks, r->delay_ms, r->after_first);
        kill(pid, SIGKILL);
        while (read_ack(fds[0], &a) > 0 && records_push(&r->acks, &a) == SOMBRA_OK)
                ; /* acknowledged before it died */
        close(fds[0]);
        waitpid(pid, &status, 0);
        h->acked += r->acks.n;
        if (ended || !WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
                return fail(v, "the child ended on its own (status %#x) after %zu commits", status,
                            r->acks.n);
        return true;
}

/* Counts the rounds a check (or a child's failure) settles, one line for each that failed. */
static void
settle(struct harness *h, const struct verdict *v, uint64_t seed, unsigned *passed,
       unsigned *failed)
{
        const struct round_log *last = &h->pending[h->npending - 1];

        for (uint32_t p = 0; p < h->npending && !v->ok; p++) {
                const struct round_log *r = &h->pending[p];
                printf("FAIL kill %u (%s, seed %#lx, variant %#x, %lu ms after %s; checked after "
                       "kill %u): %s; database kept as %s.fail-%u\n",
                       r->round, mode_name(r->mode), (unsigned long)seed, r->variant,
                       (unsigned long)r->delay_ms,
                       r->after_first ? "the first commit" : "the start", last->round, v->problem,
                       h->path, last->round);
        }
        *(v->ok ? passed : failed) += h->npending;
        if (!v->ok)
                set_aside(h, last->round);
        h->npending = 0;
}

/*
 * The rounds. Most are checked at once; some leave their killed database to
 * the next round's child, whose open must recover it (and may itself be
 * killed in the middle of that recovery), and the next check covers both.
 */
static void
run_rounds(struct harness *h, uint32_t kills, int mode, uint64_t seed, unsigned *passed,
           unsigned *failed)
{
        for (uint32_t k = 1; k <= kills; k++) {
                struct round_log *r = &h->pending[h->npending++];
                struct verdict v = {.ok = true};
                bool fresh = rng_next(h) % 10 == 0, check_now = rng_next(h) % 3 != 0;
                r->round = k;
                r->mode = mode >= 0 ? (enum sombra_sync_mode)mode : (enum sombra_sync_mode)(k % 4);
                r->variant = (uint32_t)rng_next(h);
                r->delay_ms = 2 + rng_next(h) % (MAX_DELAY_MS - 1);
                r->after_first = rng_next(h) % 4 != 0;
                r->acks.n = 0;
                if (h->npending == 1 && (h->restart || fresh)) {
                        unlink(h->path);
                        unlink(h->wal);
                        h->history.n = 0;
                        h->restart = false;
                        h->fresh++;
                }
                if (run_child(h, r, &v) && !check_now && k < kills && h->npending < MAX_PENDING)
                        continue; /* the next check covers this round */
                if (v.ok)
                        check_db(h, &v);
                settle(h, &v, seed, passed, failed);
        }
}

static int
usage(void)
{
        fprintf(stderr, "usage: crash [--kills N] [--mode full|normal|checkpoint|off|all] "
                        "[--seed S] [--dir D]\n");
        return 2;
}

int
main(int argc, char **argv)
{
        static const struct option opts[] = {{"kills", required_argument, NULL, 'k'},
                                             {"mode", required_argument, NULL, 'm'},
                                             {"seed", required_argument, NULL, 's'},
                                             {"dir", required_argument, NULL, 'd'},
                                             {NULL, 0, NULL, 0}};
        struct harness h = {.restart = true};
        char tmp[] = "/tmp/sombra-crash-XXXXXX";
        const char *dir = NULL;
        unsigned long kills = 20;
        int mode = -1, opt; /* -1: every mode in turn */
        uint64_t seed = (uint64_t)time(NULL) ^ (uint64_t)getpid() << 32, start = now_ms();
        unsigned passed = 0, failed = 0;

        /*
         * How the program starts its children: fork and exec, so that each
         * child begins as a new process. After a bare fork, ThreadSanitizer
         * takes the jemalloc mutexes that jemalloc's fork handler locked and
         * re-initialised for double locks in the child's threads.
         */
        if (argc == 7 && strcmp(argv[1], "--child") == 0)
                child_main(argv[2], (enum sombra_sync_mode)atoi(argv[3]),
                           (uint32_t)strtoul(argv[4], NULL, 10),
                           (uint32_t)strtoul(argv[5], NULL, 10), atoi(argv[6]));
        while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
                switch (opt) {
                case 'k':
                        kills = strtoul(optarg, NULL, 10);
                        break;
                case 'm':
                        mode = -2;
                        for (int m = SOMBRA_SYNC_FULL; m <= SOMBRA_SYNC_OFF; m++)
                                if (strcmp(optarg, mode_name(m)) == 0)
                                        mode = m;
                        if (strcmp(optarg, "all") == 0)
                                mode = -1;
                        if (mode == -2)
                                return usage();
                        break;
                case 's':
                        seed = strtoull(optarg, NULL, 0);
                        break;
                case 'd':
                        dir = optarg;
                        break;
                default:
                        return usage();
                }
        }
        if (optind != argc)
                return usage();
        if (dir == NULL)
                dir = mkdtemp(tmp);
        else if (mkdir(dir, 0755) != 0 && errno != EEXIST)
                dir = NULL;
        if (dir == NULL) {
                perror("crash: directory");
                return 1;
        }
        snprintf(h.path, sizeof(h.path), "%s/crash.sombra", dir);
        snprintf(h.wal, sizeof(h.wal), "%s-wal", h.path);
        h.rng = seed;
        run_rounds(&h, (uint32_t)kills, mode, seed, &passed, &failed);
        printf("crash: seed %#lx, %lu kills (%lu on a fresh database), %lu checks, %lu commits "
               "acknowledged, %lu found after recovery, %lu lost in checkpoint/off mode "
               "(allowed), %.1f s\n",
               (unsigned long)seed, kills, (unsigned long)h.fresh, (unsigned long)h.checks,
               (unsigned long)h.acked, (unsigned long)h.recovered, (unsigned long)h.lost,
               (now_ms() - start) / 1000.0);
        printf("crash: %u passed, %u failed\n", passed, failed);
        if (failed == 0) {
                unlink(h.path);
                unlink(h.wal);
                if (dir == tmp)
                        rmdir(dir);
        }
        free(h.history.v);
        for (uint32_t p = 0; p < MAX_PENDING; p++)
                free(h.pending[p].acks.v);
        return failed == 0 ? 0 : 1;
}
