/*
 * wal.h - the write-ahead log: one logical record per committed transaction.
 *
 * File `NAME-wal`:
 *   header, 64 bytes at offset 0:
 *     0  8  magic "SOMBRWAL"
 *     8  4  format version (1)
 *     12 4  zero
 *     16 8  salt: random, new at every reset
 *     24 8  base LSN: the LSN of the first record after this header
 *     32 8  XXH3-64 of bytes 0..32
 *     40 24 zero
 *   records, back to back from offset 64:
 *     0  8  checksum: XXH3-64 of bytes 8..24+len, seeded with the salt
 *     8  4  payload length
 *     12 4  record type (1 = commit)
 *     16 8  LSN: base LSN for the first record, then one more each
 *     24    payload (the store's transaction encoding, see store.c)
 *   All integers big-endian.
 *
 * A reset (after a checkpoint) writes a new header with a new salt and starts
 * overwriting from offset 64, so the file keeps its blocks and a commit's
 * fdatasync flushes data, not file-size metadata. Leftover records of the
 * previous generation fail their checksum under the new salt, as does a torn
 * record, so reading stops at the first record that is torn, stale or out of
 * sequence.
 *
 * Threads: the writer appends and resets; the durability thread may call
 * wal_sync concurrently with a flush (fdatasync and pwrite on one fd are
 * safe together); `written_lsn` and `synced_lsn` use __atomic builtins.
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

struct wal {
        struct io_file file;
        uint64_t salt;
        uint64_t base_lsn;
        uint64_t end;           /* where the next record goes */
        uint64_t next_lsn;      /* the LSN the next record gets */
        uint64_t written_lsn;   /* last LSN handed to the OS */
        uint64_t synced_lsn;    /* last LSN covered by a completed fdatasync */
        uint64_t syncs;         /* fdatasyncs done */
        bool header_ok;         /* the header on file is valid */
        struct buf pending;     /* appended records not yet written (writer only) */
        uint64_t pending_first; /* the LSN of the first of them */
};

/*
 * Opens or creates the WAL at path and reads its header. A missing, empty or
 * invalid header leaves the WAL as if empty (header_ok false): headers are
 * only written after a checkpoint, which made every earlier record redundant.
 */
int wal_open(struct wal *w, const char *path, struct io_faults *faults);
void wal_close(struct wal *w);

/*
 * Calls apply(arg, lsn, payload, len) for every intact record, in order, with
 * an LSN above `after`; records at or below it are checked and skipped.
 * Stops quietly at the first torn, stale or out-of-sequence record and leaves
 * the WAL positioned to append after the last intact one, with next_lsn one
 * past the larger of `after` and the last intact LSN; when the intact records
 * all lie at or below `after`, they are dropped instead and the next append
 * starts a new generation (header_ok false). An error from apply
 * stops the replay and is returned. SOMBRA_ECORRUPT when the WAL starts
 * after `after` + 1: commits between them are lost.
 */
int wal_replay(struct wal *w, uint64_t after,
               int (*apply)(void *arg, uint64_t lsn, const uint8_t *payload, size_t len), void *arg,
               uint64_t *applied);

/*
 * Starts a new generation whose first record will have LSN next_lsn: new
 * salt, new header at offset 0. Does not sync.
 */
int wal_reset(struct wal *w, uint64_t next_lsn);

/*
 * Appends one record to the pending buffer: `rec` holds WAL_REC_HDR free
 * bytes followed by the payload (len bytes in all); the header is filled in
 * place. *lsn gets its LSN. Nothing is written until wal_flush, so a group of
 * commits goes out in one write. SOMBRA_ENOMEM, SOMBRA_ETOOBIG.
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

/* Bytes of records since the last reset, pending ones included. */
uint64_t wal_size(const struct wal *w);

#endif
