/*
 * bench.c - sombra-bench: the same workloads against Sombra and SQLite, on the
 * same generated data, in the same run, under named durability profiles.
 *
 * usage: sombra-bench [--quick] [--json] [--workload NAME[,NAME...]] [--threads N]
 *                     [--profile NAME] [--engine NAME] [--dataset NAME]
 *                     [--nodes N] [--edges M] [--seconds S] [--no-metrics]
 *                     [--recovery-txns N]
 *
 * Per engine: load the social network (insert_nodes_tx1000,
 * insert_edges_tx1000, insert_nodes_tx1) under the production profile, run
 * the single-threaded reads, then reopen the same database under each
 * profile for `mixed` at 1, 4, 16 and 64 threads, and under production for
 * `durable_commit_scaling` (and its asynchronous variant), `long_read` and
 * `long_write` (4 writer threads while another connection holds a read, or a
 * write, transaction for the whole window). `recovery` kills a writing child
 * process and times the reopen (the median of five kills). The product
 * catalogue and the knowledge graph are then loaded into databases of their
 * own and read the same way.
 * Every figure names its dataset and profile, and each profile says what a
 * crash loses. --no-metrics opens Sombra's databases for the concurrent
 * workloads with config.metrics off, to measure what the metrics cost.
 * --recovery-txns sets how many transactions `recovery` commits before the
 * kill (400; 20 with --quick), which sets how much WAL the reopen replays.
 *
 * Output: a progress line per workload on stderr, a table on stdout; with
 * --json, one JSON object per line on stdout and nothing else.
 */
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "adapter.h"
#include "bench.h"
#include "generator.h"

static const struct bench_profile profiles[] = {
    {"throughput", SOMBRA_SYNC_OFF, false, "everything since the last checkpoint", false},
    {"balanced", SOMBRA_SYNC_NORMAL, true, "at most the last 100 commits or 100 ms", false},
    {"production", SOMBRA_SYNC_FULL, true, "nothing acknowledged", false},
    {"durability", SOMBRA_SYNC_FULL, true, "nothing acknowledged (checksums verified)", false},
};
#define NPROFILES  (sizeof(profiles) / sizeof(profiles[0]))
#define PRODUCTION (&profiles[2])

static const struct adapter *const adapters[] = {&sombra_adapter, &sqlite_adapter};
#define NADAPTERS (sizeof(adapters) / sizeof(adapters[0]))

static const int thread_counts[] = {1, 4, 16, 64};
#define NTHREADS (sizeof(thread_counts) / sizeof(thread_counts[0]))

static const struct bench_schema *const schemas[] = {&bench_social, &bench_catalogue,
                                                     &bench_knowledge};
#define NSCHEMAS (sizeof(schemas) / sizeof(schemas[0]))

/* The asynchronous variant of durable_commit_scaling: threads, commits in flight each. */
#define ASYNC_THREADS 4
#define ASYNC_WINDOW  256

struct options {
        bool quick, json, no_metrics;
        const char *workload, *profile, *engine, *dataset;
        int threads; /* 0: every count */
        uint64_t nodes, edges;
        uint64_t recovery_txns; /* 0: the default */
        double seconds;
};

/* Latency percentiles in microseconds; all zero when nothing was timed. */
struct percentiles {
        double p50, p99;
};

/* One row of the results. */
struct result {
        const char *engine, *dataset, *profile, *workload;
        int threads;
        uint64_t ops;
        double seconds;
        struct percentiles all, read, write; /* read and write: only in mixed */
        double commits_per_fsync;            /* < 0: not reported */
        uint64_t file_bytes, free_bytes;     /* after a load (0: not measured) */
        uint64_t compact_bytes;              /* a compacted copy of it (0: not measured) */
};

#define MAX_RESULTS 256
static struct result results[MAX_RESULTS];
static size_t nresults;

/* ---- small tools ---- */

static double
now_s(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
cmp_u64(const void *a, const void *b)
{
        uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
        return (x > y) - (x < y);
}

/* Latencies in nanoseconds; past the cap, every other sample is kept. */
struct lat {
        uint64_t *v;
        size_t n, cap, seen;
};

static void
lat_add(struct lat *l, uint64_t ns)
{
        l->seen++;
        if (l->n == l->cap) {
                size_t cap = l->cap ? l->cap * 2 : 4096;
                uint64_t *v = cap <= (1u << 20) ? realloc(l->v, cap * sizeof(*v)) : NULL;
                if (v == NULL) {
                        if (l->seen % 2 == 0)
                                l->v[l->seen / 2 % l->n] = ns;
                        return;
                }
                l->v = v;
                l->cap = cap;
        }
        l->v[l->n++] = ns;
}

/*
 * The percentiles of the samples in lats[0], lats[stride], lats[2 * stride]
 * ... (n of them): each thread's read and write samples sit side by side.
 */
static struct percentiles
lat_percentiles(const struct lat *lats, size_t n, size_t stride)
{
        struct percentiles p = {0, 0};
        size_t total = 0, at = 0;
        uint64_t *v;

        for (size_t i = 0; i < n; i++)
                total += lats[i * stride].n;
        v = total ? malloc(total * sizeof(*v)) : NULL;
        if (v == NULL)
                return p;
        for (size_t i = 0; i < n; i++) {
                const struct lat *l = &lats[i * stride];
                if (l->n > 0)
                        memcpy(v + at, l->v, l->n * sizeof(*v));
                at += l->n;
        }
        qsort(v, total, sizeof(*v), cmp_u64);
        p.p50 = (double)v[total / 2] / 1000.0;
        p.p99 = (double)v[total * 99 / 100] / 1000.0;
        free(v);
        return p;
}

/* ---- running a workload on threads ---- */

/* Each thread keeps its read and its write latencies apart: l[LAT_READ], l[LAT_WRITE]. */
enum { LAT_READ, LAT_WRITE, NLATS };

struct run {
        const struct adapter *a;
        void *db;
        struct dataset *d;
        int (*op)(struct run *r, void *conn, uint64_t *rng, struct lat *l);
        uint64_t count; /* ops per thread, or 0 for `seconds` */
        double seconds;
        int status;
};

struct worker {
        struct run *r;
        int index;
        uint64_t ops;
        struct lat lat[NLATS];
        int status;
};

static void *
worker_main(void *arg)
{
        struct worker *w = arg;
        struct run *r = w->r;
        uint64_t rng = r->d->seed * 7919 + (uint64_t)w->index;
        double until = now_s() + r->seconds;
        void *conn;

        w->status = r->a->conn_open(r->db, &conn);
        while (w->status == 0 && (r->count ? w->ops < r->count : now_s() < until)) {
                w->status = r->op(r, conn, &rng, w->lat);
                w->ops += w->status == 0;
                if (w->status == SOMBRA_EAGAIN)
                        w->status = 0; /* an operation begun, not yet finished */
        }
        if (w->status == SOMBRA_ENOTFOUND)
                w->status = 0; /* a path query that finds no path is an answer */
        r->a->conn_close(conn);
        return NULL;
}

static int
run_threads(struct run *r, int threads, struct result *res)
{
        struct worker *w = calloc((size_t)threads, sizeof(*w));
        pthread_t *tid = calloc((size_t)threads, sizeof(*tid));
        struct lat *lats = calloc((size_t)threads * NLATS, sizeof(*lats));
        double start = now_s();
        int rc = 0;

        if (w == NULL || tid == NULL || lats == NULL) {
                rc = SOMBRA_ENOMEM;
                goto label_out;
        }
        for (int i = 0; i < threads; i++) {
                w[i] = (struct worker){.r = r, .index = i};
                pthread_create(&tid[i], NULL, worker_main, &w[i]);
        }
        res->ops = 0;
        for (int i = 0; i < threads; i++) {
                pthread_join(tid[i], NULL);
                res->ops += w[i].ops;
                memcpy(&lats[i * NLATS], w[i].lat, sizeof(w[i].lat));
                if (w[i].status != 0 && rc == 0)
                        rc = w[i].status;
        }
        res->seconds = now_s() - start;
        res->threads = threads;
        res->all = lat_percentiles(lats, (size_t)threads * NLATS, 1);
        res->read = lat_percentiles(&lats[LAT_READ], (size_t)threads, NLATS);
        res->write = lat_percentiles(&lats[LAT_WRITE], (size_t)threads, NLATS);
        for (int i = 0; i < threads * NLATS; i++)
                free(lats[i].v);
label_out:
        free(w);
        free(tid);
        free(lats);
        return rc;
}

static uint64_t
timed_start(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void
timed_end(struct lat *l, uint64_t t0)
{
        lat_add(l, timed_start() - t0);
}

/* ---- the operations ---- */

static uint64_t
pick(struct run *r, uint64_t *rng)
{
        return r->d->ids[bench_random(rng) % r->d->nnodes];
}

static int
op_get_node(struct run *r, void *conn, uint64_t *rng, struct lat *l)
{
        size_t n;
        uint64_t t0 = timed_start();
        int rc = r->a->get_node(conn, pick(r, rng), &n);
        timed_end(&l[LAT_READ], t0);
        return rc;
}

static int
op_neighbors(struct run *r, void *conn, uint64_t *rng, struct lat *l)
{
        size_t n;
        uint64_t t0 = timed_start();
        int rc = r->a->neighbors_out(conn, pick(r, rng), &n);
        timed_end(&l[LAT_READ], t0);
        return rc;
}

static int
op_two_hop(struct run *r, void *conn, uint64_t *rng, struct lat *l)
{
        uint64_t n, t0 = timed_start();
        int rc = r->a->two_hop(conn, pick(r, rng), &n);
        timed_end(&l[LAT_READ], t0);
        return rc;
}

static int
op_bfs3(struct run *r, void *conn, uint64_t *rng, struct lat *l)
{
        uint64_t n, t0 = timed_start();
        int rc = r->a->bfs3(conn, pick(r, rng), &n);
        timed_end(&l[LAT_READ], t0);
        return rc;
}

static int
op_shortest_path(struct run *r, void *conn, uint64_t *rng, struct lat *l)
{
        size_t hops;
        uint64_t from = pick(r, rng), to = pick(r, rng), t0 = timed_start();
        int rc = r->a->shortest_path(conn, from, to, &hops);
        timed_end(&l[LAT_READ], t0);
        return rc == SOMBRA_ENOTFOUND ? 0 : rc;
}

static int
op_label_scan(struct run *r, void *conn, uint64_t *rng, struct lat *l)
{
        size_t n;
        uint64_t t0 = timed_start();
        int rc = r->a->label_scan(conn, &n);
        (void)rng;
        timed_end(&l[LAT_READ], t0);
        return rc;
}

static int
op_property_lookup(struct run *r, void *conn, uint64_t *rng, struct lat *l)
{
        size_t n;
        uint64_t t0 = timed_start();
        const struct bench_schema *sc = r->d->schema;
        int rc = r->a->property_lookup(
            conn, sc->lookup_lo + (int64_t)(bench_random(rng) % (uint64_t)sc->lookup_span), &n);
        timed_end(&l[LAT_READ], t0);
        return rc;
}

static int
op_one_edge(struct run *r, void *conn, uint64_t *rng, struct lat *l)
{
        struct bench_edge e;
        uint64_t t0;
        int rc;

        bench_friendship(r->d, rng, &e);
        t0 = timed_start();
        rc = r->a->insert_edges(conn, &e, 1);
        timed_end(&l[LAT_WRITE], t0);
        return rc;
}

/*
 * One asynchronous one-edge transaction, ASYNC_WINDOW in flight per thread;
 * an operation is a transaction acknowledged, timed from submission. An
 * engine without asynchronous commits runs the synchronous one instead.
 */
static int
op_one_edge_async(struct run *r, void *conn, uint64_t *rng, struct lat *l)
{
        struct bench_edge e;
        uint64_t acked_ns;
        int rc;

        if (r->a->insert_edge_async == NULL)
                return op_one_edge(r, conn, rng, l);
        bench_friendship(r->d, rng, &e);
        rc = r->a->insert_edge_async(conn, &e, ASYNC_WINDOW, &acked_ns);
        if (rc != 0)
                return rc;
        if (acked_ns == 0)
                return SOMBRA_EAGAIN; /* nothing acknowledged yet: not an operation */
        lat_add(&l[LAT_WRITE], acked_ns);
        return 0;
}

/* 80% reads (half get_node, half neighbors_out), 20% one-edge transactions. */
static int
op_mixed(struct run *r, void *conn, uint64_t *rng, struct lat *l)
{
        uint64_t dice = bench_random(rng) % 10;
        if (dice < 2)
                return op_one_edge(r, conn, rng, l);
        return dice < 6 ? op_get_node(r, conn, rng, l) : op_neighbors(r, conn, rng, l);
}

static int
op_insert_node_tx1(struct run *r, void *conn, uint64_t *rng, struct lat *l)
{
        struct bench_node n;
        uint64_t id, t0;
        int rc;

        bench_user_make(&n, r->d->nnodes + bench_random(rng) % 1000000, rng);
        t0 = timed_start();
        rc = r->a->insert_nodes(conn, &n, 1, &id);
        timed_end(&l[LAT_WRITE], t0);
        return rc;
}

/* ---- reporting ---- */

static bool
selected(const struct options *o, const char *workload)
{
        size_t len = strlen(workload);

        if (o->workload == NULL)
                return true;
        /* --workload takes a comma-separated list. */
        for (const char *w = o->workload;; w++) {
                if (strncmp(w, workload, len) == 0 && (w[len] == ',' || w[len] == '\0'))
                        return true;
                w = strchr(w, ',');
                if (w == NULL)
                        return false;
        }
}

static double
ops_per_sec(const struct result *r)
{
        return r->seconds > 0 ? (double)r->ops / r->seconds : 0.0;
}

static void
json_percentiles(const char *prefix, struct percentiles p)
{
        printf(",\"%sp50_us\":%.2f,\"%sp99_us\":%.2f", prefix, p.p50, prefix, p.p99);
}

static void
record(const struct options *o, const struct result *res)
{
        if (nresults < MAX_RESULTS)
                results[nresults++] = *res;
        if (o->json) {
                printf("{\"engine\":\"%s\",\"dataset\":\"%s\",\"profile\":\"%s\","
                       "\"workload\":\"%s\",\"threads\":%d,\"ops\":%" PRIu64
                       ",\"seconds\":%.6f,\"ops_per_sec\":%.1f",
                       res->engine, res->dataset, res->profile, res->workload, res->threads,
                       res->ops, res->seconds, ops_per_sec(res));
                json_percentiles("", res->all);
                if (res->read.p50 > 0 && res->write.p50 > 0) {
                        json_percentiles("read_", res->read);
                        json_percentiles("write_", res->write);
                }
                if (res->commits_per_fsync >= 0)
                        printf(",\"commits_per_fsync\":%.2f", res->commits_per_fsync);
                if (res->file_bytes > 0)
                        printf(",\"file_bytes\":%" PRIu64 ",\"free_bytes\":%" PRIu64,
                               res->file_bytes, res->free_bytes);
                if (res->compact_bytes > 0)
                        printf(",\"compact_bytes\":%" PRIu64, res->compact_bytes);
                printf("}\n");
                fflush(stdout);
        }
        fprintf(stderr, "  %-7s %-10s %-10s %-24s %3d threads %12.0f ops/s", res->engine,
                res->dataset, res->profile, res->workload, res->threads, ops_per_sec(res));
        if (res->file_bytes > 0)
                fprintf(stderr, ", file %" PRIu64 " bytes (%" PRIu64 " free)", res->file_bytes,
                        res->free_bytes);
        if (res->compact_bytes > 0)
                fprintf(stderr, ", compacted %" PRIu64 " bytes", res->compact_bytes);
        fprintf(stderr, "\n");
}

/* SQLite's row for the same dataset, workload, profile and threads, or NULL. */
static const struct result *
counterpart(const struct result *s)
{
        for (size_t k = 0; k < nresults; k++) {
                const struct result *q = &results[k];
                if (strcmp(q->engine, "sqlite") == 0 && strcmp(q->dataset, s->dataset) == 0 &&
                    strcmp(q->workload, s->workload) == 0 && strcmp(q->profile, s->profile) == 0 &&
                    q->threads == s->threads)
                        return q;
        }
        return NULL;
}

static void
print_table(void)
{
        printf("%-10s %-24s %7s %-10s %14s %14s %8s %9s %9s %8s\n", "dataset", "workload",
               "threads", "profile", "sombra ops/s", "sqlite ops/s", "ratio", "p50 us", "p99 us",
               "c/fsync");
        for (size_t i = 0; i < nresults; i++) {
                const struct result *s = &results[i], *q;
                if (strcmp(s->engine, "sombra") != 0)
                        continue;
                q = counterpart(s);
                printf("%-10s %-24s %7d %-10s %14.0f %14.0f %8.1f %9.1f %9.1f", s->dataset,
                       s->workload, s->threads, s->profile, ops_per_sec(s),
                       q ? ops_per_sec(q) : 0.0,
                       q && ops_per_sec(q) > 0 ? ops_per_sec(s) / ops_per_sec(q) : 0.0, s->all.p50,
                       s->all.p99);
                if (s->commits_per_fsync >= 0)
                        printf(" %8.1f", s->commits_per_fsync);
                printf("\n");
                if (s->read.p50 > 0 && s->write.p50 > 0 && q != NULL)
                        printf("%47s p50/p99 us: reads %.1f/%.1f, writes %.1f/%.1f; "
                               "sqlite reads %.1f/%.1f, writes %.1f/%.1f\n",
                               "", s->read.p50, s->read.p99, s->write.p50, s->write.p99,
                               q->read.p50, q->read.p99, q->write.p50, q->write.p99);
                if (s->file_bytes > 0 && q != NULL && q->file_bytes > 0)
                        printf("%47s file after the load: %.2f MiB (%.2f free), "
                               "sqlite %.2f MiB (%.2f free), ratio %.2f\n",
                               "", s->file_bytes / 1048576.0, s->free_bytes / 1048576.0,
                               q->file_bytes / 1048576.0, q->free_bytes / 1048576.0,
                               (double)s->file_bytes / (double)q->file_bytes);
                if (s->compact_bytes > 0 && q != NULL && q->file_bytes > 0 && q->compact_bytes > 0)
                        printf("%47s compacted: %.2f MiB, ratio to sqlite's file %.2f; "
                               "sqlite vacuumed %.2f MiB\n",
                               "", s->compact_bytes / 1048576.0,
                               (double)s->compact_bytes / (double)q->file_bytes,
                               q->compact_bytes / 1048576.0);
        }
        printf("\nprofiles (what a crash loses):\n");
        for (size_t p = 0; p < NPROFILES; p++)
                printf("  %-10s %s\n", profiles[p].name, profiles[p].crash_loses);
}

/* ---- the driver ---- */

struct session {
        const struct options *o;
        const struct adapter *a;
        const struct bench_profile *p;
        struct run r;
};

static struct result
result_for(const struct session *s, const char *workload, int threads)
{
        return (struct result){.engine = s->a->name,
                               .dataset = s->r.d->schema->name,
                               .profile = s->p->name,
                               .workload = workload,
                               .threads = threads,
                               .commits_per_fsync = -1};
}

/* Runs op on `threads` threads (count ops each, or o->seconds) and records it. */
static int
measure(struct session *s, const char *name, int threads, uint64_t count,
        int (*op)(struct run *r, void *conn, uint64_t *rng, struct lat *l))
{
        struct result res = result_for(s, name, threads);
        uint64_t c0 = 0, f0 = 0, c1 = 0, f1 = 0;
        int rc;

        if (!selected(s->o, name) || (s->o->threads && s->o->threads != threads))
                return 0;
        s->r.op = op;
        s->r.count = count;
        s->r.seconds = s->o->seconds;
        if (s->a->sync_counts != NULL)
                s->a->sync_counts(s->r.db, &c0, &f0);
        rc = run_threads(&s->r, threads, &res);
        if (s->a->sync_counts != NULL && s->a->sync_counts(s->r.db, &c1, &f1) == 0 && f1 > f0 &&
            c1 > c0)
                res.commits_per_fsync = (double)(c1 - c0) / (double)(f1 - f0);
        if (rc != 0) {
                fprintf(stderr, "sombra-bench: %s %s %s %s: %s\n", s->a->name, res.dataset,
                        s->p->name, name, sombra_strerror(rc));
                return rc;
        }
        record(s->o, &res);
        return 0;
}

/* One transaction of edges: links [at, at + n) as engine ids. */
static int
load_edges(struct session *s, void *conn, uint64_t at, uint64_t n, struct bench_edge *edges)
{
        const struct dataset *d = s->r.d;

        for (uint64_t k = 0; k < n; k++) {
                const struct bench_link *l = &d->links[at + k];
                edges[k] = (struct bench_edge){d->ids[l->src], d->ids[l->dst], l->type, l->since};
        }
        return s->a->insert_edges(conn, edges, n);
}

/* Loads the dataset in transactions of `per` (nodes, then edges), timing both. */
static int
load(struct session *s, uint64_t per)
{
        struct dataset *d = s->r.d;
        struct bench_edge *edges = malloc(per * sizeof(*edges));
        struct lat ln = {0}, le = {0};
        struct result rn = result_for(s, "insert_nodes_tx1000", 1);
        struct result re = result_for(s, "insert_edges_tx1000", 1);
        void *conn;
        double t;
        int rc = edges == NULL ? SOMBRA_ENOMEM : s->a->conn_open(s->r.db, &conn);

        if (rc != 0) {
                free(edges);
                return rc;
        }
        t = now_s();
        for (uint64_t i = 0; i < d->nnodes && rc == 0; i += per) {
                uint64_t n = d->nnodes - i < per ? d->nnodes - i : per, t0 = timed_start();
                rc = s->a->insert_nodes(conn, d->nodes + i, n, d->ids + i);
                timed_end(&ln, t0);
                rn.ops += n;
        }
        rn.seconds = now_s() - t;
        t = now_s();
        for (uint64_t i = 0; i < d->nedges && rc == 0; i += per) {
                uint64_t n = d->nedges - i < per ? d->nedges - i : per, t0 = timed_start();
                rc = load_edges(s, conn, i, n, edges);
                timed_end(&le, t0);
                re.ops += n;
        }
        re.seconds = now_s() - t;
        if (rc == 0)
                rc = s->a->index_lookup(conn);
        s->a->conn_close(conn);
        if (rc == 0 && s->a->file_size != NULL)
                rc = s->a->file_size(s->r.db, &re.file_bytes, &re.free_bytes);
        if (rc == 0 && s->a->compact_size != NULL)
                rc = s->a->compact_size(s->r.db, &re.compact_bytes);
        rn.all = lat_percentiles(&ln, 1, 1);
        re.all = lat_percentiles(&le, 1, 1);
        free(ln.v);
        free(le.v);
        free(edges);
        if (rc == 0 && selected(s->o, rn.workload))
                record(s->o, &rn);
        if (rc == 0 && selected(s->o, re.workload))
                record(s->o, &re);
        return rc;
}

/* The database files are scratch: removed whatever happened. */
static void
scratch_remove(const char *dir)
{
        static const char *const names[] = {"bench.sombra", "bench.sombra-wal", "bench.sqlite",
                                            "bench.sqlite-wal", "bench.sqlite-shm"};
        char path[256];

        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
                snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
                unlink(path);
        }
        if (rmdir(dir) != 0)
                fprintf(stderr, "sombra-bench: could not remove %s\n", dir);
}

/* long_read / long_write: one connection holds a transaction while writers run. */
struct holder {
        struct session *s;
        bool write;
        int ready; /* set once the transaction is (about to be) open */
        int status;
};

static void *
holder_main(void *arg)
{
        struct holder *h = arg;
        const struct adapter *a = h->s->a;
        double secs = h->s->o->seconds;
        struct timespec pause = {(time_t)secs, (long)((secs - (double)(time_t)secs) * 1e9)};
        void *conn;

        h->status = a->conn_open(h->s->r.db, &conn);
        if (h->status != 0) {
                __atomic_store_n(&h->ready, 1, __ATOMIC_RELEASE);
                return NULL;
        }
        if (h->write) {
                __atomic_store_n(&h->ready, 1, __ATOMIC_RELEASE);
                h->status = a->write_hold(conn, secs);
        } else {
                h->status = a->read_hold_begin(conn);
                __atomic_store_n(&h->ready, 1, __ATOMIC_RELEASE);
                nanosleep(&pause, NULL);
                if (h->status == 0)
                        h->status = a->read_hold_end(conn);
        }
        a->conn_close(conn);
        return NULL;
}

static int
held(struct session *s, const char *name, bool write)
{
        struct holder h = {s, write, 0, 0};
        struct timespec settle = {0, 20 * 1000000};
        pthread_t tid;
        int rc;

        if (!selected(s->o, name) || (s->o->threads && s->o->threads != 4))
                return 0;
        if (pthread_create(&tid, NULL, holder_main, &h) != 0)
                return SOMBRA_ENOMEM;
        while (!__atomic_load_n(&h.ready, __ATOMIC_ACQUIRE))
                nanosleep(&settle, NULL);
        nanosleep(&settle, NULL); /* the holder's transaction is open before the writers come */
        rc = measure(s, name, 4, 0, op_one_edge);
        pthread_join(tid, NULL);
        if (rc == 0 && h.status != 0) {
                fprintf(stderr, "sombra-bench: %s %s: the holder failed: %s\n", s->a->name, name,
                        sombra_strerror(h.status));
                rc = h.status;
        }
        return rc;
}

/*
 * recovery: a child process commits transactions of 100 users (FULL) and
 * reports each committed one's last id over a pipe; after `txns` reports the
 * parent SIGKILLs it mid-stream, then times the reopen (open, a connection,
 * the first read) and checks that the last acknowledged user is there. One
 * reopen is a few milliseconds, so a scheduling hiccup would be most of it:
 * the figure is the median of RECOVERY_ROUNDS kills.
 */
#define RECOVERY_ROUNDS 5

static void
recovery_child(struct session *s, const char *dir, int fd, uint64_t txns)
{
        struct bench_node batch[100];
        uint64_t ids[100], rng = 7;
        void *db, *conn;

        if (s->a->open(dir, PRODUCTION, &bench_social, &db) != 0 || s->a->conn_open(db, &conn) != 0)
                _exit(2);
        for (uint64_t k = 0; k < txns + 1000000; k++) {
                for (int i = 0; i < 100; i++)
                        bench_user_make(&batch[i], k * 100 + (uint64_t)i, &rng);
                if (s->a->insert_nodes(conn, batch, 100, ids) != 0)
                        _exit(3);
                if (write(fd, &ids[99], sizeof(ids[99])) != (ssize_t)sizeof(ids[99]))
                        _exit(4);
        }
        _exit(0);
}

/* Kills the child after `txns` commits in `dir` and times the reopen into l. */
static int
recovery_round(struct session *s, const char *dir, uint64_t txns, struct lat *l)
{
        uint64_t last = 0, id, t0;
        size_t nprops;
        int fds[2], status, rc;
        void *db, *conn;
        pid_t pid;

        if (pipe(fds) != 0)
                return SOMBRA_EIO;
        pid = fork();
        if (pid < 0) {
                close(fds[0]);
                close(fds[1]);
                return SOMBRA_EIO;
        }
        if (pid == 0) {
                close(fds[0]);
                recovery_child(s, dir, fds[1], txns);
        }
        close(fds[1]);
        for (uint64_t k = 0; k < txns && read(fds[0], &id, sizeof(id)) == (ssize_t)sizeof(id); k++)
                last = id;
        kill(pid, SIGKILL);
        while (read(fds[0], &id, sizeof(id)) == (ssize_t)sizeof(id))
                last = id; /* acknowledged before it died */
        close(fds[0]);
        waitpid(pid, &status, 0);
        t0 = timed_start();
        rc = s->a->open(dir, PRODUCTION, &bench_social, &db);
        if (rc == 0) {
                rc = s->a->conn_open(db, &conn);
                if (rc == 0) {
                        rc = last ? s->a->get_node(conn, last, &nprops) : SOMBRA_ECORRUPT;
                        timed_end(l, t0);
                        s->a->conn_close(conn);
                }
                s->a->close(db);
        }
        if (rc != 0)
                fprintf(stderr, "sombra-bench: %s recovery: acknowledged user %" PRIu64 ": %s\n",
                        s->a->name, last, sombra_strerror(rc));
        return rc;
}

static int
recovery(struct session *s, uint64_t txns)
{
        struct result res = result_for(s, "recovery", 1);
        struct lat l = {0};
        int rc = 0;

        if (!selected(s->o, "recovery"))
                return 0;
        for (int round = 0; round < RECOVERY_ROUNDS && rc == 0; round++) {
                char dir[] = "/tmp/sombra-recovery-XXXXXX";
                if (mkdtemp(dir) == NULL)
                        rc = SOMBRA_EIO;
                if (rc == 0) {
                        rc = recovery_round(s, dir, txns, &l);
                        scratch_remove(dir);
                }
        }
        if (rc == 0) {
                res.all = lat_percentiles(&l, 1, 1);
                res.ops = 1;
                res.seconds = res.all.p50 / 1e6;
                record(s->o, &res);
        }
        free(l.v);
        return rc;
}

/*
 * The single-threaded reads; `every` adds the social network's own:
 * insert_nodes_tx1 (which makes users), bfs3 and shortest_path.
 */
static int
reads(struct session *s, uint64_t scale, bool every)
{
        int rc = every ? measure(s, "insert_nodes_tx1", 1, scale / 10, op_insert_node_tx1) : 0;

        if (rc == 0)
                rc = measure(s, "get_node", 1, scale * 4, op_get_node);
        if (rc == 0)
                rc = measure(s, "neighbors_out", 1, scale * 4, op_neighbors);
        if (rc == 0)
                rc = measure(s, "two_hop", 1, scale, op_two_hop);
        if (rc == 0 && every)
                rc = measure(s, "bfs3", 1, scale / 10, op_bfs3);
        if (rc == 0 && every)
                rc = measure(s, "shortest_path", 1, scale / 20, op_shortest_path);
        if (rc == 0)
                rc = measure(s, "label_scan", 1, 10, op_label_scan);
        if (rc == 0)
                rc = measure(s, "property_lookup", 1, scale / 5, op_property_lookup);
        return rc;
}

/* The concurrent workloads on the loaded social network, reopened under each profile. */
static int
profiles_run(struct session *s, const char *dir)
{
        int rc = 0;

        for (size_t p = 0; p < NPROFILES && rc == 0; p++) {
                struct bench_profile chosen = profiles[p];
                if (s->o->profile != NULL && strcmp(s->o->profile, profiles[p].name) != 0)
                        continue;
                chosen.no_metrics = s->o->no_metrics;
                s->p = &chosen;
                rc = s->a->open(dir, s->p, &bench_social, &s->r.db);
                if (rc != 0)
                        break;
                for (size_t t = 0; t < NTHREADS && rc == 0; t++)
                        rc = measure(s, "mixed", thread_counts[t], 0, op_mixed);
                if (&profiles[p] == PRODUCTION) {
                        for (size_t t = 0; t < NTHREADS && rc == 0; t++)
                                rc = measure(s, "durable_commit_scaling", thread_counts[t], 0,
                                             op_one_edge);
                        if (rc == 0)
                                rc = measure(s, "durable_commit_async", ASYNC_THREADS, 0,
                                             op_one_edge_async);
                        if (rc == 0)
                                rc = held(s, "long_read", false);
                        if (rc == 0)
                                rc = held(s, "long_write", true);
                }
                s->a->close(s->r.db); /* also after a failure: its threads must stop */
        }
        s->p = PRODUCTION;
        return rc;
}

/*
 * One dataset on one engine, in a database of its own: the load and the
 * reads; for the social network also recovery and the concurrent workloads.
 */
static int
dataset_run(const struct options *o, const struct adapter *a, struct dataset *d)
{
        char dir[] = "/tmp/sombra-bench-XXXXXX";
        struct session s = {o, a, PRODUCTION, {.a = a, .d = d}};
        bool social = d->schema == &bench_social;
        int rc;

        if (mkdtemp(dir) == NULL)
                return SOMBRA_EIO;
        rc = a->open(dir, PRODUCTION, d->schema, &s.r.db);
        if (rc == 0) {
                rc = load(&s, 1000);
                if (rc == 0)
                        rc = reads(&s, o->quick ? 500 : 5000, social);
                a->close(s.r.db);
        }
        if (rc == 0 && social)
                rc = recovery(&s, o->recovery_txns ? o->recovery_txns : o->quick ? 20 : 400);
        if (rc == 0 && social)
                rc = profiles_run(&s, dir);
        scratch_remove(dir);
        return rc;
}

static const char usage[] = "usage: sombra-bench [--quick] [--json] [--workload NAME[,NAME...]] "
                            "[--threads N] [--profile NAME] [--engine NAME] "
                            "[--dataset social|catalogue|knowledge] [--nodes N] [--edges M] "
                            "[--seconds S] [--no-metrics] [--recovery-txns N]\n";

/* Returns 0 to run, 1 after --help, -1 on a bad option (getopt has said why). */
static int
parse(int argc, char **argv, struct options *o)
{
        static const struct option longs[] = {{"quick", no_argument, NULL, 'q'},
                                              {"json", no_argument, NULL, 'j'},
                                              {"workload", required_argument, NULL, 'w'},
                                              {"profile", required_argument, NULL, 'p'},
                                              {"engine", required_argument, NULL, 'e'},
                                              {"dataset", required_argument, NULL, 'd'},
                                              {"threads", required_argument, NULL, 't'},
                                              {"nodes", required_argument, NULL, 'n'},
                                              {"edges", required_argument, NULL, 'm'},
                                              {"seconds", required_argument, NULL, 's'},
                                              {"no-metrics", no_argument, NULL, 'M'},
                                              {"recovery-txns", required_argument, NULL, 'r'},
                                              {"help", no_argument, NULL, 'h'},
                                              {NULL, 0, NULL, 0}};
        int c;

        while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
                switch (c) {
                case 'q':
                        o->quick = true;
                        break;
                case 'j':
                        o->json = true;
                        break;
                case 'w':
                        o->workload = optarg;
                        break;
                case 'p':
                        o->profile = optarg;
                        break;
                case 'e':
                        o->engine = optarg;
                        break;
                case 'd':
                        o->dataset = optarg;
                        break;
                case 't':
                        o->threads = atoi(optarg);
                        break;
                case 'n':
                        o->nodes = strtoull(optarg, NULL, 10);
                        break;
                case 'm':
                        o->edges = strtoull(optarg, NULL, 10);
                        break;
                case 's':
                        o->seconds = strtod(optarg, NULL);
                        break;
                case 'M':
                        o->no_metrics = true;
                        break;
                case 'r':
                        o->recovery_txns = strtoull(optarg, NULL, 10);
                        if (o->recovery_txns == 0) {
                                fputs(usage, stderr);
                                return -1;
                        }
                        break;
                case 'h':
                        fputs(usage, stdout);
                        return 1;
                default:
                        fputs(usage, stderr);
                        return -1;
                }
        }
        return optind == argc ? 0 : -1;
}

/*
 * A name that selects nothing is a mistake, not an empty run: --engine,
 * --dataset and --profile must name one of theirs.
 */
static int
names_check(const struct options *o)
{
        bool engine = o->engine == NULL, dataset = o->dataset == NULL, profile = o->profile == NULL;

        for (size_t e = 0; e < NADAPTERS; e++)
                engine = engine || strcmp(o->engine, adapters[e]->name) == 0;
        for (size_t k = 0; k < NSCHEMAS; k++)
                dataset = dataset || strcmp(o->dataset, schemas[k]->name) == 0;
        for (size_t p = 0; p < NPROFILES; p++)
                profile = profile || strcmp(o->profile, profiles[p].name) == 0;
        if (!engine)
                fprintf(stderr, "sombra-bench: unknown engine '%s'\n", o->engine);
        if (!dataset)
                fprintf(stderr, "sombra-bench: unknown dataset '%s'\n", o->dataset);
        if (!profile)
                fprintf(stderr, "sombra-bench: unknown profile '%s'\n", o->profile);
        return engine && dataset && profile ? 0 : -1;
}

/* Every selected dataset on one engine, in the order of schemas[]. */
static int
engine_run(const struct options *o, const struct adapter *a, struct dataset *data)
{
        int rc = 0;

        for (size_t k = 0; k < NSCHEMAS && rc == 0; k++) {
                struct dataset *d = &data[k];
                if (o->dataset != NULL && strcmp(o->dataset, d->schema->name) != 0)
                        continue;
                fprintf(stderr, "sombra-bench: %s, %s: %" PRIu64 " nodes, %" PRIu64 " edges\n",
                        a->name, d->schema->name, d->nnodes, d->nedges);
                rc = dataset_run(o, a, d);
        }
        return rc;
}

int
sombra_bench_main(int argc, char **argv)
{
        struct options o = {0};
        struct dataset data[NSCHEMAS] = {{0}};
        int rc = parse(argc, argv, &o);

        if (rc == 0 && names_check(&o) != 0)
                rc = -1;
        if (rc != 0)
                return rc > 0 ? 0 : 2;
        if (o.nodes == 0)
                o.nodes = o.quick ? 2000 : 20000;
        if (o.edges == 0)
                o.edges = o.nodes * 5;
        if (o.seconds <= 0)
                o.seconds = o.quick ? 0.2 : 2.0;
        for (size_t k = 0; k < NSCHEMAS && rc == 0; k++)
                rc = bench_dataset_make(&data[k], schemas[k], o.nodes, o.edges, 42 + k);
        for (size_t e = 0; e < NADAPTERS && rc == 0; e++) {
                if (o.engine == NULL || strcmp(o.engine, adapters[e]->name) == 0)
                        rc = engine_run(&o, adapters[e], data);
        }
        if (rc == 0 && nresults == 0) {
                fputs("sombra-bench: no workload matched --workload and --threads\n", stderr);
                rc = SOMBRA_EINVAL;
        }
        if (rc == 0 && !o.json)
                print_table();
        for (size_t k = 0; k < NSCHEMAS; k++)
                bench_dataset_free(&data[k]);
        if (rc != 0)
                fprintf(stderr, "sombra-bench: %s\n", sombra_strerror(rc));
        return rc == 0 ? 0 : 1;
}
