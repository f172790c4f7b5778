/*
 * query.c - the read side of the graph: readers and every read operation.
 *
 * A graph_reader reads one state of the database:
 *   - the writer's own reader (graph_writer_reader) reads the open
 *     transaction's state, or the last commit, through the writer's pager,
 *     and resolves names through the writer's in-memory dict;
 *   - any other reader (graph_reader_open) reads a published snapshot through
 *     a store_reader: its own pager handle on the file map, names resolved in
 *     the snapshot's TREE_NAMES. It shares nothing mutable with the writer,
 *     so it runs on its own thread while the writer commits.
 * Every read operation pins one state from its first page to its last
 * (read_enter / read_exit); graph_read_begin pins one across many operations.
 * Id-to-name lookups go to the dict's chunked array, which only grows: a
 * name in a published state was added before that state was published.
 */
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "graph.h"
#include "store.h"
#include "dict.h"
#include "idset.h"

static int
read_enter(struct graph_reader *r)
{
        struct store *s = graph_store(r->g);

        if (r->sr != NULL) {
                r->st = store_reader_begin(r->sr);
                return r->st != NULL ? SOMBRA_OK : SOMBRA_EFAILED;
        }
        r->st = store_in_txn(s) ? store_txn_state(s) : store_committed(s);
        return SOMBRA_OK;
}

static void
read_exit(struct graph_reader *r)
{
        if (r->sr != NULL)
                store_reader_end(r->sr);
}

int
graph_reader_open(struct graph *g, struct graph_reader **out)
{
        struct graph_reader *r;
        int rc;

        if (g == NULL || out == NULL)
                return SOMBRA_EINVAL;
        r = calloc(1, sizeof(*r));
        if (r == NULL)
                return SOMBRA_ENOMEM;
        r->g = g;
        rc = store_reader_open(graph_store(g), &r->sr);
        if (rc != SOMBRA_OK) {
                free(r);
                return rc;
        }
        r->pager = store_reader_pager(r->sr);
        *out = r;
        return SOMBRA_OK;
}

void
graph_reader_release(struct graph_reader *r)
{
        buf_free(&r->val);
        buf_free(&r->raw);
        rec_free(&r->rec);
        graph_adjvec_free(&r->adj);
        idset_free(&r->names);
}

void
graph_reader_close(struct graph_reader *r)
{
        if (r == NULL || r->sr == NULL)
                return; /* the writer's reader lives and dies with its graph */
        store_reader_close(r->sr);
        graph_reader_release(r);
        free(r);
}

int
graph_read_begin(struct graph_reader *r)
{
        if (r == NULL)
                return SOMBRA_EINVAL;
        if (r->sr == NULL)
                return SOMBRA_OK; /* the writer's state only changes under its own hand */
        return store_reader_begin(r->sr) != NULL ? SOMBRA_OK : SOMBRA_EFAILED;
}

int
graph_read_end(struct graph_reader *r)
{
        if (r == NULL)
                return SOMBRA_EINVAL;
        if (r->sr != NULL)
                store_reader_end(r->sr);
        return SOMBRA_OK;
}

/* ---- lookups inside a pinned state ---- */

static int
tree_get(struct graph_reader *r, enum store_tree t, const void *key, size_t klen, struct buf *val)
{
        return btree_get(r->pager, r->st->roots[t], key, klen, val);
}

static void
tree_cursor(struct graph_reader *r, enum store_tree t, struct btree_cursor *c)
{
        btree_cursor_init(c, r->pager, r->st->roots[t]);
}

/* Whether the file's keys are compact (record.h): fixed for the store's life. */
static bool
compact_keys(const struct graph_reader *r)
{
        return store_compact_keys(graph_store(r->g));
}

/* A name's id as of the reader's state; SOMBRA_ENOTFOUND for a name never used there. */
static int
resolve(struct graph_reader *r, const char *name, uint32_t *id)
{
        uint64_t hash, cached;
        size_t len;
        int rc = dict_name_check(name, &len);

        if (rc != SOMBRA_OK)
                return rc;
        if (r->sr == NULL)
                return dict_lookup(graph_dict(r->g), name, len, id);
        /*
         * A name's id never changes, so a reader may remember it. If it was
         * learnt in a newer state, an older one simply has nothing under it.
         */
        hash = XXH3_64bits(name, len) & ~(1ull << 63); /* never IDSET_EMPTY */
        if (idset_get(&r->names, hash, &cached)) {
                const struct dict_name *n = dict_get(graph_dict(r->g), (uint32_t)cached);
                if (n != NULL && n->len == len && memcmp(n->text, name, len) == 0) {
                        *id = (uint32_t)cached;
                        return SOMBRA_OK;
                }
        }
        rc = tree_get(r, TREE_NAMES, name, len, &r->val);
        if (rc == SOMBRA_OK && r->val.len != 4)
                rc = SOMBRA_ECORRUPT;
        if (rc == SOMBRA_OK) {
                *id = get_be32(r->val.data);
                (void)idset_put(&r->names, hash, *id, NULL); /* a cache: failing to fill is fine */
        }
        return rc;
}

/* SOMBRA_OK when node id is in the reader's state, SOMBRA_ENOTFOUND when not. */
static int
node_present(struct graph_reader *r, uint64_t id)
{
        uint8_t k[REC_ID_MAX];

        return tree_get(r, TREE_NODES, k, rec_id(k, compact_keys(r), id), NULL);
}

static int
record_load(struct graph_reader *r, enum store_tree t, uint64_t id, struct buf *raw,
            struct rec *rec)
{
        uint8_t k[REC_ID_MAX];
        int rc = tree_get(r, t, k, rec_id(k, compact_keys(r), id), raw);

        if (rc == SOMBRA_OK)
                rc = t == TREE_NODES ? rec_decode_node(rec, raw->data, raw->len)
                                     : rec_decode_edge(rec, raw->data, raw->len);
        return rc;
}

int
graph_read_record(struct graph_reader *r, bool edge, uint64_t id, struct buf *raw, struct rec *rec)
{
        int rc = read_enter(r);
        if (rc == SOMBRA_OK)
                rc = record_load(r, edge ? TREE_EDGES : TREE_NODES, id, raw, rec);
        read_exit(r);
        return rc;
}

/* Appends the adjacency entries under one key prefix (node | dir [| type]). */
static int
adj_scan(struct graph_reader *r, const uint8_t *prefix, size_t plen, struct graph_adjvec *out)
{
        bool compact = compact_keys(r);
        struct btree_cursor c;
        int rc;

        tree_cursor(r, TREE_ADJ, &c);
        rc = btree_cursor_seek(&c, prefix, plen);
        while (rc == SOMBRA_OK && btree_cursor_valid(&c)) {
                const uint8_t *k;
                size_t klen;
                struct rec_adj e;
                struct graph_adj a;
                btree_cursor_key(&c, &k, &klen);
                if (klen < plen || memcmp(k, prefix, plen) != 0)
                        break;
                rc = rec_adj_key_decode(k, klen, compact, &e);
                if (rc == SOMBRA_OK)
                        rc = btree_cursor_value(&c, &r->val);
                if (rc == SOMBRA_OK)
                        rc = rec_id_decode(r->val.data, r->val.len, compact, &a.node);
                if (rc != SOMBRA_OK)
                        break;
                a.type = e.type;
                a.edge = e.edge;
                a.dir = e.dir == 0 ? SOMBRA_OUT : SOMBRA_IN;
                rc = graph_adjvec_push(out, &a);
                if (rc == SOMBRA_OK)
                        rc = btree_cursor_next(&c);
        }
        btree_cursor_close(&c);
        return rc;
}

static int
adj_collect(struct graph_reader *r, uint64_t node, enum sombra_dir dir, const uint32_t *types,
            size_t ntypes, bool filtered, struct graph_adjvec *out)
{
        bool compact = compact_keys(r);
        uint8_t prefix[REC_ADJ_KEY_MAX];
        int rc = SOMBRA_OK;

        out->n = 0;
        for (uint8_t d = 0; d <= 1 && rc == SOMBRA_OK; d++) {
                if (!(dir & (d == 0 ? SOMBRA_OUT : SOMBRA_IN)))
                        continue;
                if (!filtered) {
                        rc = adj_scan(r, prefix, rec_adj_prefix(prefix, compact, node, d, NULL),
                                      out);
                        continue;
                }
                for (size_t i = 0; i < ntypes && rc == SOMBRA_OK; i++)
                        rc = adj_scan(r, prefix,
                                      rec_adj_prefix(prefix, compact, node, d, &types[i]), out);
        }
        return rc;
}

int
graph_read_adjacent(struct graph_reader *r, uint64_t node, struct graph_adjvec *out)
{
        int rc = read_enter(r);
        if (rc == SOMBRA_OK)
                rc = adj_collect(r, node, SOMBRA_BOTH, NULL, 0, false, out);
        read_exit(r);
        return rc;
}

static int
label_collect(struct graph_reader *r, uint32_t label, struct graph_ids *out)
{
        bool compact = compact_keys(r);
        struct btree_cursor c;
        uint8_t lk[REC_LABEL_KEY_MAX];
        size_t plen = rec_label_key(lk, compact, label, NULL);
        int rc;

        tree_cursor(r, TREE_LABELS, &c);
        rc = btree_cursor_seek(&c, lk, plen);
        while (rc == SOMBRA_OK && btree_cursor_valid(&c)) {
                const uint8_t *k;
                size_t klen;
                uint32_t l;
                uint64_t node;
                btree_cursor_key(&c, &k, &klen);
                if (klen < plen || memcmp(k, lk, plen) != 0)
                        break;
                rc = rec_label_key_decode(k, klen, compact, &l, &node);
                if (rc == SOMBRA_OK)
                        rc = graph_ids_push(out, node);
                if (rc == SOMBRA_OK)
                        rc = btree_cursor_next(&c);
        }
        btree_cursor_close(&c);
        return rc;
}

int
graph_read_label(struct graph_reader *r, uint32_t label, struct graph_ids *out)
{
        int rc = read_enter(r);
        out->n = 0;
        if (rc == SOMBRA_OK)
                rc = label_collect(r, label, out);
        read_exit(r);
        return rc;
}

/* Up to max ids of nodes (or edges) above `after`, ascending, in one pinned state. */
int
graph_ids_after(struct graph_reader *r, bool edges, uint64_t after, size_t max,
                struct graph_ids *out)
{
        bool compact = compact_keys(r);
        struct btree_cursor c;
        uint8_t k0[REC_ID_MAX];
        int rc = read_enter(r);

        out->n = 0;
        if (rc != SOMBRA_OK || after == UINT64_MAX)
                goto label_exit;
        tree_cursor(r, edges ? TREE_EDGES : TREE_NODES, &c);
        rc = btree_cursor_seek(&c, k0, rec_id(k0, compact, after + 1));
        while (rc == SOMBRA_OK && btree_cursor_valid(&c) && out->n < max) {
                const uint8_t *k;
                size_t klen;
                uint64_t id;
                btree_cursor_key(&c, &k, &klen);
                rc = rec_id_decode(k, klen, compact, &id);
                if (rc == SOMBRA_OK)
                        rc = graph_ids_push(out, id);
                if (rc == SOMBRA_OK)
                        rc = btree_cursor_next(&c);
        }
        btree_cursor_close(&c);
label_exit:
        read_exit(r);
        return rc;
}

/* ---- public reads ---- */

static int
entity_fill(struct graph_reader *r, struct graph_entity *e)
{
        struct dict *d = graph_dict(r->g);
        struct rec *rec = &e->rec;

        if (rec->nlabels > e->labels_cap) {
                const char **v = realloc(e->labels, rec->nlabels * sizeof(*v));
                if (v == NULL)
                        return SOMBRA_ENOMEM;
                e->labels = v;
                e->labels_cap = rec->nlabels;
        }
        if (rec->nprops > e->props_cap) {
                struct sombra_prop *v = realloc(e->props, rec->nprops * sizeof(*v));
                if (v == NULL)
                        return SOMBRA_ENOMEM;
                e->props = v;
                e->props_cap = rec->nprops;
        }
        for (uint32_t i = 0; i < rec->nlabels; i++) {
                const struct dict_name *n = dict_get(d, rec->labels[i]);
                if (n == NULL)
                        return SOMBRA_ECORRUPT;
                e->labels[i] = n->text;
        }
        for (uint32_t i = 0; i < rec->nprops; i++) {
                const struct dict_name *n = dict_get(d, rec->props[i].key);
                if (n == NULL)
                        return SOMBRA_ECORRUPT;
                e->props[i].key = n->text;
                e->props[i].value = rec->props[i].value;
        }
        e->nlabels = rec->nlabels;
        e->nprops = rec->nprops;
        return SOMBRA_OK;
}

void
graph_entity_free(struct graph_entity *e)
{
        if (e == NULL)
                return;
        rec_free(&e->rec);
        buf_free(&e->raw);
        free(e->labels);
        free(e->props);
        memset(e, 0, sizeof(*e));
}

/* A node or an edge, with the names of its labels, type and keys. */
static int
entity_get(struct graph_reader *r, bool edge, uint64_t id, struct graph_entity *out)
{
        const struct dict_name *t = NULL;
        int rc;

        if (r == NULL || out == NULL)
                return SOMBRA_EINVAL;
        rc = graph_read_record(r, edge, id, &out->raw, &out->rec);
        if (rc != SOMBRA_OK)
                return rc;
        if (edge && (t = dict_get(graph_dict(r->g), out->rec.type)) == NULL)
                return SOMBRA_ECORRUPT;
        out->id = id;
        out->src = edge ? out->rec.src : 0;
        out->dst = edge ? out->rec.dst : 0;
        out->type = edge ? t->text : NULL;
        return entity_fill(r, out);
}

int
graph_node_get(struct graph_reader *r, uint64_t id, struct graph_entity *out)
{
        return entity_get(r, false, id, out);
}

int
graph_edge_get(struct graph_reader *r, uint64_t id, struct graph_entity *out)
{
        return entity_get(r, true, id, out);
}

int
graph_node_exists(struct graph_reader *r, uint64_t id)
{
        int rc;

        if (r == NULL)
                return SOMBRA_EINVAL;
        rc = read_enter(r);
        if (rc == SOMBRA_OK)
                rc = node_present(r, id);
        read_exit(r);
        return rc;
}

int
graph_counts(struct graph_reader *r, uint64_t *nodes, uint64_t *edges)
{
        int rc;

        if (r == NULL)
                return SOMBRA_EINVAL;
        rc = read_enter(r);
        if (rc == SOMBRA_OK && nodes != NULL)
                *nodes = r->st->nodes;
        if (rc == SOMBRA_OK && edges != NULL)
                *edges = r->st->edges;
        read_exit(r);
        return rc;
}

static int
type_filter(struct graph_reader *r, const char *const *types, size_t ntypes, uint32_t *ids,
            size_t *nids)
{
        *nids = 0;
        if (ntypes > 0 && types == NULL)
                return SOMBRA_EINVAL;
        for (size_t i = 0; i < ntypes; i++) {
                int rc = resolve(r, types[i], &ids[*nids]);
                if (rc == SOMBRA_OK)
                        (*nids)++;
                else if (rc != SOMBRA_ENOTFOUND)
                        return rc;
        }
        return SOMBRA_OK;
}

int
graph_neighbors(struct graph_reader *r, uint64_t node, enum sombra_dir dir,
                const char *const *types, size_t ntypes, struct graph_adjvec *out)
{
        uint32_t tids[GRAPH_MAX_TYPE_FILTER];
        size_t ntids;
        int rc;

        if (r == NULL || out == NULL || dir < SOMBRA_OUT || dir > SOMBRA_BOTH)
                return SOMBRA_EINVAL;
        if (ntypes > GRAPH_MAX_TYPE_FILTER)
                return SOMBRA_ETOOBIG;
        rc = read_enter(r);
        if (rc == SOMBRA_OK)
                rc = type_filter(r, types, ntypes, tids, &ntids);
        if (rc == SOMBRA_OK)
                rc = adj_collect(r, node, dir, tids, ntids, ntypes > 0, out);
        /* Only an empty answer needs to know whether the node exists at all. */
        if (rc == SOMBRA_OK && out->n == 0)
                rc = node_present(r, node);
        read_exit(r);
        return rc;
}

int
graph_degree(struct graph_reader *r, uint64_t node, enum sombra_dir dir, const char *const *types,
             size_t ntypes, uint64_t *degree)
{
        int rc;

        if (degree == NULL)
                return SOMBRA_EINVAL;
        rc = graph_neighbors(r, node, dir, types, ntypes, &r->adj);
        if (rc == SOMBRA_OK)
                *degree = r->adj.n;
        return rc;
}

const char *
graph_type_name(struct graph_reader *r, uint32_t type)
{
        const struct dict_name *n = r == NULL ? NULL : dict_get(graph_dict(r->g), type);
        return n == NULL ? NULL : n->text;
}

int
graph_nodes_by_label(struct graph_reader *r, const char *label, struct graph_ids *out)
{
        uint32_t l;
        int rc;

        if (r == NULL || out == NULL)
                return SOMBRA_EINVAL;
        out->n = 0;
        rc = read_enter(r);
        if (rc == SOMBRA_OK)
                rc = resolve(r, label, &l);
        if (rc == SOMBRA_OK)
                rc = label_collect(r, l, out);
        else if (rc == SOMBRA_ENOTFOUND)
                rc = SOMBRA_OK; /* a label never used labels nothing */
        read_exit(r);
        return rc;
}

/* Whether a candidate's real value lies in [lo, hi], same type as the bounds. */
static bool
in_range(const struct sombra_value *v, const struct sombra_value *lo, const struct sombra_value *hi)
{
        if (v == NULL || (lo && (v->type != lo->type || rec_value_cmp(v, lo) < 0)))
                return false;
        return !(hi && (v->type != hi->type || rec_value_cmp(v, hi) > 0));
}

/* Whether an index key holds a bound's type whole (NULL: an open bound holds nothing). */
static bool
whole_in_key(const struct sombra_value *bound)
{
        return bound == NULL || bound->type <= SOMBRA_DOUBLE;
}

/*
 * Index keys are cut for long strings and bytes (record.h), so a candidate's
 * real value is read back and compared before it is returned - unless the
 * bounds are of a type the key holds whole (null, bool, int, double), whose
 * keys order exactly as rec_value_cmp: then the key's place between the
 * bounds and its type tag decide, and no record is read.
 */
static int
range_scan(struct graph_reader *r, uint32_t label, uint32_t key, const struct sombra_value *lo,
           const struct sombra_value *hi, struct graph_ids *out)
{
        bool check = !whole_in_key(lo) || !whole_in_key(hi);
        struct btree_cursor c;
        struct buf from = BUF_INIT, to = BUF_INIT;
        int rc;

        rc = rec_index_prefix(&from, label, key, lo);
        if (rc == SOMBRA_OK && hi != NULL)
                rc = rec_index_prefix(&to, label, key, hi);
        if (rc != SOMBRA_OK)
                goto label_out;
        tree_cursor(r, TREE_PROPS, &c);
        rc = btree_cursor_seek(&c, from.data, from.len);
        while (rc == SOMBRA_OK && btree_cursor_valid(&c)) {
                const uint8_t *k;
                size_t klen;
                uint64_t node;
                btree_cursor_key(&c, &k, &klen);
                if (klen < 16 || memcmp(k, from.data, 8) != 0)
                        break;
                /* Past the upper bound once the key's value part sorts above hi's. */
                if (hi != NULL && memcmp(k, to.data, klen - 8 < to.len ? klen - 8 : to.len) > 0)
                        break;
                node = get_be64(k + klen - 8);
                /* The type tag follows label and key; bounds of one type keep only it. */
                if (!check && (lo == NULL || k[8] == from.data[8]) &&
                    (hi == NULL || k[8] == to.data[8])) {
                        rc = graph_ids_push(out, node);
                        if (rc == SOMBRA_OK)
                                rc = btree_cursor_next(&c);
                        continue;
                }
                rc = btree_cursor_next(&c);
                if (rc == SOMBRA_OK && check)
                        rc = record_load(r, TREE_NODES, node, &r->raw, &r->rec);
                if (rc == SOMBRA_OK && check && in_range(rec_get_prop(&r->rec, key), lo, hi))
                        rc = graph_ids_push(out, node);
        }
        btree_cursor_close(&c);
label_out:
        buf_free(&from);
        buf_free(&to);
        return rc;
}

static int
prop_query(struct graph_reader *r, const char *label, const char *key,
           const struct sombra_value *lo, const struct sombra_value *hi, struct graph_ids *out)
{
        uint32_t l, p;
        uint8_t k[8];
        int rc;

        if (r == NULL || out == NULL)
                return SOMBRA_EINVAL;
        /* A bound past SOMBRA_MAX_VALUE is ETOOBIG, as it is for a write. */
        rc = lo != NULL ? rec_value_check(lo) : SOMBRA_OK;
        if (rc == SOMBRA_OK && hi != NULL)
                rc = rec_value_check(hi);
        if (rc != SOMBRA_OK)
                return rc;
        out->n = 0;
        rc = read_enter(r);
        if (rc == SOMBRA_OK)
                rc = resolve(r, label, &l);
        if (rc == SOMBRA_OK)
                rc = resolve(r, key, &p);
        if (rc == SOMBRA_OK) {
                put_be32(k, l);
                put_be32(k + 4, p);
                rc = tree_get(r, TREE_INDEXES, k, 8, NULL); /* SOMBRA_ENOTFOUND: no index */
        }
        if (rc == SOMBRA_OK)
                rc = range_scan(r, l, p, lo, hi, out);
        read_exit(r);
        return rc;
}

int
graph_nodes_by_prop(struct graph_reader *r, const char *label, const char *key,
                    const struct sombra_value *v, struct graph_ids *out)
{
        if (v == NULL)
                return SOMBRA_EINVAL;
        return prop_query(r, label, key, v, v, out);
}

int
graph_nodes_by_range(struct graph_reader *r, const char *label, const char *key,
                     const struct sombra_value *lo, const struct sombra_value *hi,
                     struct graph_ids *out)
{
        return prop_query(r, label, key, lo, hi, out);
}
