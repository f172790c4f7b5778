/*
 * wal.c - the WAL file (format in wal.h).
 *
 * Invariant: `end` is the offset just past the last record that was written
 * successfully; every record before it is intact and its LSN is one more than
 * the previous one. wal_sync records what it covers before it calls
 * fdatasync, so it never claims more than the sync included.
 */
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <xxhash.h>

#include "sombra.h"
#include "wal.h"

static const uint8_t wal_magic[8] = {'S', 'O', 'M', 'B', 'R', 'W', 'A', 'L'};

#define WAL_VERSION    1u
#define WAL_REC_COMMIT 1u

static uint64_t
salt_new(uint64_t previous)
{
        uint64_t s = 0;
        struct timespec ts;

        if (getrandom(&s, sizeof(s), GRND_NONBLOCK) != (ssize_t)sizeof(s)) {
                clock_gettime(CLOCK_REALTIME, &ts);
                s = XXH3_64bits_withSeed(&ts, sizeof(ts), previous);
        }
        /* Never the previous salt: that would revive the old generation's records. */
        return s == previous ? s + 1 : s;
}

static int
header_write(struct wal *w)
{
        uint8_t h[WAL_HDR] = {0};

        memcpy(h, wal_magic, 8);
        put_be32(h + 8, WAL_VERSION);
        put_be64(h + 16, w->salt);
        put_be64(h + 24, w->base_lsn);
        put_be64(h + 32, XXH3_64bits(h, 32));
        return io_write(&w->file, h, sizeof(h), 0);
}

static bool
header_parse(struct wal *w, const uint8_t *h)
{
        if (memcmp(h, wal_magic, 8) != 0 || get_be32(h + 8) != WAL_VERSION)
                return false;
        if (get_be64(h + 32) != XXH3_64bits(h, 32))
                return false;
        w->salt = get_be64(h + 16);
        w->base_lsn = get_be64(h + 24);
        return true;
}

int
wal_open(struct wal *w, const char *path, struct io_faults *faults)
{
        uint8_t h[WAL_HDR];
        uint64_t size;
        int rc;

        memset(w, 0, sizeof(*w));
        w->file.fd = -1;
        rc = io_open(&w->file, path, true);
        if (rc != SOMBRA_OK)
                return rc;
        w->file.faults = faults;
        rc = io_size(&w->file, &size);
        if (rc != SOMBRA_OK)
                goto label_fail;
        if (size >= WAL_HDR) {
                rc = io_read(&w->file, h, sizeof(h), 0);
                if (rc != SOMBRA_OK)
                        goto label_fail;
                w->header_ok = header_parse(w, h);
        }
        w->end = WAL_HDR;
        w->next_lsn = w->header_ok ? w->base_lsn : 1;
        return SOMBRA_OK;
label_fail:
        io_close(&w->file);
        return rc;
}

void
wal_close(struct wal *w)
{
        io_close(&w->file);
        buf_free(&w->pending);
}

static uint64_t
record_checksum(const struct wal *w, const uint8_t *rec, size_t len)
{
        return XXH3_64bits_withSeed(rec + 8, len - 8, w->salt);
}

int
wal_replay(struct wal *w, uint64_t after,
           int (*apply)(void *arg, uint64_t lsn, const uint8_t *payload, size_t len), void *arg,
           uint64_t *applied)
{
        struct buf rec = BUF_INIT;
        uint64_t size, off = WAL_HDR, expect = w->base_lsn, last = after;
        int rc = SOMBRA_OK;

        *applied = 0;
        if (!w->header_ok)
                goto label_done;
        /*
         * Records after `after` that this WAL no longer holds: the meta page
         * that covered them is gone, and replaying the rest would skip commits.
         */
        if (w->base_lsn > after + 1) {
                rc = SOMBRA_ECORRUPT;
                goto label_done;
        }
        rc = io_size(&w->file, &size);
        while (rc == SOMBRA_OK && off + WAL_REC_HDR <= size) {
                uint32_t len;
                rc = buf_reserve(&rec, WAL_REC_HDR);
                if (rc != SOMBRA_OK)
                        break;
                rc = io_read(&w->file, rec.data, WAL_REC_HDR, off);
                if (rc != SOMBRA_OK)
                        break;
                len = get_be32(rec.data + 8);
                if (len > WAL_MAX_RECORD || off + WAL_REC_HDR + len > size ||
                    get_be32(rec.data + 12) != WAL_REC_COMMIT || get_be64(rec.data + 16) != expect)
                        break; /* torn, stale or garbage: the log ends here */
                rc = buf_reserve(&rec, WAL_REC_HDR + len);
                if (rc == SOMBRA_OK)
                        rc = io_read(&w->file, rec.data + WAL_REC_HDR, len, off + WAL_REC_HDR);
                if (rc != SOMBRA_OK)
                        break;
                if (get_be64(rec.data) != record_checksum(w, rec.data, WAL_REC_HDR + len))
                        break;
                if (expect > after) {
                        rc = apply(arg, expect, rec.data + WAL_REC_HDR, len);
                        if (rc != SOMBRA_OK)
                                break;
                        (*applied)++;
                        last = expect;
                }
                off += WAL_REC_HDR + len;
                expect++;
        }
        if (last < expect - 1)
                last = expect - 1;
        /*
         * The intact records end below `after` (the meta page is ahead of the
         * log, e.g. a checkpoint's WAL reset did not reach the disk). A record
         * appended after them with LSN after + 1 would follow a gap and never
         * be replayed, so drop them: the next append starts a new generation.
         */
        if (expect <= after) {
                w->header_ok = false;
                off = WAL_HDR;
        }
label_done:
        buf_free(&rec);
        if (rc != SOMBRA_OK)
                return rc;
        w->end = off;
        w->next_lsn = (last > after ? last : after) + 1;
        w->written_lsn = w->synced_lsn = w->next_lsn - 1;
        return SOMBRA_OK;
}

int
wal_reset(struct wal *w, uint64_t next_lsn)
{
        int rc;

        w->salt = salt_new(w->salt);
        w->base_lsn = next_lsn;
        rc = header_write(w);
        if (rc != SOMBRA_OK)
                return rc;
        w->header_ok = true;
        w->end = WAL_HDR;
        w->next_lsn = next_lsn;
        return SOMBRA_OK;
}

int
wal_append(struct wal *w, uint8_t *rec, size_t len, uint64_t *lsn)
{
        int rc;

        if (len < WAL_REC_HDR || len - WAL_REC_HDR > WAL_MAX_RECORD)
                return SOMBRA_ETOOBIG;
        if (!w->header_ok) {
                rc = wal_reset(w, w->next_lsn);
                if (rc != SOMBRA_OK)
                        return rc;
        }
        put_be32(rec + 8, (uint32_t)(len - WAL_REC_HDR));
        put_be32(rec + 12, WAL_REC_COMMIT);
        put_be64(rec + 16, w->next_lsn);
        put_be64(rec, record_checksum(w, rec, len));
        rc = buf_append(&w->pending, rec, len);
        if (rc != SOMBRA_OK)
                return rc;
        if (w->pending.len == len)
                w->pending_first = w->next_lsn;
        *lsn = w->next_lsn++;
        return SOMBRA_OK;
}

int
wal_flush(struct wal *w)
{
        int rc;

        if (w->pending.len == 0)
                return SOMBRA_OK;
        rc = io_write(&w->file, w->pending.data, w->pending.len, w->end);
        if (rc != SOMBRA_OK) {
                w->next_lsn = w->pending_first;
                buf_reset(&w->pending);
                return rc;
        }
        w->end += w->pending.len;
        buf_reset(&w->pending);
        __atomic_store_n(&w->written_lsn, w->next_lsn - 1, __ATOMIC_RELEASE);
        return SOMBRA_OK;
}

int
wal_sync(struct wal *w)
{
        uint64_t covered = __atomic_load_n(&w->written_lsn, __ATOMIC_ACQUIRE);
        int rc = io_sync(&w->file);

        if (rc != SOMBRA_OK)
                return rc;
        __atomic_add_fetch(&w->syncs, 1, __ATOMIC_RELAXED);
        /* Only forward: a checkpoint on the writer thread may have moved it further. */
        uint64_t seen = __atomic_load_n(&w->synced_lsn, __ATOMIC_ACQUIRE);
        while (covered > seen && !__atomic_compare_exchange_n(&w->synced_lsn, &seen, covered, false,
                                                              __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
                ;
        return SOMBRA_OK;
}

uint64_t
wal_size(const struct wal *w)
{
        return w->end - WAL_HDR + w->pending.len;
}
