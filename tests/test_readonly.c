/*
 * test_readonly.c - read-only opens beside a writer (issue 11, item 4).
 *
 * A read-only open needs no lock and changes no file: it shows the newest
 * checkpoint plus the WAL's commits as of the open, replayed in its own
 * memory. The writer, for its part, must not reuse the pages of a checkpoint
 * a reader still reads: the tests below rewrite everything under an open
 * reader and check that the reader still sees its state whole.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support.h"

static void
setup(void)
{
        support_dir_make("readonly");
}

TestSuite(readonly, .init = setup, .fini = support_dir_remove, .timeout = 300);

static sombra_db *
owner_open(const char *name)
{
        sombra_db *db = NULL;

        cr_assert(eq(int, sombra_open(support_path(name), NULL, &db), SOMBRA_OK), "open %s", name);
        return db;
}

static int
reader_open(const char *name, sombra_db **db)
{
        struct sombra_config cfg;

        cr_assert(eq(int, sombra_config_production(&cfg), SOMBRA_OK));
        cfg.read_only = true;
        *db = NULL;
        return sombra_open(support_path(name), &cfg, db);
}

static sombra_db *
reader_must_open(const char *name)
{
        sombra_db *db;
        int rc = reader_open(name, &db);

        cr_assert(eq(int, rc, SOMBRA_OK), "read-only open of %s: %s", name, sombra_strerror(rc));
        return db;
}

static uint64_t
nodes_of(sombra_db *db)
{
        struct sombra_stats st;

        cr_assert(eq(int, sombra_stats(db, &st), SOMBRA_OK));
        return st.nodes;
}

static void
verify_ok(sombra_db *db)
{
        char problem[256];
        int rc = sombra_verify(db, problem, sizeof(problem));

        cr_assert(eq(int, rc, SOMBRA_OK), "verify: %s (%s)", sombra_strerror(rc), problem);
}

/* The node's "v" property; -1 when it has none. */
static int64_t
value_of(sombra_conn *c, uint64_t id)
{
        const struct sombra_entity *e;
        int rc = sombra_node_get(c, id, &e);

        cr_assert(eq(int, rc, SOMBRA_OK), "node %llu: %s", (unsigned long long)id,
                  sombra_strerror(rc));
        return support_prop_int(e, "v");
}

/* n nodes with "v" = base + i, and a padding string so that they fill pages; their ids. */
static void
nodes_make(sombra_conn *c, uint64_t *ids, int n, int64_t base)
{
        static const char pad[] = "read-only opens must see their checkpoint whole, even "
                                  "when the writer has rewritten every page of it since";
        const char *labels[] = {"N"};

        for (int i = 0; i < n; i++) {
                struct sombra_prop props[2] = {
                    {"v", {.type = SOMBRA_INT, .u.i = base + i}},
                    {"pad", {.type = SOMBRA_STRING, .u.s = {pad, sizeof(pad) - 1}}},
                };
                cr_assert(eq(int, sombra_node_create(c, labels, 1, props, 2, &ids[i]), SOMBRA_OK));
        }
}

/* Byte-for-byte copies of a database and its WAL, to check that nothing changed them. */
struct files {
        uint8_t *db, *wal;
        size_t db_len, wal_len;
};

static void
files_take(const char *name, struct files *f)
{
        char wal[64];

        snprintf(wal, sizeof(wal), "%s-wal", name);
        f->db = support_read_file(name, &f->db_len);
        f->wal = support_file_exists(wal) ? support_read_file(wal, &f->wal_len) : NULL;
}

static void
files_unchanged(const char *name, struct files *before)
{
        struct files now;

        files_take(name, &now);
        cr_assert(eq(sz, now.db_len, before->db_len), "%s changed length", name);
        cr_assert(eq(int, memcmp(now.db, before->db, now.db_len), 0), "%s was written", name);
        cr_assert(eq(int, now.wal == NULL, before->wal == NULL), "the -wal came or went");
        if (now.wal != NULL) {
                cr_assert(eq(sz, now.wal_len, before->wal_len), "the -wal changed length");
                cr_assert(eq(int, memcmp(now.wal, before->wal, now.wal_len), 0),
                          "the -wal was written");
        }
        free(now.db);
        free(now.wal);
        free(before->db);
        free(before->wal);
}

Test(readonly, sees_the_checkpoint_and_the_wal_beside_a_live_writer_and_writes_nothing)
{
        sombra_db *owner = owner_open("db"), *ro;
        sombra_conn *c = support_conn_acquire(owner), *rc;
        uint64_t ids[15];
        struct files before;

        nodes_make(c, ids, 10, 0);
        cr_assert(eq(int, sombra_checkpoint(owner), SOMBRA_OK));
        nodes_make(c, ids + 10, 5, 10); /* in the WAL only */
        files_take("db", &before);
        ro = reader_must_open("db");
        rc = support_conn_acquire(ro);
        cr_assert(eq(u64, nodes_of(ro), 15));
        for (int i = 0; i < 15; i++)
                cr_assert(eq(i64, value_of(rc, ids[i]), i));
        verify_ok(ro);
        cr_assert(eq(int, sombra_conn_release(rc), SOMBRA_OK));
        support_db_close(&ro);
        files_unchanged("db", &before);
        cr_assert(eq(int, sombra_conn_release(c), SOMBRA_OK));
        support_db_close(&owner);
}

Test(readonly, refuses_every_write_with_ereadonly)
{
        sombra_db *owner = owner_open("db"), *ro;
        sombra_conn *c = support_conn_acquire(owner), *rc;
        const char *labels[] = {"N"};
        struct sombra_value one = {.type = SOMBRA_INT, .u.i = 1};
        sombra_batch *b;
        uint64_t id, ids[1];

        nodes_make(c, ids, 1, 7);
        ro = reader_must_open("db");
        rc = support_conn_acquire(ro);
        cr_assert(eq(int, sombra_node_create(rc, labels, 1, NULL, 0, &id), SOMBRA_EREADONLY));
        cr_assert(eq(int, sombra_node_set(rc, ids[0], "v", &one), SOMBRA_EREADONLY));
        cr_assert(eq(int, sombra_node_delete(rc, ids[0]), SOMBRA_EREADONLY));
        cr_assert(eq(int, sombra_index_create(rc, "N", "v"), SOMBRA_EREADONLY));
        cr_assert(eq(int, sombra_txn_begin(rc), SOMBRA_EREADONLY));
        cr_assert(eq(int, sombra_batch_new(&b), SOMBRA_OK));
        cr_assert(eq(int, support_pair_commit(rc, b, NULL, 0), SOMBRA_EREADONLY));
        cr_assert(eq(int, sombra_batch_free(b), SOMBRA_OK));
        cr_assert(eq(int, sombra_checkpoint(ro), SOMBRA_EREADONLY));
        cr_assert(eq(i64, value_of(rc, ids[0]), 7), "the refusals changed nothing");
        cr_assert(eq(int, sombra_conn_release(rc), SOMBRA_OK));
        support_db_close(&ro);
        /* The writer is unaffected by it all. */
        cr_assert(eq(int, sombra_node_set(c, ids[0], "v", &one), SOMBRA_OK));
        cr_assert(eq(int, sombra_conn_release(c), SOMBRA_OK));
        support_db_close(&owner);
}

Test(readonly, creates_nothing_for_a_missing_or_empty_file)
{
        sombra_db *db;

        cr_assert(eq(int, reader_open("none", &db), SOMBRA_ENOTFOUND));
        cr_assert(not(support_file_exists("none")));
        cr_assert(not(support_file_exists("none-wal")));
        support_write_file("empty", "", 0);
        cr_assert(eq(int, reader_open("empty", &db), SOMBRA_ENOTDB));
        cr_assert(eq(u64, support_file_size("empty"), 0));
        cr_assert(not(support_file_exists("empty-wal")));
        cr_assert(eq(ptr, db, NULL));
}

/*
 * What a crash leaves (a WAL holding commits the file does not) is replayed
 * in memory: the read-only open shows the commits, and the files stay as the
 * crash left them, for the owner's own recovery.
 */
Test(readonly, replays_a_crash_s_wal_in_memory_and_leaves_it_to_the_owner)
{
        sombra_db *owner = owner_open("db"), *ro;
        sombra_conn *c = support_conn_acquire(owner);
        uint64_t ids[8];
        struct files before;

        nodes_make(c, ids, 8, 100);
        support_copy_file("db", "crashed");
        support_copy_file("db-wal", "crashed-wal");
        cr_assert(eq(int, sombra_conn_release(c), SOMBRA_OK));
        support_db_close(&owner);

        files_take("crashed", &before);
        for (int round = 0; round < 2; round++) { /* twice: the first changed nothing */
                ro = reader_must_open("crashed");
                cr_assert(eq(u64, nodes_of(ro), 8));
                verify_ok(ro);
                support_db_close(&ro);
        }
        files_unchanged("crashed", &before);
        owner = owner_open("crashed");
        cr_assert(eq(u64, nodes_of(owner), 8), "the owner's recovery still finds them");
        support_db_close(&owner);
}

/*
 * The writer rewrites every node and checkpoints several times while a
 * reader holds the state from before: without the reader lock, the pages of
 * that state would be reused and the reader would read the new nodes, or
 * pages that fail their checks.
 */
Test(readonly, the_writer_does_not_reuse_the_pages_a_reader_reads)
{
        enum { N = 400 };
        sombra_db *owner = owner_open("db"), *ro;
        sombra_conn *c = support_conn_acquire(owner), *rc;
        static uint64_t ids[N];
        struct sombra_stats st;

        nodes_make(c, ids, N, 0);
        cr_assert(eq(int, sombra_checkpoint(owner), SOMBRA_OK));
        ro = reader_must_open("db");
        rc = support_conn_acquire(ro);
        for (int round = 1; round <= 4; round++) {
                for (int i = 0; i < N; i++) {
                        struct sombra_value v = {.type = SOMBRA_INT, .u.i = round * 1000 + i};
                        cr_assert(eq(int, sombra_node_set(c, ids[i], "v", &v), SOMBRA_OK));
                }
                cr_assert(eq(int, sombra_checkpoint(owner), SOMBRA_OK));
        }
        for (int i = 0; i < N; i++)
                cr_assert(eq(i64, value_of(rc, ids[i]), i), "node %d of the reader's state", i);
        verify_ok(ro);
        cr_assert(eq(int, sombra_conn_release(rc), SOMBRA_OK));
        support_db_close(&ro);

        /* With the reader gone, the next checkpoints release what it held. */
        for (int round = 5; round <= 6; round++) {
                for (int i = 0; i < N; i++) {
                        struct sombra_value v = {.type = SOMBRA_INT, .u.i = round * 1000 + i};
                        cr_assert(eq(int, sombra_node_set(c, ids[i], "v", &v), SOMBRA_OK));
                }
                cr_assert(eq(int, sombra_checkpoint(owner), SOMBRA_OK));
        }
        cr_assert(eq(int, sombra_stats(owner, &st), SOMBRA_OK));
        cr_assert(gt(u64, st.free_pages, 0), "the held pages are reusable again");
        cr_assert(eq(i64, value_of(c, ids[N - 1]), 6000 + N - 1));
        verify_ok(owner);
        cr_assert(eq(int, sombra_conn_release(c), SOMBRA_OK));
        support_db_close(&owner);
}

/* The nodes of database name, which must pass verify; their "v" must be 0..n-1. */
static void
copy_holds(const char *name, const uint64_t *ids, int n)
{
        sombra_db *copy = owner_open(name);
        sombra_conn *cc;

        cr_assert(eq(u64, nodes_of(copy), (uint64_t)n), "%s", name);
        verify_ok(copy);
        cc = support_conn_acquire(copy);
        for (int i = 0; i < n; i++)
                cr_assert(eq(i64, value_of(cc, ids[i]), i));
        cr_assert(eq(int, sombra_conn_release(cc), SOMBRA_OK));
        support_db_close(&copy);
}

/*
 * A backup taken through a read-only open holds the reader's state: the
 * commits of its WAL replay, and none of what the writer did after the open,
 * not even a checkpoint whose meta page went to the slot the copy leaves.
 */
static void
backup_through_a_reader(int (*backup)(sombra_db *db, const char *dest_path))
{
        sombra_db *owner = owner_open("db"), *ro;
        sombra_conn *c = support_conn_acquire(owner);
        uint64_t ids[12];

        /* Nothing to replay (a new database): the copy is the pinned checkpoint as on file. */
        ro = reader_must_open("db");
        nodes_make(c, ids, 6, 0);
        cr_assert(eq(int, sombra_checkpoint(owner), SOMBRA_OK));
        cr_assert(eq(int, backup(ro, support_path("first")), SOMBRA_OK));
        support_db_close(&ro);
        copy_holds("first", ids, 0);

        /* Three commits to replay. */
        nodes_make(c, ids + 6, 3, 6); /* in the WAL */
        ro = reader_must_open("db");
        nodes_make(c, ids + 9, 3, 9); /* after the reader's open */
        cr_assert(eq(int, sombra_checkpoint(owner), SOMBRA_OK));
        cr_assert(eq(int, sombra_checkpoint(owner), SOMBRA_OK));
        cr_assert(eq(int, backup(ro, support_path("copy")), SOMBRA_OK));
        support_db_close(&ro);
        cr_assert(not(support_file_exists("copy-wal")));
        copy_holds("copy", ids, 9);
        cr_assert(eq(int, sombra_conn_release(c), SOMBRA_OK));
        support_db_close(&owner);
}

Test(readonly, a_backup_through_a_reader_is_its_state)
{
        backup_through_a_reader(sombra_backup);
}

Test(readonly, a_compact_backup_through_a_reader_is_its_state)
{
        backup_through_a_reader(sombra_backup_compact);
}

/*
 * The format number of both meta slots of database `name`, pages of 8 KiB;
 * with `or_blank`, a slot may be blank (a copy through a read-only open
 * leaves the slot the owner writes next blank).
 */
static void
expect_meta_versions(const char *name, uint32_t version, bool or_blank)
{
        for (uint64_t slot = 0; slot < 2; slot++) {
                uint8_t b[4];
                uint32_t v;

                support_read_at(name, slot * 8192 + 8, b, sizeof(b));
                v = (uint32_t)b[0] << 24 | b[1] << 16 | b[2] << 8 | b[3];
                if (!(or_blank && v == 0))
                        cr_assert(eq(u32, v, version), "%s, slot %" PRIu64, name, slot);
        }
}

/*
 * A format 3 file (made before the compact formats), read and backed up
 * through a read-only open: neither it nor the plain copy claims a later
 * format, which a library of format 3 would refuse or half-read. The first
 * read-write open upgrades both slots. (An empty file: this library writes
 * its entries compact, which a format 3 file cannot hold.)
 */
Test(readonly, a_file_of_an_older_format_keeps_it_through_reads_and_backups)
{
        sombra_db *db = owner_open("db"), *ro;

        cr_assert(eq(int, sombra_checkpoint(db), SOMBRA_OK));
        support_db_close(&db);
        support_meta_set_version("db", 8192, 3);

        ro = reader_must_open("db");
        cr_assert(eq(u64, nodes_of(ro), 0));
        cr_assert(eq(int, sombra_backup(ro, support_path("copy")), SOMBRA_OK));
        support_db_close(&ro);
        expect_meta_versions("db", 3, false);
        expect_meta_versions("copy", 3, true);
        copy_holds("copy", NULL, 0);
        expect_meta_versions("copy", 4, false);
}

/*
 * Another process: a child writes pairs (two nodes and an edge, one
 * transaction) and checkpoints often, while this process opens read-only
 * again and again. Every open must see whole pairs and pass verify.
 */
static void
child_writes(int ready_fd)
{
        sombra_db *db = NULL;
        sombra_conn *c = NULL;
        sombra_batch *b = NULL;
        int rc = sombra_open(support_path("db"), NULL, &db);

        if (rc == SOMBRA_OK)
                rc = sombra_conn_acquire(db, &c);
        if (rc == SOMBRA_OK)
                rc = sombra_batch_new(&b);
        for (int i = 0; rc == SOMBRA_OK && i < 3000; i++) {
                rc = support_pair_commit(c, b, NULL, 0);
                if (rc == SOMBRA_OK && i % 50 == 49)
                        rc = sombra_checkpoint(db);
                if (i == 100 && write(ready_fd, "r", 1) != 1)
                        rc = SOMBRA_EIO;
        }
        if (b != NULL)
                sombra_batch_free(b);
        if (c != NULL)
                sombra_conn_release(c);
        if (db != NULL && sombra_close(db) != SOMBRA_OK)
                rc = SOMBRA_EIO;
        _exit(rc == SOMBRA_OK ? 0 : 1);
}

Test(readonly, another_process_reads_while_this_one_writes_and_checkpoints)
{
        int fds[2], status, opens = 0;
        char ch;
        pid_t pid;

        cr_assert(eq(int, pipe(fds), 0));
        pid = fork();
        cr_assert(pid >= 0);
        if (pid == 0) {
                close(fds[0]);
                child_writes(fds[1]);
        }
        close(fds[1]);
        cr_assert(eq(int, (int)read(fds[0], &ch, 1), 1), "the writer did not start");
        for (; opens < 40; opens++) {
                sombra_db *ro;
                struct sombra_stats st;
                int rc = reader_open("db", &ro);
                cr_assert(eq(int, rc, SOMBRA_OK), "open %d: %s", opens, sombra_strerror(rc));
                cr_assert(eq(int, sombra_stats(ro, &st), SOMBRA_OK));
                cr_assert(eq(u64, st.nodes, 2 * st.edges), "whole pairs only");
                cr_assert(ge(u64, st.edges, 100));
                verify_ok(ro);
                support_db_close(&ro);
        }
        close(fds[0]);
        cr_assert(eq(int, waitpid(pid, &status, 0), pid));
        cr_assert(eq(int, WIFEXITED(status) ? WEXITSTATUS(status) : -1, 0), "the writer failed");
}
