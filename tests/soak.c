/*
 * soak.c - the mixed workload on 64 threads for a long time, watching for
 * what only shows over time: memory that grows, throughput that decays, a
 * database that ends up unhealthy.
 *
 * usage: soak [--seconds S] [--threads T] [--cache-pages P] [--dir D]
 *
 * Loads a small social network (FULL, the production preset), then runs T
 * threads (default 64) for S seconds (default 600): 80% reads (half
 * sombra_node_get, half sombra_neighbors), 20% one-edge transactions, each
 * thread on its own pooled connection. Every SAMPLE_S seconds it prints the
 * operations done and the anonymous resident memory (RssAnon: the heap, the
 * page cache and the thread stacks; the file's own pages, mapped for
 * readers, belong to the OS page cache and are not counted).
 *
 * Passes when:
 *   - RssAnon never exceeds its level after the load plus the configured
 *     page cache (P pages) plus SLACK_MB (thread stacks touched, jemalloc
 *     arenas, per-connection result buffers);
 *   - the throughput of the last third of the samples is at least
 *     DECAY_FLOOR of the first third's (the graph grows all the while, so
 *     some slowing is expected; a collapse is not);
 *   - sombra_verify passes at the end, and the counts add up: every
 *     acknowledged edge is there.
 * Prints "soak: N passed, N failed" (one per check) last.
 */
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sombra.h"
#include "support.h"

#define USERS       20000
#define LOAD_EDGES  60000
#define SAMPLE_S    5
#define SLACK_MB    256
#define DECAY_FLOOR 0.5

struct soak {
        sombra_db *db;
        int threads;
        double seconds;
        uint64_t ops, edges, seed; /* __atomic: every thread adds to them */
        uint32_t stop;
        int failure; /* the first failed call's status */
};

static double
now_s(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* RssAnon from /proc/self/status, in bytes; 0 when it cannot be read. */
static uint64_t
rss_anon(void)
{
        char line[256];
        uint64_t kb = 0;
        FILE *f = fopen("/proc/self/status", "r");

        if (f == NULL)
                return 0;
        while (fgets(line, sizeof(line), f) != NULL)
                if (sscanf(line, "RssAnon: %" SCNu64 " kB", &kb) == 1)
                        break;
        fclose(f);
        return kb * 1024;
}

static void
fail(struct soak *s, int rc)
{
        int none = SOMBRA_OK;

        __atomic_compare_exchange_n(&s->failure, &none, rc, false, __ATOMIC_ACQ_REL,
                                    __ATOMIC_ACQUIRE);
}

/* Users 1..USERS (ids are handed out in order) and LOAD_EDGES edges, in batches of 1000. */
static int
load(sombra_db *db)
{
        const char *label[] = {"User"};
        uint64_t rng = 1;
        sombra_conn *c;
        sombra_batch *b;
        int rc = sombra_conn_acquire(db, &c);

        if (rc != SOMBRA_OK)
                return rc;
        rc = sombra_batch_new(&b);
        for (int i = 0; i < USERS + LOAD_EDGES && rc == SOMBRA_OK; i++) {
                struct sombra_prop p = {"n", {.type = SOMBRA_INT, .u.i = i}};
                if (i < USERS)
                        rc = sombra_batch_node_create(b, label, 1, &p, 1, NULL);
                else
                        rc = sombra_batch_edge_create(b, 1 + support_next_rand(&rng) % USERS,
                                                      1 + support_next_rand(&rng) % USERS, "KNOWS",
                                                      NULL, 0, NULL);
                if (rc == SOMBRA_OK && (i + 1) % 1000 == 0) {
                        rc = sombra_batch_submit(c, b);
                        if (rc == SOMBRA_OK)
                                rc = sombra_batch_reset(b);
                }
        }
        sombra_batch_free(b);
        sombra_conn_release(c);
        return rc;
}

static int
mixed_op(sombra_conn *c, uint64_t *rng, uint64_t *edges)
{
        uint64_t dice = support_next_rand(rng) % 10, id = 1 + support_next_rand(rng) % USERS;
        const struct sombra_entity *e;
        const struct sombra_neighbor *nb;
        size_t n;
        int rc;

        if (dice < 2) {
                rc = sombra_edge_create(c, id, 1 + support_next_rand(rng) % USERS, "KNOWS", NULL, 0,
                                        NULL);
                *edges += rc == SOMBRA_OK;
                return rc;
        }
        if (dice < 6)
                return sombra_node_get(c, id, &e);
        return sombra_neighbors(c, id, SOMBRA_OUT, NULL, 0, &nb, &n);
}

static void *
worker(void *arg)
{
        struct soak *s = arg;
        uint64_t rng = __atomic_add_fetch(&s->seed, 1, __ATOMIC_RELAXED), ops = 0, edges = 0;
        sombra_conn *c = NULL;
        int rc = sombra_conn_acquire(s->db, &c);

        while (rc == SOMBRA_OK && !__atomic_load_n(&s->stop, __ATOMIC_ACQUIRE)) {
                rc = mixed_op(c, &rng, &edges);
                if (++ops % 64 == 0) {
                        __atomic_add_fetch(&s->ops, ops, __ATOMIC_RELAXED);
                        ops = 0;
                }
        }
        __atomic_add_fetch(&s->ops, ops, __ATOMIC_RELAXED);
        __atomic_add_fetch(&s->edges, edges, __ATOMIC_RELAXED);
        if (rc != SOMBRA_OK)
                fail(s, rc);
        if (c != NULL)
                sombra_conn_release(c);
        return NULL;
}

static int
check(bool ok, const char *what)
{
        printf("soak: %s %s\n", ok ? "PASS" : "FAIL", what);
        return ok;
}

/* Samples throughput and memory until the time is up; returns the number of samples taken. */
static size_t
watch(struct soak *s, double *rate, size_t cap, uint64_t *peak)
{
        double start = now_s(), last = start;
        uint64_t before = 0;
        size_t n = 0;

        while (now_s() - start < s->seconds && n < cap &&
               __atomic_load_n(&s->failure, __ATOMIC_ACQUIRE) == SOMBRA_OK) {
                double t;
                uint64_t ops, rss;

                sleep(s->seconds < SAMPLE_S ? 1 : SAMPLE_S);
                t = now_s();
                ops = __atomic_load_n(&s->ops, __ATOMIC_RELAXED);
                rss = rss_anon();
                rate[n++] = (double)(ops - before) / (t - last);
                *peak = rss > *peak ? rss : *peak;
                printf("soak: %6.0f s %10.0f ops/s  RssAnon %6" PRIu64 " MiB\n", t - start,
                       rate[n - 1], rss >> 20);
                fflush(stdout);
                before = ops;
                last = t;
        }
        return n;
}

static double
mean(const double *v, size_t n)
{
        double sum = 0;

        for (size_t i = 0; i < n; i++)
                sum += v[i];
        return n ? sum / (double)n : 0;
}

static int
run(struct soak *s, const char *path, uint32_t cache_pages)
{
        struct sombra_config cfg;
        pthread_t *tid = calloc((size_t)s->threads, sizeof(*tid));
        double rate[4096];
        uint64_t base, limit, peak = 0, nodes, edges;
        char problem[256] = "";
        int passed = 0, checks = 0, rc;
        sombra_conn *c = NULL;
        size_t n, third;

        sombra_config_production(&cfg);
        cfg.page_cache_size = cache_pages;
        cfg.max_connections = (uint32_t)s->threads + 1;
        if (tid == NULL || sombra_open(path, &cfg, &s->db) != SOMBRA_OK || load(s->db) != SOMBRA_OK)
                return -1;
        base = rss_anon();
        limit = base + (uint64_t)cache_pages * cfg.page_size + ((uint64_t)SLACK_MB << 20);
        printf("soak: %d threads for %.0f s; RssAnon after the load %" PRIu64 " MiB, limit %" PRIu64
               " MiB\n",
               s->threads, s->seconds, base >> 20, limit >> 20);
        for (int i = 0; i < s->threads; i++)
                pthread_create(&tid[i], NULL, worker, s);
        n = watch(s, rate, sizeof(rate) / sizeof(rate[0]), &peak);
        __atomic_store_n(&s->stop, 1, __ATOMIC_RELEASE);
        for (int i = 0; i < s->threads; i++)
                pthread_join(tid[i], NULL);
        free(tid);
        third = n / 3 ? n / 3 : 1;
        passed += check(s->failure == SOMBRA_OK, "every call succeeded");
        passed += check(peak <= limit, "memory stayed within the page cache plus slack");
        passed += check(n >= 3 && mean(rate + n - third, third) >= DECAY_FLOOR * mean(rate, third),
                        "throughput did not decay");
        checks = 3;
        rc = sombra_verify(s->db, problem, sizeof(problem));
        passed += check(rc == SOMBRA_OK, rc == SOMBRA_OK ? "verify" : problem);
        rc = sombra_conn_acquire(s->db, &c);
        if (rc == SOMBRA_OK)
                rc = sombra_count(c, &nodes, &edges);
        passed += check(rc == SOMBRA_OK && nodes == USERS && edges == LOAD_EDGES + s->edges,
                        "every acknowledged edge is there");
        checks += 2;
        if (c != NULL)
                sombra_conn_release(c);
        printf("soak: %" PRIu64 " operations, %" PRIu64 " edges made, peak RssAnon %" PRIu64
               " MiB\n",
               __atomic_load_n(&s->ops, __ATOMIC_RELAXED), s->edges, peak >> 20);
        passed += check(sombra_close(s->db) == SOMBRA_OK, "close");
        checks++;
        printf("soak: %d passed, %d failed\n", passed, checks - passed);
        return checks - passed;
}

int
main(int argc, char **argv)
{
        static const struct option longs[] = {{"seconds", required_argument, NULL, 's'},
                                              {"threads", required_argument, NULL, 't'},
                                              {"cache-pages", required_argument, NULL, 'c'},
                                              {"dir", required_argument, NULL, 'd'},
                                              {NULL, 0, NULL, 0}};
        struct soak s = {.threads = 64, .seconds = 600};
        char dir[2048] = "/tmp", tmp[2100], path[2200], wal[2210];
        uint32_t cache_pages = 4096;
        int opt, failed;

        while ((opt = getopt_long(argc, argv, "", longs, NULL)) != -1) {
                if (opt == 's')
                        s.seconds = strtod(optarg, NULL);
                else if (opt == 't')
                        s.threads = atoi(optarg);
                else if (opt == 'c')
                        cache_pages = (uint32_t)strtoul(optarg, NULL, 10);
                else if (opt == 'd')
                        snprintf(dir, sizeof(dir), "%s", optarg);
                else
                        return 2;
        }
        if (s.seconds <= 0 || s.threads < 1 || s.threads > 1024)
                return 2;
        snprintf(tmp, sizeof(tmp), "%s/sombra-soak-XXXXXX", dir);
        if (mkdtemp(tmp) == NULL)
                return 2;
        snprintf(path, sizeof(path), "%s/soak.sombra", tmp);
        snprintf(wal, sizeof(wal), "%s-wal", path);
        failed = run(&s, path, cache_pages);
        unlink(path);
        unlink(wal);
        rmdir(tmp);
        if (failed < 0)
                printf("soak: could not open and load the database\nsoak: 0 passed, 1 failed\n");
        return failed == 0 ? 0 : 1;
}
