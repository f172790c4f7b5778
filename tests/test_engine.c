/*
 * test_engine.c - the public API of include/sombra.h: the pool, writes
 * through the writer thread, batches, tickets, interactive transactions,
 * snapshot reads, group commit, back-pressure, timeouts and misuse.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "graph.h"
#include "store.h"
#include "stress.h"
#include "support.h"
#include "wal.h"

static sombra_db *db;

static void
setup(void)
{
        support_dir_make("engine");
        db = NULL;
}

static void
teardown(void)
{
        support_db_close(&db);
        support_dir_remove();
}

TestSuite(engine, .init = setup, .fini = teardown, .timeout = 240);

static void
open_with(struct sombra_config *cfg)
{
        cr_assert_eq(sombra_open(support_path("e.sombra"), cfg, &db), SOMBRA_OK);
}

static sombra_conn *
acquire(void)
{
        return support_conn_acquire(db);
}

static uint64_t
make_node(sombra_conn *c, const char *label)
{
        return support_node_make(c, label);
}

/* Reopens the file with the core API and runs verify on it. */
static void
expect_verified_file(uint64_t nodes, uint64_t edges)
{
        struct graph *g;
        struct graph_verify_report r;
        uint64_t n, m;

        cr_assert_eq(sombra_close(db), SOMBRA_OK);
        db = NULL;
        cr_assert_eq(graph_open(support_path("e.sombra"), NULL, NULL, &g), SOMBRA_OK);
        cr_assert_eq(graph_verify(g, &r), SOMBRA_OK, "verify: %s", r.problem);
        cr_assert_eq(graph_counts(graph_writer_reader(g), &n, &m), SOMBRA_OK);
        cr_assert_eq(n, nodes);
        cr_assert_eq(m, edges);
        cr_assert_eq(graph_close(g), SOMBRA_OK);
}

Test(engine, writes_and_reads_round_trip)
{
        const struct sombra_entity *e;
        const struct sombra_neighbor *nb;
        struct sombra_value age = {.type = SOMBRA_INT, .u.i = 36};
        const uint64_t *ids;
        size_t n;
        uint64_t a, b, edge, count;
        sombra_conn *c;

        open_with(NULL);
        c = acquire();
        a = make_node(c, "Person");
        b = make_node(c, "Person");
        cr_assert_eq(sombra_node_set(c, a, "age", &age), SOMBRA_OK);
        cr_assert_eq(sombra_edge_create(c, a, b, "KNOWS", NULL, 0, &edge), SOMBRA_OK);
        /* A write is visible to the next read on any connection once acknowledged. */
        cr_assert_eq(sombra_node_get(c, a, &e), SOMBRA_OK);
        cr_assert_eq(e->nprops, 1);
        cr_assert_str_eq(e->props[0].key, "age");
        cr_assert_eq(e->props[0].value.u.i, 36);
        cr_assert_eq(sombra_neighbors(c, a, SOMBRA_OUT, NULL, 0, &nb, &n), SOMBRA_OK);
        cr_assert_eq(n, 1);
        cr_assert_eq(nb[0].node, b);
        cr_assert_eq(nb[0].edge, edge);
        cr_assert_str_eq(nb[0].type, "KNOWS");
        cr_assert_eq(sombra_nodes_by_label(c, "Person", &ids, &n), SOMBRA_OK);
        cr_assert_eq(n, 2);
        cr_assert_eq(sombra_two_hop_count(c, a, SOMBRA_BOTH, NULL, 0, &count), SOMBRA_OK);
        cr_assert_eq(sombra_index_create(c, "Person", "age"), SOMBRA_OK);
        cr_assert_eq(sombra_nodes_by_prop(c, "Person", "age", &age, &ids, &n), SOMBRA_OK);
        cr_assert_eq(n, 1);
        cr_assert_eq(ids[0], a);
        cr_assert_eq(sombra_shortest_path(c, b, a, SOMBRA_IN, NULL, 0, &ids, &n), SOMBRA_OK);
        cr_assert_eq(n, 2);
        cr_assert_eq(sombra_edge_get(c, edge, &e), SOMBRA_OK);
        cr_assert_eq(e->src, a);
        cr_assert_eq(sombra_node_delete(c, b), SOMBRA_OK);
        cr_assert_eq(sombra_degree(c, a, SOMBRA_BOTH, NULL, 0, &count), SOMBRA_OK);
        cr_assert_eq(count, 0);
        cr_assert_eq(sombra_node_get(c, b, &e), SOMBRA_ENOTFOUND);
        cr_assert_eq(sombra_conn_release(c), SOMBRA_OK);
        expect_verified_file(1, 0);
}

Test(engine, batch_is_atomic_and_refers_to_its_own_nodes)
{
        sombra_batch *b;
        sombra_conn *c;
        uint64_t r1, r2, re, n1, n2, e, nodes;
        const char *labels[] = {"City"};

        open_with(NULL);
        c = acquire();
        cr_assert_eq(sombra_batch_new(&b), SOMBRA_OK);
        cr_assert_eq(sombra_batch_node_create(b, labels, 1, NULL, 0, &r1), SOMBRA_OK);
        cr_assert_eq(sombra_batch_node_create(b, labels, 1, NULL, 0, &r2), SOMBRA_OK);
        cr_assert_eq(sombra_batch_edge_create(b, r1, r2, "ROAD", NULL, 0, &re), SOMBRA_OK);
        cr_assert_eq(sombra_batch_submit(c, b), SOMBRA_OK);
        cr_assert_eq(sombra_batch_id(b, r1, &n1), SOMBRA_OK);
        cr_assert_eq(sombra_batch_id(b, r2, &n2), SOMBRA_OK);
        cr_assert_eq(sombra_batch_id(b, re, &e), SOMBRA_OK);
        cr_assert_neq(n1, n2);
        /* A forward reference fails the whole batch: its first node is not kept either. */
        cr_assert_eq(sombra_batch_reset(b), SOMBRA_OK);
        cr_assert_eq(sombra_batch_node_create(b, labels, 1, NULL, 0, &r1), SOMBRA_OK);
        cr_assert_eq(sombra_batch_edge_create(b, r1, SOMBRA_BATCH_REF(5), "ROAD", NULL, 0, NULL),
                     SOMBRA_OK);
        cr_assert_eq(sombra_batch_submit(c, b), SOMBRA_EINVAL);
        cr_assert_eq(sombra_batch_id(b, r1, &n1), SOMBRA_EINVAL);
        cr_assert_eq(sombra_count(c, &nodes, NULL), SOMBRA_OK);
        cr_assert_eq(nodes, 2);
        cr_assert_eq(sombra_batch_free(b), SOMBRA_OK);
        cr_assert_eq(sombra_conn_release(c), SOMBRA_OK);
        expect_verified_file(2, 1);
}

/*
 * A batch reset between rounds reuses the memory it grew, in order: values
 * of every size, some larger than any chunk it has, some smaller than the
 * room left, must each come back as given.
 */
Test(engine, a_batch_reset_and_refilled_holds_exactly_what_it_was_given)
{
        enum { ROUNDS = 6, PER = 40, BIG = 20000 };
        static char text[BIG];
        uint64_t refs[PER], rng = 9;
        size_t lens[PER];
        sombra_batch *b;
        sombra_conn *c;

        open_with(NULL);
        c = acquire();
        cr_assert_eq(sombra_batch_new(&b), SOMBRA_OK);
        for (int round = 0; round < ROUNDS; round++) {
                cr_assert_eq(sombra_batch_reset(b), SOMBRA_OK);
                for (int i = 0; i < PER; i++) {
                        struct sombra_prop p = {"text", {.type = SOMBRA_STRING}};
                        lens[i] = support_next_rand(&rng) % (round % 2 ? BIG : 300);
                        for (size_t k = 0; k < lens[i]; k++)
                                text[k] = (char)('a' + (round + i + k) % 26);
                        p.value.u.s.ptr = text;
                        p.value.u.s.len = lens[i];
                        cr_assert_eq(sombra_batch_node_create(b, NULL, 0, &p, 1, &refs[i]),
                                     SOMBRA_OK);
                        memset(text, 0, lens[i]); /* copied: the batch keeps its own */
                }
                cr_assert_eq(sombra_batch_submit(c, b), SOMBRA_OK);
                for (int i = 0; i < PER; i++) {
                        const struct sombra_entity *e;
                        uint64_t id;
                        cr_assert_eq(sombra_batch_id(b, refs[i], &id), SOMBRA_OK);
                        cr_assert_eq(sombra_node_get(c, id, &e), SOMBRA_OK);
                        cr_assert_eq(e->nprops, 1);
                        cr_assert_eq(e->props[0].value.u.s.len, lens[i]);
                        for (size_t k = 0; k < lens[i]; k++)
                                cr_assert_eq(((const char *)e->props[0].value.u.s.ptr)[k],
                                             (char)('a' + (round + i + k) % 26), "round %d", round);
                }
        }
        cr_assert_eq(sombra_batch_free(b), SOMBRA_OK);
        cr_assert_eq(sombra_conn_release(c), SOMBRA_OK);
}

/*
 * A batch stores a repeated name once (copy_name, batch.c) and must forget
 * the names it kept when it is reset: its memory is then written again, and
 * a name kept from before would now hold other bytes. Here "Alphabet" takes
 * the place "Alpha" had, so a kept "Alpha" would read as "Alphabet". More
 * distinct keys than the batch keeps must each come back as given.
 */
Test(engine, a_batch_shares_repeated_names_and_forgets_them_at_reset)
{
        enum { KEYS = 20, NODES = 60 };
        const char *alpha[] = {"Alpha"}, *alphabet[] = {"Alphabet"};
        char keys[KEYS][8];
        uint64_t refs[NODES], id;
        const struct sombra_entity *e;
        sombra_batch *b;
        sombra_conn *c;

        open_with(NULL);
        c = acquire();
        cr_assert_eq(sombra_batch_new(&b), SOMBRA_OK);
        cr_assert_eq(sombra_batch_node_create(b, alpha, 1, NULL, 0, NULL), SOMBRA_OK);
        cr_assert_eq(sombra_batch_submit(c, b), SOMBRA_OK);
        cr_assert_eq(sombra_batch_reset(b), SOMBRA_OK);
        cr_assert_eq(sombra_batch_node_create(b, alphabet, 1, NULL, 0, NULL), SOMBRA_OK);
        for (int i = 0; i < NODES; i++) {
                struct sombra_prop p = {keys[i % KEYS], {.type = SOMBRA_INT, .u.i = i}};
                snprintf(keys[i % KEYS], sizeof(keys[0]), "k%d", i % KEYS);
                cr_assert_eq(sombra_batch_node_create(b, alpha, 1, &p, 1, &refs[i]), SOMBRA_OK);
        }
        cr_assert_eq(sombra_batch_submit(c, b), SOMBRA_OK);
        for (int i = 0; i < NODES; i++) {
                char want[8];
                snprintf(want, sizeof(want), "k%d", i % KEYS);
                cr_assert_eq(sombra_batch_id(b, refs[i], &id), SOMBRA_OK);
                cr_assert_eq(sombra_node_get(c, id, &e), SOMBRA_OK);
                cr_assert_eq(e->nlabels, 1);
                cr_assert_str_eq(e->labels[0], "Alpha", "node %d", i);
                cr_assert_eq(e->nprops, 1);
                cr_assert_str_eq(e->props[0].key, want, "node %d", i);
                cr_assert_eq(e->props[0].value.u.i, i);
        }
        cr_assert_eq(sombra_batch_free(b), SOMBRA_OK);
        cr_assert_eq(sombra_conn_release(c), SOMBRA_OK);
}

Test(engine, many_tickets_in_flight_on_one_connection)
{
        sombra_batch *b[64];
        uint64_t t[64], nodes;
        sombra_conn *c;
        bool done;

        open_with(NULL);
        c = acquire();
        for (int i = 0; i < 64; i++) {
                cr_assert_eq(sombra_batch_new(&b[i]), SOMBRA_OK);
                for (int k = 0; k < 10; k++)
                        cr_assert_eq(sombra_batch_node_create(b[i], NULL, 0, NULL, 0, NULL),
                                     SOMBRA_OK);
                cr_assert_eq(sombra_batch_submit_async(c, b[i], false, &t[i]), SOMBRA_OK);
        }
        for (int i = 0; i < 64; i++)
                cr_assert_eq(i % 2 ? sombra_wait(c, t[i]) : SOMBRA_OK, SOMBRA_OK);
        for (int i = 0; i < 64; i += 2) {
                int rc;
                while ((rc = sombra_poll(c, t[i], &done)) == SOMBRA_OK && !done)
                        ;
                cr_assert_eq(rc, SOMBRA_OK);
        }
        cr_assert_eq(sombra_wait(c, t[0]), SOMBRA_EINVAL); /* collected already */
        cr_assert_eq(sombra_count(c, &nodes, NULL), SOMBRA_OK);
        cr_assert_eq(nodes, 640);
        for (int i = 0; i < 64; i++)
                sombra_batch_free(b[i]);
        cr_assert_eq(sombra_conn_release(c), SOMBRA_OK);
}

/*
 * Requests in flight together are applied in one writer group, sharing its
 * page copies. A batch that fails after writing (its edge names a missing
 * node once its node is made) must take out only its own writes: the
 * group's other commits stay, and the file verifies.
 */
Test(engine, a_batch_failing_in_a_group_leaves_the_others_whole)
{
        sombra_batch *b[64];
        uint64_t t[64], nodes, edges, ids[64];
        sombra_conn *c;

        open_with(NULL);
        c = acquire();
        for (int i = 0; i < 64; i++) {
                bool bad = i % 5 == 3;
                cr_assert_eq(sombra_batch_new(&b[i]), SOMBRA_OK);
                for (int k = 0; k < 10; k++)
                        cr_assert_eq(sombra_batch_node_create(b[i], NULL, 0, NULL, 0, NULL),
                                     SOMBRA_OK);
                cr_assert_eq(sombra_batch_edge_create(b[i], SOMBRA_BATCH_REF(0),
                                                      bad ? 1u << 30 : SOMBRA_BATCH_REF(1), "E",
                                                      NULL, 0, NULL),
                             SOMBRA_OK);
                cr_assert_eq(sombra_batch_submit_async(c, b[i], false, &t[i]), SOMBRA_OK);
        }
        for (int i = 0; i < 64; i++) {
                int rc = sombra_wait(c, t[i]);
                cr_assert_eq(rc, i % 5 == 3 ? SOMBRA_ENOTFOUND : SOMBRA_OK, "batch %d: %d", i, rc);
                if (rc == SOMBRA_OK)
                        cr_assert_eq(sombra_batch_id(b[i], SOMBRA_BATCH_REF(0), &ids[i]),
                                     SOMBRA_OK);
        }
        cr_assert_eq(sombra_count(c, &nodes, &edges), SOMBRA_OK);
        cr_assert_eq(nodes, 10 * (64 - 13));
        cr_assert_eq(edges, 64 - 13);
        for (int i = 0; i < 64; i++) {
                uint64_t deg;
                if (i % 5 == 3)
                        continue;
                cr_assert_eq(sombra_degree(c, ids[i], SOMBRA_OUT, NULL, 0, &deg), SOMBRA_OK);
                cr_assert_eq(deg, 1, "batch %d's edge", i);
        }
        for (int i = 0; i < 64; i++)
                sombra_batch_free(b[i]);
        cr_assert_eq(sombra_conn_release(c), SOMBRA_OK);
        expect_verified_file(10 * (64 - 13), 64 - 13);
}

Test(engine, interactive_transaction_reads_its_writes_and_commits_or_rolls_back)
{
        sombra_conn *c, *other;
        const struct sombra_entity *e;
        uint64_t a, nodes;

        open_with(NULL);
        c = acquire();
        other = acquire();
        cr_assert_eq(sombra_txn_begin(c), SOMBRA_OK);
        cr_assert_eq(sombra_txn_begin(c), SOMBRA_EBUSY);
        a = make_node(c, "Draft");
        cr_assert_eq(sombra_node_get(c, a, &e), SOMBRA_OK); /* read-your-writes */
        cr_assert_eq(sombra_count(other, &nodes, NULL), SOMBRA_OK);
        cr_assert_eq(nodes, 0); /* others do not see it before the commit */
        cr_assert_eq(sombra_txn_rollback(c), SOMBRA_OK);
        cr_assert_eq(sombra_node_get(c, a, &e), SOMBRA_ENOTFOUND);
        cr_assert_eq(sombra_txn_commit(c), SOMBRA_ENOTXN);
        cr_assert_eq(sombra_txn_begin(c), SOMBRA_OK);
        a = make_node(c, "Final");
        cr_assert_eq(sombra_txn_commit(c), SOMBRA_OK);
        cr_assert_eq(sombra_node_get(other, a, &e), SOMBRA_OK);
        cr_assert_eq(sombra_conn_release(c), SOMBRA_OK);
        cr_assert_eq(sombra_conn_release(other), SOMBRA_OK);
        expect_verified_file(1, 0);
}

Test(engine, stalled_transaction_times_out_and_the_writer_moves_on)
{
        struct sombra_config cfg;
        struct sombra_stats st;
        struct timespec pause = {0, 300 * 1000000};
        sombra_conn *c, *other;
        uint64_t nodes;

        sombra_config_production(&cfg);
        cfg.txn_timeout_ms = 100;
        open_with(&cfg);
        c = acquire();
        other = acquire();
        cr_assert_eq(sombra_txn_begin(c), SOMBRA_OK);
        make_node(c, "Lost");
        /* Another writer waits behind the transaction, then goes through once it expires. */
        make_node(other, "Kept");
        nanosleep(&pause, NULL);
        cr_assert_eq(sombra_node_create(c, NULL, 0, NULL, 0, NULL), SOMBRA_ETIMEDOUT);
        cr_assert_eq(sombra_count(c, &nodes, NULL), SOMBRA_OK);
        cr_assert_eq(nodes, 1);
        cr_assert_eq(sombra_txn_begin(c), SOMBRA_OK); /* the connection is usable again */
        cr_assert_eq(sombra_txn_rollback(c), SOMBRA_OK);
        cr_assert_eq(sombra_stats(db, &st), SOMBRA_OK);
        cr_assert_eq(st.txn_timeouts, 1);
        cr_assert_eq(sombra_conn_release(c), SOMBRA_OK);
        cr_assert_eq(sombra_conn_release(other), SOMBRA_OK);
}

Test(engine, read_transaction_keeps_its_snapshot)
{
        sombra_conn *r, *w;
        uint64_t before, during, after;

        open_with(NULL);
        r = acquire();
        w = acquire();
        make_node(w, "A");
        cr_assert_eq(sombra_read_begin(r), SOMBRA_OK);
        cr_assert_eq(sombra_count(r, &before, NULL), SOMBRA_OK);
        for (int i = 0; i < 50; i++)
                make_node(w, "A");
        cr_assert_eq(sombra_count(r, &during, NULL), SOMBRA_OK);
        cr_assert_eq(during, before);
        cr_assert_eq(sombra_read_end(r), SOMBRA_OK);
        cr_assert_eq(sombra_count(r, &after, NULL), SOMBRA_OK);
        cr_assert_eq(after, before + 50);
        cr_assert_eq(sombra_read_end(r), SOMBRA_ENOTXN);
        cr_assert_eq(sombra_conn_release(r), SOMBRA_OK);
        cr_assert_eq(sombra_conn_release(w), SOMBRA_OK);
}

/*
 * FULL commits from one connection while `idle` more are held: alone, the
 * writer syncs them itself; with another caller, the committer does.
 */
static void
full_commits_are_durable_when_acknowledged(int idle)
{
        struct sombra_stats st;
        sombra_conn *c, *others[2];

        open_with(NULL); /* production: FULL */
        c = acquire();
        for (int i = 0; i < idle; i++)
                others[i] = acquire();
        for (int i = 0; i < 20; i++) {
                make_node(c, "N");
                cr_assert_eq(sombra_stats(db, &st), SOMBRA_OK);
                /* One writer thread here: what was written is what was acknowledged. */
                cr_assert_geq(st.durable_lsn, st.written_lsn, "commit %d acknowledged early", i);
        }
        cr_assert_geq(st.group_syncs, 20);
        cr_assert_eq(st.group_commits, 20, "each commit counted once, by whichever thread synced");
        for (int i = 0; i < idle; i++)
                cr_assert_eq(sombra_conn_release(others[i]), SOMBRA_OK);
        cr_assert_eq(sombra_conn_release(c), SOMBRA_OK);
}

Test(engine, full_mode_acknowledges_only_durable_commits)
{
        full_commits_are_durable_when_acknowledged(0);
}

Test(engine, full_mode_acknowledges_only_durable_commits_beside_other_callers)
{
        full_commits_are_durable_when_acknowledged(2);
}

/*
 * A full group that leaves requests waiting goes to the publisher thread,
 * which writes its pages and answers while the writer applies the next. An
 * answer must still come only once readers can see the commit. An
 * interactive txn holds the writer while three connections queue more
 * requests than a group takes, so that the pass after its commit fills a
 * group with requests left over: that group is the publisher's for certain.
 * (Whether an answer could come before the pages are written depends on the
 * scheduler here; faults/a_failed_page_write_on_the_publisher_... catches it
 * for certain.)
 */
Test(engine, the_publisher_answers_only_commits_that_readers_see)
{
        enum { QUEUES = 3, BATCHES = 150, PER = 10 };
        struct sombra_prop prop = {"pad", {.type = SOMBRA_STRING, .u.s = {"0123456789abcdef", 16}}};
        struct sombra_config cfg;
        static sombra_batch *b[QUEUES][BATCHES];
        uint64_t t[QUEUES][BATCHES], nodes;
        const struct sombra_entity *e;
        struct sombra_stats st;
        sombra_conn *owner, *queued[QUEUES], *reader;

        cr_assert_gt(QUEUES * BATCHES, 256, "more than a group takes");
        /* OFF: the answer does not wait for a sync, which would hide an early one. */
        sombra_config_benchmark(&cfg);
        cfg.publish_every_group = true; /* the publisher's groups, not deferred ones */
        open_with(&cfg);
        for (int q = 0; q < QUEUES; q++)
                queued[q] = acquire();
        owner = acquire();
        reader = acquire();
        cr_assert_eq(sombra_txn_begin(owner), SOMBRA_OK);
        make_node(owner, "Held");
        for (int q = 0; q < QUEUES; q++) {
                for (int i = 0; i < BATCHES; i++) {
                        cr_assert_eq(sombra_batch_new(&b[q][i]), SOMBRA_OK);
                        for (int k = 0; k < PER; k++)
                                cr_assert_eq(
                                    sombra_batch_node_create(b[q][i], NULL, 0, &prop, 1, NULL),
                                    SOMBRA_OK);
                        cr_assert_eq(sombra_batch_submit_async(queued[q], b[q][i], false, &t[q][i]),
                                     SOMBRA_OK);
                }
        }
        cr_assert_eq(sombra_txn_commit(owner), SOMBRA_OK);
        for (int q = 0; q < QUEUES; q++) {
                for (int i = 0; i < BATCHES; i++) {
                        uint64_t last;
                        cr_assert_eq(sombra_wait(queued[q], t[q][i]), SOMBRA_OK);
                        cr_assert_eq(sombra_batch_id(b[q][i], SOMBRA_BATCH_REF(PER - 1), &last),
                                     SOMBRA_OK);
                        cr_assert_eq(sombra_node_get(reader, last, &e), SOMBRA_OK,
                                     "batch %d of %d answered before readers see it", i, q);
                        sombra_batch_free(b[q][i]);
                }
                cr_assert_eq(sombra_conn_release(queued[q]), SOMBRA_OK);
        }
        cr_assert_eq(sombra_count(reader, &nodes, NULL), SOMBRA_OK);
        cr_assert_eq(nodes, 1 + QUEUES * BATCHES * PER);
        cr_assert_eq(sombra_stats(db, &st), SOMBRA_OK);
        cr_assert_geq(st.publisher_groups, 1, "a full group with more waiting is the publisher's");
        cr_assert_eq(sombra_conn_release(owner), SOMBRA_OK);
        cr_assert_eq(sombra_conn_release(reader), SOMBRA_OK);
        expect_verified_file(1 + QUEUES * BATCHES * PER, 0);
}

/*
 * One batch of n nodes of about 1 KiB each: a file large enough that the
 * pages a reader's snapshot holds back through a run of small commits stay
 * under the writer's bound for deferring (an eighth of the file), so that it
 * defers beside such a reader too.
 */
enum { PRELOAD = 1000 };

static void
preload(sombra_conn *c)
{
        static const uint8_t blob[1000];
        struct sombra_prop p = {"blob", {.type = SOMBRA_BYTES, .u.s = {blob, sizeof(blob)}}};
        sombra_batch *b;

        cr_assert_eq(sombra_batch_new(&b), SOMBRA_OK);
        for (int i = 0; i < PRELOAD; i++)
                cr_assert_eq(sombra_batch_node_create(b, NULL, 0, &p, 1, NULL), SOMBRA_OK);
        cr_assert_eq(sombra_batch_submit(c, b), SOMBRA_OK);
        sombra_batch_free(b);
}

/*
 * Deferred publication: with no reader about, the writer answers groups
 * without writing their pages for readers, and the first reader after them
 * still sees every answered commit (it asks the writer to publish, and
 * waits). One caller's commits are one group each, so 40 of them leave the
 * last few unpublished (a run of deferred groups ends at the 32nd): a
 * reader that took the published state as it was would count fewer nodes.
 */
Test(engine, a_reader_sees_every_commit_answered_while_publication_was_deferred)
{
        enum { COMMITS = 40 };
        struct sombra_config cfg;
        struct sombra_stats st;
        const struct sombra_entity *e;
        sombra_conn *w, *r;
        uint64_t id = 0, nodes;

        sombra_config_benchmark(&cfg);
        open_with(&cfg);
        w = acquire();
        r = acquire();
        preload(w);
        for (int i = 0; i < COMMITS; i++)
                id = make_node(w, "Deferred");
        cr_assert_eq(sombra_stats(db, &st), SOMBRA_OK);
        cr_assert_geq(st.unpublished_groups, COMMITS % 32, "groups were answered unpublished");
        cr_assert_eq(sombra_count(r, &nodes, NULL), SOMBRA_OK);
        cr_assert_eq(nodes, PRELOAD + COMMITS, "the reader sees every answered commit");
        cr_assert_eq(sombra_node_get(r, id, &e), SOMBRA_OK);
        /* A read transaction begun after more answers sees them too. */
        id = make_node(w, "Deferred");
        cr_assert_eq(sombra_read_begin(r), SOMBRA_OK);
        cr_assert_eq(sombra_node_get(r, id, &e), SOMBRA_OK);
        cr_assert_eq(sombra_read_end(r), SOMBRA_OK);
        cr_assert_eq(sombra_conn_release(w), SOMBRA_OK);
        cr_assert_eq(sombra_conn_release(r), SOMBRA_OK);
        expect_verified_file(PRELOAD + COMMITS + 1, 0);
}

/*
 * A read transaction begun before a run of deferred groups keeps its state
 * whole: the pages those groups copy from it stay until it ends.
 */
Test(engine, a_reader_holding_a_snapshot_keeps_its_pages_through_deferred_groups)
{
        enum { NODES = 50, ROUNDS = 40 };
        struct sombra_value v = {.type = SOMBRA_INT};
        const struct sombra_entity *e;
        struct sombra_config cfg;
        uint64_t ids[NODES];
        sombra_conn *w, *r;

        sombra_config_benchmark(&cfg);
        open_with(&cfg);
        w = acquire();
        r = acquire();
        preload(w);
        for (int i = 0; i < NODES; i++) {
                ids[i] = make_node(w, "Held");
                cr_assert_eq(sombra_node_set(w, ids[i], "v", &v), SOMBRA_OK);
        }
        cr_assert_eq(sombra_read_begin(r), SOMBRA_OK);
        /*
         * The read may have asked for a publication, which keeps the writer
         * publishing every group for 100 ms: past that, the groups below are
         * deferred, and the pages they retire are the ones the reader holds.
         */
        nanosleep(&(struct timespec){0, 150 * 1000 * 1000}, NULL);
        for (int k = 1; k <= ROUNDS; k++) {
                v.u.i = k;
                for (int i = 0; i < NODES; i++)
                        cr_assert_eq(sombra_node_set(w, ids[i], "v", &v), SOMBRA_OK);
        }
        for (int i = 0; i < NODES; i++) {
                cr_assert_eq(sombra_node_get(r, ids[i], &e), SOMBRA_OK);
                cr_assert_eq(support_prop_int(e, "v"), 0, "node %d changed under the reader", i);
        }
        cr_assert_eq(sombra_read_end(r), SOMBRA_OK);
        for (int i = 0; i < NODES; i++) {
                cr_assert_eq(sombra_node_get(r, ids[i], &e), SOMBRA_OK);
                cr_assert_eq(support_prop_int(e, "v"), ROUNDS);
        }
        cr_assert_eq(sombra_conn_release(w), SOMBRA_OK);
        cr_assert_eq(sombra_conn_release(r), SOMBRA_OK);
        expect_verified_file(PRELOAD + NODES, 0);
}

/*
 * The child of the test below: single commits until one is published after
 * a run of unpublished ones (the stats tell), then the count on the pipe and
 * a kill at once. Exits with 2 when it never saw one.
 */
static void
noted_child(int fd, const void *unused)
{
        struct sombra_stats st;
        uint64_t before, made = 0;
        sombra_conn *c;
        sombra_db *d;

        (void)unused;
        if (sombra_open(support_path("e.sombra"), NULL, &d) != SOMBRA_OK ||
            sombra_conn_acquire(d, &c) != SOMBRA_OK)
                _exit(2);
        preload(c);
        if (sombra_stats(d, &st) != SOMBRA_OK)
                _exit(2);
        for (before = st.unpublished_groups; made < 200; before = st.unpublished_groups) {
                if (sombra_node_create(c, NULL, 0, NULL, 0, NULL) != SOMBRA_OK ||
                    sombra_stats(d, &st) != SOMBRA_OK)
                        _exit(2);
                made++;
                if (st.unpublished_groups == before && before > 0) {
                        if (write(fd, &made, sizeof(made)) != (ssize_t)sizeof(made))
                                _exit(2);
                        raise(SIGKILL);
                }
        }
        _exit(2);
}

/*
 * A publication after unpublished groups writes over pages of the state the
 * last note names (they were freed early), so its own note must reach the
 * log file with it: a process killed right after that answer is recovered
 * from the note, not by replaying the whole log.
 */
Test(engine, a_crash_right_after_a_deferred_run_is_recovered_from_its_note)
{
        struct sombra_stats st;
        uint64_t made = 0, nodes;
        int fd, status;
        pid_t pid = support_fork_piped(noted_child, NULL, &fd);
        sombra_conn *c;

        cr_assert_eq(waitpid(pid, &status, 0), pid);
        cr_assert_eq(read(fd, &made, sizeof(made)), (ssize_t)sizeof(made));
        close(fd);
        cr_assert(WIFSIGNALED(status), "the child saw no deferred run: status %d", status);
        open_with(NULL);
        cr_assert_eq(sombra_stats(db, &st), SOMBRA_OK);
        cr_assert_gt(st.recovered_lsn, 0, "the log was replayed whole: no note was usable");
        c = acquire();
        cr_assert_eq(sombra_count(c, &nodes, NULL), SOMBRA_OK);
        cr_assert_eq(nodes, PRELOAD + made);
        cr_assert_eq(sombra_conn_release(c), SOMBRA_OK);
        expect_verified_file(PRELOAD + made, 0);
}

/* With publish_every_group, no group is answered before readers can see it. */
Test(engine, publish_every_group_answers_no_group_unpublished)
{
        struct sombra_config cfg;
        struct sombra_stats st;
        sombra_conn *w;

        sombra_config_benchmark(&cfg);
        cfg.publish_every_group = true;
        open_with(&cfg);
        w = acquire();
        preload(w);
        for (int i = 0; i < 40; i++)
                make_node(w, "Eager");
        cr_assert_eq(sombra_stats(db, &st), SOMBRA_OK);
        cr_assert_eq(st.unpublished_groups, 0);
        cr_assert_eq(sombra_conn_release(w), SOMBRA_OK);
}

/* Groups deferred (unpublished) while one connection makes `commits` nodes, one a commit. */
static uint64_t
unpublished_over(sombra_conn *w, int commits)
{
        struct sombra_stats before, after;

        cr_assert_eq(sombra_stats(db, &before), SOMBRA_OK);
        for (int i = 0; i < commits; i++)
                make_node(w, "Small");
        cr_assert_eq(sombra_stats(db, &after), SOMBRA_OK);
        return after.unpublished_groups - before.unpublished_groups;
}

/*
 * The pages a group copies from the published state go free at the skip
 * when no reader holds that state, so they do not count against the bound:
 * in a file of a few pages, where each commit copies more than an eighth of
 * it, groups are still deferred (before, none was).
 */
Test(engine, groups_copying_much_of_a_small_file_are_deferred_when_no_reader_holds_it)
{
        struct sombra_config cfg;
        sombra_conn *w;

        sombra_config_benchmark(&cfg);
        open_with(&cfg);
        w = acquire();
        cr_assert_gt(unpublished_over(w, 40), 20);
        cr_assert_eq(sombra_conn_release(w), SOMBRA_OK);
        expect_verified_file(40, 0);
}

/*
 * What a reader's snapshot holds stays in the file: in a small file it soon
 * passes an eighth of it, and the writer then publishes each group instead
 * of letting the file grow. (The reader's begin may ask for publications
 * for 100 ms; the commits come after that.)
 */
Test(engine, a_reader_holding_much_of_a_small_file_ends_the_deferral)
{
        const struct sombra_entity *e;
        struct sombra_config cfg;
        sombra_conn *w, *r;
        uint64_t first;

        sombra_config_benchmark(&cfg);
        open_with(&cfg);
        w = acquire();
        r = acquire();
        first = make_node(w, "Small");
        cr_assert_eq(sombra_read_begin(r), SOMBRA_OK);
        nanosleep(&(struct timespec){0, 150 * 1000 * 1000}, NULL);
        cr_assert_leq(unpublished_over(w, 40), 2);
        cr_assert_eq(sombra_node_get(r, first, &e), SOMBRA_OK);
        cr_assert_eq(sombra_read_end(r), SOMBRA_OK);
        cr_assert_eq(sombra_conn_release(w), SOMBRA_OK);
        cr_assert_eq(sombra_conn_release(r), SOMBRA_OK);
        expect_verified_file(41, 0);
}

/*
 * Readers on their own threads while one thread commits: every commit a
 * writer was answered for is visible to the reads its own thread makes
 * next, through another connection, and the counts readers see never go
 * down.
 */
struct fresh_reader {
        sombra_db *db;
        int stop;
        uint64_t reads;
        int failure;
};

static void *
fresh_reader_main(void *arg)
{
        struct fresh_reader *fr = arg;
        uint64_t last = 0, nodes;
        sombra_conn *c = NULL;

        fr->failure = sombra_conn_acquire(fr->db, &c);
        while (fr->failure == SOMBRA_OK && !__atomic_load_n(&fr->stop, __ATOMIC_ACQUIRE)) {
                fr->failure = sombra_count(c, &nodes, NULL);
                if (fr->failure == SOMBRA_OK && nodes < last)
                        fr->failure = SOMBRA_ECORRUPT; /* a count went down */
                last = nodes;
                fr->reads++;
        }
        if (c != NULL)
                sombra_conn_release(c);
        return NULL;
}

Test(engine, readers_beside_a_writer_see_each_answered_commit_at_once)
{
        enum { COMMITS = 300 };
        struct fresh_reader fr = {0};
        const struct sombra_entity *e;
        struct sombra_config cfg;
        sombra_conn *w, *r;
        pthread_t tid;

        sombra_config_benchmark(&cfg);
        open_with(&cfg);
        fr.db = db;
        w = acquire();
        r = acquire();
        preload(w);
        cr_assert_eq(pthread_create(&tid, NULL, fresh_reader_main, &fr), 0);
        for (int i = 0; i < COMMITS; i++) {
                uint64_t id = make_node(w, "Fresh");
                cr_assert_eq(sombra_node_get(r, id, &e), SOMBRA_OK, "commit %d", i);
        }
        __atomic_store_n(&fr.stop, 1, __ATOMIC_RELEASE);
        pthread_join(tid, NULL);
        cr_assert_eq(fr.failure, SOMBRA_OK, "the reader: %s", sombra_strerror(fr.failure));
        cr_assert_eq(sombra_conn_release(w), SOMBRA_OK);
        cr_assert_eq(sombra_conn_release(r), SOMBRA_OK);
        expect_verified_file(PRELOAD + COMMITS, 0);
}

Test(engine, pool_of_two_runs_out_and_comes_back)
{
        struct sombra_config cfg;
        sombra_conn *a, *b, *c;

        sombra_config_production(&cfg);
        cfg.max_connections = 2;
        open_with(&cfg);
        a = acquire();
        b = acquire();
        cr_assert_eq(sombra_conn_acquire_timeout(db, 0, &c), SOMBRA_EBUSY);
        cr_assert_eq(sombra_conn_acquire_timeout(db, 50, &c), SOMBRA_EBUSY);
        cr_assert_eq(sombra_close(db), SOMBRA_EBUSY);
        cr_assert_eq(sombra_conn_release(a), SOMBRA_OK);
        cr_assert_eq(sombra_conn_release(a), SOMBRA_ECLOSED);
        cr_assert_eq(sombra_node_create(a, NULL, 0, NULL, 0, NULL), SOMBRA_ECLOSED);
        cr_assert_eq(sombra_conn_acquire_timeout(db, 0, &c), SOMBRA_OK);
        cr_assert_eq(sombra_conn_release(b), SOMBRA_OK);
        cr_assert_eq(sombra_conn_release(c), SOMBRA_OK);
}

Test(engine, tiny_ring_pushes_back)
{
        struct sombra_config cfg;
        sombra_batch *b;
        sombra_conn *c;
        uint64_t t[64];
        int n = 0, rc = SOMBRA_OK;

        sombra_config_production(&cfg);
        cfg.ring_capacity = 2;
        open_with(&cfg);
        c = acquire();
        cr_assert_eq(sombra_batch_new(&b), SOMBRA_OK);
        for (int k = 0; k < 200; k++)
                cr_assert_eq(sombra_batch_node_create(b, NULL, 0, NULL, 0, NULL), SOMBRA_OK);
        /* Two slots: the third submission cannot be taken without waiting. */
        while (n < 64 && (rc = sombra_batch_submit_async(c, b, true, &t[n])) == SOMBRA_OK)
                n++;
        cr_assert_eq(rc, SOMBRA_EAGAIN);
        cr_assert_leq(n, 2);
        for (int i = 0; i < n; i++)
                cr_assert_eq(sombra_wait(c, t[i]), SOMBRA_OK);
        sombra_batch_free(b);
        cr_assert_eq(sombra_conn_release(c), SOMBRA_OK);
}

Test(engine, bad_arguments_get_errors)
{
        sombra_conn *c;
        const struct sombra_entity *e;
        struct sombra_config cfg;

        cr_assert_eq(sombra_open(NULL, NULL, &db), SOMBRA_EINVAL);
        sombra_config_production(&cfg);
        cfg.ring_capacity = 3;
        cr_assert_eq(sombra_open(support_path("e.sombra"), &cfg, &db), SOMBRA_EINVAL);
        db = NULL;
        open_with(NULL);
        cr_assert_eq(sombra_conn_acquire(NULL, &c), SOMBRA_EINVAL);
        c = acquire();
        cr_assert_eq(sombra_node_create(NULL, NULL, 0, NULL, 0, NULL), SOMBRA_EINVAL);
        cr_assert_eq(sombra_node_get(c, 1, NULL), SOMBRA_EINVAL);
        cr_assert_eq(sombra_node_get(c, 99, &e), SOMBRA_ENOTFOUND);
        cr_assert_eq(sombra_edge_create(c, 1, 2, "T", NULL, 0, NULL), SOMBRA_ENOTFOUND);
        cr_assert_eq(sombra_node_create(c, (const char *[]){""}, 1, NULL, 0, NULL), SOMBRA_EINVAL);
        cr_assert_eq(sombra_wait(c, 12345), SOMBRA_EINVAL);
        cr_assert_eq(sombra_conn_release(c), SOMBRA_OK);
        cr_assert_eq(sombra_close(NULL), SOMBRA_EINVAL);
}

Test(engine, sixteen_threads_mixed_then_every_acknowledged_edge_is_there)
{
        struct engine_stress_result res;
        struct sombra_stats st;

        open_with(NULL); /* FULL: commits per fsync must exceed one under this load */
        engine_stress(db, 16, 1500, &res);
        cr_assert_eq(res.failures, 0, "%s", res.problem);
        cr_assert_gt(res.edges, 0);
        cr_assert_eq(sombra_stats(db, &st), SOMBRA_OK);
        cr_assert_gt(st.group_commits, st.group_syncs, "%lu commits in %lu syncs",
                     (unsigned long)st.group_commits, (unsigned long)st.group_syncs);
        expect_verified_file(res.nodes, res.edges);
}

Test(engine, normal_mode_syncs_by_count_and_by_time)
{
        struct sombra_config cfg;
        struct sombra_stats st;
        struct timespec pause = {0, 300 * 1000000};
        sombra_conn *c;

        sombra_config_balanced(&cfg); /* every 100 commits or 100 ms */
        open_with(&cfg);
        c = acquire();
        for (int i = 0; i < 250; i++)
                make_node(c, "N");
        nanosleep(&pause, NULL); /* the interval passes: the tail gets synced too */
        cr_assert_eq(sombra_stats(db, &st), SOMBRA_OK);
        cr_assert_eq(st.durable_lsn, st.written_lsn);
        /* The committer syncs on its own thread: how many groups it made depends on timing. */
        cr_assert_geq(st.group_syncs, 1);
        cr_assert_lt(st.group_syncs, 250, "NORMAL must not sync every commit");
        cr_assert_eq(sombra_conn_release(c), SOMBRA_OK);
}

Test(engine, off_mode_never_syncs_a_commit)
{
        struct sombra_config cfg;
        struct sombra_stats st;
        sombra_conn *c;

        sombra_config_benchmark(&cfg);
        open_with(&cfg);
        c = acquire();
        for (int i = 0; i < 100; i++)
                make_node(c, "N");
        cr_assert_eq(sombra_stats(db, &st), SOMBRA_OK);
        cr_assert_eq(st.wal_syncs, 0);
        cr_assert_eq(st.group_syncs, 0);
        cr_assert_eq(st.commits, 100);
        cr_assert_eq(sombra_conn_release(c), SOMBRA_OK);
        expect_verified_file(100, 0); /* close checkpoints: nothing is lost on a clean close */
}

Test(engine, normal_mode_syncs_a_lone_commit_within_the_interval)
{
        struct sombra_config cfg;
        struct sombra_stats st;
        struct timespec pause = {0, 300 * 1000000};
        sombra_conn *c;

        sombra_config_balanced(&cfg); /* 100 ms */
        open_with(&cfg);
        c = acquire();
        make_node(c, "N");
        nanosleep(&pause, NULL);
        cr_assert_eq(sombra_stats(db, &st), SOMBRA_OK);
        cr_assert_eq(st.durable_lsn, st.written_lsn, "a lone NORMAL commit was never synced");
        cr_assert_eq(sombra_conn_release(c), SOMBRA_OK);
}

Test(engine, transactions_racing_their_timeout_leave_the_connection_usable)
{
        struct sombra_config cfg;
        sombra_conn *c, *other;
        uint64_t nodes, before;

        sombra_config_production(&cfg);
        cfg.sync_mode = SOMBRA_SYNC_OFF;
        cfg.txn_timeout_ms = 1;
        open_with(&cfg);
        c = acquire();
        other = acquire();
        for (int i = 0; i < 300; i++) {
                int rc = sombra_txn_begin(c);
                cr_assert_eq(rc, SOMBRA_OK, "round %d: begin gave %s", i, sombra_strerror(rc));
                rc = sombra_node_create(c, NULL, 0, NULL, 0, NULL);
                cr_assert(rc == SOMBRA_OK || rc == SOMBRA_ETIMEDOUT);
                rc = sombra_txn_commit(c);
                cr_assert(rc == SOMBRA_OK || rc == SOMBRA_ETIMEDOUT || rc == SOMBRA_ENOTXN);
                /* Whatever happened, plain writes on both connections go through. */
                cr_assert_eq(sombra_count(other, &before, NULL), SOMBRA_OK);
                cr_assert_eq(sombra_node_create(c, NULL, 0, NULL, 0, NULL), SOMBRA_OK);
                cr_assert_eq(sombra_node_create(other, NULL, 0, NULL, 0, NULL), SOMBRA_OK);
                cr_assert_eq(sombra_count(other, &nodes, NULL), SOMBRA_OK);
                cr_assert_eq(nodes, before + 2, "round %d", i);
        }
        cr_assert_eq(sombra_conn_release(c), SOMBRA_OK);
        cr_assert_eq(sombra_conn_release(other), SOMBRA_OK);
}

Test(engine, names_read_in_a_rolled_back_transaction_stay_readable)
{
        const struct sombra_entity *e;
        const char *label;
        sombra_conn *c;

        open_with(NULL);
        c = acquire();
        cr_assert_eq(sombra_txn_begin(c), SOMBRA_OK);
        make_node(c, "BrandNewLabel");
        cr_assert_eq(sombra_node_get(c, 1, &e), SOMBRA_OK);
        label = e->labels[0];
        cr_assert_eq(sombra_txn_rollback(c), SOMBRA_OK);
        cr_assert_str_eq(label, "BrandNewLabel"); /* ASan would catch a freed name */
        cr_assert_eq(sombra_conn_release(c), SOMBRA_OK);
}

Test(engine, batch_results_appear_only_after_a_successful_wait)
{
        sombra_batch *b;
        sombra_conn *c;
        uint64_t ref, id, ticket, n;

        open_with(NULL);
        c = acquire();
        cr_assert_eq(sombra_batch_new(&b), SOMBRA_OK);
        cr_assert_eq(sombra_batch_node_create(b, NULL, 0, NULL, 0, &ref), SOMBRA_OK);
        cr_assert_eq(sombra_batch_submit_async(c, b, false, &ticket), SOMBRA_OK);
        cr_assert_eq(sombra_batch_id(b, ref, &id), SOMBRA_EINVAL);
        cr_assert_eq(sombra_wait(c, ticket), SOMBRA_OK);
        cr_assert_eq(sombra_batch_id(b, ref, &id), SOMBRA_OK);
        cr_assert_neq(id, 0);
        /* A batch inside an interactive transaction is a step of it. */
        cr_assert_eq(sombra_txn_begin(c), SOMBRA_OK);
        cr_assert_eq(sombra_batch_submit(c, b), SOMBRA_OK);
        cr_assert_eq(sombra_txn_rollback(c), SOMBRA_OK);
        cr_assert_eq(sombra_count(c, &n, NULL), SOMBRA_OK);
        cr_assert_eq(n, 1);
        sombra_batch_free(b);
        cr_assert_eq(sombra_conn_release(c), SOMBRA_OK);
}

/* ---- what sombra.h promises about ids and traversals ---- */

static uint64_t
make_edge(sombra_conn *c, uint64_t src, uint64_t dst, const char *type)
{
        uint64_t id;

        cr_assert_eq(sombra_edge_create(c, src, dst, type, NULL, 0, &id), SOMBRA_OK);
        return id;
}

static void
reopen(void)
{
        cr_assert_eq(sombra_close(db), SOMBRA_OK);
        db = NULL;
        open_with(NULL);
}

Test(engine, ids_count_up_from_one_and_are_never_given_twice)
{
        const char *label[] = {"N"};
        sombra_batch *b;
        sombra_conn *c;
        uint64_t id;

        open_with(NULL);
        c = acquire();
        for (uint64_t want = 1; want <= 3; want++)
                cr_assert_eq(make_node(c, "N"), want);
        /* Edges have a sequence of their own. */
        cr_assert_eq(make_edge(c, 1, 2, "E"), 1);
        cr_assert_eq(make_edge(c, 2, 3, "E"), 2);
        /* Deleting the newest node and edge does not give their ids back. */
        cr_assert_eq(sombra_node_delete(c, 3), SOMBRA_OK); /* and edge 2 with it */
        cr_assert_eq(make_node(c, "N"), 4);
        cr_assert_eq(make_edge(c, 1, 4, "E"), 3);
        /* A rolled-back transaction's ids were never seen: the next commit takes them. */
        cr_assert_eq(sombra_txn_begin(c), SOMBRA_OK);
        cr_assert_eq(make_node(c, "N"), 5);
        cr_assert_eq(sombra_txn_rollback(c), SOMBRA_OK);
        /* A batch numbers its nodes in the order of its operations. */
        cr_assert_eq(sombra_batch_new(&b), SOMBRA_OK);
        cr_assert_eq(sombra_batch_node_create(b, label, 1, NULL, 0, NULL), SOMBRA_OK);
        cr_assert_eq(sombra_batch_node_create(b, label, 1, NULL, 0, NULL), SOMBRA_OK);
        cr_assert_eq(sombra_batch_submit(c, b), SOMBRA_OK);
        cr_assert_eq(sombra_batch_id(b, SOMBRA_BATCH_REF(0), &id), SOMBRA_OK);
        cr_assert_eq(id, 5);
        cr_assert_eq(sombra_batch_id(b, SOMBRA_BATCH_REF(1), &id), SOMBRA_OK);
        cr_assert_eq(id, 6);
        cr_assert_eq(sombra_batch_free(b), SOMBRA_OK);
        /* The counters are in the file: deleting the newest and reopening gives nothing back. */
        cr_assert_eq(sombra_node_delete(c, 6), SOMBRA_OK);
        cr_assert_eq(sombra_edge_delete(c, 3), SOMBRA_OK);
        cr_assert_eq(sombra_conn_release(c), SOMBRA_OK);
        reopen();
        c = acquire();
        cr_assert_eq(make_node(c, "N"), 7);
        cr_assert_eq(make_edge(c, 1, 7, "E"), 4);
        cr_assert_eq(sombra_conn_release(c), SOMBRA_OK);
}

/*
 * The graph of the traversal tests, nodes 1..7, edges of type A unless
 * marked B:
 *   1->2  1->3  2->3  2->1  2->4  3->4  4->5  6->1   1->7 (B)  7->6 (B)
 */
static sombra_conn *
traversal_graph(void)
{
        static const struct {
                uint64_t src, dst;
                const char *type;
        } edges[] = {{1, 2, "A"}, {1, 3, "A"}, {2, 3, "A"}, {2, 1, "A"}, {2, 4, "A"},
                     {3, 4, "A"}, {4, 5, "A"}, {6, 1, "A"}, {1, 7, "B"}, {7, 6, "B"}};
        sombra_conn *c;

        open_with(NULL);
        c = acquire();
        for (uint64_t want = 1; want <= 7; want++)
                cr_assert_eq(make_node(c, "N"), want);
        for (size_t i = 0; i < sizeof(edges) / sizeof(edges[0]); i++)
                make_edge(c, edges[i].src, edges[i].dst, edges[i].type);
        return c;
}

static int
id_order(const void *a, const void *b)
{
        uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

        return (x > y) - (x < y);
}

/* ids[from, from + n), as a set, is want[0..n). */
static void
expect_level(const uint64_t *ids, size_t from, const uint64_t *want, size_t n)
{
        uint64_t level[8];

        cr_assert_leq(n, 8);
        memcpy(level, ids + from, n * sizeof(*level));
        qsort(level, n, sizeof(*level), id_order);
        for (size_t i = 0; i < n; i++)
                cr_assert_eq(level[i], want[i], "level from %zu: %llu, not %llu", from,
                             (unsigned long long)level[i], (unsigned long long)want[i]);
}

Test(engine, bfs_lists_the_start_then_each_level_each_node_once)
{
        static const uint64_t one[] = {2, 3, 7}, two[] = {4, 6};
        const char *b_only[] = {"B"};
        const uint64_t *ids;
        sombra_conn *c = traversal_graph();
        size_t n = 99;

        cr_assert_eq(sombra_bfs(c, 1, SOMBRA_OUT, NULL, 0, 0, &ids, &n), SOMBRA_OK);
        cr_assert_eq(n, 1, "depth 0 is the start alone");
        cr_assert_eq(ids[0], 1);
        cr_assert_eq(sombra_bfs(c, 1, SOMBRA_OUT, NULL, 0, 1, &ids, &n), SOMBRA_OK);
        cr_assert_eq(n, 4);
        expect_level(ids, 1, one, 3);
        /* 3 is two hops away too (1->2->3) and 1 is (1->2->1): each node once, at its distance. */
        cr_assert_eq(sombra_bfs(c, 1, SOMBRA_OUT, NULL, 0, 2, &ids, &n), SOMBRA_OK);
        cr_assert_eq(n, 6);
        cr_assert_eq(ids[0], 1);
        expect_level(ids, 1, one, 3);
        expect_level(ids, 4, two, 2);
        cr_assert_eq(sombra_bfs(c, 1, SOMBRA_OUT, NULL, 0, UINT32_MAX, &ids, &n), SOMBRA_OK);
        cr_assert_eq(n, 7);
        cr_assert_eq(ids[6], 5);
        cr_assert_eq(sombra_bfs(c, 1, SOMBRA_OUT, b_only, 1, 9, &ids, &n), SOMBRA_OK);
        cr_assert(n == 3 && ids[0] == 1 && ids[1] == 7 && ids[2] == 6);
        cr_assert_eq(sombra_bfs(c, 5, SOMBRA_OUT, NULL, 0, 9, &ids, &n), SOMBRA_OK);
        cr_assert(n == 1 && ids[0] == 5, "a node without edges reaches itself");
        n = 99;
        cr_assert_eq(sombra_bfs(c, 99, SOMBRA_OUT, NULL, 0, 9, &ids, &n), SOMBRA_ENOTFOUND);
        cr_assert_eq(n, 99, "an error leaves *n alone");
        cr_assert_eq(sombra_conn_release(c), SOMBRA_OK);
}

/* ids[0..n) is a walk from `from` to `to` along edges in direction dir. */
static void
expect_walk(sombra_conn *c, const uint64_t *ids, size_t n, enum sombra_dir dir)
{
        uint64_t path[8];
        const struct sombra_entity *e;
        bool linked;

        cr_assert_leq(n, 8);
        memcpy(path, ids, n * sizeof(*path)); /* reads below overwrite the connection's ids */
        for (size_t i = 0; i + 1 < n; i++) {
                linked = false;
                for (uint64_t edge = 1; edge <= 10; edge++) {
                        cr_assert_eq(sombra_edge_get(c, edge, &e), SOMBRA_OK);
                        linked |= dir == SOMBRA_OUT ? e->src == path[i] && e->dst == path[i + 1]
                                                    : e->dst == path[i] && e->src == path[i + 1];
                }
                cr_assert(linked, "no edge between steps %zu and %zu", i, i + 1);
        }
}

Test(engine, shortest_path_lists_both_ends_and_fails_with_enotfound)
{
        const uint64_t *ids;
        sombra_conn *c = traversal_graph();
        size_t n;

        cr_assert_eq(sombra_shortest_path(c, 1, 5, SOMBRA_OUT, NULL, 0, &ids, &n), SOMBRA_OK);
        cr_assert_eq(n, 4, "three edges, four nodes, both ends included");
        cr_assert(ids[0] == 1 && ids[2] == 4 && ids[3] == 5);
        expect_walk(c, ids, n, SOMBRA_OUT);
        cr_assert_eq(sombra_shortest_path(c, 5, 1, SOMBRA_IN, NULL, 0, &ids, &n), SOMBRA_OK);
        cr_assert(n == 4 && ids[0] == 5 && ids[1] == 4 && ids[3] == 1);
        expect_walk(c, ids, n, SOMBRA_IN);
        cr_assert_eq(sombra_shortest_path(c, 3, 3, SOMBRA_OUT, NULL, 0, &ids, &n), SOMBRA_OK);
        cr_assert(n == 1 && ids[0] == 3, "from == to: the node alone");
        n = 99;
        cr_assert_eq(sombra_shortest_path(c, 5, 1, SOMBRA_OUT, NULL, 0, &ids, &n), SOMBRA_ENOTFOUND,
                     "no path");
        cr_assert_eq(sombra_shortest_path(c, 1, 99, SOMBRA_OUT, NULL, 0, &ids, &n),
                     SOMBRA_ENOTFOUND, "an unknown end: the same status");
        cr_assert_eq(n, 99);
        cr_assert_eq(sombra_conn_release(c), SOMBRA_OK);
}

Test(engine, two_hop_count_counts_distinct_ends_of_two_edge_walks_but_the_start)
{
        const char *a_only[] = {"A"}, *b_only[] = {"B"};
        sombra_conn *c = traversal_graph();
        uint64_t count;

        /* Walks 1->2->4, 1->2->3, 1->2->1, 1->3->4, 1->7->6: ends {4, 3, 6}, 1 left out. 3 is
         * also one hop away and still counts; 4, reached twice, counts once. */
        cr_assert_eq(sombra_two_hop_count(c, 1, SOMBRA_OUT, NULL, 0, &count), SOMBRA_OK);
        cr_assert_eq(count, 3);
        cr_assert_eq(sombra_two_hop_count(c, 1, SOMBRA_OUT, a_only, 1, &count), SOMBRA_OK);
        cr_assert_eq(count, 2);
        cr_assert_eq(sombra_two_hop_count(c, 1, SOMBRA_OUT, b_only, 1, &count), SOMBRA_OK);
        cr_assert_eq(count, 1);
        /* Against the edges: 4<-2<-1, 4<-3<-1, 4<-3<-2: ends {1, 2}. */
        cr_assert_eq(sombra_two_hop_count(c, 4, SOMBRA_IN, NULL, 0, &count), SOMBRA_OK);
        cr_assert_eq(count, 2);
        cr_assert_eq(sombra_two_hop_count(c, 5, SOMBRA_OUT, NULL, 0, &count), SOMBRA_OK);
        cr_assert_eq(count, 0);
        cr_assert_eq(sombra_two_hop_count(c, 99, SOMBRA_OUT, NULL, 0, &count), SOMBRA_ENOTFOUND);
        cr_assert_eq(sombra_conn_release(c), SOMBRA_OK);
}

/*
 * With a small checkpoint_threshold the writer begins checkpoints that the
 * checkpointer makes durable, and the log is left as it is: the WAL file
 * keeps growing (it restarts only at four times the threshold), while a
 * crash replays only what came after the last checkpoint.
 */
Test(engine, background_checkpoints_leave_the_log_and_bound_what_a_crash_replays)
{
        struct sombra_config cfg;
        struct sombra_stats st;
        struct store_stats ss;
        struct graph *g;
        uint64_t made = 0, n, m;
        sombra_conn *c;

        sombra_config_production(&cfg);
        cfg.checkpoint_threshold = 16u << 10;
        open_with(&cfg);
        c = acquire();
        do {
                for (int i = 0; i < 20; i++, made++)
                        make_node(c, "Background");
                cr_assert_eq(sombra_stats(db, &st), SOMBRA_OK);
        } while (st.checkpoints < 2 && made < 5000);
        cr_assert_geq(st.checkpoints, 2);
        cr_assert_lt(st.wal_size, cfg.checkpoint_threshold + 4096, "bytes since the last one");
        /* Nothing runs now: the files are what a crash would leave. */
        support_copy_file("e.sombra", "crash.sombra");
        support_copy_file("e.sombra-wal", "crash.sombra-wal");
        cr_assert_gt(support_wal_end("crash.sombra"), 2 * cfg.checkpoint_threshold,
                     "the log was not started anew");
        cr_assert_eq(sombra_conn_release(c), SOMBRA_OK);

        cr_assert_eq(graph_open(support_path("crash.sombra"), NULL, NULL, &g), SOMBRA_OK);
        store_stats(graph_store(g), &ss);
        cr_assert_gt(ss.replayed, 0);
        cr_assert_lt(ss.replayed, made / 2, "only the commits after the last checkpoint");
        cr_assert_eq(graph_counts(graph_writer_reader(g), &n, &m), SOMBRA_OK);
        cr_assert_eq(n, made);
        cr_assert_eq(graph_close(g), SOMBRA_OK);
        expect_verified_file(made, 0);
}

/* Nodes a roomy batch makes: each with a blob, a commit of about 8 KiB. */
#define ROOMY_BATCH 8

/* Commits one batch of ROOMY_BATCH nodes with 1,000-byte blobs. */
static int
roomy_batch(sombra_conn *c, sombra_batch *b, uint64_t *rng)
{
        const char *labels[] = {"Roomy"};
        uint8_t blob[1000];
        int rc = sombra_batch_reset(b);

        for (int i = 0; i < ROOMY_BATCH && rc == SOMBRA_OK; i++) {
                struct sombra_prop p = {"blob", {.type = SOMBRA_BYTES}};
                for (size_t k = 0; k < sizeof(blob); k++)
                        blob[k] = (uint8_t)support_next_rand(rng);
                p.value.u.s.ptr = blob;
                p.value.u.s.len = sizeof(blob);
                rc = sombra_batch_node_create(b, labels, 1, &p, 1, NULL);
        }
        return rc == SOMBRA_OK ? sombra_batch_submit(c, b) : rc;
}

/*
 * Room ahead of the log (wal.h): a new database's log file starts with some,
 * and once the log has used half of it, with syncs of a few KiB each, the
 * checkpointer's thread grows the file further, zeros past the last record.
 * Commits written there survive a crash, and the file is then a complete
 * database.
 */
Test(engine, the_log_file_grows_ahead_of_the_log_and_commits_in_its_room_survive)
{
        struct sombra_config cfg;
        struct sombra_stats st;
        uint64_t made = 0, rng = 7;
        struct graph *g;
        sombra_batch *b;
        sombra_conn *c;
        uint64_t n, m;

        sombra_config_production(&cfg);
        open_with(&cfg);
        cr_assert_geq(support_file_size("e.sombra-wal"), WAL_ROOM_MIN - IO_ZERO_BLOCK,
                      "a new log starts with room");
        c = acquire();
        cr_assert_eq(sombra_batch_new(&b), SOMBRA_OK);
        do {
                cr_assert_eq(roomy_batch(c, b, &rng), SOMBRA_OK);
                made += ROOMY_BATCH;
                cr_assert_eq(sombra_stats(db, &st), SOMBRA_OK);
        } while (st.wal_size < WAL_ROOM_MIN * 3 / 4);
        cr_assert_eq(sombra_batch_free(b), SOMBRA_OK);
        cr_assert_eq(sombra_conn_release(c), SOMBRA_OK);
        /* As a crash would leave them, the growth perhaps under way. */
        support_copy_file("e.sombra", "crash.sombra");
        support_copy_file("e.sombra-wal", "crash.sombra-wal");
        /* The growth was asked for when the log passed half the room: wait for it (10 s at most).
         */
        for (int i = 0; i < 1000 && support_file_size("e.sombra-wal") <= WAL_ROOM_MIN * 5 / 4; i++)
                usleep(10000);
        cr_assert_gt(support_file_size("e.sombra-wal"), WAL_ROOM_MIN * 5 / 4,
                     "the file grew past its first room");
        cr_assert_eq(sombra_close(db), SOMBRA_OK);
        db = NULL;

        cr_assert_eq(graph_open(support_path("crash.sombra"), NULL, NULL, &g), SOMBRA_OK);
        cr_assert_eq(graph_counts(graph_writer_reader(g), &n, &m), SOMBRA_OK);
        cr_assert_eq(n, made);
        cr_assert_eq(graph_close(g), SOMBRA_OK);
        cr_assert_eq(sombra_open(support_path("e.sombra"), &cfg, &db), SOMBRA_OK);
        expect_verified_file(made, 0);
}

/* The child of a kill test: commits roomy batches until killed, reporting each. */
static void
roomy_child(int fd, const void *name)
{
        struct sombra_config cfg;
        sombra_batch *b;
        sombra_conn *c;
        uint64_t rng = 11;

        sombra_config_production(&cfg);
        if (sombra_open(support_path(name), &cfg, &db) != SOMBRA_OK ||
            sombra_conn_acquire(db, &c) != SOMBRA_OK || sombra_batch_new(&b) != SOMBRA_OK)
                _exit(2);
        for (uint64_t n = 1;; n++) {
                if (roomy_batch(c, b, &rng) != SOMBRA_OK)
                        _exit(3);
                if (write(fd, &n, sizeof(n)) != (ssize_t)sizeof(n))
                        _exit(4);
        }
}

/*
 * A kill while the log file grows (wal.h, "Room ahead"): a child commits
 * batches of a few KiB (FULL) and reports each after it returned; the parent
 * kills it once the file has grown 1, 5 and then 9 pieces of 64 KiB past its
 * first room: a different point of the growth each round. Every reported batch is
 * there after the reopen, whole, and the file verifies.
 */
Test(engine, a_kill_while_the_log_file_grows_loses_no_acknowledged_commit)
{
        for (int round = 0; round < 3; round++) {
                char name[32], wal[40];
                uint64_t acked = 0, n, m, got;
                struct graph_verify_report r;
                struct graph *g;
                int fd, status, waited = 0;
                bool grown = false;
                pid_t pid;

                snprintf(name, sizeof(name), "k%d.sombra", round);
                snprintf(wal, sizeof(wal), "%s-wal", name);
                pid = support_fork_piped(roomy_child, name, &fd);
                /*
                 * The pipe holds thousands of reports: the child never waits for it
                 * here. It dies before any assertion, so that none leaves it running.
                 */
                while (!grown && waited++ < 100000) {
                        grown = support_file_exists(wal) &&
                                support_file_size(wal) >=
                                    WAL_ROOM_MIN + (uint64_t)(1 + 4 * round) * (64 << 10);
                        usleep(100);
                }
                kill(pid, SIGKILL);
                while (read(fd, &got, sizeof(got)) == (ssize_t)sizeof(got))
                        acked = got;
                close(fd);
                cr_assert_eq(waitpid(pid, &status, 0), pid);
                cr_assert(WIFSIGNALED(status), "the child died on its own: status %d", status);
                cr_assert(grown, "the log file never grew (round %d)", round);

                cr_assert_eq(graph_open(support_path(name), NULL, NULL, &g), SOMBRA_OK);
                cr_assert_eq(graph_counts(graph_writer_reader(g), &n, &m), SOMBRA_OK);
                cr_assert_geq(n, acked * ROOMY_BATCH, "round %d: %llu nodes, %llu batches acked",
                              round, (unsigned long long)n, (unsigned long long)acked);
                cr_assert_eq(n % ROOMY_BATCH, 0, "a batch is whole or absent");
                cr_assert_eq(graph_verify(g, &r), SOMBRA_OK, "verify: %s", r.problem);
                cr_assert_eq(graph_close(g), SOMBRA_OK);
        }
}

/* Threads of this process now. */
static int
count_threads(void)
{
        struct dirent *e;
        DIR *d = opendir("/proc/self/task");
        int n = 0;

        cr_assert(d != NULL);
        while ((e = readdir(d)) != NULL)
                n += e->d_name[0] != '.';
        closedir(d);
        return n;
}

/* The signals a thread blocks, from /proc (the SigBlk line); false when it is gone. */
static bool
blocked_signals(const char *tid, unsigned long long *mask)
{
        char path[320], line[128];
        bool found = false;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/self/task/%s/status", tid);
        f = fopen(path, "r");
        if (f == NULL)
                return false;
        while (!found && fgets(line, sizeof(line), f) != NULL)
                found = sscanf(line, "SigBlk: %llx", mask) == 1;
        fclose(f);
        return found;
}

/* A thread's name, from /proc (comm); empty when it is gone. */
static void
thread_name(const char *tid, char *name, size_t size)
{
        char path[320];
        FILE *f;

        snprintf(path, sizeof(path), "/proc/self/task/%s/comm", tid);
        name[0] = '\0';
        f = fopen(path, "r");
        if (f == NULL)
                return;
        if (fgets(name, (int)size, f) != NULL)
                name[strcspn(name, "\n")] = '\0';
        fclose(f);
}

/*
 * The engine's threads start at the first write, with the program's signals
 * blocked, whatever the writing thread blocks: a handler must not run on
 * them (and cut a sync short with EINTR). They carry names, for ps, top -H
 * and a debugger.
 */
Test(engine, threads_start_at_the_first_write_named_with_every_signal_blocked)
{
        bool writer = false, committer = false;
        const unsigned long long wanted = 1ull << (SIGINT - 1) | 1ull << (SIGTERM - 1) |
                                          1ull << (SIGUSR1 - 1) | 1ull << (SIGALRM - 1);
        char self[32];
        int others = 0, before = count_threads();
        sombra_conn *c;
        struct dirent *e;
        DIR *d;

        open_with(NULL);
        c = acquire();
        cr_assert_eq(count_threads(), before, "threads started at open");
        make_node(c, "A");
        snprintf(self, sizeof(self), "%ld", (long)syscall(SYS_gettid));
        d = opendir("/proc/self/task");
        cr_assert(d != NULL);
        while ((e = readdir(d)) != NULL) {
                unsigned long long mask;
                if (e->d_name[0] == '.' || strcmp(e->d_name, self) == 0 ||
                    !blocked_signals(e->d_name, &mask))
                        continue;
                char name[32];
                others++;
                cr_assert_eq(mask & wanted, wanted, "thread %s blocks only %llx", e->d_name, mask);
                thread_name(e->d_name, name, sizeof(name));
                writer |= strcmp(name, "sombra-writer") == 0;
                committer |= strcmp(name, "sombra-commit") == 0;
        }
        closedir(d);
        cr_assert_geq(others, 2, "the writer and the committer are not running");
        cr_assert(writer && committer, "the writer or the committer has no name");
        cr_assert_eq(sombra_conn_release(c), SOMBRA_OK);
}
