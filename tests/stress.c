/*
 * stress.c - the readers-against-writer scenario (see stress.h). Plain C and
 * pthreads, no Criterion, so that it also runs under ThreadSanitizer.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

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
