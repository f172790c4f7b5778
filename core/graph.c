/*
 * graph.c - nodes, edges, labels, properties, adjacency and indexes as
 * B+tree entries (key layouts in store.h and record.h).
 *
 * Invariants kept by every write (and checked by verify.c):
 *   - an edge e(src -> dst, type t) has TREE_EDGES[e] and exactly two
 *     adjacency entries, (src, OUT, t, e) -> dst and (dst, IN, t, e) -> src;
 *   - a node n with label l has TREE_LABELS[(l, n)];
 *   - for every index (l, k) in TREE_INDEXES and every node with label l and
 *     property k there is one TREE_PROPS entry, and no other entries;
 *   - the state's node and edge counts match the trees.
 * A graph write runs all its checks before its first tree write, so a refused
 * write leaves an explicit transaction usable; a write that fails half-way
 * poisons it (store.c), and only a rollback is possible.
 *
 * Bulk mode (a batch): node and edge records are written at once, but the
 * adjacency, label and property index entries that writes put are held back
 * and written sorted by tree and key when the run of creates ends: before
 * any write that is not a create, at graph_bulk_end and at commit. Each is a
 * distinct key that no later write of the run reads or deletes (a create
 * reads only node records and names; every other write ends the run
 * first), so their order changes no result; in key order each leaf takes
 * all of its new entries while it is in the CPU cache, instead of one
 * descent to a cold page per entry (a node's edges scatter over the whole
 * adjacency tree). The WAL records the B+tree writes in the order made, so
 * replay makes the same trees. The graph remembers the nodes it made and
 * those edge creates found (`known`) until that node's delete or a
 * rollback, so that a node that many edges touch is looked up once at most.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "graph.h"
#include "store.h"
#include "dict.h"
#include "idbits.h"
#include "idset.h"
#include "radix.h"

#define DIR_OUT 0u
#define DIR_IN  1u

struct index_def {
        uint32_t label, key;
};

/* An entry held back in bulk mode: key then value at held_bytes + off. */
struct held {
        const uint8_t *key; /* set just before sorting: held_bytes may move while it grows */
        uint64_t head;      /* the tree, then the key's first 7 bytes (zeros past its end) */
        size_t off;
        uint16_t klen;
        uint8_t vlen;
};

struct graph {
        struct store *store;
        struct dict dict;
        struct sombra_config cfg;

        struct index_def *indexes; /* TREE_INDEXES of the current state, in memory */
        size_t nindexes, indexes_cap;
        bool indexes_changed;    /* by the open txn: reload on rollback */
        uint32_t names_at_begin; /* dict size when the txn began */

        uint32_t unsynced; /* NORMAL: commits since the last sync */
        uint64_t last_sync_ns;

        struct graph_reader w; /* the writer's own reader */

        /* writer scratch, reused by every operation */
        struct buf raw, raw2, key;
        struct rec before, after;
        struct graph_adjvec adj;
        struct idset seen;

        /* bulk mode: the held entries' keys and values, in `held_bytes` */
        bool bulk;
        struct held *held;
        size_t nheld, held_cap;
        struct buf held_bytes;
        struct held *held_spare; /* the radix sort's other buffer (held_sort) */
        size_t held_spare_cap;

        /*
         * Nodes known to exist from then on until a delete or a rollback:
         * those made here and those edge creates found. Kept across
         * transactions, so that the nodes an edge names are looked up at
         * most once (a load's edges, none). A bitmap, as node ids are dense:
         * one bit a node, one load a lookup (idbits.h bounds it; a node it
         * does not keep is looked up each time).
         */
        struct idbits known;
};

/* ---- small helpers ---- */

static uint64_t
now_ns(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static const struct store_state *
view(struct graph *g)
{
        return store_in_txn(g->store) ? store_txn_state(g->store) : store_committed(g->store);
}

/* The key of node or edge id in the file's format (record.h); returns its length. */
static size_t
id_key(struct graph *g, uint8_t k[REC_ID_MAX], uint64_t id)
{
        return rec_id(k, store_compact_keys(g->store), id);
}

static size_t
label_key(struct graph *g, uint8_t k[REC_LABEL_KEY_MAX], uint32_t label, uint64_t node)
{
        return rec_label_key(k, store_compact_keys(g->store), label, &node);
}

int
graph_ids_push(struct graph_ids *ids, uint64_t id)
{
        if (ids->n == ids->cap) {
                size_t cap = ids->cap ? ids->cap * 2 : 64;
                uint64_t *v = realloc(ids->v, cap * sizeof(*v));
                if (v == NULL)
                        return SOMBRA_ENOMEM;
                ids->v = v;
                ids->cap = cap;
        }
        ids->v[ids->n++] = id;
        return SOMBRA_OK;
}

int
graph_adjvec_push(struct graph_adjvec *a, const struct graph_adj *x)
{
        if (a->n == a->cap) {
                size_t cap = a->cap ? a->cap * 2 : 64;
                struct graph_adj *v = realloc(a->v, cap * sizeof(*v));
                if (v == NULL)
                        return SOMBRA_ENOMEM;
                a->v = v;
                a->cap = cap;
        }
        a->v[a->n++] = *x;
        return SOMBRA_OK;
}

void
graph_adjvec_free(struct graph_adjvec *a)
{
        free(a->v);
        memset(a, 0, sizeof(*a));
}

void
graph_ids_free(struct graph_ids *ids)
{
        free(ids->v);
        memset(ids, 0, sizeof(*ids));
}

struct store *
graph_store(struct graph *g)
{
        return g->store;
}

struct dict *
graph_dict(struct graph *g)
{
        return &g->dict;
}

struct graph_reader *
graph_writer_reader(struct graph *g)
{
        return g == NULL ? NULL : &g->w;
}

/* ---- held entries (bulk mode) ---- */

#define HEAD_TREE_SHIFT 56u /* a held entry's tree is the top byte of its head */

static uint64_t
held_head(enum store_tree t, const uint8_t *key, size_t klen)
{
        uint64_t head = (uint64_t)t << HEAD_TREE_SHIFT;

        for (size_t i = 0; i < 7 && i < klen; i++)
                head |= (uint64_t)key[i] << (48 - 8 * i);
        return head;
}

/*
 * Writes an adjacency, label or property index entry, or holds it back in
 * bulk mode. A failure to hold it poisons the transaction, as a failed
 * store_put does: the create has already written its record.
 */
static int
entry_put(struct graph *g, enum store_tree t, const uint8_t *key, size_t klen, const uint8_t *val,
          size_t vlen)
{
        size_t off = g->held_bytes.len;
        int rc = SOMBRA_OK;

        if (!g->bulk)
                return store_put(g->store, t, key, klen, val, vlen);
        if (g->nheld == g->held_cap) {
                size_t cap = g->held_cap ? g->held_cap * 2 : 1024;
                struct held *v = realloc(g->held, cap * sizeof(*v));
                if (v == NULL)
                        rc = SOMBRA_ENOMEM;
                else {
                        g->held = v;
                        g->held_cap = cap;
                }
        }
        if (rc == SOMBRA_OK)
                rc = buf_append(&g->held_bytes, key, klen);
        if (rc == SOMBRA_OK && vlen > 0)
                rc = buf_append(&g->held_bytes, val, vlen);
        if (rc != SOMBRA_OK) {
                store_poison(g->store, rc);
                return rc;
        }
        g->held[g->nheld++] = (struct held){.head = held_head(t, key, klen),
                                            .off = off,
                                            .klen = (uint16_t)klen,
                                            .vlen = (uint8_t)vlen};
        return SOMBRA_OK;
}

/*
 * Tree, then key as the B+tree orders them; equal keys stay in the order
 * held. Most pairs differ in their heads, which orders them as the bytes do:
 * a zero past a shorter key's end sorts below any byte but zero, and a tie
 * there is settled by the bytes.
 */
static int
held_cmp(const void *a, const void *b)
{
        const struct held *x = a, *y = b;
        size_t n = x->klen < y->klen ? x->klen : y->klen;
        int c;

        if (x->head != y->head)
                return x->head < y->head ? -1 : 1;
        c = memcmp(x->key, y->key, n);
        if (c == 0)
                c = (x->klen > y->klen) - (x->klen < y->klen);
        if (c == 0)
                c = (x->off > y->off) - (x->off < y->off);
        return c;
}

/*
 * Sorts the held entries as held_cmp orders them: by head with a radix sort
 * (glibc's merge sort took a third of writing a batch of edges), which
 * being stable leaves equal heads in the order held, and then each run of
 * equal heads by held_cmp. Without memory for the spare buffer, held_cmp
 * sorts everything.
 */
static void
held_sort(struct graph *g)
{
        size_t n = g->nheld;

        if (g->held_spare_cap < n) {
                struct held *v = realloc(g->held_spare, g->held_cap * sizeof(*v));
                if (v == NULL) {
                        qsort(g->held, n, sizeof(*g->held), held_cmp);
                        return;
                }
                g->held_spare = v;
                g->held_spare_cap = g->held_cap;
        }
        radix_sort(g->held, g->held_spare, n, sizeof(*g->held), offsetof(struct held, head));
        for (size_t i = 0, j; i < n; i = j) {
                for (j = i + 1; j < n && g->held[j].head == g->held[i].head; j++)
                        ;
                if (j - i > 1)
                        qsort(g->held + i, j - i, sizeof(*g->held), held_cmp);
        }
}

/* Writes the held entries in key order and forgets them, whatever happens. */
static int
held_write(struct graph *g)
{
        int rc = SOMBRA_OK;

        if (g->nheld == 0)
                return SOMBRA_OK;
        for (size_t i = 0; i < g->nheld; i++)
                g->held[i].key = g->held_bytes.data + g->held[i].off;
        held_sort(g);
        for (size_t i = 0; rc == SOMBRA_OK && i < g->nheld; i++) {
                const struct held *h = &g->held[i];
                rc = store_put(g->store, (enum store_tree)(h->head >> HEAD_TREE_SHIFT), h->key,
                               h->klen, h->key + h->klen, h->vlen);
        }
        g->nheld = 0;
        buf_reset(&g->held_bytes);
        /* Entries after the failed one are gone: the transaction can only roll back. */
        if (rc != SOMBRA_OK)
                store_poison(g->store, rc);
        return rc;
}

/* Ends a run of creates: writes what it held. */
static int
run_end(struct graph *g)
{
        return held_write(g);
}

/* Ends a run whose transaction rolls back: what it held goes. */
static void
run_drop(struct graph *g)
{
        g->nheld = 0;
        buf_reset(&g->held_bytes);
}

int
graph_bulk_begin(struct graph *g)
{
        if (g == NULL)
                return SOMBRA_EINVAL;
        g->bulk = true;
        return SOMBRA_OK;
}

int
graph_bulk_end(struct graph *g, bool apply)
{
        if (g == NULL)
                return SOMBRA_EINVAL;
        g->bulk = false;
        if (apply)
                return run_end(g);
        run_drop(g);
        return SOMBRA_OK;
}

/* ---- index catalogue ---- */

static int
indexes_load(struct graph *g)
{
        struct btree_cursor c;
        int rc;

        g->nindexes = 0;
        store_cursor(g->store, view(g), TREE_INDEXES, &c);
        rc = btree_cursor_seek(&c, NULL, 0);
        while (rc == SOMBRA_OK && btree_cursor_valid(&c)) {
                const uint8_t *k;
                size_t klen;
                btree_cursor_key(&c, &k, &klen);
                if (klen != 8) {
                        rc = SOMBRA_ECORRUPT;
                        break;
                }
                if (g->nindexes == g->indexes_cap) {
                        size_t cap = g->indexes_cap ? g->indexes_cap * 2 : 8;
                        struct index_def *v = realloc(g->indexes, cap * sizeof(*v));
                        if (v == NULL) {
                                rc = SOMBRA_ENOMEM;
                                break;
                        }
                        g->indexes = v;
                        g->indexes_cap = cap;
                }
                g->indexes[g->nindexes].label = get_be32(k);
                g->indexes[g->nindexes].key = get_be32(k + 4);
                g->nindexes++;
                rc = btree_cursor_next(&c);
        }
        btree_cursor_close(&c);
        return rc;
}

static bool
index_value(const struct rec *r, const struct index_def *ix, const struct sombra_value **v)
{
        if (r == NULL || !rec_has_label(r, ix->label))
                return false;
        *v = rec_get_prop(r, ix->key);
        return *v != NULL;
}

/* Brings the property index entries of node `id` from `before` to `after` (either may be NULL). */
static int
index_update(struct graph *g, uint64_t id, const struct rec *before, const struct rec *after)
{
        for (size_t i = 0; i < g->nindexes; i++) {
                const struct index_def *ix = &g->indexes[i];
                const struct sombra_value *ov = NULL, *nv = NULL;
                bool had = index_value(before, ix, &ov), has = index_value(after, ix, &nv);
                int rc = SOMBRA_OK;
                if (had && has && rec_value_cmp(ov, nv) == 0)
                        continue;
                if (had) {
                        buf_reset(&g->key);
                        rc = rec_index_key(&g->key, ix->label, ix->key, ov, id);
                        if (rc == SOMBRA_OK)
                                rc = store_del(g->store, TREE_PROPS, g->key.data, g->key.len);
                }
                if (rc == SOMBRA_OK && has) {
                        buf_reset(&g->key);
                        rc = rec_index_key(&g->key, ix->label, ix->key, nv, id);
                        if (rc == SOMBRA_OK)
                                rc = entry_put(g, TREE_PROPS, g->key.data, g->key.len, NULL, 0);
                }
                if (rc != SOMBRA_OK)
                        return rc == SOMBRA_ENOTFOUND ? SOMBRA_ECORRUPT : rc;
        }
        return SOMBRA_OK;
}

/* ---- transactions ---- */

static int
begin(struct graph *g, bool shared)
{
        int rc;

        if (g == NULL)
                return SOMBRA_EINVAL;
        rc = shared ? store_begin_shared(g->store) : store_begin(g->store);
        if (rc != SOMBRA_OK)
                return rc;
        g->names_at_begin = g->dict.count;
        g->indexes_changed = false;
        return SOMBRA_OK;
}

int
graph_begin(struct graph *g)
{
        return begin(g, false);
}

int
graph_begin_shared(struct graph *g)
{
        return begin(g, true);
}

static void
txn_forget(struct graph *g)
{
        idbits_clear(&g->known); /* some of them may have been the transaction's own */
        dict_truncate(&g->dict, g->names_at_begin);
        if (g->indexes_changed)
                (void)indexes_load(g); /* the committed catalogue; ENOMEM keeps a superset */
        g->indexes_changed = false;
}

int
graph_rollback(struct graph *g)
{
        if (g == NULL)
                return SOMBRA_EINVAL;
        if (!store_in_txn(g->store))
                return SOMBRA_ENOTXN;
        run_drop(g);
        store_rollback(g->store);
        txn_forget(g);
        return SOMBRA_OK;
}

/* Makes a commit as durable as the sync mode promises before it is acknowledged. */
static int
commit_durability(struct graph *g)
{
        switch (g->cfg.sync_mode) {
        case SOMBRA_SYNC_FULL:
                return store_sync(g->store);
        case SOMBRA_SYNC_NORMAL:
                if (++g->unsynced < g->cfg.sync_interval &&
                    now_ns() - g->last_sync_ns < (uint64_t)g->cfg.sync_interval_ms * 1000000u)
                        return SOMBRA_OK;
                g->unsynced = 0;
                g->last_sync_ns = now_ns();
                return store_sync(g->store);
        default:
                return SOMBRA_OK;
        }
}

int
graph_commit(struct graph *g)
{
        int rc;

        if (g == NULL)
                return SOMBRA_EINVAL;
        if (!store_in_txn(g->store))
                return SOMBRA_ENOTXN;
        rc = run_end(g);
        if (rc != SOMBRA_OK) {
                graph_rollback(g);
                return rc;
        }
        rc = store_commit(g->store, NULL);
        if (rc != SOMBRA_OK) {
                txn_forget(g);
                return rc;
        }
        g->indexes_changed = false;
        return commit_durability(g);
}

int
graph_checkpoint(struct graph *g)
{
        return g == NULL ? SOMBRA_EINVAL : store_checkpoint(g->store);
}

/*
 * Starts an autocommit transaction when none is open. Any write but a create
 * ends a bulk run first, as it may read or delete what the run held back.
 */
static int
op_begin(struct graph *g, bool create, bool *autocommit)
{
        *autocommit = false;
        if (store_in_txn(g->store))
                return create ? SOMBRA_OK : run_end(g);
        *autocommit = true;
        return graph_begin(g);
}

static int
op_end(struct graph *g, bool autocommit, int rc)
{
        if (!autocommit)
                return rc;
        if (rc == SOMBRA_OK)
                return graph_commit(g);
        graph_rollback(g);
        return rc;
}

/* ---- argument checks ---- */

static int
props_check(const struct sombra_prop *props, size_t nprops)
{
        size_t len;

        if (nprops > SOMBRA_MAX_PROPS)
                return SOMBRA_ETOOBIG;
        if (nprops > 0 && props == NULL)
                return SOMBRA_EINVAL;
        for (size_t i = 0; i < nprops; i++) {
                int rc = dict_name_check(props[i].key, &len);
                if (rc == SOMBRA_OK)
                        rc = rec_value_check(&props[i].value);
                if (rc != SOMBRA_OK)
                        return rc;
        }
        return SOMBRA_OK;
}

static int
labels_check(const char *const *labels, size_t nlabels)
{
        size_t len;

        if (nlabels > SOMBRA_MAX_LABELS)
                return SOMBRA_ETOOBIG;
        if (nlabels > 0 && labels == NULL)
                return SOMBRA_EINVAL;
        for (size_t i = 0; i < nlabels; i++) {
                int rc = dict_name_check(labels[i], &len);
                if (rc != SOMBRA_OK)
                        return rc;
        }
        return SOMBRA_OK;
}

static int
intern(struct graph *g, const char *name, uint32_t *id)
{
        return dict_intern(&g->dict, g->store, name, id);
}

/* Resolves a name for reading; SOMBRA_ENOTFOUND for a name never used. */
static int
resolve(struct graph *g, const char *name, uint32_t *id)
{
        size_t len;
        int rc = dict_name_check(name, &len);
        if (rc != SOMBRA_OK)
                return rc;
        return dict_lookup(&g->dict, name, len, id);
}

static int
props_apply(struct graph *g, struct rec *r, const struct sombra_prop *props, size_t nprops)
{
        for (size_t i = 0; i < nprops; i++) {
                uint32_t key;
                int rc = intern(g, props[i].key, &key);
                if (rc == SOMBRA_OK)
                        rc = rec_set_prop(r, key, &props[i].value);
                if (rc != SOMBRA_OK)
                        return rc;
        }
        return SOMBRA_OK;
}

/* ---- record access ---- */

static int
node_load(struct graph *g, uint64_t id, struct buf *raw, struct rec *r)
{
        return graph_read_record(&g->w, false, id, raw, r);
}

static int
edge_load(struct graph *g, uint64_t id, struct buf *raw, struct rec *r)
{
        return graph_read_record(&g->w, true, id, raw, r);
}

static int
node_store(struct graph *g, uint64_t id, const struct rec *r)
{
        uint8_t k[REC_ID_MAX];
        size_t klen = id_key(g, k, id);
        int rc = rec_encode_node(r, &g->raw2);

        if (rc == SOMBRA_OK)
                rc = store_put(g->store, TREE_NODES, k, klen, g->raw2.data, g->raw2.len);
        return rc;
}

static int
edge_store(struct graph *g, uint64_t id, const struct rec *r)
{
        uint8_t k[REC_ID_MAX];
        size_t klen = id_key(g, k, id);
        int rc = rec_encode_edge(r, &g->raw2);

        if (rc == SOMBRA_OK)
                rc = store_put(g->store, TREE_EDGES, k, klen, g->raw2.data, g->raw2.len);
        return rc;
}

/* ---- node writes ---- */

static int
node_create(struct graph *g, const char *const *labels, size_t nlabels,
            const struct sombra_prop *props, size_t nprops, uint64_t *out)
{
        struct store_state *st = store_txn_state(g->store);
        struct rec *r = &g->after;
        uint64_t id;
        int rc;

        rec_reset(r);
        for (size_t i = 0; i < nlabels; i++) {
                uint32_t l;
                bool added;
                rc = intern(g, labels[i], &l);
                if (rc == SOMBRA_OK)
                        rc = rec_add_label(r, l, &added);
                if (rc != SOMBRA_OK)
                        return rc;
        }
        rc = props_apply(g, r, props, nprops);
        if (rc != SOMBRA_OK)
                return rc;
        id = st->next_node;
        rc = node_store(g, id, r);
        for (uint32_t i = 0; rc == SOMBRA_OK && i < r->nlabels; i++) {
                uint8_t k[REC_LABEL_KEY_MAX];
                rc = entry_put(g, TREE_LABELS, k, label_key(g, k, r->labels[i], id), NULL, 0);
        }
        if (rc == SOMBRA_OK)
                rc = index_update(g, id, NULL, r);
        if (rc != SOMBRA_OK)
                return rc;
        st->next_node++;
        st->nodes++;
        (void)idbits_add(&g->known, id); /* not kept: looked up by its first edge */
        if (out != NULL)
                *out = id;
        return SOMBRA_OK;
}

int
graph_node_create(struct graph *g, const char *const *labels, size_t nlabels,
                  const struct sombra_prop *props, size_t nprops, uint64_t *id)
{
        bool autoc;
        int rc;

        if (g == NULL)
                return SOMBRA_EINVAL;
        rc = labels_check(labels, nlabels);
        if (rc == SOMBRA_OK)
                rc = props_check(props, nprops);
        if (rc == SOMBRA_OK)
                rc = op_begin(g, true, &autoc);
        if (rc != SOMBRA_OK)
                return rc;
        return op_end(g, autoc, node_create(g, labels, nlabels, props, nprops, id));
}

/*
 * Edits one node: decodes it twice (before / after share g->raw), lets `edit`
 * change `after`, then writes the record, its label entries and its index
 * entries where they differ.
 */
struct node_edit {
        const char *name;                 /* key or label */
        const struct sombra_value *value; /* set only */
        enum { EDIT_SET, EDIT_UNSET, EDIT_LABEL_ADD, EDIT_LABEL_REMOVE } kind;
};

static int
edit_apply(struct graph *g, struct rec *r, const struct node_edit *e, bool *changed)
{
        uint32_t id;
        int rc;

        *changed = true;
        switch (e->kind) {
        case EDIT_SET:
                rc = intern(g, e->name, &id);
                return rc == SOMBRA_OK ? rec_set_prop(r, id, e->value) : rc;
        case EDIT_LABEL_ADD:
                rc = intern(g, e->name, &id);
                return rc == SOMBRA_OK ? rec_add_label(r, id, changed) : rc;
        case EDIT_UNSET:
                rc = resolve(g, e->name, &id);
                *changed = rc == SOMBRA_OK && rec_del_prop(r, id);
                return rc == SOMBRA_ENOTFOUND || rc == SOMBRA_OK ? SOMBRA_OK : rc;
        case EDIT_LABEL_REMOVE:
                rc = resolve(g, e->name, &id);
                *changed = rc == SOMBRA_OK && rec_del_label(r, id);
                return rc == SOMBRA_ENOTFOUND || rc == SOMBRA_OK ? SOMBRA_OK : rc;
        }
        return SOMBRA_EINVAL;
}

static int
labels_sync(struct graph *g, uint64_t id, const struct rec *before, const struct rec *after)
{
        uint8_t k[REC_LABEL_KEY_MAX];
        int rc = SOMBRA_OK;

        for (uint32_t i = 0; rc == SOMBRA_OK && before != NULL && i < before->nlabels; i++) {
                if (after != NULL && rec_has_label(after, before->labels[i]))
                        continue;
                rc = store_del(g->store, TREE_LABELS, k, label_key(g, k, before->labels[i], id));
        }
        for (uint32_t i = 0; rc == SOMBRA_OK && after != NULL && i < after->nlabels; i++) {
                if (before != NULL && rec_has_label(before, after->labels[i]))
                        continue;
                rc = entry_put(g, TREE_LABELS, k, label_key(g, k, after->labels[i], id), NULL, 0);
        }
        return rc == SOMBRA_ENOTFOUND ? SOMBRA_ECORRUPT : rc;
}

static int
node_edit(struct graph *g, uint64_t id, const struct node_edit *e)
{
        bool changed;
        int rc = node_load(g, id, &g->raw, &g->before);

        if (rc == SOMBRA_OK)
                rc = rec_decode_node(&g->after, g->raw.data, g->raw.len);
        if (rc == SOMBRA_OK)
                rc = edit_apply(g, &g->after, e, &changed);
        if (rc != SOMBRA_OK || !changed)
                return rc;
        rc = node_store(g, id, &g->after);
        if (rc == SOMBRA_OK)
                rc = labels_sync(g, id, &g->before, &g->after);
        if (rc == SOMBRA_OK)
                rc = index_update(g, id, &g->before, &g->after);
        return rc;
}

static int
node_edit_op(struct graph *g, uint64_t id, const struct node_edit *e)
{
        bool autoc;
        int rc;

        if (g == NULL)
                return SOMBRA_EINVAL;
        rc = op_begin(g, false, &autoc);
        if (rc != SOMBRA_OK)
                return rc;
        return op_end(g, autoc, node_edit(g, id, e));
}

/* An edit of node id naming a key or a label, the name checked first. */
static int
node_named_edit(struct graph *g, uint64_t id, const struct node_edit *e)
{
        size_t len;
        int rc = dict_name_check(e->name, &len);

        return rc != SOMBRA_OK ? rc : node_edit_op(g, id, e);
}

int
graph_node_set(struct graph *g, uint64_t id, const char *key, const struct sombra_value *v)
{
        struct node_edit e = {key, v, EDIT_SET};
        int rc = v == NULL ? SOMBRA_EINVAL : rec_value_check(v);

        return rc != SOMBRA_OK ? rc : node_named_edit(g, id, &e);
}

int
graph_node_unset(struct graph *g, uint64_t id, const char *key)
{
        struct node_edit e = {key, NULL, EDIT_UNSET};

        return node_named_edit(g, id, &e);
}

int
graph_node_label_add(struct graph *g, uint64_t id, const char *label)
{
        struct node_edit e = {label, NULL, EDIT_LABEL_ADD};

        return node_named_edit(g, id, &e);
}

int
graph_node_label_remove(struct graph *g, uint64_t id, const char *label)
{
        struct node_edit e = {label, NULL, EDIT_LABEL_REMOVE};

        return node_named_edit(g, id, &e);
}

/* ---- edge writes ---- */

/* SOMBRA_OK when node id exists (see `known`). */
static int
node_found(struct graph *g, const struct store_state *st, uint64_t id)
{
        uint8_t k[REC_ID_MAX];
        int rc;

        if (idbits_has(&g->known, id))
                return SOMBRA_OK;
        rc = store_get(g->store, st, TREE_NODES, k, id_key(g, k, id), NULL);
        if (rc == SOMBRA_OK)
                (void)idbits_add(&g->known, id); /* not kept: looked up again next time */
        return rc;
}

/* Puts (or holds back) the adjacency entry *a, which names the edge's other end. */
static int
adj_put(struct graph *g, const struct rec_adj *a, uint64_t other)
{
        bool compact = store_compact_keys(g->store);
        uint8_t k[REC_ADJ_KEY_MAX], v[REC_ID_MAX];
        size_t klen = rec_adj_key(k, compact, a), vlen = rec_id(v, compact, other);

        return entry_put(g, TREE_ADJ, k, klen, v, vlen);
}

static int
adj_del(struct graph *g, const struct rec_adj *a)
{
        uint8_t k[REC_ADJ_KEY_MAX];
        size_t klen = rec_adj_key(k, store_compact_keys(g->store), a);

        return store_del(g->store, TREE_ADJ, k, klen);
}

static int
edge_create(struct graph *g, uint64_t src, uint64_t dst, const char *type,
            const struct sombra_prop *props, size_t nprops, uint64_t *out)
{
        struct store_state *st = store_txn_state(g->store);
        struct rec *r = &g->after;
        uint64_t id;
        int rc;

        rc = node_found(g, st, src);
        if (rc == SOMBRA_OK)
                rc = node_found(g, st, dst);
        if (rc != SOMBRA_OK)
                return rc;
        rec_reset(r);
        r->src = src;
        r->dst = dst;
        rc = intern(g, type, &r->type);
        if (rc == SOMBRA_OK)
                rc = props_apply(g, r, props, nprops);
        if (rc != SOMBRA_OK)
                return rc;
        id = st->next_edge;
        rc = edge_store(g, id, r);
        if (rc == SOMBRA_OK)
                rc = adj_put(g, &(struct rec_adj){src, DIR_OUT, r->type, id}, dst);
        if (rc == SOMBRA_OK)
                rc = adj_put(g, &(struct rec_adj){dst, DIR_IN, r->type, id}, src);
        if (rc != SOMBRA_OK)
                return rc;
        st->next_edge++;
        st->edges++;
        if (out != NULL)
                *out = id;
        return SOMBRA_OK;
}

int
graph_edge_create(struct graph *g, uint64_t src, uint64_t dst, const char *type,
                  const struct sombra_prop *props, size_t nprops, uint64_t *id)
{
        size_t len;
        bool autoc;
        int rc;

        if (g == NULL)
                return SOMBRA_EINVAL;
        rc = dict_name_check(type, &len);
        if (rc == SOMBRA_OK)
                rc = props_check(props, nprops);
        if (rc == SOMBRA_OK)
                rc = op_begin(g, true, &autoc);
        if (rc != SOMBRA_OK)
                return rc;
        return op_end(g, autoc, edge_create(g, src, dst, type, props, nprops, id));
}

static int
edge_delete(struct graph *g, uint64_t id)
{
        struct store_state *st = store_txn_state(g->store);
        const struct rec *b = &g->before;
        uint8_t k[REC_ID_MAX];
        int rc = edge_load(g, id, &g->raw, &g->before);

        if (rc != SOMBRA_OK)
                return rc;
        rc = store_del(g->store, TREE_EDGES, k, id_key(g, k, id));
        if (rc == SOMBRA_OK)
                rc = adj_del(g, &(struct rec_adj){b->src, DIR_OUT, b->type, id});
        if (rc == SOMBRA_OK)
                rc = adj_del(g, &(struct rec_adj){b->dst, DIR_IN, b->type, id});
        if (rc != SOMBRA_OK)
                return rc == SOMBRA_ENOTFOUND ? SOMBRA_ECORRUPT : rc;
        st->edges--;
        return SOMBRA_OK;
}

/* A delete of id as one operation: in the open transaction, or in one of its own. */
static int
delete_op(struct graph *g, uint64_t id, int (*del)(struct graph *g, uint64_t id))
{
        bool autoc;
        int rc;

        if (g == NULL)
                return SOMBRA_EINVAL;
        rc = op_begin(g, false, &autoc);
        if (rc != SOMBRA_OK)
                return rc;
        return op_end(g, autoc, del(g, id));
}

int
graph_edge_delete(struct graph *g, uint64_t id)
{
        return delete_op(g, id, edge_delete);
}

static int
edge_edit(struct graph *g, uint64_t id, const char *key, const struct sombra_value *v)
{
        uint32_t kid;
        int rc = edge_load(g, id, &g->raw, &g->after);

        if (rc != SOMBRA_OK)
                return rc;
        if (v != NULL) {
                rc = intern(g, key, &kid);
                if (rc == SOMBRA_OK)
                        rc = rec_set_prop(&g->after, kid, v);
        } else {
                rc = resolve(g, key, &kid);
                if (rc == SOMBRA_ENOTFOUND || (rc == SOMBRA_OK && !rec_del_prop(&g->after, kid)))
                        return SOMBRA_OK; /* nothing to remove */
        }
        if (rc == SOMBRA_OK)
                rc = edge_store(g, id, &g->after);
        return rc;
}

static int
edge_edit_op(struct graph *g, uint64_t id, const char *key, const struct sombra_value *v)
{
        size_t len;
        bool autoc;
        int rc;

        if (g == NULL)
                return SOMBRA_EINVAL;
        rc = dict_name_check(key, &len);
        if (rc == SOMBRA_OK && v != NULL)
                rc = rec_value_check(v);
        if (rc == SOMBRA_OK)
                rc = op_begin(g, false, &autoc);
        if (rc != SOMBRA_OK)
                return rc;
        return op_end(g, autoc, edge_edit(g, id, key, v));
}

int
graph_edge_set(struct graph *g, uint64_t id, const char *key, const struct sombra_value *v)
{
        return v == NULL ? SOMBRA_EINVAL : edge_edit_op(g, id, key, v);
}

int
graph_edge_unset(struct graph *g, uint64_t id, const char *key)
{
        return edge_edit_op(g, id, key, NULL);
}

/* ---- node delete ---- */

static int
node_delete(struct graph *g, uint64_t id)
{
        struct store_state *st = store_txn_state(g->store);
        uint8_t k[REC_ID_MAX];
        int rc = node_load(g, id, &g->raw, &g->before);

        idbits_remove(&g->known, id); /* before anything: a failure half-way rolls back */
        if (rc == SOMBRA_OK)
                rc = graph_read_adjacent(&g->w, id, &g->adj);
        idset_clear(&g->seen);
        /* A self-loop shows up in both directions: delete each edge once. */
        for (size_t i = 0; rc == SOMBRA_OK && i < g->adj.n; i++) {
                bool added;
                rc = idset_put(&g->seen, g->adj.v[i].edge, 0, &added);
                if (rc == SOMBRA_OK && added)
                        rc = edge_delete(g, g->adj.v[i].edge);
        }
        if (rc == SOMBRA_OK)
                rc = node_load(g, id, &g->raw, &g->before);
        if (rc == SOMBRA_OK)
                rc = labels_sync(g, id, &g->before, NULL);
        if (rc == SOMBRA_OK)
                rc = index_update(g, id, &g->before, NULL);
        if (rc == SOMBRA_OK)
                rc = store_del(g->store, TREE_NODES, k, id_key(g, k, id));
        if (rc == SOMBRA_OK)
                st->nodes--;
        return rc;
}

int
graph_node_delete(struct graph *g, uint64_t id)
{
        return delete_op(g, id, node_delete);
}

/* ---- indexes ---- */

static int
index_names(struct graph *g, const char *label, const char *key, bool create, uint8_t k[8])
{
        uint32_t l, p;
        int rc = create ? intern(g, label, &l) : resolve(g, label, &l);

        if (rc == SOMBRA_OK)
                rc = create ? intern(g, key, &p) : resolve(g, key, &p);
        if (rc != SOMBRA_OK)
                return rc;
        put_be32(k, l);
        put_be32(k + 4, p);
        return SOMBRA_OK;
}

/* Adds or removes the entries of one index for every node with its label. */
static int
index_fill(struct graph *g, const struct index_def *ix, bool add)
{
        struct graph_ids ids = {0};
        struct index_def *saved = g->indexes;
        size_t nsaved = g->nindexes;
        int rc = graph_read_label(&g->w, ix->label, &ids);
        /* index_update over just this index. */
        g->indexes = (struct index_def *)ix;
        g->nindexes = 1;
        for (size_t i = 0; rc == SOMBRA_OK && i < ids.n; i++) {
                rc = node_load(g, ids.v[i], &g->raw, &g->before);
                if (rc == SOMBRA_OK)
                        rc = index_update(g, ids.v[i], add ? NULL : &g->before,
                                          add ? &g->before : NULL);
        }
        g->indexes = saved;
        g->nindexes = nsaved;
        graph_ids_free(&ids);
        return rc;
}

static int
index_change(struct graph *g, const char *label, const char *key, bool create)
{
        struct index_def ix;
        uint8_t k[8];
        int rc = index_names(g, label, key, create, k);

        if (rc != SOMBRA_OK)
                return rc;
        ix.label = get_be32(k);
        ix.key = get_be32(k + 4);
        rc = store_get(g->store, view(g), TREE_INDEXES, k, 8, NULL);
        if (create && rc == SOMBRA_OK)
                return SOMBRA_EEXIST;
        if (rc != SOMBRA_OK && !(create && rc == SOMBRA_ENOTFOUND))
                return rc;
        rc = create ? store_put(g->store, TREE_INDEXES, k, 8, NULL, 0)
                    : store_del(g->store, TREE_INDEXES, k, 8);
        if (rc == SOMBRA_OK)
                rc = index_fill(g, &ix, create);
        g->indexes_changed = true;
        if (rc == SOMBRA_OK)
                rc = indexes_load(g);
        return rc;
}

static int
index_op(struct graph *g, const char *label, const char *key, bool create)
{
        size_t len;
        bool autoc;
        int rc;

        if (g == NULL)
                return SOMBRA_EINVAL;
        rc = dict_name_check(label, &len);
        if (rc == SOMBRA_OK)
                rc = dict_name_check(key, &len);
        if (rc == SOMBRA_OK)
                rc = op_begin(g, false, &autoc);
        if (rc != SOMBRA_OK)
                return rc;
        return op_end(g, autoc, index_change(g, label, key, create));
}

int
graph_index_create(struct graph *g, const char *label, const char *key)
{
        return index_op(g, label, key, true);
}

int
graph_index_drop(struct graph *g, const char *label, const char *key)
{
        return index_op(g, label, key, false);
}

/* ---- open and close ---- */

int
graph_open(const char *path, const struct sombra_config *cfg, struct io_faults *faults,
           struct graph **out)
{
        struct graph *g;
        int rc;

        if (path == NULL || out == NULL)
                return SOMBRA_EINVAL;
        if (cfg != NULL && ((unsigned)cfg->sync_mode > SOMBRA_SYNC_OFF ||
                            (cfg->sync_mode == SOMBRA_SYNC_NORMAL && cfg->sync_interval == 0)))
                return SOMBRA_EINVAL;
        g = calloc(1, sizeof(*g));
        if (g == NULL)
                return SOMBRA_ENOMEM;
        if (cfg != NULL)
                g->cfg = *cfg;
        else
                sombra_config_production(&g->cfg);
        rc = store_open(path, &g->cfg, faults, &g->store);
        if (rc == SOMBRA_OK) {
                g->w.g = g;
                g->w.pager = store_pager(g->store);
                rc = dict_load(&g->dict, g->store);
        }
        if (rc == SOMBRA_OK)
                rc = indexes_load(g);
        if (rc != SOMBRA_OK) {
                if (g->store != NULL)
                        store_close(g->store);
                g->store = NULL;
                graph_close(g);
                return rc;
        }
        g->last_sync_ns = now_ns();
        *out = g;
        return SOMBRA_OK;
}

int
graph_close(struct graph *g)
{
        int rc = SOMBRA_OK;

        if (g == NULL)
                return SOMBRA_EINVAL;
        if (g->store != NULL) {
                if (store_in_txn(g->store))
                        graph_rollback(g);
                rc = store_close(g->store);
        }
        dict_free(&g->dict);
        free(g->indexes);
        buf_free(&g->raw);
        buf_free(&g->raw2);
        buf_free(&g->key);
        rec_free(&g->before);
        rec_free(&g->after);
        graph_adjvec_free(&g->adj);
        graph_reader_release(&g->w);
        idset_free(&g->seen);
        idbits_free(&g->known);
        free(g->held);
        free(g->held_spare);
        buf_free(&g->held_bytes);
        free(g);
        return rc;
}
