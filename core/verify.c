/*
 * verify.c - a full consistency check of the committed state.
 *
 * Three passes:
 *   1. pages: every tree is walked by btree_check (structure, key order,
 *      checksums as pages are read); together with the pages the pager knows
 *      to be free or retired, every page 2..npages-1 must be seen exactly once;
 *   2. records: every node and edge decodes; each edge's endpoints exist and
 *      its two adjacency entries are there with the right neighbour; each
 *      node's label entries and property index entries are there;
 *   3. counts: entries in the adjacency, label and index trees equal what the
 *      records call for (so there are no extra entries), and the state's node
 *      and edge counters equal the trees.
 * It stops at the first problem and describes it.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "graph.h"
#include "store.h"
#include "dict.h"
#include "idset.h"

struct verify {
        struct graph *g;
        struct store *s;
        const struct store_state *st;
        struct graph_verify_report *r;
        struct idset pages;
        struct buf raw, key;
        struct rec rec;
        uint32_t (*indexes)[2];
        size_t nindexes;
        uint64_t want_labels, want_index;
};

static int
problem(struct verify *v, int rc, const char *fmt, ...)
{
        va_list ap;

        if (v->r->status != SOMBRA_OK)
                return v->r->status;
        va_start(ap, fmt);
        vsnprintf(v->r->problem, sizeof(v->r->problem), fmt, ap);
        va_end(ap);
        v->r->status = rc == SOMBRA_ENOMEM ? rc : SOMBRA_ECORRUPT;
        return v->r->status;
}

static int
page_seen(void *arg, pgno_t pgno)
{
        struct verify *v = arg;
        bool added;
        int rc;

        if (pgno < 2 || pgno >= pager_npages(store_pager(v->s)))
                return problem(v, SOMBRA_ECORRUPT, "page %" PRIu64 " is outside the file", pgno);
        rc = idset_put(&v->pages, pgno, 0, &added);
        if (rc != SOMBRA_OK)
                return problem(v, rc, "out of memory");
        if (!added)
                return problem(v, SOMBRA_ECORRUPT, "page %" PRIu64 " is used twice", pgno);
        return SOMBRA_OK;
}

static const char *const tree_names[STORE_TREES] = {
    "nodes", "edges", "adjacency", "labels", "names", "name ids", "property index", "index list"};

static int
check_pages(struct verify *v, uint64_t entries[STORE_TREES])
{
        struct pager *p = store_pager(v->s);
        uint64_t tree_pages;
        int rc;

        for (int t = 0; t < STORE_TREES; t++) {
                rc = btree_check(p, v->st->roots[t], page_seen, v, &entries[t]);
                if (rc != SOMBRA_OK)
                        return problem(v, rc, "the %s tree is damaged (%s)", tree_names[t],
                                       sombra_strerror(rc));
        }
        tree_pages = v->pages.count;
        rc = pager_visit_unreachable(p, store_freelist_head(v->s), page_seen, v);
        if (rc != SOMBRA_OK)
                return problem(v, rc, "the free list is damaged (%s)", sombra_strerror(rc));
        v->r->pages = pager_npages(p);
        v->r->tree_pages = tree_pages;
        v->r->free_pages = v->pages.count - tree_pages;
        if (v->pages.count != v->r->pages - 2)
                return problem(v, SOMBRA_ECORRUPT,
                               "%" PRIu64 " of %" PRIu64 " pages are neither used nor free",
                               v->r->pages - 2 - v->pages.count, v->r->pages - 2);
        return SOMBRA_OK;
}

static bool
has(struct verify *v, enum store_tree t, const uint8_t *k, size_t klen, struct buf *val)
{
        return store_get(v->s, v->st, t, k, klen, val) == SOMBRA_OK;
}

static int
check_node(struct verify *v, uint64_t id)
{
        bool compact = store_compact_keys(v->s);
        uint8_t k[REC_LABEL_KEY_MAX];

        if (id == 0 || id >= v->st->next_node)
                return problem(v, SOMBRA_ECORRUPT, "node %" PRIu64 " is past the next id", id);
        for (uint32_t i = 0; i < v->rec.nlabels; i++) {
                if (dict_get(graph_dict(v->g), v->rec.labels[i]) == NULL)
                        return problem(v, SOMBRA_ECORRUPT, "node %" PRIu64 " has an unknown label",
                                       id);
                if (!has(v, TREE_LABELS, k, rec_label_key(k, compact, v->rec.labels[i], &id), NULL))
                        return problem(v, SOMBRA_ECORRUPT,
                                       "node %" PRIu64 " is missing from its label's list", id);
        }
        v->want_labels += v->rec.nlabels;
        for (uint32_t i = 0; i < v->rec.nprops; i++)
                if (dict_get(graph_dict(v->g), v->rec.props[i].key) == NULL)
                        return problem(v, SOMBRA_ECORRUPT,
                                       "node %" PRIu64 " has an unknown property key", id);
        for (size_t i = 0; i < v->nindexes; i++) {
                const struct sombra_value *val = rec_get_prop(&v->rec, v->indexes[i][1]);
                if (!rec_has_label(&v->rec, v->indexes[i][0]) || val == NULL)
                        continue;
                buf_reset(&v->key);
                if (rec_index_key(&v->key, v->indexes[i][0], v->indexes[i][1], val, id) !=
                        SOMBRA_OK ||
                    !has(v, TREE_PROPS, v->key.data, v->key.len, NULL))
                        return problem(v, SOMBRA_ECORRUPT,
                                       "node %" PRIu64 " is missing from a property index", id);
                v->want_index++;
        }
        return SOMBRA_OK;
}

static int
check_adj(struct verify *v, uint64_t node, uint8_t dir, uint64_t edge, uint64_t other)
{
        bool compact = store_compact_keys(v->s);
        uint8_t k[REC_ADJ_KEY_MAX];
        size_t klen = rec_adj_key(k, compact, &(struct rec_adj){node, dir, v->rec.type, edge});
        struct buf val = BUF_INIT;
        uint64_t found;
        bool ok;

        ok = has(v, TREE_ADJ, k, klen, &val) &&
             rec_id_decode(val.data, val.len, compact, &found) == SOMBRA_OK && found == other;
        buf_free(&val);
        if (!ok)
                return problem(v, SOMBRA_ECORRUPT,
                               "edge %" PRIu64 " lacks its %s entry at node %" PRIu64, edge,
                               dir == 0 ? "outgoing" : "incoming", node);
        return SOMBRA_OK;
}

static int
check_edge(struct verify *v, uint64_t id)
{
        bool compact = store_compact_keys(v->s);
        uint8_t k[REC_ID_MAX];
        int rc;

        if (id == 0 || id >= v->st->next_edge)
                return problem(v, SOMBRA_ECORRUPT, "edge %" PRIu64 " is past the next id", id);
        if (dict_get(graph_dict(v->g), v->rec.type) == NULL)
                return problem(v, SOMBRA_ECORRUPT, "edge %" PRIu64 " has an unknown type", id);
        if (!has(v, TREE_NODES, k, rec_id(k, compact, v->rec.src), NULL))
                return problem(v, SOMBRA_ECORRUPT, "edge %" PRIu64 " starts at a missing node", id);
        if (!has(v, TREE_NODES, k, rec_id(k, compact, v->rec.dst), NULL))
                return problem(v, SOMBRA_ECORRUPT, "edge %" PRIu64 " ends at a missing node", id);
        rc = check_adj(v, v->rec.src, 0, id, v->rec.dst);
        if (rc == SOMBRA_OK)
                rc = check_adj(v, v->rec.dst, 1, id, v->rec.src);
        return rc;
}

/* Walks the nodes or the edges tree, decoding and checking each record. */
static int
check_records(struct verify *v, enum store_tree t, uint64_t *count)
{
        struct btree_cursor c;
        int rc;

        *count = 0;
        store_cursor(v->s, v->st, t, &c);
        rc = btree_cursor_seek(&c, NULL, 0);
        while (rc == SOMBRA_OK && btree_cursor_valid(&c)) {
                const uint8_t *k;
                size_t klen;
                uint64_t id;
                btree_cursor_key(&c, &k, &klen);
                if (rec_id_decode(k, klen, store_compact_keys(v->s), &id) != SOMBRA_OK) {
                        rc = problem(v, SOMBRA_ECORRUPT, "a %s key of %zu bytes is no id",
                                     tree_names[t], klen);
                        break;
                }
                rc = btree_cursor_value(&c, &v->raw);
                if (rc == SOMBRA_OK)
                        rc = t == TREE_NODES ? rec_decode_node(&v->rec, v->raw.data, v->raw.len)
                                             : rec_decode_edge(&v->rec, v->raw.data, v->raw.len);
                if (rc != SOMBRA_OK) {
                        rc = problem(v, rc, "%s record %" PRIu64 " does not decode", tree_names[t],
                                     id);
                        break;
                }
                rc = t == TREE_NODES ? check_node(v, id) : check_edge(v, id);
                (*count)++;
                if (rc == SOMBRA_OK)
                        rc = btree_cursor_next(&c);
        }
        btree_cursor_close(&c);
        return rc;
}

static int
load_indexes(struct verify *v, uint64_t n)
{
        struct btree_cursor c;
        int rc;

        v->indexes = calloc(n ? n : 1, sizeof(*v->indexes));
        if (v->indexes == NULL)
                return problem(v, SOMBRA_ENOMEM, "out of memory");
        store_cursor(v->s, v->st, TREE_INDEXES, &c);
        rc = btree_cursor_seek(&c, NULL, 0);
        while (rc == SOMBRA_OK && btree_cursor_valid(&c) && v->nindexes < n) {
                const uint8_t *k;
                size_t klen;
                btree_cursor_key(&c, &k, &klen);
                if (klen != 8) {
                        rc = problem(v, SOMBRA_ECORRUPT, "an index list key is malformed");
                        break;
                }
                v->indexes[v->nindexes][0] = get_be32(k);
                v->indexes[v->nindexes][1] = get_be32(k + 4);
                v->nindexes++;
                rc = btree_cursor_next(&c);
        }
        btree_cursor_close(&c);
        return rc;
}

static int
check_counts(struct verify *v, const uint64_t entries[STORE_TREES])
{
        struct graph_verify_report *r = v->r;

        r->adj_entries = entries[TREE_ADJ];
        r->label_entries = entries[TREE_LABELS];
        r->index_entries = entries[TREE_PROPS];
        r->names = entries[TREE_NAME_IDS];
        if (r->nodes != v->st->nodes || r->edges != v->st->edges)
                return problem(v, SOMBRA_ECORRUPT,
                               "counters say %" PRIu64 " nodes and %" PRIu64
                               " edges, the trees hold %" PRIu64 " and %" PRIu64,
                               v->st->nodes, v->st->edges, r->nodes, r->edges);
        if (r->adj_entries != 2 * r->edges)
                return problem(v, SOMBRA_ECORRUPT,
                               "%" PRIu64 " adjacency entries for %" PRIu64 " edges",
                               r->adj_entries, r->edges);
        if (r->label_entries != v->want_labels)
                return problem(v, SOMBRA_ECORRUPT,
                               "%" PRIu64 " label entries, %" PRIu64 " expected", r->label_entries,
                               v->want_labels);
        if (r->index_entries != v->want_index)
                return problem(v, SOMBRA_ECORRUPT,
                               "%" PRIu64 " index entries, %" PRIu64 " expected", r->index_entries,
                               v->want_index);
        if (entries[TREE_NAMES] != r->names || r->names + 1 != v->st->next_name)
                return problem(v, SOMBRA_ECORRUPT, "the two name trees disagree");
        return SOMBRA_OK;
}

int
graph_verify(struct graph *g, struct graph_verify_report *report)
{
        struct verify v;
        uint64_t entries[STORE_TREES] = {0};
        int rc;

        if (g == NULL || report == NULL)
                return SOMBRA_EINVAL;
        memset(report, 0, sizeof(*report));
        memset(&v, 0, sizeof(v));
        v.g = g;
        v.s = graph_store(g);
        if (store_in_txn(v.s))
                return SOMBRA_EBUSY;
        v.st = store_committed(v.s);
        v.r = report;
        rc = check_pages(&v, entries);
        if (rc == SOMBRA_OK)
                rc = load_indexes(&v, entries[TREE_INDEXES]);
        if (rc == SOMBRA_OK)
                rc = check_records(&v, TREE_NODES, &report->nodes);
        if (rc == SOMBRA_OK)
                rc = check_records(&v, TREE_EDGES, &report->edges);
        if (rc == SOMBRA_OK)
                rc = check_counts(&v, entries);
        idset_free(&v.pages);
        buf_free(&v.raw);
        buf_free(&v.key);
        rec_free(&v.rec);
        free(v.indexes);
        return rc;
}
