/*
 * test_pager.c - the page cache and the page life cycle: allocation, the
 * cache's counters, eviction and spilling, copy-on-write, abort, retirement
 * through readers and checkpoints, the checks on every page read (checksum,
 * self-number, range), and the free list written at a checkpoint and read
 * back at open.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "idset.h"
#include "io.h"
#include "pager.h"
#include "sombra.h"
#include "support.h"

static struct io_file file = {.fd = -1};
static struct pager *pager;
static uint32_t page_size;
static uint64_t committed; /* the last committed txn */

static void
setup(void)
{
        support_dir_make("pager");
}

static void
teardown(void)
{
        pager_destroy(pager);
        pager = NULL;
        io_close(&file);
        support_dir_remove();
}

TestSuite(pager, .init = setup, .fini = teardown);

static void
open_file(void)
{
        cr_assert(eq(int, io_open(&file, support_path("db"), true), SOMBRA_OK));
}

/* A new file and a pager over it with no pages but the two meta pages. */
static void
open_pager(uint32_t ps, uint32_t cache_pages)
{
        open_file();
        page_size = ps;
        cr_assert(eq(int, pager_create(&file, ps, cache_pages, true, 2, 0, &pager), SOMBRA_OK));
}

/* Drops the pager (and its cache) and makes a new one over the same file, as open does. */
static void
reopen_pager(uint32_t cache_pages, bool checksums)
{
        uint64_t npages = pager_npages(pager);

        pager_destroy(pager);
        pager = NULL;
        cr_assert(eq(
            int, pager_create(&file, page_size, cache_pages, checksums, npages, committed, &pager),
            SOMBRA_OK));
}

static void
txn_begin(void)
{
        pager_txn_begin(pager, committed + 1);
}

static void
txn_commit(uint64_t oldest_reader)
{
        cr_assert(eq(int, pager_txn_commit(pager), SOMBRA_OK));
        committed++;
        pager_reclaim(pager, oldest_reader);
}

/* The checkpoint sequence of store_checkpoint, minus the meta page. */
static void
checkpoint(pgno_t old_head, pgno_t *head, uint64_t *count)
{
        pager_checkpoint_begin(pager, committed);
        cr_assert(
            eq(int, pager_freelist_build(pager, committed, old_head, head, count), SOMBRA_OK));
        cr_assert(eq(int, pager_flush(pager), SOMBRA_OK));
        cr_assert(eq(int, io_sync(&file), SOMBRA_OK));
        pager_checkpoint_done(pager);
}

static struct pager_stats
stats(void)
{
        struct pager_stats st;

        pager_stats(pager, &st);
        return st;
}

/* Fills an overflow page's body with a pattern that names the page and a version. */
static void
fill_body(struct page *pg, uint64_t version)
{
        for (uint32_t off = PAGE_HDR; off < page_size; off += 8)
                put_be64(pg->data + off, pg->pgno * 1000003u + version * 7919u + off);
        put_be16(pg->data + 2, (uint16_t)(page_size - PAGE_HDR)); /* data bytes */
}

static bool
body_is(const struct page *pg, pgno_t pgno, uint64_t version)
{
        for (uint32_t off = PAGE_HDR; off < page_size; off += 8)
                if (get_be64(pg->data + off) != pgno * 1000003u + version * 7919u + off)
                        return false;
        return true;
}

/* In one committed transaction, n overflow pages with patterned bodies; their numbers in out. */
static void
make_pages(size_t n, pgno_t *out)
{
        txn_begin();
        for (size_t i = 0; i < n; i++) {
                struct page *pg;
                cr_assert(eq(int, pager_alloc(pager, PAGE_OVERFLOW, &pg), SOMBRA_OK));
                fill_body(pg, 0);
                out[i] = pg->pgno;
                pager_unpin(pager, pg);
        }
        txn_commit(UINT64_MAX);
}

/* In the open transaction, n new empty leaves, unpinned; their numbers in out. */
static void
alloc_leaves(size_t n, pgno_t *out)
{
        for (size_t i = 0; i < n; i++) {
                struct page *pg;
                cr_assert(eq(int, pager_alloc(pager, PAGE_LEAF, &pg), SOMBRA_OK));
                out[i] = pg->pgno;
                pager_unpin(pager, pg);
        }
}

static void
expect_page(pgno_t pgno, uint64_t version)
{
        struct page *pg;

        cr_assert(eq(int, pager_get(pager, pgno, &pg), SOMBRA_OK), "page %llu",
                  (unsigned long long)pgno);
        cr_assert(body_is(pg, pgno, version), "page %llu has the wrong bytes",
                  (unsigned long long)pgno);
        pager_unpin(pager, pg);
}

static void
expect_get_fails(pgno_t pgno, int want)
{
        struct page *pg = NULL;

        cr_assert(eq(int, pager_get(pager, pgno, &pg), want), "page %llu",
                  (unsigned long long)pgno);
        cr_assert(eq(ptr, pg, NULL));
}

/* Retires page pgno in the open transaction. */
static void
retire(pgno_t pgno)
{
        struct page *pg;

        cr_assert(eq(int, pager_get(pager, pgno, &pg), SOMBRA_OK));
        cr_assert(eq(int, pager_retire(pager, pg), SOMBRA_OK));
}

/* Every page pager_visit_unreachable reports, each once (a duplicate fails the visit). */
static int
collect(void *arg, pgno_t pgno)
{
        bool added = false;

        if (idset_put(arg, pgno, 0, &added) != SOMBRA_OK || !added)
                return SOMBRA_ECORRUPT;
        return SOMBRA_OK;
}

static void
unreachable(pgno_t head, struct idset *out)
{
        cr_assert(eq(int, pager_visit_unreachable(pager, head, collect, out), SOMBRA_OK));
}

static void
overwrite(uint64_t off, const void *bytes, size_t len)
{
        cr_assert(eq(sz, (size_t)pwrite(file.fd, bytes, len, (off_t)off), len));
}

/* ---- creation ---- */

Test(pager, create_rejects_bad_page_sizes_and_missing_meta_pages)
{
        const uint32_t bad[] = {0, 512, 2048, 4095, 6000, 8193, 131072};
        const uint32_t good[] = {4096, 8192, 65536};

        open_file();
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                cr_assert(
                    eq(int, pager_create(&file, bad[i], 64, true, 2, 0, &pager), SOMBRA_EINVAL),
                    "page size %u", bad[i]);
        cr_assert(eq(int, pager_create(&file, 8192, 64, true, 1, 0, &pager), SOMBRA_EINVAL));
        for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
                cr_assert(eq(int, pager_create(&file, good[i], 64, true, 2, 0, &pager), SOMBRA_OK));
                cr_assert(eq(u32, pager_page_size(pager), good[i]));
                cr_assert(eq(u64, pager_npages(pager), 2));
                pager_destroy(pager);
                pager = NULL;
        }
}

/* ---- allocation and the cache ---- */

Test(pager, alloc_numbers_pages_after_the_meta_pages_with_a_filled_header)
{
        struct page *a, *b;

        open_pager(4096, 64);
        txn_begin();
        cr_assert(eq(int, pager_alloc(pager, PAGE_LEAF, &a), SOMBRA_OK));
        cr_assert(eq(int, pager_alloc(pager, PAGE_BRANCH, &b), SOMBRA_OK));
        cr_assert(eq(u64, a->pgno, 2));
        cr_assert(eq(u64, b->pgno, 3));
        cr_assert(eq(u64, pager_npages(pager), 4));
        cr_assert(eq(u8, page_type(a), PAGE_LEAF));
        cr_assert(eq(u8, page_type(b), PAGE_BRANCH));
        cr_assert(eq(u64, page_txn(a), committed + 1));
        cr_assert(eq(u64, page_aux(a), 0));
        cr_assert(eq(u64, get_be64(a->data + 16), 2), "the page's own number");
        cr_assert(eq(u32, get_be32(a->data + 4), 4096), "upper: no cells yet");
        cr_assert(a->dirty);
        cr_assert(eq(u32, a->pins, 1));
        for (uint32_t i = PAGE_HDR; i < 4096; i++)
                cr_assert(eq(u8, a->data[i], 0), "body byte %u", i);
        page_set_aux(b, 77);
        cr_assert(eq(u64, page_aux(b), 77));
        pager_unpin(pager, a);
        pager_unpin(pager, b);
        cr_assert(eq(u32, a->pins, 0));
        txn_commit(UINT64_MAX);
}

static int
ptr_cmp(const void *a, const void *b)
{
        uintptr_t x = (uintptr_t) * (uint8_t *const *)a, y = (uintptr_t) * (uint8_t *const *)b;
        return x < y ? -1 : x > y;
}

/*
 * The cache's frames lie side by side, one page apart: 8 KiB buffers got
 * one at a time from jemalloc were spread over three times their size, and
 * every huge page they touched held a third of that in pages.
 */
Test(pager, frames_are_side_by_side_in_one_run)
{
        enum { N = 300 };
        uint8_t *data[N];

        open_pager(8192, 512);
        txn_begin();
        for (size_t i = 0; i < N; i++) {
                struct page *pg;
                cr_assert(eq(int, pager_alloc(pager, PAGE_LEAF, &pg), SOMBRA_OK));
                data[i] = pg->data;
                pager_unpin(pager, pg);
        }
        txn_commit(UINT64_MAX);
        qsort(data, N, sizeof(data[0]), ptr_cmp);
        for (size_t i = 1; i < N; i++)
                cr_assert(eq(sz, (size_t)(data[i] - data[i - 1]), 8192), "frame %zu", i);
}

/*
 * An open's scratch runs come from the spare right before the frames, so
 * that they and the first frames touch one huge page; the spare is handed
 * out in order, reused once every run is back, and a run it has no room
 * for still comes (from the arena).
 */
Test(pager, scratch_runs_come_from_the_spare_before_the_first_frame)
{
        enum { SPARE = 64 }; /* 512 KiB of 8 KiB pages */
        uint8_t *full, *window, *walk, *big, *again;
        struct page *pg;

        open_pager(8192, 512);
        full = pager_run_get(pager, SPARE);
        cr_assert(not(eq(ptr, full, NULL)));
        memset(full, 7, SPARE * 8192);
        txn_begin();
        cr_assert(eq(int, pager_alloc(pager, PAGE_LEAF, &pg), SOMBRA_OK));
        cr_assert(eq(ptr, pg->data, full + SPARE * 8192), "frame 0 follows the spare");
        cr_assert(eq(u8, full[SPARE * 8192 - 1], 7), "the frame's header overwrote the spare");
        pager_unpin(pager, pg);
        txn_commit(UINT64_MAX);
        pager_run_put(pager, full, SPARE);

        window = pager_run_get(pager, 16);
        walk = pager_run_get(pager, 20);
        big = pager_run_get(pager, 1024); /* 8 MiB: more than the spare */
        cr_assert(eq(ptr, window, full), "the spare is free again once every run is back");
        cr_assert(eq(ptr, walk, window + 16 * 8192), "the spare is handed out in order");
        cr_assert(not(eq(ptr, big, NULL)));
        cr_assert(big + 1024 * 8192 <= full || big >= full + (SPARE + 512) * 8192,
                  "a run from the arena overlaps the cache");
        memset(big, 3, 1024 * 8192);
        pager_run_put(pager, big, 1024);
        pager_run_put(pager, window, 16);
        again = pager_run_get(pager, 16);
        cr_assert(eq(ptr, again, walk + 20 * 8192), "reused while a run of the spare was out");
        pager_run_put(pager, walk, 20);
        pager_run_put(pager, again, 16);
        pager_run_put(pager, NULL, 3); /* ignored */
}

Test(pager, alloc_outside_a_transaction_is_enotxn)
{
        struct page *pg;

        open_pager(4096, 64);
        cr_assert(eq(int, pager_alloc(pager, PAGE_LEAF, &pg), SOMBRA_ENOTXN));
        cr_assert(eq(u64, pager_npages(pager), 2));
}

Test(pager, get_of_a_cached_page_is_a_hit_and_of_an_evicted_page_a_miss)
{
        enum { N = 200 };
        pgno_t pgnos[N];
        struct pager_stats before, after;
        struct page *pg, *again;

        open_pager(4096, 64);
        make_pages(N, pgnos);

        before = stats();
        cr_assert(eq(int, pager_get(pager, pgnos[N - 1], &pg), SOMBRA_OK));
        cr_assert(eq(int, pager_get(pager, pgnos[N - 1], &again), SOMBRA_OK));
        cr_assert(eq(ptr, pg, again), "one frame per page");
        cr_assert(eq(u32, pg->pins, 2));
        pager_unpin(pager, pg);
        pager_unpin(pager, again);
        after = stats();
        cr_assert(eq(u64, after.hits, before.hits + 2));
        cr_assert(eq(u64, after.misses, before.misses));

        /* The first pages were pushed out by the later ones: reading them is a miss. */
        before = stats();
        expect_page(pgnos[0], 0);
        after = stats();
        cr_assert(eq(u64, after.misses, before.misses + 1));
        cr_assert(eq(u64, after.pages_read, before.pages_read + 1));
        cr_assert(eq(u64, after.evictions, before.evictions + 1), "the cache was full");
        cr_assert(le(u64, after.cached, 64));
}

Test(pager, dirty_pages_spill_when_the_cache_is_full_and_read_back_intact)
{
        enum { N = 300 };
        pgno_t pgnos[N];
        struct pager_stats st;

        open_pager(4096, 64);
        make_pages(N, pgnos);
        st = stats();
        cr_assert(ge(u64, st.evictions, N - 64));
        cr_assert(ge(u64, st.spills, N - 64), "every evicted page was dirty");
        cr_assert(eq(u64, st.pages_written, st.spills));
        cr_assert(le(u64, st.cached, 64));
        cr_assert(le(u64, st.dirty, 64));
        for (size_t i = 0; i < N; i++)
                expect_page(pgnos[i], 0);
}

Test(pager, flush_writes_every_dirty_page_and_covers_every_page_in_the_file)
{
        pgno_t pgnos[10], hole[3];
        uint64_t size;

        open_pager(4096, 64);
        make_pages(10, pgnos);
        /* Allocated, never written, then released: the end of the file is a hole. */
        txn_begin();
        alloc_leaves(3, hole);
        pager_txn_abort(pager);
        cr_assert(eq(u64, stats().dirty, 10));
        cr_assert(eq(int, pager_flush(pager), SOMBRA_OK));
        cr_assert(eq(u64, stats().dirty, 0));
        cr_assert(eq(u64, stats().pages_written, 10));
        cr_assert(eq(int, io_size(&file, &size), SOMBRA_OK));
        cr_assert(eq(u64, size, pager_npages(pager) * 4096));

        reopen_pager(64, true);
        for (size_t i = 0; i < 10; i++)
                expect_page(pgnos[i], 0);
}

static int
pgno_cmp(const void *a, const void *b)
{
        pgno_t x = *(const pgno_t *)a, y = *(const pgno_t *)b;
        return (x > y) - (x < y);
}

/*
 * Pages reused from the free list come back in the reverse of the order in
 * which they went free: the take hands each dirty page out once, by
 * ascending number, so that pages in a row go out in one write.
 */
Test(pager, write_take_hands_out_every_dirty_page_once_in_page_order)
{
        enum { N = 40 };
        pgno_t first[N], again[N];
        struct page **frames;
        size_t n;

        open_pager(4096, 256);
        make_pages(N, first);
        cr_assert(eq(int, pager_flush(pager), SOMBRA_OK));
        txn_begin();
        for (size_t i = 0; i < N; i++)
                retire(first[i]);
        txn_commit(UINT64_MAX);
        cr_assert(eq(u64, stats().free_pages, N));
        txn_begin();
        alloc_leaves(N, again);
        txn_commit(UINT64_MAX);
        cr_assert(gt(u64, again[0], again[N - 1]), "the free list gave the numbers back reversed");
        qsort(again, N, sizeof(*again), pgno_cmp);

        frames = pager_write_take(pager, &n);
        cr_assert(eq(sz, n, N));
        for (size_t i = 0; i < n; i++)
                cr_assert(eq(u64, frames[i]->pgno, again[i]), "frame %zu", i);
        pager_write_done(pager, frames, n, n);
        cr_assert(eq(u64, stats().dirty, 0));
}

Test(pager, every_frame_pinned_is_enomem_not_a_crash)
{
        struct page *pinned[64], *pg;
        uint64_t npages;
        pgno_t first;

        open_pager(4096, 8); /* raised to the minimum of 64 frames */
        txn_begin();
        for (int i = 0; i < 64; i++)
                cr_assert(eq(int, pager_alloc(pager, PAGE_LEAF, &pinned[i]), SOMBRA_OK));
        npages = pager_npages(pager);
        cr_assert(eq(int, pager_alloc(pager, PAGE_LEAF, &pg), SOMBRA_ENOMEM));
        cr_assert(eq(u64, pager_npages(pager), npages), "the failed page was not counted");
        first = pinned[0]->pgno;
        pager_unpin(pager, pinned[0]);
        cr_assert(eq(int, pager_alloc(pager, PAGE_LEAF, &pg), SOMBRA_OK));
        cr_assert(eq(u64, pg->pgno, npages));
        pager_unpin(pager, pg);
        for (int i = 1; i < 64; i++)
                pager_unpin(pager, pinned[i]);
        /* The one unpinned page made room by spilling; it reads back from the file. */
        cr_assert(eq(u64, stats().spills, 1));
        cr_assert(eq(int, pager_get(pager, first, &pg), SOMBRA_OK));
        cr_assert(eq(u8, page_type(pg), PAGE_LEAF));
        cr_assert(eq(u64, get_be64(pg->data + 16), first));
        pager_unpin(pager, pg);
        txn_commit(UINT64_MAX);
}

/* ---- copy-on-write ---- */

Test(pager, make_writable_keeps_a_page_of_the_current_txn_in_place)
{
        struct page *pg, *same;
        pgno_t pgno;

        open_pager(4096, 64);
        txn_begin();
        cr_assert(eq(int, pager_alloc(pager, PAGE_OVERFLOW, &pg), SOMBRA_OK));
        pgno = pg->pgno;
        same = pg;
        cr_assert(eq(int, pager_make_writable(pager, &pg), SOMBRA_OK));
        cr_assert(eq(ptr, pg, same));
        cr_assert(eq(u64, pg->pgno, pgno));
        cr_assert(eq(u64, pager_npages(pager), 3));
        pager_unpin(pager, pg);
        txn_commit(UINT64_MAX);
        cr_assert(eq(u64, stats().retired_pages, 0));
        cr_assert(eq(u64, stats().free_pages, 0));
}

Test(pager, make_writable_copies_an_older_page_under_a_new_number)
{
        pgno_t old;
        struct page *pg;
        struct idset free_now = IDSET_INIT;

        open_pager(4096, 64);
        txn_begin();
        cr_assert(eq(int, pager_alloc(pager, PAGE_OVERFLOW, &pg), SOMBRA_OK));
        fill_body(pg, 0);
        page_set_aux(pg, 1234); /* as a chain link would be */
        old = pg->pgno;
        pager_unpin(pager, pg);
        txn_commit(UINT64_MAX);

        txn_begin();
        cr_assert(eq(int, pager_get(pager, old, &pg), SOMBRA_OK));
        cr_assert(eq(int, pager_make_writable(pager, &pg), SOMBRA_OK));
        cr_assert(not(eq(u64, pg->pgno, old)));
        cr_assert(eq(u64, get_be64(pg->data + 16), pg->pgno), "the copy has its own number");
        cr_assert(eq(u64, page_txn(pg), committed + 1));
        cr_assert(eq(u8, page_type(pg), PAGE_OVERFLOW));
        cr_assert(eq(u64, page_aux(pg), 1234));
        cr_assert(eq(u16, get_be16(pg->data + 2), 4096 - PAGE_HDR));
        cr_assert(body_is(pg, old, 0), "the body came along");
        cr_assert(pg->dirty);
        fill_body(pg, 1);
        pager_unpin(pager, pg);
        txn_commit(committed); /* a reader still sees the state before */

        expect_page(old, 0);
        cr_assert(eq(u64, stats().retired_pages, 1));
        pager_reclaim(pager, UINT64_MAX);
        cr_assert(eq(u64, stats().retired_pages, 0));
        unreachable(PGNO_NONE, &free_now);
        cr_assert(idset_get(&free_now, old, NULL), "the old page is free once no reader is left");
        cr_assert(eq(sz, free_now.count, 1));
        idset_free(&free_now);
}

/* ---- abort ---- */

Test(pager, abort_frees_the_pages_allocated_in_the_transaction)
{
        pgno_t kept[2], got[3], again[3];
        uint64_t npages;

        open_pager(4096, 64);
        make_pages(2, kept);
        txn_begin();
        alloc_leaves(3, got);
        npages = pager_npages(pager);
        pager_txn_abort(pager);
        cr_assert(eq(u64, stats().free_pages, 3));
        cr_assert(eq(u64, stats().cached, 2), "the aborted pages left the cache");

        /* The same numbers come back; the file does not grow. */
        txn_begin();
        alloc_leaves(3, again);
        for (int i = 0; i < 3; i++)
                cr_assert(again[i] == got[0] || again[i] == got[1] || again[i] == got[2]);
        cr_assert(eq(u64, pager_npages(pager), npages));
        txn_commit(UINT64_MAX);
        cr_assert(eq(u64, stats().free_pages, 0));
}

Test(pager, abort_keeps_the_pages_retired_in_the_transaction)
{
        pgno_t pgnos[4];
        struct page *pg;

        open_pager(4096, 64);
        make_pages(4, pgnos);
        txn_begin();
        retire(pgnos[1]);
        cr_assert(eq(int, pager_get(pager, pgnos[2], &pg), SOMBRA_OK));
        cr_assert(eq(int, pager_make_writable(pager, &pg), SOMBRA_OK));
        fill_body(pg, 9);
        pager_unpin(pager, pg);
        pager_txn_abort(pager);

        for (int i = 0; i < 4; i++)
                expect_page(pgnos[i], 0);
        cr_assert(eq(u64, stats().free_pages, 1), "only the copy is free");
        cr_assert(eq(u64, stats().retired_pages, 0));
}

/* ---- retirement: readers and checkpoints ---- */

Test(pager, page_allocated_and_retired_in_one_txn_is_free_at_commit)
{
        struct page *pg;

        open_pager(4096, 64);
        txn_begin();
        cr_assert(eq(int, pager_alloc(pager, PAGE_LEAF, &pg), SOMBRA_OK));
        cr_assert(eq(int, pager_retire(pager, pg), SOMBRA_OK));
        txn_commit(0); /* even with a reader at txn 0: no one ever saw it */
        cr_assert(eq(u64, stats().free_pages, 1));
        cr_assert(eq(u64, stats().retired_pages, 0));
}

Test(pager, retired_page_becomes_free_once_the_oldest_reader_has_moved_past)
{
        pgno_t pgnos[2];

        open_pager(4096, 64);
        make_pages(2, pgnos);
        txn_begin();
        retire(pgnos[0]);
        txn_commit(0);
        cr_assert(eq(u64, stats().retired_pages, 1));
        pager_reclaim(pager, committed - 1);
        cr_assert(eq(u64, stats().retired_pages, 1), "a reader of the state before needs it");
        expect_page(pgnos[0], 0);
        pager_reclaim(pager, committed);
        cr_assert(eq(u64, stats().retired_pages, 0));
        cr_assert(eq(u64, stats().free_pages, 1));
}

Test(pager, retired_durable_page_is_reused_only_after_the_next_two_checkpoints)
{
        pgno_t pgnos[2], head;
        uint64_t count;
        struct page *pg;

        open_pager(4096, 64);
        make_pages(2, pgnos);
        checkpoint(PGNO_NONE, &head, &count); /* the pages are durable now */

        txn_begin();
        retire(pgnos[0]);
        txn_commit(UINT64_MAX);
        cr_assert(eq(u64, stats().retired_pages, 1), "the last checkpoint still refers to it");
        cr_assert(eq(u64, stats().free_pages, 0));
        txn_begin();
        cr_assert(eq(int, pager_alloc(pager, PAGE_LEAF, &pg), SOMBRA_OK));
        cr_assert(not(eq(u64, pg->pgno, pgnos[0])), "not while the checkpoint refers to it");
        pager_unpin(pager, pg);
        txn_commit(UINT64_MAX);

        /*
         * The new checkpoint no longer refers to it, and lists it as free, but
         * the older meta slot still does: it is the one free page only after
         * one more checkpoint.
         */
        checkpoint(head, &head, &count);
        cr_assert(eq(u64, count, 1));
        cr_assert(eq(u64, stats().retired_pages, 1), "the older slot still refers to it");
        cr_assert(eq(u64, stats().free_pages, 0));
        checkpoint(head, &head, &count);
        cr_assert(eq(u64, stats().free_pages, 1));
        cr_assert(eq(u64, stats().retired_pages, 1), "the last list's page waits in its turn");
        txn_begin();
        cr_assert(eq(int, pager_alloc(pager, PAGE_LEAF, &pg), SOMBRA_OK));
        cr_assert(eq(u64, pg->pgno, pgnos[0]));
        pager_unpin(pager, pg);
        txn_commit(UINT64_MAX);
}

Test(pager, page_retired_before_a_checkpoint_is_free_as_soon_as_its_reader_lets_go)
{
        pgno_t pgnos[2], head;
        uint64_t count;

        open_pager(4096, 64);
        make_pages(2, pgnos);
        checkpoint(PGNO_NONE, &head, &count);
        txn_begin();
        retire(pgnos[0]);
        txn_commit(committed); /* a reader holds the state before */
        checkpoint(head, &head, &count);
        checkpoint(head, &head, &count);
        cr_assert(eq(u64, stats().retired_pages, 2), "the page, and the older list's page");
        /* Neither meta slot refers to it now, so no wait for another checkpoint. */
        pager_reclaim(pager, UINT64_MAX);
        cr_assert(eq(u64, stats().retired_pages, 1));
        cr_assert(eq(u64, stats().free_pages, 1));
}

/* ---- checks on every page read ---- */

/* Two committed, flushed overflow pages; the pager is reopened so that nothing is cached. */
static void
two_pages_on_disk(pgno_t pgnos[2], bool checksums)
{
        open_pager(4096, 64);
        make_pages(2, pgnos);
        cr_assert(eq(int, pager_flush(pager), SOMBRA_OK));
        reopen_pager(64, checksums);
}

Test(pager, a_flipped_bit_anywhere_in_a_page_is_ecorrupt)
{
        /* In the type, reserved byte, count, checksum, self-number, txn, aux, and body. */
        const uint32_t offsets[] = {0, 1, 2, 8, 20, 28, 33, PAGE_HDR, 2000, 4095};
        pgno_t pgnos[2];
        uint8_t orig[4096];

        two_pages_on_disk(pgnos, true);
        cr_assert(eq(int, io_read(&file, orig, 4096, pgnos[0] * 4096), SOMBRA_OK));
        for (size_t i = 0; i < sizeof(offsets) / sizeof(offsets[0]); i++) {
                uint8_t b = orig[offsets[i]] ^ 0x10;

                overwrite(pgnos[0] * 4096 + offsets[i], &b, 1);
                expect_get_fails(pgnos[0], SOMBRA_ECORRUPT);
                overwrite(pgnos[0] * 4096, orig, 4096);
        }
        expect_page(pgnos[0], 0);
        expect_page(pgnos[1], 0);
}

Test(pager, garbage_page_is_ecorrupt)
{
        pgno_t pgnos[2];
        uint8_t junk[4096];
        uint64_t rng = 99;

        two_pages_on_disk(pgnos, true);
        for (size_t i = 0; i < sizeof(junk); i++) {
                rng = rng * 6364136223846793005ull + 1442695040888963407ull;
                junk[i] = (uint8_t)(rng >> 56);
        }
        overwrite(pgnos[1] * 4096, junk, sizeof(junk));
        expect_get_fails(pgnos[1], SOMBRA_ECORRUPT);
        memset(junk, 0, sizeof(junk));
        overwrite(pgnos[1] * 4096, junk, sizeof(junk));
        expect_get_fails(pgnos[1], SOMBRA_ECORRUPT);
        expect_page(pgnos[0], 0);
}

Test(pager, page_written_at_another_number_is_ecorrupt)
{
        pgno_t pgnos[2];
        uint8_t a[4096];

        two_pages_on_disk(pgnos, true);
        cr_assert(eq(int, io_read(&file, a, sizeof(a), pgnos[0] * 4096), SOMBRA_OK));
        overwrite(pgnos[1] * 4096, a, sizeof(a)); /* a valid page, in the wrong place */
        expect_get_fails(pgnos[1], SOMBRA_ECORRUPT);
        expect_page(pgnos[0], 0);
}

Test(pager, without_checksums_structural_damage_is_still_ecorrupt)
{
        pgno_t pgnos[2];
        struct page *pg;
        uint8_t b[4096];

        open_pager(4096, 64);
        txn_begin();
        cr_assert(eq(int, pager_alloc(pager, PAGE_LEAF, &pg), SOMBRA_OK));
        pgnos[0] = pg->pgno;
        pager_unpin(pager, pg);
        cr_assert(eq(int, pager_alloc(pager, PAGE_OVERFLOW, &pg), SOMBRA_OK));
        fill_body(pg, 0);
        pgnos[1] = pg->pgno;
        pager_unpin(pager, pg);
        txn_commit(UINT64_MAX);
        cr_assert(eq(int, pager_flush(pager), SOMBRA_OK));
        reopen_pager(64, false);

        /* A leaf claiming more cells than fit is caught by the structural check. */
        cr_assert(eq(int, io_read(&file, b, sizeof(b), pgnos[0] * 4096), SOMBRA_OK));
        put_be16(b + 2, 3000);
        overwrite(pgnos[0] * 4096, b, sizeof(b));
        expect_get_fails(pgnos[0], SOMBRA_ECORRUPT);
        /* An overflow page claiming more data than a page holds, likewise. */
        cr_assert(eq(int, io_read(&file, b, sizeof(b), pgnos[1] * 4096), SOMBRA_OK));
        put_be16(b + 2, 4096);
        overwrite(pgnos[1] * 4096, b, sizeof(b));
        expect_get_fails(pgnos[1], SOMBRA_ECORRUPT);
        /* Changed data bytes are not noticed without checksums: that is what they are for. */
        put_be16(b + 2, 4096 - PAGE_HDR);
        b[100] ^= 1;
        overwrite(pgnos[1] * 4096, b, sizeof(b));
        cr_assert(eq(int, pager_get(pager, pgnos[1], &pg), SOMBRA_OK));
        pager_unpin(pager, pg);
}

Test(pager, page_number_outside_the_file_is_ecorrupt)
{
        pgno_t pgnos[2];
        struct pager_stats before;

        two_pages_on_disk(pgnos, true);
        before = stats();
        expect_get_fails(0, SOMBRA_ECORRUPT);
        expect_get_fails(1, SOMBRA_ECORRUPT);
        expect_get_fails(pager_npages(pager), SOMBRA_ECORRUPT);
        expect_get_fails(UINT64_MAX, SOMBRA_ECORRUPT);
        expect_get_fails(UINT64_MAX / 4096 + 1, SOMBRA_ECORRUPT);
        cr_assert(eq(u64, stats().pages_read, before.pages_read), "nothing was read");
}

Test(pager, page_past_the_end_of_a_short_file_is_ecorrupt)
{
        pgno_t pgnos[2];

        two_pages_on_disk(pgnos, true);
        cr_assert(eq(int, io_truncate(&file, (pgnos[1] * 4096) + 100), SOMBRA_OK));
        expect_get_fails(pgnos[1], SOMBRA_ECORRUPT);
        expect_page(pgnos[0], 0);
}

Test(pager, failed_reads_do_not_use_up_the_cache)
{
        pgno_t pgnos[2];
        uint8_t zero[4096] = {0};

        two_pages_on_disk(pgnos, true);
        overwrite(pgnos[1] * 4096, zero, sizeof(zero));
        for (int i = 0; i < 3 * 64; i++)
                expect_get_fails(pgnos[1], SOMBRA_ECORRUPT);
        expect_page(pgnos[0], 0);
        cr_assert(eq(u64, stats().cached, 1));
        cr_assert(eq(u64, stats().evictions, 0), "each failed read gave its frame back");
}

/* ---- the free list ---- */

/* Every page of a is in b. */
static bool
subset(const struct idset *a, const struct idset *b)
{
        size_t pos = 0;
        uint64_t key;

        while (idset_next(a, &pos, &key, NULL))
                if (!idset_get(b, key, NULL))
                        return false;
        return true;
}

/*
 * 2000 pages, 1500 of them retired again, then a checkpoint: the free list
 * spans several list pages (507 numbers fit on a 4 KiB one).
 */
static void
free_list_on_disk(pgno_t *pgnos, pgno_t *head, uint64_t *count)
{
        open_pager(4096, 64);
        make_pages(2000, pgnos);
        txn_begin();
        for (size_t i = 0; i < 2000; i++)
                if (i % 4 != 0)
                        retire(pgnos[i]);
        txn_commit(UINT64_MAX);
        checkpoint(PGNO_NONE, head, count);
        cr_assert(eq(u64, *count, 1500 - 3), "three of the free pages now hold the list");
}

Test(pager, free_list_round_trips_through_the_file)
{
        static pgno_t pgnos[2000];
        struct idset before = IDSET_INIT, after = IDSET_INIT;
        pgno_t head;
        uint64_t count;

        free_list_on_disk(pgnos, &head, &count);
        unreachable(head, &before);
        cr_assert(eq(sz, before.count, 1500), "the free pages and the list's own pages");
        for (size_t i = 0; i < 2000; i += 4)
                cr_assert(not(idset_get(&before, pgnos[i], NULL)), "live page %zu listed", i);

        reopen_pager(64, true);
        cr_assert(eq(int, pager_freelist_load(pager, head, count, false), SOMBRA_OK));
        cr_assert(eq(u64, stats().free_pages, count));
        unreachable(head, &after);
        cr_assert(eq(sz, after.count, before.count));
        cr_assert(subset(&before, &after));
        for (size_t i = 0; i < 2000; i += 4)
                expect_page(pgnos[i], 0);
        idset_free(&before);
        idset_free(&after);
}

Test(pager, free_list_lists_pages_still_held_by_readers)
{
        pgno_t pgnos[10], head;
        uint64_t count;
        struct idset loaded = IDSET_INIT;

        open_pager(4096, 64);
        make_pages(10, pgnos);
        txn_begin();
        for (int i = 0; i < 5; i++)
                retire(pgnos[i]);
        txn_commit(committed); /* a reader holds the state before */
        checkpoint(PGNO_NONE, &head, &count);
        cr_assert(eq(u64, count, 5));
        cr_assert(eq(u64, stats().retired_pages, 5), "in memory, the reader still has them");
        expect_page(pgnos[0], 0);

        /* After a restart no reader is left: they are free. */
        reopen_pager(64, true);
        cr_assert(eq(int, pager_freelist_load(pager, head, count, false), SOMBRA_OK));
        cr_assert(eq(u64, stats().free_pages, 5));
        unreachable(PGNO_NONE, &loaded);
        for (int i = 0; i < 5; i++)
                cr_assert(idset_get(&loaded, pgnos[i], NULL), "page %d", i);
        idset_free(&loaded);
}

Test(pager, next_checkpoint_lists_the_previous_free_list_pages)
{
        static pgno_t pgnos[2000];
        struct idset first = IDSET_INIT, loaded = IDSET_INIT;
        pgno_t head, head2;
        uint64_t count, count2;

        free_list_on_disk(pgnos, &head, &count);
        unreachable(head, &first);
        txn_begin();
        retire(pgnos[0]);
        txn_commit(UINT64_MAX);
        checkpoint(head, &head2, &count2);

        /* The pages of both lists, the free pages and the newly retired one: nothing lost. */
        reopen_pager(64, true);
        cr_assert(eq(int, pager_freelist_load(pager, head2, count2, false), SOMBRA_OK));
        unreachable(head2, &loaded);
        cr_assert(eq(sz, loaded.count, first.count + 1));
        cr_assert(idset_get(&loaded, pgnos[0], NULL));
        cr_assert(subset(&first, &loaded));
        idset_free(&first);
        idset_free(&loaded);
}

Test(pager, freelist_load_with_a_wrong_count_is_ecorrupt)
{
        static pgno_t pgnos[2000];
        pgno_t head;
        uint64_t count;

        free_list_on_disk(pgnos, &head, &count);
        reopen_pager(64, true);
        cr_assert(eq(int, pager_freelist_load(pager, head, count - 1, false), SOMBRA_ECORRUPT));
        reopen_pager(64, true);
        cr_assert(eq(int, pager_freelist_load(pager, head, count + 1, false), SOMBRA_ECORRUPT));
        cr_assert(eq(int, pager_freelist_load(pager, PGNO_NONE, 1, false), SOMBRA_ECORRUPT));
}

/* The list page after pgno, read from the file. */
static pgno_t
next_list_page(pgno_t pgno)
{
        uint8_t b[4096];

        cr_assert(eq(int, io_read(&file, b, sizeof(b), pgno * 4096), SOMBRA_OK));
        cr_assert(eq(u8, b[0], PAGE_FREELIST));
        return get_be64(b + 32);
}

Test(pager, freelist_load_rejects_a_looping_chain)
{
        static pgno_t pgnos[2000];
        pgno_t head, last;
        uint64_t count;
        uint8_t b[8];

        free_list_on_disk(pgnos, &head, &count);
        for (last = head; next_list_page(last) != PGNO_NONE;)
                last = next_list_page(last);
        cr_assert(not(eq(u64, last, head)), "the list has several pages");
        put_be64(b, head);
        overwrite(last * 4096 + 32, b, 8); /* the last page links back to the first */
        reopen_pager(64, false);           /* no checksums: only the chain is wrong */
        cr_assert(eq(int, pager_freelist_load(pager, head, UINT64_MAX, false), SOMBRA_ECORRUPT));
        reopen_pager(64, false);
        cr_assert(eq(int, pager_freelist_load(pager, head, count, false), SOMBRA_ECORRUPT));
}

Test(pager, freelist_load_rejects_page_numbers_outside_the_file)
{
        static pgno_t pgnos[2000];
        pgno_t head, bad[4];
        uint64_t count;
        uint8_t orig[8], b[8];

        free_list_on_disk(pgnos, &head, &count);
        bad[0] = 0; /* the meta pages, the end of the file, and far past it */
        bad[1] = 1;
        bad[2] = pager_npages(pager);
        bad[3] = UINT64_MAX;
        cr_assert(eq(int, io_read(&file, orig, 8, head * 4096 + PAGE_HDR + 8), SOMBRA_OK));
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                put_be64(b, bad[i]);
                overwrite(head * 4096 + PAGE_HDR + 8, b, 8);
                reopen_pager(64, false);
                cr_assert(eq(int, pager_freelist_load(pager, head, count, false), SOMBRA_ECORRUPT),
                          "entry %llu", (unsigned long long)get_be64(b));
        }
        overwrite(head * 4096 + PAGE_HDR + 8, orig, 8);
        reopen_pager(64, false);
        cr_assert(eq(int, pager_freelist_load(pager, head, count, false), SOMBRA_OK));
}

Test(pager, freelist_load_rejects_a_chain_through_a_page_of_another_type)
{
        static pgno_t pgnos[2000];
        pgno_t head;
        uint64_t count;
        uint8_t b[8];

        free_list_on_disk(pgnos, &head, &count);
        put_be64(b, pgnos[0]); /* a live overflow page */
        overwrite(head * 4096 + 32, b, 8);
        reopen_pager(64, false);
        cr_assert(eq(int, pager_freelist_load(pager, head, count, false), SOMBRA_ECORRUPT));
}

/*
 * The page checksum is XXH3 of the page after its first 16 bytes, seeded
 * with its first 8, as xxhash's plain entry point computes it: the pager may
 * call the library's AVX2 or AVX-512 code instead (core/hash.h), and a file
 * must check the same on every machine.
 */
Test(pager, a_seal_is_the_plain_xxh3_of_the_page_whatever_code_computes_it)
{
        static const uint32_t sizes[] = {SOMBRA_MIN_PAGESIZE, 8192, 65536};
        uint64_t rng = 0x9e3779b97f4a7c15ull;

        for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
                uint8_t *page = malloc(sizes[s]);
                cr_assert(not(eq(ptr, page, NULL)));
                for (uint32_t i = 0; i < sizes[s]; i++) {
                        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
                        page[i] = (uint8_t)(rng >> 56);
                }
                page_seal(page, sizes[s]);
                cr_expect(eq(u64, get_be64(page + 8),
                             XXH3_64bits_withSeed(page + 16, sizes[s] - 16, get_be64(page))),
                          "page size %u", sizes[s]);
                free(page);
        }
}

/* ---- the readers' map ---- */

/* A reader thread's loop: every page published so far, again and again, until told to stop. */
struct map_reading {
        struct pager *reader;
        const pgno_t *pgnos;
        size_t total;     /* pgnos in all */
        size_t published; /* pgnos[0, published) are readable: atomic */
        int stop;         /* atomic */
        uint64_t passes;  /* atomic: passes over every page, once all were published */
        uint64_t wrong;   /* atomic */
};

static void *
map_read_main(void *arg)
{
        struct map_reading *m = arg;

        while (!__atomic_load_n(&m->stop, __ATOMIC_ACQUIRE)) {
                size_t n = __atomic_load_n(&m->published, __ATOMIC_ACQUIRE);
                for (size_t i = 0; i < n; i++) {
                        struct page *pg;
                        bool right = pager_get(m->reader, m->pgnos[i], &pg) == SOMBRA_OK;
                        if (right) {
                                right = body_is(pg, m->pgnos[i], 0);
                                pager_unpin(m->reader, pg);
                        }
                        if (!right)
                                __atomic_add_fetch(&m->wrong, 1, __ATOMIC_RELAXED);
                }
                if (n == m->total)
                        __atomic_add_fetch(&m->passes, 1, __ATOMIC_RELEASE);
        }
        return NULL;
}

/*
 * The map starts at 4 pages here and grows by segments (4, 8, 16, ...: 9 of them)
 * while a reader on another thread reads every page published: each from
 * the segment that holds it. Before, the file stopped at its map's end.
 */
Test(pager, the_readers_map_grows_with_the_file_while_a_reader_reads)
{
        enum { PAGES = 600, ROUNDS = 12 };
        pgno_t pgnos[PAGES];
        struct map_reading m = {.pgnos = pgnos, .total = PAGES};
        struct page *pg;
        pthread_t t;

        open_file();
        page_size = 4096;
        cr_assert(
            eq(int, pager_create_mapped(&file, 4096, 64, true, 2, 0, 4 * 4096, &pager), SOMBRA_OK));
        cr_assert(eq(int, pager_reader_open(pager, &m.reader), SOMBRA_OK));
        cr_assert(eq(int, pthread_create(&t, NULL, map_read_main, &m), 0));
        for (size_t r = 0; r < ROUNDS; r++) {
                make_pages(PAGES / ROUNDS, pgnos + r * (PAGES / ROUNDS));
                cr_assert(eq(int, pager_write_back(pager), SOMBRA_OK));
                pager_publish(pager, pager_npages(pager));
                __atomic_store_n(&m.published, (r + 1) * (PAGES / ROUNDS), __ATOMIC_RELEASE);
        }
        /* One whole pass over every segment, unless reads go wrong (then at once). */
        while (__atomic_load_n(&m.passes, __ATOMIC_ACQUIRE) == 0 &&
               __atomic_load_n(&m.wrong, __ATOMIC_RELAXED) == 0)
                sched_yield();
        __atomic_store_n(&m.stop, 1, __ATOMIC_RELEASE);
        pthread_join(t, NULL);
        cr_assert(eq(u64, m.wrong, 0), "%llu reads went wrong", (unsigned long long)m.wrong);
        for (size_t i = 0; i < PAGES; i++) {
                cr_assert(eq(int, pager_get(m.reader, pgnos[i], &pg), SOMBRA_OK));
                cr_assert(body_is(pg, pgnos[i], 0), "page %zu", i);
                pager_unpin(m.reader, pg);
        }
        cr_assert(eq(int, pager_get(m.reader, pager_npages(pager), &pg), SOMBRA_ECORRUPT));
        pager_reader_close(m.reader);
        reopen_pager(64, true); /* a pager over the grown file maps it whole at once */
        for (size_t i = 0; i < PAGES; i += 37)
                expect_page(pgnos[i], 0);
}

/* A state the log names past the map made at open: the map grows for pages the file holds. */
Test(pager, adopting_a_state_past_the_map_grows_it_within_the_file)
{
        pgno_t pgnos[100];
        struct pager *reader;
        struct page *pg;
        uint64_t npages;

        open_pager(4096, 64);
        make_pages(100, pgnos);
        cr_assert(eq(int, pager_write_back(pager), SOMBRA_OK));
        npages = pager_npages(pager);
        pager_destroy(pager);
        cr_assert(eq(int,
                     pager_create_mapped(&file, 4096, 64, true, 2, committed, 4 * 4096, &pager),
                     SOMBRA_OK));
        cr_assert(eq(int, pager_adopt_begin(pager, npages + 1), SOMBRA_ECORRUPT), "past the file");
        cr_assert(eq(int, pager_adopt_begin(pager, npages), SOMBRA_OK));
        cr_assert(eq(int, pager_reader_open(pager, &reader), SOMBRA_OK));
        for (size_t i = 0; i < 100; i += 9) {
                cr_assert(eq(int, pager_get(reader, pgnos[i], &pg), SOMBRA_OK));
                cr_assert(body_is(pg, pgnos[i], 0), "page %zu", i);
                pager_unpin(reader, pg);
        }
        pager_reader_close(reader);
        pager_adopt_cancel(pager);
}

/*
 * A walker whose open fails part way (here io_size, on a closed descriptor)
 * is closed by the open itself and handed back as NULL: its caller's own
 * close, as recovery makes it, then does nothing, where it used to free the
 * handle and its runs a second time. A walker opened next works.
 */
Test(pager, a_walker_that_fails_to_open_is_closed_once)
{
        struct pager *walker = NULL;
        int fd;

        open_pager(4096, 64);
        fd = file.fd;
        file.fd = -1;
        cr_assert(not(eq(int, pager_walker_open(pager, &walker), SOMBRA_OK)));
        file.fd = fd;
        cr_assert(eq(ptr, walker, NULL));
        pager_reader_close(walker);
        cr_assert(eq(int, pager_walker_open(pager, &walker), SOMBRA_OK));
        cr_assert(not(eq(ptr, walker, NULL)));
        pager_reader_close(walker);
}
