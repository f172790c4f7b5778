/*
 * test_verify.c - verify passes on a large healthy graph and names the
 * problem in a damaged one. Damage is made below the graph layer, through the
 * store or the file, the way a bug or a bad disk would make it.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "graph.h"
#include "record.h"
#include "store.h"
#include "support.h"

#define DB_NAME "v.sombra" /* the database, in the test's directory */

static struct graph *g;

static void
setup(void)
{
        support_dir_make("verify");
        cr_assert_eq(graph_open(support_path(DB_NAME), NULL, NULL, &g), SOMBRA_OK);
}

static void
teardown(void)
{
        if (g != NULL)
                graph_close(g);
        support_dir_remove();
}

TestSuite(verify, .init = setup, .fini = teardown, .timeout = 600);

static void
build(uint64_t nodes, uint64_t edges, uint64_t batch)
{
        const char *labels[] = {"Person"};
        uint64_t rng = 88172645463325252ull;

        for (uint64_t i = 0; i < nodes; i += batch) {
                cr_assert_eq(graph_begin(g), SOMBRA_OK);
                for (uint64_t j = i; j < i + batch && j < nodes; j++) {
                        struct sombra_prop p = {"n", {.type = SOMBRA_INT, .u.i = (int64_t)j}};
                        cr_assert_eq(graph_node_create(g, labels, 1, &p, 1, NULL), SOMBRA_OK);
                }
                cr_assert_eq(graph_commit(g), SOMBRA_OK);
        }
        for (uint64_t i = 0; i < edges; i += batch) {
                cr_assert_eq(graph_begin(g), SOMBRA_OK);
                for (uint64_t j = i; j < i + batch && j < edges; j++) {
                        uint64_t a, b;
                        rng ^= rng << 13;
                        rng ^= rng >> 7;
                        rng ^= rng << 17;
                        a = 1 + rng % nodes;
                        b = 1 + (rng >> 32) % nodes;
                        cr_assert_eq(
                            graph_edge_create(g, a, b, j % 2 ? "KNOWS" : "FOLLOWS", NULL, 0, NULL),
                            SOMBRA_OK);
                }
                cr_assert_eq(graph_commit(g), SOMBRA_OK);
        }
}

static void
expect_problem(const char *words)
{
        struct graph_verify_report r;
        cr_assert_eq(graph_verify(g, &r), SOMBRA_ECORRUPT);
        cr_assert_not_null(strstr(r.problem, words), "problem was: %s", r.problem);
}

/* Deletes the entry `key` of `tree` behind the graph's back; verify must then name `words`. */
static void
expect_problem_without(enum store_tree tree, const void *key, size_t len, const char *words)
{
        struct store *s = graph_store(g);

        cr_assert_eq(store_begin(s), SOMBRA_OK);
        cr_assert_eq(store_del(s, tree, key, len), SOMBRA_OK);
        cr_assert_eq(store_commit(s, NULL), SOMBRA_OK);
        expect_problem(words);
}

Test(verify, large_graph_is_healthy_before_and_after_reopen)
{
        struct graph_verify_report r;

        build(100000, 500000, 10000);
        cr_assert_eq(graph_verify(g, &r), SOMBRA_OK, "verify: %s", r.problem);
        cr_assert_eq(r.nodes, 100000);
        cr_assert_eq(r.edges, 500000);
        cr_assert_eq(r.adj_entries, 1000000);
        cr_assert_eq(r.label_entries, 100000);
        cr_assert_eq(r.tree_pages + r.free_pages, r.pages - 2);
        cr_assert_eq(graph_close(g), SOMBRA_OK);
        cr_assert_eq(graph_open(support_path(DB_NAME), NULL, NULL, &g), SOMBRA_OK);
        cr_assert_eq(graph_verify(g, &r), SOMBRA_OK, "verify after reopen: %s", r.problem);
        cr_assert_eq(r.edges, 500000);
}

Test(verify, missing_adjacency_entry_is_found)
{
        uint8_t k[REC_ADJ_KEY_MAX];
        uint64_t a, b, e;
        size_t klen;

        cr_assert_eq(graph_node_create(g, NULL, 0, NULL, 0, &a), SOMBRA_OK);
        cr_assert_eq(graph_node_create(g, NULL, 0, NULL, 0, &b), SOMBRA_OK);
        cr_assert_eq(graph_edge_create(g, a, b, "T", NULL, 0, &e), SOMBRA_OK);
        /* Incoming at b, type 1 ("T" is the first name). */
        klen = rec_adj_key(k, store_compact_keys(graph_store(g)), &(struct rec_adj){b, 1, 1, e});
        expect_problem_without(TREE_ADJ, k, klen, "incoming");
}

Test(verify, counter_mismatch_is_found)
{
        struct store *s = graph_store(g);

        cr_assert_eq(graph_node_create(g, NULL, 0, NULL, 0, NULL), SOMBRA_OK);
        cr_assert_eq(store_begin(s), SOMBRA_OK);
        store_txn_state(s)->nodes = 5;
        /* A commit needs a logged change to count: rewrite a name entry as it is. */
        cr_assert_eq(store_put(s, TREE_INDEXES, "zzzzzzzz", 8, NULL, 0), SOMBRA_OK);
        cr_assert_eq(store_del(s, TREE_INDEXES, "zzzzzzzz", 8), SOMBRA_OK);
        cr_assert_eq(store_commit(s, NULL), SOMBRA_OK);
        expect_problem("counters");
}

Test(verify, missing_label_entry_is_found)
{
        const char *labels[] = {"L"};
        uint8_t k[REC_LABEL_KEY_MAX];
        uint64_t a;

        cr_assert_eq(graph_node_create(g, labels, 1, NULL, 0, &a), SOMBRA_OK);
        /* "L" is the first name. */
        expect_problem_without(
            TREE_LABELS, k, rec_label_key(k, store_compact_keys(graph_store(g)), 1, &a), "label");
}

Test(verify, damaged_page_on_disk_is_found_not_crashed_on)
{
        struct graph_verify_report r;
        uint8_t junk[64];

        build(2000, 5000, 1000);
        cr_assert_eq(graph_close(g), SOMBRA_OK);
        g = NULL;
        /* Scribble over the middle of page 5, a tree page of a checkpointed file. */
        memset(junk, 0xA5, sizeof(junk));
        support_write_at(DB_NAME, 5 * 8192 + 4000, junk, sizeof(junk));
        cr_assert_eq(graph_open(support_path(DB_NAME), NULL, NULL, &g), SOMBRA_OK);
        cr_assert_eq(graph_verify(g, &r), SOMBRA_ECORRUPT);
        cr_assert_not_null(strstr(r.problem, "damaged"), "problem was: %s", r.problem);
}
