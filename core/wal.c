/*
 * wal.c - the WAL file (format in wal.h).
 *
 * Invariant: `end` is the offset just past the last record that was written
 * successfully; every record before it is intact and its LSN is one more than
 * the previous one. wal_sync records what it covers before it calls
 * fdatasync, so it never claims more than the sync included.
 */
#include <sched.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "hash.h"

#include "sombra.h"
#include "wal.h"

static const uint8_t wal_magic[8] = {'S', 'O', 'M', 'B', 'R', 'W', 'A', 'L'};

#define WAL_VERSION     3u
#define WAL_VERSION_OLD 2u  /* read, and appended to, but given no notes */
#define RESTART_LEN     8u  /* a restart record's payload: a random nonce */
#define WAL_HDR_SUM     48u /* the header checksum's offset, and the bytes it covers */

uint64_t
wal_random(uint64_t avoid)
{
        uint64_t r = 0;
        struct timespec ts;

        if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r)) {
                clock_gettime(CLOCK_REALTIME, &ts);
                r = XXH3_64bits_withSeed(&ts, sizeof(ts), avoid);
        }
        while (r == 0 || r == avoid)
                r = XXH3_64bits_withSeed(&r, sizeof(r), avoid);
        return r;
}

static void
grow_lock(struct wal *w)
{
        while (__atomic_exchange_n(&w->grow_busy, 1, __ATOMIC_ACQUIRE) != 0)
                sched_yield();
}

static void
grow_unlock(struct wal *w)
{
        __atomic_store_n(&w->grow_busy, 0, __ATOMIC_RELEASE);
}

/*
 * io_write for the log. A write that reaches past file_end takes the lock:
 * zeros from wal_grow may be going there, and must go before it, not over it.
 */
static int
log_write(struct wal *w, const void *buf, size_t len, uint64_t off)
{
        uint64_t to = off + len;
        int rc;

        if (to <= __atomic_load_n(&w->file_end, __ATOMIC_ACQUIRE))
                return io_write(&w->file, buf, len, off);
        grow_lock(w);
        rc = io_write(&w->file, buf, len, off);
        if (rc == SOMBRA_OK && to > w->file_end)
                __atomic_store_n(&w->file_end, to, __ATOMIC_RELEASE);
        grow_unlock(w);
        return rc;
}

static int
header_write(struct wal *w)
{
        uint8_t h[WAL_HDR] = {0};

        memcpy(h, wal_magic, 8);
        put_be32(h + 8, WAL_VERSION);
        put_be64(h + 16, w->salt);
        put_be64(h + 24, w->base_lsn);
        put_be64(h + 32, w->db_id);
        put_be64(h + 40, w->ckpt_gen);
        put_be64(h + WAL_HDR_SUM, XXH3_64bits(h, WAL_HDR_SUM));
        w->version = WAL_VERSION;
        return log_write(w, h, sizeof(h), 0);
}

static bool
all_zero(const uint8_t *p, size_t len)
{
        for (size_t i = 0; i < len; i++)
                if (p[i] != 0)
                        return false;
        return true;
}

/*
 * Sorts the first `len` bytes of a WAL file. Bytes that no header was ever
 * written over (a creation cut short, or blocks a power loss left zeroed)
 * mean an empty log; anything else that is not a valid header of this
 * database's log means the file is someone else's, and must not be touched.
 */
static int
header_parse(struct wal *w, const uint8_t *h, size_t len)
{
        size_t magic_len = len < sizeof(wal_magic) ? len : sizeof(wal_magic);

        if (all_zero(h, len))
                return SOMBRA_OK;
        if (memcmp(h, wal_magic, magic_len) != 0)
                return SOMBRA_EWAL;
        if (len < WAL_HDR)
                return SOMBRA_OK; /* cut inside its own header: it holds no record */
        if (get_be32(h + 8) != WAL_VERSION && get_be32(h + 8) != WAL_VERSION_OLD)
                return SOMBRA_EWAL;
        w->version = get_be32(h + 8);
        if (get_be64(h + WAL_HDR_SUM) != XXH3_64bits(h, WAL_HDR_SUM)) {
                w->damaged = true;
                w->damaged_id = get_be64(h + 32);
                return SOMBRA_OK;
        }
        if (get_be64(h + 32) != w->db_id)
                return SOMBRA_EWAL;
        w->salt = get_be64(h + 16);
        w->base_lsn = get_be64(h + 24);
        w->ckpt_gen = get_be64(h + 40);
        w->damaged = w->salt == 0;
        return SOMBRA_OK;
}

/* Opens path, creating it only when it does not exist yet, and notes which. */
static int
file_open(struct wal *w, const char *path)
{
        int rc = io_open(&w->file, path, false);

        if (rc == SOMBRA_ENOTFOUND) {
                rc = io_open(&w->file, path, true);
                w->created = rc == SOMBRA_OK;
        }
        return rc;
}

/* Reads and classifies the header, and positions the log after it. */
static int
header_load(struct wal *w)
{
        uint8_t h[WAL_HDR];
        uint64_t size;
        int rc = io_size(&w->file, &size);

        if (rc == SOMBRA_OK && size > 0)
                rc = io_read(&w->file, h, size < WAL_HDR ? (size_t)size : WAL_HDR, 0);
        if (rc == SOMBRA_OK && size > 0)
                rc = header_parse(w, h, size < WAL_HDR ? (size_t)size : WAL_HDR);
        if (rc != SOMBRA_OK)
                return rc;
        w->file_end = size;
        w->end = WAL_HDR;
        w->next_lsn = w->salt != 0 ? w->base_lsn : 1;
        w->chain = w->salt;
        return SOMBRA_OK;
}

int
wal_open(struct wal *w, const char *path, uint64_t db_id, struct io_faults *faults)
{
        int rc;

        memset(w, 0, sizeof(*w));
        w->file.fd = w->grow_file.fd = -1;
        w->db_id = db_id;
        rc = file_open(w, path);
        if (rc != SOMBRA_OK)
                return rc;
        w->file.faults = faults;
        w->file.kind = IO_FILE_WAL;
        rc = io_lock(&w->file);
        if (rc == SOMBRA_OK)
                rc = header_load(w);
        if (rc != SOMBRA_OK)
                io_close(&w->file);
        return rc;
}

int
wal_open_private(struct wal *w, const char *path, uint64_t db_id)
{
        int rc;

        memset(w, 0, sizeof(*w));
        w->grow_file.fd = -1;
        w->db_id = db_id;
        rc = io_open_private(&w->file, path, WAL_PRIVATE_RESERVE, true);
        if (rc != SOMBRA_OK)
                return rc;
        w->file.kind = IO_FILE_WAL;
        rc = header_load(w);
        if (rc != SOMBRA_OK)
                io_close(&w->file);
        return rc;
}

void
wal_adopt(struct wal *w, uint64_t base_lsn, uint64_t salt, uint64_t ckpt_gen)
{
        w->salt = w->chain = salt;
        w->ckpt_gen = ckpt_gen;
        w->base_lsn = w->next_lsn = base_lsn;
}

void
wal_close(struct wal *w)
{
        io_close(&w->file);
        io_close(&w->grow_file);
        buf_free(&w->pending);
}

static uint64_t
record_checksum(uint64_t chain, const uint8_t *rec, size_t len)
{
        return XXH3_64bits_withSeed(rec + 8, len - 8, chain);
}

void
wal_position(const struct wal *w, struct wal_pos *out)
{
        out->off = w->end;
        out->chain = w->chain;
        out->lsn = w->next_lsn;
}

/*
 * The part of the log file that wal_replay has read: bytes [at, at + len) of
 * the file at `data` (the lent window, or b's memory). Records are taken
 * from it, so a replay reads the log a chunk at a time instead of twice per
 * record (each read is a system call, and a system call is an exit to the
 * hypervisor on the project machine).
 */
struct wal_window {
        struct buf b;  /* its own memory, when the lent window is missing or too small */
        uint8_t *data; /* the lent window or b.data */
        uint64_t at;
        size_t len;
};

void
wal_lend_window(struct wal *w, uint8_t *mem, size_t len)
{
        w->window = mem;
        w->window_len = mem != NULL ? len : 0;
}

/* Points *out at bytes [off, off + n) of the file, which must lie below `size`. */
static int
window_get(struct wal *w, struct wal_window *win, uint64_t off, size_t n, uint64_t size,
           const uint8_t **out)
{
        size_t want = n > WAL_READ_CHUNK ? n : WAL_READ_CHUNK;
        int rc = SOMBRA_OK;

        if (off >= win->at && off + n <= win->at + win->len) {
                *out = win->data + (off - win->at);
                return SOMBRA_OK;
        }
        if (want > size - off)
                want = (size_t)(size - off);
        win->len = 0;
        if (want <= w->window_len) {
                win->data = w->window;
        } else {
                rc = buf_reserve(&win->b, want);
                win->data = win->b.data;
        }
        if (rc == SOMBRA_OK)
                rc = io_read(&w->file, win->data, want, off);
        if (rc != SOMBRA_OK)
                return rc;
        win->at = off;
        win->len = want;
        *out = win->data;
        return SOMBRA_OK;
}

/* Whether a record header's type and length can be those of an intact record. */
static bool
record_kind_ok(const struct wal *w, uint32_t type, uint32_t len)
{
        switch (type) {
        case WAL_REC_COMMIT:
                return true;
        case WAL_REC_RESTART:
                return len == RESTART_LEN;
        case WAL_REC_NOTE:
                return w->version >= WAL_VERSION;
        default:
                return false;
        }
}

int
wal_replay(struct wal *w, const struct wal_pos *from, uint64_t after,
           int (*apply)(void *arg, const struct wal_record *r), void *arg, uint64_t *applied)
{
        struct wal_window win = {BUF_INIT, NULL, 0, 0};
        uint64_t size = 0, off = WAL_HDR, expect = w->base_lsn, chain = w->salt;
        int rc = SOMBRA_OK;

        if (from != NULL) {
                off = from->off;
                expect = from->lsn;
                chain = from->chain;
        }

        *applied = 0;
        if (w->salt != 0)
                rc = io_size(&w->file, &size);
        while (rc == SOMBRA_OK && off + WAL_REC_HDR <= size) {
                const uint8_t *rec;
                uint32_t len, type;
                struct wal_record r;
                rc = window_get(w, &win, off, WAL_REC_HDR, size, &rec);
                if (rc != SOMBRA_OK)
                        break;
                len = get_be32(rec + 8);
                type = get_be32(rec + 12);
                if (len > WAL_MAX_RECORD || off + WAL_REC_HDR + len > size ||
                    !record_kind_ok(w, type, len) || get_be64(rec + 16) != expect)
                        break; /* torn, stale or garbage: the log ends here */
                rc = window_get(w, &win, off, WAL_REC_HDR + (size_t)len, size, &rec);
                if (rc != SOMBRA_OK)
                        break;
                if (get_be64(rec) != record_checksum(chain, rec, WAL_REC_HDR + len))
                        break;
                r = (struct wal_record){type, expect, rec + WAL_REC_HDR, len, {off, chain, expect}};
                chain = get_be64(rec);
                off += WAL_REC_HDR + len;
                if (type != WAL_REC_COMMIT || expect > after) {
                        rc = apply(arg, &r);
                        if (rc != SOMBRA_OK)
                                break;
                }
                if (type != WAL_REC_COMMIT)
                        continue; /* restarts and notes take no LSN */
                *applied += expect > after;
                expect++;
        }
        buf_free(&win.b);
        if (rc != SOMBRA_OK)
                return rc;
        w->end = off;
        w->chain = chain;
        w->at_end = off >= size;
        w->next_lsn = expect > after + 1 ? expect : after + 1;
        w->written_lsn = w->synced_lsn = w->next_lsn - 1;
        return SOMBRA_OK;
}

/*
 * Before a write that does not go through the pending records (a reset, a
 * restart): only notes can be pending then, since the store writes its
 * commits first, and they go. Written after it, they would carry the chain
 * of what came before and end the log there.
 */
static int
pending_drop_notes(struct wal *w)
{
        if (w->pending.len == 0)
                return SOMBRA_OK;
        if (w->pending_first != w->next_lsn)
                return SOMBRA_EFAILED; /* a commit would go with them */
        w->chain = w->pending_chain;
        buf_reset(&w->pending);
        return SOMBRA_OK;
}

int
wal_reset(struct wal *w, uint64_t next_lsn, uint64_t salt, uint64_t ckpt_gen)
{
        int rc = pending_drop_notes(w);

        if (rc != SOMBRA_OK)
                return rc;
        wal_adopt(w, next_lsn, salt, ckpt_gen);
        w->end = WAL_HDR;
        return header_write(w);
}

int
wal_restart(struct wal *w)
{
        uint8_t rec[WAL_REC_HDR + RESTART_LEN];
        int rc = pending_drop_notes(w);

        if (rc != SOMBRA_OK)
                return rc;
        put_be32(rec + 8, RESTART_LEN);
        put_be32(rec + 12, WAL_REC_RESTART);
        put_be64(rec + 16, w->next_lsn);
        put_be64(rec + WAL_REC_HDR, wal_random(w->chain));
        put_be64(rec, record_checksum(w->chain, rec, sizeof(rec)));
        rc = log_write(w, rec, sizeof(rec), w->end);
        if (rc != SOMBRA_OK)
                return rc;
        /* Written, it stays, even if the sync fails: nothing may be written over it. */
        w->end += sizeof(rec);
        w->chain = get_be64(rec);
        return io_sync(&w->file);
}

/* Fills in the header of rec (len bytes, payload included) and adds it to the pending records. */
static int
pending_add(struct wal *w, uint8_t *rec, size_t len, uint32_t type)
{
        int rc;

        if (len < WAL_REC_HDR || len - WAL_REC_HDR > WAL_MAX_RECORD)
                return SOMBRA_ETOOBIG;
        if (w->salt == 0)
                return SOMBRA_EFAILED; /* no generation: the store always starts one first */
        if (w->pending.len == 0) {
                w->pending_first = w->next_lsn;
                w->pending_chain = w->chain;
        }
        put_be32(rec + 8, (uint32_t)(len - WAL_REC_HDR));
        put_be32(rec + 12, type);
        put_be64(rec + 16, w->next_lsn);
        put_be64(rec, record_checksum(w->chain, rec, len));
        rc = buf_append(&w->pending, rec, len);
        if (rc == SOMBRA_OK)
                w->chain = get_be64(rec);
        return rc;
}

int
wal_append(struct wal *w, uint8_t *rec, size_t len, uint64_t *lsn)
{
        int rc = pending_add(w, rec, len, WAL_REC_COMMIT);

        if (rc == SOMBRA_OK)
                *lsn = w->next_lsn++;
        return rc;
}

/* A note's payload is small: store.c's is under 200 bytes. */
#define WAL_NOTE_MAX 512u

int
wal_note(struct wal *w, const void *payload, size_t len, struct wal_pos *at)
{
        uint8_t rec[WAL_REC_HDR + WAL_NOTE_MAX];

        if (w->version < WAL_VERSION || len > WAL_NOTE_MAX)
                return SOMBRA_EINVAL;
        *at =
            (struct wal_pos){.off = w->end + w->pending.len, .chain = w->chain, .lsn = w->next_lsn};
        memcpy(rec + WAL_REC_HDR, payload, len);
        return pending_add(w, rec, WAL_REC_HDR + len, WAL_REC_NOTE);
}

int
wal_pending_each(const struct wal *w, uint64_t after,
                 int (*fn)(void *arg, const uint8_t *payload, size_t len), void *arg)
{
        uint64_t lsn = w->pending_first;
        size_t off = 0;
        int rc = SOMBRA_OK;

        if (after + 1 < (w->pending.len > 0 ? w->pending_first : w->next_lsn))
                return SOMBRA_EFAILED;
        while (rc == SOMBRA_OK && off < w->pending.len) {
                uint32_t len = get_be32(w->pending.data + off + 8);
                bool commit = get_be32(w->pending.data + off + 12) == WAL_REC_COMMIT;
                if (commit && lsn > after)
                        rc = fn(arg, w->pending.data + off + WAL_REC_HDR, len);
                off += WAL_REC_HDR + (size_t)len;
                lsn += commit;
        }
        return rc;
}

int
wal_flush(struct wal *w)
{
        int rc;

        if (w->pending.len == 0)
                return SOMBRA_OK;
        rc = log_write(w, w->pending.data, w->pending.len, w->end);
        if (rc != SOMBRA_OK) {
                w->next_lsn = w->pending_first;
                w->chain = w->pending_chain;
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
        if (w->next_lsn == w->base_lsn)
                return 0;
        return w->end - WAL_HDR + (w->pending_first == w->next_lsn ? 0 : w->pending.len);
}

/*
 * Zeros go in pieces of this size: a flush waits for one piece at most, and
 * wal_grow syncs each before the next, so that a commit's sync meanwhile has
 * one piece of them at most to write with its own records, and a crash
 * leaves one piece at most whose size and blocks the next open's first sync
 * must commit (syncing once at the end made a reopen after a kill 4 ms
 * slower at times).
 */
#define WAL_GROW_PIECE ((uint64_t)64 << 10)

/*
 * A log that gets no room: a private one (nothing of it reaches the file),
 * and one under fault injection, whose tests count the engine's writes.
 */
static bool
no_room(const struct wal *w)
{
        return w->file.priv != NULL || w->file.faults != NULL;
}

/*
 * Whether the syncs since the last look were small: room saves a journal
 * commit a sync (30-120 us here), and its zeros cost about a microsecond a
 * KiB to write, so for syncs of more than WAL_ROOM_SYNC_BYTES (a bulk load's
 * batches) appending costs less. Looks at WAL_ROOM_FROM bytes of log at least.
 */
static bool
syncs_small(struct wal *w)
{
        uint64_t syncs = __atomic_load_n(&w->syncs, __ATOMIC_RELAXED);
        uint64_t bytes;

        if (w->end < w->room_mark_end) /* a new generation */
                w->room_mark_end = WAL_HDR;
        bytes = w->end - w->room_mark_end;
        if (bytes < WAL_ROOM_FROM)
                return false;
        w->room_mark_end = w->end;
        syncs -= w->room_mark_syncs;
        w->room_mark_syncs += syncs;
        return bytes <= syncs * WAL_ROOM_SYNC_BYTES;
}

uint64_t
wal_room_wanted(struct wal *w)
{
        uint64_t room = w->end < WAL_ROOM_MIN ? WAL_ROOM_MIN : w->end;
        uint64_t enough, to;

        if (room > WAL_ROOM_MAX)
                room = WAL_ROOM_MAX;
        enough = w->end + room / 2;
        if (no_room(w) || w->end < WAL_ROOM_FROM || w->grow_asked >= enough ||
            __atomic_load_n(&w->file_end, __ATOMIC_ACQUIRE) >= enough || !syncs_small(w))
                return 0;
        to = (w->end + room + WAL_GROW_PIECE - 1) / WAL_GROW_PIECE * WAL_GROW_PIECE;
        w->grow_asked = to;
        return to;
}

/*
 * Zeros from file_end toward `to`, one piece at most, through f, under the
 * lock; *n gets the bytes written (0: the file reaches `to`, to a block).
 */
static int
zeros_piece(struct wal *w, struct io_file *f, uint64_t to, uint64_t *n)
{
        uint64_t from;
        int rc = SOMBRA_OK;

        grow_lock(w);
        from = w->file_end;
        *n = to > from ? to - from : 0;
        *n = (*n < WAL_GROW_PIECE ? *n : WAL_GROW_PIECE) / IO_ZERO_BLOCK * IO_ZERO_BLOCK;
        if (*n > 0)
                rc = io_write_zeros(f, from, *n);
        if (*n > 0 && rc == SOMBRA_OK)
                __atomic_store_n(&w->file_end, from + *n, __ATOMIC_RELEASE);
        grow_unlock(w);
        return rc;
}

int
wal_grow(struct wal *w, uint64_t to)
{
        uint64_t n = 1;
        int rc = SOMBRA_OK;

        if (w->file.priv != NULL)
                return SOMBRA_EINVAL;
        if (!io_is_open(&w->grow_file))
                rc = io_open_twin(&w->file, &w->grow_file);
        while (rc == SOMBRA_OK && n > 0) {
                rc = zeros_piece(w, &w->grow_file, to, &n);
                if (rc == SOMBRA_OK && n > 0)
                        rc = io_sync(&w->grow_file);
        }
        return rc;
}

int
wal_reserve(struct wal *w, uint64_t to)
{
        uint64_t n = 1;
        int rc = SOMBRA_OK;

        while (!no_room(w) && rc == SOMBRA_OK && n > 0)
                rc = zeros_piece(w, &w->file, to, &n);
        return rc;
}
