/*
 * wal.h - the write-ahead log: one logical record per committed transaction.
 *
 * File `NAME-wal`, where NAME is the database's path with symlinks resolved:
 *   header, 64 bytes at offset 0:
 *     0  8  magic "SOMBRWAL"
 *     8  4  format version (3; 2 is still read, and gets no notes)
 *     12 4  zero
 *     16 8  salt: the generation, random and new at every reset
 *     24 8  base LSN: the LSN of the first record after this header
 *     32 8  database id (the meta page's): whose log this is
 *     40 8  checkpoint generation: the meta page's that started this log
 *     48 8  XXH3-64 of bytes 0..48
 *     56 8  zero
 *   records, back to back from offset 64:
 *     0  8  checksum: XXH3-64 of bytes 8..24+len, seeded with the previous
 *           record's checksum (with the salt for the first record)
 *     8  4  payload length
 *     12 4  record type: 1 commit, 2 restart, 3 note
 *     16 8  LSN: base LSN for the first commit, then one more each; a
 *           restart or a note has the LSN of the commit after it
 *     24    payload: a commit's transaction (store.c's encoding); a
 *           restart's 8 random bytes; a note's, store.c's (a state that
 *           the database file holds, see recover_from_note)
 *   All integers big-endian.
 *
 * Generations. A reset (after a checkpoint on the writer thread; one beside
 * it leaves the log as it is) writes a new header with a new salt, which the
 * checkpoint's meta page names first, and starts overwriting from offset 64:
 * the file keeps its blocks, so a commit's fdatasync flushes data, not
 * file-size metadata. Reading stops at the first record that is
 * torn, stale or out of sequence. Two things keep a stale record from ever
 * passing for a new one:
 *   - the salt: leftovers of an earlier generation fail their checksum;
 *   - the chain: within a generation, a record's checksum covers its
 *     predecessor's, so an intact old record found where a new one was
 *     expected fails too. (Without it, recovery that stopped at a torn
 *     record and new commits written over it from the same offset could
 *     line up with an intact record beyond them and replay it.)
 * A chain alone is not enough: a commit written again after a crash can be
 * byte for byte the one that was torn (the same retry, the same ids), and
 * the intact old records after it would then chain on. So wherever
 * recovery stops short of the end of the file, a restart record goes first,
 * synced: its random bytes make the chain after it new. (Cutting the file
 * there would do as much, but the file would then grow again, and every
 * commit's fdatasync would carry its new size.)
 *
 * Room ahead. An fdatasync that must also make a new file size durable
 * costs a journal commit on top of the data: on the project machine, 0.30 ms
 * for a 64 KiB append against 0.18 ms for the same write over blocks the
 * file already has. A reset keeps the blocks for the next generation; a
 * growing log gets them from wal_grow, which another thread runs when the
 * writer asks (wal_room_wanted), and a new one starts with WAL_ROOM_MIN of
 * them (wal_reserve, at create): zeros past the last record, synced through
 * a file description of its own (io_open_twin: a write-back error must still
 * reach the committer's sync). Zeros end a replay like any torn record, and
 * recovery that stops short of the end of the file writes a restart record,
 * as above. `file_end` is how far the file holds bytes, records or zeros;
 * zeros go only past it and only under `grow_busy`, as does every write
 * that reaches past it, so they never land on a record. An open that then
 * commits nothing leaves its restart record in the generation (wal_size
 * counts no generation without a commit, so close does not checkpoint for
 * it): 32 bytes an open, until the next checkpoint on the writer.
 *
 * Threads: the writer appends and resets; the durability thread may call
 * wal_sync concurrently with a flush (fdatasync and pwrite on one fd are
 * safe together); one other thread may call wal_grow; `written_lsn`,
 * `synced_lsn`, `file_end` and `grow_busy` use __atomic builtins.
 */
#ifndef SOMBRA_WAL_H
#define SOMBRA_WAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "io.h"
#include "buf.h"

#define WAL_HDR        64u
#define WAL_REC_HDR    24u
#define WAL_MAX_RECORD (1u << 30)
/* Address space for a private log (wal_open_private); a longer log is seen cut there. */
#define WAL_PRIVATE_RESERVE (1ull << 36)

struct wal {
        struct io_file file;
        uint64_t db_id;    /* the database this log belongs to */
        uint64_t salt;     /* the generation on file (0: no valid header) */
        uint64_t ckpt_gen; /* the checkpoint that started it */
        uint64_t base_lsn;
        uint64_t chain;         /* the checksum the next record is seeded with */
        uint64_t end;           /* where the next record goes */
        uint64_t next_lsn;      /* the LSN the next record gets */
        uint64_t written_lsn;   /* last LSN handed to the OS */
        uint64_t synced_lsn;    /* last LSN covered by a completed fdatasync */
        uint64_t syncs;         /* fdatasyncs done */
        uint32_t version;       /* of the header on file: notes only go into version 3 */
        bool at_end;            /* the last replay read up to the end of the file */
        bool created;           /* wal_open made the file */
        bool damaged;           /* a header of this format whose checksum fails (salt 0) */
        uint64_t damaged_id;    /* the database id such a header names, for what it is worth */
        struct buf pending;     /* appended records not yet written (writer only) */
        uint64_t pending_first; /* the LSN of the first of them */
        uint64_t pending_chain; /* the chain before the first of them */

        /* Room ahead of the log: the writer's and wal_grow's thread's. */
        uint64_t file_end;      /* bytes the file holds: records, or zeros past them */
        uint32_t grow_busy;     /* lock over writes past file_end */
        uint64_t grow_asked;    /* the file_end wal_room_wanted last asked for (writer only) */
        uint64_t room_mark_end; /* end and syncs when wal_room_wanted last judged (writer only) */
        uint64_t room_mark_syncs;
        struct io_file grow_file; /* wal_grow's own description of the file (its thread only) */

        /* Memory lent for wal_replay's reads (wal_lend_window), the lender's; else its own. */
        uint8_t *window;
        size_t window_len;
};

/* Room ahead of the log (see "Room ahead"): asked for once the log holds WAL_ROOM_FROM bytes. */
#define WAL_ROOM_FROM ((uint64_t)64 << 10)
#define WAL_ROOM_MIN  ((uint64_t)1 << 20)
#define WAL_ROOM_MAX  ((uint64_t)8 << 20)
/* Syncs of more log than this on average get no room: appending costs less. */
#define WAL_ROOM_SYNC_BYTES ((uint64_t)32 << 10)

/* A random 64-bit value, never zero and never `avoid`: database ids and salts. */
uint64_t wal_random(uint64_t avoid);

/*
 * Opens (creating it when missing) and locks the WAL of database db_id at
 * path, and reads its header. A file holding no header yet (empty, zeroed,
 * or cut inside the magic) counts as empty: salt 0. So does a header whose
 * checksum fails, with `damaged` set: the caller knows the generation it
 * expects (wal_adopt). It never writes. SOMBRA_EWAL when the file is not a
 * Sombra WAL of this format, or is the WAL of another database: it is left
 * untouched. SOMBRA_ELOCKED when another open file description holds its
 * lock, and the errors of io_open.
 */
int wal_open(struct wal *w, const char *path, uint64_t db_id, struct io_faults *faults);
/*
 * wal_open for a read-only open: the file is neither created nor locked, and
 * is opened in private mode (io.h), so that nothing done to this log ever
 * reaches the file; a missing file is an empty log. What it shows is the
 * file as it was at open, except in the room past the log (the map reaches
 * over the zeros, where the owner may write records later: intact ones are
 * of the same generation and chain on, and are as good as those before); a
 * record the owner was writing then fails its checksum and ends the log,
 * and one a reset overwrote breaks the chain.
 */
int wal_open_private(struct wal *w, const char *path, uint64_t db_id);
void wal_close(struct wal *w);

/*
 * Takes the log on file for generation `salt` of checkpoint ckpt_gen, whose
 * first LSN is base_lsn, whatever its header says: for a damaged header,
 * which a reset torn by a crash leaves. Records of that generation, if any,
 * still prove themselves by their chained checksums; any other bytes end the
 * log at once.
 */
void wal_adopt(struct wal *w, uint64_t base_lsn, uint64_t salt, uint64_t ckpt_gen);

/*
 * A place in the log: the offset of a record, the checksum it is seeded with
 * and its LSN. A checkpoint's meta page keeps the place of the first record
 * after it, so that recovery starts there instead of at the generation's
 * first record.
 */
struct wal_pos {
        uint64_t off;
        uint64_t chain;
        uint64_t lsn;
};

/* Where the next record goes: only meaningful when nothing is pending (after wal_flush). */
void wal_position(const struct wal *w, struct wal_pos *out);

#define WAL_REC_COMMIT  1u
#define WAL_REC_RESTART 2u
#define WAL_REC_NOTE    3u

/* The most wal_replay reads with one system call, unless a record is longer. */
#define WAL_READ_CHUNK ((size_t)128 << 10)

/*
 * Lends wal_replay len bytes to read the log into, in place of a buffer it
 * allocates for each replay (a record longer than len still gets its own);
 * NULL takes the loan back. The memory stays the lender's, and must outlive
 * the replays made with it.
 */
void wal_lend_window(struct wal *w, uint8_t *mem, size_t len);

/* A record as wal_replay hands it over. */
struct wal_record {
        uint32_t type;          /* WAL_REC_COMMIT, WAL_REC_RESTART or WAL_REC_NOTE */
        uint64_t lsn;           /* a commit's own; a note's is the next commit's */
        const uint8_t *payload; /* len bytes, valid during the call only */
        size_t len;
        struct wal_pos at; /* where the record starts */
};

/*
 * Calls apply(arg, record) for every intact commit of the generation on
 * file, in order, from `from` (NULL: the generation's first record), with an
 * LSN above `after`, and for every restart and note on the way; commits at
 * or below `after` are checked and skipped. Stops quietly at the first torn, stale or
 * out-of-sequence record, leaves the WAL positioned to append after the last
 * intact one, and sets at_end when that is the end of the file (a `from`
 * past the end reads nothing, and the next record goes there). *applied
 * counts the commits handed over. An error from apply stops the replay and
 * is returned.
 */
int wal_replay(struct wal *w, const struct wal_pos *from, uint64_t after,
               int (*apply)(void *arg, const struct wal_record *r), void *arg, uint64_t *applied);

/*
 * Appends a note: a record that is not a commit and takes no LSN, for
 * recovery to read (wal_replay). Pending until wal_flush, like a commit;
 * *at gets its place, from which wal_replay can read the log (written once
 * `end` is past at->off). SOMBRA_EINVAL when the log on file is of a version
 * older than notes (a library of that version would take the note for the
 * end of the log), and as wal_append otherwise.
 */
int wal_note(struct wal *w, const void *payload, size_t len, struct wal_pos *at);

/*
 * Calls fn(arg, payload, len) for each commit appended since the last
 * flush whose LSN is above `after`, in order: the writer applying again
 * commits it has not written yet. SOMBRA_EFAILED when some LSN after `after`
 * is no longer pending (written already); an error from fn stops it.
 */
int wal_pending_each(const struct wal *w, uint64_t after,
                     int (*fn)(void *arg, const uint8_t *payload, size_t len), void *arg);

/*
 * Starts generation `salt`, which checkpoint `ckpt_gen` started and whose
 * first record will have LSN next_lsn: a new header at offset 0. Does not
 * sync. The salt must never have been used by this database before.
 */
int wal_reset(struct wal *w, uint64_t next_lsn, uint64_t salt, uint64_t ckpt_gen);

/*
 * Writes a restart record after the last intact record, where a replay
 * stopped, and syncs it: what follows chains from random bytes, so nothing
 * already in the file beyond can ever pass for a record after it. For the
 * writer, before anything is appended after a replay that stopped short.
 */
int wal_restart(struct wal *w);

/*
 * Appends one record to the pending buffer: `rec` holds WAL_REC_HDR free
 * bytes followed by the payload (len bytes in all); the header is filled in
 * place. *lsn gets its LSN. Nothing is written until wal_flush, so a group of
 * commits goes out in one write. SOMBRA_ENOMEM, SOMBRA_ETOOBIG. Needs a
 * generation (wal_reset or a replay of one).
 */
int wal_append(struct wal *w, uint8_t *rec, size_t len, uint64_t *lsn);

/*
 * Writes the pending records (no sync); written_lsn then covers them. On
 * failure none of them counts as written: they are dropped and their LSNs
 * handed out again, and the next write goes to the same place.
 */
int wal_flush(struct wal *w);

/* fdatasync; on success everything wal_flush wrote before the call is durable. */
int wal_sync(struct wal *w);

/*
 * Bytes of records since the last reset, pending ones included, except
 * notes pending with no commit among them, and 0 while the generation holds
 * no commit (restart records only, as recovery writes at each open that
 * stops short of the end of the file): alone, they leave nothing to
 * checkpoint.
 */
uint64_t wal_size(const struct wal *w);

/*
 * Writer, after a flush: the size the file should grow to, when the room
 * left past the log is under half of what it wants (the log's own length,
 * WAL_ROOM_MIN to WAL_ROOM_MAX), no one has asked for it yet, and the
 * syncs of the last WAL_ROOM_FROM bytes or more of log covered
 * WAL_ROOM_SYNC_BYTES each at most; else 0. Never for a private log, one
 * under fault injection (its tests count the writes), nor one shorter than
 * WAL_ROOM_FROM.
 */
uint64_t wal_room_wanted(struct wal *w);
/*
 * Any one thread, beside the writer: writes zeros from file_end up to `to`
 * (nothing where the file holds bytes already), syncing each piece, through
 * grow_file. SOMBRA_EINVAL for a private log, and the errors of io_open_twin,
 * io_write_zeros and io_sync; the log is unharmed by any of them.
 */
int wal_grow(struct wal *w, uint64_t to);
/*
 * The same, unsynced, through the log's own description: for the writer
 * while no other thread uses the log (a new log's first room, synced with
 * its header). Nothing for a log that wal_room_wanted never grows.
 */
int wal_reserve(struct wal *w, uint64_t to);

#endif
