/*
 * test_walbind.c - the WAL belongs to one database (issue 10, item 2).
 *
 * A `-wal` file is replayed only into the database it was written for, and
 * only when it continues the state the file holds. A log of another
 * database, a file that is no log at all, and a log that continues a newer
 * state than the file's are refused with a clear status, and left as they
 * were; nothing is ever overwritten that is not this database's log.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "engine.h"
#include "support.h"

static void
setup(void)
{
        support_dir_make("walbind");
}

TestSuite(walbind, .init = setup, .fini = support_dir_remove, .timeout = 120);

static sombra_db *
db_open(const char *name)
{
        sombra_db *db = NULL;

        cr_assert(eq(int, sombra_open(support_path(name), NULL, &db), SOMBRA_OK), "open %s", name);
        return db;
}

/* Opens name, which must fail with want, and leaves its WAL byte for byte as it was. */
static void
open_refused(const char *name, int want)
{
        char wal[64];
        size_t before_len, after_len;
        uint8_t *before, *after;
        sombra_db *db = NULL;
        int rc;

        snprintf(wal, sizeof(wal), "%s-wal", name);
        before = support_read_file(wal, &before_len);
        rc = sombra_open(support_path(name), NULL, &db);
        cr_assert(eq(int, rc, want), "%s: %s", name, sombra_strerror(rc));
        cr_assert(eq(ptr, db, NULL));
        after = support_read_file(wal, &after_len);
        cr_assert(eq(sz, after_len, before_len));
        cr_assert(eq(int, memcmp(before, after, before_len), 0), "%s was changed", wal);
        free(before);
        free(after);
}

/* Makes database name with n nodes and closes it. */
static void
db_make(const char *name, int n)
{
        sombra_db *db = db_open(name);
        sombra_conn *c = support_conn_acquire(db);

        for (int i = 0; i < n; i++)
                support_node_make(c, "N");
        cr_assert(eq(int, sombra_conn_release(c), SOMBRA_OK));
        support_db_close(&db);
}

/*
 * Commits one more node to name (made with db_make) and copies the database
 * and its WAL, still open, to copy: what a crash right after that FULL
 * commit leaves, a WAL holding a commit the file does not.
 */
static void
crash_copy_with_a_commit(const char *name, const char *copy)
{
        char from[64], to[64];
        sombra_db *db = db_open(name);
        sombra_conn *c = support_conn_acquire(db);

        support_node_make(c, "N");
        snprintf(from, sizeof(from), "%s-wal", name);
        snprintf(to, sizeof(to), "%s-wal", copy);
        support_copy_file(name, copy);
        support_copy_file(from, to);
        cr_assert(eq(int, sombra_conn_release(c), SOMBRA_OK));
        support_db_close(&db);
}

static uint64_t
nodes_in(const char *name)
{
        sombra_db *db = db_open(name);
        struct sombra_stats st;

        cr_assert(eq(int, sombra_stats(db, &st), SOMBRA_OK));
        support_db_close(&db);
        return st.nodes;
}

Test(walbind, a_wal_of_another_database_is_refused)
{
        db_make("one", 3);
        crash_copy_with_a_commit("one", "crashed");
        db_make("two", 1);
        support_remove("two-wal");
        support_copy_file("crashed-wal", "two-wal");
        open_refused("two", SOMBRA_EWAL);
        /* Also with its header damaged (byte 20: the salt): it still names another database. */
        support_flip_byte("two-wal", 20, 0x01);
        open_refused("two", SOMBRA_EWAL);
        support_flip_byte("two-wal", 20, 0x01);
        cr_assert(eq(u64, nodes_in("crashed"), 4), "the log opens with its own database");
}

Test(walbind, a_new_database_beside_a_stale_wal_is_refused_and_stays_empty)
{
        db_make("db", 2);
        crash_copy_with_a_commit("db", "crashed");
        support_remove("db");
        support_remove("db-wal");
        support_copy_file("crashed-wal", "db-wal");
        open_refused("db", SOMBRA_EWAL);
        cr_assert(eq(u64, support_file_size("db"), 0), "the failed creation is undone");
        support_remove("db-wal");
        cr_assert(eq(u64, nodes_in("db"), 0), "with the stale log moved away it opens, new");
}

/* A copy made by `backup` gets a database id of its own: the source's log is not its log. */
static void
backup_beside_the_source_s_wal(int (*backup)(sombra_db *db, const char *dest_path))
{
        sombra_db *db;

        db_make("db", 5);
        crash_copy_with_a_commit("db", "crashed");
        db = db_open("db");
        cr_assert(eq(int, backup(db, support_path("copy")), SOMBRA_OK));
        support_db_close(&db);
        /* The source's log, with a commit after the backup's state, left beside the copy. */
        support_copy_file("crashed-wal", "copy-wal");
        open_refused("copy", SOMBRA_EWAL);
        /* Even the source's log with nothing in it is not the copy's. */
        support_remove("copy-wal");
        support_copy_file("db-wal", "copy-wal");
        open_refused("copy", SOMBRA_EWAL);
        support_remove("copy-wal");
        cr_assert(eq(u64, nodes_in("copy"), 6));
}

Test(walbind, a_backup_beside_the_source_s_wal_is_refused)
{
        backup_beside_the_source_s_wal(sombra_backup);
}

Test(walbind, a_compact_backup_beside_the_source_s_wal_is_refused)
{
        backup_beside_the_source_s_wal(sombra_backup_compact);
}

Test(walbind, a_file_replaced_by_an_older_copy_of_itself_is_refused_not_opened_old)
{
        db_make("db", 2);
        support_copy_file("db", "old");
        db_make("db", 3); /* reopens, adds three, checkpoints at close */
        support_remove("db");
        support_copy_file("old", "db");
        open_refused("db", SOMBRA_ECORRUPT);
}

Test(walbind, a_file_that_is_not_a_wal_is_never_overwritten)
{
        static const char notes[] = "my notes, which happen to be called db-wal\n";

        support_write_file("db-wal", notes, sizeof(notes));
        open_refused("db", SOMBRA_EWAL);
        db_make("other", 1);
        support_remove("other-wal");
        support_write_file("other-wal", notes, sizeof(notes));
        open_refused("other", SOMBRA_EWAL);
}

Test(walbind, the_wal_sits_beside_the_file_a_symlink_points_at)
{
        cr_assert(eq(int, symlink(support_path("real.sombra"), support_path("link")), 0));
        db_make("link", 2);
        cr_assert(support_file_exists("real.sombra-wal"));
        cr_assert(not(support_file_exists("link-wal")));
        cr_assert(eq(u64, nodes_in("real.sombra"), 2), "through its real name, same log");
        cr_assert(eq(u64, nodes_in("link"), 2));
}

Test(walbind, a_wal_locked_by_someone_else_is_refused)
{
        int fd;
        sombra_db *db = NULL;

        db_make("db", 1);
        fd = open(support_path("db-wal"), O_RDWR | O_CLOEXEC);
        cr_assert(fd >= 0);
        cr_assert(eq(int, flock(fd, LOCK_EX | LOCK_NB), 0));
        cr_assert(eq(int, sombra_open(support_path("db"), NULL, &db), SOMBRA_ELOCKED));
        close(fd);
        cr_assert(eq(u64, nodes_in("db"), 1));
}

Test(walbind, a_new_wal_s_directory_entry_is_synced)
{
        struct io_faults faults = {.ops = 1u << IO_OP_SYNC, .files = IO_FILE_DIR, .err = EIO};
        sombra_db *db = NULL;

        db_make("db", 2);
        /* The WAL is there: nothing new in the directory, no directory sync. */
        cr_assert(eq(int, engine_open(support_path("db"), NULL, &faults, &db), SOMBRA_OK));
        support_db_close(&db);
        cr_assert(eq(u64, faults.fired, 0));
        /* A new WAL: its entry is synced, and a failure of that sync fails the open. */
        support_remove("db-wal");
        cr_assert(eq(int, engine_open(support_path("db"), NULL, &faults, &db), SOMBRA_EIO));
        cr_assert(eq(u64, faults.fired, 1));
        cr_assert(eq(u64, nodes_in("db"), 2));
}
