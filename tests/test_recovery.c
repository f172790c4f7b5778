/*
 * test_recovery.c - recovery after a process dies without closing.
 *
 * A child process commits transactions and reports each one to the parent
 * over a pipe only after graph_commit returned. The parent SIGKILLs the child
 * at a moment of its choosing, reopens the database and checks what the sync
 * mode promises: in FULL every reported transaction is there, and every
 * transaction is all or nothing; in OFF the database opens, verifies, and
 * holds a prefix of the transactions.
 *
 * Each transaction k makes one node labelled T with property txn = k and
 * TXN_EDGES edges from it to the hub node, all in one commit.
 */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <xxhash.h>

#include "graph.h"
#include "store.h"
#include "support.h"

#define TXN_EDGES 3

#define DB_NAME  "r.sombra" /* the database, in the test's directory */
#define WAL_NAME DB_NAME "-wal"

static void
setup(void)
{
        support_dir_make("recovery");
}

TestSuite(recovery, .init = setup, .fini = support_dir_remove, .timeout = 240);

static int
commit_txn(struct graph *g, int64_t k)
{
        struct sombra_prop p = {"txn", {.type = SOMBRA_INT, .u.i = k}};
        const char *label[] = {"T"};
        uint64_t id;
        int rc = graph_begin(g);

        if (rc == SOMBRA_OK)
                rc = graph_node_create(g, label, 1, &p, 1, &id);
        for (int e = 0; e < TXN_EDGES && rc == SOMBRA_OK; e++)
                rc = graph_edge_create(g, id, 1, "TO_HUB", NULL, 0, NULL);
        if (rc == SOMBRA_OK)
                return graph_commit(g);
        graph_rollback(g);
        return rc;
}

struct writer_args {
        enum sombra_sync_mode mode;
        uint32_t threshold;
        int64_t first;
};

/* The child: commits from `first` on until killed, reporting each commit. */
static void
writer_child(int fd, const void *arg)
{
        const struct writer_args *a = arg;
        struct sombra_config cfg;
        struct graph *g;

        sombra_config_production(&cfg);
        cfg.sync_mode = a->mode;
        cfg.checkpoint_threshold = a->threshold;
        if (graph_open(support_path(DB_NAME), &cfg, NULL, &g) != SOMBRA_OK)
                _exit(2);
        for (int64_t k = a->first;; k++) {
                if (commit_txn(g, k) != SOMBRA_OK)
                        _exit(3);
                if (write(fd, &k, sizeof(k)) != (ssize_t)sizeof(k))
                        _exit(4);
        }
}

/*
 * Runs a child from `first` with a checkpoint every `threshold` bytes of log,
 * kills it after `acks` reports; returns the highest one reported.
 */
static int64_t
run_and_kill_at(enum sombra_sync_mode mode, uint32_t threshold, int64_t first, int acks)
{
        struct writer_args args = {mode, threshold, first};
        int fd, status;
        int64_t k, last = first - 1;
        pid_t pid = support_fork_piped(writer_child, &args, &fd);

        for (int i = 0; i < acks && read(fd, &k, sizeof(k)) == (ssize_t)sizeof(k); i++)
                last = k;
        kill(pid, SIGKILL);
        while (read(fd, &k, sizeof(k)) == (ssize_t)sizeof(k))
                last = k; /* acknowledged before it died */
        close(fd);
        cr_assert_eq(waitpid(pid, &status, 0), pid);
        cr_assert(WIFSIGNALED(status), "the writer died on its own (status %d)", status);
        return last;
}

/* run_and_kill_at with checkpoints during the run too. */
static int64_t
run_and_kill(enum sombra_sync_mode mode, int64_t first, int acks)
{
        return run_and_kill_at(mode, 256u << 10, first, acks);
}

static struct graph *
open_checked(void)
{
        struct graph *g;
        struct graph_verify_report r;

        cr_assert_eq(graph_open(support_path(DB_NAME), NULL, NULL, &g), SOMBRA_OK);
        cr_assert_eq(graph_verify(g, &r), SOMBRA_OK, "verify: %s", r.problem);
        return g;
}

static void
make_hub(void)
{
        struct graph *g;
        uint64_t hub;

        cr_assert_eq(graph_open(support_path(DB_NAME), NULL, NULL, &g), SOMBRA_OK);
        cr_assert_eq(graph_node_create(g, NULL, 0, NULL, 0, &hub), SOMBRA_OK);
        cr_assert_eq(hub, 1);
        cr_assert_eq(graph_index_create(g, "T", "txn"), SOMBRA_OK);
        cr_assert_eq(graph_close(g), SOMBRA_OK);
}

/* How many transactions are present, checking that each is whole; *top gets the highest. */
static int64_t
present_txns(struct graph *g, int64_t upto, int64_t *top, bool *prefix)
{
        struct graph_ids ids = {0};
        int64_t count = 0;
        bool gap = false;

        *top = 0;
        *prefix = true;
        for (int64_t k = 1; k <= upto + 50; k++) {
                struct sombra_value v = {.type = SOMBRA_INT, .u.i = k};
                uint64_t degree;
                cr_assert_eq(graph_nodes_by_prop(graph_writer_reader(g), "T", "txn", &v, &ids),
                             SOMBRA_OK);
                cr_assert_leq(ids.n, 1);
                if (ids.n == 0) {
                        gap = true;
                        continue;
                }
                if (gap)
                        *prefix = false;
                cr_assert_eq(
                    graph_degree(graph_writer_reader(g), ids.v[0], SOMBRA_OUT, NULL, 0, &degree),
                    SOMBRA_OK);
                cr_assert_eq(degree, TXN_EDGES, "transaction %ld is partial", (long)k);
                *top = k;
                count++;
        }
        graph_ids_free(&ids);
        return count;
}

Test(recovery, full_mode_keeps_every_acknowledged_commit_across_kills)
{
        int64_t next = 1;
        unsigned seed = (unsigned)time(NULL);

        make_hub();
        for (int round = 0; round < 6; round++) {
                int64_t acked = run_and_kill(SOMBRA_SYNC_FULL, next, 5 + rand_r(&seed) % 200);
                struct graph *g = open_checked();
                int64_t top;
                bool prefix;
                int64_t n = present_txns(g, acked, &top, &prefix);
                cr_assert_geq(top, acked, "round %d: acknowledged %ld, found up to %ld", round,
                              (long)acked, (long)top);
                cr_assert(prefix, "round %d: a transaction is missing before the last", round);
                cr_assert_eq(n, top);
                cr_assert_eq(graph_close(g), SOMBRA_OK);
                next = top + 1;
        }
}

Test(recovery, off_mode_recovers_a_consistent_prefix)
{
        int64_t next = 1;

        make_hub();
        for (int round = 0; round < 3; round++) {
                int64_t acked = run_and_kill(SOMBRA_SYNC_OFF, next, 50 + round * 100);
                struct graph *g = open_checked();
                int64_t top;
                bool prefix;
                present_txns(g, acked, &top, &prefix);
                cr_assert(prefix, "round %d: recovered history is not a prefix", round);
                cr_assert_eq(graph_close(g), SOMBRA_OK);
                next = top + 1;
        }
}

static void
commit_without_close(int n)
{
        pid_t pid = fork();
        int status;

        cr_assert_geq(pid, 0);
        if (pid == 0) {
                struct graph *g;
                if (graph_open(support_path(DB_NAME), NULL, NULL, &g) != SOMBRA_OK)
                        _exit(2);
                for (int k = 1; k <= n; k++)
                        if (commit_txn(g, k) != SOMBRA_OK)
                                _exit(3);
                _exit(0); /* no close, no checkpoint: only the WAL has them */
        }
        cr_assert_eq(waitpid(pid, &status, 0), pid);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

Test(recovery, torn_last_wal_record_is_ignored)
{
        struct graph *g;
        int64_t top;
        bool prefix;

        make_hub();
        commit_without_close(20);
        /* Cut the last record short by a few bytes, as a crash mid-write would. */
        support_truncate(WAL_NAME, support_wal_end(DB_NAME) - 5);
        g = open_checked();
        cr_assert_eq(present_txns(g, 20, &top, &prefix), 19);
        cr_assert(prefix);
        cr_assert_eq(top, 19);
        cr_assert_eq(graph_close(g), SOMBRA_OK);
}

Test(recovery, garbage_after_the_last_record_is_ignored)
{
        uint8_t garbage[1000];
        struct graph *g;
        int64_t top;
        bool prefix;

        make_hub();
        commit_without_close(10);
        for (size_t i = 0; i < sizeof(garbage); i++)
                garbage[i] = (uint8_t)(i * 37);
        support_write_at(WAL_NAME, support_wal_end(DB_NAME), garbage, sizeof(garbage));
        g = open_checked();
        cr_assert_eq(present_txns(g, 10, &top, &prefix), 10);
        cr_assert_eq(graph_close(g), SOMBRA_OK);
        /* Reopening after recovery checkpointed finds the same, with nothing to replay. */
        g = open_checked();
        cr_assert_eq(present_txns(g, 10, &top, &prefix), 10);
        cr_assert_eq(graph_close(g), SOMBRA_OK);
}

/* What the last open of g's database did to recover. */
static struct store_stats
recovery_stats(struct graph *g)
{
        struct store_stats st;

        store_stats(graph_store(g), &st);
        return st;
}

/*
 * A process that dies leaves what it wrote in the page cache: each state it
 * published is in the file, and noted in the log. Recovery takes the last
 * noted one over and replays only the commits after it. verify (in
 * open_checked) then finds every page of the file used once or free, which
 * is what the page bookkeeping of the take-over has to get right.
 */
Test(recovery, a_killed_writers_last_noted_state_is_taken_over_from_the_file)
{
        int64_t next = 1;

        make_hub();
        for (int round = 0; round < 3; round++) {
                int64_t acked = run_and_kill(SOMBRA_SYNC_FULL, next, 100 + 150 * round);
                struct graph *g = open_checked();
                struct store_stats st = recovery_stats(g);
                int64_t top;
                bool prefix;
                int64_t n = present_txns(g, acked, &top, &prefix);
                cr_assert_gt(st.adopted, 0, "round %d: the whole log was replayed", round);
                cr_assert_lt(st.replayed, (uint64_t)(acked - next + 1),
                             "round %d: %" PRIu64 " commits replayed", round, st.replayed);
                cr_assert_geq(top, acked, "round %d: acknowledged %ld, found up to %ld", round,
                              (long)acked, (long)top);
                cr_assert(prefix && n == top, "round %d: a transaction is missing", round);
                cr_assert_eq(graph_close(g), SOMBRA_OK);
                next = top + 1;
        }
}

#define BLOB_BYTES 20000 /* a value on a chain of overflow pages */

/* The child: a node with a BLOB_BYTES value filled with its number, each commit, until killed. */
static void
blob_child(int fd, const void *arg)
{
        static uint8_t blob[BLOB_BYTES];
        struct sombra_prop p = {"blob", {.type = SOMBRA_BYTES, .u.s = {blob, sizeof(blob)}}};
        struct sombra_config cfg;
        struct graph *g;

        (void)arg;
        sombra_config_production(&cfg);
        if (graph_open(support_path(DB_NAME), &cfg, NULL, &g) != SOMBRA_OK)
                _exit(2);
        for (uint64_t k = 0;; k++) {
                uint64_t sent[2] = {k}; /* the fill byte's source, and the node's id */
                memset(blob, (int)(k & 0xff), sizeof(blob));
                if (graph_begin(g) != SOMBRA_OK ||
                    graph_node_create(g, NULL, 0, &p, 1, &sent[1]) != SOMBRA_OK ||
                    graph_commit(g) != SOMBRA_OK)
                        _exit(3);
                if (write(fd, sent, sizeof(sent)) != (ssize_t)sizeof(sent))
                        _exit(4);
        }
}

/*
 * The walk that takes a noted state over reaches the overflow pages of its
 * values too: after a kill, the file's pages still add up (verify), and the
 * last acknowledged value reads back whole.
 */
Test(recovery, a_noted_state_with_overflow_values_is_taken_over_with_its_chains)
{
        uint64_t got[2], last[2] = {0, 0};
        struct graph_entity e = {0};
        struct graph *g;
        int fd, status;
        pid_t pid = support_fork_piped(blob_child, NULL, &fd);

        for (int i = 0; i < 60 && read(fd, got, sizeof(got)) == (ssize_t)sizeof(got); i++)
                memcpy(last, got, sizeof(got));
        kill(pid, SIGKILL);
        while (read(fd, got, sizeof(got)) == (ssize_t)sizeof(got))
                memcpy(last, got, sizeof(got));
        close(fd);
        cr_assert_eq(waitpid(pid, &status, 0), pid);
        cr_assert_gt(last[1], 0, "the child acknowledged nothing");

        g = open_checked();
        cr_assert_gt(recovery_stats(g).adopted, 0, "the whole log was replayed");
        cr_assert_eq(graph_node_get(graph_writer_reader(g), last[1], &e), SOMBRA_OK);
        cr_assert_eq(e.nprops, 1);
        cr_assert_eq(e.props[0].value.u.s.len, BLOB_BYTES);
        for (size_t i = 0; i < BLOB_BYTES; i++)
                cr_assert_eq(((const uint8_t *)e.props[0].value.u.s.ptr)[i], last[0] & 0xff,
                             "byte %zu", i);
        graph_entity_free(&e);
        cr_assert_eq(graph_close(g), SOMBRA_OK);
}

/* Asserts that opening g replayed the whole log and found every acknowledged commit; closes g. */
static void
expect_replayed_all(struct graph *g, int64_t acked)
{
        struct store_stats st = recovery_stats(g);
        int64_t top;
        bool prefix;

        cr_assert_eq(st.adopted, 0);
        cr_assert_geq(st.replayed, (uint64_t)acked);
        cr_assert_eq(present_txns(g, acked, &top, &prefix), top);
        cr_assert(prefix && top >= acked);
        cr_assert_eq(graph_close(g), SOMBRA_OK);
}

/* The LSN of the newest checkpoint on file (store.c has the meta page's layout). */
static uint64_t
checkpoint_lsn(uint32_t *page_size)
{
        uint8_t m[2][32];
        int newest;

        support_read_at(DB_NAME, 0, m[0], sizeof(m[0]));
        support_read_at(DB_NAME, 8192, m[1], sizeof(m[1]));
        cr_assert(memcmp(m[1], "SOMBRADB", 8) == 0, "the meta pages are not where assumed");
        newest = get_be64(m[1] + 16) > get_be64(m[0] + 16);
        *page_size = get_be32(m[newest] + 12);
        return get_be64(m[newest] + 24);
}

/* Zeroes every page written after checkpoint LSN ckpt, as if the page cache had lost them. */
static void
lose_pages_after(uint64_t ckpt)
{
        uint32_t ps;
        uint64_t pages;
        uint8_t *zero;

        cr_assert_eq(checkpoint_lsn(&ps), ckpt, "a checkpoint ran: the test needs none");
        pages = support_file_size(DB_NAME) / ps;
        zero = calloc(1, ps);
        cr_assert_not_null(zero);
        for (uint64_t pgno = 2; pgno < pages; pgno++) {
                uint8_t txn[8];
                support_read_at(DB_NAME, pgno * ps + 24, txn, sizeof(txn));
                if (get_be64(txn) > ckpt)
                        support_write_at(DB_NAME, pgno * ps, zero, ps);
        }
        free(zero);
}

/*
 * A log longer than the hint's stride (store.c, "WAL hint"): recovery reads
 * it from the hinted note on, not from the checkpoint, and takes over the
 * same state as a reading of the whole log would.
 */
#define LONG_LOG_ACKS 4000 /* commits of a few hundred bytes: over 1 MiB of log */

Test(recovery, a_long_log_is_read_from_the_hint_on)
{
        struct graph *g;
        struct store_stats st;
        int64_t acked, top;
        bool prefix;

        make_hub();
        acked = run_and_kill_at(SOMBRA_SYNC_NORMAL, 64u << 20, 1, LONG_LOG_ACKS);
        g = open_checked();
        st = recovery_stats(g);
        cr_assert_gt(st.adopted, 0, "the whole log was replayed");
        cr_assert_geq(st.wal_size, 1u << 20, "the log is too short to test the hint");
        cr_assert_lt(st.scanned, st.wal_size / 2, "%" PRIu64 " of %" PRIu64 " bytes read",
                     st.scanned, st.wal_size);
        cr_assert_eq(present_txns(g, acked, &top, &prefix), top);
        cr_assert(prefix && top >= acked);
        cr_assert_eq(graph_close(g), SOMBRA_OK);
}

/* A hint that names no record (its offset moved, its checksum made again) is passed over. */
Test(recovery, a_hint_that_names_no_record_is_passed_over)
{
        struct graph *g;
        struct store_stats st;
        uint8_t h[48];
        int64_t acked, top;
        bool prefix;

        make_hub();
        acked = run_and_kill_at(SOMBRA_SYNC_NORMAL, 64u << 20, 1, LONG_LOG_ACKS);
        support_read_at(DB_NAME, 4096, h, sizeof(h));
        cr_assert(memcmp(h, "SOMBRHNT", 8) == 0, "no hint where store.c puts it");
        put_be64(h + 16, get_be64(h + 16) + 8);
        put_be64(h + 40, XXH3_64bits(h, 40));
        support_write_at(DB_NAME, 4096, h, sizeof(h));
        g = open_checked();
        st = recovery_stats(g);
        cr_assert_gt(st.adopted, 0, "the note was not found from the checkpoint");
        cr_assert_geq(st.scanned, st.wal_size - 4096, "%" PRIu64 " of %" PRIu64 " bytes read",
                      st.scanned, st.wal_size);
        cr_assert_eq(present_txns(g, acked, &top, &prefix), top);
        cr_assert(prefix && top >= acked);
        cr_assert_eq(graph_close(g), SOMBRA_OK);
}

/*
 * The same kill, but the pages written after the checkpoint are then gone
 * from the file, as if the page cache had not kept them (what the note's
 * boot id and file identity rule out in life): recovery must find that the
 * noted state is not there and replay the log instead.
 */
Test(recovery, a_noted_state_missing_from_the_file_is_replayed_instead)
{
        uint32_t ps;
        uint64_t ckpt;
        int64_t acked;

        make_hub();
        ckpt = checkpoint_lsn(&ps);
        acked = run_and_kill(SOMBRA_SYNC_FULL, 1, 40); /* no checkpoint: the WAL stays small */
        lose_pages_after(ckpt);
        expect_replayed_all(open_checked(), acked);
}

/*
 * A note that recovery refused stays in the log, and the replay that
 * follows writes pages no newer than its state, possibly where that state
 * had its own: a second crash before anything new is logged must not find
 * the note usable then (the restart that recovery writes first voids it).
 */
Test(recovery, a_refused_note_is_not_trusted_after_the_replay_that_followed_it)
{
        uint32_t ps;
        uint64_t ckpt;
        int64_t acked;

        make_hub();
        ckpt = checkpoint_lsn(&ps);
        acked = run_and_kill(SOMBRA_SYNC_FULL, 1, 40);
        lose_pages_after(ckpt);
        commit_without_close(0); /* recovers, replaying, and dies before logging anything */
        cr_assert_gt(support_notes_voided(DB_NAME), 0, "the refused note is not voided");
        expect_replayed_all(open_checked(), acked);
}

static uint64_t
inode_of(const char *name)
{
        struct stat st;

        cr_assert_eq(stat(support_path(name), &st), 0);
        return (uint64_t)st.st_ino;
}

/*
 * A copy put back where the files were can get the inode number of the file
 * just deleted (ext4 hands it out again at once; the test is skipped
 * where it does not). It is still another file, whatever it holds: a power loss
 * modelled in the same boot (test_powerloss) made such copies of images
 * whose pages were not those of the note, and recovery took them over.
 */
Test(recovery, a_copy_put_back_under_the_old_inode_number_is_replayed_not_taken_over)
{
        bool back = false;
        uint64_t ino;
        int64_t acked;

        make_hub();
        acked = run_and_kill(SOMBRA_SYNC_FULL, 1, 40);
        ino = inode_of(DB_NAME);
        support_copy_file(DB_NAME, "copy.sombra");
        support_copy_file(WAL_NAME, "copy.sombra-wal");
        support_remove(DB_NAME);
        support_remove(WAL_NAME);
        /*
         * Files that take other numbers first are kept, so that they stay
         * taken; another test running beside this one may take it for good.
         */
        for (int k = 0; k < 8; k++) {
                char db[256], spare[272];
                support_copy_file("copy.sombra", DB_NAME);
                back = inode_of(DB_NAME) == ino;
                if (back)
                        break;
                snprintf(db, sizeof(db), "%s", support_path(DB_NAME));
                snprintf(spare, sizeof(spare), "%s.spare%d", db, k);
                cr_assert_eq(rename(db, spare), 0);
        }
        if (!back)
                cr_skip_test("this file system did not give the inode number back");
        support_copy_file("copy.sombra-wal", WAL_NAME);
        expect_replayed_all(open_checked(), acked);
}

/* sombra_stats tells how an open recovered, and that a clean reopen had nothing to recover. */
Test(recovery, stats_tell_how_an_open_recovered)
{
        struct sombra_stats st;
        sombra_db *db;

        make_hub();
        (void)run_and_kill(SOMBRA_SYNC_FULL, 1, 40);
        cr_assert_eq(sombra_open(support_path(DB_NAME), NULL, &db), SOMBRA_OK);
        cr_assert_eq(sombra_stats(db, &st), SOMBRA_OK);
        cr_assert_gt(st.recovered_lsn, 0, "no state was taken over");
        cr_assert_gt(st.recovery_log_bytes, 0);
        cr_assert_eq(sombra_close(db), SOMBRA_OK);
        cr_assert_eq(sombra_open(support_path(DB_NAME), NULL, &db), SOMBRA_OK);
        cr_assert_eq(sombra_stats(db, &st), SOMBRA_OK);
        cr_assert_eq(st.recovered_lsn, 0);
        cr_assert_eq(st.recovered_commits, 0);
        cr_assert_eq(sombra_close(db), SOMBRA_OK);
}

/* A copy is another file: the page cache of the original says nothing about it. */
Test(recovery, a_copy_of_a_killed_writers_files_is_replayed_not_taken_over)
{
        struct graph *g;
        struct graph_verify_report r;
        int64_t acked;

        make_hub();
        acked = run_and_kill(SOMBRA_SYNC_FULL, 1, 40);
        support_copy_file(DB_NAME, "copy.sombra");
        support_copy_file(WAL_NAME, "copy.sombra-wal");
        cr_assert_eq(graph_open(support_path("copy.sombra"), NULL, NULL, &g), SOMBRA_OK);
        cr_assert_eq(graph_verify(g, &r), SOMBRA_OK, "verify: %s", r.problem);
        expect_replayed_all(g, acked);
}
