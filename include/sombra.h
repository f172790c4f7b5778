/*
 * sombra.h - the one public header of libsombra, an embedded property graph
 * database for multi-threaded programs that share one database file.
 *
 * Conventions
 *   Every function returns an int status: SOMBRA_OK (0) or a negative
 *   SOMBRA_E* code; sombra_strerror() turns one into a sentence. Results come
 *   back through out parameters, which are left untouched on error.
 *
 * Threads
 *   A database (sombra_db) is shared by every thread of the process. Each
 *   thread takes a connection (sombra_conn) from the pool, uses it, and gives
 *   it back; a connection may be used from any thread, and two threads using
 *   one connection at once are serialised. Reads run on the calling thread
 *   against the newest published commit and never wait for writers. Writes
 *   are handed to the engine's single writer thread and the call returns when
 *   the commit is as durable as the sync mode promises (see below).
 */
#ifndef SOMBRA_H
#define SOMBRA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Versions. The header's, at the caller's compile time; sombra_version()
 * gives the library's, at run time. Until 1.0, a new minor version may change
 * the ABI; within one, patch versions keep it.
 */
#define SOMBRA_VERSION_MAJOR  0
#define SOMBRA_VERSION_MINOR  3
#define SOMBRA_VERSION_PATCH  0
#define SOMBRA_VERSION_STRING "0.3.0"

/*
 * What libsombra exports. It is built with hidden visibility, so only the
 * functions declared here are visible outside it: its internal names cannot
 * clash with a host program's, and a host program's symbols cannot replace
 * them.
 */
#if defined(__GNUC__)
#define SOMBRA_API __attribute__((visibility("default")))
#else
#define SOMBRA_API
#endif

/*
 * Sizes. The structs that the caller allocates and the library fills or
 * reads (struct sombra_config, sombra_stats, sombra_metrics) may gain fields
 * in later versions, only ever at their end. So that a program built against
 * one version of this header runs with a library of another, the library is
 * told the size the caller's header gave each struct: for sombra_config, its
 * `size` field (set by the presets); for the others, a size argument that
 * the macro of the usual name passes as sizeof at the caller's compile time.
 * The library reads and writes only those bytes: fields an older header does
 * not have are left out (a config gets their production defaults), and
 * fields of a newer header that the library does not know are ignored when
 * read and zeroed when written. A size below the struct's SOMBRA_*_SIZE_MIN,
 * too small for the fields every version has, gives SOMBRA_EINVAL and
 * nothing is written.
 */

/* The library's version, "MAJOR.MINOR.PATCH". Never NULL. Any thread; never blocks. */
SOMBRA_API const char *sombra_version(void);

/*
 * Status codes. Negative, in a range of their own so that they never collide
 * with errno values a caller may also be juggling.
 */
enum sombra_status {
        SOMBRA_OK = 0,
        SOMBRA_EINVAL = -30001,    /* an argument is NULL, empty or out of range */
        SOMBRA_ENOTFOUND = -30002, /* no node, edge, property or index with that id/name */
        SOMBRA_ENOMEM = -30003,    /* out of memory */
        SOMBRA_EIO = -30004,       /* the operating system failed a read, write or sync */
        SOMBRA_ECORRUPT = -30005,  /* a page, meta page or WAL record failed its checks */
        SOMBRA_ENOTDB = -30006,    /* the file is not a Sombra database (or another version) */
        SOMBRA_ELOCKED = -30007,   /* another process has the database open */
        SOMBRA_ETOOBIG = -30008,   /* a name, value, record or batch exceeds its limit */
        SOMBRA_EEXIST = -30009,    /* it already exists (an index, for example) */
        SOMBRA_EBUSY = -30010,     /* no connection free, a transaction or a batch in progress */
        SOMBRA_EAGAIN = -30011,    /* would block and the caller asked not to */
        SOMBRA_ETIMEDOUT = -30012, /* a wait or a transaction ran past its time limit */
        SOMBRA_ECLOSED = -30013,   /* the database or handle was closed */
        SOMBRA_EFAILED = -30014,   /* an earlier I/O failure made the database read-only */
        SOMBRA_ENOSPC = -30015,    /* the disk is full */
        SOMBRA_ENOTXN = -30016,    /* the call needs a transaction and none is open */
        SOMBRA_ETYPE = -30017,     /* a value has the wrong type for the operation */
        SOMBRA_EPERM = -30018,     /* the file cannot be opened for reading and writing */
        SOMBRA_EWAL = -30019,      /* the -wal file beside the database is not its WAL */
        SOMBRA_EREADONLY = -30020  /* the database was opened read-only (config.read_only) */
};

/*
 * Returns a static, human-readable sentence for a status code. Never NULL;
 * unknown codes get a generic sentence. Any thread; never blocks.
 */
SOMBRA_API const char *sombra_strerror(int status);

/* Limits. Names are labels, edge types and property keys. */
#define SOMBRA_MAX_NAME         255u        /* bytes in a name, at least 1 */
#define SOMBRA_MAX_VALUE        (16u << 20) /* bytes in one string or bytes value */
#define SOMBRA_MAX_RECORD       (32u << 20) /* bytes in one encoded node or edge */
#define SOMBRA_MAX_LABELS       256u        /* labels on one node */
#define SOMBRA_MAX_PROPS        4096u       /* properties on one node or edge */
#define SOMBRA_DEFAULT_PAGESIZE 8192u
#define SOMBRA_MIN_PAGESIZE     4096u
#define SOMBRA_MAX_PAGESIZE     65536u
#define SOMBRA_MIN_CACHE_PAGES  64u

/* Property values. Strings are UTF-8 by convention but stored as given. */
enum sombra_type {
        SOMBRA_NULL = 0,
        SOMBRA_BOOL = 1,
        SOMBRA_INT = 2,
        SOMBRA_DOUBLE = 3,
        SOMBRA_STRING = 4,
        SOMBRA_BYTES = 5
};

struct sombra_value {
        enum sombra_type type;
        union {
                bool b;
                int64_t i;
                double d;
                struct {
                        const void *ptr; /* may be NULL only when len is 0 */
                        size_t len;
                } s; /* SOMBRA_STRING and SOMBRA_BYTES */
        } u;
};

struct sombra_prop {
        const char *key; /* NUL-terminated name */
        struct sombra_value value;
};

/* Edge directions, for neighbour queries and traversals. */
enum sombra_dir { SOMBRA_OUT = 1, SOMBRA_IN = 2, SOMBRA_BOTH = 3 };

/*
 * Durability. What a crash or a power loss can take away:
 *   FULL        nothing that was acknowledged;
 *   NORMAL      at most sync_interval acknowledged commits, always (a commit
 *               that would be one more waits for a sync, as in FULL); and
 *               commits are synced sync_interval_ms after they are written
 *               at the latest, plus the time the sync itself takes;
 *   CHECKPOINT  everything since the last checkpoint;
 *   OFF         everything not checkpointed (the WAL is never synced).
 */
enum sombra_sync_mode {
        SOMBRA_SYNC_FULL = 0,
        SOMBRA_SYNC_NORMAL = 1,
        SOMBRA_SYNC_CHECKPOINT = 2,
        SOMBRA_SYNC_OFF = 3
};

struct sombra_config {
        uint32_t size;      /* bytes of this struct in the caller's header: the presets set it */
        uint32_t page_size; /* bytes, power of two; used only when creating */
        enum sombra_sync_mode sync_mode;
        uint32_t sync_interval;         /* NORMAL: sync after this many commits */
        uint32_t sync_interval_ms;      /* NORMAL: ... or after this many milliseconds */
        uint32_t group_commit_delay_us; /* how long the fsync thread may wait to grow a group */
        uint64_t checkpoint_threshold;  /* WAL bytes after the last checkpoint that start one */
        uint32_t page_cache_size;       /* pages kept in memory, at least SOMBRA_MIN_CACHE_PAGES */
        uint32_t max_connections;       /* pooled handles */
        uint32_t ring_capacity;         /* requests in flight per handle, power of two */
        uint32_t txn_timeout_ms;        /* how long an interactive write txn may hold the writer;
                                           5000 (5 s) in every preset */
        bool checksums;                 /* verify page checksums on every read */
        bool metrics;   /* keep latency histograms and operation counts (sombra_metrics) */
        bool read_only; /* open for reading only, beside a writer in another process: see
                           sombra_open; since 0.3.0 (a smaller size means false) */
        /*
         * Write every group's pages for readers before answering it, so a
         * read never waits for them. False (every preset): while no reader
         * asks, the writer may publish as few as one group in 16, and the
         * first read after a run of writes waits for one publication
         * (README, "Deferred publication"). Since 0.3.0 (a smaller size
         * means false).
         */
        bool publish_every_group;
};

/* The fields of struct sombra_config in its first sized version, 0.2.0. */
#define SOMBRA_CONFIG_SIZE_MIN (offsetof(struct sombra_config, metrics) + sizeof(bool))

/*
 * Presets. Each fills *config completely (size bytes, sizeof(*config) through
 * the macros) and sets config->size; change any other field afterwards. A
 * config made without a preset must set size itself. production: FULL.
 * balanced: NORMAL, sync every 100 commits or 100 ms. benchmark: OFF.
 * SOMBRA_EINVAL when config is NULL or size is below SOMBRA_CONFIG_SIZE_MIN.
 * Any thread.
 */
SOMBRA_API int sombra_config_production_sized(struct sombra_config *config, size_t size);
SOMBRA_API int sombra_config_balanced_sized(struct sombra_config *config, size_t size);
SOMBRA_API int sombra_config_benchmark_sized(struct sombra_config *config, size_t size);
#define sombra_config_production(config) sombra_config_production_sized((config), sizeof(*(config)))
#define sombra_config_balanced(config)   sombra_config_balanced_sized((config), sizeof(*(config)))
#define sombra_config_benchmark(config)  sombra_config_benchmark_sized((config), sizeof(*(config)))

/* ---- databases and connections ---- */

typedef struct sombra_db sombra_db;
typedef struct sombra_conn sombra_conn;

/*
 * Opens (creating it when missing) the database at path, recovering it after
 * a crash, and starts the engine's threads. config NULL means production.
 * SOMBRA_EINVAL (bad argument or config, or path is a directory or anything
 * else that is not a regular file), SOMBRA_ENOTFOUND (its directory does not
 * exist), SOMBRA_ENOTDB (a non-empty file without a Sombra meta page; it is
 * left untouched), SOMBRA_ECORRUPT, SOMBRA_ELOCKED (open in another process,
 * or already open in this one), SOMBRA_EPERM (the database or its WAL cannot
 * be read and written), SOMBRA_EWAL (the file `<path>-wal` is not a Sombra
 * WAL, or is the WAL of another database: it is left untouched, and the
 * database opens once it is moved away), SOMBRA_EIO, SOMBRA_ENOMEM. Any
 * thread; blocks for the recovery. A config whose size is below
 * SOMBRA_CONFIG_SIZE_MIN gives SOMBRA_EINVAL.
 *
 * The WAL is the file `<path>-wal`, where <path> is the database's path with
 * symlinks resolved. It carries the database's id, so a WAL left beside a
 * new database, or beside a copy made by sombra_backup (which gets an id of
 * its own), is refused with SOMBRA_EWAL, never replayed into it. A WAL that
 * continues a newer state than the file holds (the file was replaced by an
 * older copy of itself, or its newest meta page is damaged) is
 * SOMBRA_ECORRUPT.
 *
 * Read-only (config->read_only): opens an existing database for reading
 * without its lock, so any number of processes can read while one process
 * (or none) writes. It shows the database as of this call: the newest
 * checkpoint plus the commits then in the WAL (written ones: a NORMAL or OFF
 * commit the owner has not written yet is not there). Nothing it does
 * changes a byte of the database or its WAL, not even when the WAL needs the
 * recovery of a crash: the replay stays in this process's memory. Writes,
 * transactions and sombra_checkpoint return SOMBRA_EREADONLY; reads, verify,
 * stats and sombra_backup work. While it is open, the writer keeps the pages
 * of the checkpoint it reads from reuse, so the file grows instead: close
 * read-only databases when done. Besides the errors above, SOMBRA_ENOTFOUND
 * for a missing file (nothing is created), SOMBRA_ENOTDB for an empty one,
 * and SOMBRA_EBUSY if the writer checkpointed under every one of many tries.
 * Needs Linux's open-file-description locks (local file systems).
 */
SOMBRA_API int sombra_open(const char *path, const struct sombra_config *config, sombra_db **out);

/*
 * Finishes every request in flight, makes every acknowledged commit as
 * durable as its mode promised, checkpoints, stops the threads and frees the
 * database. SOMBRA_EBUSY while connections are acquired, while another
 * thread is inside a call on db (sombra_conn_acquire waiting for a
 * connection, sombra_conn_release, sombra_backup, sombra_checkpoint,
 * sombra_verify, sombra_stats, sombra_metrics*), or while another close of db
 * is deciding: then nothing was closed or stopped and db stays fully usable;
 * call again once those calls have returned. A call on db that begins while
 * a close is deciding returns SOMBRA_ECLOSED, even if that close then
 * refuses. Returns the final checkpoint's status. Once it has freed the
 * database, db and every connection of it are dangling: no call can tell
 * them from live ones. Any thread; blocks.
 */
SOMBRA_API int sombra_close(sombra_db *db);

/*
 * Takes a connection from the pool without locks. sombra_conn_acquire waits
 * for one; sombra_conn_acquire_timeout waits at most timeout_ms (0: not at
 * all) and then fails with SOMBRA_EBUSY. Any thread.
 */
SOMBRA_API int sombra_conn_acquire(sombra_db *db, sombra_conn **out);
SOMBRA_API int sombra_conn_acquire_timeout(sombra_db *db, uint32_t timeout_ms, sombra_conn **out);

/*
 * Gives a connection back: an open interactive transaction is rolled back,
 * an open read transaction ended, asynchronous submissions waited for and
 * collected (their batches are free to change again). SOMBRA_ECLOSED for a
 * connection not acquired (released twice). Until the pool hands the
 * connection out again, every call on it returns SOMBRA_ECLOSED; after that
 * the pointer is the new holder's connection, so drop it at release. Any
 * thread.
 */
SOMBRA_API int sombra_conn_release(sombra_conn *conn);

/* ---- writes ----
 * Each call is one atomic transaction (autocommit), or a step of the
 * connection's interactive transaction when one is open. They block until the
 * commit is acknowledged: in FULL, after an fdatasync covers it (grouped with
 * other commits); in NORMAL, CHECKPOINT and OFF, once written. Any thread.
 * SOMBRA_ENOTFOUND for unknown ids, SOMBRA_EINVAL / SOMBRA_ETOOBIG for bad
 * names and values, SOMBRA_EFAILED after an I/O failure made the database
 * read-only, SOMBRA_ETIMEDOUT when the interactive transaction ran out of time.
 *
 * Ids: nodes and edges are numbered separately, each from 1, one more for
 * every node (edge) created, in commit order (in a batch, in the order of
 * its operations); *id gets the new one. An id is never given again once
 * its commit is durable (acknowledged, in FULL), not even after the node or edge is deleted
 * and the database reopened: the next ids are kept in the file. Ids taken
 * inside a transaction that rolled back (or failed) were never visible, and
 * the next commit takes them. sombra export writes these ids, but
 * sombra import numbers what it loads afresh (from the next ids of the
 * database it loads into; into a new database, 1, 2, ... in file order),
 * so an export of a database with deletions renumbers when imported.
 */
SOMBRA_API int sombra_node_create(sombra_conn *conn, const char *const *labels, size_t nlabels,
                                  const struct sombra_prop *props, size_t nprops, uint64_t *id);
/* Deletes the node and every edge that touches it. */
SOMBRA_API int sombra_node_delete(sombra_conn *conn, uint64_t id);
SOMBRA_API int sombra_node_set(sombra_conn *conn, uint64_t id, const char *key,
                               const struct sombra_value *value);
SOMBRA_API int sombra_node_unset(sombra_conn *conn, uint64_t id, const char *key);
SOMBRA_API int sombra_node_label_add(sombra_conn *conn, uint64_t id, const char *label);
SOMBRA_API int sombra_node_label_remove(sombra_conn *conn, uint64_t id, const char *label);
SOMBRA_API int sombra_edge_create(sombra_conn *conn, uint64_t src, uint64_t dst, const char *type,
                                  const struct sombra_prop *props, size_t nprops, uint64_t *id);
SOMBRA_API int sombra_edge_delete(sombra_conn *conn, uint64_t id);
SOMBRA_API int sombra_edge_set(sombra_conn *conn, uint64_t id, const char *key,
                               const struct sombra_value *value);
SOMBRA_API int sombra_edge_unset(sombra_conn *conn, uint64_t id, const char *key);
/* An equality and range index on property key of nodes labelled label. SOMBRA_EEXIST. */
SOMBRA_API int sombra_index_create(sombra_conn *conn, const char *label, const char *key);
SOMBRA_API int sombra_index_drop(sombra_conn *conn, const char *label, const char *key);

/* ---- batches ----
 * A batch is a list of writes built without touching the database (it copies
 * what it is given) and submitted as one atomic transaction. A node made by
 * the batch's i-th operation is named SOMBRA_BATCH_REF(i) by later
 * operations; a reference forward or out of range fails the whole batch with
 * SOMBRA_EINVAL. Builders return the new operation's reference in *ref (may
 * be NULL). A batch belongs to one thread at a time. While an asynchronous
 * submission of it is out (until its ticket is collected), the builders,
 * sombra_batch_reset and sombra_batch_free return SOMBRA_EBUSY and change
 * nothing.
 */
typedef struct sombra_batch sombra_batch;
#define SOMBRA_BATCH_REF(i) ((uint64_t)(i) | (1ull << 63))

SOMBRA_API int sombra_batch_new(sombra_batch **out);
SOMBRA_API int sombra_batch_free(sombra_batch *batch);
/* Empties the batch for reuse, keeping its memory. */
SOMBRA_API int sombra_batch_reset(sombra_batch *batch);
SOMBRA_API int sombra_batch_node_create(sombra_batch *batch, const char *const *labels,
                                        size_t nlabels, const struct sombra_prop *props,
                                        size_t nprops, uint64_t *ref);
SOMBRA_API int sombra_batch_edge_create(sombra_batch *batch, uint64_t src, uint64_t dst,
                                        const char *type, const struct sombra_prop *props,
                                        size_t nprops, uint64_t *ref);
SOMBRA_API int sombra_batch_node_set(sombra_batch *batch, uint64_t id, const char *key,
                                     const struct sombra_value *value);
SOMBRA_API int sombra_batch_node_delete(sombra_batch *batch, uint64_t id);
SOMBRA_API int sombra_batch_edge_delete(sombra_batch *batch, uint64_t id);
/* Submits and waits, like a single write. */
SOMBRA_API int sombra_batch_submit(sombra_conn *conn, sombra_batch *batch);
/*
 * Submits without waiting: *ticket names the submission for sombra_wait and
 * sombra_poll. The batch cannot be changed or freed until then. With
 * nonblocking set, a full queue gives SOMBRA_EAGAIN instead of waiting;
 * SOMBRA_EAGAIN also when ring_capacity tickets are out and not collected;
 * SOMBRA_EBUSY inside an interactive transaction (use sombra_batch_submit).
 */
SOMBRA_API int sombra_batch_submit_async(sombra_conn *conn, sombra_batch *batch, bool nonblocking,
                                         uint64_t *ticket);
/*
 * Waits for a ticket; returns the batch's status. SOMBRA_EINVAL for an
 * unknown ticket: one collected already, or another connection's.
 */
SOMBRA_API int sombra_wait(sombra_conn *conn, uint64_t ticket);
/* *done tells whether the ticket finished; if so, returns its status and forgets it. */
SOMBRA_API int sombra_poll(sombra_conn *conn, uint64_t ticket, bool *done);
/* After a successful submit: the id the operation ref made. */
SOMBRA_API int sombra_batch_id(const sombra_batch *batch, uint64_t ref, uint64_t *id);

/* ---- interactive write transactions ----
 * Between begin and commit or rollback, the connection's writes are one
 * transaction and its reads see them. The writer serves only this
 * transaction meanwhile, for at most txn_timeout_ms; then it rolls it back and
 * the next call on the connection gets SOMBRA_ETIMEDOUT. SOMBRA_EBUSY for a
 * second begin, SOMBRA_ENOTXN for commit or rollback without one.
 * A write that fails inside the transaction leaves it as it was, except a
 * batch that fails after some of its operations were applied: those cannot
 * be taken out alone, so the transaction can then only roll back (later
 * writes and the commit return the batch's status; the commit rolls back).
 * The transaction is the connection's, not the thread's: any thread using
 * the connection writes into it, and may commit or roll it back.
 */
SOMBRA_API int sombra_txn_begin(sombra_conn *conn);
SOMBRA_API int sombra_txn_commit(sombra_conn *conn);
SOMBRA_API int sombra_txn_rollback(sombra_conn *conn);

/* ---- reads ----
 * On the calling thread, against the newest published commit (inside an
 * interactive transaction: its own state). Results live in the connection
 * and stay valid until its next read. sombra_read_begin / sombra_read_end
 * make a read transaction: every read between them sees one commit.
 */
struct sombra_entity {
        uint64_t id;
        uint64_t src, dst; /* edges */
        const char *type;  /* edges */
        size_t nlabels;
        const char *const *labels;
        size_t nprops;
        const struct sombra_prop *props;
};

struct sombra_neighbor {
        uint64_t edge;
        uint64_t node;
        const char *type;
        enum sombra_dir dir;
};

/*
 * Read transactions nest. sombra_read_end without a matching begin gives
 * SOMBRA_ENOTXN; inside an interactive write transaction both succeed and do
 * nothing (its reads already see one state, its own).
 */
SOMBRA_API int sombra_read_begin(sombra_conn *conn);
SOMBRA_API int sombra_read_end(sombra_conn *conn);
SOMBRA_API int sombra_node_get(sombra_conn *conn, uint64_t id, const struct sombra_entity **out);
SOMBRA_API int sombra_edge_get(sombra_conn *conn, uint64_t id, const struct sombra_entity **out);
/* Neighbours over edges of the given types (ntypes 0: any). */
SOMBRA_API int sombra_neighbors(sombra_conn *conn, uint64_t node, enum sombra_dir dir,
                                const char *const *types, size_t ntypes,
                                const struct sombra_neighbor **out, size_t *n);
SOMBRA_API int sombra_degree(sombra_conn *conn, uint64_t node, enum sombra_dir dir,
                             const char *const *types, size_t ntypes, uint64_t *degree);
SOMBRA_API int sombra_nodes_by_label(sombra_conn *conn, const char *label, const uint64_t **ids,
                                     size_t *n);
/* Need an index on (label, key); SOMBRA_ENOTFOUND without. Bounds inclusive, NULL open. */
SOMBRA_API int sombra_nodes_by_prop(sombra_conn *conn, const char *label, const char *key,
                                    const struct sombra_value *value, const uint64_t **ids,
                                    size_t *n);
SOMBRA_API int sombra_nodes_by_range(sombra_conn *conn, const char *label, const char *key,
                                     const struct sombra_value *lo, const struct sombra_value *hi,
                                     const uint64_t **ids, size_t *n);
SOMBRA_API int sombra_count(sombra_conn *conn, uint64_t *nodes, uint64_t *edges);
/*
 * Scans: at most max ids of nodes (sombra_node_ids) or edges
 * (sombra_edge_ids) greater than after, ascending; *n < max at the end.
 * Start from 0 and pass the last id back; inside a read transaction the
 * pages see one commit. SOMBRA_EINVAL when max is 0.
 */
SOMBRA_API int sombra_node_ids(sombra_conn *conn, uint64_t after, size_t max, const uint64_t **ids,
                               size_t *n);
SOMBRA_API int sombra_edge_ids(sombra_conn *conn, uint64_t after, size_t max, const uint64_t **ids,
                               size_t *n);
/*
 * Traversals follow edges in direction dir from the node (SOMBRA_IN: edges
 * into it, walked backwards; SOMBRA_BOTH: either way), over edges of the
 * given types only (ntypes 0: any; at most 64 types). Each sees one commit.
 * On any error *ids, *n and *count are left as they were.
 *
 * sombra_bfs: every node at most max_depth edges from start, each once:
 * start first, then the nodes at distance 1, then 2, and so on (distance:
 * the fewest edges); the order within one distance is not specified.
 * max_depth 0 gives start alone; UINT32_MAX, everything reachable.
 * SOMBRA_ENOTFOUND when start does not exist.
 */
SOMBRA_API int sombra_bfs(sombra_conn *conn, uint64_t start, enum sombra_dir dir,
                          const char *const *types, size_t ntypes, uint32_t max_depth,
                          const uint64_t **ids, size_t *n);
/*
 * A path with the fewest edges from `from` to `to`: its nodes in order,
 * both ends included (*n is its edge count plus one; from == to gives that
 * node alone). Among equally short paths, one of them. SOMBRA_ENOTFOUND
 * when there is no such path, and also when either end does not exist
 * (sombra_node_get tells the two apart).
 */
SOMBRA_API int sombra_shortest_path(sombra_conn *conn, uint64_t from, uint64_t to,
                                    enum sombra_dir dir, const char *const *types, size_t ntypes,
                                    const uint64_t **ids, size_t *n);
/*
 * How many distinct nodes end a walk of exactly two edges from node,
 * node itself not counted. A node reached by several walks counts once,
 * and a node one edge away counts too when a two-edge walk also ends
 * there (a->b->c with a->c counts c): this is not the number of nodes at
 * distance 2, nor of paths. SOMBRA_ENOTFOUND when node does not exist.
 */
SOMBRA_API int sombra_two_hop_count(sombra_conn *conn, uint64_t node, enum sombra_dir dir,
                                    const char *const *types, size_t ntypes, uint64_t *count);

/* ---- maintenance ---- */

/*
 * Checkpoints now (through the writer), after any automatic checkpoint under
 * way, and starts the WAL anew: writes pause for its syncs, unlike the
 * automatic ones, which run beside the writer. Any thread; blocks. Like
 * sombra_verify and sombra_stats, it waits behind another connection's open
 * interactive transaction (at most txn_timeout_ms): do not call these from the
 * thread that holds one.
 */
SOMBRA_API int sombra_checkpoint(sombra_db *db);

/*
 * Checks the whole database (tree structure, checksums, every page used once
 * or free, adjacency symmetry, label and property indexes, counts), through
 * the writer. SOMBRA_OK when healthy; SOMBRA_ECORRUPT with a sentence in
 * problem (may be NULL) when not. Any thread; blocks, and holds the writer
 * for the duration.
 */
SOMBRA_API int sombra_verify(sombra_db *db, char *problem, size_t problem_len);

/*
 * Copies the database, as of one commit, to a new file at dest_path
 * (with no WAL: the copy is checkpointed), and fsyncs it and its directory.
 * Writers are not stopped: the call checkpoints through the writer, then
 * copies that checkpoint's image from the file on the calling thread while
 * commits go on into the WAL; checkpoints wait until the copy is done
 * (sombra_checkpoint returns SOMBRA_EBUSY meanwhile). The copy holds every
 * commit acknowledged before the call, maybe some made during it, never
 * part of one. SOMBRA_EEXIST when dest_path exists, SOMBRA_ENOTFOUND when
 * its directory does not, SOMBRA_EIO, SOMBRA_ENOSPC, SOMBRA_EPERM; a failed
 * copy is removed. Any thread; blocks for the checkpoint and the copy.
 */
SOMBRA_API int sombra_backup(sombra_db *db, const char *dest_path);

/*
 * sombra_backup, compacted: the same contract (one commit's state, writers
 * not stopped, checkpoints wait, no WAL, an id of its own, fsynced, the same
 * errors, a failed copy removed; also through a read-only open), but the
 * copy is written tree by tree rather than byte for byte: every B+tree is
 * rebuilt from its entries in key order into full pages, and the file has
 * no free pages. After deletions or a bulk load it is much smaller than the
 * source. It takes longer than sombra_backup (every entry is read and
 * written; reads check page checksums, so a damaged page gives
 * SOMBRA_ECORRUPT), and its full pages split at the first insert into them,
 * so a copy that takes many writes grows back faster. The live file is never
 * shrunk: to use the copy in its place, close every open of the database,
 * rename the copy over it, and leave no -wal file beside it. Any thread;
 * blocks for the checkpoint and the copy. Since 0.3.0.
 */
SOMBRA_API int sombra_backup_compact(sombra_db *db, const char *dest_path);

struct sombra_stats {
        uint64_t nodes, edges;
        uint64_t commits, rollbacks, checkpoints;
        uint64_t wal_bytes, wal_syncs;
        uint64_t written_lsn, durable_lsn;
        uint64_t group_syncs;   /* fdatasyncs that acknowledge FULL commits, on either thread */
        uint64_t group_commits; /* FULL commits those syncs acknowledged */
        uint64_t max_group;     /* the largest group one sync acknowledged */
        uint64_t requests;      /* write requests the writer served */
        uint64_t writer_groups; /* groups it applied between two publishes */
        uint64_t txn_timeouts;  /* interactive transactions it rolled back on timeout */
        uint64_t cache_hits, cache_misses, cache_evictions;
        uint64_t file_bytes;
        uint64_t wal_size;      /* bytes in the WAL since the last checkpoint */
        uint32_t page_size;     /* bytes */
        uint64_t pages;         /* in the file, the two meta pages included */
        uint64_t free_pages;    /* reusable now */
        uint64_t retired_pages; /* unreachable, waiting for readers or a checkpoint */
        uint64_t cached_pages, dirty_pages;
        /* since 0.2.0 */
        uint64_t acquired; /* connections held by callers now (sombra_close refuses meanwhile) */
        /* since 0.3.0 */
        uint64_t publisher_groups; /* groups whose pages the publisher thread wrote */
        /*
         * How this open recovered (0.3.0): the LSN of the state it took over
         * from the file after a crash of the process alone (0: none, the log
         * was replayed from the checkpoint), the commits it replayed from the
         * log, and the log bytes it read to find that state.
         */
        uint64_t recovered_lsn, recovered_commits, recovery_log_bytes;
        /*
         * Groups answered before their pages were written for readers
         * (0.3.0): while no reader asks, the writer may publish as few as
         * one group in 16, and a reader that finds a commit unpublished
         * waits for it (README, "Deferred publication").
         */
        uint64_t unpublished_groups;
};

/* The fields of struct sombra_stats in 0.1.0, the smallest layout the library fills. */
#define SOMBRA_STATS_SIZE_MIN (offsetof(struct sombra_stats, dirty_pages) + sizeof(uint64_t))

/*
 * Counters so far; approximate while the engine runs. The macro passes
 * sizeof(*out) as size (see "Sizes"). SOMBRA_EINVAL for NULL arguments or a
 * size below SOMBRA_STATS_SIZE_MIN. Any thread.
 */
SOMBRA_API int sombra_stats_sized(sombra_db *db, struct sombra_stats *out, size_t size);
#define sombra_stats(db, out) sombra_stats_sized((db), (out), sizeof(*(out)))

/* ---- metrics ----
 * The engine counts as it goes without taking locks on the paths of reads
 * and commits: per-connection counters and histograms, updated with relaxed
 * atomics by the thread that holds the connection, and the writer's and the
 * committer's own, merged when someone asks. With config.metrics false (the
 * presets set it true) the latency histograms and operation counts stay at
 * zero and cost nothing; the engine's other counters are kept either way.
 * Latencies are recorded in log-linear buckets (eight per power of two), so
 * a percentile is the upper bound of its bucket: at most 12.5% above the
 * true value, and never above the maximum, which is exact.
 */
enum sombra_op_kind {
        /* writes, counted when the writer applied them */
        SOMBRA_OP_NODE_CREATE,
        SOMBRA_OP_NODE_DELETE,
        SOMBRA_OP_NODE_SET,
        SOMBRA_OP_NODE_UNSET,
        SOMBRA_OP_LABEL_ADD,
        SOMBRA_OP_LABEL_REMOVE,
        SOMBRA_OP_EDGE_CREATE,
        SOMBRA_OP_EDGE_DELETE,
        SOMBRA_OP_EDGE_SET,
        SOMBRA_OP_EDGE_UNSET,
        SOMBRA_OP_INDEX_CREATE,
        SOMBRA_OP_INDEX_DROP,
        /* reads, counted when they return, whatever their status */
        SOMBRA_OP_NODE_GET,
        SOMBRA_OP_EDGE_GET,
        SOMBRA_OP_NEIGHBORS,
        SOMBRA_OP_DEGREE,
        SOMBRA_OP_COUNT,
        SOMBRA_OP_TWO_HOP_COUNT,
        SOMBRA_OP_NODES_BY_LABEL,
        SOMBRA_OP_NODES_BY_PROP,
        SOMBRA_OP_NODES_BY_RANGE,
        SOMBRA_OP_BFS,
        SOMBRA_OP_SHORTEST_PATH,
        SOMBRA_OP_KINDS
};

/*
 * "node_create", "bfs", ...: the kind's name in the exports; NULL when out of
 * range. Any thread; never blocks.
 */
SOMBRA_API const char *sombra_op_name(enum sombra_op_kind kind);

/* A distribution of samples: latencies in nanoseconds, or plain counts. */
struct sombra_distribution {
        uint64_t count; /* samples */
        uint64_t sum;   /* of all samples */
        uint64_t p50, p90, p99, p999;
        uint64_t max;
};

struct sombra_metrics {
        double uptime_seconds; /* since sombra_open */
        uint64_t commits, rollbacks;
        /* Over the time since the previous call at least a second ago (since open at first). */
        double commits_per_second;
        uint64_t ops[SOMBRA_OP_KINDS]; /* by enum sombra_op_kind */
        uint64_t wal_bytes;            /* appended to the WAL since open */
        uint64_t fsyncs;               /* fdatasyncs of the WAL */
        struct sombra_distribution
            commits_per_fsync; /* FULL commits each group sync acknowledged */
        uint64_t checkpoints;
        double checkpoint_seconds;     /* spent checkpointing, in total */
        double checkpoint_max_seconds; /* the longest checkpoint */
        /* The writer's page cache. Readers read committed pages through a map, not the cache. */
        uint64_t cache_hits, cache_misses, cache_evictions;
        double cache_hit_rate; /* hits / (hits + misses), 0 before any lookup */
        uint64_t pages_read, pages_written;
        uint64_t bytes_read;         /* pages read into the cache */
        uint64_t bytes_written;      /* pages written back plus WAL bytes */
        uint64_t ring_depth;         /* requests waiting for the writer now */
        uint64_t backpressure_waits; /* submissions that found their ring full and waited */
        struct sombra_distribution writer_group;      /* commits the writer applied per group */
        struct sombra_distribution read_latency_ns;   /* a read call, on the caller's thread */
        struct sombra_distribution commit_latency_ns; /* a write, from submit to acknowledgement */
        struct sombra_distribution fsync_latency_ns;  /* the group fdatasyncs (see group_syncs) */
};

/* The fields of struct sombra_metrics in its first sized version, 0.2.0. */
#define SOMBRA_METRICS_SIZE_MIN                                                                    \
        (offsetof(struct sombra_metrics, fsync_latency_ns) + sizeof(struct sombra_distribution))

/*
 * Fills *out with the metrics so far. Goes through the writer thread, like
 * sombra_stats (so it waits behind an open interactive transaction of
 * another connection). The macro passes sizeof(*out) as size (see "Sizes").
 * SOMBRA_EINVAL for NULL arguments or a size below SOMBRA_METRICS_SIZE_MIN.
 * Any thread; blocks briefly.
 */
SOMBRA_API int sombra_metrics_sized(sombra_db *db, struct sombra_metrics *out, size_t size);
#define sombra_metrics(db, out) sombra_metrics_sized((db), (out), sizeof(*(out)))

/*
 * The same metrics as text: a JSON object (sombra_metrics_json), or the
 * Prometheus text exposition format, version 0.0.4, every name starting with
 * sombra_ (sombra_metrics_prometheus). The text and its terminating NUL go to
 * buf, of len bytes; *needed (may be NULL when buf is not) gets the bytes
 * that takes, NUL included. SOMBRA_ETOOBIG when len is smaller: buf then
 * holds a truncated, NUL-terminated prefix (nothing when len is 0), and a
 * buffer of *needed bytes, plus room for numbers to grow, will do next time.
 * buf NULL with len 0 asks for the size only: SOMBRA_ETOOBIG and *needed
 * (needed must not be NULL then). SOMBRA_EINVAL for a NULL db, a NULL buf
 * with len > 0, or a size query without needed. Other errors as
 * sombra_metrics. Any thread; blocks briefly.
 */
SOMBRA_API int sombra_metrics_json(sombra_db *db, char *buf, size_t len, size_t *needed);
SOMBRA_API int sombra_metrics_prometheus(sombra_db *db, char *buf, size_t len, size_t *needed);

#ifdef __cplusplus
}
#endif

#endif /* SOMBRA_H */
