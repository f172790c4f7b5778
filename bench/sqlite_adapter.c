/*
 * sqlite_adapter.c - SQLite under the benchmark's workloads: the same data and
 * the same calls as Sombra, through SQLite used the way a careful application
 * would use it.
 *
 * Database: one file, <dir>/bench.sqlite, opened or created by open in WAL
 * mode, which is stored in the file (the harness reopens it under each
 * profile; the schema is created only when missing). The
 * db handle keeps the connection that made the schema open until close, so
 * the WAL and its index persist between the benchmark's own connections.
 *
 * Schema, the same for every dataset (generator.h):
 *   nodes(id INTEGER PRIMARY KEY, labels TEXT NOT NULL, name TEXT,
 *         int1 INTEGER, int2 INTEGER, real1 REAL)
 *   edges(id INTEGER PRIMARY KEY, src INTEGER NOT NULL, dst INTEGER NOT NULL,
 *         type TEXT NOT NULL, since INTEGER)
 *   indexes nodes_labels(labels), edges_src_type(src, type),
 *   edges_dst_type(dst, type); nodes_lookup(labels, int1) when index_lookup
 *   is called (Sombra's property index is per label and key as well).
 * int1, int2 and real1 hold the dataset's int_keys[0], int_keys[1] and
 * real_key (social: age, joined, score); a bare node leaves them NULL. Every
 * node has one label. Ids are rowids, read back with sqlite3_last_insert_rowid.
 *
 * Statements, prepared once per connection (SQLITE_PREPARE_PERSISTENT) and
 * reset and unbound after every use; see stmt_sql[] for their text:
 *   insert_nodes   BEGIN IMMEDIATE; INSERT INTO nodes per node; COMMIT
 *   insert_edges   BEGIN IMMEDIATE; INSERT INTO edges per edge; COMMIT
 *   get_node       the row by id; nprops = non-NULL name, int1, int2, real1
 *   neighbors_out  (edge id, dst) of the node's outgoing edges; row count
 *   two_hop        COUNT(DISTINCT e2.dst) over e1 JOIN e2 ON e2.src = e1.dst,
 *                  the start excluded (as graph_two_hop_count)
 *   bfs3           recursive CTE over (node, depth), depth <= 3; the count of
 *                  distinct nodes includes the start (as graph_bfs)
 *   shortest_path  the same CTE to depth 6, its queue ordered by depth, so
 *                  the first row for `to` has the fewest hops; LIMIT 1 stops
 *                  the recursion there. Sombra's search has no depth bound.
 *   label_scan     ids of nodes with the schema's scan_label; row count
 *   property_lookup ids of scan_label nodes with int1 = ?; row count
 * Every traversal follows edges of any type, as the Sombra adapter asks of
 * Sombra.
 *
 * Transactions: each insert call is one BEGIN IMMEDIATE ... COMMIT, so the
 * write lock is taken up front and a transaction never fails halfway for a
 * lock; a failed one is rolled back. Reads run in autocommit: each statement
 * is its own read transaction over one WAL snapshot.
 *
 * Durability: synchronous is a per-connection setting, so every connection
 * sets it from the profile. What a crash can take away, in WAL mode:
 *   FULL        -> FULL    the WAL is synced at every commit: nothing
 *                          acknowledged;
 *   NORMAL      -> NORMAL  the WAL is synced only before a checkpoint: a
 *                          power loss takes every commit since the last one
 *                          (more than Sombra's NORMAL, which syncs every 100
 *                          commits or 100 ms); a process crash takes none;
 *   CHECKPOINT  -> NORMAL  which is exactly "synced at checkpoints";
 *   OFF         -> OFF     never synced: a power loss can take anything the
 *                          OS had not written, and can corrupt the file.
 * Stock SQLite has no page checksums: with checksums asked for (the
 * durability profile) it still runs at FULL without them.
 *
 * Threads: one connection per thread, opened with SQLITE_OPEN_NOMUTEX (no
 * locking inside a connection), which needs a threadsafe library; open
 * checks it. Contention between connections waits in the busy handler for
 * BUSY_TIMEOUT_MS, then fails with SOMBRA_EBUSY.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "adapter.h"

#define BUSY_TIMEOUT_MS 10000
#define DB_FILE         "bench.sqlite"

enum stmt {
        STMT_BEGIN,
        STMT_COMMIT,
        STMT_ROLLBACK,
        STMT_INSERT_NODE,
        STMT_INSERT_EDGE,
        STMT_GET_NODE,
        STMT_NEIGHBORS_OUT,
        STMT_TWO_HOP,
        STMT_BFS3,
        STMT_SHORTEST_PATH,
        STMT_LABEL_SCAN,
        STMT_PROPERTY_LOOKUP,
        NSTMTS
};

static const char *const stmt_sql[NSTMTS] = {
    [STMT_BEGIN] = "BEGIN IMMEDIATE",
    [STMT_COMMIT] = "COMMIT",
    [STMT_ROLLBACK] = "ROLLBACK",
    [STMT_INSERT_NODE] = "INSERT INTO nodes(labels, name, int1, int2, real1) "
                         "VALUES(?1, ?2, ?3, ?4, ?5)",
    [STMT_INSERT_EDGE] = "INSERT INTO edges(src, dst, type, since) VALUES(?1, ?2, ?3, ?4)",
    [STMT_GET_NODE] = "SELECT id, labels, name, int1, int2, real1 FROM nodes WHERE id = ?1",
    [STMT_NEIGHBORS_OUT] = "SELECT id, dst FROM edges WHERE src = ?1",
    [STMT_TWO_HOP] = "SELECT COUNT(DISTINCT e2.dst) FROM edges e1 "
                     "JOIN edges e2 ON e2.src = e1.dst WHERE e1.src = ?1 AND e2.dst <> ?1",
    /* The start comes from nodes, so an unknown start reaches nothing. */
    [STMT_BFS3] = "WITH RECURSIVE reach(node, depth) AS ("
                  " SELECT id, 0 FROM nodes WHERE id = ?1"
                  " UNION"
                  " SELECT e.dst, r.depth + 1 FROM reach r"
                  " JOIN edges e ON e.src = r.node"
                  " WHERE r.depth < 3)"
                  " SELECT COUNT(DISTINCT node) FROM reach",
    [STMT_SHORTEST_PATH] = "WITH RECURSIVE reach(node, depth) AS ("
                           " SELECT ?1, 0"
                           " UNION"
                           " SELECT e.dst, r.depth + 1 FROM reach r"
                           " JOIN edges e ON e.src = r.node"
                           " WHERE r.depth < 6 ORDER BY 2)"
                           " SELECT depth FROM reach WHERE node = ?2 LIMIT 1",
    [STMT_LABEL_SCAN] = "SELECT id FROM nodes WHERE labels = ?1",
    [STMT_PROPERTY_LOOKUP] = "SELECT id FROM nodes WHERE labels = ?2 AND int1 = ?1",
};

static const char SCHEMA_SQL[] =
    "BEGIN;"
    "CREATE TABLE IF NOT EXISTS nodes(id INTEGER PRIMARY KEY, labels TEXT NOT NULL, name TEXT,"
    " int1 INTEGER, int2 INTEGER, real1 REAL);"
    "CREATE TABLE IF NOT EXISTS edges(id INTEGER PRIMARY KEY, src INTEGER NOT NULL, dst INTEGER "
    "NOT NULL,"
    " type TEXT NOT NULL, since INTEGER);"
    "CREATE INDEX IF NOT EXISTS nodes_labels ON nodes(labels);"
    "CREATE INDEX IF NOT EXISTS edges_src_type ON edges(src, type);"
    "CREATE INDEX IF NOT EXISTS edges_dst_type ON edges(dst, type);"
    "COMMIT;";

struct sqlite_db {
        char path[4096];
        const char *synchronous; /* the PRAGMA's value for the profile */
        const struct bench_schema *dataset;
        sqlite3 *schema; /* made the schema; open until close */
};

struct sqlite_conn {
        sqlite3 *db;
        const struct bench_schema *dataset;
        sqlite3_stmt *st[NSTMTS];
};

/* SQLite's result code (primary or extended) as a SOMBRA_* status. */
static int
status_of(int rc)
{
        switch (rc & 0xff) {
        case SQLITE_OK:
        case SQLITE_ROW:
        case SQLITE_DONE:
                return SOMBRA_OK;
        case SQLITE_BUSY:
        case SQLITE_LOCKED:
                return SOMBRA_EBUSY;
        case SQLITE_NOMEM:
                return SOMBRA_ENOMEM;
        case SQLITE_FULL:
                return SOMBRA_ENOSPC;
        case SQLITE_CORRUPT:
                return SOMBRA_ECORRUPT;
        case SQLITE_NOTADB:
                return SOMBRA_ENOTDB;
        case SQLITE_TOOBIG:
                return SOMBRA_ETOOBIG;
        case SQLITE_PERM:
        case SQLITE_READONLY:
        case SQLITE_CANTOPEN:
                return SOMBRA_EPERM;
        case SQLITE_MISUSE:
        case SQLITE_RANGE:
        case SQLITE_MISMATCH:
                return SOMBRA_EINVAL;
        default:
                return SOMBRA_EIO;
        }
}

static int64_t
now_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Steps st to its end and resets it; for statements that return no rows. */
static int
stmt_exec(sqlite3_stmt *st)
{
        int rc = sqlite3_step(st);
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        return rc == SQLITE_ROW ? SOMBRA_EIO : status_of(rc);
}

/*
 * Steps st through every row and resets it. *rows gets the number of rows,
 * *first (may be NULL) column 0 of the first row; neither is written on error.
 */
static int
stmt_rows(sqlite3_stmt *st, size_t *rows, int64_t *first)
{
        int64_t v = 0;
        size_t n = 0;
        int rc;

        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                if (n++ == 0)
                        v = sqlite3_column_int64(st, 0);
        }
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        if (rc != SQLITE_DONE)
                return status_of(rc);
        *rows = n;
        if (first != NULL)
                *first = v;
        return SOMBRA_OK;
}

/*
 * Opens a connection to db's file with the profile's settings. On error
 * *out is NULL and nothing stays open.
 */
static int
connection_open(const struct sqlite_db *db, int flags, sqlite3 **out)
{
        char pragma[64];
        sqlite3 *h = NULL;
        int rc;

        *out = NULL;
        rc = sqlite3_open_v2(db->path, &h, flags | SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
                             NULL);
        if (rc == SQLITE_OK)
                rc = sqlite3_busy_timeout(h, BUSY_TIMEOUT_MS);
        if (rc == SQLITE_OK) {
                snprintf(pragma, sizeof(pragma), "PRAGMA synchronous=%s", db->synchronous);
                rc = sqlite3_exec(h, pragma, NULL, NULL, NULL);
        }
        if (rc != SQLITE_OK) {
                sqlite3_close_v2(h); /* h may be a handle that failed to open */
                return status_of(rc);
        }
        *out = h;
        return SOMBRA_OK;
}

static int
set_wal(sqlite3 *h)
{
        sqlite3_stmt *st = NULL;
        int rc = sqlite3_prepare_v2(h, "PRAGMA journal_mode=WAL", -1, &st, NULL);

        if (rc == SQLITE_OK)
                rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
                const unsigned char *mode = sqlite3_column_text(st, 0);
                rc = mode != NULL && strcmp((const char *)mode, "wal") == 0 ? SQLITE_OK
                                                                            : SQLITE_IOERR;
        }
        sqlite3_finalize(st);
        return status_of(rc);
}

static const char *
synchronous_of(enum sombra_sync_mode mode)
{
        switch (mode) {
        case SOMBRA_SYNC_FULL:
                return "FULL";
        case SOMBRA_SYNC_NORMAL:
        case SOMBRA_SYNC_CHECKPOINT:
                return "NORMAL";
        case SOMBRA_SYNC_OFF:
                return "OFF";
        }
        return NULL;
}

static int
sqlite_open(const char *dir, const struct bench_profile *p, const struct bench_schema *schema,
            void **out)
{
        struct sqlite_db *db = NULL;
        int n, rc;

        if (dir == NULL || p == NULL || schema == NULL || out == NULL)
                return SOMBRA_EINVAL;
        *out = NULL;
        if (!sqlite3_threadsafe())
                return SOMBRA_EINVAL; /* one connection per thread needs it */
        db = calloc(1, sizeof(*db));
        if (db == NULL)
                return SOMBRA_ENOMEM;
        db->synchronous = synchronous_of(p->mode);
        db->dataset = schema;
        n = snprintf(db->path, sizeof(db->path), "%s/%s", dir, DB_FILE);
        if (db->synchronous == NULL || n < 0 || (size_t)n >= sizeof(db->path)) {
                rc = SOMBRA_EINVAL;
                goto fail;
        }
        /* Opens or creates: the harness reopens one database under each profile. */
        rc = connection_open(db, SQLITE_OPEN_CREATE, &db->schema);
        if (rc == SOMBRA_OK)
                rc = set_wal(db->schema);
        if (rc == SOMBRA_OK)
                rc = status_of(sqlite3_exec(db->schema, SCHEMA_SQL, NULL, NULL, NULL));
        if (rc != SOMBRA_OK)
                goto fail;
        *out = db;
        return SOMBRA_OK;
fail:
        sqlite3_close_v2(db->schema);
        free(db);
        return rc;
}

static void
sqlite_close(void *handle)
{
        struct sqlite_db *db = handle;

        if (db == NULL)
                return;
        sqlite3_close_v2(db->schema);
        free(db);
}

static void
sqlite_conn_close(void *handle)
{
        struct sqlite_conn *c = handle;

        if (c == NULL)
                return;
        for (int i = 0; i < NSTMTS; i++)
                sqlite3_finalize(c->st[i]);
        sqlite3_close_v2(c->db);
        free(c);
}

static int
sqlite_conn_open(void *handle, void **out)
{
        struct sqlite_conn *c;
        int rc;

        if (handle == NULL || out == NULL)
                return SOMBRA_EINVAL;
        *out = NULL;
        c = calloc(1, sizeof(*c));
        if (c == NULL)
                return SOMBRA_ENOMEM;
        c->dataset = ((const struct sqlite_db *)handle)->dataset;
        rc = connection_open(handle, 0, &c->db);
        for (int i = 0; rc == SOMBRA_OK && i < NSTMTS; i++)
                rc = status_of(sqlite3_prepare_v3(c->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
                                                  &c->st[i], NULL));
        if (rc != SOMBRA_OK) {
                sqlite_conn_close(c);
                return rc;
        }
        *out = c;
        return SOMBRA_OK;
}

/*
 * BEGIN IMMEDIATE: takes the write lock now. The busy handler waits for it;
 * a SQLITE_BUSY that comes back sooner (one the handler was not asked about)
 * is retried until BUSY_TIMEOUT_MS have passed.
 */
static int
write_begin(struct sqlite_conn *c)
{
        int64_t deadline = now_ms() + BUSY_TIMEOUT_MS;

        for (;;) {
                int rc = sqlite3_step(c->st[STMT_BEGIN]);
                sqlite3_reset(c->st[STMT_BEGIN]);
                if (rc == SQLITE_DONE)
                        return SOMBRA_OK;
                if ((rc & 0xff) != SQLITE_BUSY || now_ms() >= deadline)
                        return status_of(rc);
                sqlite3_sleep(1);
        }
}

/*
 * Commits when status is SOMBRA_OK, and rolls back when it is not or when
 * the commit fails (unless SQLite already rolled back). Returns the first
 * failure.
 */
static int
write_end(struct sqlite_conn *c, int status)
{
        if (status == SOMBRA_OK)
                status = stmt_exec(c->st[STMT_COMMIT]);
        if (status != SOMBRA_OK && !sqlite3_get_autocommit(c->db))
                stmt_exec(c->st[STMT_ROLLBACK]);
        return status;
}

/* One node into the open transaction; *id gets its rowid. */
static int
insert_node(struct sqlite_conn *c, const struct bench_node *node, uint64_t *id)
{
        sqlite3_stmt *st = c->st[STMT_INSERT_NODE];
        int rc, bound = sqlite3_bind_text(st, 1, node->label, -1, SQLITE_STATIC);

        /* name need not be NUL-terminated when it fills the array */
        if (bound == SQLITE_OK)
                bound = sqlite3_bind_text(
                    st, 2, node->name, (int)strnlen(node->name, sizeof(node->name)), SQLITE_STATIC);
        /* A bare node leaves the rest NULL, as bindings are cleared after every use. */
        if (bound == SQLITE_OK && !node->bare)
                bound = sqlite3_bind_int64(st, 3, node->ints[0]);
        if (bound == SQLITE_OK && !node->bare)
                bound = sqlite3_bind_int64(st, 4, node->ints[1]);
        if (bound == SQLITE_OK && !node->bare)
                bound = sqlite3_bind_double(st, 5, node->real);
        if (bound == SQLITE_OK) {
                rc = stmt_exec(st);
        } else {
                sqlite3_clear_bindings(st);
                rc = status_of(bound);
        }
        if (rc == SOMBRA_OK)
                *id = (uint64_t)sqlite3_last_insert_rowid(c->db);
        return rc;
}

static int
sqlite_insert_nodes(void *handle, const struct bench_node *nodes, size_t n, uint64_t *ids)
{
        struct sqlite_conn *c = handle;
        int rc;

        if (c == NULL || (n > 0 && (nodes == NULL || ids == NULL)))
                return SOMBRA_EINVAL;
        rc = write_begin(c);
        if (rc != SOMBRA_OK)
                return rc;
        for (size_t i = 0; rc == SOMBRA_OK && i < n; i++)
                rc = insert_node(c, &nodes[i], &ids[i]);
        return write_end(c, rc);
}

static int
sqlite_insert_edges(void *handle, const struct bench_edge *edges, size_t n)
{
        struct sqlite_conn *c = handle;
        sqlite3_stmt *st;
        int rc;

        if (c == NULL || (n > 0 && edges == NULL))
                return SOMBRA_EINVAL;
        st = c->st[STMT_INSERT_EDGE];
        rc = write_begin(c);
        if (rc != SOMBRA_OK)
                return rc;
        for (size_t i = 0; rc == SOMBRA_OK && i < n; i++) {
                int bound = sqlite3_bind_int64(st, 1, (sqlite3_int64)edges[i].src);
                if (bound == SQLITE_OK)
                        bound = sqlite3_bind_int64(st, 2, (sqlite3_int64)edges[i].dst);
                if (bound == SQLITE_OK)
                        bound = sqlite3_bind_text(st, 3, edges[i].type, -1, SQLITE_STATIC);
                if (bound == SQLITE_OK)
                        bound = sqlite3_bind_int64(st, 4, edges[i].since);
                if (bound == SQLITE_OK) {
                        rc = stmt_exec(st);
                } else {
                        sqlite3_clear_bindings(st);
                        rc = status_of(bound);
                }
        }
        return write_end(c, rc);
}

static int
sqlite_index_lookup(void *handle)
{
        struct sqlite_conn *c = handle;

        if (c == NULL)
                return SOMBRA_EINVAL;
        return status_of(
            sqlite3_exec(c->db, "CREATE INDEX IF NOT EXISTS nodes_lookup ON nodes(labels, int1)",
                         NULL, NULL, NULL));
}

static int
sqlite_get_node(void *handle, uint64_t id, size_t *nprops)
{
        struct sqlite_conn *c = handle;
        sqlite3_stmt *st;
        size_t found = 0;
        int rc;

        if (c == NULL || nprops == NULL)
                return SOMBRA_EINVAL;
        st = c->st[STMT_GET_NODE];
        rc = sqlite3_bind_int64(st, 1, (sqlite3_int64)id);
        if (rc == SQLITE_OK)
                rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
                /* columns 2..5: name, int1, int2, real1 */
                for (int col = 2; col < 6; col++)
                        found += sqlite3_column_type(st, col) != SQLITE_NULL;
        }
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        if (rc == SQLITE_DONE)
                return SOMBRA_ENOTFOUND;
        if (rc != SQLITE_ROW)
                return status_of(rc);
        *nprops = found;
        return SOMBRA_OK;
}

/* Binds arg to ?1 of statement which, runs it and counts its rows, as stmt_rows. */
static int
rows_for(struct sqlite_conn *c, enum stmt which, sqlite3_int64 arg, size_t *rows, int64_t *first)
{
        sqlite3_stmt *st = c->st[which];
        int rc = sqlite3_bind_int64(st, 1, arg);

        if (rc != SQLITE_OK) {
                sqlite3_clear_bindings(st);
                return status_of(rc);
        }
        return stmt_rows(st, rows, first);
}

static int
sqlite_neighbors_out(void *handle, uint64_t id, size_t *n)
{
        if (handle == NULL || n == NULL)
                return SOMBRA_EINVAL;
        return rows_for(handle, STMT_NEIGHBORS_OUT, (sqlite3_int64)id, n, NULL);
}

static int
sqlite_two_hop(void *handle, uint64_t id, uint64_t *distinct)
{
        size_t rows = 0;
        int64_t count = 0;
        int rc;

        if (handle == NULL || distinct == NULL)
                return SOMBRA_EINVAL;
        rc = rows_for(handle, STMT_TWO_HOP, (sqlite3_int64)id, &rows, &count);
        if (rc == SOMBRA_OK)
                *distinct = (uint64_t)count;
        return rc;
}

static int
sqlite_bfs3(void *handle, uint64_t id, uint64_t *reached)
{
        size_t rows = 0;
        int64_t count = 0;
        int rc;

        if (handle == NULL || reached == NULL)
                return SOMBRA_EINVAL;
        rc = rows_for(handle, STMT_BFS3, (sqlite3_int64)id, &rows, &count);
        if (rc == SOMBRA_OK && count == 0)
                rc = SOMBRA_ENOTFOUND; /* no such start node */
        if (rc == SOMBRA_OK)
                *reached = (uint64_t)count;
        return rc;
}

static int
sqlite_shortest_path(void *handle, uint64_t from, uint64_t to, size_t *hops)
{
        struct sqlite_conn *c = handle;
        sqlite3_stmt *st;
        size_t rows = 0;
        int64_t depth = 0;
        int rc;

        if (c == NULL || hops == NULL)
                return SOMBRA_EINVAL;
        *hops = 0;
        if (from == to)
                return SOMBRA_OK;
        st = c->st[STMT_SHORTEST_PATH];
        rc = sqlite3_bind_int64(st, 1, (sqlite3_int64)from);
        if (rc == SQLITE_OK)
                rc = sqlite3_bind_int64(st, 2, (sqlite3_int64)to);
        if (rc != SQLITE_OK) {
                sqlite3_clear_bindings(st);
                return status_of(rc);
        }
        rc = stmt_rows(st, &rows, &depth);
        if (rc == SOMBRA_OK && rows == 0)
                rc = SOMBRA_ENOTFOUND; /* not within 6 hops */
        if (rc == SOMBRA_OK)
                *hops = (size_t)depth;
        return rc;
}

static int
sqlite_label_scan(void *handle, size_t *n)
{
        struct sqlite_conn *c = handle;
        int rc;

        if (c == NULL || n == NULL)
                return SOMBRA_EINVAL;
        rc =
            sqlite3_bind_text(c->st[STMT_LABEL_SCAN], 1, c->dataset->scan_label, -1, SQLITE_STATIC);
        if (rc != SQLITE_OK) {
                sqlite3_clear_bindings(c->st[STMT_LABEL_SCAN]);
                return status_of(rc);
        }
        return stmt_rows(c->st[STMT_LABEL_SCAN], n, NULL);
}

static int
sqlite_property_lookup(void *handle, int64_t value, size_t *n)
{
        struct sqlite_conn *c = handle;
        int rc;

        if (c == NULL || n == NULL)
                return SOMBRA_EINVAL;
        rc = sqlite3_bind_text(c->st[STMT_PROPERTY_LOOKUP], 2, c->dataset->scan_label, -1,
                               SQLITE_STATIC);
        if (rc != SQLITE_OK) {
                sqlite3_clear_bindings(c->st[STMT_PROPERTY_LOOKUP]);
                return status_of(rc);
        }
        return rows_for(c, STMT_PROPERTY_LOOKUP, value, n, NULL);
}

static int
sqlite_read_hold_begin(void *handle)
{
        struct sqlite_conn *c = handle;
        /* A deferred transaction starts reading at its first SELECT and keeps that state. */
        return status_of(
            sqlite3_exec(c->db, "BEGIN DEFERRED; SELECT COUNT(*) FROM nodes", NULL, NULL, NULL));
}

static int
sqlite_read_hold_end(void *handle)
{
        struct sqlite_conn *c = handle;
        return status_of(sqlite3_exec(c->db, "COMMIT", NULL, NULL, NULL));
}

static int
sqlite_write_hold(void *handle, double seconds)
{
        struct sqlite_conn *c = handle;
        struct bench_node n = {.label = "Holder", .name = "holder", .bare = true};
        uint64_t id;
        int rc = write_begin(c);

        if (rc != SOMBRA_OK)
                return rc;
        rc = insert_node(c, &n, &id);
        sqlite3_sleep((int)(seconds * 1000));
        stmt_exec(c->st[STMT_ROLLBACK]);
        return rc;
}

/* Column 0 of a one-row PRAGMA. */
static int
pragma_int(sqlite3 *h, const char *sql, int64_t *v)
{
        sqlite3_stmt *st = NULL;
        size_t rows;
        int rc = status_of(sqlite3_prepare_v2(h, sql, -1, &st, NULL));

        if (rc == SOMBRA_OK)
                rc = stmt_rows(st, &rows, v);
        sqlite3_finalize(st);
        return rc;
}

static int
sqlite_file_size(void *handle, uint64_t *bytes, uint64_t *free_bytes)
{
        struct sqlite_db *db = handle;
        int64_t pages = 0, free_pages = 0, page_size = 0, busy = 0;
        int rc = pragma_int(db->schema, "PRAGMA wal_checkpoint(TRUNCATE)", &busy);

        if (rc == SOMBRA_OK && busy != 0)
                rc = SOMBRA_EBUSY;
        if (rc == SOMBRA_OK)
                rc = pragma_int(db->schema, "PRAGMA page_count", &pages);
        if (rc == SOMBRA_OK)
                rc = pragma_int(db->schema, "PRAGMA freelist_count", &free_pages);
        if (rc == SOMBRA_OK)
                rc = pragma_int(db->schema, "PRAGMA page_size", &page_size);
        if (rc == SOMBRA_OK) {
                *bytes = (uint64_t)(pages * page_size);
                *free_bytes = (uint64_t)(free_pages * page_size);
        }
        return rc;
}

static int
sqlite_compact_size(void *handle, uint64_t *bytes)
{
        struct sqlite_db *db = handle;
        char path[sizeof(db->path) + 16], *sql;
        int64_t pages = 0, page_size = 0;
        sqlite3 *copy = NULL;
        int rc;

        snprintf(path, sizeof(path), "%s.vacuum", db->path);
        unlink(path); /* a copy left by an interrupted run */
        sql = sqlite3_mprintf("VACUUM INTO %Q", path);
        if (sql == NULL)
                return SOMBRA_ENOMEM;
        rc = status_of(sqlite3_exec(db->schema, sql, NULL, NULL, NULL));
        sqlite3_free(sql);
        if (rc == SOMBRA_OK)
                rc = status_of(sqlite3_open_v2(path, &copy, SQLITE_OPEN_READONLY, NULL));
        if (rc == SOMBRA_OK)
                rc = pragma_int(copy, "PRAGMA page_count", &pages);
        if (rc == SOMBRA_OK)
                rc = pragma_int(copy, "PRAGMA page_size", &page_size);
        if (rc == SOMBRA_OK)
                *bytes = (uint64_t)(pages * page_size);
        sqlite3_close_v2(copy);
        unlink(path);
        return rc;
}

const struct adapter sqlite_adapter = {
    .name = "sqlite",
    .open = sqlite_open,
    .close = sqlite_close,
    .conn_open = sqlite_conn_open,
    .conn_close = sqlite_conn_close,
    .insert_nodes = sqlite_insert_nodes,
    .insert_edges = sqlite_insert_edges,
    .index_lookup = sqlite_index_lookup,
    .get_node = sqlite_get_node,
    .neighbors_out = sqlite_neighbors_out,
    .two_hop = sqlite_two_hop,
    .bfs3 = sqlite_bfs3,
    .shortest_path = sqlite_shortest_path,
    .label_scan = sqlite_label_scan,
    .property_lookup = sqlite_property_lookup,
    .read_hold_begin = sqlite_read_hold_begin,
    .read_hold_end = sqlite_read_hold_end,
    .write_hold = sqlite_write_hold,
    .file_size = sqlite_file_size,
    .compact_size = sqlite_compact_size,
};
