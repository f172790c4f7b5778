/*
 * test_wal.c - the WAL file: record encoding, replay, the end of the log
 * (torn, damaged, stale records), generations, the chain of checksums, LSN
 * continuity, and the header that binds a log to its database.
 *
 * Every test writes records with wal_append, closes, and reads them back
 * through a new struct wal on the same file, the way recovery does.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "sombra.h"
#include "support.h"
#include "wal.h"

static void
setup(void)
{
        support_dir_make("wal");
}

TestSuite(wal, .init = setup, .fini = support_dir_remove);

#define DB_ID 0x5eed5eed5eed5eedull /* the database the test's logs belong to */

/* Opens the log at name for DB_ID; it must open. */
static void
open_log(struct wal *w, const char *name, struct io_faults *faults)
{
        cr_assert(eq(int, wal_open(w, support_path(name), DB_ID, faults), SOMBRA_OK), "%s", name);
}

/* Opens the log at name and starts a new generation whose first LSN is base. */
static void
start_log(struct wal *w, const char *name, uint64_t base, struct io_faults *faults)
{
        open_log(w, name, faults);
        cr_assert(eq(int, wal_reset(w, base, wal_random(w->salt), 1), SOMBRA_OK));
}

/* ---- payloads: record `id` has a length and bytes derived from id ---- */

static size_t
payload_len(uint64_t id)
{
        if (id % 17 == 0)
                return 0;
        if (id % 23 == 0)
                return 70000; /* larger than any I/O buffer the WAL might assume */
        return (size_t)((id * 131) % 3000) + 1;
}

static void
payload_fill(uint8_t *p, size_t len, uint64_t id)
{
        uint64_t x = id * 0x9E3779B97F4A7C15ull + 1;

        for (size_t i = 0; i < len; i++) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                p[i] = (uint8_t)x;
        }
}

static uint64_t
payload_hash(uint64_t id, size_t len)
{
        uint8_t *p = malloc(len + 1);
        uint64_t h;

        cr_assert(not(eq(ptr, p, NULL)));
        payload_fill(p, len, id);
        h = XXH3_64bits(p, len);
        free(p);
        return h;
}

/* Appends and writes the record for `id` with `len` payload bytes; returns the status. */
static int
append_len(struct wal *w, uint64_t id, size_t len, uint64_t *lsn)
{
        uint8_t *rec = malloc(WAL_REC_HDR + len);
        int rc;

        cr_assert(not(eq(ptr, rec, NULL)));
        payload_fill(rec + WAL_REC_HDR, len, id);
        rc = wal_append(w, rec, WAL_REC_HDR + len, lsn);
        /* Appends wait in memory; each record goes to the file on its own here. */
        if (rc == SOMBRA_OK)
                rc = wal_flush(w);
        free(rec);
        return rc;
}

static uint64_t
append(struct wal *w, uint64_t id)
{
        uint64_t lsn = 0;

        cr_assert(eq(int, append_len(w, id, payload_len(id), &lsn), SOMBRA_OK), "id %llu",
                  (unsigned long long)id);
        return lsn;
}

/* ---- replay into a list ---- */

#define MAX_SEEN 512

struct seen {
        size_t n;
        uint64_t lsn[MAX_SEEN];
        size_t len[MAX_SEEN];
        uint64_t hash[MAX_SEEN];
        uint64_t fail_at; /* apply fails with SOMBRA_EIO at this LSN (0: never) */
        size_t notes;     /* notes handed over */
        size_t restarts;  /* restart records handed over */
};

static int
collect(void *arg, const struct wal_record *r)
{
        struct seen *s = arg;

        if (r->type != WAL_REC_COMMIT) {
                s->notes += r->type == WAL_REC_NOTE;
                s->restarts += r->type == WAL_REC_RESTART;
                return SOMBRA_OK;
        }
        if (r->lsn == s->fail_at)
                return SOMBRA_EIO;
        cr_assert(lt(sz, s->n, MAX_SEEN));
        s->lsn[s->n] = r->lsn;
        s->len[s->n] = r->len;
        s->hash[s->n] = XXH3_64bits(r->payload, r->len);
        s->n++;
        return SOMBRA_OK;
}

/* Opens the WAL at name afresh and replays it after `after` into *seen. */
static int
reopen_replay(struct wal *w, const char *name, uint64_t after, struct seen *seen, uint64_t *applied)
{
        uint64_t fail_at = seen->fail_at;

        memset(seen, 0, sizeof(*seen));
        seen->fail_at = fail_at;
        open_log(w, name, NULL);
        return wal_replay(w, NULL, after, collect, seen, applied);
}

/* Asserts that seen holds exactly the records with ids first..last, as LSNs lsn0.. */
static void
expect_ids(const struct seen *seen, uint64_t first, uint64_t last, uint64_t lsn0)
{
        cr_assert(eq(sz, seen->n, (size_t)(last - first + 1)));
        for (size_t i = 0; i < seen->n; i++) {
                uint64_t id = first + i;
                cr_assert(eq(u64, seen->lsn[i], lsn0 + i));
                cr_assert(eq(sz, seen->len[i], payload_len(id)), "record %zu", i);
                cr_assert(eq(u64, seen->hash[i], payload_hash(id, payload_len(id))), "record %zu",
                          i);
        }
}

/* Writes records for ids 1..n to a new WAL `name` whose first LSN is 1. */
static void
write_log(const char *name, uint64_t n)
{
        struct wal w;

        start_log(&w, name, 1, NULL);
        for (uint64_t id = 1; id <= n; id++)
                cr_assert(eq(u64, append(&w, id), id));
        wal_close(&w);
}

/* Offset of the record with LSN lsn in a log written by write_log. */
static uint64_t
record_offset(uint64_t lsn)
{
        uint64_t off = WAL_HDR;

        for (uint64_t id = 1; id < lsn; id++)
                off += WAL_REC_HDR + payload_len(id);
        return off;
}

/*
 * Replays the WAL at name afresh after `after` and asserts that exactly the
 * records with ids first..last came back, as LSNs lsn0 on. w stays open.
 */
static void
expect_replay(struct wal *w, const char *name, uint64_t after, uint64_t first, uint64_t last,
              uint64_t lsn0)
{
        struct seen seen = {0};
        uint64_t applied = UINT64_MAX;

        cr_assert(eq(int, reopen_replay(w, name, after, &seen, &applied), SOMBRA_OK),
                  "%s after %llu", name, (unsigned long long)after);
        cr_assert(eq(u64, applied, last - first + 1));
        expect_ids(&seen, first, last, lsn0);
}

/* Replays the WAL at name afresh after `after` and asserts that no record came back. */
static void
expect_nothing_replayed(struct wal *w, const char *name, uint64_t after)
{
        struct seen seen = {0};
        uint64_t applied = UINT64_MAX;

        cr_assert(eq(int, reopen_replay(w, name, after, &seen, &applied), SOMBRA_OK),
                  "%s after %llu", name, (unsigned long long)after);
        cr_assert(eq(u64, applied, 0));
        cr_assert(eq(sz, seen.n, 0));
}

/* ---- tests ---- */

Test(wal, an_empty_file_replays_nothing_and_takes_records_only_in_a_generation)
{
        struct wal w;
        uint8_t rec[WAL_REC_HDR + 8] = {0};
        uint64_t lsn;

        expect_nothing_replayed(&w, "wal", 0);
        cr_assert(eq(u64, w.salt, 0), "no generation yet");
        cr_assert(w.created);
        cr_assert(eq(u64, wal_size(&w), 0));
        cr_assert(eq(int, wal_append(&w, rec, sizeof(rec), &lsn), SOMBRA_EFAILED));
        cr_assert(eq(int, wal_reset(&w, 1, wal_random(0), 1), SOMBRA_OK));
        cr_assert(eq(u64, append(&w, 1), 1));
        wal_close(&w);
        expect_replay(&w, "wal", 0, 1, 1, 1);
        wal_close(&w);
}

Test(wal, records_of_varied_sizes_round_trip_with_consecutive_lsns)
{
        struct wal w;

        write_log("wal", 300);
        expect_replay(&w, "wal", 0, 1, 300, 1);
        cr_assert(eq(u64, w.end, support_file_size("wal")));
        cr_assert(eq(u64, w.end, record_offset(301)));
        cr_assert(eq(u64, w.next_lsn, 301));
        cr_assert(eq(u64, w.written_lsn, 300));
        cr_assert(eq(u64, wal_size(&w), record_offset(301) - WAL_HDR));
        wal_close(&w);
}

/*
 * A replay from a place kept by wal_position (a checkpoint's) reads only
 * what follows it, and a record larger than the replay's read chunk comes
 * back whole.
 */
Test(wal, a_replay_from_a_place_reads_what_follows_it_and_records_above_the_read_chunk)
{
        const size_t big = (3u << 20) + 5;
        struct seen seen = {0};
        struct wal_pos pos;
        uint64_t lsn, applied;
        struct wal w;

        start_log(&w, "wal", 1, NULL);
        for (uint64_t id = 1; id <= 10; id++)
                append(&w, id);
        wal_position(&w, &pos);
        cr_assert(eq(u64, pos.off, record_offset(11)));
        cr_assert(eq(u64, pos.lsn, 11));
        for (uint64_t id = 11; id <= 20; id++)
                append(&w, id);
        cr_assert(eq(int, append_len(&w, 21, big, &lsn), SOMBRA_OK));
        append(&w, 22);
        wal_close(&w);

        open_log(&w, "wal", NULL);
        cr_assert(eq(int, wal_replay(&w, &pos, 10, collect, &seen, &applied), SOMBRA_OK));
        cr_assert(eq(u64, applied, 12));
        cr_assert(eq(u64, seen.lsn[0], 11));
        cr_assert(eq(sz, seen.len[10], big));
        cr_assert(eq(u64, seen.hash[10], payload_hash(21, big)));
        cr_assert(eq(u64, seen.hash[11], payload_hash(22, payload_len(22))));
        cr_assert(eq(u64, w.end, support_file_size("wal")));
        cr_assert(eq(u64, w.next_lsn, 23));
        wal_close(&w);
}

/*
 * A window lent to the replays (wal_lend_window) holds the reads that fit in
 * it; a record longer than the window comes back whole through a buffer of
 * the replay's own, and the lent memory is never written past its end.
 */
Test(wal, a_lent_window_serves_the_reads_that_fit_and_a_longer_record_gets_its_own)
{
        const size_t lent = WAL_READ_CHUNK, guard = 64, big = WAL_READ_CHUNK + 5000;
        uint8_t *mem = malloc(lent + guard);
        struct seen seen = {0};
        uint64_t lsn, applied;
        bool used = false;
        struct wal w;

        cr_assert(not(eq(ptr, mem, NULL)));
        memset(mem, 0xa5, lent + guard);
        start_log(&w, "wal", 1, NULL);
        for (uint64_t id = 1; id <= 300; id++) /* more than one window of log */
                append(&w, id);
        cr_assert(eq(int, append_len(&w, 301, big, &lsn), SOMBRA_OK));
        append(&w, 302);
        wal_close(&w);
        cr_assert(gt(u64, record_offset(301), WAL_HDR + WAL_READ_CHUNK));

        open_log(&w, "wal", NULL);
        wal_lend_window(&w, mem, lent);
        cr_assert(eq(int, wal_replay(&w, NULL, 0, collect, &seen, &applied), SOMBRA_OK));
        wal_lend_window(&w, NULL, 0);
        cr_assert(eq(u64, applied, 302));
        cr_assert(eq(u64, seen.hash[0], payload_hash(1, payload_len(1))));
        cr_assert(eq(u64, seen.hash[299], payload_hash(300, payload_len(300))));
        cr_assert(eq(sz, seen.len[300], big));
        cr_assert(eq(u64, seen.hash[300], payload_hash(301, big)));
        cr_assert(eq(u64, seen.hash[301], payload_hash(302, payload_len(302))));
        cr_assert(eq(u64, w.end, support_file_size("wal")));
        for (size_t i = 0; i < lent && !used; i++)
                used = mem[i] != 0xa5;
        cr_assert(used, "the lent window was never read into");
        for (size_t i = 0; i < guard; i++)
                cr_assert(eq(u8, mem[lent + i], 0xa5), "written past the window at %zu", i);
        cr_assert(eq(ptr, w.window, NULL));
        wal_close(&w);
        free(mem);
}

Test(wal, appending_after_replay_continues_the_log)
{
        struct wal w;

        write_log("wal", 10);
        expect_replay(&w, "wal", 0, 1, 10, 1);
        cr_assert(eq(u64, append(&w, 11), 11));
        cr_assert(eq(u64, append(&w, 12), 12));
        wal_close(&w);
        expect_replay(&w, "wal", 0, 1, 12, 1);
        wal_close(&w);
}

Test(wal, torn_last_record_is_ignored_at_every_cut)
{
        const uint64_t n = 4; /* payload_len(4) = 525 bytes */
        uint64_t start = record_offset(n), end = record_offset(n + 1);
        uint8_t *full;
        size_t len;

        write_log("full", n);
        full = support_read_file("full", &len);
        cr_assert(eq(u64, (uint64_t)len, end));
        for (uint64_t cut = start; cut < end; cut++) {
                struct wal w;
                struct seen seen = {0};
                uint64_t applied;

                support_write_file("torn", full, (size_t)cut);
                cr_assert(eq(int, reopen_replay(&w, "torn", 0, &seen, &applied), SOMBRA_OK),
                          "cut at %llu", (unsigned long long)cut);
                cr_assert(eq(u64, applied, n - 1), "cut at %llu", (unsigned long long)cut);
                expect_ids(&seen, 1, n - 1, 1);
                cr_assert(eq(u64, w.end, start), "the next record overwrites the torn one");
                cr_assert(eq(u64, w.next_lsn, n));
                /* A new record in its place is read back, not the torn bytes. */
                cr_assert(eq(u64, append(&w, 100), n));
                wal_close(&w);
                cr_assert(eq(int, reopen_replay(&w, "torn", 0, &seen, &applied), SOMBRA_OK));
                cr_assert(eq(u64, applied, n));
                cr_assert(eq(u64, seen.hash[n - 1], payload_hash(100, payload_len(100))));
                wal_close(&w);
        }
        free(full);
}

Test(wal, a_flipped_byte_in_a_middle_record_ends_the_log_before_it)
{
        const uint64_t n = 6, bad = 3;
        uint64_t start = record_offset(bad), end = record_offset(bad + 1);
        uint8_t *full;
        size_t len;

        write_log("full", n);
        full = support_read_file("full", &len);
        for (uint64_t off = start; off < end; off++) {
                struct wal w;
                struct seen seen = {0};
                uint64_t applied;

                full[off] ^= 0x20;
                support_write_file("bad", full, len);
                full[off] ^= 0x20;
                cr_assert(eq(int, reopen_replay(&w, "bad", 0, &seen, &applied), SOMBRA_OK));
                cr_assert(eq(u64, applied, bad - 1), "byte %llu of the record",
                          (unsigned long long)(off - start));
                expect_ids(&seen, 1, bad - 1, 1);
                cr_assert(eq(u64, w.end, start));
                cr_assert(eq(u64, w.next_lsn, bad));
                wal_close(&w);
        }
        free(full);
}

Test(wal, records_of_the_previous_generation_are_not_replayed_after_reset)
{
        struct wal w;
        struct seen seen = {0};
        uint64_t applied, old_salt, lsn;

        write_log("wal", 5);
        expect_replay(&w, "wal", 0, 1, 5, 1);
        old_salt = w.salt;
        /* Same base LSN as before: only the salt tells the generations apart. */
        cr_assert(eq(int, wal_reset(&w, 1, wal_random(old_salt), 2), SOMBRA_OK));
        cr_assert(not(eq(u64, w.salt, old_salt)));
        cr_assert(eq(u64, wal_size(&w), 0));
        wal_close(&w);
        cr_assert(eq(u64, support_file_size("wal"), record_offset(6)),
                  "the old bytes are still there");

        expect_nothing_replayed(&w, "wal", 0);
        cr_assert(eq(u64, w.end, WAL_HDR));
        cr_assert(eq(u64, w.next_lsn, 1));
        /* One new record over the first old one; the old records after it stay dead. */
        cr_assert(eq(int, append_len(&w, 77, payload_len(1), &lsn), SOMBRA_OK));
        cr_assert(eq(u64, lsn, 1));
        wal_close(&w);
        cr_assert(eq(int, reopen_replay(&w, "wal", 0, &seen, &applied), SOMBRA_OK));
        cr_assert(eq(u64, applied, 1));
        cr_assert(eq(u64, seen.hash[0], payload_hash(77, payload_len(1))));
        wal_close(&w);
}

/*
 * What opening the log at name returns; the file must be left as it was.
 * *damaged (may be NULL) gets the log's flag when it opened.
 */
static int
open_status_untouched(const char *name, bool *damaged)
{
        struct wal w;
        size_t before_len, after_len;
        uint8_t *before = support_read_file(name, &before_len), *after;
        int rc = wal_open(&w, support_path(name), DB_ID, NULL);

        if (rc == SOMBRA_OK && damaged != NULL)
                *damaged = w.damaged;
        if (rc == SOMBRA_OK)
                wal_close(&w);
        after = support_read_file(name, &after_len);
        cr_assert(eq(sz, after_len, before_len));
        cr_assert(eq(int, memcmp(before, after, before_len), 0), "%s was changed", name);
        free(before);
        free(after);
        return rc;
}

Test(wal, a_damaged_header_is_flagged_and_another_format_refused)
{
        uint8_t *full;
        size_t len;

        write_log("full", 3);
        full = support_read_file("full", &len);
        /*
         * Bytes 0..56: magic and version (another file or another format:
         * SOMBRA_EWAL), then what the checksum covers and the checksum.
         */
        for (size_t off = 0; off < 56; off++) {
                /* Byte 11's low bit turns version 3 into 2, still read: its checksum then fails. */
                int want = off < 12 && off != 11 ? SOMBRA_EWAL : SOMBRA_OK;
                bool damaged = false;
                full[off] ^= 0x01;
                support_write_file("bad", full, len);
                full[off] ^= 0x01;
                cr_assert(eq(int, open_status_untouched("bad", &damaged), want), "header byte %zu",
                          off);
                cr_assert(want != SOMBRA_OK || damaged, "header byte %zu", off);
        }
        free(full);
}

Test(wal, records_behind_a_damaged_header_are_found_when_adopted)
{
        struct wal w;
        struct seen seen = {0};
        uint64_t applied, salt, gen;

        write_log("wal", 4);
        open_log(&w, "wal", NULL);
        salt = w.salt;
        gen = w.ckpt_gen;
        wal_close(&w);
        support_flip_byte("wal", 20, 0x04);
        open_log(&w, "wal", NULL);
        cr_assert(w.damaged);
        wal_adopt(&w, 1, salt, gen);
        cr_assert(eq(int, wal_replay(&w, NULL, 0, collect, &seen, &applied), SOMBRA_OK));
        expect_ids(&seen, 1, 4, 1);
        wal_close(&w);
        /* Adopted under another salt, they prove nothing and end the log. */
        open_log(&w, "wal", NULL);
        wal_adopt(&w, 1, salt + 1, gen);
        cr_assert(eq(int, wal_replay(&w, NULL, 0, collect, &seen, &applied), SOMBRA_OK));
        cr_assert(eq(u64, applied, 0));
        wal_close(&w);
}

Test(wal, the_log_of_another_database_or_a_file_that_is_no_log_is_left_alone)
{
        struct wal w;
        uint8_t other[WAL_HDR + 100];

        open_log(&w, "theirs", NULL);
        w.db_id = DB_ID + 1;
        cr_assert(eq(int, wal_reset(&w, 1, wal_random(0), 1), SOMBRA_OK));
        cr_assert(eq(u64, append(&w, 1), 1));
        wal_close(&w);
        cr_assert(eq(int, open_status_untouched("theirs", NULL), SOMBRA_EWAL));

        memset(other, 'x', sizeof(other));
        support_write_file("notes", other, sizeof(other));
        cr_assert(eq(int, open_status_untouched("notes", NULL), SOMBRA_EWAL));
        support_write_file("tiny", "hello", 5);
        cr_assert(eq(int, open_status_untouched("tiny", NULL), SOMBRA_EWAL));
}

Test(wal, a_file_cut_inside_its_header_or_never_written_is_an_empty_log)
{
        static const uint8_t zeros[2 * WAL_HDR];
        struct wal w;

        support_write_file("short", (const uint8_t *)"SOMBRWAL", 8);
        expect_nothing_replayed(&w, "short", 4);
        cr_assert(eq(u64, w.salt, 0));
        cr_assert(eq(u64, w.next_lsn, 5));
        cr_assert(not(w.created));
        wal_close(&w);
        support_write_file("zeros", zeros, sizeof(zeros));
        expect_nothing_replayed(&w, "zeros", 0);
        cr_assert(eq(u64, w.salt, 0));
        wal_close(&w);
}

/*
 * Recovery stopped at a torn first record, and a new record of the same
 * length was written over it in the same generation: the intact old second
 * record now sits exactly where the new second one is looked for. The chain
 * of checksums keeps it out (issue 10: it used to be replayed).
 */
Test(wal, an_old_record_where_a_new_one_is_expected_breaks_the_chain)
{
        struct wal w;
        struct seen seen = {0};
        uint64_t applied, lsn;

        write_log("wal", 3);
        support_flip_byte("wal", record_offset(1) + WAL_REC_HDR, 0x40); /* tear record 1 */
        expect_nothing_replayed(&w, "wal", 0);
        cr_assert(not(w.at_end), "records 2 and 3 lie beyond the tear");
        cr_assert(eq(int, append_len(&w, 91, payload_len(1), &lsn), SOMBRA_OK));
        cr_assert(eq(u64, lsn, 1));
        wal_close(&w);
        cr_assert(eq(int, reopen_replay(&w, "wal", 0, &seen, &applied), SOMBRA_OK));
        cr_assert(eq(u64, applied, 1), "old record 2 must not follow the new record 1");
        cr_assert(eq(u64, seen.hash[0], payload_hash(91, payload_len(1))));
        wal_close(&w);
}

/* A log whose first record has LSN 10: ids 1..5 as LSNs 10..14. */
static void
write_log_from_10(const char *name)
{
        struct wal w;

        start_log(&w, name, 10, NULL);
        for (uint64_t id = 1; id <= 5; id++)
                cr_assert(eq(u64, append(&w, id), id + 9));
        wal_close(&w);
}

Test(wal, records_at_or_below_after_are_skipped_but_keep_their_place)
{
        struct wal w;

        write_log_from_10("wal");
        expect_replay(&w, "wal", 12, 4, 5, 13);
        cr_assert(eq(u64, w.end, support_file_size("wal")));
        cr_assert(eq(u64, w.next_lsn, 15));
        cr_assert(eq(u64, append(&w, 6), 15));
        wal_close(&w);

        /* Everything, the skipped ones included, is still one intact log. */
        expect_replay(&w, "wal", 9, 1, 6, 10);
        wal_close(&w);
}

Test(wal, replay_with_every_record_skipped_still_appends_where_the_log_ends)
{
        struct wal w;

        write_log_from_10("wal");
        expect_nothing_replayed(&w, "wal", 14);
        cr_assert(eq(u64, w.next_lsn, 15));
        cr_assert(eq(u64, append(&w, 6), 15));
        wal_close(&w);
        expect_replay(&w, "wal", 14, 6, 6, 15);
        wal_close(&w);
}

Test(wal, an_apply_error_stops_replay_and_is_returned)
{
        struct wal w;
        struct seen seen = {.fail_at = 4};
        uint64_t applied;

        write_log("wal", 6);
        cr_assert(eq(int, reopen_replay(&w, "wal", 0, &seen, &applied), SOMBRA_EIO));
        cr_assert(eq(sz, seen.n, 3));
        wal_close(&w);
}

Test(wal, size_counts_record_bytes_and_sync_covers_what_was_written)
{
        struct wal w;
        uint64_t lsn;

        start_log(&w, "wal", 1, NULL);
        cr_assert(eq(int, append_len(&w, 1, 100, &lsn), SOMBRA_OK));
        cr_assert(eq(int, append_len(&w, 2, 0, &lsn), SOMBRA_OK));
        cr_assert(eq(u64, wal_size(&w), 2 * WAL_REC_HDR + 100));
        cr_assert(eq(u64, w.written_lsn, 2));
        cr_assert(eq(u64, w.synced_lsn, 0));
        cr_assert(eq(int, wal_sync(&w), SOMBRA_OK));
        cr_assert(eq(u64, w.synced_lsn, 2));
        cr_assert(eq(u64, w.syncs, 1));
        cr_assert(eq(int, wal_reset(&w, 3, wal_random(w.salt), 2), SOMBRA_OK));
        cr_assert(eq(u64, wal_size(&w), 0));
        cr_assert(eq(int, append_len(&w, 3, 10, &lsn), SOMBRA_OK));
        cr_assert(eq(u64, lsn, 3));
        cr_assert(eq(u64, wal_size(&w), WAL_REC_HDR + 10));
        wal_close(&w);
}

Test(wal, a_record_shorter_than_its_header_is_refused)
{
        struct wal w;
        uint8_t rec[WAL_REC_HDR];
        uint64_t lsn = 0;

        start_log(&w, "wal", 1, NULL);
        cr_assert(eq(int, wal_append(&w, rec, WAL_REC_HDR - 1, &lsn), SOMBRA_ETOOBIG));
        cr_assert(eq(u64, w.next_lsn, 1));
        wal_close(&w);
}

Test(wal, a_failed_append_leaves_nothing_and_the_next_one_takes_its_place)
{
        for (int torn = 0; torn < 2; torn++) {
                struct io_faults faults = {0};
                struct wal w;
                struct seen seen = {0};
                uint64_t lsn = 0, applied, end;

                support_remove("wal");
                start_log(&w, "wal", 1, &faults);
                cr_assert(eq(u64, append(&w, 1), 1));
                end = w.end;
                faults =
                    (struct io_faults){.ops = 1u << IO_OP_WRITE, .err = EIO, .short_write = torn};
                /* A big record fails (half of it reaches the file when torn)... */
                cr_assert(eq(int, append_len(&w, 50, 4000, &lsn), SOMBRA_EIO));
                cr_assert(eq(u64, faults.fired, 1));
                cr_assert(eq(u64, w.end, end));
                cr_assert(eq(u64, w.next_lsn, 2));
                cr_assert(eq(u64, w.written_lsn, 1));
                /* ...and a smaller one goes to the same place with the same LSN. */
                cr_assert(eq(int, append_len(&w, 2, payload_len(2), &lsn), SOMBRA_OK));
                cr_assert(eq(u64, lsn, 2));
                wal_close(&w);

                cr_assert(eq(int, reopen_replay(&w, "wal", 0, &seen, &applied), SOMBRA_OK));
                cr_assert(eq(u64, applied, 2), "torn %d", torn);
                expect_ids(&seen, 1, 2, 1);
                wal_close(&w);
        }
}

Test(wal, appends_wait_in_memory_until_one_flush_writes_them_all)
{
        struct wal w;
        uint64_t lsn, size_after;
        uint8_t rec[WAL_REC_HDR + 16] = {0};

        start_log(&w, "wal", 1, NULL);
        for (int i = 0; i < 5; i++)
                cr_assert(eq(int, wal_append(&w, rec, sizeof(rec), &lsn), SOMBRA_OK));
        cr_assert(eq(u64, lsn, 5));
        cr_assert(eq(u64, w.written_lsn, 0)); /* nothing is written yet */
        cr_assert(eq(int, io_size(&w.file, &size_after), SOMBRA_OK));
        cr_assert(eq(u64, size_after, WAL_HDR)); /* the new log's header, no record */
        cr_assert(eq(int, wal_flush(&w), SOMBRA_OK));
        cr_assert(eq(u64, w.written_lsn, 5));
        cr_assert(eq(int, io_size(&w.file, &size_after), SOMBRA_OK));
        cr_assert(eq(u64, size_after, WAL_HDR + 5 * sizeof(rec)));
        wal_close(&w);
}

/*
 * The retry after a crash writes, over the torn record, a record byte for
 * byte the same as the one that was torn: the chain alone would let the
 * intact old records after it follow. A restart record first breaks it.
 */
Test(wal, a_restart_record_keeps_old_records_out_even_after_an_identical_retry)
{
        struct wal w;
        struct seen seen = {0};
        uint64_t applied;

        write_log("wal", 3);
        support_flip_byte("wal", record_offset(1) + WAL_REC_HDR, 0x40); /* tear record 1 */
        expect_nothing_replayed(&w, "wal", 0);
        cr_assert(eq(int, wal_restart(&w), SOMBRA_OK));
        cr_assert(eq(u64, append(&w, 1), 1)); /* record 1 again, the same bytes */
        wal_close(&w);
        cr_assert(eq(int, reopen_replay(&w, "wal", 0, &seen, &applied), SOMBRA_OK));
        cr_assert(eq(u64, applied, 1), "old record 2 followed the retried record 1");
        expect_ids(&seen, 1, 1, 1);
        cr_assert(eq(u64, append(&w, 2), 2), "the restart record takes no LSN");
        wal_close(&w);
        expect_replay(&w, "wal", 0, 1, 2, 1);
        wal_close(&w);
}

/* The note of a state: its LSN and a marker, as store.c's notes carry more. Its place. */
static struct wal_pos
note(struct wal *w, uint64_t state)
{
        struct wal_pos at;
        uint8_t b[16];

        memset(b, 0xab, sizeof(b));
        memcpy(b, &state, sizeof(state));
        cr_assert(eq(int, wal_note(w, b, sizeof(b), &at), SOMBRA_OK));
        return at;
}

Test(wal, notes_take_no_lsn_and_come_back_in_their_place_between_commits)
{
        struct wal w;
        struct seen seen = {0};
        uint64_t applied;

        start_log(&w, "wal", 1, NULL);
        cr_assert(eq(u64, append(&w, 1), 1));
        note(&w, 1);
        cr_assert(eq(u64, append(&w, 2), 2), "the note took an LSN");
        note(&w, 2);
        cr_assert(eq(int, wal_flush(&w), SOMBRA_OK));
        wal_close(&w);
        cr_assert(eq(int, reopen_replay(&w, "wal", 0, &seen, &applied), SOMBRA_OK));
        cr_assert(eq(u64, applied, 2));
        cr_assert(eq(sz, seen.notes, 2));
        expect_ids(&seen, 1, 2, 1);
        cr_assert(eq(u64, append(&w, 3), 3), "appending goes on after the last note");
        wal_close(&w);
        expect_replay(&w, "wal", 0, 1, 3, 1);
        wal_close(&w);
}

/* A note's place is a place to read from: the note, then what follows it; a wrong chain ends there.
 */
Test(wal, a_replay_from_a_notes_place_reads_the_note_and_what_follows)
{
        struct wal w;
        struct wal_pos at, wrong;
        struct seen seen = {0};
        uint64_t applied;

        start_log(&w, "wal", 1, NULL);
        cr_assert(eq(u64, append(&w, 1), 1));
        at = note(&w, 1);
        cr_assert(eq(u64, append(&w, 2), 2));
        cr_assert(eq(int, wal_flush(&w), SOMBRA_OK));
        cr_assert(eq(u64, at.lsn, 2), "the note carries the LSN of the commit after it");
        wal_close(&w);
        open_log(&w, "wal", NULL);
        cr_assert(eq(int, wal_replay(&w, &at, 0, collect, &seen, &applied), SOMBRA_OK));
        cr_assert(eq(sz, seen.notes, 1));
        expect_ids(&seen, 2, 2, 2);
        cr_assert(eq(u64, append(&w, 3), 3), "appending goes on after the end found");
        wal_close(&w);
        wrong = at;
        wrong.chain ^= 1;
        memset(&seen, 0, sizeof(seen));
        open_log(&w, "wal", NULL);
        cr_assert(eq(int, wal_replay(&w, &wrong, 0, collect, &seen, &applied), SOMBRA_OK));
        cr_assert(eq(sz, seen.n + seen.notes, 0), "a record was taken with the wrong chain");
        wal_close(&w);
}

/* The writer applying its pending commits again must not take a note for one. */
static int
count_pending(void *arg, const uint8_t *payload, size_t len)
{
        (void)payload;
        cr_assert(eq(sz, len, 16));
        (*(int *)arg)++;
        return SOMBRA_OK;
}

Test(wal, pending_commits_are_handed_back_without_the_notes_among_them)
{
        struct wal w;
        uint8_t rec[WAL_REC_HDR + 16] = {0};
        uint64_t lsn;
        int n = 0;

        start_log(&w, "wal", 1, NULL);
        cr_assert(eq(int, wal_append(&w, rec, sizeof(rec), &lsn), SOMBRA_OK));
        note(&w, 1);
        cr_assert(eq(int, wal_append(&w, rec, sizeof(rec), &lsn), SOMBRA_OK));
        cr_assert(eq(int, wal_pending_each(&w, 0, count_pending, &n), SOMBRA_OK));
        cr_assert(eq(int, n, 2));
        n = 0;
        cr_assert(eq(int, wal_pending_each(&w, 1, count_pending, &n), SOMBRA_OK));
        cr_assert(eq(int, n, 1), "the note was counted as commit 2");
        wal_close(&w);
}

/*
 * A restart or a reset writes to the file directly: a note pending then
 * goes, and so does what it did to the chain. Kept, it would be written
 * after the restart chained to what came before, and end the log there.
 */
Test(wal, a_note_pending_at_a_restart_or_a_reset_goes_and_leaves_the_chain_whole)
{
        struct wal w;

        write_log("wal", 2);
        expect_replay(&w, "wal", 0, 1, 2, 1);
        note(&w, 2);
        cr_assert(eq(int, wal_restart(&w), SOMBRA_OK));
        cr_assert(eq(u64, append(&w, 3), 3));
        wal_close(&w);
        expect_replay(&w, "wal", 0, 1, 3, 1);
        note(&w, 3);
        cr_assert(eq(int, wal_reset(&w, 4, wal_random(w.salt), 2), SOMBRA_OK));
        cr_assert(eq(u64, append(&w, 4), 4));
        wal_close(&w);
        expect_replay(&w, "wal", 0, 4, 4, 4);
        wal_close(&w);
}

/* A library that reads version 2 would take a note for the end of the log. */
Test(wal, a_version_2_log_is_read_and_gets_no_notes)
{
        struct wal w;
        struct wal_pos at;
        uint8_t h[WAL_HDR];

        write_log("wal", 2);
        support_read_at("wal", 0, h, sizeof(h));
        h[11] = 2;
        put_be64(h + 48, XXH3_64bits(h, 48));
        support_write_at("wal", 0, h, sizeof(h));
        expect_replay(&w, "wal", 0, 1, 2, 1);
        cr_assert(eq(int, wal_note(&w, h, 16, &at), SOMBRA_EINVAL));
        cr_assert(eq(u64, append(&w, 3), 3), "commits still go in");
        wal_close(&w);
        expect_replay(&w, "wal", 0, 1, 3, 1);
        wal_close(&w);
}

/* ---- room ahead of the log ---- */

/*
 * Zeros past the last record (wal_grow's room) end a replay as a torn record
 * would, and records written into the room, some before and some after it
 * was made, all come back.
 */
Test(wal, records_written_into_the_room_ahead_replay_and_its_zeros_end_the_log)
{
        struct wal w;

        start_log(&w, "wal", 1, NULL);
        for (uint64_t id = 1; id <= 10; id++)
                append(&w, id);
        cr_assert(eq(int, wal_grow(&w, WAL_ROOM_MIN), SOMBRA_OK));
        cr_assert(ge(u64, support_file_size("wal"), WAL_ROOM_MIN - IO_ZERO_BLOCK));
        cr_assert(eq(u64, w.file_end, support_file_size("wal")));
        for (uint64_t id = 11; id <= 30; id++)
                append(&w, id);
        cr_assert(lt(u64, w.end, w.file_end), "the records fit in the room");
        cr_assert(eq(u64, support_file_size("wal"), w.file_end), "and the file did not grow");
        wal_close(&w);

        expect_replay(&w, "wal", 0, 1, 30, 1);
        cr_assert(eq(u64, w.end, record_offset(31)));
        cr_assert(not(w.at_end), "zeros follow: recovery writes a restart record");
        wal_close(&w);
}

/* Growing never writes over the log: from where the file ends, and only up to `to`. */
Test(wal, growing_starts_where_the_file_ends)
{
        struct wal w;
        uint64_t size;

        write_log("wal", 40); /* ends at no block boundary */
        size = support_file_size("wal");
        open_log(&w, "wal", NULL);
        cr_assert(eq(u64, w.file_end, size));
        cr_assert(eq(int, wal_grow(&w, size / 2), SOMBRA_OK), "a size below the file's");
        cr_assert(eq(u64, support_file_size("wal"), size));
        cr_assert(eq(int, wal_grow(&w, size + 3 * IO_ZERO_BLOCK + 5), SOMBRA_OK));
        cr_assert(eq(u64, support_file_size("wal"), size + 3 * IO_ZERO_BLOCK), "whole blocks");
        wal_close(&w);
        expect_replay(&w, "wal", 0, 1, 40, 1);
        wal_close(&w);
}

/*
 * The writer asks for room once the log is long enough to be worth it, once
 * per shortfall, and only while its syncs are small; never in a private log.
 */
Test(wal, room_is_asked_for_once_per_shortfall_of_small_syncs)
{
        struct wal w;
        uint64_t id = 1, to;

        start_log(&w, "wal", 1, NULL);
        cr_assert(eq(u64, wal_room_wanted(&w), 0), "a short log");
        /* A bulk load: two syncs for WAL_ROOM_FROM bytes. */
        while (w.end < WAL_ROOM_FROM)
                append(&w, id++);
        cr_assert(eq(int, wal_sync(&w), SOMBRA_OK));
        cr_assert(eq(u64, wal_room_wanted(&w), 0), "large syncs");
        cr_assert(eq(u64, w.file_end, w.end));
        /* Then a sync a record. */
        for (uint64_t from = w.end; w.end < from + WAL_ROOM_FROM; id++) {
                append(&w, id);
                cr_assert(eq(int, wal_sync(&w), SOMBRA_OK));
        }
        to = wal_room_wanted(&w);
        cr_assert(ge(u64, to, w.end + WAL_ROOM_MIN));
        cr_assert(eq(u64, wal_room_wanted(&w), 0), "asked already");
        cr_assert(eq(int, wal_grow(&w, to), SOMBRA_OK));
        cr_assert(eq(u64, wal_room_wanted(&w), 0), "room enough");
        wal_close(&w);

        cr_assert(eq(int, wal_open_private(&w, support_path("wal"), DB_ID), SOMBRA_OK));
        w.end = to; /* as if replayed up to the end of the room */
        cr_assert(eq(u64, wal_room_wanted(&w), 0), "a private log never grows");
        cr_assert(eq(int, wal_grow(&w, to * 2), SOMBRA_EINVAL));
        wal_close(&w);
}
