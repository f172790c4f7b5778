/*
 * stress.c - the readers-against-writer scenario (see stress.h). Plain C and
 * pthreads, no Criterion, so that it also runs under ThreadSanitizer.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "graph.h"
#include "stress.h"

struct shared {
        struct graph *g;
        int done;
        int failures;
        uint64_t reads;
};

static int
writer_step(struct graph *g, int64_t k, uint64_t *ids)
{
        struct sombra_prop p = {"k", {.type = SOMBRA_INT, .u.i = k}};
        const char *label[] = {"T"};
        int rc = graph_begin(g);

        if (rc == SOMBRA_OK)
                rc = graph_node_create(g, label, 1, &p, 1, &ids[k]);
        for (int e = 0; e < STRESS_EDGES_PER && rc == SOMBRA_OK; e++)
                rc = graph_edge_create(g, ids[k], 1, "TO_HUB", NULL, 0, NULL);
        if (rc == SOMBRA_OK && k >= STRESS_WINDOW)
                rc = graph_node_delete(g, ids[k - STRESS_WINDOW]);
        if (rc == SOMBRA_OK)
                return graph_commit(g);
        graph_rollback(g);
        return rc;
}

/* One read transaction over the invariants of stress.h. */
static bool
snapshot_ok(struct graph_reader *r, struct graph_ids *ids, struct graph_adjvec *adj)
{
        uint64_t nodes, edges, hub_in, again_n, again_e, deg;
        bool ok;

        graph_read_begin(r);
        ok = graph_counts(r, &nodes, &edges) == SOMBRA_OK;
        ok = ok && graph_nodes_by_label(r, "T", ids) == SOMBRA_OK;
        ok = ok && nodes == 1 + ids->n && edges == STRESS_EDGES_PER * ids->n;
        ok = ok && graph_degree(r, 1, SOMBRA_IN, NULL, 0, &hub_in) == SOMBRA_OK && hub_in == edges;
        for (size_t i = 0; ok && i < ids->n; i += 7) {
                ok = graph_degree(r, ids->v[i], SOMBRA_OUT, NULL, 0, &deg) == SOMBRA_OK &&
                     deg == STRESS_EDGES_PER;
                ok = ok && graph_neighbors(r, ids->v[i], SOMBRA_OUT, NULL, 0, adj) == SOMBRA_OK &&
                     adj->n == STRESS_EDGES_PER && adj->v[0].node == 1;
        }
        /* Still the same state, however many commits went by meanwhile. */
        ok = ok && graph_counts(r, &again_n, &again_e) == SOMBRA_OK && again_n == nodes &&
             again_e == edges;
        graph_read_end(r);
        return ok;
}

static void *
reader_main(void *arg)
{
        struct shared *sh = arg;
        struct graph_reader *r;
        struct graph_ids ids = {0};
        struct graph_adjvec adj = {0};

        if (graph_reader_open(sh->g, &r) != SOMBRA_OK) {
                __atomic_add_fetch(&sh->failures, 1, __ATOMIC_SEQ_CST);
                return NULL;
        }
        while (!__atomic_load_n(&sh->done, __ATOMIC_ACQUIRE)) {
                if (!snapshot_ok(r, &ids, &adj))
                        __atomic_add_fetch(&sh->failures, 1, __ATOMIC_SEQ_CST);
                __atomic_add_fetch(&sh->reads, 1, __ATOMIC_RELAXED);
        }
        graph_ids_free(&ids);
        graph_adjvec_free(&adj);
        graph_reader_close(r);
        return NULL;
}

static void
fail(struct stress_result *out, int rc, const char *what)
{
        if (out->status != SOMBRA_OK)
                return;
        out->status = rc;
        snprintf(out->problem, sizeof(out->problem), "%.160s: %s", what, sombra_strerror(rc));
}

void
stress_readers_vs_writer(const char *path, const struct sombra_config *cfg, int64_t txns,
                         int readers, struct stress_result *out)
{
        struct shared sh = {0};
        pthread_t threads[64];
        uint64_t *ids = calloc((size_t)txns, sizeof(*ids)), hub;
        struct graph_verify_report vr;
        int started = 0, rc;

        *out = (struct stress_result){0};
        rc = ids == NULL ? SOMBRA_ENOMEM : graph_open(path, cfg, NULL, &sh.g);
        if (rc == SOMBRA_OK)
                rc = graph_node_create(sh.g, NULL, 0, NULL, 0, &hub);
        if (rc != SOMBRA_OK) {
                fail(out, rc, "setup");
                goto label_out;
        }
        for (; started < readers && started < 64; started++)
                if (pthread_create(&threads[started], NULL, reader_main, &sh) != 0)
                        break;
        for (int64_t k = 0; k < txns && rc == SOMBRA_OK; k++)
                rc = writer_step(sh.g, k, ids);
        if (rc != SOMBRA_OK)
                fail(out, rc, "commit");
        __atomic_store_n(&sh.done, 1, __ATOMIC_RELEASE);
        for (int i = 0; i < started; i++)
                pthread_join(threads[i], NULL);
        out->reads = sh.reads;
        out->failures = sh.failures;
        rc = graph_verify(sh.g, &vr);
        if (rc != SOMBRA_OK)
                fail(out, rc, vr.problem);
        rc = graph_close(sh.g);
        if (rc != SOMBRA_OK)
                fail(out, rc, "close");
label_out:
        free(ids);
}

/* ---- the public API under load ---- */

#define ENGINE_NODES_PER_THREAD 20

struct engine_worker {
        sombra_db *db;
        int index;
        uint32_t duration_ms;
        uint64_t first_node; /* this thread's nodes are first_node .. + per thread */
        uint64_t *edges;     /* acknowledged edge ids */
        uint64_t *ends;      /* their (src, dst) pairs */
        size_t nedges, cap;
        uint64_t reads, failures;
        int first_error;
};

static uint64_t
now_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void
worker_fail(struct engine_worker *w, int rc)
{
        w->failures++;
        if (w->first_error == SOMBRA_OK)
                w->first_error = rc;
}

static void
worker_write(struct engine_worker *w, sombra_conn *c, uint64_t nnodes, uint64_t *rng)
{
        uint64_t src = 1 + *rng % nnodes, dst = 1 + (*rng >> 20) % nnodes, id;
        int rc = sombra_edge_create(c, src, dst, "LINK", NULL, 0, &id);

        if (rc != SOMBRA_OK) {
                worker_fail(w, rc);
                return;
        }
        if (w->nedges == w->cap) {
                w->cap = w->cap ? w->cap * 2 : 256;
                w->edges = realloc(w->edges, w->cap * sizeof(*w->edges));
                w->ends = realloc(w->ends, 2 * w->cap * sizeof(*w->ends));
        }
        w->edges[w->nedges] = id;
        w->ends[2 * w->nedges] = src;
        w->ends[2 * w->nedges + 1] = dst;
        w->nedges++;
}

static void *
engine_worker_main(void *arg)
{
        struct engine_worker *w = arg;
        uint64_t rng = 0x9E3779B97F4A7C15ull * (uint64_t)(w->index + 1), nnodes, end;
        const struct sombra_entity *e;
        const struct sombra_neighbor *nb;
        size_t n;
        sombra_conn *c;
        int rc = sombra_conn_acquire(w->db, &c);

        if (rc != SOMBRA_OK) {
                worker_fail(w, rc);
                return NULL;
        }
        if (sombra_count(c, &nnodes, NULL) != SOMBRA_OK || nnodes == 0)
                worker_fail(w, SOMBRA_ECORRUPT);
        end = now_ms() + w->duration_ms;
        while (w->failures == 0 && now_ms() < end) {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                if (rng % 5 == 0) {
                        worker_write(w, c, nnodes, &rng);
                        continue;
                }
                /* One thread also merges the metrics while the others count into them. */
                if (w->index == 0 && rng % 64 == 1) {
                        struct sombra_metrics m;
                        rc = sombra_metrics(w->db, &m);
                        if (rc != SOMBRA_OK)
                                worker_fail(w, rc);
                }
                rc = rng % 2 ? sombra_node_get(c, 1 + (rng >> 8) % nnodes, &e)
                             : sombra_neighbors(c, 1 + (rng >> 8) % nnodes, SOMBRA_BOTH, NULL, 0,
                                                &nb, &n);
                if (rc != SOMBRA_OK)
                        worker_fail(w, rc);
                w->reads++;
        }
        sombra_conn_release(c);
        return NULL;
}

static bool
edge_checks_out(sombra_conn *c, uint64_t id, uint64_t src, uint64_t dst)
{
        const struct sombra_entity *e;
        return sombra_edge_get(c, id, &e) == SOMBRA_OK && e->src == src && e->dst == dst;
}

void
engine_stress(sombra_db *db, int threads, uint32_t duration_ms, struct engine_stress_result *out)
{
        struct engine_worker w[64] = {0};
        pthread_t tids[64];
        sombra_conn *c;
        uint64_t nodes = (uint64_t)threads * ENGINE_NODES_PER_THREAD, edges;
        int rc;

        *out = (struct engine_stress_result){0};
        if (threads > 64 || sombra_conn_acquire(db, &c) != SOMBRA_OK) {
                out->failures = 1;
                snprintf(out->problem, sizeof(out->problem), "setup");
                return;
        }
        for (uint64_t i = 0; i < nodes; i++)
                sombra_node_create(c, NULL, 0, NULL, 0, NULL);
        sombra_conn_release(c);
        for (int i = 0; i < threads; i++) {
                w[i] = (struct engine_worker){.db = db, .index = i, .duration_ms = duration_ms};
                pthread_create(&tids[i], NULL, engine_worker_main, &w[i]);
        }
        for (int i = 0; i < threads; i++)
                pthread_join(tids[i], NULL);
        rc = sombra_conn_acquire(db, &c);
        for (int i = 0; i < threads && rc == SOMBRA_OK; i++) {
                out->reads += w[i].reads;
                out->writes += w[i].nedges;
                if (w[i].failures > 0 && out->failures == 0)
                        snprintf(out->problem, sizeof(out->problem), "thread %d: %s", i,
                                 sombra_strerror(w[i].first_error));
                out->failures += (int)w[i].failures;
                for (size_t k = 0; k < w[i].nedges; k++) {
                        if (!edge_checks_out(c, w[i].edges[k], w[i].ends[2 * k],
                                             w[i].ends[2 * k + 1])) {
                                out->failures++;
                                snprintf(out->problem, sizeof(out->problem),
                                         "acknowledged edge %lu is missing",
                                         (unsigned long)w[i].edges[k]);
                        }
                }
                free(w[i].edges);
                free(w[i].ends);
        }
        if (rc == SOMBRA_OK && sombra_count(c, &out->nodes, &edges) == SOMBRA_OK) {
                out->edges = edges;
                if (edges != out->writes) {
                        out->failures++;
                        snprintf(out->problem, sizeof(out->problem),
                                 "%lu edges for %lu acknowledged", (unsigned long)edges,
                                 (unsigned long)out->writes);
                }
        }
        if (rc == SOMBRA_OK)
                sombra_conn_release(c);
}
