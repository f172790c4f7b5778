/*
 * test_graph.c - every graph operation and value type, transactions, indexes,
 * traversals and bad input, through core/graph.h. Each test ends with a clean
 * verify, so an operation that breaks an invariant fails even when its own
 * result looks right.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "sombra.h"
#include "graph.h"
#include "pager.h"
#include "record.h"
#include "store.h"
#include "support.h"

#define DB_NAME "g.sombra" /* the database, in the test's directory */

static struct graph *g;

static void
setup(void)
{
        support_dir_make("graph");
        cr_assert_eq(graph_open(support_path(DB_NAME), NULL, NULL, &g), SOMBRA_OK);
}

static void
assert_verified(void)
{
        struct graph_verify_report r;
        int rc = graph_verify(g, &r);
        cr_assert_eq(rc, SOMBRA_OK, "verify: %s", r.problem);
}

static void
teardown(void)
{
        if (g != NULL) {
                assert_verified();
                cr_assert_eq(graph_close(g), SOMBRA_OK);
        }
        g = NULL;
        support_dir_remove();
}

static void
reopen(void)
{
        cr_assert_eq(graph_close(g), SOMBRA_OK);
        g = NULL;
        cr_assert_eq(graph_open(support_path(DB_NAME), NULL, NULL, &g), SOMBRA_OK);
}

static struct sombra_value
v_int(int64_t i)
{
        struct sombra_value v = {.type = SOMBRA_INT, .u.i = i};
        return v;
}

static struct sombra_value
v_str(const char *s)
{
        struct sombra_value v = {.type = SOMBRA_STRING, .u.s = {s, strlen(s)}};
        return v;
}

static uint64_t
node(const char *label)
{
        uint64_t id;
        const char *labels[] = {label};
        cr_assert_eq(graph_node_create(g, labels, label ? 1 : 0, NULL, 0, &id), SOMBRA_OK);
        return id;
}

static uint64_t
edge(uint64_t a, uint64_t b, const char *type)
{
        uint64_t id;
        cr_assert_eq(graph_edge_create(g, a, b, type, NULL, 0, &id), SOMBRA_OK);
        return id;
}

static const struct sombra_value *
prop(const struct graph_entity *e, const char *key)
{
        for (size_t i = 0; i < e->nprops; i++)
                if (strcmp(e->props[i].key, key) == 0)
                        return &e->props[i].value;
        return NULL;
}

/* How many nodes with `label` have `key` equal to v, by its index; their ids in *ids. */
static size_t
count_by_prop(const char *label, const char *key, const struct sombra_value *v,
              struct graph_ids *ids)
{
        cr_assert_eq(graph_nodes_by_prop(graph_writer_reader(g), label, key, v, ids), SOMBRA_OK);
        return ids->n;
}

/* How many nodes with `label` have `key` in lo..hi (NULL: open), by its index; ids in *ids. */
static size_t
count_by_range(const char *label, const char *key, const struct sombra_value *lo,
               const struct sombra_value *hi, struct graph_ids *ids)
{
        cr_assert_eq(graph_nodes_by_range(graph_writer_reader(g), label, key, lo, hi, ids),
                     SOMBRA_OK);
        return ids->n;
}

TestSuite(graph, .init = setup, .fini = teardown);

Test(graph, node_keeps_every_value_type_across_reopen)
{
        static const uint8_t blob[] = {0, 1, 2, 255, 0};
        const char *labels[] = {"Person", "Admin"};
        struct sombra_prop props[] = {
            {"nothing", {.type = SOMBRA_NULL}},
            {"active", {.type = SOMBRA_BOOL, .u.b = true}},
            {"age", {.type = SOMBRA_INT, .u.i = -42}},
            {"score", {.type = SOMBRA_DOUBLE, .u.d = 3.25}},
            {"name", {.type = SOMBRA_STRING, .u.s = {"Ada", 3}}},
            {"raw", {.type = SOMBRA_BYTES, .u.s = {blob, sizeof(blob)}}},
        };
        struct graph_entity e = {0};
        uint64_t id;

        cr_assert_eq(graph_node_create(g, labels, 2, props, 6, &id), SOMBRA_OK);
        reopen();
        cr_assert_eq(graph_node_get(graph_writer_reader(g), id, &e), SOMBRA_OK);
        cr_assert_eq(e.nlabels, 2);
        cr_assert_eq(e.nprops, 6);
        cr_assert_eq(prop(&e, "nothing")->type, SOMBRA_NULL);
        cr_assert(prop(&e, "active")->u.b);
        cr_assert_eq(prop(&e, "age")->u.i, -42);
        cr_assert_eq(prop(&e, "score")->u.d, 3.25);
        cr_assert_eq(prop(&e, "name")->u.s.len, 3);
        cr_assert_eq(memcmp(prop(&e, "name")->u.s.ptr, "Ada", 3), 0);
        cr_assert_eq(prop(&e, "raw")->type, SOMBRA_BYTES);
        cr_assert_eq(memcmp(prop(&e, "raw")->u.s.ptr, blob, sizeof(blob)), 0);
        graph_entity_free(&e);
}

/* A record in the fixed-width format of earlier files (record.h), made here by hand. */
static void
fixed_record(const struct rec *r, bool edge, struct buf *out)
{
        int rc = SOMBRA_OK;

        buf_reset(out);
        if (edge) {
                rc |= buf_put_u64(out, r->src) | buf_put_u64(out, r->dst);
                rc |= buf_put_u32(out, r->type);
        } else {
                rc |= buf_put_u16(out, (uint16_t)r->nlabels);
                for (uint32_t i = 0; i < r->nlabels; i++)
                        rc |= buf_put_u32(out, r->labels[i]);
        }
        rc |= buf_put_u16(out, (uint16_t)r->nprops);
        for (uint32_t i = 0; i < r->nprops; i++) {
                const struct sombra_value *v = &r->props[i].value;
                uint64_t bits;

                rc |= buf_put_u32(out, r->props[i].key) | buf_put_u8(out, (uint8_t)v->type);
                memcpy(&bits, &v->u.d, sizeof(bits));
                if (v->type == SOMBRA_BOOL)
                        rc |= buf_put_u8(out, v->u.b);
                else if (v->type == SOMBRA_INT || v->type == SOMBRA_DOUBLE)
                        rc |= buf_put_u64(out, v->type == SOMBRA_INT ? (uint64_t)v->u.i : bits);
                else if (v->type == SOMBRA_STRING || v->type == SOMBRA_BYTES)
                        rc |= buf_put_u32(out, (uint32_t)v->u.s.len) |
                              buf_append(out, v->u.s.ptr, v->u.s.len);
        }
        cr_assert_eq(rc, SOMBRA_OK);
}

/* The stored bytes of node or edge `id`. */
static void
raw_record(bool edge, uint64_t id, struct buf *raw)
{
        struct store *s = graph_store(g);
        uint8_t k[REC_ID_MAX];
        size_t klen = rec_id(k, store_compact_keys(s), id);

        cr_assert_eq(store_get(s, store_committed(s), edge ? TREE_EDGES : TREE_NODES, k, klen, raw),
                     SOMBRA_OK);
}

/* Rewrites the record of node or edge `id` as an earlier file holds it. */
static void
record_make_fixed(bool edge, uint64_t id)
{
        struct store *s = graph_store(g);
        struct buf raw = BUF_INIT, fixed = BUF_INIT;
        struct rec r = REC_INIT;
        uint8_t k[REC_ID_MAX];
        size_t klen = rec_id(k, store_compact_keys(s), id);

        raw_record(edge, id, &raw);
        cr_assert_eq(raw.data[0], REC_COMPACT);
        cr_assert_eq(edge ? rec_decode_edge(&r, raw.data, raw.len)
                          : rec_decode_node(&r, raw.data, raw.len),
                     SOMBRA_OK);
        fixed_record(&r, edge, &fixed);
        cr_assert_gt(fixed.len, raw.len);
        cr_assert_eq(store_begin(s), SOMBRA_OK);
        cr_assert_eq(store_put(s, edge ? TREE_EDGES : TREE_NODES, k, klen, fixed.data, fixed.len),
                     SOMBRA_OK);
        cr_assert_eq(store_commit(s, NULL), SOMBRA_OK);
        rec_free(&r);
        buf_free(&raw);
        buf_free(&fixed);
}

Test(graph, records_of_the_fixed_format_are_read_and_rewritten_compact)
{
        const char *labels[] = {"Person"};
        struct sombra_prop props[] = {
            {"active", {.type = SOMBRA_BOOL, .u.b = true}},
            {"age", {.type = SOMBRA_INT, .u.i = -42}},
            {"score", {.type = SOMBRA_DOUBLE, .u.d = 3.25}},
            {"name", {.type = SOMBRA_STRING, .u.s = {"Ada", 3}}},
        };
        struct sombra_value year = v_int(1843);
        struct graph_entity e = {0};
        struct buf raw = BUF_INIT;
        uint64_t a, b, ab;

        cr_assert_eq(graph_node_create(g, labels, 1, props, 4, &a), SOMBRA_OK);
        b = node("Person");
        cr_assert_eq(graph_edge_create(g, a, b, "KNOWS", props + 1, 1, &ab), SOMBRA_OK);
        record_make_fixed(false, a);
        record_make_fixed(true, ab);
        reopen();

        cr_assert_eq(graph_node_get(graph_writer_reader(g), a, &e), SOMBRA_OK);
        cr_assert_eq(e.nlabels, 1);
        cr_assert_eq(e.nprops, 4);
        cr_assert(prop(&e, "active")->u.b);
        cr_assert_eq(prop(&e, "age")->u.i, -42);
        cr_assert_eq(prop(&e, "score")->u.d, 3.25);
        cr_assert_eq(memcmp(prop(&e, "name")->u.s.ptr, "Ada", 3), 0);
        graph_entity_free(&e);
        cr_assert_eq(graph_edge_get(graph_writer_reader(g), ab, &e), SOMBRA_OK);
        cr_assert_eq(e.src, a);
        cr_assert_eq(e.dst, b);
        cr_assert_str_eq(e.type, "KNOWS");
        cr_assert_eq(prop(&e, "age")->u.i, -42);
        graph_entity_free(&e);

        /* A change writes the record anew, compact. */
        cr_assert_eq(graph_node_set(g, a, "year", &year), SOMBRA_OK);
        cr_assert_eq(graph_edge_set(g, ab, "year", &year), SOMBRA_OK);
        raw_record(false, a, &raw);
        cr_assert_eq(raw.data[0], REC_COMPACT);
        raw_record(true, ab, &raw);
        cr_assert_eq(raw.data[0], REC_COMPACT);
        cr_assert_eq(graph_node_get(graph_writer_reader(g), a, &e), SOMBRA_OK);
        cr_assert_eq(e.nprops, 5);
        cr_assert_eq(prop(&e, "year")->u.i, 1843);
        cr_assert_eq(prop(&e, "age")->u.i, -42);
        graph_entity_free(&e);
        buf_free(&raw);
}

/* How many neighbours node has in dir over `types` (none: any); they are left in *adj. */
static size_t
neighbour_count(uint64_t node, enum sombra_dir dir, const char *const *types, size_t ntypes,
                struct graph_adjvec *adj)
{
        cr_assert_eq(graph_neighbors(graph_writer_reader(g), node, dir, types, ntypes, adj),
                     SOMBRA_OK);
        return adj->n;
}

/* A compact key (and value) of tree t, in the fixed format of older files. */
static void
entry_make_fixed(enum store_tree t, struct buf *key, struct buf *val)
{
        uint8_t k[REC_ADJ_KEY_MAX], v[REC_ID_MAX];
        struct rec_adj a;
        uint64_t id;
        uint32_t label;
        size_t klen;

        if (t == TREE_LABELS) {
                cr_assert_eq(rec_label_key_decode(key->data, key->len, true, &label, &id),
                             SOMBRA_OK);
                klen = rec_label_key(k, false, label, &id);
                cr_assert_eq(klen, 12);
        } else if (t == TREE_ADJ) {
                cr_assert_eq(rec_adj_key_decode(key->data, key->len, true, &a), SOMBRA_OK);
                klen = rec_adj_key(k, false, &a);
                cr_assert_eq(klen, 21);
                cr_assert_eq(rec_id_decode(val->data, val->len, true, &id), SOMBRA_OK);
                buf_reset(val);
                cr_assert_eq(buf_append(val, v, rec_id(v, false, id)), SOMBRA_OK);
        } else {
                cr_assert_eq(rec_id_decode(key->data, key->len, true, &id), SOMBRA_OK);
                klen = rec_id(k, false, id);
        }
        buf_reset(key);
        cr_assert_eq(buf_append(key, k, klen), SOMBRA_OK);
}

/*
 * Makes the database a file of meta format 4, as made before compact keys:
 * every key of the nodes, edges, labels and adj trees (and the adj values)
 * rewritten fixed, then the meta pages given that format.
 */
static void
keys_make_fixed(void)
{
        static const enum store_tree trees[] = {TREE_NODES, TREE_EDGES, TREE_LABELS, TREE_ADJ};
        struct store *s = graph_store(g);
        uint32_t page_size = store_page_size(s);

        cr_assert(store_compact_keys(s));
        for (size_t t = 0; t < sizeof(trees) / sizeof(trees[0]); t++) {
                struct buf keys[16], vals[16];
                struct btree_cursor c;
                size_t n = 0;
                int rc;

                store_cursor(s, store_committed(s), trees[t], &c);
                for (rc = btree_cursor_seek(&c, NULL, 0); rc == SOMBRA_OK && btree_cursor_valid(&c);
                     rc = btree_cursor_next(&c)) {
                        const uint8_t *k;
                        size_t klen;

                        cr_assert_lt(n, 16);
                        btree_cursor_key(&c, &k, &klen);
                        keys[n] = (struct buf)BUF_INIT;
                        vals[n] = (struct buf)BUF_INIT;
                        cr_assert_eq(buf_append(&keys[n], k, klen), SOMBRA_OK);
                        cr_assert_eq(btree_cursor_value(&c, &vals[n]), SOMBRA_OK);
                        n++;
                }
                btree_cursor_close(&c);
                cr_assert_eq(store_begin(s), SOMBRA_OK);
                for (size_t i = 0; i < n; i++) {
                        cr_assert_eq(store_del(s, trees[t], keys[i].data, keys[i].len), SOMBRA_OK);
                        entry_make_fixed(trees[t], &keys[i], &vals[i]);
                        cr_assert_eq(store_put(s, trees[t], keys[i].data, keys[i].len, vals[i].data,
                                               vals[i].len),
                                     SOMBRA_OK);
                        buf_free(&keys[i]);
                        buf_free(&vals[i]);
                }
                cr_assert_eq(store_commit(s, NULL), SOMBRA_OK);
        }
        cr_assert_eq(graph_close(g), SOMBRA_OK);
        g = NULL;
        support_meta_set_version(DB_NAME, page_size, 4);
        cr_assert_eq(graph_open(support_path(DB_NAME), NULL, NULL, &g), SOMBRA_OK);
}

/*
 * Makes the test's file, new and without a leaf yet, one of format 5:
 * compact keys, and leaves of the fixed layout from now on.
 */
static void
start_as_format_5(void)
{
        uint32_t page_size = store_page_size(graph_store(g));

        cr_assert_eq(graph_close(g), SOMBRA_OK);
        g = NULL;
        support_meta_set_version(DB_NAME, page_size, 5);
        cr_assert_eq(graph_open(support_path(DB_NAME), NULL, NULL, &g), SOMBRA_OK);
        cr_assert(store_compact_keys(graph_store(g)));
        cr_assert_eq(pager_leaf_cells(store_pager(graph_store(g))), PAGE_CELLS_FIXED);
}

/* How many entries tree t holds; *bytes: their keys' bytes. */
static size_t
tree_keys(enum store_tree t, size_t *bytes)
{
        struct store *s = graph_store(g);
        struct btree_cursor c;
        size_t n = 0;
        int rc;

        *bytes = 0;
        store_cursor(s, store_committed(s), t, &c);
        for (rc = btree_cursor_seek(&c, NULL, 0); rc == SOMBRA_OK && btree_cursor_valid(&c);
             rc = btree_cursor_next(&c)) {
                const uint8_t *k;
                size_t klen;

                btree_cursor_key(&c, &k, &klen);
                *bytes += klen;
                n++;
        }
        cr_assert_eq(rc, SOMBRA_OK);
        btree_cursor_close(&c);
        return n;
}

/* Tree t holds n entries whose keys take `bytes` bytes together. */
static void
expect_keys(enum store_tree t, size_t n, size_t bytes, const char *why)
{
        size_t got;

        cr_assert_eq(tree_keys(t, &got), n, "%s", why);
        cr_assert_eq(got, bytes, "%s", why);
}

Test(graph, a_file_with_fixed_keys_keeps_them_and_works)
{
        struct graph_adjvec adj = {0};
        struct graph_ids ids = {0};
        const char *knows[] = {"KNOWS"};
        uint64_t a, b, c, d, ab, ca;

        start_as_format_5();
        a = node("P");
        b = node("P");
        c = node("P");
        ab = edge(a, b, "KNOWS");
        edge(a, c, "LIKES");
        ca = edge(c, a, "KNOWS");
        keys_make_fixed();
        cr_assert(!store_compact_keys(graph_store(g)));

        cr_assert_eq(neighbour_count(a, SOMBRA_OUT, NULL, 0, &adj), 2);
        cr_assert_eq(neighbour_count(a, SOMBRA_BOTH, knows, 1, &adj), 2);
        cr_assert_eq(adj.v[0].edge + adj.v[1].edge, ab + ca);
        cr_assert_eq(graph_degree(graph_writer_reader(g), b, SOMBRA_IN, NULL, 0, &d), SOMBRA_OK);
        cr_assert_eq(d, 1);
        cr_assert_eq(graph_nodes_by_label(graph_writer_reader(g), "P", &ids), SOMBRA_OK);
        cr_assert_eq(ids.n, 3);
        cr_assert_eq(graph_ids_after(graph_writer_reader(g), true, ab, 10, &ids), SOMBRA_OK);
        cr_assert_eq(ids.n, 2, "edges after the first");
        cr_assert_eq(graph_node_exists(graph_writer_reader(g), c), SOMBRA_OK);

        /* New entries take the file's format; deleting finds the old ones. */
        d = node("P");
        edge(b, d, "KNOWS");
        cr_assert_eq(graph_edge_delete(g, ab), SOMBRA_OK);
        reopen();
        cr_assert(!store_compact_keys(graph_store(g)), "still format 4 after a checkpoint");
        expect_keys(TREE_ADJ, 6, 6 * 21, "every key fixed");
        expect_keys(TREE_NODES, 4, 4 * 8, "nodes keys");
        expect_keys(TREE_EDGES, 3, 3 * 8, "edges keys");
        expect_keys(TREE_LABELS, 4, 4 * 12, "labels keys");
        cr_assert_eq(graph_node_delete(g, c), SOMBRA_OK);
        cr_assert_eq(graph_node_delete(g, d), SOMBRA_OK);
        expect_keys(TREE_ADJ, 0, 0, "no edge left");
        expect_keys(TREE_LABELS, 2, 2 * 12, "a and b");
        graph_adjvec_free(&adj);
        graph_ids_free(&ids);
}

Test(graph, a_compacting_backup_writes_an_older_file_in_the_compact_formats)
{
        struct sombra_prop age = {"age", {.type = SOMBRA_INT, .u.i = 44}};
        const char *person[] = {"Person"};
        struct graph_entity e = {0};
        struct graph_adjvec adj = {0};
        uint64_t a, b, ab;
        struct buf raw = BUF_INIT;
        sombra_db *db;

        start_as_format_5();
        cr_assert_eq(graph_node_create(g, person, 1, &age, 1, &a), SOMBRA_OK);
        b = node("Person");
        cr_assert_eq(graph_edge_create(g, a, b, "KNOWS", &age, 1, &ab), SOMBRA_OK);
        record_make_fixed(false, a);
        record_make_fixed(true, ab);
        keys_make_fixed();
        cr_assert_eq(graph_close(g), SOMBRA_OK);
        g = NULL;

        cr_assert_eq(sombra_open(support_path(DB_NAME), NULL, &db), SOMBRA_OK);
        cr_assert_eq(sombra_backup_compact(db, support_path("copy")), SOMBRA_OK);
        cr_assert_eq(sombra_close(db), SOMBRA_OK);
        cr_assert_eq(graph_open(support_path("copy"), NULL, NULL, &g), SOMBRA_OK);
        cr_assert(store_compact_keys(graph_store(g)), "the copy is format 6");
        cr_assert_eq(pager_leaf_cells(store_pager(graph_store(g))), PAGE_CELLS_VARINT);
        expect_keys(TREE_ADJ, 2, 2 * 7, "node, dir, type and edge in 2 + 1 + 2 + 2 bytes, not 21");
        expect_keys(TREE_NODES, 2, 2 * 2, "nodes keys");
        expect_keys(TREE_LABELS, 2, 2 * 4, "labels keys");
        raw_record(false, a, &raw);
        cr_assert_eq(raw.data[0], REC_COMPACT);
        raw_record(true, ab, &raw);
        cr_assert_eq(raw.data[0], REC_COMPACT);
        cr_assert_eq(graph_node_get(graph_writer_reader(g), a, &e), SOMBRA_OK);
        cr_assert_eq(prop(&e, "age")->u.i, 44);
        graph_entity_free(&e);
        cr_assert_eq(neighbour_count(a, SOMBRA_OUT, NULL, 0, &adj), 1);
        cr_assert_eq(adj.v[0].node, b);
        cr_assert_eq(adj.v[0].edge, ab);
        graph_adjvec_free(&adj);
        buf_free(&raw);
}

Test(graph, a_new_file_has_compact_keys_and_cells)
{
        uint64_t a = node("P"), b = node("P");

        edge(a, b, "KNOWS");
        cr_assert(store_compact_keys(graph_store(g)));
        cr_assert_eq(pager_leaf_cells(store_pager(graph_store(g))), PAGE_CELLS_VARINT);
        expect_keys(TREE_ADJ, 2, 2 * 7, "node, dir, type and edge in 2 + 1 + 2 + 2 bytes, not 21");
        expect_keys(TREE_NODES, 2, 2 * 2, "ids 1 and 2 in 2 bytes each, not 8");
        expect_keys(TREE_EDGES, 1, 2, "edges keys");
        expect_keys(TREE_LABELS, 2, 2 * 4, "label and node in 2 + 2 bytes, not 12");
}

Test(graph, large_property_value_round_trips)
{
        size_t n = 3u << 20;
        char *big = malloc(n);
        struct graph_entity e = {0};
        struct sombra_value v = {.type = SOMBRA_BYTES, .u.s = {big, n}};
        uint64_t id = node("Blob");

        for (size_t i = 0; i < n; i++)
                big[i] = (char)(i * 31 + 7);
        cr_assert_eq(graph_node_set(g, id, "data", &v), SOMBRA_OK);
        reopen();
        cr_assert_eq(graph_node_get(graph_writer_reader(g), id, &e), SOMBRA_OK);
        cr_assert_eq(prop(&e, "data")->u.s.len, n);
        cr_assert_eq(memcmp(prop(&e, "data")->u.s.ptr, big, n), 0);
        graph_entity_free(&e);
        free(big);
}

/*
 * The writer compares a name with those it interned last before it hashes
 * it: names that share a prefix, more of them than it remembers, and a name
 * whose id a rollback freed for another must each keep their own id.
 */
Test(graph, names_that_share_a_prefix_or_a_freed_id_stay_apart)
{
        static const char *const keys[] = {"k",  "ka",  "kab", "kabc", "kb", "kba",
                                           "kc", "kca", "kx",  "ky",   "kz", "kabcd"};
        enum { NKEYS = sizeof(keys) / sizeof(keys[0]) };
        struct sombra_prop props[NKEYS];
        struct graph_entity e = {0};
        const char *labels[] = {"L"};
        uint64_t ids[3], later;

        for (int round = 0; round < 3; round++) {
                for (int i = 0; i < NKEYS; i++) { /* a different order each round */
                        int k = (i * 5 + round) % NKEYS;
                        props[i] = (struct sombra_prop){keys[k], v_int(k)};
                }
                cr_assert_eq(graph_node_create(g, labels, 1, props, NKEYS, &ids[round]), SOMBRA_OK);
        }
        cr_assert_eq(graph_begin(g), SOMBRA_OK);
        labels[0] = "Lost";
        node(labels[0]); /* "Lost" takes the next id, then gives it back */
        cr_assert_eq(graph_rollback(g), SOMBRA_OK);
        node("Taken"); /* the id "Lost" had */
        later = node("Lost");
        for (int round = 0; round < 3; round++) {
                cr_assert_eq(graph_node_get(graph_writer_reader(g), ids[round], &e), SOMBRA_OK);
                cr_assert_eq(e.nprops, NKEYS);
                for (int k = 0; k < NKEYS; k++)
                        cr_assert_eq(prop(&e, keys[k])->u.i, k, "key %s", keys[k]);
        }
        cr_assert_eq(graph_node_get(graph_writer_reader(g), later, &e), SOMBRA_OK);
        cr_assert_eq(e.nlabels, 1);
        cr_assert_str_eq(e.labels[0], "Lost");
        graph_entity_free(&e);
}

/* The writer remembers the name a caller's pointer held last (dict_intern's memo). */
Test(graph, a_name_buffer_written_over_names_what_it_holds_at_each_call)
{
        static const char *const texts[] = {"Alpha", "Alphabet", "Alp", "Beta", "Alpha"};
        enum { NTEXTS = sizeof(texts) / sizeof(texts[0]) };
        /* Side by side and 16-byte aligned: the memo keeps each in a slot of its own. */
        _Alignas(16) char bufs[2][16];
        const char *labels[] = {bufs[0]}, *other[] = {bufs[1]};
        uint64_t ids[NTEXTS], taken, back;
        struct graph_entity e = {0};

        for (int i = 0; i < NTEXTS; i++) {
                strcpy(bufs[0], texts[i]);
                cr_assert_eq(graph_node_create(g, labels, 1, NULL, 0, &ids[i]), SOMBRA_OK);
        }
        /* A name rolled back, its id taken by another name: the buffer's text is new again. */
        strcpy(bufs[0], "Lost");
        cr_assert_eq(graph_begin(g), SOMBRA_OK);
        cr_assert_eq(graph_node_create(g, labels, 1, NULL, 0, &back), SOMBRA_OK);
        cr_assert_eq(graph_rollback(g), SOMBRA_OK);
        strcpy(bufs[1], "Taken");
        cr_assert_eq(graph_node_create(g, other, 1, NULL, 0, &taken), SOMBRA_OK);
        cr_assert_eq(graph_node_create(g, labels, 1, NULL, 0, &back), SOMBRA_OK);
        for (int i = 0; i < NTEXTS; i++) {
                cr_assert_eq(graph_node_get(graph_writer_reader(g), ids[i], &e), SOMBRA_OK);
                cr_assert_eq(e.nlabels, 1);
                cr_assert_str_eq(e.labels[0], texts[i]);
        }
        cr_assert_eq(graph_node_get(graph_writer_reader(g), taken, &e), SOMBRA_OK);
        cr_assert_str_eq(e.labels[0], "Taken");
        cr_assert_eq(graph_node_get(graph_writer_reader(g), back, &e), SOMBRA_OK);
        cr_assert_str_eq(e.labels[0], "Lost");
        graph_entity_free(&e);
}

Test(graph, set_and_unset_properties_and_labels)
{
        struct graph_entity e = {0};
        struct sombra_value one = v_int(1), two = v_int(2);
        uint64_t id = node("A");

        cr_assert_eq(graph_node_set(g, id, "x", &one), SOMBRA_OK);
        cr_assert_eq(graph_node_set(g, id, "x", &two), SOMBRA_OK);
        cr_assert_eq(graph_node_label_add(g, id, "B"), SOMBRA_OK);
        cr_assert_eq(graph_node_label_add(g, id, "B"), SOMBRA_OK); /* idempotent */
        cr_assert_eq(graph_node_get(graph_writer_reader(g), id, &e), SOMBRA_OK);
        cr_assert_eq(prop(&e, "x")->u.i, 2);
        cr_assert_eq(e.nlabels, 2);
        cr_assert_eq(graph_node_unset(g, id, "x"), SOMBRA_OK);
        cr_assert_eq(graph_node_unset(g, id, "never-used"), SOMBRA_OK);
        cr_assert_eq(graph_node_label_remove(g, id, "A"), SOMBRA_OK);
        cr_assert_eq(graph_node_get(graph_writer_reader(g), id, &e), SOMBRA_OK);
        cr_assert_null(prop(&e, "x"));
        cr_assert_eq(e.nlabels, 1);
        cr_assert_str_eq(e.labels[0], "B");
        graph_entity_free(&e);
}

Test(graph, edges_have_type_endpoints_and_properties)
{
        struct graph_entity e = {0};
        struct sombra_prop since = {"since", {.type = SOMBRA_INT, .u.i = 2019}};
        struct sombra_value w = {.type = SOMBRA_DOUBLE, .u.d = 0.5};
        uint64_t a = node("P"), b = node("P"), id;

        cr_assert_eq(graph_edge_create(g, a, b, "KNOWS", &since, 1, &id), SOMBRA_OK);
        cr_assert_eq(graph_edge_set(g, id, "weight", &w), SOMBRA_OK);
        reopen();
        cr_assert_eq(graph_edge_get(graph_writer_reader(g), id, &e), SOMBRA_OK);
        cr_assert_eq(e.src, a);
        cr_assert_eq(e.dst, b);
        cr_assert_str_eq(e.type, "KNOWS");
        cr_assert_eq(prop(&e, "since")->u.i, 2019);
        cr_assert_eq(prop(&e, "weight")->u.d, 0.5);
        cr_assert_eq(graph_edge_unset(g, id, "since"), SOMBRA_OK);
        cr_assert_eq(graph_edge_get(graph_writer_reader(g), id, &e), SOMBRA_OK);
        cr_assert_null(prop(&e, "since"));
        cr_assert_eq(graph_edge_delete(g, id), SOMBRA_OK);
        cr_assert_eq(graph_edge_get(graph_writer_reader(g), id, &e), SOMBRA_ENOTFOUND);
        cr_assert_eq(graph_edge_delete(g, id), SOMBRA_ENOTFOUND);
        graph_entity_free(&e);
}

Test(graph, edge_to_missing_node_is_refused)
{
        uint64_t a = node("P"), id, n, m;

        cr_assert_eq(graph_edge_create(g, a, 999, "T", NULL, 0, &id), SOMBRA_ENOTFOUND);
        cr_assert_eq(graph_edge_create(g, 999, a, "T", NULL, 0, &id), SOMBRA_ENOTFOUND);
        cr_assert_eq(graph_counts(graph_writer_reader(g), &n, &m), SOMBRA_OK);
        cr_assert_eq(n, 1);
        cr_assert_eq(m, 0);
}

/*
 * The graph remembers the nodes it made and those edge creates found,
 * across transactions; a node deleted since, or made by a transaction that
 * rolled back, must be looked up again and refused.
 */
Test(graph, an_edge_to_a_node_deleted_or_rolled_back_since_it_was_found_is_refused)
{
        uint64_t a = node("P"), b = node("P"), c, id;

        edge(a, b, "T"); /* both found */
        cr_assert_eq(graph_node_delete(g, b), SOMBRA_OK);
        cr_assert_eq(graph_edge_create(g, a, b, "T", NULL, 0, &id), SOMBRA_ENOTFOUND);
        cr_assert_eq(graph_edge_create(g, b, a, "T", NULL, 0, &id), SOMBRA_ENOTFOUND);

        cr_assert_eq(graph_begin(g), SOMBRA_OK);
        c = node("P");
        edge(a, c, "T"); /* c found inside the transaction */
        cr_assert_eq(graph_rollback(g), SOMBRA_OK);
        cr_assert_eq(graph_edge_create(g, a, c, "T", NULL, 0, &id), SOMBRA_ENOTFOUND);

        cr_assert_eq(graph_begin(g), SOMBRA_OK);
        c = node("P"); /* known from its create alone */
        cr_assert_eq(graph_rollback(g), SOMBRA_OK);
        cr_assert_eq(graph_edge_create(g, a, c, "T", NULL, 0, &id), SOMBRA_ENOTFOUND);
        c = node("P");
        cr_assert_eq(graph_node_delete(g, c), SOMBRA_OK);
        cr_assert_eq(graph_edge_create(g, c, a, "T", NULL, 0, &id), SOMBRA_ENOTFOUND);

        cr_assert_eq(graph_bulk_begin(g), SOMBRA_OK); /* the same in a batch */
        cr_assert_eq(graph_begin(g), SOMBRA_OK);
        c = node("P");
        edge(c, a, "T");
        cr_assert_eq(graph_bulk_end(g, false), SOMBRA_OK);
        cr_assert_eq(graph_rollback(g), SOMBRA_OK);
        cr_assert_eq(graph_edge_create(g, c, a, "T", NULL, 0, &id), SOMBRA_ENOTFOUND);
        assert_verified();
}

Test(graph, neighbours_by_direction_and_type)
{
        struct graph_adjvec adj = {0};
        const char *knows[] = {"KNOWS"}, *nope[] = {"NO_SUCH_TYPE"};
        uint64_t a = node("P"), b = node("P"), c = node("P"), d;

        edge(a, b, "KNOWS");
        edge(a, c, "LIKES");
        edge(c, a, "KNOWS");
        edge(a, a, "SELF");
        cr_assert_eq(neighbour_count(a, SOMBRA_OUT, NULL, 0, &adj), 3);
        cr_assert_eq(neighbour_count(a, SOMBRA_IN, NULL, 0, &adj), 2);
        cr_assert_eq(neighbour_count(a, SOMBRA_BOTH, knows, 1, &adj), 2);
        for (size_t i = 0; i < adj.n; i++)
                cr_assert_str_eq(graph_type_name(graph_writer_reader(g), adj.v[i].type), "KNOWS");
        cr_assert_eq(neighbour_count(a, SOMBRA_BOTH, nope, 1, &adj), 0);
        cr_assert_eq(graph_degree(graph_writer_reader(g), a, SOMBRA_BOTH, NULL, 0, &d), SOMBRA_OK);
        cr_assert_eq(d, 5);
        cr_assert_eq(graph_neighbors(graph_writer_reader(g), 12345, SOMBRA_OUT, NULL, 0, &adj),
                     SOMBRA_ENOTFOUND);
        cr_assert_eq(graph_neighbors(graph_writer_reader(g), a, 0, NULL, 0, &adj), SOMBRA_EINVAL);
        graph_adjvec_free(&adj);
}

Test(graph, deleting_a_node_takes_its_edges)
{
        uint64_t a = node("P"), b = node("P"), c = node("P"), n, m, d;
        struct graph_ids ids = {0};

        edge(a, b, "T");
        edge(b, a, "T");
        edge(a, a, "T");
        edge(b, c, "T");
        cr_assert_eq(graph_node_delete(g, a), SOMBRA_OK);
        cr_assert_eq(graph_counts(graph_writer_reader(g), &n, &m), SOMBRA_OK);
        cr_assert_eq(n, 2);
        cr_assert_eq(m, 1);
        cr_assert_eq(graph_degree(graph_writer_reader(g), b, SOMBRA_BOTH, NULL, 0, &d), SOMBRA_OK);
        cr_assert_eq(d, 1);
        cr_assert_eq(graph_node_exists(graph_writer_reader(g), a), SOMBRA_ENOTFOUND);
        cr_assert_eq(graph_nodes_by_label(graph_writer_reader(g), "P", &ids), SOMBRA_OK);
        cr_assert_eq(ids.n, 2);
        cr_assert_eq(graph_node_delete(g, a), SOMBRA_ENOTFOUND);
        graph_ids_free(&ids);
}

Test(graph, ids_are_never_reused)
{
        uint64_t a = node("P"), b;

        cr_assert_eq(graph_node_delete(g, a), SOMBRA_OK);
        reopen();
        b = node("P");
        cr_assert_gt(b, a);
}

Test(graph, nodes_by_label_in_id_order)
{
        struct graph_ids ids = {0};
        uint64_t x[5];

        for (int i = 0; i < 5; i++)
                x[i] = node(i % 2 ? "Odd" : "Even");
        cr_assert_eq(graph_nodes_by_label(graph_writer_reader(g), "Even", &ids), SOMBRA_OK);
        cr_assert_eq(ids.n, 3);
        cr_assert_eq(ids.v[0], x[0]);
        cr_assert_eq(ids.v[1], x[2]);
        cr_assert_eq(ids.v[2], x[4]);
        cr_assert_eq(graph_nodes_by_label(graph_writer_reader(g), "Unknown", &ids), SOMBRA_OK);
        cr_assert_eq(ids.n, 0);
        graph_ids_free(&ids);
}

Test(graph, property_index_equality_and_range)
{
        struct graph_ids ids = {0};
        struct sombra_value lo = v_int(20), hi = v_int(29), eq = v_int(25), s = v_str("x");
        uint64_t id;

        for (int i = 0; i < 100; i++) {
                struct sombra_prop p = {"age", v_int(i)};
                const char *l[] = {"Person"};
                cr_assert_eq(graph_node_create(g, l, 1, &p, 1, &id), SOMBRA_OK);
        }
        /* An index made after the data covers the data. */
        cr_assert_eq(graph_index_create(g, "Person", "age"), SOMBRA_OK);
        cr_assert_eq(graph_index_create(g, "Person", "age"), SOMBRA_EEXIST);
        cr_assert_eq(count_by_prop("Person", "age", &eq, &ids), 1);
        cr_assert_eq(count_by_range("Person", "age", &lo, &hi, &ids), 10);
        cr_assert_eq(count_by_range("Person", "age", NULL, &lo, &ids), 21);
        cr_assert_eq(count_by_range("Person", "age", &hi, NULL, &ids), 71);
        /* Another type never matches a range of ints. */
        cr_assert_eq(graph_node_set(g, id, "age", &s), SOMBRA_OK);
        cr_assert_eq(count_by_range("Person", "age", &hi, NULL, &ids), 70);
        cr_assert_eq(count_by_prop("Person", "age", &s, &ids), 1);
        cr_assert_eq(ids.v[0], id);
        cr_assert_eq(graph_nodes_by_prop(graph_writer_reader(g), "Person", "name", &s, &ids),
                     SOMBRA_ENOTFOUND);
        reopen();
        cr_assert_eq(count_by_prop("Person", "age", &eq, &ids), 1);
        cr_assert_eq(graph_index_drop(g, "Person", "age"), SOMBRA_OK);
        cr_assert_eq(graph_nodes_by_prop(graph_writer_reader(g), "Person", "age", &eq, &ids),
                     SOMBRA_ENOTFOUND);
        graph_ids_free(&ids);
}

/*
 * Int, bool, null and double bounds are answered from the index keys alone,
 * which must agree with rec_value_cmp: -0.0 equals 0.0, NaN equals NaN and
 * sorts above every number, and no other type slips into a range.
 */
Test(graph, property_index_answers_doubles_and_bools_as_the_values_compare)
{
        static const double scores[] = {-0.0, 0.0, 1.5, -2.0, NAN, INFINITY};
        struct sombra_value zero = {.type = SOMBRA_DOUBLE, .u.d = 0.0};
        struct sombra_value lo = {.type = SOMBRA_DOUBLE, .u.d = -1.0};
        struct sombra_value hi = {.type = SOMBRA_DOUBLE, .u.d = 2.0};
        struct sombra_value nan = {.type = SOMBRA_DOUBLE, .u.d = NAN};
        struct sombra_value yes = {.type = SOMBRA_BOOL, .u.b = true};
        struct sombra_value str = v_str("0.0"), one = v_int(0);
        struct graph_ids ids = {0};
        const char *l[] = {"P"};
        uint64_t id;

        cr_assert_eq(graph_index_create(g, "P", "score"), SOMBRA_OK);
        for (size_t i = 0; i < sizeof(scores) / sizeof(scores[0]); i++) {
                struct sombra_prop p = {"score", {.type = SOMBRA_DOUBLE, .u.d = scores[i]}};
                cr_assert_eq(graph_node_create(g, l, 1, &p, 1, &id), SOMBRA_OK);
        }
        for (int i = 0; i < 3; i++) { /* other types under the same key */
                struct sombra_prop p = {"score", i == 0 ? str : i == 1 ? one : yes};
                cr_assert_eq(graph_node_create(g, l, 1, &p, 1, &id), SOMBRA_OK);
        }
        cr_assert_eq(count_by_prop("P", "score", &zero, &ids), 2);
        cr_assert_eq(count_by_prop("P", "score", &nan, &ids), 1);
        cr_assert_eq(count_by_range("P", "score", &lo, &hi, &ids), 3);
        cr_assert_eq(count_by_range("P", "score", &hi, NULL, &ids), 2); /* inf, NaN */
        cr_assert_eq(count_by_range("P", "score", NULL, &lo, &ids), 1);
        cr_assert_eq(count_by_prop("P", "score", &yes, &ids), 1);
        cr_assert_eq(count_by_range("P", "score", NULL, NULL, &ids), 9);
        graph_ids_free(&ids);
}

Test(graph, index_follows_every_kind_of_write)
{
        struct graph_ids ids = {0};
        struct sombra_value red = v_str("red"), blue = v_str("blue");
        uint64_t a = node("Car"), b = node("Bike");

        cr_assert_eq(graph_index_create(g, "Car", "colour"), SOMBRA_OK);
        cr_assert_eq(graph_node_set(g, a, "colour", &red), SOMBRA_OK);
        cr_assert_eq(graph_node_set(g, b, "colour", &red), SOMBRA_OK);
        cr_assert_eq(count_by_prop("Car", "colour", &red, &ids), 1);
        cr_assert_eq(graph_node_label_add(g, b, "Car"), SOMBRA_OK);
        cr_assert_eq(count_by_prop("Car", "colour", &red, &ids), 2);
        cr_assert_eq(graph_node_set(g, a, "colour", &blue), SOMBRA_OK);
        cr_assert_eq(count_by_prop("Car", "colour", &red, &ids), 1);
        cr_assert_eq(ids.v[0], b);
        cr_assert_eq(graph_node_label_remove(g, b, "Car"), SOMBRA_OK);
        cr_assert_eq(count_by_prop("Car", "colour", &red, &ids), 0);
        cr_assert_eq(graph_node_unset(g, a, "colour"), SOMBRA_OK);
        cr_assert_eq(count_by_prop("Car", "colour", &blue, &ids), 0);
        cr_assert_eq(graph_node_set(g, a, "colour", &blue), SOMBRA_OK);
        cr_assert_eq(graph_node_delete(g, a), SOMBRA_OK);
        cr_assert_eq(count_by_prop("Car", "colour", &blue, &ids), 0);
        graph_ids_free(&ids);
}

Test(graph, long_strings_in_an_index_match_exactly)
{
        char a[400], b[400];
        struct sombra_value va, vb;
        struct graph_ids ids = {0};
        uint64_t ia = node("Doc"), ib = node("Doc");

        memset(a, 'q', sizeof(a) - 1);
        a[sizeof(a) - 1] = '\0';
        strcpy(b, a);
        b[350] = 'r'; /* the two differ only past the index key's prefix */
        va = v_str(a);
        vb = v_str(b);
        cr_assert_eq(graph_index_create(g, "Doc", "body"), SOMBRA_OK);
        cr_assert_eq(graph_node_set(g, ia, "body", &va), SOMBRA_OK);
        cr_assert_eq(graph_node_set(g, ib, "body", &vb), SOMBRA_OK);
        cr_assert_eq(count_by_prop("Doc", "body", &va, &ids), 1);
        cr_assert_eq(ids.v[0], ia);
        cr_assert_eq(count_by_range("Doc", "body", &vb, &vb, &ids), 1);
        cr_assert_eq(ids.v[0], ib);
        graph_ids_free(&ids);
}

Test(graph, bfs_shortest_path_and_two_hop)
{
        struct graph_ids ids = {0};
        uint64_t n[6], count;
        const char *road[] = {"ROAD"};

        for (int i = 0; i < 6; i++)
                n[i] = node("City");
        /* 0 -> 1 -> 2 -> 3 by ROAD, 0 -> 4 -> 3 by RAIL, 5 isolated */
        edge(n[0], n[1], "ROAD");
        edge(n[1], n[2], "ROAD");
        edge(n[2], n[3], "ROAD");
        edge(n[0], n[4], "RAIL");
        edge(n[4], n[3], "RAIL");
        cr_assert_eq(graph_bfs(graph_writer_reader(g), n[0], SOMBRA_OUT, NULL, 0, 1, &ids),
                     SOMBRA_OK);
        cr_assert_eq(ids.n, 3);
        cr_assert_eq(ids.v[0], n[0]);
        cr_assert_eq(graph_bfs(graph_writer_reader(g), n[0], SOMBRA_OUT, NULL, 0, 10, &ids),
                     SOMBRA_OK);
        cr_assert_eq(ids.n, 5);
        cr_assert_eq(graph_bfs(graph_writer_reader(g), n[0], SOMBRA_OUT, road, 1, 2, &ids),
                     SOMBRA_OK);
        cr_assert_eq(ids.n, 3);
        cr_assert_eq(
            graph_shortest_path(graph_writer_reader(g), n[0], n[3], SOMBRA_OUT, NULL, 0, &ids),
            SOMBRA_OK);
        cr_assert_eq(ids.n, 3);
        cr_assert_eq(ids.v[0], n[0]);
        cr_assert_eq(ids.v[1], n[4]);
        cr_assert_eq(ids.v[2], n[3]);
        cr_assert_eq(
            graph_shortest_path(graph_writer_reader(g), n[0], n[3], SOMBRA_OUT, road, 1, &ids),
            SOMBRA_OK);
        cr_assert_eq(ids.n, 4);
        cr_assert_eq(
            graph_shortest_path(graph_writer_reader(g), n[3], n[0], SOMBRA_OUT, NULL, 0, &ids),
            SOMBRA_ENOTFOUND);
        cr_assert_eq(
            graph_shortest_path(graph_writer_reader(g), n[3], n[0], SOMBRA_IN, NULL, 0, &ids),
            SOMBRA_OK);
        cr_assert_eq(
            graph_shortest_path(graph_writer_reader(g), n[0], n[5], SOMBRA_BOTH, NULL, 0, &ids),
            SOMBRA_ENOTFOUND);
        cr_assert_eq(
            graph_shortest_path(graph_writer_reader(g), n[2], n[2], SOMBRA_OUT, NULL, 0, &ids),
            SOMBRA_OK);
        cr_assert_eq(ids.n, 1);
        cr_assert_eq(graph_two_hop_count(graph_writer_reader(g), n[0], SOMBRA_OUT, NULL, 0, &count),
                     SOMBRA_OK);
        cr_assert_eq(count, 2); /* 2 and 3 */
        cr_assert_eq(
            graph_two_hop_count(graph_writer_reader(g), n[3], SOMBRA_BOTH, NULL, 0, &count),
            SOMBRA_OK);
        cr_assert_eq(count, 2); /* 1 and 0 (3 itself excluded) */
        graph_ids_free(&ids);
}

Test(graph, rollback_leaves_no_trace)
{
        struct graph_ids ids = {0};
        uint64_t keep = node("Keep"), gone, n, m;
        struct sombra_value v = v_int(7);

        cr_assert_eq(graph_begin(g), SOMBRA_OK);
        gone = node("NewLabel");
        edge(keep, gone, "NEWTYPE");
        cr_assert_eq(graph_node_set(g, keep, "newkey", &v), SOMBRA_OK);
        cr_assert_eq(graph_index_create(g, "Keep", "newkey"), SOMBRA_OK);
        cr_assert_eq(graph_counts(graph_writer_reader(g), &n, &m),
                     SOMBRA_OK); /* read-your-writes */
        cr_assert_eq(n, 2);
        cr_assert_eq(m, 1);
        cr_assert_eq(graph_rollback(g), SOMBRA_OK);
        cr_assert_eq(graph_counts(graph_writer_reader(g), &n, &m), SOMBRA_OK);
        cr_assert_eq(n, 1);
        cr_assert_eq(m, 0);
        cr_assert_eq(graph_node_exists(graph_writer_reader(g), gone), SOMBRA_ENOTFOUND);
        cr_assert_eq(graph_nodes_by_label(graph_writer_reader(g), "NewLabel", &ids), SOMBRA_OK);
        cr_assert_eq(ids.n, 0);
        cr_assert_eq(graph_nodes_by_prop(graph_writer_reader(g), "Keep", "newkey", &v, &ids),
                     SOMBRA_ENOTFOUND);
        reopen();
        cr_assert_eq(graph_counts(graph_writer_reader(g), &n, &m), SOMBRA_OK);
        cr_assert_eq(n, 1);
        cr_assert_eq(graph_nodes_by_label(graph_writer_reader(g), "NewLabel", &ids), SOMBRA_OK);
        cr_assert_eq(ids.n, 0);
        graph_ids_free(&ids);
}

Test(graph, transaction_commits_atomically)
{
        uint64_t n, m, a;

        cr_assert_eq(graph_begin(g), SOMBRA_OK);
        cr_assert_eq(graph_begin(g), SOMBRA_EBUSY);
        a = node("P");
        for (int i = 0; i < 1000; i++)
                edge(a, node("P"), "T");
        cr_assert_eq(graph_commit(g), SOMBRA_OK);
        cr_assert_eq(graph_commit(g), SOMBRA_ENOTXN);
        cr_assert_eq(graph_rollback(g), SOMBRA_ENOTXN);
        reopen();
        cr_assert_eq(graph_counts(graph_writer_reader(g), &n, &m), SOMBRA_OK);
        cr_assert_eq(n, 1001);
        cr_assert_eq(m, 1000);
}

Test(graph, refused_write_keeps_the_transaction_usable)
{
        uint64_t a, n;

        cr_assert_eq(graph_begin(g), SOMBRA_OK);
        a = node("P");
        cr_assert_eq(graph_edge_create(g, a, 4242, "T", NULL, 0, NULL), SOMBRA_ENOTFOUND);
        cr_assert_eq(graph_node_label_add(g, 4242, "X"), SOMBRA_ENOTFOUND);
        cr_assert_eq(graph_node_create(g, NULL, 1, NULL, 0, NULL), SOMBRA_EINVAL);
        cr_assert_eq(graph_commit(g), SOMBRA_OK);
        cr_assert_eq(graph_counts(graph_writer_reader(g), &n, NULL), SOMBRA_OK);
        cr_assert_eq(n, 1);
}

Test(graph, bad_input_gets_a_clear_error)
{
        char longname[SOMBRA_MAX_NAME + 2];
        const char *labels[] = {""}, *toolong[] = {longname};
        struct sombra_prop badtype = {"k", {.type = (enum sombra_type)99}};
        struct sombra_prop nullptr_str = {"k", {.type = SOMBRA_STRING, .u.s = {NULL, 5}}};
        struct sombra_prop huge = {"k", {.type = SOMBRA_BYTES, .u.s = {"", SOMBRA_MAX_VALUE + 1}}};
        struct sombra_prop nokey = {NULL, {.type = SOMBRA_NULL}};
        struct graph_entity e = {0};
        struct graph_ids ids = {0};
        uint64_t id, n;

        memset(longname, 'x', sizeof(longname) - 1);
        longname[sizeof(longname) - 1] = '\0';
        cr_assert_eq(graph_node_create(NULL, NULL, 0, NULL, 0, &id), SOMBRA_EINVAL);
        cr_assert_eq(graph_node_create(g, labels, 1, NULL, 0, &id), SOMBRA_EINVAL);
        cr_assert_eq(graph_node_create(g, toolong, 1, NULL, 0, &id), SOMBRA_ETOOBIG);
        cr_assert_eq(graph_node_create(g, NULL, 0, &badtype, 1, &id), SOMBRA_EINVAL);
        cr_assert_eq(graph_node_create(g, NULL, 0, &nullptr_str, 1, &id), SOMBRA_EINVAL);
        cr_assert_eq(graph_node_create(g, NULL, 0, &huge, 1, &id), SOMBRA_ETOOBIG);
        cr_assert_eq(graph_node_create(g, NULL, 0, &nokey, 1, &id), SOMBRA_EINVAL);
        cr_assert_eq(graph_node_create(g, NULL, SOMBRA_MAX_LABELS + 1, NULL, 0, &id),
                     SOMBRA_ETOOBIG);
        cr_assert_eq(graph_node_get(graph_writer_reader(g), 77, &e), SOMBRA_ENOTFOUND);
        cr_assert_eq(graph_node_get(graph_writer_reader(g), 77, NULL), SOMBRA_EINVAL);
        cr_assert_eq(graph_node_set(g, 77, "k", NULL), SOMBRA_EINVAL);
        cr_assert_eq(graph_node_set(g, 77, NULL, &badtype.value), SOMBRA_EINVAL);
        cr_assert_eq(graph_edge_create(g, 1, 2, NULL, NULL, 0, &id), SOMBRA_EINVAL);
        cr_assert_eq(graph_nodes_by_label(graph_writer_reader(g), NULL, &ids), SOMBRA_EINVAL);
        cr_assert_eq(graph_index_create(g, "", "k"), SOMBRA_EINVAL);
        cr_assert_eq(graph_verify(NULL, NULL), SOMBRA_EINVAL);
        cr_assert_eq(graph_counts(graph_writer_reader(g), &n, NULL), SOMBRA_OK);
        cr_assert_eq(n, 0); /* nothing half-made */
        graph_entity_free(&e);
}

Test(graph, many_operations_stay_consistent)
{
        uint64_t ids[2000], n, m;
        unsigned seed = 7;

        cr_assert_eq(graph_begin(g), SOMBRA_OK);
        for (int i = 0; i < 2000; i++)
                ids[i] = node(i % 3 ? "A" : "B");
        for (int i = 0; i < 10000; i++)
                edge(ids[rand_r(&seed) % 2000], ids[rand_r(&seed) % 2000], i % 2 ? "X" : "Y");
        cr_assert_eq(graph_commit(g), SOMBRA_OK);
        for (int i = 0; i < 300; i++)
                cr_assert_eq(graph_node_delete(g, ids[i * 5]), SOMBRA_OK);
        assert_verified();
        reopen();
        cr_assert_eq(graph_counts(graph_writer_reader(g), &n, &m), SOMBRA_OK);
        cr_assert_eq(n, 1700);
}

Test(graph, bad_configuration_is_refused)
{
        struct sombra_config cfg;
        struct graph *other;
        const char *p2 = support_path("other.sombra");

        sombra_config_production(&cfg);
        cfg.sync_mode = (enum sombra_sync_mode)17;
        cr_assert_eq(graph_open(p2, &cfg, NULL, &other), SOMBRA_EINVAL);
        sombra_config_production(&cfg);
        cfg.page_size = 5000;
        cr_assert_eq(graph_open(p2, &cfg, NULL, &other), SOMBRA_EINVAL);
        cr_assert_eq(graph_open(NULL, &cfg, NULL, &other), SOMBRA_EINVAL);
        /* The database already open here is locked against a second open. */
        cr_assert_eq(graph_open(support_path(DB_NAME), NULL, NULL, &other), SOMBRA_ELOCKED);
}

Test(graph, shortest_path_through_a_cycle_ends)
{
        struct graph_ids ids = {0};
        uint64_t a = node("P"), b = node("P"), c = node("P"), d = node("P");

        /* Revisiting b from c must not make b's parent c: the walk back would never end. */
        edge(a, b, "T");
        edge(b, c, "T");
        edge(c, b, "T");
        edge(c, d, "T");
        cr_assert_eq(graph_shortest_path(graph_writer_reader(g), a, d, SOMBRA_OUT, NULL, 0, &ids),
                     SOMBRA_OK);
        cr_assert_eq(ids.n, 4);
        cr_assert_eq(ids.v[0], a);
        cr_assert_eq(ids.v[1], b);
        cr_assert_eq(ids.v[2], c);
        cr_assert_eq(ids.v[3], d);
        graph_ids_free(&ids);
}

/* Lines of /proc/self/maps: the process's memory mappings. */
static int
mappings(void)
{
        FILE *f = fopen("/proc/self/maps", "r");
        int n = 0, c;

        cr_assert(f != NULL);
        while ((c = fgetc(f)) != EOF)
                n += c == '\n';
        fclose(f);
        return n;
}

Test(graph, opening_and_closing_again_and_again_leaves_no_mappings_behind)
{
        int before = -1;

        for (int i = 0; i < 300; i++) {
                struct graph *g;
                uint64_t id;

                cr_assert_eq(graph_open(support_path("again"), NULL, NULL, &g), SOMBRA_OK);
                cr_assert_eq(graph_begin(g), SOMBRA_OK);
                cr_assert_eq(graph_node_create(g, NULL, 0, NULL, 0, &id), SOMBRA_OK);
                cr_assert_eq(graph_commit(g), SOMBRA_OK);
                cr_assert_eq(graph_close(g), SOMBRA_OK);
                if (i == 20)
                        before = mappings(); /* after the allocators have warmed up */
        }
        cr_assert_lt(mappings() - before, 64, "%d mappings before, %d after", before, mappings());
}

/* ---- bulk mode ---- */

static void
expect_counts(uint64_t nodes, uint64_t edges)
{
        uint64_t n, m;

        cr_assert_eq(graph_counts(graph_writer_reader(g), &n, &m), SOMBRA_OK);
        cr_assert_eq(n, nodes);
        cr_assert_eq(m, edges);
}

/*
 * A run of creates in bulk mode holds its adjacency, label and index entries
 * and writes them sorted at its end: every one must be there, and verify
 * (at teardown) checks them against the records.
 */
Test(graph, bulk_run_writes_every_held_entry_at_its_end)
{
        enum { NODES = 300, EDGES = 1000, AGES = 7 };
        const char *types[] = {"T0", "T1"};
        struct graph_ids ids = {0};
        uint64_t n[NODES], rng = 3, total = 0, d;

        cr_assert_eq(graph_index_create(g, "Person", "age"), SOMBRA_OK);
        cr_assert_eq(graph_begin(g), SOMBRA_OK);
        cr_assert_eq(graph_bulk_begin(g), SOMBRA_OK);
        for (int i = 0; i < NODES; i++) {
                struct sombra_prop p = {"age", v_int(i % AGES)};
                const char *l[] = {"Person", i % 3 ? "Odd" : "Third"};
                cr_assert_eq(graph_node_create(g, l, 2, &p, 1, &n[i]), SOMBRA_OK);
        }
        for (int i = 0; i < EDGES; i++) {
                uint64_t a = n[support_next_rand(&rng) % NODES], b = n[support_next_rand(&rng) % 5];
                edge(a, b, types[i % 2]);
        }
        cr_assert_eq(graph_bulk_end(g, true), SOMBRA_OK);
        cr_assert_eq(graph_commit(g), SOMBRA_OK);
        cr_assert_eq(graph_nodes_by_label(graph_writer_reader(g), "Person", &ids), SOMBRA_OK);
        cr_assert_eq(ids.n, NODES);
        cr_assert_eq(graph_nodes_by_label(graph_writer_reader(g), "Third", &ids), SOMBRA_OK);
        cr_assert_eq(ids.n, NODES / 3);
        for (int a = 0; a < AGES; a++) {
                struct sombra_value v = v_int(a);
                cr_assert_eq(count_by_prop("Person", "age", &v, &ids),
                             NODES / AGES + (a < NODES % AGES));
        }
        for (int i = 0; i < NODES; i++) {
                cr_assert_eq(graph_degree(graph_writer_reader(g), n[i], SOMBRA_BOTH, NULL, 0, &d),
                             SOMBRA_OK);
                total += d;
        }
        cr_assert_eq(total, 2 * EDGES);
        reopen();
        cr_assert_eq(graph_nodes_by_label(graph_writer_reader(g), "Odd", &ids), SOMBRA_OK);
        cr_assert_eq(ids.n, NODES - NODES / 3);
        graph_ids_free(&ids);
}

/* A delete in the middle of a bulk run reads the adjacency the run held, so it is written first. */
Test(graph, delete_in_a_bulk_run_sees_the_entries_held_before_it)
{
        struct graph_adjvec adj = {0};
        uint64_t a, b;

        cr_assert_eq(graph_begin(g), SOMBRA_OK);
        cr_assert_eq(graph_bulk_begin(g), SOMBRA_OK);
        a = node("P");
        b = node("P");
        edge(a, b, "KNOWS");
        edge(b, a, "KNOWS");
        cr_assert_eq(graph_node_delete(g, b), SOMBRA_OK);
        /* The run goes on after the delete; b is gone, and it must not be remembered. */
        cr_assert_eq(graph_edge_create(g, a, b, "KNOWS", NULL, 0, NULL), SOMBRA_ENOTFOUND);
        edge(a, a, "SELF");
        cr_assert_eq(graph_bulk_end(g, true), SOMBRA_OK);
        cr_assert_eq(graph_commit(g), SOMBRA_OK);
        expect_counts(1, 1);
        cr_assert_eq(neighbour_count(a, SOMBRA_BOTH, NULL, 0, &adj),
                     2); /* the self-loop, once each way */
        graph_adjvec_free(&adj);
}

/*
 * A run dropped with its transaction leaves nothing: neither its held entries
 * nor the nodes it found, whose ids the next transaction hands out again.
 */
Test(graph, dropped_bulk_run_leaves_no_trace)
{
        struct graph_ids ids = {0};
        uint64_t keep = node("Keep"), gone, again;

        cr_assert_eq(graph_begin(g), SOMBRA_OK);
        cr_assert_eq(graph_bulk_begin(g), SOMBRA_OK);
        gone = node("Gone");
        edge(keep, gone, "LINK");
        cr_assert_eq(graph_bulk_end(g, false), SOMBRA_OK);
        cr_assert_eq(graph_rollback(g), SOMBRA_OK);
        expect_counts(1, 0);
        cr_assert_eq(graph_nodes_by_label(graph_writer_reader(g), "Gone", &ids), SOMBRA_OK);
        cr_assert_eq(ids.n, 0);
        cr_assert_eq(graph_begin(g), SOMBRA_OK);
        cr_assert_eq(graph_bulk_begin(g), SOMBRA_OK);
        cr_assert_eq(graph_edge_create(g, keep, gone, "LINK", NULL, 0, NULL), SOMBRA_ENOTFOUND);
        again = node("Again");
        cr_assert_eq(graph_bulk_end(g, true), SOMBRA_OK);
        cr_assert_eq(graph_commit(g), SOMBRA_OK);
        cr_assert_eq(graph_nodes_by_label(graph_writer_reader(g), "Again", &ids), SOMBRA_OK);
        cr_assert_eq(ids.n, 1);
        cr_assert_eq(ids.v[0], again);
        graph_ids_free(&ids);
}
