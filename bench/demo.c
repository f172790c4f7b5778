/*
 * demo.c - sombra-demo: the public API end to end, printing what it did and
 * how fast. The benchmark suite (issue 4) replaces it.
 *
 * usage: sombra-demo [--path FILE] [--nodes N] [--edges M] [--batch B]
 *                    [--seed S] [--seconds T]
 *
 * 1. build: N nodes and M edges in batches of B operations, each batch one
 *    durable transaction (production preset: FULL);
 * 2. close, reopen, verify;
 * 3. query on snapshot readers: out-neighbours and 2-hop counts;
 * 4. durable commits from 1, 16 and 64 threads, one edge per transaction, for
 *    T seconds each: commits per second and commits per fdatasync show the
 *    group commit at work.
 */
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sombra.h"

struct demo_args {
        const char *path;
        uint64_t nodes, edges, batch, seed;
        double seconds;
};

static double
now_s(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t
rng_next(uint64_t *s)
{
        /* xorshift64*: deterministic from the seed, good enough for picking ids */
        *s ^= *s >> 12;
        *s ^= *s << 25;
        *s ^= *s >> 27;
        return *s * 2685821657736338717ull;
}

static int
fail(const char *what, int rc)
{
        fprintf(stderr, "sombra-demo: %s: %s\n", what, sombra_strerror(rc));
        return 1;
}

static int
parse_args(int argc, char **argv, struct demo_args *a)
{
        static const char usage[] = "usage: sombra-demo [--path FILE] [--nodes N] [--edges M] "
                                    "[--batch B] [--seed S] [--seconds T]\n";
        static const struct option longs[] = {
            {"path", required_argument, NULL, 'f'},  {"nodes", required_argument, NULL, 'n'},
            {"edges", required_argument, NULL, 'm'}, {"batch", required_argument, NULL, 'b'},
            {"seed", required_argument, NULL, 'r'},  {"seconds", required_argument, NULL, 's'},
            {"help", no_argument, NULL, 'h'},        {NULL, 0, NULL, 0}};
        int c;

        while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
                switch (c) {
                case 'f':
                        a->path = optarg;
                        break;
                case 'n':
                        a->nodes = strtoull(optarg, NULL, 10);
                        break;
                case 'm':
                        a->edges = strtoull(optarg, NULL, 10);
                        break;
                case 'b':
                        a->batch = strtoull(optarg, NULL, 10);
                        break;
                case 'r':
                        a->seed = strtoull(optarg, NULL, 10);
                        break;
                case 's':
                        a->seconds = strtod(optarg, NULL);
                        break;
                case 'h':
                        fputs(usage, stdout);
                        exit(0);
                default:
                        fputs(usage, stderr);
                        return -1;
                }
        }
        if (optind != argc || a->nodes == 0 || a->batch == 0 || a->seed == 0 || a->seconds <= 0) {
                fprintf(stderr, "sombra-demo: --nodes, --batch, --seed, --seconds must be > 0\n");
                return -1;
        }
        return 0;
}

static void
report(const char *what, uint64_t n, double secs)
{
        printf("  %-38s %10" PRIu64 " in %7.3f s  %12.0f /s\n", what, n, secs,
               secs > 0 ? (double)n / secs : 0.0);
}

static void
report_once(const char *what, double secs)
{
        printf("  %-38s %10s in %7.3f s\n", what, "", secs);
}

/* Nodes in batches; ids[] gets every node's id. */
static int
build_nodes(sombra_conn *c, sombra_batch *b, const struct demo_args *a, uint64_t *ids,
            uint64_t *rng)
{
        const char *labels[] = {"Person"};
        int rc = SOMBRA_OK;

        for (uint64_t i = 0; i < a->nodes && rc == SOMBRA_OK; i += a->batch) {
                uint64_t n = a->nodes - i < a->batch ? a->nodes - i : a->batch;
                sombra_batch_reset(b);
                for (uint64_t j = 0; j < n && rc == SOMBRA_OK; j++) {
                        char name[32];
                        struct sombra_prop props[2] = {
                            {"name", {.type = SOMBRA_STRING}},
                            {"age",
                             {.type = SOMBRA_INT, .u.i = (int64_t)(18 + rng_next(rng) % 60)}},
                        };
                        snprintf(name, sizeof(name), "user-%" PRIu64, i + j);
                        props[0].value.u.s.ptr = name;
                        props[0].value.u.s.len = strlen(name);
                        rc = sombra_batch_node_create(b, labels, 1, props, 2, NULL);
                }
                if (rc == SOMBRA_OK)
                        rc = sombra_batch_submit(c, b);
                for (uint64_t j = 0; j < n && rc == SOMBRA_OK; j++)
                        rc = sombra_batch_id(b, SOMBRA_BATCH_REF(j), &ids[i + j]);
        }
        return rc;
}

static int
build_edges(sombra_conn *c, sombra_batch *b, const struct demo_args *a, const uint64_t *ids,
            uint64_t *rng)
{
        int rc = SOMBRA_OK;

        for (uint64_t i = 0; i < a->edges && rc == SOMBRA_OK; i += a->batch) {
                uint64_t n = a->edges - i < a->batch ? a->edges - i : a->batch;
                sombra_batch_reset(b);
                for (uint64_t j = 0; j < n && rc == SOMBRA_OK; j++) {
                        struct sombra_prop since = {
                            "since", {.type = SOMBRA_INT, .u.i = (int64_t)(2000 + j % 25)}};
                        uint64_t src = ids[rng_next(rng) % a->nodes];
                        uint64_t dst = ids[rng_next(rng) % a->nodes];
                        rc = sombra_batch_edge_create(b, src, dst, "KNOWS", &since, 1, NULL);
                }
                if (rc == SOMBRA_OK)
                        rc = sombra_batch_submit(c, b);
        }
        return rc;
}

static int
query(sombra_conn *c, const struct demo_args *a, const uint64_t *ids, uint64_t *rng)
{
        const struct sombra_neighbor *nb;
        uint64_t seen = 0, total = 0, queries = a->nodes < 100000 ? a->nodes : 100000;
        size_t n;
        double t = now_s();
        int rc = SOMBRA_OK;

        for (uint64_t i = 0; i < queries && rc == SOMBRA_OK; i++) {
                rc = sombra_neighbors(c, ids[rng_next(rng) % a->nodes], SOMBRA_OUT, NULL, 0, &nb,
                                      &n);
                seen += n;
        }
        if (rc != SOMBRA_OK)
                return fail("neighbours", rc);
        report("out-neighbour queries", queries, now_s() - t);
        printf("  %-38s %10" PRIu64 "\n", "  neighbours returned", seen);
        queries /= 10;
        t = now_s();
        for (uint64_t i = 0; i < queries && rc == SOMBRA_OK; i++) {
                uint64_t count;
                rc = sombra_two_hop_count(c, ids[rng_next(rng) % a->nodes], SOMBRA_OUT, NULL, 0,
                                          &count);
                total += count;
        }
        if (rc != SOMBRA_OK)
                return fail("two-hop", rc);
        report("2-hop distinct-count queries", queries, now_s() - t);
        printf("  %-38s %10.1f\n", "  mean distinct 2-hop nodes",
               queries ? (double)total / (double)queries : 0.0);
        return 0;
}

struct committer_thread {
        sombra_db *db;
        const uint64_t *ids;
        uint64_t nodes, seed, commits;
        double until;
        int rc;
};

static void *
commit_loop(void *arg)
{
        struct committer_thread *t = arg;
        sombra_conn *c = NULL;

        t->rc = sombra_conn_acquire(t->db, &c);
        while (t->rc == SOMBRA_OK && now_s() < t->until) {
                uint64_t src = t->ids[rng_next(&t->seed) % t->nodes];
                uint64_t dst = t->ids[rng_next(&t->seed) % t->nodes];
                t->rc = sombra_edge_create(c, src, dst, "KNOWS", NULL, 0, NULL);
                t->commits += t->rc == SOMBRA_OK;
        }
        if (c != NULL)
                sombra_conn_release(c);
        return NULL;
}

/* One-edge FULL transactions from `threads` threads for a->seconds. */
static int
durable_commits(sombra_db *db, const struct demo_args *a, const uint64_t *ids, int threads)
{
        struct committer_thread t[64];
        pthread_t tid[64];
        struct sombra_stats before, after;
        uint64_t commits = 0;
        double start = now_s();
        char what[64];

        sombra_stats(db, &before);
        for (int i = 0; i < threads; i++) {
                t[i] = (struct committer_thread){
                    db, ids, a->nodes, a->seed + (uint64_t)i + 1, 0, start + a->seconds, SOMBRA_OK};
                pthread_create(&tid[i], NULL, commit_loop, &t[i]);
        }
        for (int i = 0; i < threads; i++) {
                pthread_join(tid[i], NULL);
                if (t[i].rc != SOMBRA_OK)
                        return fail("durable commit", t[i].rc);
                commits += t[i].commits;
        }
        sombra_stats(db, &after);
        snprintf(what, sizeof(what), "%d thread%s, one edge per commit", threads,
                 threads > 1 ? "s" : "");
        report(what, commits, now_s() - start);
        printf("  %-38s %10.1f (largest group %" PRIu64 ")\n", "  commits per fdatasync",
               after.group_syncs > before.group_syncs
                   ? (double)(after.group_commits - before.group_commits) /
                         (double)(after.group_syncs - before.group_syncs)
                   : 0.0,
               after.max_group);
        return 0;
}

static int
run(const struct demo_args *a, uint64_t *ids)
{
        char problem[256];
        struct sombra_stats st;
        sombra_batch *b;
        sombra_conn *c;
        sombra_db *db;
        uint64_t rng = a->seed;
        double t;
        int rc;

        rc = sombra_open(a->path, NULL, &db);
        if (rc != SOMBRA_OK)
                return fail("open", rc);
        if (sombra_conn_acquire(db, &c) != SOMBRA_OK || sombra_batch_new(&b) != SOMBRA_OK)
                return fail("setup", SOMBRA_ENOMEM);
        printf("build (batches of %" PRIu64 ", each one durable transaction)\n", a->batch);
        t = now_s();
        rc = build_nodes(c, b, a, ids, &rng);
        if (rc != SOMBRA_OK)
                return fail("create nodes", rc);
        report("nodes created", a->nodes, now_s() - t);
        t = now_s();
        rc = build_edges(c, b, a, ids, &rng);
        if (rc != SOMBRA_OK)
                return fail("create edges", rc);
        report("edges created", a->edges, now_s() - t);
        sombra_batch_free(b);
        sombra_conn_release(c);
        t = now_s();
        rc = sombra_close(db);
        if (rc != SOMBRA_OK)
                return fail("close", rc);
        report_once("close (drain, checkpoint)", now_s() - t);

        printf("reopen\n");
        t = now_s();
        rc = sombra_open(a->path, NULL, &db);
        if (rc != SOMBRA_OK)
                return fail("reopen", rc);
        report_once("open", now_s() - t);
        t = now_s();
        rc = sombra_verify(db, problem, sizeof(problem));
        if (rc != SOMBRA_OK) {
                fprintf(stderr, "sombra-demo: verify: %s\n", problem);
                return 1;
        }
        report_once("verify (every page, index, edge)", now_s() - t);
        sombra_stats(db, &st);
        printf("  %-38s %10" PRIu64 " nodes, %" PRIu64 " edges, %.1f MiB file\n", "found", st.nodes,
               st.edges, (double)st.file_bytes / (1 << 20));
        if (st.nodes != a->nodes || st.edges != a->edges) {
                fprintf(stderr, "sombra-demo: expected %" PRIu64 " nodes and %" PRIu64 " edges\n",
                        a->nodes, a->edges);
                return 1;
        }

        printf("query (snapshot readers on the calling thread)\n");
        if (sombra_conn_acquire(db, &c) != SOMBRA_OK || query(c, a, ids, &rng) != 0)
                return 1;
        sombra_conn_release(c);

        printf("durable commits (FULL: acknowledged after the fdatasync that covers them)\n");
        for (int threads = 1; threads <= 64; threads *= threads == 1 ? 16 : 4)
                if (durable_commits(db, a, ids, threads) != 0)
                        return 1;
        rc = sombra_close(db);
        if (rc != SOMBRA_OK)
                return fail("close", rc);
        printf("ok\n");
        return 0;
}

int
main(int argc, char **argv)
{
        struct demo_args a = {"demo.sombra", 100000, 500000, 10000, 42, 2.0};
        char wal[4096];
        uint64_t *ids;
        int rc;

        if (parse_args(argc, argv, &a) != 0)
                return 2;
        snprintf(wal, sizeof(wal), "%s-wal", a.path);
        unlink(a.path);
        unlink(wal);
        ids = calloc(a.nodes, sizeof(*ids));
        if (ids == NULL)
                return fail("memory", SOMBRA_ENOMEM);
        printf("sombra-demo: %s, %" PRIu64 " nodes, %" PRIu64 " edges, production preset "
               "(sync FULL)\n",
               a.path, a.nodes, a.edges);
        rc = run(&a, ids);
        free(ids);
        return rc;
}
