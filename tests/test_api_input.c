/*
 * test_api_input.c - bad input through the public API of include/sombra.h.
 *
 * Each test hands the library one kind of wrong input (NULL or stale handles,
 * unknown ids, names and values past their limits, bad batch references,
 * misuse from two threads, files that are not databases or cannot be opened)
 * and checks two things: the call returns the status sombra.h documents, and
 * the database is as healthy afterwards as it was before (sombra_verify
 * passes and what was committed is still there).
 */
#define _GNU_SOURCE /* setresuid, setresgid */

#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "sombra.h"
#include "support.h"

static sombra_db *db;

static void
setup(void)
{
        support_dir_make("api-input");
        db = NULL;
}

static void
teardown(void)
{
        support_db_close(&db);
        support_dir_remove();
}

TestSuite(api_input, .init = setup, .fini = teardown, .timeout = 240);

#define DB_FILE "in.sombra"

static void
open_with(const struct sombra_config *cfg)
{
        int rc = sombra_open(support_path(DB_FILE), cfg, &db);

        cr_assert_eq(rc, SOMBRA_OK, "open: %s", sombra_strerror(rc));
}

/* A configuration that does not sync: these tests are about statuses, not durability. */
static void
open_fast(void)
{
        struct sombra_config cfg;

        sombra_config_benchmark(&cfg);
        open_with(&cfg);
}

static uint64_t
make_edge(sombra_conn *c, uint64_t src, uint64_t dst)
{
        uint64_t id;

        cr_assert_eq(sombra_edge_create(c, src, dst, "LINK", NULL, 0, &id), SOMBRA_OK);
        return id;
}

/*
 * Opens the database with nodes *a and *b, both labelled L, and an edge
 * a -> b, made through *c, which the caller gives back; returns the edge.
 */
static uint64_t
open_with_pair(sombra_conn **c, uint64_t *a, uint64_t *b)
{
        open_fast();
        *c = support_conn_acquire(db);
        *a = support_node_make(*c, "L");
        *b = support_node_make(*c, "L");
        return make_edge(*c, *a, *b);
}

/* sombra_verify passes and a fresh connection counts what the test committed. */
static void
expect_healthy(uint64_t nodes, uint64_t edges)
{
        char problem[256];
        uint64_t n, m;
        sombra_conn *c;
        int rc = sombra_verify(db, problem, sizeof(problem));

        cr_assert_eq(rc, SOMBRA_OK, "verify: %s (%s)", sombra_strerror(rc), problem);
        c = support_conn_acquire(db);
        cr_assert_eq(sombra_count(c, &n, &m), SOMBRA_OK);
        cr_assert_eq(n, nodes);
        cr_assert_eq(m, edges);
        cr_assert_eq(sombra_conn_release(c), SOMBRA_OK);
}

/* Closes and opens the file again: what reached the disk is healthy too. */
static void
expect_healthy_after_reopen(uint64_t nodes, uint64_t edges)
{
        support_db_close(&db);
        open_fast();
        expect_healthy(nodes, edges);
}

/* A new batch holding one node create; *ref (may be NULL) names it. */
static sombra_batch *
batch_of_one_node(uint64_t *ref)
{
        sombra_batch *b;

        cr_assert_eq(sombra_batch_new(&b), SOMBRA_OK);
        cr_assert_eq(sombra_batch_node_create(b, NULL, 0, NULL, 0, ref), SOMBRA_OK);
        return b;
}

static const struct sombra_value int_value = {.type = SOMBRA_INT, .u.i = 7};

/* ---- NULL handles and NULL arguments ---- */

Test(api_input, null_database_arguments_get_einval)
{
        struct sombra_config cfg;
        struct sombra_stats st;
        sombra_conn *c;
        sombra_db *other = NULL;

        cr_assert_eq(sombra_open(NULL, NULL, &other), SOMBRA_EINVAL);
        cr_assert_eq(sombra_open(support_path(DB_FILE), NULL, NULL), SOMBRA_EINVAL);
        cr_assert_eq(sombra_open("", NULL, &other), SOMBRA_EINVAL);
        cr_assert_eq(other, NULL, "out parameters are left alone on error");
        cr_assert(!support_file_exists(DB_FILE), "a refused open created the file");
        cr_assert_eq(sombra_config_production(NULL), SOMBRA_EINVAL);
        cr_assert_eq(sombra_config_balanced(NULL), SOMBRA_EINVAL);
        cr_assert_eq(sombra_config_benchmark(NULL), SOMBRA_EINVAL);
        sombra_config_production(&cfg);
        cfg.max_connections = 0;
        cr_assert_eq(sombra_open(support_path(DB_FILE), &cfg, &other), SOMBRA_EINVAL);
        cfg.max_connections = 4;
        cfg.sync_mode = (enum sombra_sync_mode)9;
        cr_assert_eq(sombra_open(support_path(DB_FILE), &cfg, &other), SOMBRA_EINVAL);

        cr_assert_eq(sombra_close(NULL), SOMBRA_EINVAL);
        cr_assert_eq(sombra_conn_acquire(NULL, &c), SOMBRA_EINVAL);
        cr_assert_eq(sombra_conn_acquire_timeout(NULL, 0, &c), SOMBRA_EINVAL);
        cr_assert_eq(sombra_checkpoint(NULL), SOMBRA_EINVAL);
        cr_assert_eq(sombra_verify(NULL, NULL, 0), SOMBRA_EINVAL);
        cr_assert_eq(sombra_stats(NULL, &st), SOMBRA_EINVAL);
        cr_assert(sombra_strerror(12345) != NULL);
        cr_assert(sombra_strerror(INT32_MIN) != NULL);

        open_fast();
        cr_assert_eq(sombra_conn_acquire(db, NULL), SOMBRA_EINVAL);
        cr_assert_eq(sombra_conn_acquire_timeout(db, 0, NULL), SOMBRA_EINVAL);
        cr_assert_eq(sombra_stats(db, NULL), SOMBRA_EINVAL);
        /* No connection was taken by the failed acquires: close does not see one in use. */
        expect_healthy(0, 0);
}

Test(api_input, null_connection_gets_einval_from_every_call)
{
        const struct sombra_entity *e;
        const struct sombra_neighbor *nb;
        const uint64_t *ids;
        sombra_batch *b;
        uint64_t id, t, count;
        size_t n;
        bool done;

        open_fast();
        cr_assert_eq(sombra_node_create(NULL, NULL, 0, NULL, 0, &id), SOMBRA_EINVAL);
        cr_assert_eq(sombra_node_delete(NULL, 1), SOMBRA_EINVAL);
        cr_assert_eq(sombra_node_set(NULL, 1, "k", &int_value), SOMBRA_EINVAL);
        cr_assert_eq(sombra_node_unset(NULL, 1, "k"), SOMBRA_EINVAL);
        cr_assert_eq(sombra_node_label_add(NULL, 1, "L"), SOMBRA_EINVAL);
        cr_assert_eq(sombra_node_label_remove(NULL, 1, "L"), SOMBRA_EINVAL);
        cr_assert_eq(sombra_edge_create(NULL, 1, 2, "T", NULL, 0, &id), SOMBRA_EINVAL);
        cr_assert_eq(sombra_edge_delete(NULL, 1), SOMBRA_EINVAL);
        cr_assert_eq(sombra_edge_set(NULL, 1, "k", &int_value), SOMBRA_EINVAL);
        cr_assert_eq(sombra_edge_unset(NULL, 1, "k"), SOMBRA_EINVAL);
        cr_assert_eq(sombra_index_create(NULL, "L", "k"), SOMBRA_EINVAL);
        cr_assert_eq(sombra_index_drop(NULL, "L", "k"), SOMBRA_EINVAL);
        cr_assert_eq(sombra_txn_begin(NULL), SOMBRA_EINVAL);
        cr_assert_eq(sombra_txn_commit(NULL), SOMBRA_EINVAL);
        cr_assert_eq(sombra_txn_rollback(NULL), SOMBRA_EINVAL);
        cr_assert_eq(sombra_read_begin(NULL), SOMBRA_EINVAL);
        cr_assert_eq(sombra_read_end(NULL), SOMBRA_EINVAL);
        cr_assert_eq(sombra_node_get(NULL, 1, &e), SOMBRA_EINVAL);
        cr_assert_eq(sombra_edge_get(NULL, 1, &e), SOMBRA_EINVAL);
        cr_assert_eq(sombra_neighbors(NULL, 1, SOMBRA_OUT, NULL, 0, &nb, &n), SOMBRA_EINVAL);
        cr_assert_eq(sombra_degree(NULL, 1, SOMBRA_OUT, NULL, 0, &count), SOMBRA_EINVAL);
        cr_assert_eq(sombra_nodes_by_label(NULL, "L", &ids, &n), SOMBRA_EINVAL);
        cr_assert_eq(sombra_nodes_by_prop(NULL, "L", "k", &int_value, &ids, &n), SOMBRA_EINVAL);
        cr_assert_eq(sombra_nodes_by_range(NULL, "L", "k", NULL, NULL, &ids, &n), SOMBRA_EINVAL);
        cr_assert_eq(sombra_count(NULL, &count, &count), SOMBRA_EINVAL);
        cr_assert_eq(sombra_bfs(NULL, 1, SOMBRA_OUT, NULL, 0, 2, &ids, &n), SOMBRA_EINVAL);
        cr_assert_eq(sombra_shortest_path(NULL, 1, 2, SOMBRA_OUT, NULL, 0, &ids, &n),
                     SOMBRA_EINVAL);
        cr_assert_eq(sombra_two_hop_count(NULL, 1, SOMBRA_OUT, NULL, 0, &count), SOMBRA_EINVAL);
        cr_assert_eq(sombra_wait(NULL, 0), SOMBRA_EINVAL);
        cr_assert_eq(sombra_poll(NULL, 0, &done), SOMBRA_EINVAL);
        cr_assert_eq(sombra_conn_release(NULL), SOMBRA_EINVAL);
        b = batch_of_one_node(NULL);
        cr_assert_eq(sombra_batch_submit(NULL, b), SOMBRA_EINVAL);
        cr_assert_eq(sombra_batch_submit_async(NULL, b, false, &t), SOMBRA_EINVAL);
        cr_assert_eq(sombra_batch_free(b), SOMBRA_OK);
        expect_healthy(0, 0);
}

Test(api_input, null_out_parameters_get_einval)
{
        const uint64_t *ids;
        const struct sombra_neighbor *nb;
        uint64_t a, b, count;
        sombra_conn *c;
        bool done;
        size_t n;

        open_with_pair(&c, &a, &b);
        cr_assert_eq(sombra_index_create(c, "L", "k"), SOMBRA_OK);
        cr_assert_eq(sombra_node_get(c, a, NULL), SOMBRA_EINVAL);
        cr_assert_eq(sombra_edge_get(c, 1, NULL), SOMBRA_EINVAL);
        cr_assert_eq(sombra_neighbors(c, a, SOMBRA_OUT, NULL, 0, NULL, &n), SOMBRA_EINVAL);
        cr_assert_eq(sombra_neighbors(c, a, SOMBRA_OUT, NULL, 0, &nb, NULL), SOMBRA_EINVAL);
        cr_assert_eq(sombra_degree(c, a, SOMBRA_OUT, NULL, 0, NULL), SOMBRA_EINVAL);
        cr_assert_eq(sombra_two_hop_count(c, a, SOMBRA_OUT, NULL, 0, NULL), SOMBRA_EINVAL);
        cr_assert_eq(sombra_nodes_by_label(c, "L", NULL, &n), SOMBRA_EINVAL);
        cr_assert_eq(sombra_nodes_by_label(c, "L", &ids, NULL), SOMBRA_EINVAL);
        cr_assert_eq(sombra_nodes_by_prop(c, "L", "k", &int_value, NULL, &n), SOMBRA_EINVAL);
        cr_assert_eq(sombra_nodes_by_range(c, "L", "k", NULL, NULL, &ids, NULL), SOMBRA_EINVAL);
        cr_assert_eq(sombra_bfs(c, a, SOMBRA_OUT, NULL, 0, 2, NULL, &n), SOMBRA_EINVAL);
        cr_assert_eq(sombra_shortest_path(c, a, b, SOMBRA_OUT, NULL, 0, &ids, NULL), SOMBRA_EINVAL);
        cr_assert_eq(sombra_poll(c, 0, NULL), SOMBRA_EINVAL);
        /* Tickets on a connection that never submitted asynchronously: it has no slots yet. */
        cr_assert_eq(sombra_wait(c, 0), SOMBRA_EINVAL);
        cr_assert_eq(sombra_poll(c, 0, &done), SOMBRA_EINVAL);
        cr_assert_eq(sombra_batch_new(NULL), SOMBRA_EINVAL);
        /* Optional outs: a write's id and either count may be NULL. */
        cr_assert_eq(sombra_node_create(c, NULL, 0, NULL, 0, NULL), SOMBRA_OK);
        cr_assert_eq(sombra_count(c, NULL, NULL), SOMBRA_OK);
        cr_assert_eq(sombra_count(c, &count, NULL), SOMBRA_OK);
        cr_assert_eq(count, 3);
        cr_assert_eq(sombra_verify(db, NULL, 0), SOMBRA_OK);
        cr_assert_eq(sombra_conn_release(c), SOMBRA_OK);
        expect_healthy(3, 1);
}

Test(api_input, null_pointers_inside_arguments_get_einval)
{
        const char *null_label[] = {NULL};
        const char *types[] = {NULL};
        struct sombra_prop null_key = {.key = NULL, .value = {.type = SOMBRA_INT}};
        struct sombra_value no_bytes = {.type = SOMBRA_STRING, .u.s = {NULL, 5}};
        struct sombra_value bad_type = {.type = (enum sombra_type)99};
        struct sombra_prop bad_prop = {.key = "k", .value = bad_type};
        const struct sombra_neighbor *nb;
        const uint64_t *ids;
        uint64_t a, b, e, count;
        sombra_conn *c;
        size_t n;

        e = open_with_pair(&c, &a, &b);
        cr_assert_eq(sombra_node_create(c, NULL, 1, NULL, 0, NULL), SOMBRA_EINVAL);
        cr_assert_eq(sombra_node_create(c, null_label, 1, NULL, 0, NULL), SOMBRA_EINVAL);
        cr_assert_eq(sombra_node_create(c, NULL, 0, NULL, 1, NULL), SOMBRA_EINVAL);
        cr_assert_eq(sombra_node_create(c, NULL, 0, &null_key, 1, NULL), SOMBRA_EINVAL);
        cr_assert_eq(sombra_node_create(c, NULL, 0, &bad_prop, 1, NULL), SOMBRA_EINVAL);
        cr_assert_eq(sombra_node_set(c, a, NULL, &int_value), SOMBRA_EINVAL);
        cr_assert_eq(sombra_node_set(c, a, "k", NULL), SOMBRA_EINVAL);
        cr_assert_eq(sombra_node_set(c, a, "k", &no_bytes), SOMBRA_EINVAL);
        cr_assert_eq(sombra_node_set(c, a, "k", &bad_type), SOMBRA_EINVAL);
        cr_assert_eq(sombra_node_unset(c, a, NULL), SOMBRA_EINVAL);
        cr_assert_eq(sombra_node_label_add(c, a, NULL), SOMBRA_EINVAL);
        cr_assert_eq(sombra_node_label_remove(c, a, NULL), SOMBRA_EINVAL);
        cr_assert_eq(sombra_edge_create(c, a, b, NULL, NULL, 0, NULL), SOMBRA_EINVAL);
        cr_assert_eq(sombra_edge_create(c, a, b, "T", NULL, 1, NULL), SOMBRA_EINVAL);
        cr_assert_eq(sombra_edge_set(c, e, "k", NULL), SOMBRA_EINVAL);
        cr_assert_eq(sombra_edge_set(c, e, NULL, &int_value), SOMBRA_EINVAL);
        cr_assert_eq(sombra_edge_unset(c, e, NULL), SOMBRA_EINVAL);
        cr_assert_eq(sombra_index_create(c, NULL, "k"), SOMBRA_EINVAL);
        cr_assert_eq(sombra_index_create(c, "L", NULL), SOMBRA_EINVAL);
        cr_assert_eq(sombra_index_drop(c, NULL, NULL), SOMBRA_EINVAL);
        /* Reads: NULL names and type lists, and directions that do not exist. */
        cr_assert_eq(sombra_nodes_by_label(c, NULL, &ids, &n), SOMBRA_EINVAL);
        cr_assert_eq(sombra_index_create(c, "L", "k"), SOMBRA_OK);
        cr_assert_eq(sombra_nodes_by_prop(c, "L", "k", NULL, &ids, &n), SOMBRA_EINVAL);
        cr_assert_eq(sombra_nodes_by_prop(c, "L", "k", &bad_type, &ids, &n), SOMBRA_EINVAL);
        cr_assert_eq(sombra_nodes_by_range(c, "L", NULL, NULL, NULL, &ids, &n), SOMBRA_EINVAL);
        cr_assert_eq(sombra_neighbors(c, a, SOMBRA_OUT, NULL, 1, &nb, &n), SOMBRA_EINVAL);
        cr_assert_eq(sombra_neighbors(c, a, SOMBRA_OUT, types, 1, &nb, &n), SOMBRA_EINVAL);
        cr_assert_eq(sombra_neighbors(c, a, (enum sombra_dir)0, NULL, 0, &nb, &n), SOMBRA_EINVAL);
        cr_assert_eq(sombra_degree(c, a, (enum sombra_dir)7, NULL, 0, &count), SOMBRA_EINVAL);
        cr_assert_eq(sombra_bfs(c, a, (enum sombra_dir)7, NULL, 0, 3, &ids, &n), SOMBRA_EINVAL);
        /* Also when the walk would end before looking at a neighbour. */
        cr_assert_eq(sombra_bfs(c, a, (enum sombra_dir)7, NULL, 0, 0, &ids, &n), SOMBRA_EINVAL);
        cr_assert_eq(sombra_bfs(c, a, SOMBRA_OUT, NULL, 2, 0, &ids, &n), SOMBRA_EINVAL);
        cr_assert_eq(sombra_shortest_path(c, a, a, (enum sombra_dir)0, NULL, 0, &ids, &n),
                     SOMBRA_EINVAL);
        cr_assert_eq(sombra_shortest_path(c, a, a, SOMBRA_IN, NULL, 1, &ids, &n), SOMBRA_EINVAL);
        cr_assert_eq(sombra_shortest_path(c, a, b, SOMBRA_OUT, types, 1, &ids, &n), SOMBRA_EINVAL);
        cr_assert_eq(sombra_two_hop_count(c, a, SOMBRA_BOTH, types, 1, &count), SOMBRA_EINVAL);
        cr_assert_eq(sombra_conn_release(c), SOMBRA_OK);
        expect_healthy(2, 1);
}

/* b, whose op ref makes a node, goes through on c; then b is freed and c given back. */
static void
expect_batch_goes_through(sombra_conn *c, sombra_batch *b, uint64_t ref)
{
        uint64_t id;

        cr_assert_eq(sombra_batch_submit(c, b), SOMBRA_OK);
        cr_assert_eq(sombra_batch_id(b, ref, &id), SOMBRA_OK);
        cr_assert_eq(sombra_batch_free(b), SOMBRA_OK);
        cr_assert_eq(sombra_conn_release(c), SOMBRA_OK);
}

Test(api_input, null_pointers_given_to_batches_get_einval)
{
        const char *null_label[] = {NULL};
        struct sombra_prop null_key = {.key = NULL, .value = {.type = SOMBRA_INT}};
        uint64_t ref, t, id;
        sombra_batch *b;
        sombra_conn *c;

        open_fast();
        c = support_conn_acquire(db);
        cr_assert_eq(sombra_batch_free(NULL), SOMBRA_EINVAL);
        cr_assert_eq(sombra_batch_reset(NULL), SOMBRA_EINVAL);
        cr_assert_eq(sombra_batch_node_create(NULL, NULL, 0, NULL, 0, &ref), SOMBRA_EINVAL);
        cr_assert_eq(sombra_batch_edge_create(NULL, 1, 2, "T", NULL, 0, &ref), SOMBRA_EINVAL);
        cr_assert_eq(sombra_batch_node_set(NULL, 1, "k", &int_value), SOMBRA_EINVAL);
        cr_assert_eq(sombra_batch_node_delete(NULL, 1), SOMBRA_EINVAL);
        cr_assert_eq(sombra_batch_edge_delete(NULL, 1), SOMBRA_EINVAL);
        cr_assert_eq(sombra_batch_submit(c, NULL), SOMBRA_EINVAL);
        cr_assert_eq(sombra_batch_submit_async(c, NULL, false, &t), SOMBRA_EINVAL);
        cr_assert_eq(sombra_batch_id(NULL, SOMBRA_BATCH_REF(0), &id), SOMBRA_EINVAL);

        cr_assert_eq(sombra_batch_new(&b), SOMBRA_OK);
        cr_assert_eq(sombra_batch_node_create(b, NULL, 1, NULL, 0, &ref), SOMBRA_EINVAL);
        cr_assert_eq(sombra_batch_node_create(b, null_label, 1, NULL, 0, &ref), SOMBRA_EINVAL);
        cr_assert_eq(sombra_batch_node_create(b, NULL, 0, NULL, 1, &ref), SOMBRA_EINVAL);
        cr_assert_eq(sombra_batch_node_create(b, NULL, 0, &null_key, 1, &ref), SOMBRA_EINVAL);
        cr_assert_eq(sombra_batch_edge_create(b, 1, 2, NULL, NULL, 0, &ref), SOMBRA_EINVAL);
        cr_assert_eq(sombra_batch_node_set(b, 1, NULL, &int_value), SOMBRA_EINVAL);
        cr_assert_eq(sombra_batch_node_set(b, 1, "k", NULL), SOMBRA_EINVAL);
        /* The refused builders added nothing: the batch holds only what comes next. */
        cr_assert_eq(sombra_batch_node_create(b, NULL, 0, NULL, 0, &ref), SOMBRA_OK);
        cr_assert_eq(ref, SOMBRA_BATCH_REF(0));
        cr_assert_eq(sombra_batch_submit_async(c, b, false, NULL), SOMBRA_EINVAL);
        cr_assert_eq(sombra_batch_id(b, ref, NULL), SOMBRA_EINVAL);
        expect_batch_goes_through(c, b, ref);
        expect_healthy(1, 0);
}

/* ---- handles used after they were given back ---- */

Test(api_input, connection_used_after_release_gets_eclosed)
{
        const struct sombra_entity *e;
        const uint64_t *ids;
        sombra_batch *b;
        sombra_conn *c;
        uint64_t a, t, count;
        size_t n;
        bool done;

        open_fast();
        c = support_conn_acquire(db);
        a = support_node_make(c, "Kept");
        b = batch_of_one_node(NULL);
        cr_assert_eq(sombra_batch_submit_async(c, b, false, &t), SOMBRA_OK);
        cr_assert_eq(sombra_conn_release(c), SOMBRA_OK); /* waits for the ticket */
        cr_assert_eq(sombra_node_create(c, NULL, 0, NULL, 0, NULL), SOMBRA_ECLOSED);
        cr_assert_eq(sombra_node_set(c, a, "k", &int_value), SOMBRA_ECLOSED);
        cr_assert_eq(sombra_edge_create(c, a, a, "T", NULL, 0, NULL), SOMBRA_ECLOSED);
        cr_assert_eq(sombra_node_delete(c, a), SOMBRA_ECLOSED);
        cr_assert_eq(sombra_index_create(c, "Kept", "k"), SOMBRA_ECLOSED);
        cr_assert_eq(sombra_txn_begin(c), SOMBRA_ECLOSED);
        cr_assert_eq(sombra_txn_commit(c), SOMBRA_ECLOSED);
        cr_assert_eq(sombra_read_begin(c), SOMBRA_ECLOSED);
        cr_assert_eq(sombra_read_end(c), SOMBRA_ECLOSED);
        cr_assert_eq(sombra_node_get(c, a, &e), SOMBRA_ECLOSED);
        cr_assert_eq(sombra_nodes_by_label(c, "Kept", &ids, &n), SOMBRA_ECLOSED);
        cr_assert_eq(sombra_count(c, &count, NULL), SOMBRA_ECLOSED);
        cr_assert_eq(sombra_bfs(c, a, SOMBRA_OUT, NULL, 0, 1, &ids, &n), SOMBRA_ECLOSED);
        cr_assert_eq(sombra_batch_submit(c, b), SOMBRA_ECLOSED);
        cr_assert_eq(sombra_batch_submit_async(c, b, true, &t), SOMBRA_ECLOSED);
        cr_assert_eq(sombra_wait(c, t), SOMBRA_ECLOSED);
        cr_assert_eq(sombra_poll(c, t, &done), SOMBRA_ECLOSED);
        cr_assert_eq(sombra_batch_free(b), SOMBRA_OK);
        /* The ticket's batch went through before release returned; the rest did not. */
        expect_healthy(2, 0);
}

Test(api_input, releasing_twice_gets_eclosed_and_frees_one_slot_only)
{
        struct sombra_config cfg;
        sombra_conn *a, *b, *c, *d;

        sombra_config_benchmark(&cfg);
        cfg.max_connections = 2;
        open_with(&cfg);
        a = support_conn_acquire(db);
        b = support_conn_acquire(db);
        support_node_make(a, "N");
        cr_assert_eq(sombra_conn_release(a), SOMBRA_OK);
        cr_assert_eq(sombra_conn_release(a), SOMBRA_ECLOSED);
        cr_assert_eq(sombra_conn_release(a), SOMBRA_ECLOSED);
        c = support_conn_acquire(db);
        cr_assert_eq(sombra_conn_acquire_timeout(db, 0, &d), SOMBRA_EBUSY,
                     "a second release handed out a slot that is in use");
        cr_assert_eq(sombra_close(db), SOMBRA_EBUSY);
        cr_assert_eq(sombra_conn_release(b), SOMBRA_OK);
        cr_assert_eq(sombra_conn_release(c), SOMBRA_OK);
        cr_assert_eq(sombra_conn_release(b), SOMBRA_ECLOSED);
        expect_healthy(1, 0);
}

Test(api_input, release_ends_what_the_connection_left_open)
{
        sombra_batch *b;
        sombra_conn *c;
        uint64_t t, id, ref;
        bool done;

        open_fast();
        c = support_conn_acquire(db);
        b = batch_of_one_node(&ref);
        cr_assert_eq(sombra_batch_submit_async(c, b, false, &t), SOMBRA_OK);
        cr_assert_eq(sombra_read_begin(c), SOMBRA_OK);
        cr_assert_eq(sombra_read_begin(c), SOMBRA_OK);
        cr_assert_eq(sombra_conn_release(c), SOMBRA_OK);
        /* The same slot comes back clean: no read transaction, no ticket. */
        cr_assert_eq(sombra_conn_acquire(db, &c), SOMBRA_OK);
        cr_assert_eq(sombra_read_end(c), SOMBRA_ENOTXN);
        cr_assert_eq(sombra_poll(c, t, &done), SOMBRA_EINVAL);
        cr_assert_eq(sombra_txn_begin(c), SOMBRA_OK);
        support_node_make(c, "RolledBack");
        cr_assert_eq(sombra_conn_release(c), SOMBRA_OK);
        cr_assert_eq(sombra_conn_acquire(db, &c), SOMBRA_OK);
        cr_assert_eq(sombra_txn_commit(c), SOMBRA_ENOTXN);
        cr_assert_eq(sombra_conn_release(c), SOMBRA_OK);
        /* Release collected the ticket: the batch has its result and may be freed. */
        cr_assert_eq(sombra_batch_id(b, ref, &id), SOMBRA_OK);
        cr_assert_eq(sombra_batch_free(b), SOMBRA_OK);
        expect_healthy(1, 0);
}

Test(api_input, batch_used_after_a_failed_submit_fails_the_same_way_and_can_be_reset)
{
        sombra_batch *b;
        sombra_conn *c;
        uint64_t r0, id, t;
        bool done;

        open_fast();
        c = support_conn_acquire(db);
        b = batch_of_one_node(&r0);
        cr_assert_eq(sombra_batch_edge_create(b, r0, 424242, "T", NULL, 0, NULL), SOMBRA_OK);
        cr_assert_eq(sombra_batch_submit(c, b), SOMBRA_ENOTFOUND);
        cr_assert_eq(sombra_batch_id(b, r0, &id), SOMBRA_EINVAL);
        cr_assert_eq(sombra_batch_submit(c, b), SOMBRA_ENOTFOUND);
        cr_assert_eq(sombra_batch_submit_async(c, b, false, &t), SOMBRA_OK);
        cr_assert_eq(sombra_wait(c, t), SOMBRA_ENOTFOUND);
        cr_assert_eq(sombra_batch_id(b, r0, &id), SOMBRA_EINVAL);
        /* A collected ticket is forgotten. */
        cr_assert_eq(sombra_wait(c, t), SOMBRA_EINVAL);
        cr_assert_eq(sombra_poll(c, t, &done), SOMBRA_EINVAL);
        cr_assert_eq(sombra_batch_reset(b), SOMBRA_OK);
        cr_assert_eq(sombra_batch_id(b, r0, &id), SOMBRA_EINVAL);
        cr_assert_eq(sombra_batch_submit(c, b), SOMBRA_OK); /* empty: nothing to do */
        cr_assert_eq(sombra_batch_submit_async(c, b, false, &t), SOMBRA_EINVAL);
        cr_assert_eq(sombra_batch_node_create(b, NULL, 0, NULL, 0, &r0), SOMBRA_OK);
        expect_batch_goes_through(c, b, r0);
        expect_healthy(1, 0);
}

Test(api_input, a_batch_in_flight_cannot_be_changed_or_freed)
{
        sombra_conn *c, *stall;
        sombra_batch *b;
        uint64_t ref, t, t2, id;
        bool done;

        open_fast();
        c = support_conn_acquire(db);
        stall = support_conn_acquire(db);
        b = batch_of_one_node(&ref);
        /* The writer serves only `stall`'s transaction: the submission stays in flight. */
        cr_assert_eq(sombra_txn_begin(stall), SOMBRA_OK);
        cr_assert_eq(sombra_batch_submit_async(c, b, false, &t), SOMBRA_OK);
        cr_assert_eq(sombra_poll(c, t, &done), SOMBRA_OK);
        cr_assert(!done);
        cr_assert_eq(sombra_batch_node_create(b, NULL, 0, NULL, 0, NULL), SOMBRA_EBUSY);
        cr_assert_eq(sombra_batch_edge_create(b, ref, ref, "T", NULL, 0, NULL), SOMBRA_EBUSY);
        cr_assert_eq(sombra_batch_node_set(b, ref, "k", &int_value), SOMBRA_EBUSY);
        cr_assert_eq(sombra_batch_node_delete(b, ref), SOMBRA_EBUSY);
        cr_assert_eq(sombra_batch_edge_delete(b, 1), SOMBRA_EBUSY);
        cr_assert_eq(sombra_batch_reset(b), SOMBRA_EBUSY);
        cr_assert_eq(sombra_batch_free(b), SOMBRA_EBUSY);
        cr_assert_eq(sombra_batch_id(b, ref, &id), SOMBRA_EINVAL);
        /* Submitting it once more is fine: the writer applies one after the other. */
        cr_assert_eq(sombra_batch_submit_async(c, b, false, &t2), SOMBRA_OK);
        cr_assert_eq(sombra_txn_rollback(stall), SOMBRA_OK);
        cr_assert_eq(sombra_wait(c, t), SOMBRA_OK);
        cr_assert_eq(sombra_batch_free(b), SOMBRA_EBUSY, "the second ticket is still out");
        cr_assert_eq(sombra_wait(c, t2), SOMBRA_OK);
        cr_assert_eq(sombra_batch_id(b, ref, &id), SOMBRA_OK);
        cr_assert_eq(sombra_batch_reset(b), SOMBRA_OK);
        cr_assert_eq(sombra_batch_node_create(b, NULL, 0, NULL, 0, NULL), SOMBRA_OK);
        cr_assert_eq(sombra_batch_free(b), SOMBRA_OK);
        cr_assert_eq(sombra_conn_release(c), SOMBRA_OK);
        cr_assert_eq(sombra_conn_release(stall), SOMBRA_OK);
        expect_healthy(2, 0);
}

Test(api_input, a_ticket_is_unknown_to_other_connections)
{
        sombra_batch *b[2];
        sombra_conn *c[2];
        uint64_t t[2];
        bool done;

        open_fast();
        for (int i = 0; i < 2; i++) {
                c[i] = support_conn_acquire(db);
                cr_assert_eq(sombra_batch_new(&b[i]), SOMBRA_OK);
                cr_assert_eq(sombra_batch_node_create(b[i], NULL, 0, NULL, 0, NULL), SOMBRA_OK);
                cr_assert_eq(sombra_batch_submit_async(c[i], b[i], false, &t[i]), SOMBRA_OK);
        }
        /* Both are each connection's first ticket, and still they name different submissions. */
        cr_assert_eq(sombra_wait(c[1], t[0]), SOMBRA_EINVAL);
        cr_assert_eq(sombra_poll(c[0], t[1], &done), SOMBRA_EINVAL);
        cr_assert_eq(sombra_wait(c[0], UINT64_MAX), SOMBRA_EINVAL);
        for (int i = 0; i < 2; i++) {
                cr_assert_eq(sombra_wait(c[i], t[i]), SOMBRA_OK);
                cr_assert_eq(sombra_batch_free(b[i]), SOMBRA_OK);
                cr_assert_eq(sombra_conn_release(c[i]), SOMBRA_OK);
        }
        expect_healthy(2, 0);
}

/* ---- a closed database ---- */

Test(api_input, closing_a_database_in_use_gets_ebusy_and_changes_nothing)
{
        const struct sombra_entity *e;
        sombra_conn *c, *other;
        uint64_t a;

        open_fast();
        c = support_conn_acquire(db);
        other = support_conn_acquire(db);
        a = support_node_make(c, "Before");
        cr_assert_eq(sombra_txn_begin(c), SOMBRA_OK);
        support_node_make(c, "InTxn");
        cr_assert_eq(sombra_close(db), SOMBRA_EBUSY);
        /* Nothing was closed: the transaction, the other connection and maintenance go on. */
        cr_assert_eq(sombra_node_get(c, a, &e), SOMBRA_OK);
        cr_assert_eq(sombra_txn_commit(c), SOMBRA_OK);
        cr_assert_eq(sombra_node_get(other, a, &e), SOMBRA_OK);
        cr_assert_eq(sombra_conn_release(c), SOMBRA_OK);
        cr_assert_eq(sombra_close(db), SOMBRA_EBUSY);
        cr_assert_eq(sombra_checkpoint(db), SOMBRA_OK);
        support_node_make(other, "After");
        cr_assert_eq(sombra_conn_release(other), SOMBRA_OK);
        expect_healthy_after_reopen(3, 0);
}

/* ---- ids that do not name anything ---- */

/* Every call that takes a node or edge id, with one that names nothing. */
static void
expect_id_unknown(sombra_conn *c, uint64_t node, uint64_t edge, uint64_t live)
{
        const struct sombra_entity *e;
        const struct sombra_neighbor *nb;
        const uint64_t *ids;
        uint64_t count;
        size_t n;

        cr_assert_eq(sombra_node_get(c, node, &e), SOMBRA_ENOTFOUND, "node %lu", node);
        cr_assert_eq(sombra_node_delete(c, node), SOMBRA_ENOTFOUND);
        cr_assert_eq(sombra_node_set(c, node, "k", &int_value), SOMBRA_ENOTFOUND);
        cr_assert_eq(sombra_node_unset(c, node, "k"), SOMBRA_ENOTFOUND);
        cr_assert_eq(sombra_node_label_add(c, node, "L"), SOMBRA_ENOTFOUND);
        cr_assert_eq(sombra_node_label_remove(c, node, "L"), SOMBRA_ENOTFOUND);
        cr_assert_eq(sombra_neighbors(c, node, SOMBRA_BOTH, NULL, 0, &nb, &n), SOMBRA_ENOTFOUND);
        cr_assert_eq(sombra_degree(c, node, SOMBRA_BOTH, NULL, 0, &count), SOMBRA_ENOTFOUND);
        cr_assert_eq(sombra_two_hop_count(c, node, SOMBRA_BOTH, NULL, 0, &count), SOMBRA_ENOTFOUND);
        cr_assert_eq(sombra_bfs(c, node, SOMBRA_BOTH, NULL, 0, 2, &ids, &n), SOMBRA_ENOTFOUND);
        cr_assert_eq(sombra_shortest_path(c, node, live, SOMBRA_BOTH, NULL, 0, &ids, &n),
                     SOMBRA_ENOTFOUND);
        cr_assert_eq(sombra_shortest_path(c, live, node, SOMBRA_BOTH, NULL, 0, &ids, &n),
                     SOMBRA_ENOTFOUND);
        cr_assert_eq(sombra_edge_get(c, edge, &e), SOMBRA_ENOTFOUND, "edge %lu", edge);
        cr_assert_eq(sombra_edge_delete(c, edge), SOMBRA_ENOTFOUND);
        cr_assert_eq(sombra_edge_set(c, edge, "k", &int_value), SOMBRA_ENOTFOUND);
        cr_assert_eq(sombra_edge_unset(c, edge, "k"), SOMBRA_ENOTFOUND);
}

Test(api_input, unknown_ids_get_enotfound)
{
        const uint64_t unknown[] = {0, 3, 999, UINT64_MAX >> 1, SOMBRA_BATCH_REF(0), UINT64_MAX};
        sombra_conn *c;
        uint64_t a, b;

        open_with_pair(&c, &a, &b);
        for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++)
                expect_id_unknown(c, unknown[i], unknown[i], a);
        /* The same inside an interactive transaction, whose reads run on the writer. */
        cr_assert_eq(sombra_txn_begin(c), SOMBRA_OK);
        expect_id_unknown(c, 999, 999, a);
        cr_assert_eq(sombra_txn_commit(c), SOMBRA_OK);
        cr_assert_eq(sombra_index_drop(c, "L", "k"), SOMBRA_ENOTFOUND);
        cr_assert_eq(sombra_conn_release(c), SOMBRA_OK);
        expect_healthy(2, 1);
}

Test(api_input, deleted_ids_get_enotfound_and_are_never_reused)
{
        const struct sombra_entity *e;
        uint64_t a, b, x, e1, e2, count;
        sombra_conn *c;

        open_fast();
        c = support_conn_acquire(db);
        a = support_node_make(c, "L");
        b = support_node_make(c, "L");
        e1 = make_edge(c, a, b);
        e2 = make_edge(c, b, a);
        cr_assert_eq(sombra_edge_delete(c, e1), SOMBRA_OK);
        cr_assert_eq(sombra_edge_delete(c, e1), SOMBRA_ENOTFOUND);
        cr_assert_eq(sombra_edge_get(c, e1, &e), SOMBRA_ENOTFOUND);
        /* Deleting a node takes its edges: both it and e2 are gone for every call. */
        cr_assert_eq(sombra_node_delete(c, a), SOMBRA_OK);
        expect_id_unknown(c, a, e2, b);
        cr_assert_eq(sombra_edge_create(c, a, b, "T", NULL, 0, NULL), SOMBRA_ENOTFOUND);
        cr_assert_eq(sombra_degree(c, b, SOMBRA_BOTH, NULL, 0, &count), SOMBRA_OK);
        cr_assert_eq(count, 0);
        x = support_node_make(c, "L");
        cr_assert_gt(x, b, "node id %lu reused", x);
        cr_assert_gt(make_edge(c, b, x), e2, "edge id reused");
        cr_assert_eq(sombra_conn_release(c), SOMBRA_OK);
        expect_healthy_after_reopen(2, 1);
}

Test(api_input, edge_to_a_missing_node_gets_enotfound_and_writes_nothing)
{
        sombra_batch *batch;
        uint64_t a, b, gone, ref, count;
        sombra_conn *c;

        open_fast();
        c = support_conn_acquire(db);
        a = support_node_make(c, "L");
        b = support_node_make(c, "L");
        gone = support_node_make(c, "L");
        cr_assert_eq(sombra_node_delete(c, gone), SOMBRA_OK);
        cr_assert_eq(sombra_edge_create(c, a, 999, "T", NULL, 0, NULL), SOMBRA_ENOTFOUND);
        cr_assert_eq(sombra_edge_create(c, 999, a, "T", NULL, 0, NULL), SOMBRA_ENOTFOUND);
        cr_assert_eq(sombra_edge_create(c, 998, 999, "T", NULL, 0, NULL), SOMBRA_ENOTFOUND);
        cr_assert_eq(sombra_edge_create(c, 0, a, "T", NULL, 0, NULL), SOMBRA_ENOTFOUND);
        cr_assert_eq(sombra_edge_create(c, a, gone, "T", NULL, 0, NULL), SOMBRA_ENOTFOUND);
        cr_assert_eq(sombra_edge_create(c, gone, gone, "T", NULL, 0, NULL), SOMBRA_ENOTFOUND);
        cr_assert_eq(sombra_edge_create(c, a, SOMBRA_BATCH_REF(0), "T", NULL, 0, NULL),
                     SOMBRA_ENOTFOUND, "a batch reference outside a batch names nothing");
        /* In a batch the whole transaction fails: its new node is not kept either. */
        cr_assert_eq(sombra_batch_new(&batch), SOMBRA_OK);
        cr_assert_eq(sombra_batch_node_create(batch, NULL, 0, NULL, 0, &ref), SOMBRA_OK);
        cr_assert_eq(sombra_batch_edge_create(batch, ref, b, "T", NULL, 0, NULL), SOMBRA_OK);
        cr_assert_eq(sombra_batch_edge_create(batch, ref, gone, "T", NULL, 0, NULL), SOMBRA_OK);
        cr_assert_eq(sombra_batch_submit(c, batch), SOMBRA_ENOTFOUND);
        cr_assert_eq(sombra_batch_free(batch), SOMBRA_OK);
        /* In an interactive transaction only the failed step is refused. */
        cr_assert_eq(sombra_txn_begin(c), SOMBRA_OK);
        make_edge(c, a, b);
        cr_assert_eq(sombra_edge_create(c, a, gone, "T", NULL, 0, NULL), SOMBRA_ENOTFOUND);
        cr_assert_eq(sombra_txn_commit(c), SOMBRA_OK);
        cr_assert_eq(sombra_degree(c, a, SOMBRA_BOTH, NULL, 0, &count), SOMBRA_OK);
        cr_assert_eq(count, 1);
        cr_assert_eq(sombra_degree(c, b, SOMBRA_BOTH, NULL, 0, &count), SOMBRA_OK);
        cr_assert_eq(count, 1);
        cr_assert_eq(sombra_conn_release(c), SOMBRA_OK);
        expect_healthy_after_reopen(2, 1);
}

/* ---- names and values past their limits ---- */

/* Every write that takes a name, given `name` in that place, must answer `status`. */
static void
expect_name_refused(sombra_conn *c, uint64_t node, uint64_t edge, const char *name, int status)
{
        const char *labels[] = {name};
        const char *types[] = {name};
        struct sombra_prop prop = {.key = name, .value = int_value};
        const struct sombra_neighbor *nb;
        const uint64_t *ids;
        sombra_batch *b;
        size_t n;

        cr_assert_eq(sombra_node_create(c, labels, 1, NULL, 0, NULL), status);
        cr_assert_eq(sombra_node_create(c, NULL, 0, &prop, 1, NULL), status);
        cr_assert_eq(sombra_node_set(c, node, name, &int_value), status);
        cr_assert_eq(sombra_node_unset(c, node, name), status);
        cr_assert_eq(sombra_node_label_add(c, node, name), status);
        cr_assert_eq(sombra_node_label_remove(c, node, name), status);
        cr_assert_eq(sombra_edge_create(c, node, node, name, NULL, 0, NULL), status);
        cr_assert_eq(sombra_edge_create(c, node, node, "T", &prop, 1, NULL), status);
        cr_assert_eq(sombra_edge_set(c, edge, name, &int_value), status);
        cr_assert_eq(sombra_edge_unset(c, edge, name), status);
        cr_assert_eq(sombra_index_create(c, name, "k"), status);
        cr_assert_eq(sombra_index_create(c, "L", name), status);
        cr_assert_eq(sombra_index_drop(c, name, "k"), status);
        cr_assert_eq(sombra_nodes_by_label(c, name, &ids, &n), status);
        cr_assert_eq(sombra_nodes_by_prop(c, name, "k", &int_value, &ids, &n), status);
        cr_assert_eq(sombra_nodes_by_range(c, "L", name, NULL, NULL, &ids, &n), status);
        cr_assert_eq(sombra_neighbors(c, node, SOMBRA_OUT, types, 1, &nb, &n), status);
        /* A batch copies what it is given and fails at submit, as a whole. */
        b = batch_of_one_node(NULL);
        cr_assert_eq(sombra_batch_node_create(b, labels, 1, NULL, 0, NULL), SOMBRA_OK);
        cr_assert_eq(sombra_batch_submit(c, b), status);
        cr_assert_eq(sombra_batch_reset(b), SOMBRA_OK);
        cr_assert_eq(sombra_batch_node_create(b, NULL, 0, &prop, 1, NULL), SOMBRA_OK);
        cr_assert_eq(sombra_batch_submit(c, b), status);
        cr_assert_eq(sombra_batch_reset(b), SOMBRA_OK);
        cr_assert_eq(sombra_batch_edge_create(b, node, node, name, NULL, 0, NULL), SOMBRA_OK);
        cr_assert_eq(sombra_batch_submit(c, b), status);
        cr_assert_eq(sombra_batch_reset(b), SOMBRA_OK);
        cr_assert_eq(sombra_batch_node_set(b, node, name, &int_value), SOMBRA_OK);
        cr_assert_eq(sombra_batch_submit(c, b), status);
        cr_assert_eq(sombra_batch_free(b), SOMBRA_OK);
}

/* A name of len bytes, in a malloc'd buffer the caller frees. */
static char *
name_of(size_t len)
{
        char *s = malloc(len + 1);

        cr_assert(s != NULL);
        memset(s, 'n', len);
        s[len] = '\0';
        return s;
}

Test(api_input, empty_names_get_einval)
{
        sombra_conn *c;
        uint64_t a;

        open_fast();
        c = support_conn_acquire(db);
        a = support_node_make(c, "L");
        expect_name_refused(c, a, make_edge(c, a, a), "", SOMBRA_EINVAL);
        cr_assert_eq(sombra_conn_release(c), SOMBRA_OK);
        expect_healthy_after_reopen(1, 1);
}

Test(api_input, names_over_the_limit_get_etoobig_and_the_limit_itself_is_fine)
{
        char *longest = name_of(SOMBRA_MAX_NAME), *too_long = name_of(SOMBRA_MAX_NAME + 1);
        char *far_too_long = name_of(100000);
        const char *labels[] = {longest};
        const struct sombra_entity *e;
        sombra_conn *c;
        uint64_t a, edge;

        open_fast();
        c = support_conn_acquire(db);
        a = support_node_make(c, "L");
        edge = make_edge(c, a, a);
        expect_name_refused(c, a, edge, too_long, SOMBRA_ETOOBIG);
        expect_name_refused(c, a, edge, far_too_long, SOMBRA_ETOOBIG);
        cr_assert_eq(sombra_node_create(c, labels, 1, NULL, 0, NULL), SOMBRA_OK);
        cr_assert_eq(sombra_node_set(c, a, longest, &int_value), SOMBRA_OK);
        cr_assert_eq(sombra_edge_create(c, a, a, longest, NULL, 0, NULL), SOMBRA_OK);
        cr_assert_eq(sombra_node_get(c, a, &e), SOMBRA_OK);
        cr_assert_eq(e->nprops, 1);
        cr_assert_str_eq(e->props[0].key, longest);
        cr_assert_eq(sombra_conn_release(c), SOMBRA_OK);
        free(longest);
        free(too_long);
        free(far_too_long);
        expect_healthy_after_reopen(2, 2);
}

Test(api_input, values_over_the_limit_get_etoobig_and_the_limit_itself_is_fine)
{
        size_t len = SOMBRA_MAX_VALUE + 1;
        uint8_t *bytes = malloc(len);
        struct sombra_value big = {.type = SOMBRA_BYTES, .u.s = {bytes, len}};
        struct sombra_value text = {.type = SOMBRA_STRING, .u.s = {bytes, len}};
        struct sombra_prop props[] = {{"big", big}};
        const struct sombra_entity *e;
        const uint64_t *ids;
        sombra_batch *b;
        sombra_conn *c;
        uint64_t a, edge;
        size_t n;

        cr_assert(bytes != NULL);
        memset(bytes, 'v', len);
        open_fast();
        c = support_conn_acquire(db);
        a = support_node_make(c, "L");
        edge = make_edge(c, a, a);
        cr_assert_eq(sombra_index_create(c, "L", "big"), SOMBRA_OK);
        cr_assert_eq(sombra_node_create(c, NULL, 0, props, 1, NULL), SOMBRA_ETOOBIG);
        cr_assert_eq(sombra_node_set(c, a, "big", &big), SOMBRA_ETOOBIG);
        cr_assert_eq(sombra_node_set(c, a, "big", &text), SOMBRA_ETOOBIG);
        cr_assert_eq(sombra_edge_create(c, a, a, "T", props, 1, NULL), SOMBRA_ETOOBIG);
        cr_assert_eq(sombra_edge_set(c, edge, "big", &big), SOMBRA_ETOOBIG);
        cr_assert_eq(sombra_nodes_by_prop(c, "L", "big", &big, &ids, &n), SOMBRA_ETOOBIG);
        cr_assert_eq(sombra_nodes_by_range(c, "L", "big", NULL, &big, &ids, &n), SOMBRA_ETOOBIG);
        cr_assert_eq(sombra_batch_new(&b), SOMBRA_OK);
        cr_assert_eq(sombra_batch_node_create(b, NULL, 0, props, 1, NULL), SOMBRA_ETOOBIG);
        cr_assert_eq(sombra_batch_node_set(b, a, "big", &big), SOMBRA_ETOOBIG);
        cr_assert_eq(sombra_batch_edge_create(b, a, a, "T", props, 1, NULL), SOMBRA_ETOOBIG);
        cr_assert_eq(sombra_batch_free(b), SOMBRA_OK);
        /* One byte less is a legal value, and it reads back whole. */
        big.u.s.len = SOMBRA_MAX_VALUE;
        cr_assert_eq(sombra_node_set(c, a, "big", &big), SOMBRA_OK);
        cr_assert_eq(sombra_node_get(c, a, &e), SOMBRA_OK);
        cr_assert_eq(e->nprops, 1);
        cr_assert_eq(e->props[0].value.u.s.len, SOMBRA_MAX_VALUE);
        cr_assert_eq(memcmp(e->props[0].value.u.s.ptr, bytes, SOMBRA_MAX_VALUE), 0);
        cr_assert_eq(sombra_nodes_by_prop(c, "L", "big", &big, &ids, &n), SOMBRA_OK);
        cr_assert_eq(n, 1);
        cr_assert_eq(sombra_conn_release(c), SOMBRA_OK);
        free(bytes);
        expect_healthy_after_reopen(1, 1);
}

Test(api_input, records_and_lists_over_their_limits_get_etoobig)
{
        size_t nlabels = SOMBRA_MAX_LABELS + 1, nprops = SOMBRA_MAX_PROPS + 1;
        const char **labels = calloc(nlabels, sizeof(*labels));
        struct sombra_prop *props = calloc(nprops, sizeof(*props));
        uint8_t *bytes = malloc(SOMBRA_MAX_VALUE);
        struct sombra_value big = {.type = SOMBRA_BYTES, .u.s = {bytes, SOMBRA_MAX_VALUE}};
        struct sombra_prop three[] = {{"a", big}, {"b", big}, {"c", big}};
        char names[SOMBRA_MAX_PROPS + 1][8];
        sombra_batch *b;
        sombra_conn *c;
        uint64_t a;

        cr_assert(labels != NULL && props != NULL && bytes != NULL);
        memset(bytes, 'r', SOMBRA_MAX_VALUE);
        for (size_t i = 0; i < nprops; i++) {
                snprintf(names[i], sizeof(names[i]), "p%zu", i);
                props[i] = (struct sombra_prop){names[i], int_value};
                if (i < nlabels)
                        labels[i] = names[i];
        }
        open_fast();
        c = support_conn_acquire(db);
        a = support_node_make(c, "L");
        cr_assert_eq(sombra_node_create(c, labels, nlabels, NULL, 0, NULL), SOMBRA_ETOOBIG);
        cr_assert_eq(sombra_node_create(c, NULL, 0, props, nprops, NULL), SOMBRA_ETOOBIG);
        cr_assert_eq(sombra_edge_create(c, a, a, "T", props, nprops, NULL), SOMBRA_ETOOBIG);
        /* Three legal values make a record past SOMBRA_MAX_RECORD. */
        cr_assert_eq(sombra_node_create(c, NULL, 0, three, 3, NULL), SOMBRA_ETOOBIG);
        cr_assert_eq(sombra_batch_new(&b), SOMBRA_OK);
        cr_assert_eq(sombra_batch_node_create(b, labels, nlabels, NULL, 0, NULL), SOMBRA_ETOOBIG);
        cr_assert_eq(sombra_batch_node_create(b, NULL, 0, props, nprops, NULL), SOMBRA_ETOOBIG);
        cr_assert_eq(sombra_batch_free(b), SOMBRA_OK);
        /* The last label one node may carry, and then one more. */
        for (size_t i = 1; i < SOMBRA_MAX_LABELS; i++)
                cr_assert_eq(sombra_node_label_add(c, a, labels[i]), SOMBRA_OK);
        cr_assert_eq(sombra_node_label_add(c, a, labels[SOMBRA_MAX_LABELS]), SOMBRA_ETOOBIG);
        cr_assert_eq(sombra_conn_release(c), SOMBRA_OK);
        free(labels);
        free(props);
        free(bytes);
        expect_healthy_after_reopen(1, 0);
}

/* ---- batch references ---- */

/* Submits b, synchronously and then as a ticket; both must fail with status and write nothing. */
static void
expect_batch_refused(sombra_conn *c, sombra_batch *b, int status)
{
        uint64_t nodes, edges, t, id;

        cr_assert_eq(sombra_batch_submit(c, b), status);
        cr_assert_eq(sombra_batch_id(b, SOMBRA_BATCH_REF(0), &id), SOMBRA_EINVAL);
        cr_assert_eq(sombra_batch_submit_async(c, b, false, &t), SOMBRA_OK);
        cr_assert_eq(sombra_wait(c, t), status);
        cr_assert_eq(sombra_batch_id(b, SOMBRA_BATCH_REF(0), &id), SOMBRA_EINVAL);
        cr_assert_eq(sombra_count(c, &nodes, &edges), SOMBRA_OK);
        cr_assert_eq(nodes, 1);
        cr_assert_eq(edges, 0);
        cr_assert_eq(sombra_batch_reset(b), SOMBRA_OK);
}

Test(api_input, batch_references_forward_or_out_of_range_get_einval)
{
        const uint64_t bad[] = {SOMBRA_BATCH_REF(1), SOMBRA_BATCH_REF(2), SOMBRA_BATCH_REF(1000),
                                SOMBRA_BATCH_REF(UINT64_MAX >> 1)};
        sombra_batch *b;
        sombra_conn *c;
        uint64_t a, r0, r1, id;

        open_fast();
        c = support_conn_acquire(db);
        a = support_node_make(c, "L");
        cr_assert_eq(sombra_batch_new(&b), SOMBRA_OK);
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                /* op 0 makes a node, op 1 refers to bad[i]: itself, later, or past the end. */
                cr_assert_eq(sombra_batch_node_create(b, NULL, 0, NULL, 0, &r0), SOMBRA_OK);
                cr_assert_eq(sombra_batch_edge_create(b, r0, bad[i], "T", NULL, 0, NULL),
                             SOMBRA_OK);
                cr_assert_eq(sombra_batch_node_create(b, NULL, 0, NULL, 0, NULL), SOMBRA_OK);
                expect_batch_refused(c, b, SOMBRA_EINVAL);
                cr_assert_eq(sombra_batch_node_create(b, NULL, 0, NULL, 0, &r0), SOMBRA_OK);
                cr_assert_eq(sombra_batch_edge_create(b, bad[i], a, "T", NULL, 0, NULL), SOMBRA_OK);
                expect_batch_refused(c, b, SOMBRA_EINVAL);
                cr_assert_eq(sombra_batch_node_create(b, NULL, 0, NULL, 0, &r0), SOMBRA_OK);
                cr_assert_eq(sombra_batch_node_set(b, bad[i], "k", &int_value), SOMBRA_OK);
                expect_batch_refused(c, b, SOMBRA_EINVAL);
                cr_assert_eq(sombra_batch_node_create(b, NULL, 0, NULL, 0, &r0), SOMBRA_OK);
                cr_assert_eq(sombra_batch_node_delete(b, bad[i]), SOMBRA_OK);
                expect_batch_refused(c, b, SOMBRA_EINVAL);
        }
        /* A reference to an op that made an edge, or made nothing, names no node. */
        cr_assert_eq(sombra_batch_node_create(b, NULL, 0, NULL, 0, &r0), SOMBRA_OK);
        cr_assert_eq(sombra_batch_edge_create(b, r0, a, "T", NULL, 0, &r1), SOMBRA_OK);
        cr_assert_eq(sombra_batch_edge_create(b, r1, a, "T", NULL, 0, NULL), SOMBRA_OK);
        expect_batch_refused(c, b, SOMBRA_EINVAL);
        cr_assert_eq(sombra_batch_node_create(b, NULL, 0, NULL, 0, &r0), SOMBRA_OK);
        cr_assert_eq(sombra_batch_edge_create(b, r0, a, "T", NULL, 0, &r1), SOMBRA_OK);
        cr_assert_eq(sombra_batch_edge_delete(b, r1), SOMBRA_OK);
        expect_batch_refused(c, b, SOMBRA_EINVAL);
        cr_assert_eq(sombra_batch_node_set(b, a, "k", &int_value), SOMBRA_OK);
        cr_assert_eq(sombra_batch_node_delete(b, SOMBRA_BATCH_REF(0)), SOMBRA_OK);
        expect_batch_refused(c, b, SOMBRA_EINVAL);
        /* Backward references are fine; batch_id refuses what is not a reference it made. */
        cr_assert_eq(sombra_batch_node_create(b, NULL, 0, NULL, 0, &r0), SOMBRA_OK);
        cr_assert_eq(sombra_batch_node_set(b, r0, "k", &int_value), SOMBRA_OK);
        cr_assert_eq(sombra_batch_edge_create(b, r0, r0, "T", NULL, 0, &r1), SOMBRA_OK);
        cr_assert_eq(sombra_batch_submit(c, b), SOMBRA_OK);
        cr_assert_eq(sombra_batch_id(b, r1, &id), SOMBRA_OK);
        cr_assert_eq(sombra_batch_id(b, SOMBRA_BATCH_REF(1), &id), SOMBRA_EINVAL);
        cr_assert_eq(sombra_batch_id(b, SOMBRA_BATCH_REF(3), &id), SOMBRA_EINVAL);
        cr_assert_eq(sombra_batch_id(b, 1, &id), SOMBRA_EINVAL);
        cr_assert_eq(sombra_batch_free(b), SOMBRA_OK);
        cr_assert_eq(sombra_conn_release(c), SOMBRA_OK);
        expect_healthy_after_reopen(2, 1);
}

/* A batch of [a new node, an edge from it to a missing node]: it fails half-way through. */
static sombra_batch *
batch_failing_half_way(void)
{
        uint64_t ref;
        sombra_batch *b = batch_of_one_node(&ref);

        cr_assert_eq(sombra_batch_edge_create(b, ref, 999, "T", NULL, 0, NULL), SOMBRA_OK);
        return b;
}

Test(api_input, a_batch_failing_inside_a_transaction_leaves_no_half_of_itself)
{
        sombra_batch *b = batch_failing_half_way();
        sombra_conn *c;
        uint64_t nodes;

        open_fast();
        c = support_conn_acquire(db);
        support_node_make(c, "Before");
        /* Its first op cannot be taken out alone, so the transaction may only roll back. */
        cr_assert_eq(sombra_txn_begin(c), SOMBRA_OK);
        support_node_make(c, "InTxn");
        cr_assert_eq(sombra_batch_submit(c, b), SOMBRA_ENOTFOUND);
        cr_assert_eq(sombra_node_create(c, NULL, 0, NULL, 0, NULL), SOMBRA_ENOTFOUND);
        cr_assert_eq(sombra_txn_commit(c), SOMBRA_ENOTFOUND);
        cr_assert_eq(sombra_count(c, &nodes, NULL), SOMBRA_OK);
        cr_assert_eq(nodes, 1, "a half-applied batch was committed");
        cr_assert_eq(sombra_txn_begin(c), SOMBRA_OK);
        cr_assert_eq(sombra_batch_submit(c, b), SOMBRA_ENOTFOUND);
        cr_assert_eq(sombra_txn_rollback(c), SOMBRA_OK);
        /* A batch refused at its first op changed nothing: the transaction goes on. */
        cr_assert_eq(sombra_batch_reset(b), SOMBRA_OK);
        cr_assert_eq(sombra_batch_edge_create(b, 1, 999, "T", NULL, 0, NULL), SOMBRA_OK);
        cr_assert_eq(sombra_batch_node_create(b, NULL, 0, NULL, 0, NULL), SOMBRA_OK);
        cr_assert_eq(sombra_txn_begin(c), SOMBRA_OK);
        cr_assert_eq(sombra_batch_submit(c, b), SOMBRA_ENOTFOUND);
        support_node_make(c, "InTxn");
        cr_assert_eq(sombra_txn_commit(c), SOMBRA_OK);
        cr_assert_eq(sombra_batch_free(b), SOMBRA_OK);
        cr_assert_eq(sombra_conn_release(c), SOMBRA_OK);
        expect_healthy_after_reopen(2, 0);
}

/* ---- one connection, two threads ---- */

struct shared_conn {
        sombra_conn *c;
        uint64_t node;
        int create, get, begin, commit;
};

/* A second thread's turn on the connection: one write, one read, a begin, a commit. */
static void *
use_from_other_thread(void *arg)
{
        struct shared_conn *s = arg;
        const struct sombra_entity *e;

        s->create = sombra_node_create(s->c, NULL, 0, NULL, 0, &s->node);
        s->get = sombra_node_get(s->c, s->node, &e);
        s->begin = sombra_txn_begin(s->c);
        s->commit = s->begin == SOMBRA_OK ? SOMBRA_OK : sombra_txn_commit(s->c);
        return NULL;
}

static void
run_other_thread(struct shared_conn *s)
{
        pthread_t t;

        cr_assert_eq(pthread_create(&t, NULL, use_from_other_thread, s), 0);
        cr_assert_eq(pthread_join(t, NULL), 0);
}

Test(api_input, a_transaction_belongs_to_its_connection_whichever_thread_calls)
{
        struct shared_conn s = {0};
        const struct sombra_entity *e;
        sombra_conn *other;

        open_fast();
        s.c = support_conn_acquire(db);
        other = support_conn_acquire(db);
        /* Begun here; written, read and committed there. */
        cr_assert_eq(sombra_txn_begin(s.c), SOMBRA_OK);
        run_other_thread(&s);
        cr_assert_eq(s.create, SOMBRA_OK);
        cr_assert_eq(s.get, SOMBRA_OK, "read-your-writes holds across threads");
        cr_assert_eq(s.begin, SOMBRA_EBUSY, "the connection's transaction is already open");
        cr_assert_eq(s.commit, SOMBRA_OK, "the other thread may end the transaction");
        cr_assert_eq(sombra_node_get(other, s.node, &e), SOMBRA_OK);
        cr_assert_eq(sombra_txn_rollback(s.c), SOMBRA_ENOTXN);
        cr_assert_eq(sombra_conn_release(s.c), SOMBRA_OK);
        cr_assert_eq(sombra_conn_release(other), SOMBRA_OK);
        expect_healthy_after_reopen(1, 0);
}

#define RACE_ROUNDS 300

struct racer {
        sombra_conn *c;
        int written;  /* node_create calls that succeeded */
        int failures; /* statuses the API does not promise */
};

/*
 * Begin, write, commit in a loop while another thread does the same on the
 * same connection: a begin may find the other's transaction open and a commit
 * may find it already ended, but every write lands and is committed.
 */
static void *
race_transactions(void *arg)
{
        struct racer *r = arg;

        for (int i = 0; i < RACE_ROUNDS; i++) {
                int rc = sombra_txn_begin(r->c);
                r->failures += rc != SOMBRA_OK && rc != SOMBRA_EBUSY;
                rc = sombra_node_create(r->c, NULL, 0, NULL, 0, NULL);
                r->written += rc == SOMBRA_OK;
                r->failures += rc != SOMBRA_OK;
                rc = sombra_txn_commit(r->c);
                r->failures += rc != SOMBRA_OK && rc != SOMBRA_ENOTXN;
        }
        return NULL;
}

Test(api_input, two_threads_racing_transactions_on_one_connection_lose_nothing)
{
        struct racer r[2];
        pthread_t t[2];
        sombra_conn *c;

        open_fast();
        c = support_conn_acquire(db);
        for (int i = 0; i < 2; i++) {
                r[i] = (struct racer){.c = c};
                cr_assert_eq(pthread_create(&t[i], NULL, race_transactions, &r[i]), 0);
        }
        for (int i = 0; i < 2; i++)
                cr_assert_eq(pthread_join(t[i], NULL), 0);
        cr_assert_eq(r[0].failures + r[1].failures, 0);
        cr_assert_eq(r[0].written + r[1].written, 2 * RACE_ROUNDS);
        cr_assert_eq(sombra_txn_commit(c), SOMBRA_ENOTXN, "the last commit closed the txn");
        cr_assert_eq(sombra_conn_release(c), SOMBRA_OK);
        expect_healthy_after_reopen(2 * RACE_ROUNDS, 0);
}

static void *
release_from_other_thread(void *arg)
{
        return (void *)(intptr_t)sombra_conn_release(arg);
}

Test(api_input, releasing_a_connection_another_thread_is_in_a_transaction_on_rolls_it_back)
{
        pthread_t t;
        void *rc;
        sombra_conn *c;

        open_fast();
        c = support_conn_acquire(db);
        support_node_make(c, "Kept");
        cr_assert_eq(sombra_txn_begin(c), SOMBRA_OK);
        support_node_make(c, "Dropped");
        cr_assert_eq(pthread_create(&t, NULL, release_from_other_thread, c), 0);
        cr_assert_eq(pthread_join(t, &rc), 0);
        cr_assert_eq((int)(intptr_t)rc, SOMBRA_OK);
        cr_assert_eq(sombra_node_create(c, NULL, 0, NULL, 0, NULL), SOMBRA_ECLOSED);
        cr_assert_eq(sombra_txn_commit(c), SOMBRA_ECLOSED);
        expect_healthy_after_reopen(1, 0);
}

/* ---- the pool ---- */

struct waiter {
        sombra_conn *got;
        int rc;
};

static void *
acquire_blocking(void *arg)
{
        struct waiter *w = arg;

        w->rc = sombra_conn_acquire(db, &w->got);
        return NULL;
}

static uint64_t
now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

Test(api_input, more_connections_than_max_connections_wait_or_get_ebusy)
{
        struct timespec pause = {0, 50 * 1000000};
        struct sombra_config cfg;
        struct waiter w = {.rc = 1};
        sombra_conn *a, *b, *c = NULL;
        uint64_t start;
        pthread_t t;

        sombra_config_benchmark(&cfg);
        cfg.max_connections = 4097;
        cr_assert_eq(sombra_open(support_path(DB_FILE), &cfg, &db), SOMBRA_EINVAL);
        db = NULL;
        cfg.max_connections = 2;
        open_with(&cfg);
        a = support_conn_acquire(db);
        b = support_conn_acquire(db);
        cr_assert_eq(sombra_conn_acquire_timeout(db, 0, &c), SOMBRA_EBUSY);
        start = now_ms();
        cr_assert_eq(sombra_conn_acquire_timeout(db, 100, &c), SOMBRA_EBUSY);
        cr_assert_geq(now_ms() - start, 90, "gave up before its timeout");
        cr_assert_eq(c, NULL, "out parameters are left alone on error");
        /* A blocking acquire waits for a release rather than failing. */
        cr_assert_eq(pthread_create(&t, NULL, acquire_blocking, &w), 0);
        nanosleep(&pause, NULL);
        support_node_make(a, "Meanwhile");
        cr_assert_eq(sombra_conn_release(a), SOMBRA_OK);
        cr_assert_eq(pthread_join(t, NULL), 0);
        cr_assert_eq(w.rc, SOMBRA_OK);
        cr_assert_eq(w.got, a, "the waiter got the slot that was given back");
        cr_assert_eq(sombra_conn_release(w.got), SOMBRA_OK);
        cr_assert_eq(sombra_conn_release(b), SOMBRA_OK);
        expect_healthy(1, 0);
}

/* ---- files that cannot be opened as a database ---- */

Test(api_input, opening_a_directory_or_other_non_file_gets_einval)
{
        char fifo[256];

        cr_assert_eq(mkdir(support_path("dir"), 0755), 0);
        cr_assert_eq(sombra_open(support_path("dir"), NULL, &db), SOMBRA_EINVAL);
        cr_assert_eq(sombra_open(support_dir(), NULL, &db), SOMBRA_EINVAL);
        snprintf(fifo, sizeof(fifo), "%s", support_path("fifo"));
        cr_assert_eq(mkfifo(fifo, 0644), 0);
        cr_assert_eq(sombra_open(fifo, NULL, &db), SOMBRA_EINVAL);
        cr_assert_eq(sombra_open(support_path("missing/db"), NULL, &db), SOMBRA_ENOTFOUND);
        cr_assert_eq(db, NULL);
        cr_assert(!support_file_exists("dir-wal") && !support_file_exists("fifo-wal"));
        /* The directory holds a database fine. */
        cr_assert_eq(sombra_open(support_path("dir/db"), NULL, &db), SOMBRA_OK);
}

/* A few bytes of a file that is something else, and the status opening it must give. */
struct foreign {
        const char *what;
        const char *head;
        size_t size;
        int status;
};

Test(api_input, files_of_another_format_get_enotdb_and_stay_untouched)
{
        static const struct foreign files[] = {
            {"text", "hello, this is not a database\n", 30, SOMBRA_ENOTDB},
            {"sqlite", "SQLite format 3", 16384, SOMBRA_ENOTDB},
            {"elf",
             "\x7f"
             "ELF\x02\x01\x01",
             70000, SOMBRA_ENOTDB},
            {"zeros", "", 65536, SOMBRA_ENOTDB},
            {"one byte", "x", 1, SOMBRA_ENOTDB},
        };

        for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
                uint8_t *data = calloc(1, files[i].size), *after;
                size_t len;
                int rc;

                cr_assert(data != NULL);
                memcpy(data, files[i].head, strlen(files[i].head));
                support_write_file("foreign", data, files[i].size);
                rc = sombra_open(support_path("foreign"), NULL, &db);
                cr_assert_eq(rc, files[i].status, "%s: %s", files[i].what, sombra_strerror(rc));
                cr_assert_eq(db, NULL);
                after = support_read_file("foreign", &len);
                cr_assert_eq(len, files[i].size, "%s changed size", files[i].what);
                cr_assert_eq(memcmp(after, data, len), 0, "%s was written to", files[i].what);
                cr_assert(!support_file_exists("foreign-wal"), "%s got a WAL", files[i].what);
                free(after);
                free(data);
        }
}

/*
 * The meta page at off, as a later format version would write it: version
 * (bytes 8..11, big-endian) bumped and the checksum (bytes 160..167, XXH3 of
 * bytes 0..159) made right again, so only the version tells it apart.
 */
static void
meta_version_bump(uint64_t off)
{
        uint8_t b[168];
        uint64_t sum;

        support_read_at(DB_FILE, off, b, sizeof(b));
        cr_assert_eq(memcmp(b, "SOMBRADB", 8), 0);
        b[11]++;
        sum = XXH3_64bits(b, 160);
        for (int i = 0; i < 8; i++)
                b[160 + i] = (uint8_t)(sum >> (56 - 8 * i));
        support_write_at(DB_FILE, off, b, sizeof(b));
}

Test(api_input, database_of_another_version_gets_enotdb_and_stays_untouched)
{
        uint8_t *before, *after, ps[4];
        size_t len, len_after;
        sombra_conn *c;

        open_fast();
        c = support_conn_acquire(db);
        support_node_make(c, "Old");
        cr_assert_eq(sombra_conn_release(c), SOMBRA_OK);
        support_db_close(&db);
        support_read_at(DB_FILE, 12, ps, sizeof(ps)); /* the page size: where meta 1 is */
        meta_version_bump(0);
        meta_version_bump((uint64_t)ps[0] << 24 | ps[1] << 16 | ps[2] << 8 | ps[3]);
        before = support_read_file(DB_FILE, &len);
        cr_assert_eq(sombra_open(support_path(DB_FILE), NULL, &db), SOMBRA_ENOTDB);
        cr_assert_eq(db, NULL);
        after = support_read_file(DB_FILE, &len_after);
        cr_assert(len == len_after && memcmp(before, after, len) == 0,
                  "a refused open changed the file");
        free(before);
        free(after);
}

/* sombra_open's status for dir/name, or when it opened, sombra_close's. */
static int
open_then_close(const char *name)
{
        sombra_db *d;
        int rc = sombra_open(support_path(name), NULL, &d);

        return rc == SOMBRA_OK ? sombra_close(d) : rc;
}

/*
 * open_then_close as a user who owns none of the files. Root passes every
 * permission check, so as root it runs in a child that has dropped to nobody.
 */
#define NOBODY        65534
#define CANNOT_SETUID 1

static int
open_status_as_stranger(const char *name)
{
        int fd[2], rc, exit_status;
        pid_t pid;

        if (geteuid() != 0)
                return open_then_close(name);
        cr_assert_eq(pipe(fd), 0);
        pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
                close(fd[0]);
                if (setresgid(NOBODY, NOBODY, NOBODY) != 0 ||
                    setresuid(NOBODY, NOBODY, NOBODY) != 0)
                        _exit(CANNOT_SETUID);
                rc = open_then_close(name);
                _exit(write(fd[1], &rc, sizeof(rc)) == sizeof(rc) ? 0 : 2);
        }
        close(fd[1]);
        cr_assert_eq(waitpid(pid, &exit_status, 0), pid);
        if (WIFEXITED(exit_status) && WEXITSTATUS(exit_status) == CANNOT_SETUID)
                cr_skip_test("root cannot drop to an unprivileged user here");
        cr_assert(WIFEXITED(exit_status) && WEXITSTATUS(exit_status) == 0);
        cr_assert_eq(read(fd[0], &rc, sizeof(rc)), (ssize_t)sizeof(rc));
        close(fd[0]);
        return rc;
}

static void
chmod_in_dir(const char *name, mode_t mode)
{
        cr_assert_eq(chmod(support_path(name), mode), 0, "chmod %s: %s", name, strerror(errno));
}

Test(api_input, files_without_read_or_write_permission_get_eperm)
{
        static const struct {
                const char *file;
                mode_t mode;
        } denied[] = {
            {DB_FILE, 0444},        {DB_FILE, 0222},     {DB_FILE, 0},
            {DB_FILE "-wal", 0444}, {DB_FILE "-wal", 0},
        };
        sombra_conn *c;
        uint8_t *before, *after;
        size_t len, len_after;
        int rc;

        open_fast();
        c = support_conn_acquire(db);
        support_node_make(c, "Private");
        cr_assert_eq(sombra_conn_release(c), SOMBRA_OK);
        support_db_close(&db);
        cr_assert(support_file_exists(DB_FILE "-wal"));
        before = support_read_file(DB_FILE, &len);
        /* Everyone may use the directory and, as a control, open the files. */
        chmod_in_dir(".", 0777);
        chmod_in_dir(DB_FILE, 0666);
        chmod_in_dir(DB_FILE "-wal", 0666);
        rc = open_status_as_stranger(DB_FILE);
        cr_assert_eq(rc, SOMBRA_OK, "control: %s", sombra_strerror(rc));
        for (size_t i = 0; i < sizeof(denied) / sizeof(denied[0]); i++) {
                free(before);
                before = support_read_file(DB_FILE, &len);
                chmod_in_dir(denied[i].file, denied[i].mode);
                rc = open_status_as_stranger(DB_FILE);
                cr_assert_eq(rc, SOMBRA_EPERM, "%s mode %o: %s", denied[i].file,
                             (unsigned)denied[i].mode, sombra_strerror(rc));
                chmod_in_dir(denied[i].file, 0666);
                after = support_read_file(DB_FILE, &len_after);
                cr_assert(len == len_after && memcmp(before, after, len) == 0,
                          "a refused open changed the file");
                free(after);
        }
        free(before);
        /* A new database in a directory the user may not write to. */
        cr_assert_eq(mkdir(support_path("ro"), 0755), 0);
        chmod_in_dir("ro", 0555);
        rc = open_status_as_stranger("ro/db");
        cr_assert_eq(rc, SOMBRA_EPERM, "read-only directory: %s", sombra_strerror(rc));
        cr_assert(!support_file_exists("ro/db"));
        open_fast();
        expect_healthy(1, 0);
}

/* ---- a database another process holds ---- */

/*
 * The child opens the database, writes a node, says so on `ready`, and
 * holds the database until `go` says to close it (or forever).
 */
static void
child_holds_database(int ready, int go)
{
        sombra_conn *c;
        sombra_db *d;
        char byte = 0;
        int rc = sombra_open(support_path(DB_FILE), NULL, &d);

        if (rc == SOMBRA_OK && (rc = sombra_conn_acquire(d, &c)) == SOMBRA_OK) {
                rc = sombra_node_create(c, NULL, 0, NULL, 0, NULL);
                sombra_conn_release(c);
        }
        if (write(ready, &rc, sizeof(rc)) != sizeof(rc) || rc != SOMBRA_OK)
                _exit(1);
        if (read(go, &byte, 1) != 1)
                _exit(1);
        _exit(sombra_close(d) == SOMBRA_OK ? 0 : 1);
}

/* Forks a child_holds_database; returns once it holds the database. */
static pid_t
start_holder(int *go)
{
        int ready[2], gate[2], rc;
        pid_t pid;

        cr_assert_eq(pipe(ready), 0);
        cr_assert_eq(pipe(gate), 0);
        pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
                close(ready[0]);
                close(gate[1]);
                child_holds_database(ready[1], gate[0]);
        }
        close(ready[1]);
        close(gate[0]);
        cr_assert_eq(read(ready[0], &rc, sizeof(rc)), (ssize_t)sizeof(rc));
        cr_assert_eq(rc, SOMBRA_OK, "child: %s", sombra_strerror(rc));
        close(ready[0]);
        *go = gate[1];
        return pid;
}

static int
exit_code_of(pid_t pid)
{
        int status;

        cr_assert_eq(waitpid(pid, &status, 0), pid);
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

Test(api_input, database_open_in_another_process_gets_elocked)
{
        sombra_db *second;
        pid_t pid;
        int go;

        pid = start_holder(&go);
        cr_assert_eq(sombra_open(support_path(DB_FILE), NULL, &db), SOMBRA_ELOCKED);
        cr_assert_eq(db, NULL);
        cr_assert_eq(write(go, "x", 1), 1);
        close(go);
        cr_assert_eq(exit_code_of(pid), 0);
        /* Closed there, it opens here, with the child's node; a second open here is refused. */
        open_fast();
        cr_assert_eq(sombra_open(support_path(DB_FILE), NULL, &second), SOMBRA_ELOCKED);
        expect_healthy(1, 0);
        /* And the other way round: the child cannot open what this process holds. */
        pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0)
                _exit(sombra_open(support_path(DB_FILE), NULL, &second) == SOMBRA_ELOCKED ? 0 : 1);
        cr_assert_eq(exit_code_of(pid), 0);
        expect_healthy(1, 0);
}

Test(api_input, database_of_a_killed_process_opens_and_is_healthy)
{
        pid_t pid;
        int go;

        pid = start_holder(&go);
        cr_assert_eq(kill(pid, SIGKILL), 0);
        cr_assert_eq(exit_code_of(pid), 128 + SIGKILL);
        close(go);
        open_fast();
        expect_healthy(1, 0);
}
