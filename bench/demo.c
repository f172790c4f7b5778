/*
 * demo.c - sombra-demo: builds a graph, closes it, reopens it and queries it,
 * printing what it did and how fast. The benchmark suite (issue 4) replaces it.
 *
 * usage: sombra-demo [--path FILE] [--nodes N] [--edges M] [--batch B] [--seed S]
 *
 * Writes go through the storage core (core/graph.h) in transactions of
 * `batch` operations under the production preset (FULL: each commit is
 * synced before it returns).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "graph.h"
#include "store.h"

struct demo_args {
        const char *path;
        uint64_t nodes, edges, batch, seed;
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
        for (int i = 1; i < argc; i++) {
                const char *v = i + 1 < argc ? argv[i + 1] : NULL;
                if (strcmp(argv[i], "--help") == 0) {
                        printf("usage: sombra-demo [--path FILE] [--nodes N] [--edges M] "
                               "[--batch B] [--seed S]\n");
                        exit(0);
                }
                if (v == NULL) {
                        fprintf(stderr, "sombra-demo: %s needs a value\n", argv[i]);
                        return -1;
                }
                if (strcmp(argv[i], "--path") == 0)
                        a->path = v;
                else if (strcmp(argv[i], "--nodes") == 0)
                        a->nodes = strtoull(v, NULL, 10);
                else if (strcmp(argv[i], "--edges") == 0)
                        a->edges = strtoull(v, NULL, 10);
                else if (strcmp(argv[i], "--batch") == 0)
                        a->batch = strtoull(v, NULL, 10);
                else if (strcmp(argv[i], "--seed") == 0)
                        a->seed = strtoull(v, NULL, 10);
                else {
                        fprintf(stderr, "sombra-demo: unknown option %s\n", argv[i]);
                        return -1;
                }
                i++;
        }
        if (a->nodes == 0 || a->batch == 0 || a->seed == 0) {
                fprintf(stderr, "sombra-demo: --nodes, --batch and --seed must be positive\n");
                return -1;
        }
        return 0;
}

/* Runs `count` operations in transactions of `batch`; op(i) does one. */
static int
load(struct graph *g, const struct demo_args *a, uint64_t count,
     int (*op)(struct graph *g, uint64_t i, uint64_t *rng), uint64_t *rng)
{
        int rc = SOMBRA_OK;

        for (uint64_t i = 0; i < count && rc == SOMBRA_OK; i += a->batch) {
                rc = graph_begin(g);
                for (uint64_t j = i; j < i + a->batch && j < count && rc == SOMBRA_OK; j++)
                        rc = op(g, j, rng);
                if (rc == SOMBRA_OK)
                        rc = graph_commit(g);
                else
                        graph_rollback(g);
        }
        return rc;
}

static uint64_t demo_nodes;

static int
add_node(struct graph *g, uint64_t i, uint64_t *rng)
{
        char name[32];
        const char *labels[] = {"Person"};
        struct sombra_prop props[2];

        snprintf(name, sizeof(name), "user-%" PRIu64, i);
        props[0].key = "name";
        props[0].value.type = SOMBRA_STRING;
        props[0].value.u.s.ptr = name;
        props[0].value.u.s.len = strlen(name);
        props[1].key = "age";
        props[1].value.type = SOMBRA_INT;
        props[1].value.u.i = (int64_t)(18 + rng_next(rng) % 60);
        return graph_node_create(g, labels, 1, props, 2, NULL);
}

static int
add_edge(struct graph *g, uint64_t i, uint64_t *rng)
{
        struct sombra_prop since = {"since", {.type = SOMBRA_INT, .u.i = (int64_t)(2000 + i % 25)}};
        uint64_t src = 1 + rng_next(rng) % demo_nodes, dst = 1 + rng_next(rng) % demo_nodes;

        return graph_edge_create(g, src, dst, "KNOWS", &since, 1, NULL);
}

static void
report(const char *what, uint64_t n, double secs)
{
        printf("  %-34s %10" PRIu64 " in %7.3f s  %12.0f /s\n", what, n, secs,
               secs > 0 ? (double)n / secs : 0.0);
}

static void
report_once(const char *what, double secs)
{
        printf("  %-34s %10s in %7.3f s\n", what, "", secs);
}

static int
query(struct graph_reader *g, const struct demo_args *a, uint64_t *rng)
{
        struct graph_adjvec adj = {0};
        uint64_t seen = 0, total = 0, queries = a->nodes < 100000 ? a->nodes : 100000;
        double t;
        int rc = SOMBRA_OK;

        t = now_s();
        for (uint64_t i = 0; i < queries && rc == SOMBRA_OK; i++) {
                rc = graph_neighbors(g, 1 + rng_next(rng) % a->nodes, SOMBRA_OUT, NULL, 0, &adj);
                seen += adj.n;
        }
        graph_adjvec_free(&adj);
        if (rc != SOMBRA_OK)
                return fail("neighbours", rc);
        report("out-neighbour queries", queries, now_s() - t);
        printf("  %-34s %10" PRIu64 "\n", "  neighbours returned", seen);

        queries /= 10;
        t = now_s();
        for (uint64_t i = 0; i < queries && rc == SOMBRA_OK; i++) {
                uint64_t c;
                rc = graph_two_hop_count(g, 1 + rng_next(rng) % a->nodes, SOMBRA_OUT, NULL, 0, &c);
                total += c;
        }
        if (rc != SOMBRA_OK)
                return fail("two-hop", rc);
        report("2-hop distinct-count queries", queries, now_s() - t);
        printf("  %-34s %10.1f\n", "  mean distinct 2-hop nodes",
               queries ? (double)total / queries : 0.0);
        return 0;
}

int
main(int argc, char **argv)
{
        struct demo_args a = {"demo.sombra", 100000, 500000, 10000, 42};
        struct sombra_config cfg;
        struct graph_verify_report vr;
        struct graph *g;
        struct graph_reader *reader;
        uint64_t rng, nodes, edges;
        char wal[4096];
        double t;
        int rc;

        if (parse_args(argc, argv, &a) != 0)
                return 2;
        demo_nodes = a.nodes;
        rng = a.seed;
        snprintf(wal, sizeof(wal), "%s-wal", a.path);
        unlink(a.path);
        unlink(wal);
        sombra_config_production(&cfg);

        printf("sombra-demo: %s, %" PRIu64 " nodes, %" PRIu64 " edges, %" PRIu64
               " operations per transaction, sync mode FULL\n",
               a.path, a.nodes, a.edges, a.batch);
        rc = graph_open(a.path, &cfg, NULL, &g);
        if (rc != SOMBRA_OK)
                return fail("open", rc);
        printf("build\n");
        t = now_s();
        rc = load(g, &a, a.nodes, add_node, &rng);
        if (rc != SOMBRA_OK)
                return fail("create nodes", rc);
        report("nodes created (committed, synced)", a.nodes, now_s() - t);
        t = now_s();
        rc = load(g, &a, a.edges, add_edge, &rng);
        if (rc != SOMBRA_OK)
                return fail("create edges", rc);
        report("edges created (committed, synced)", a.edges, now_s() - t);
        t = now_s();
        rc = graph_close(g);
        if (rc != SOMBRA_OK)
                return fail("close", rc);
        report_once("close (checkpoint, fdatasync x2)", now_s() - t);

        printf("reopen\n");
        t = now_s();
        rc = graph_open(a.path, &cfg, NULL, &g);
        if (rc != SOMBRA_OK)
                return fail("reopen", rc);
        report_once("open (no WAL to replay)", now_s() - t);
        graph_counts(graph_writer_reader(g), &nodes, &edges);
        printf("  %-34s %10" PRIu64 " nodes, %" PRIu64 " edges\n", "found", nodes, edges);
        t = now_s();
        rc = graph_verify(g, &vr);
        if (rc != SOMBRA_OK) {
                fprintf(stderr, "sombra-demo: verify: %s\n", vr.problem);
                return 1;
        }
        report("verify (pages checked)", vr.pages, now_s() - t);
        printf("  %-34s %10" PRIu64 " in trees, %" PRIu64 " free, %.1f MiB file\n", "  pages",
               vr.tree_pages, vr.free_pages,
               (double)vr.pages * store_page_size(graph_store(g)) / (1 << 20));

        printf("query (snapshot reader)\n");
        rc = graph_reader_open(g, &reader);
        if (rc != SOMBRA_OK)
                return fail("reader", rc);
        rc = query(reader, &a, &rng);
        graph_reader_close(reader);
        if (rc != 0)
                return 1;
        rc = graph_close(g);
        if (rc != SOMBRA_OK)
                return fail("close", rc);
        if (nodes != a.nodes || edges != a.edges) {
                fprintf(stderr, "sombra-demo: expected %" PRIu64 " nodes and %" PRIu64 " edges\n",
                        a.nodes, a.edges);
                return 1;
        }
        printf("ok\n");
        return 0;
}
