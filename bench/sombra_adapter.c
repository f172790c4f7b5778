/*
 * sombra_adapter.c - Sombra behind the benchmark's adapter (adapter.h).
 *
 * The database is `<dir>/bench.sombra` opened with the profile's preset
 * fields; each connection is a pooled sombra_conn. Inserts are batches (one
 * transaction each, acknowledged as durable as the profile promises); reads
 * are the public read calls on the calling thread. insert_edge_async keeps
 * a queue of submitted batches per connection, each untouched until its
 * ticket is collected, as sombra_batch_submit_async asks.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "adapter.h"

struct sombra_bench_db {
        sombra_db *db;
        const struct bench_schema *schema;
        char path[4096];
};

/* A submitted asynchronous transaction. */
struct inflight {
        sombra_batch *batch;
        uint64_t ticket, submitted_ns;
};

struct sombra_bench_conn {
        sombra_conn *c;
        sombra_batch *batch;
        const struct bench_schema *schema;
        struct inflight *queue; /* a ring of `window` slots, made at first use */
        unsigned window, head, count;
};

static int
s_open(const char *dir, const struct bench_profile *p, const struct bench_schema *schema,
       void **out)
{
        struct sombra_bench_db *bd = malloc(sizeof(*bd));
        struct sombra_config cfg;
        int rc;

        if (bd == NULL)
                return SOMBRA_ENOMEM;

        sombra_config_production(&cfg);
        cfg.sync_mode = p->mode;
        cfg.checksums = p->checksums;
        cfg.metrics = !p->no_metrics;
        cfg.max_connections = 128;
        /* long_write holds a transaction for seconds: let the engine cut it at half a second. */
        cfg.txn_timeout_ms = 500;
        snprintf(bd->path, sizeof(bd->path), "%s/bench.sombra", dir);
        bd->schema = schema;
        rc = sombra_open(bd->path, &cfg, &bd->db);
        if (rc != SOMBRA_OK) {
                free(bd);
                return rc;
        }
        *out = bd;
        return SOMBRA_OK;
}

static void
s_close(void *db)
{
        struct sombra_bench_db *bd = db;

        sombra_close(bd->db);
        free(bd);
}

static int
s_conn_open(void *db, void **out)
{
        struct sombra_bench_db *bd = db;
        struct sombra_bench_conn *bc = calloc(1, sizeof(*bc));
        int rc = bc == NULL ? SOMBRA_ENOMEM : sombra_conn_acquire(bd->db, &bc->c);

        if (rc == SOMBRA_OK)
                rc = sombra_batch_new(&bc->batch);
        if (rc != SOMBRA_OK) {
                if (bc != NULL && bc->c != NULL)
                        sombra_conn_release(bc->c);
                free(bc);
                return rc;
        }
        bc->schema = bd->schema;
        *out = bc;
        return SOMBRA_OK;
}

/* Waits for the oldest asynchronous transaction and frees its batch. */
static int
inflight_collect(struct sombra_bench_conn *bc, struct inflight *done)
{
        int rc;

        *done = bc->queue[bc->head];
        rc = sombra_wait(bc->c, done->ticket);
        sombra_batch_free(done->batch);
        bc->head = (bc->head + 1) % bc->window;
        bc->count--;
        return rc;
}

static void
s_conn_close(void *conn)
{
        struct sombra_bench_conn *bc = conn;
        struct inflight done;

        while (bc->count > 0)
                inflight_collect(bc, &done);
        free(bc->queue);
        sombra_batch_free(bc->batch);
        sombra_conn_release(bc->c);
        free(bc);
}

static int
s_insert_nodes(void *conn, const struct bench_node *nodes, size_t n, uint64_t *ids)
{
        struct sombra_bench_conn *bc = conn;
        const struct bench_schema *sc = bc->schema;
        int rc = sombra_batch_reset(bc->batch);

        for (size_t i = 0; i < n && rc == SOMBRA_OK; i++) {
                const struct bench_node *nd = &nodes[i];
                struct sombra_prop props[4] = {
                    {"name", {.type = SOMBRA_STRING, .u.s = {nd->name, strlen(nd->name)}}},
                    {sc->int_keys[0], {.type = SOMBRA_INT, .u.i = nd->ints[0]}},
                    {sc->int_keys[1], {.type = SOMBRA_INT, .u.i = nd->ints[1]}},
                    {sc->real_key, {.type = SOMBRA_DOUBLE, .u.d = nd->real}},
                };
                rc = sombra_batch_node_create(bc->batch, &nd->label, 1, props, nd->bare ? 1 : 4,
                                              NULL);
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
                return sombra_edge_create(bc->c, edges[0].src, edges[0].dst, edges[0].type, &since,
                                          1, NULL);
        }
        rc = sombra_batch_reset(bc->batch);
        for (size_t i = 0; i < n && rc == SOMBRA_OK; i++) {
                struct sombra_prop since = {"since", {.type = SOMBRA_INT, .u.i = edges[i].since}};
                rc = sombra_batch_edge_create(bc->batch, edges[i].src, edges[i].dst, edges[i].type,
                                              &since, 1, NULL);
        }
        return rc == SOMBRA_OK ? sombra_batch_submit(bc->c, bc->batch) : rc;
}

static uint64_t
now_ns(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int
s_insert_edge_async(void *conn, const struct bench_edge *e, unsigned window, uint64_t *acked_ns)
{
        struct sombra_bench_conn *bc = conn;
        struct sombra_prop since = {"since", {.type = SOMBRA_INT, .u.i = e->since}};
        struct inflight done = {0}, *slot;
        int rc = SOMBRA_OK;

        *acked_ns = 0;
        if (bc->queue == NULL) {
                bc->queue = calloc(window, sizeof(*bc->queue));
                if (bc->queue == NULL)
                        return SOMBRA_ENOMEM;
                bc->window = window;
        }
        if (bc->count == bc->window) {
                rc = inflight_collect(bc, &done);
                *acked_ns = now_ns() - done.submitted_ns;
        }
        slot = &bc->queue[(bc->head + bc->count) % bc->window];
        if (rc == SOMBRA_OK)
                rc = sombra_batch_new(&slot->batch);
        if (rc != SOMBRA_OK)
                return rc;
        rc = sombra_batch_edge_create(slot->batch, e->src, e->dst, e->type, &since, 1, NULL);
        slot->submitted_ns = now_ns();
        if (rc == SOMBRA_OK)
                rc = sombra_batch_submit_async(bc->c, slot->batch, false, &slot->ticket);
        if (rc != SOMBRA_OK) {
                sombra_batch_free(slot->batch);
                return rc;
        }
        bc->count++;
        return SOMBRA_OK;
}

static int
s_index_lookup(void *conn)
{
        struct sombra_bench_conn *bc = conn;
        int rc = sombra_index_create(bc->c, bc->schema->scan_label, bc->schema->int_keys[0]);
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
        const struct sombra_neighbor *nb;
        return sombra_neighbors(((struct sombra_bench_conn *)conn)->c, id, SOMBRA_OUT, NULL, 0, &nb,
                                n);
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
        struct sombra_bench_conn *bc = conn;
        const uint64_t *ids;
        return sombra_nodes_by_label(bc->c, bc->schema->scan_label, &ids, n);
}

static int
s_property_lookup(void *conn, int64_t value, size_t *n)
{
        struct sombra_bench_conn *bc = conn;
        const uint64_t *ids;
        struct sombra_value v = {.type = SOMBRA_INT, .u.i = value};
        return sombra_nodes_by_prop(bc->c, bc->schema->scan_label, bc->schema->int_keys[0], &v,
                                    &ids, n);
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
        int rc = sombra_stats(((struct sombra_bench_db *)db)->db, &st);

        if (rc == SOMBRA_OK) {
                *commits = st.group_commits;
                *syncs = st.group_syncs;
        }
        return rc;
}

static int
s_file_size(void *db, uint64_t *bytes, uint64_t *free_bytes)
{
        sombra_db *h = ((struct sombra_bench_db *)db)->db;
        struct sombra_stats st;
        int rc = sombra_checkpoint(h);

        if (rc == SOMBRA_OK)
                rc = sombra_stats(h, &st);
        if (rc == SOMBRA_OK) {
                *bytes = st.file_bytes;
                *free_bytes = (st.free_pages + st.retired_pages) * st.page_size;
        }
        return rc;
}

static int
s_compact_size(void *db, uint64_t *bytes)
{
        struct sombra_bench_db *bd = db;
        char path[sizeof(bd->path) + 16];
        struct stat st;
        int rc;

        snprintf(path, sizeof(path), "%s.compact", bd->path);
        unlink(path); /* a copy left by an interrupted run */
        rc = sombra_backup_compact(bd->db, path);
        if (rc == SOMBRA_OK)
                rc = stat(path, &st) == 0 ? SOMBRA_OK : SOMBRA_EIO;
        if (rc == SOMBRA_OK)
                *bytes = (uint64_t)st.st_size;
        unlink(path);
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
    .index_lookup = s_index_lookup,
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
    .insert_edge_async = s_insert_edge_async,
    .sync_counts = s_sync_counts,
    .file_size = s_file_size,
    .compact_size = s_compact_size,
};
