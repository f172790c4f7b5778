/*
 * store.h - the storage engine: one database file of B+trees, its WAL,
 * transactions, checkpoints and recovery.
 *
 * A store holds STORE_TREES named B+trees and a few counters; together they
 * are a `struct store_state`. The committed state only changes at commit, and
 * its pages never change afterwards, so a reader may use a copy of it while
 * the writer works on the next one. One thread (the writer) calls everything
 * that writes; store_get and cursors over a committed state only read pages.
 */
#ifndef SOMBRA_STORE_H
#define SOMBRA_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sombra.h"
#include "btree.h"
#include "io.h"

enum store_tree {
        /* The first four trees' keys are compact or fixed: record.h, store_compact_keys. */
        TREE_NODES,    /* node -> node record */
        TREE_EDGES,    /* edge -> edge record */
        TREE_ADJ,      /* node | u8 dir | type | edge -> neighbour */
        TREE_LABELS,   /* label | node -> empty */
        TREE_NAMES,    /* name bytes -> u32 name id */
        TREE_NAME_IDS, /* u32 name id -> name bytes */
        TREE_PROPS,    /* property index keys (record.h) -> empty */
        TREE_INDEXES,  /* u32 label | u32 key -> empty: the indexes that exist */
        STORE_TREES
};

struct store_state {
        pgno_t roots[STORE_TREES];
        uint64_t next_node; /* ids are handed out increasing and never reused */
        uint64_t next_edge;
        uint64_t nodes; /* live counts */
        uint64_t edges;
        uint32_t next_name;
        uint64_t lsn; /* the last commit included */
};

struct store_stats {
        uint64_t commits, rollbacks, checkpoints, replayed;
        uint64_t adopted; /* at open: the LSN of the state taken over from the file (0: none) */
        uint64_t scanned; /* at open: log bytes read looking for the last note (recovery) */
        uint64_t checkpoint_ns, checkpoint_max_ns; /* time spent in checkpoints: total, longest */
        uint64_t publish_failures; /* write-backs that failed; readers stayed on an older state */
        uint64_t group_redos;      /* rollbacks in a group that applied its commits again */
        uint64_t wal_bytes;        /* appended since open */
        uint64_t wal_size;         /* log bytes after the last checkpoint's place */
        uint64_t wal_syncs;
        uint64_t written_lsn, durable_lsn, checkpoint_lsn;
        uint64_t file_bytes;
};

struct store;

/*
 * Opens (creating when missing or empty) the database at path: reads the
 * newest valid meta page and replays the WAL after it (recover() in store.c
 * says what else it may write). `faults` (tests only, may be NULL) is
 * attached to both files. With cfg->read_only, opens an existing database
 * beside its writer and writes neither file (store.c, "Readers in other
 * processes"); writes and store_checkpoint then return SOMBRA_EREADONLY.
 * SOMBRA_ENOTDB, SOMBRA_ECORRUPT, SOMBRA_ELOCKED, SOMBRA_EPERM, SOMBRA_EIO,
 * SOMBRA_EINVAL (bad config), SOMBRA_ENOMEM; read-only also SOMBRA_ENOTFOUND
 * and SOMBRA_EBUSY.
 */
int store_open(const char *path, const struct sombra_config *cfg, struct io_faults *faults,
               struct store **out);
/*
 * Checkpoints (unless the store has failed), then frees everything. An open
 * transaction is rolled back first. Returns the checkpoint's status, or
 * SOMBRA_EFAILED for a store that had failed; the store is freed either way.
 */
int store_close(struct store *s);

/* Write transactions: one at a time. SOMBRA_EBUSY if one is open, SOMBRA_EFAILED after an I/O
 * failure. */
int store_begin(struct store *s);
/*
 * A transaction in the writer's group: consecutive ones share one pager
 * transaction, so a page is copied once for the group, not once for each of
 * them, and later ones change in place what earlier ones wrote. Each still
 * commits (its own WAL record and LSN) or rolls back on its own: a rollback
 * that had changed pages undoes the whole pager transaction and applies
 * again the group's commits, from their records still waiting for
 * store_flush_log. store_group_end ends the group; so do store_begin and a
 * checkpoint. Until it ends, no commit of the group may be published.
 */
int store_begin_shared(struct store *s);
/*
 * Ends the group (when no transaction is open): its pages become committed
 * ones, and a checkpoint follows when the WAL has passed its threshold (with
 * background checkpoints, its restart bound: see below). Before
 * store_flush_log and store_publish.
 */
void store_group_end(struct store *s);
/*
 * Appends the transaction to the WAL and makes it the committed state.
 * With autopublish on (the default) the record is written (not synced) and
 * the state published before this returns; with it off, the record waits for
 * store_flush_log. *lsn (may be NULL) gets its LSN. On failure the
 * transaction is rolled back and nothing of it remains.
 */
int store_commit(struct store *s, uint64_t *lsn);
void store_rollback(struct store *s);
bool store_in_txn(const struct store *s);
/*
 * Leaves the open transaction able only to roll back: later writes return
 * status, and so does store_commit, which rolls it back. For a caller that
 * cannot undo part of what it applied (there are no savepoints).
 */
void store_poison(struct store *s, int status);

/* The open transaction's working state; graph code updates its counters. */
struct store_state *store_txn_state(struct store *s);
const struct store_state *store_committed(const struct store *s);

/* Writes inside the open transaction (SOMBRA_ENOTXN otherwise). */
int store_put(struct store *s, enum store_tree t, const void *key, size_t klen, const void *val,
              size_t vlen);
int store_del(struct store *s, enum store_tree t, const void *key, size_t klen);

/* Reads against a state (committed, or the transaction's own). */
int store_get(struct store *s, const struct store_state *st, enum store_tree t, const void *key,
              size_t klen, struct buf *val);
void store_cursor(struct store *s, const struct store_state *st, enum store_tree t,
                  struct btree_cursor *c);

/*
 * Snapshot readers: any thread, one thread per reader at a time, never
 * blocked by the writer. store_reader_begin pins the newest published state
 * until the matching store_reader_end (begins nest); read it with the
 * reader's pager (store_reader_pager) through btree_get and cursors, or with
 * store_reader_get. A reader holding an old state only delays page reuse.
 * store_reader_open: SOMBRA_EBUSY when every slot (max_connections + 8) is
 * taken. Close a reader before closing the store.
 */
struct store_reader;
int store_reader_open(struct store *s, struct store_reader **out);
void store_reader_close(struct store_reader *r);
/*
 * NULL (and nothing pinned) when the store failed before it could publish
 * the commits answered unpublished (store_publish_skip): a reader never
 * gets a state without them. Until they are published it waits.
 */
const struct store_state *store_reader_begin(struct store_reader *r);
void store_reader_end(struct store_reader *r);
struct pager *store_reader_pager(struct store_reader *r);

/*
 * Writer: makes the committed state the one new readers get (store_commit
 * does this itself while autopublish is on), writing the pages it needs to
 * the file first, and reuses what no reader can reach any more.
 */
int store_publish(struct store *s);
/*
 * store_publish in three steps, so that a thread of the caller's writes the
 * pages while the writer goes on with the next commits:
 *   store_publish_begin   writer: hands the committed state and its dirty
 *                         pages to a publication (*out; NULL when there is
 *                         nothing new to publish). It first settles the one
 *                         before: one publication at a time, in order.
 *   store_publish_write   any one thread: writes the pages and, when they
 *                         are all in the file, makes the state the newest for
 *                         readers. With fail_store, a failure (tried twice)
 *                         fails the store. Its return is also the settle's.
 *   store_publish_settle  writer: waits for the write to finish and takes
 *                         the pages back; then reuses what readers cannot
 *                         reach. A checkpoint and store_close settle first.
 * The writer may go on committing in between: a publication's pages are
 * committed ones, which the writer never changes, and pages that its state
 * retires wait for the state to be published and read no more (store.c).
 */
struct store_publication {
        struct page **frames; /* pager_write_take's: pinned until the settle */
        size_t n, written;
        uint64_t npages;             /* the file's pages the state may reach */
        struct store_snapshot *snap; /* the state, until published */
        int rc;                      /* store_publish_write's */
        uint32_t done;               /* futex_once word: the pages are written */
};
int store_publish_begin(struct store *s, struct store_publication **out);
int store_publish_write(struct store *s, struct store_publication *pub, bool fail_store);
int store_publish_settle(struct store *s);
/*
 * store_publish for a writer that acknowledges a commit only once readers
 * can see it (the engine): a failed publish is tried once more, and a second
 * failure fails the store (SOMBRA_EFAILED from then on) and is returned.
 */
int store_publish_or_fail(struct store *s);
/*
 * Writer, for a group whose commits it answers unpublished, once they are in
 * the log, before the answers: from now on no reader begins on an older
 * state (it asks for a publication through the hook and waits, in
 * store_reader_begin). So pages its commits wrote and superseded since the
 * last publication go free at once, unwritten, and so do pages of older
 * states unless a reader holds one. The next publication then writes over
 * pages of the state the last note names, so it writes its own note at
 * once (store_publish_settle). The state is remembered: after a store
 * failure store_publish_begin still publishes it, where it refuses the rest.
 * It first settles the publication under way. Not after a failure
 * (SOMBRA_EFAILED), nor before the first publication (SOMBRA_EINVAL): the
 * group must then be published, or refused, as usual.
 */
int store_publish_skip(struct store *s);
/*
 * Writer, before a skip: in *out, the retired pages a skip now would leave
 * waiting for readers, those retired after the oldest snapshot a reader
 * holds (none when no reader holds one). An estimate: a reader that begins
 * meanwhile is not counted, and pages born after its snapshot are. Settles
 * the publication under way first; its failure is returned.
 */
int store_held_pages(struct store *s, uint64_t *out);
/* Called by a reader thread that waits for a publication (store_publish_skip); set before any. */
void store_set_publish_hook(struct store *s, void (*want_publish)(void *arg), void *arg);
/*
 * Writer, once the store has failed: publishes what store_publish_begin
 * still may, then tells every reader waiting in store_reader_begin that
 * nothing newer will come.
 */
void store_publish_last(struct store *s);
/*
 * With autopublish off, store_commit leaves publishing to the caller, who can
 * then publish once for a group of commits (the engine's writer does).
 */
void store_set_autopublish(struct store *s, bool on);
/*
 * With autopublish off, commits wait in memory for one write of the whole
 * group: store_flush_log writes them. It must come before anything tells a
 * caller that its commit is written (and before store_publish). A failure
 * makes the store refuse writes (SOMBRA_EFAILED): those commits are in memory
 * but not in the log.
 */
int store_flush_log(struct store *s);

/*
 * fdatasync of the WAL: every commit written to it before the call (at once
 * with autopublish, otherwise by store_flush_log) is durable after it.
 * One of the two store functions that another thread (the committer) may
 * call while the writer works; store_checkpoint_write is the other.
 */
int store_sync(struct store *s);
/*
 * Room past the log for the syncs to come (wal.h, "Room ahead"), for a
 * caller whose commits are synced one group at a time. Writer, after
 * store_flush_log: the size to grow the log file to, or 0 when none is due
 * (wal_room_wanted). store_log_grow: one other thread, the growth itself; a
 * failure costs only speed.
 */
uint64_t store_log_room(struct store *s);
void store_log_grow(struct store *s, uint64_t to);
/* The last LSN a completed sync (or checkpoint) made durable. Any thread. */
uint64_t store_durable_lsn(const struct store *s);

/*
 * Writes every changed page to free space, syncs, writes the other meta page,
 * syncs, and restarts the WAL. SOMBRA_EBUSY inside a transaction,
 * SOMBRA_EREADONLY in a read-only store.
 */
int store_checkpoint(struct store *s);

/*
 * Background checkpoints, for a writer with a thread to spare (the engine).
 * A checkpoint's syncs are most of its time; these run on another thread
 * while the writer goes on, and leave the WAL as it is: the meta page names
 * the place in the log where its state ends, and recovery replays from
 * there. So recovery replays at most about checkpoint_threshold bytes of
 * log, while commits never wait for a checkpoint's syncs. The log file only
 * restarts at a checkpoint on the writer: store_checkpoint, close, a backup,
 * or the automatic one when the file holds STORE_WAL_RESTART times
 * checkpoint_threshold, and STORE_WAL_RESTART_MIN at least (each restart
 * stops the writer for its syncs). Three steps, like a publication:
 *   store_checkpoint_begin   writer, between transactions: when the log holds
 *                            checkpoint_threshold bytes after the last
 *                            checkpoint's place and no checkpoint is under
 *                            way, writes the committed state's pages and a
 *                            new free list (no sync) and hands the rest out
 *                            (*out; else NULL). Settles the publication
 *                            under way first. A failure fails the store.
 *   store_checkpoint_write   any one thread: syncs the file, writes the meta
 *                            page and syncs again.
 *   store_checkpoint_settle  writer: once the write has finished (with
 *                            `wait`, after waiting for it), the new meta page
 *                            is the store's and pages only the older one
 *                            reached go free; a failed write fails the store
 *                            and is returned. Without `wait`, nothing happens
 *                            inside a transaction. store_checkpoint, backups
 *                            and store_close settle first.
 */
#define STORE_WAL_RESTART     4u /* log file bytes, in checkpoint_threshold */
#define STORE_WAL_RESTART_MIN (1u << 20)
struct store_ckpt;
void store_set_background_checkpoints(struct store *s, bool on);
int store_checkpoint_begin(struct store *s, struct store_ckpt **out);
void store_checkpoint_write(struct store *s, struct store_ckpt *c);
int store_checkpoint_settle(struct store *s, bool wait);

/*
 * A consistent copy of the database file, taken by another thread while the
 * writer goes on. store_backup_begin (writer) checkpoints and holds further
 * checkpoints off (store_checkpoint returns SOMBRA_EBUSY, automatic ones
 * wait); *bytes is the length of the image that the new meta page describes.
 * store_backup_read (any thread, pread) copies from that image; the bytes
 * below *bytes do not change until store_backup_end (writer) releases the
 * hold. Begin and end pair up; holds nest.
 */
int store_backup_begin(struct store *s, uint64_t *bytes);
int store_backup_read(struct store *s, void *buf, size_t len, uint64_t off);
void store_backup_end(struct store *s);
/*
 * Instead of copying the held image byte for byte, writes into dest (an
 * empty file) a database with the same state and no free pages: every tree
 * rebuilt from its entries in key order into full pages (btree_build), then
 * both meta pages. Any thread, while held, like store_backup_read; it does
 * not sync. Read and write errors, SOMBRA_ECORRUPT for a damaged page of the
 * image, SOMBRA_ENOMEM.
 */
int store_backup_compact(struct store *s, struct io_file *dest);
/* The fault state given to store_open (tests; else NULL), for a backup's own file. */
struct io_faults *store_faults(const struct store *s);

struct pager *store_pager(struct store *s);
uint32_t store_page_size(const struct store *s);
/* Whether the keys are compact (record.h, meta format 5 and later): fixed in older files. */
bool store_compact_keys(const struct store *s);
void store_stats(const struct store *s, struct store_stats *out);
/* The sticky failure status (SOMBRA_OK while healthy). */
int store_failure(const struct store *s);
/* The free-list head of the last durable meta page (verify, with no checkpoint under way). */
pgno_t store_freelist_head(const struct store *s);

#endif
