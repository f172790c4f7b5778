/*
 * api.c - the public functions on connections: writes, interactive
 * transactions, reads, asynchronous tickets, release, checkpoint, stats and
 * backup.
 *
 * Every call takes the connection's mutex for its whole length, so two
 * threads sharing a connection take turns; the mutex is the connection's own
 * and never contended between connections. A synchronous write is a request
 * on the caller's stack that points at the caller's own arguments: the call
 * does not return before the writer is done with them.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine.h"
#include "futex.h"
#include "status.h"
#include "store.h"

static int
conn_enter(struct sombra_conn *c)
{
        if (c == NULL)
                return SOMBRA_EINVAL;
        if (!__atomic_load_n(&c->in_use, __ATOMIC_ACQUIRE))
                return SOMBRA_ECLOSED;
        pthread_mutex_lock(&c->lock);
        /* Released by another thread while we waited for the lock? */
        if (!__atomic_load_n(&c->in_use, __ATOMIC_ACQUIRE)) {
                pthread_mutex_unlock(&c->lock);
                return SOMBRA_ECLOSED;
        }
        return SOMBRA_OK;
}

static void
conn_leave(struct sombra_conn *c)
{
        pthread_mutex_unlock(&c->lock);
}

/* An interactive txn that the writer rolled back on timeout ends here, for the caller. */
static void txn_forget(struct sombra_conn *c);

static bool
txn_lost(struct sombra_conn *c)
{
        if (!c->in_txn || !__atomic_load_n(&c->txn_lost, __ATOMIC_ACQUIRE))
                return false;
        txn_forget(c);
        return true;
}

/* The connection's interactive txn is over, whoever ended it. */
static void
txn_forget(struct sombra_conn *c)
{
        c->in_txn = false;
        __atomic_store_n(&c->txn_lost, 0, __ATOMIC_RELAXED);
}

static int
run_request(struct sombra_conn *c, struct request *req)
{
        int rc = engine_submit(c, req, true);

        if (rc != SOMBRA_OK)
                return rc;
        engine_wait(req);
        /* The writer rolled the txn back on timeout before it got this request. */
        if (req->status == SOMBRA_ETIMEDOUT && req->kind != REQ_WRITE && req->kind != REQ_RUN)
                txn_forget(c);
        return req->status;
}

/* Submits ops as one transaction, or into the open interactive one, and waits. */
int
engine_write(struct sombra_conn *c, struct write_op *ops, uint64_t *results, size_t n)
{
        struct request req = {.ops = ops, .results = results, .nops = n};
        int rc = conn_enter(c);

        if (rc != SOMBRA_OK)
                return rc;
        if (txn_lost(c)) {
                rc = SOMBRA_ETIMEDOUT;
        } else {
                req.kind = c->in_txn ? REQ_TXN_WRITE : REQ_WRITE;
                rc = run_request(c, &req);
        }
        conn_leave(c);
        return rc;
}

static int
write_one(struct sombra_conn *c, struct write_op *op, uint64_t *result)
{
        uint64_t made = 0;
        int rc = engine_write(c, op, &made, 1);

        if (rc == SOMBRA_OK && result != NULL)
                *result = made;
        return rc;
}

int
sombra_node_create(sombra_conn *conn, const char *const *labels, size_t nlabels,
                   const struct sombra_prop *props, size_t nprops, uint64_t *id)
{
        struct write_op op = {.kind = OP_NODE_CREATE,
                              .labels = labels,
                              .nlabels = nlabels,
                              .props = props,
                              .nprops = nprops};
        return write_one(conn, &op, id);
}

int
sombra_edge_create(sombra_conn *conn, uint64_t src, uint64_t dst, const char *type,
                   const struct sombra_prop *props, size_t nprops, uint64_t *id)
{
        struct write_op op = {.kind = OP_EDGE_CREATE,
                              .id = src,
                              .dst = dst,
                              .name = type,
                              .props = props,
                              .nprops = nprops};
        /* A batch reference means nothing outside a batch. */
        if ((src | dst) & (1ull << 63))
                return SOMBRA_ENOTFOUND;
        return write_one(conn, &op, id);
}

/* The writes that name one id, and maybe a name and a value. */
static int
write_simple(sombra_conn *conn, enum op_kind kind, uint64_t id, const char *name,
             const struct sombra_value *value)
{
        struct write_op op = {.kind = kind, .id = id, .name = name, .value = value};

        if (id & (1ull << 63))
                return SOMBRA_ENOTFOUND;
        return write_one(conn, &op, NULL);
}

int
sombra_node_delete(sombra_conn *conn, uint64_t id)
{
        return write_simple(conn, OP_NODE_DELETE, id, NULL, NULL);
}

int
sombra_node_set(sombra_conn *conn, uint64_t id, const char *key, const struct sombra_value *value)
{
        return write_simple(conn, OP_NODE_SET, id, key, value);
}

int
sombra_node_unset(sombra_conn *conn, uint64_t id, const char *key)
{
        return write_simple(conn, OP_NODE_UNSET, id, key, NULL);
}

int
sombra_node_label_add(sombra_conn *conn, uint64_t id, const char *label)
{
        return write_simple(conn, OP_LABEL_ADD, id, label, NULL);
}

int
sombra_node_label_remove(sombra_conn *conn, uint64_t id, const char *label)
{
        return write_simple(conn, OP_LABEL_REMOVE, id, label, NULL);
}

int
sombra_edge_delete(sombra_conn *conn, uint64_t id)
{
        return write_simple(conn, OP_EDGE_DELETE, id, NULL, NULL);
}

int
sombra_edge_set(sombra_conn *conn, uint64_t id, const char *key, const struct sombra_value *value)
{
        return write_simple(conn, OP_EDGE_SET, id, key, value);
}

int
sombra_edge_unset(sombra_conn *conn, uint64_t id, const char *key)
{
        return write_simple(conn, OP_EDGE_UNSET, id, key, NULL);
}

int
sombra_index_create(sombra_conn *conn, const char *label, const char *key)
{
        struct write_op op = {.kind = OP_INDEX_CREATE, .name = label, .key = key};
        return write_one(conn, &op, NULL);
}

int
sombra_index_drop(sombra_conn *conn, const char *label, const char *key)
{
        struct write_op op = {.kind = OP_INDEX_DROP, .name = label, .key = key};
        return write_one(conn, &op, NULL);
}

/* ---- interactive transactions ---- */

static int
txn_request(sombra_conn *conn, enum req_kind kind)
{
        struct request req = {.kind = kind};
        int rc = conn_enter(conn);

        if (rc != SOMBRA_OK)
                return rc;
        if (txn_lost(conn)) {
                rc = SOMBRA_ETIMEDOUT;
        } else if (kind == REQ_TXN_BEGIN && conn->in_txn) {
                rc = SOMBRA_EBUSY;
        } else if (kind != REQ_TXN_BEGIN && !conn->in_txn) {
                rc = SOMBRA_ENOTXN;
        } else {
                if (kind == REQ_TXN_BEGIN) /* a flag left from a txn that ended anyway */
                        txn_forget(conn);
                rc = run_request(conn, &req);
        }
        if (kind == REQ_TXN_BEGIN && rc == SOMBRA_OK)
                conn->in_txn = true;
        else if (kind != REQ_TXN_BEGIN && rc != SOMBRA_ENOTXN)
                txn_forget(conn); /* ended, whatever the outcome */
        conn_leave(conn);
        return rc;
}

int
sombra_txn_begin(sombra_conn *conn)
{
        return txn_request(conn, REQ_TXN_BEGIN);
}

int
sombra_txn_commit(sombra_conn *conn)
{
        return txn_request(conn, REQ_TXN_COMMIT);
}

int
sombra_txn_rollback(sombra_conn *conn)
{
        return txn_request(conn, REQ_TXN_ROLLBACK);
}

/* ---- reads ---- */

/* The arguments of every read, and where its answer goes. */
struct read_args {
        struct sombra_conn *c;
        uint64_t a, b;
        enum sombra_dir dir;
        const char *const *types;
        size_t ntypes;
        uint32_t depth;
        const char *s1, *s2;
        const struct sombra_value *v1, *v2;
        uint64_t *out;
};

/*
 * Runs fn against the connection's snapshot reader, or, inside an
 * interactive transaction, on the writer against the transaction's state.
 */
static int
read_run(struct sombra_conn *c, enum sombra_op_kind kind,
         int (*fn)(struct graph_reader *r, void *arg), struct read_args *a)
{
        struct request req = {.kind = REQ_TXN_READ, .read_fn = fn, .read_arg = a};
        uint64_t started_ns = 0;
        int rc = conn_enter(c);

        if (rc != SOMBRA_OK)
                return rc;
        if (c->db->cfg.metrics)
                started_ns = clock_now_ns();
        a->c = c;
        if (txn_lost(c))
                rc = SOMBRA_ETIMEDOUT;
        else if (c->in_txn)
                rc = run_request(c, &req);
        else
                rc = fn(c->reader, a);
        if (started_ns != 0) {
                /* The connection's own lines: no other connection's thread contends for them. */
                hist_record(&c->metrics.read_latency, clock_now_ns() - started_ns);
                metrics_add(&c->metrics.ops[kind], 1);
        }
        conn_leave(c);
        return rc;
}

static int
entity_publish(struct sombra_conn *c, int rc)
{
        struct graph_entity *e = &c->entity;

        if (rc != SOMBRA_OK)
                return rc;
        c->pub.id = e->id;
        c->pub.src = e->src;
        c->pub.dst = e->dst;
        c->pub.type = e->type;
        c->pub.nlabels = e->nlabels;
        c->pub.labels = e->labels;
        c->pub.nprops = e->nprops;
        c->pub.props = e->props;
        return SOMBRA_OK;
}

static int
read_node(struct graph_reader *r, void *arg)
{
        struct read_args *a = arg;
        return entity_publish(a->c, graph_node_get(r, a->a, &a->c->entity));
}

static int
read_edge(struct graph_reader *r, void *arg)
{
        struct read_args *a = arg;
        return entity_publish(a->c, graph_edge_get(r, a->a, &a->c->entity));
}

int
sombra_node_get(sombra_conn *conn, uint64_t id, const struct sombra_entity **out)
{
        struct read_args a = {.a = id};
        int rc = out == NULL ? SOMBRA_EINVAL : read_run(conn, SOMBRA_OP_NODE_GET, read_node, &a);

        if (rc == SOMBRA_OK)
                *out = &conn->pub;
        return rc;
}

int
sombra_edge_get(sombra_conn *conn, uint64_t id, const struct sombra_entity **out)
{
        struct read_args a = {.a = id};
        int rc = out == NULL ? SOMBRA_EINVAL : read_run(conn, SOMBRA_OP_EDGE_GET, read_edge, &a);

        if (rc == SOMBRA_OK)
                *out = &conn->pub;
        return rc;
}

static int
read_neighbors(struct graph_reader *r, void *arg)
{
        struct read_args *a = arg;
        struct sombra_conn *c = a->c;
        int rc = graph_neighbors(r, a->a, a->dir, a->types, a->ntypes, &c->adj);

        if (rc != SOMBRA_OK)
                return rc;
        if (c->adj.n > c->nbrs_cap) {
                struct sombra_neighbor *v = realloc(c->nbrs, c->adj.n * sizeof(*v));
                if (v == NULL)
                        return SOMBRA_ENOMEM;
                c->nbrs = v;
                c->nbrs_cap = c->adj.n;
        }
        for (size_t i = 0; i < c->adj.n; i++) {
                c->nbrs[i].edge = c->adj.v[i].edge;
                c->nbrs[i].node = c->adj.v[i].node;
                c->nbrs[i].type = graph_type_name(r, c->adj.v[i].type);
                c->nbrs[i].dir = c->adj.v[i].dir;
        }
        return SOMBRA_OK;
}

int
sombra_neighbors(sombra_conn *conn, uint64_t node, enum sombra_dir dir, const char *const *types,
                 size_t ntypes, const struct sombra_neighbor **out, size_t *n)
{
        struct read_args a = {.a = node, .dir = dir, .types = types, .ntypes = ntypes};
        int rc = out == NULL || n == NULL ? SOMBRA_EINVAL
                                          : read_run(conn, SOMBRA_OP_NEIGHBORS, read_neighbors, &a);

        if (rc == SOMBRA_OK) {
                *out = conn->nbrs;
                *n = conn->adj.n;
        }
        return rc;
}

static int
read_degree(struct graph_reader *r, void *arg)
{
        struct read_args *a = arg;
        return graph_degree(r, a->a, a->dir, a->types, a->ntypes, a->out);
}

int
sombra_degree(sombra_conn *conn, uint64_t node, enum sombra_dir dir, const char *const *types,
              size_t ntypes, uint64_t *degree)
{
        struct read_args a = {
            .a = node, .dir = dir, .types = types, .ntypes = ntypes, .out = degree};
        return degree == NULL ? SOMBRA_EINVAL : read_run(conn, SOMBRA_OP_DEGREE, read_degree, &a);
}

static int
read_count(struct graph_reader *r, void *arg)
{
        struct read_args *a = arg;
        return graph_counts(r, &a->a, &a->b);
}

int
sombra_count(sombra_conn *conn, uint64_t *nodes, uint64_t *edges)
{
        struct read_args a = {0};
        int rc = read_run(conn, SOMBRA_OP_COUNT, read_count, &a);

        if (rc == SOMBRA_OK && nodes != NULL)
                *nodes = a.a;
        if (rc == SOMBRA_OK && edges != NULL)
                *edges = a.b;
        return rc;
}

static int
read_two_hop(struct graph_reader *r, void *arg)
{
        struct read_args *a = arg;
        return graph_two_hop_count(r, a->a, a->dir, a->types, a->ntypes, a->out);
}

int
sombra_two_hop_count(sombra_conn *conn, uint64_t node, enum sombra_dir dir,
                     const char *const *types, size_t ntypes, uint64_t *count)
{
        struct read_args a = {
            .a = node, .dir = dir, .types = types, .ntypes = ntypes, .out = count};
        return count == NULL ? SOMBRA_EINVAL
                             : read_run(conn, SOMBRA_OP_TWO_HOP_COUNT, read_two_hop, &a);
}

/* The reads that answer with a list of ids, kept in the connection. */
enum id_query { IDS_LABEL, IDS_PROP, IDS_RANGE, IDS_BFS, IDS_PATH, IDS_NODES, IDS_EDGES };

struct ids_args {
        struct read_args base;
        enum id_query q;
        enum sombra_op_kind kind;
};

static int
read_ids(struct graph_reader *r, void *arg)
{
        struct ids_args *x = arg;
        struct read_args *a = &x->base;
        struct graph_ids *out = &a->c->ids;

        switch (x->q) {
        case IDS_LABEL:
                return graph_nodes_by_label(r, a->s1, out);
        case IDS_PROP:
                return graph_nodes_by_prop(r, a->s1, a->s2, a->v1, out);
        case IDS_RANGE:
                return graph_nodes_by_range(r, a->s1, a->s2, a->v1, a->v2, out);
        case IDS_BFS:
                return graph_bfs(r, a->a, a->dir, a->types, a->ntypes, a->depth, out);
        case IDS_NODES:
        case IDS_EDGES:
                return graph_ids_after(r, x->q == IDS_EDGES, a->a, a->b, out);
        default:
                return graph_shortest_path(r, a->a, a->b, a->dir, a->types, a->ntypes, out);
        }
}

static int
ids_query(sombra_conn *conn, struct ids_args *x, const uint64_t **ids, size_t *n)
{
        int rc =
            ids == NULL || n == NULL ? SOMBRA_EINVAL : read_run(conn, x->kind, read_ids, &x->base);

        if (rc == SOMBRA_OK) {
                *ids = conn->ids.v;
                *n = conn->ids.n;
        }
        return rc;
}

int
sombra_nodes_by_label(sombra_conn *conn, const char *label, const uint64_t **ids, size_t *n)
{
        struct ids_args x = {
            .base = {.s1 = label}, .q = IDS_LABEL, .kind = SOMBRA_OP_NODES_BY_LABEL};
        return ids_query(conn, &x, ids, n);
}

int
sombra_nodes_by_prop(sombra_conn *conn, const char *label, const char *key,
                     const struct sombra_value *value, const uint64_t **ids, size_t *n)
{
        struct ids_args x = {.base = {.s1 = label, .s2 = key, .v1 = value},
                             .q = IDS_PROP,
                             .kind = SOMBRA_OP_NODES_BY_PROP};
        return ids_query(conn, &x, ids, n);
}

int
sombra_nodes_by_range(sombra_conn *conn, const char *label, const char *key,
                      const struct sombra_value *lo, const struct sombra_value *hi,
                      const uint64_t **ids, size_t *n)
{
        struct ids_args x = {.base = {.s1 = label, .s2 = key, .v1 = lo, .v2 = hi},
                             .q = IDS_RANGE,
                             .kind = SOMBRA_OP_NODES_BY_RANGE};
        return ids_query(conn, &x, ids, n);
}

int
sombra_bfs(sombra_conn *conn, uint64_t start, enum sombra_dir dir, const char *const *types,
           size_t ntypes, uint32_t max_depth, const uint64_t **ids, size_t *n)
{
        struct ids_args x = {
            .base = {.a = start, .dir = dir, .types = types, .ntypes = ntypes, .depth = max_depth},
            .q = IDS_BFS,
            .kind = SOMBRA_OP_BFS};
        return ids_query(conn, &x, ids, n);
}

int
sombra_shortest_path(sombra_conn *conn, uint64_t from, uint64_t to, enum sombra_dir dir,
                     const char *const *types, size_t ntypes, const uint64_t **ids, size_t *n)
{
        struct ids_args x = {
            .base = {.a = from, .b = to, .dir = dir, .types = types, .ntypes = ntypes},
            .q = IDS_PATH,
            .kind = SOMBRA_OP_SHORTEST_PATH};
        return ids_query(conn, &x, ids, n);
}

int
sombra_node_ids(sombra_conn *conn, uint64_t after, size_t max, const uint64_t **ids, size_t *n)
{
        struct ids_args x = {.base = {.a = after, .b = max}, .q = IDS_NODES};
        return max == 0 ? SOMBRA_EINVAL : ids_query(conn, &x, ids, n);
}

int
sombra_edge_ids(sombra_conn *conn, uint64_t after, size_t max, const uint64_t **ids, size_t *n)
{
        struct ids_args x = {.base = {.a = after, .b = max}, .q = IDS_EDGES};
        return max == 0 ? SOMBRA_EINVAL : ids_query(conn, &x, ids, n);
}

int
sombra_read_begin(sombra_conn *conn)
{
        int rc = conn_enter(conn);

        if (rc != SOMBRA_OK)
                return rc;
        if (!conn->in_txn) {
                rc = graph_read_begin(conn->reader);
                conn->read_depth += rc == SOMBRA_OK;
        }
        conn_leave(conn);
        return rc;
}

int
sombra_read_end(sombra_conn *conn)
{
        int rc = conn_enter(conn);

        if (rc != SOMBRA_OK)
                return rc;
        if (conn->read_depth == 0) {
                rc = conn->in_txn ? SOMBRA_OK : SOMBRA_ENOTXN;
        } else {
                conn->read_depth--;
                rc = graph_read_end(conn->reader);
        }
        conn_leave(conn);
        return rc;
}

/* ---- asynchronous tickets ---- */

/*
 * A ticket is the submission's sequence number on its connection, above the
 * connection's index in the pool: each connection counts from 0, and without
 * the index a ticket given to another connection's sombra_wait would name
 * that connection's submission. 13 bits hold every index config_check allows.
 */
#define TICKET_CONN_BITS 13

static uint64_t
conn_index(const struct sombra_conn *c)
{
        return (uint64_t)(c - c->db->conns);
}

/*
 * A connection's asynchronous slots, made at its first asynchronous
 * submission rather than at open: a pool of a hundred connections would
 * otherwise zero megabytes that most never use, and open would wait for it.
 */
static int
async_slots_make(struct sombra_conn *c)
{
        c->async = calloc(c->db->cfg.ring_capacity, sizeof(*c->async));
        if (c->async == NULL)
                return SOMBRA_ENOMEM;
        c->async_cap = c->db->cfg.ring_capacity;
        return SOMBRA_OK;
}

int
engine_submit_async(struct sombra_conn *c, struct write_op *ops, uint64_t *results, size_t n,
                    bool nonblocking, struct batch_status *batch, uint64_t *ticket)
{
        struct request *req;
        uint64_t t;
        int rc = conn_enter(c);

        if (rc != SOMBRA_OK)
                return rc;
        if (c->in_txn) {
                conn_leave(c);
                return SOMBRA_EBUSY; /* the transaction's writes are synchronous */
        }
        if (c->async == NULL && async_slots_make(c) != SOMBRA_OK) {
                conn_leave(c);
                return SOMBRA_ENOMEM;
        }
        /* A free slot: tickets are handed out in order, so look from the last one. */
        for (t = c->async_next; t < c->async_next + c->async_cap; t++)
                if (c->async[t % c->async_cap].conn == NULL)
                        break;
        if (t == c->async_next + c->async_cap) {
                conn_leave(c);
                return SOMBRA_EAGAIN; /* every slot in flight or not yet collected */
        }
        req = &c->async[t % c->async_cap];
        *req = (struct request){.kind = REQ_WRITE,
                                .ops = ops,
                                .results = results,
                                .nops = n,
                                .ticket = t,
                                .batch = batch};
        rc = engine_submit(c, req, !nonblocking);
        if (rc == SOMBRA_OK) {
                /* No collector can run before this: collecting takes the connection's lock. */
                __atomic_add_fetch(&batch->in_flight, 1, __ATOMIC_RELEASE);
                c->async_next = t + 1;
                *ticket = t << TICKET_CONN_BITS | conn_index(c);
        } else {
                req->conn = NULL;
        }
        conn_leave(c);
        return rc;
}

static struct request *
ticket_find(struct sombra_conn *c, uint64_t ticket)
{
        uint64_t seq = ticket >> TICKET_CONN_BITS;
        struct request *req;

        if ((ticket & ((1u << TICKET_CONN_BITS) - 1)) != conn_index(c) || c->async == NULL)
                return NULL;
        req = &c->async[seq % c->async_cap];
        return req->conn != NULL && req->ticket == seq ? req : NULL;
}

/* A finished ticket: its status, the batch told the outcome (and free again), the slot freed. */
static int
ticket_collect(struct request *req)
{
        __atomic_store_n(&req->batch->applied, req->status == SOMBRA_OK, __ATOMIC_RELAXED);
        __atomic_sub_fetch(&req->batch->in_flight, 1, __ATOMIC_RELEASE);
        req->conn = NULL;
        return req->status;
}

int
sombra_wait(sombra_conn *conn, uint64_t ticket)
{
        struct request *req;
        int rc = conn_enter(conn);

        if (rc != SOMBRA_OK)
                return rc;
        req = ticket_find(conn, ticket);
        if (req == NULL) {
                rc = SOMBRA_EINVAL;
        } else {
                engine_wait(req);
                rc = ticket_collect(req);
        }
        conn_leave(conn);
        return rc;
}

int
sombra_poll(sombra_conn *conn, uint64_t ticket, bool *done)
{
        struct request *req;
        int rc = done == NULL ? SOMBRA_EINVAL : conn_enter(conn);

        if (rc != SOMBRA_OK)
                return rc;
        req = ticket_find(conn, ticket);
        if (req == NULL) {
                rc = SOMBRA_EINVAL;
        } else {
                *done = __atomic_load_n(&req->done, __ATOMIC_ACQUIRE) == FUTEX_ONCE_DONE;
                rc = *done ? ticket_collect(req) : SOMBRA_OK;
        }
        conn_leave(conn);
        return rc;
}

/* ---- release ---- */

int
sombra_conn_release(sombra_conn *conn)
{
        struct sombra_db *db;
        int rc = conn_enter(conn);

        if (rc != SOMBRA_OK)
                return rc;
        db = conn->db;
        /* Counted until its last touch of db; never refused, as the connection it holds keeps
         * any close from freeing. */
        engine_hold(db);
        if (conn->in_txn && !txn_lost(conn)) {
                struct request req = {.kind = REQ_TXN_ROLLBACK};
                (void)run_request(conn, &req);
        }
        txn_forget(conn);
        /* Collected, not just waited for: their batches may be changed and freed again. */
        for (uint32_t i = 0; i < conn->async_cap; i++) {
                if (conn->async[i].conn == NULL)
                        continue;
                engine_wait(&conn->async[i]);
                (void)ticket_collect(&conn->async[i]);
        }
        while (conn->read_depth > 0) {
                graph_read_end(conn->reader);
                conn->read_depth--;
        }
        __atomic_store_n(&conn->in_use, 0, __ATOMIC_RELEASE);
        __atomic_sub_fetch(&db->acquired, 1, __ATOMIC_RELAXED);
        conn_leave(conn);
        __atomic_add_fetch(&db->pool_seq, 1, __ATOMIC_RELEASE);
        futex_wake(&db->pool_seq, INT32_MAX);
        engine_leave(db);
        return SOMBRA_OK;
}

/* ---- maintenance, through the engine's own connection ---- */

static int
run_on_writer(struct sombra_db *db, int (*fn)(struct graph_reader *r, void *arg), void *arg)
{
        struct sombra_conn *c = engine_conn(db);
        struct request req = {.kind = REQ_RUN, .read_fn = fn, .read_arg = arg};
        int rc;

        pthread_mutex_lock(&c->lock);
        rc = engine_conn_ready(db, c) ? SOMBRA_OK : engine_conn_prepare(db, c);
        if (rc == SOMBRA_OK)
                rc = run_request(c, &req);
        pthread_mutex_unlock(&c->lock);
        return rc;
}

/* run_on_writer as a db-level call of its own, which sombra_close waits to see end. */
static int
run_counted(struct sombra_db *db, int (*fn)(struct graph_reader *r, void *arg), void *arg)
{
        int rc = engine_enter(db);

        if (rc != SOMBRA_OK)
                return rc;
        rc = run_on_writer(db, fn, arg);
        engine_leave(db);
        return rc;
}

static int
do_checkpoint(struct graph_reader *r, void *arg)
{
        struct sombra_db *db = arg;
        (void)r;
        return graph_checkpoint(db->g);
}

int
sombra_checkpoint(sombra_db *db)
{
        return db == NULL ? SOMBRA_EINVAL : run_counted(db, do_checkpoint, db);
}

struct stats_args {
        struct sombra_db *db;
        struct sombra_stats *out;
};

static int
do_stats(struct graph_reader *r, void *arg)
{
        struct stats_args *a = arg;
        struct store *s = graph_store(a->db->g);
        struct store_stats ss;
        struct pager_stats ps;

        store_stats(s, &ss);
        pager_stats(store_pager(s), &ps);
        graph_counts(r, &a->out->nodes, &a->out->edges);
        a->out->commits = ss.commits;
        a->out->rollbacks = ss.rollbacks;
        a->out->checkpoints = ss.checkpoints;
        a->out->wal_bytes = ss.wal_bytes;
        a->out->wal_syncs = ss.wal_syncs;
        a->out->written_lsn = ss.written_lsn;
        a->out->durable_lsn = ss.durable_lsn;
        a->out->file_bytes = ss.file_bytes;
        a->out->wal_size = ss.wal_size;
        a->out->page_size = store_page_size(s);
        a->out->pages = ps.npages;
        a->out->free_pages = ps.free_pages;
        a->out->retired_pages = ps.retired_pages;
        a->out->cached_pages = ps.cached;
        a->out->dirty_pages = ps.dirty;
        a->out->cache_hits = ps.hits;
        a->out->cache_misses = ps.misses;
        a->out->cache_evictions = ps.evictions;
        a->out->group_syncs = __atomic_load_n(&a->db->committer.syncs, __ATOMIC_RELAXED);
        a->out->group_commits = __atomic_load_n(&a->db->committer.synced_commits, __ATOMIC_RELAXED);
        a->out->max_group = __atomic_load_n(&a->db->committer.max_group, __ATOMIC_RELAXED);
        /* This runs on the writer thread: its own counters need no atomics. */
        a->out->requests = a->db->counters.requests;
        a->out->writer_groups = a->db->counters.groups;
        a->out->txn_timeouts = a->db->counters.txn_timeouts;
        a->out->acquired = __atomic_load_n(&a->db->acquired, __ATOMIC_RELAXED);
        a->out->publisher_groups = __atomic_load_n(&a->db->publisher.groups, __ATOMIC_RELAXED);
        a->out->unpublished_groups = a->db->counters.unpublished;
        a->out->recovered_lsn = ss.adopted;
        a->out->recovered_commits = ss.replayed;
        a->out->recovery_log_bytes = ss.scanned;
        return SOMBRA_OK;
}

int
sombra_stats_sized(sombra_db *db, struct sombra_stats *out, size_t size)
{
        struct sombra_stats st = {0};
        struct stats_args a = {db, &st};
        int rc;

        if (db == NULL || out == NULL || size < SOMBRA_STATS_SIZE_MIN)
                return SOMBRA_EINVAL;
        rc = run_counted(db, do_stats, &a);
        if (rc == SOMBRA_OK)
                status_copy_sized(out, size, &st, sizeof(st)); /* left alone on error */
        return rc;
}

struct metrics_args {
        struct sombra_db *db;
        struct sombra_metrics *out;
        struct hist merged; /* scratch, too large for the writer's stack to hold comfortably */
};

static void
distribution_of(struct hist *scratch, const struct hist *live, struct sombra_distribution *out)
{
        memset(scratch, 0, sizeof(*scratch));
        hist_merge(scratch, live);
        hist_distribution(scratch, out);
}

/*
 * Commits per second over the window since the previous read at least a
 * second ago; a read sooner reports that closed window again, except while
 * none has closed yet (the rate since open).
 */
static double
commits_per_second(struct sombra_db *db, uint64_t commits, uint64_t now)
{
        uint64_t elapsed = now - db->counters.window_start_ns;

        if (elapsed == 0 || (elapsed < 1000000000u && db->counters.window_start_ns != db->open_ns))
                return db->counters.commits_per_second;
        db->counters.commits_per_second =
            (double)(commits - db->counters.window_commits) * 1e9 / (double)elapsed;
        if (elapsed >= 1000000000u) {
                db->counters.window_start_ns = now;
                db->counters.window_commits = commits;
        }
        return db->counters.commits_per_second;
}

/* On the writer: its counters and the store's need no atomics; the rest are merged. */
static int
do_metrics(struct graph_reader *r, void *arg)
{
        struct metrics_args *a = arg;
        struct sombra_db *db = a->db;
        struct sombra_metrics *m = a->out;
        struct store *s = graph_store(db->g);
        uint32_t page_size = store_page_size(s);
        uint64_t now = clock_now_ns();
        struct store_stats ss;
        struct pager_stats ps;

        (void)r;
        store_stats(s, &ss);
        pager_stats(store_pager(s), &ps);
        m->uptime_seconds = (double)(now - db->open_ns) * 1e-9;
        m->commits = ss.commits;
        m->rollbacks = ss.rollbacks;
        m->commits_per_second = commits_per_second(db, ss.commits, now);
        m->wal_bytes = ss.wal_bytes;
        m->fsyncs = ss.wal_syncs;
        m->checkpoints = ss.checkpoints;
        m->checkpoint_seconds = (double)ss.checkpoint_ns * 1e-9;
        m->checkpoint_max_seconds = (double)ss.checkpoint_max_ns * 1e-9;
        m->cache_hits = ps.hits;
        m->cache_misses = ps.misses;
        m->cache_evictions = ps.evictions;
        m->cache_hit_rate =
            ps.hits + ps.misses ? (double)ps.hits / (double)(ps.hits + ps.misses) : 0.0;
        m->pages_read = ps.pages_read;
        m->pages_written = ps.pages_written;
        m->bytes_read = ps.pages_read * page_size;
        m->bytes_written = ps.pages_written * page_size + ss.wal_bytes;
        memcpy(m->ops, db->counters.ops, sizeof(m->ops));
        memset(&a->merged, 0, sizeof(a->merged));
        for (uint32_t i = 0; i <= db->nconns; i++) {
                struct sombra_conn *c = &db->conns[i];
                for (int k = 0; k < SOMBRA_OP_KINDS; k++)
                        m->ops[k] += __atomic_load_n(&c->metrics.ops[k], __ATOMIC_RELAXED);
                m->backpressure_waits +=
                    __atomic_load_n(&c->metrics.backpressure_waits, __ATOMIC_RELAXED);
                if (engine_conn_ready(db, c))
                        m->ring_depth += ring_depth(&c->ring);
                hist_merge(&a->merged, &c->metrics.read_latency);
        }
        hist_distribution(&a->merged, &m->read_latency_ns);
        distribution_of(&a->merged, &db->commit_latency, &m->commit_latency_ns);
        distribution_of(&a->merged, &db->writer_group, &m->writer_group);
        distribution_of(&a->merged, &db->committer.sync_latency, &m->fsync_latency_ns);
        distribution_of(&a->merged, &db->committer.sync_group, &m->commits_per_fsync);
        return SOMBRA_OK;
}

int
sombra_metrics_sized(sombra_db *db, struct sombra_metrics *out, size_t size)
{
        struct metrics_args *a;
        struct sombra_metrics m = {0};
        int rc;

        if (db == NULL || out == NULL || size < SOMBRA_METRICS_SIZE_MIN)
                return SOMBRA_EINVAL;
        a = malloc(sizeof(*a));
        if (a == NULL)
                return SOMBRA_ENOMEM;
        a->db = db;
        a->out = &m;
        rc = run_counted(db, do_metrics, a);
        free(a);
        if (rc == SOMBRA_OK)
                status_copy_sized(out, size, &m, sizeof(m));
        return rc;
}

struct verify_args {
        struct sombra_db *db;
        char *problem;
        size_t len;
};

static int
do_verify(struct graph_reader *r, void *arg)
{
        struct verify_args *a = arg;
        struct graph_verify_report report;
        int rc = graph_verify(a->db->g, &report);

        (void)r;
        if (rc != SOMBRA_OK && a->problem != NULL && a->len > 0)
                snprintf(a->problem, a->len, "%s", report.problem);
        return rc;
}

int
sombra_verify(sombra_db *db, char *problem, size_t problem_len)
{
        struct verify_args a = {db, problem, problem_len};

        if (db == NULL)
                return SOMBRA_EINVAL;
        if (problem != NULL && problem_len > 0)
                problem[0] = '\0';
        return run_counted(db, do_verify, &a);
}

/* ---- backup ---- */

#define BACKUP_CHUNK (1u << 20)

struct backup_args {
        struct sombra_db *db;
        bool end;       /* release the hold instead of taking it */
        uint64_t bytes; /* the image's length, once held */
};

static int
do_backup_hold(struct graph_reader *r, void *arg)
{
        struct backup_args *a = arg;
        struct store *s = graph_store(a->db->g);

        (void)r;
        if (!a->end)
                return store_backup_begin(s, &a->bytes);
        store_backup_end(s);
        return SOMBRA_OK;
}

/* Copies the held image to dest, chunk by chunk. */
static int
backup_copy(struct store *s, uint64_t bytes, struct io_file *dest)
{
        uint8_t *chunk = malloc(BACKUP_CHUNK);
        int rc = chunk == NULL ? SOMBRA_ENOMEM : SOMBRA_OK;

        for (uint64_t off = 0; rc == SOMBRA_OK && off < bytes; off += BACKUP_CHUNK) {
                size_t len = bytes - off < BACKUP_CHUNK ? (size_t)(bytes - off) : BACKUP_CHUNK;
                rc = store_backup_read(s, chunk, len, off);
                if (rc == SOMBRA_OK)
                        rc = io_write(dest, chunk, len, off);
        }
        free(chunk);
        return rc;
}

/*
 * sombra_backup and sombra_backup_compact: the same hold, file and clean-up
 * around either copy. The new file shares the database's fault state (tests).
 */
static int
backup(sombra_db *db, const char *dest_path, bool compact)
{
        struct backup_args hold = {.db = db};
        struct store *s;
        struct io_file dest = {.fd = -1, .kind = IO_FILE_COPY};
        int rc;

        if (db == NULL || dest_path == NULL || dest_path[0] == '\0')
                return SOMBRA_EINVAL;
        /* One call from the hold to its release: the copy reads the file outside the writer. */
        rc = engine_enter(db);
        if (rc != SOMBRA_OK)
                return rc;
        s = graph_store(db->g);
        dest.faults = store_faults(s);
        dest.fd = open(dest_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (dest.fd < 0) {
                rc = errno == EEXIST ? SOMBRA_EEXIST : io_status_from_errno(errno);
                goto label_done;
        }
        rc = run_on_writer(db, do_backup_hold, &hold);
        if (rc == SOMBRA_OK) {
                rc = compact ? store_backup_compact(s, &dest) : backup_copy(s, hold.bytes, &dest);
                hold.end = true;
                (void)run_on_writer(db, do_backup_hold, &hold);
        }
        if (rc == SOMBRA_OK)
                rc = io_sync(&dest);
        if (rc == SOMBRA_OK)
                rc = io_sync_dir_of(dest_path, dest.faults);
        close(dest.fd);
        if (rc != SOMBRA_OK)
                unlink(dest_path);
label_done:
        engine_leave(db);
        return rc;
}

int
sombra_backup(sombra_db *db, const char *dest_path)
{
        return backup(db, dest_path, false);
}

int
sombra_backup_compact(sombra_db *db, const char *dest_path)
{
        return backup(db, dest_path, true);
}
