/*
 * test_pagebuf.c - the page buffer pool: alignment, reuse through the free
 * stack, its bound, the counters, and concurrent use; and zpages, the
 * zeroed tables beside it in alloc/.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <jemalloc/jemalloc.h>

#include "pagebuf.h"
#include "sombra.h"
#include "zpages.h"

static struct pagebuf_stats
stats_of(const struct pagebuf_pool *pool)
{
        struct pagebuf_stats st;

        pagebuf_stats(pool, &st);
        return st;
}

Test(pagebuf, create_rejects_sizes_that_are_not_powers_of_two_from_512)
{
        struct pagebuf_pool *pool = NULL;

        cr_assert(eq(int, pagebuf_pool_create(0, 4, &pool), SOMBRA_EINVAL));
        cr_assert(eq(int, pagebuf_pool_create(256, 4, &pool), SOMBRA_EINVAL));
        cr_assert(eq(int, pagebuf_pool_create(4097, 4, &pool), SOMBRA_EINVAL));
        cr_assert(eq(int, pagebuf_pool_create(6144, 4, &pool), SOMBRA_EINVAL));
        cr_assert(eq(int, pagebuf_pool_create(4096, 4, NULL), SOMBRA_EINVAL));
        cr_assert(eq(ptr, pool, NULL));
}

Test(pagebuf, buffers_are_aligned_to_their_size_and_writable)
{
        static const size_t sizes[] = {512, 4096, 8192, 65536};

        for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
                struct pagebuf_pool *pool;
                void *bufs[16];

                cr_assert(eq(int, pagebuf_pool_create(sizes[s], 4, &pool), SOMBRA_OK));
                cr_assert(eq(sz, pagebuf_size(pool), sizes[s]));
                for (int i = 0; i < 16; i++) {
                        bufs[i] = pagebuf_get(pool);
                        cr_assert(not(eq(ptr, bufs[i], NULL)));
                        cr_assert(eq(u64, (uintptr_t)bufs[i] % sizes[s], 0), "size %zu", sizes[s]);
                        memset(bufs[i], i, sizes[s]);
                }
                for (int i = 0; i < 16; i++)
                        pagebuf_put(pool, bufs[i]);
                pagebuf_pool_destroy(pool);
        }
}

/*
 * A run is n buffers in a row, aligned like one, counted as n in use while
 * it is out; none of it goes to the free stack, and an empty or overflowing
 * request gets nothing.
 */
Test(pagebuf, a_run_is_n_buffers_in_a_row_counted_while_out)
{
        struct pagebuf_pool *pool;
        uint8_t *run;

        cr_assert(eq(int, pagebuf_pool_create(8192, 4, &pool), SOMBRA_OK));
        cr_assert(eq(ptr, pagebuf_get_run(pool, 0), NULL));
        cr_assert(eq(ptr, pagebuf_get_run(pool, SIZE_MAX / 4096), NULL));
        run = pagebuf_get_run(pool, 16);
        cr_assert(not(eq(ptr, run, NULL)));
        cr_assert(eq(u64, (uintptr_t)run % 8192, 0));
        memset(run, 0x5a, 16 * 8192);
        cr_assert(eq(u8, run[16 * 8192 - 1], 0x5a));
        cr_assert(eq(u64, stats_of(pool).in_use, 16));
        cr_assert(eq(u64, stats_of(pool).allocated, 16));
        pagebuf_put_run(pool, run, 16);
        pagebuf_put_run(pool, NULL, 3);
        cr_assert(eq(u64, stats_of(pool).in_use, 0));
        cr_assert(eq(u64, stats_of(pool).cached, 0));
        pagebuf_pool_destroy(pool);
}

Test(pagebuf, put_buffer_is_handed_out_again)
{
        struct pagebuf_pool *pool;
        void *a, *b;
        struct pagebuf_stats st;

        cr_assert(eq(int, pagebuf_pool_create(8192, 4, &pool), SOMBRA_OK));
        a = pagebuf_get(pool);
        st = stats_of(pool);
        cr_assert(eq(u64, st.allocated, 1));
        cr_assert(eq(u64, st.in_use, 1));
        cr_assert(eq(u64, st.recycled, 0));

        pagebuf_put(pool, a);
        st = stats_of(pool);
        cr_assert(eq(u64, st.in_use, 0));
        cr_assert(eq(u64, st.cached, 1));

        b = pagebuf_get(pool);
        cr_assert(eq(ptr, b, a));
        st = stats_of(pool);
        cr_assert(eq(u64, st.allocated, 1), "a recycled buffer is not a new allocation");
        cr_assert(eq(u64, st.recycled, 1));
        cr_assert(eq(u64, st.cached, 0));
        cr_assert(eq(u64, st.in_use, 1));
        pagebuf_put(pool, b);
        pagebuf_pool_destroy(pool);
}

Test(pagebuf, free_stack_keeps_at_most_keep_buffers)
{
        struct pagebuf_pool *pool;
        void *bufs[10];
        struct pagebuf_stats st;

        cr_assert(eq(int, pagebuf_pool_create(4096, 3, &pool), SOMBRA_OK));
        for (int i = 0; i < 10; i++)
                bufs[i] = pagebuf_get(pool);
        for (int i = 0; i < 10; i++)
                pagebuf_put(pool, bufs[i]);
        st = stats_of(pool);
        cr_assert(eq(u64, st.cached, 3));
        cr_assert(eq(u64, st.in_use, 0));
        cr_assert(eq(u64, st.allocated, 10));

        for (int i = 0; i < 5; i++)
                bufs[i] = pagebuf_get(pool);
        st = stats_of(pool);
        cr_assert(eq(u64, st.recycled, 3));
        cr_assert(eq(u64, st.allocated, 12));
        cr_assert(eq(u64, st.cached, 0));
        cr_assert(eq(u64, st.in_use, 5));
        for (int i = 0; i < 5; i++)
                pagebuf_put(pool, bufs[i]);
        pagebuf_pool_destroy(pool);
}

Test(pagebuf, pool_that_keeps_nothing_still_works)
{
        struct pagebuf_pool *pool;
        void *a;

        cr_assert(eq(int, pagebuf_pool_create(4096, 0, &pool), SOMBRA_OK));
        a = pagebuf_get(pool);
        cr_assert(not(eq(ptr, a, NULL)));
        pagebuf_put(pool, a);
        cr_assert(eq(u64, stats_of(pool).cached, 0));
        cr_assert(eq(u64, stats_of(pool).in_use, 0));
        pagebuf_pool_destroy(pool);
}

Test(pagebuf, putting_null_is_ignored)
{
        struct pagebuf_pool *pool;

        cr_assert(eq(int, pagebuf_pool_create(4096, 2, &pool), SOMBRA_OK));
        pagebuf_put(pool, NULL);
        cr_assert(eq(u64, stats_of(pool).cached, 0));
        cr_assert(eq(u64, stats_of(pool).in_use, 0));
        pagebuf_pool_destroy(pool);
}

Test(pagebuf, pools_can_be_made_and_destroyed_past_the_arena_limit)
{
        /*
         * jemalloc allows 4095 arenas; destroying a pool must hand its arena
         * index back, or a long-running program that opens and closes
         * databases would run out.
         */
        for (int i = 0; i < 5000; i++) {
                struct pagebuf_pool *pool;
                void *a;

                cr_assert(eq(int, pagebuf_pool_create(4096, 1, &pool), SOMBRA_OK), "pool %d", i);
                a = pagebuf_get(pool);
                cr_assert(not(eq(ptr, a, NULL)));
                pagebuf_put(pool, a);
                pagebuf_pool_destroy(pool);
        }
}

enum { THREADS = 8, ROUNDS = 20000, HELD = 4 };

static void *
churn(void *arg)
{
        struct pagebuf_pool *pool = arg;
        size_t size = pagebuf_size(pool);
        unsigned char tag = (unsigned char)(uintptr_t)pthread_self();
        void *held[HELD];

        for (int r = 0; r < ROUNDS; r++) {
                for (int i = 0; i < HELD; i++) {
                        held[i] = pagebuf_get(pool);
                        cr_assert(not(eq(ptr, held[i], NULL)));
                        memset(held[i], tag + i, size);
                }
                /* A buffer handed to two threads at once would show the other's bytes. */
                for (int i = 0; i < HELD; i++) {
                        unsigned char *p = held[i];

                        cr_assert(eq(u8, p[0], (unsigned char)(tag + i)));
                        cr_assert(eq(u8, p[size - 1], (unsigned char)(tag + i)));
                        pagebuf_put(pool, held[i]);
                }
        }
        return NULL;
}

Test(pagebuf, concurrent_gets_and_puts_keep_counters_consistent)
{
        struct pagebuf_pool *pool;
        pthread_t threads[THREADS];
        struct pagebuf_stats st;

        cr_assert(eq(int, pagebuf_pool_create(4096, 16, &pool), SOMBRA_OK));
        for (int i = 0; i < THREADS; i++)
                cr_assert(eq(int, pthread_create(&threads[i], NULL, churn, pool), 0));
        for (int i = 0; i < THREADS; i++)
                cr_assert(eq(int, pthread_join(threads[i], NULL), 0));

        st = stats_of(pool);
        cr_assert(eq(u64, st.in_use, 0));
        cr_assert(le(u64, st.cached, 16));
        cr_assert(eq(u64, st.allocated + st.recycled, (uint64_t)THREADS * ROUNDS * HELD));
        cr_assert(gt(u64, st.recycled, 0));
        pagebuf_pool_destroy(pool);
}

/* Whether the kernel gives transparent huge pages to memory advised as huge. */
static bool
thp_offered(void)
{
        char line[128] = "";
        FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");

        if (f == NULL)
                return false;
        if (fgets(line, sizeof(line), f) == NULL)
                line[0] = '\0';
        fclose(f);
        return strstr(line, "[never]") == NULL && line[0] != '\0';
}

/* Whether jemalloc grows arenas by extents of 2 MiB and more (opt.retain, its default). */
static bool
jemalloc_retains(void)
{
        bool retain = false;
        size_t sz = sizeof(retain);

        return mallctl("opt.retain", &retain, &sz, NULL, 0) == 0 && retain;
}

/*
 * The mapping of /proc/self/smaps that holds addr: its start, and whether
 * its VmFlags carry `hg` (advised MADV_HUGEPAGE). False if none holds addr.
 */
static bool
mapping_of(const void *addr, uintptr_t *start, bool *advised)
{
        char line[512];
        bool inside = false, found = false;
        FILE *f = fopen("/proc/self/smaps", "r");

        cr_assert(not(eq(ptr, f, NULL)));
        while (!found && fgets(line, sizeof(line), f) != NULL) {
                unsigned long lo, hi;
                if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2) {
                        inside = (uintptr_t)addr >= lo && (uintptr_t)addr < hi;
                        *start = lo;
                } else if (inside && strncmp(line, "VmFlags:", 8) == 0) {
                        *advised = strstr(line, " hg") != NULL;
                        found = true;
                }
        }
        fclose(f);
        return found;
}

Test(pagebuf, a_pool_of_several_megabytes_is_advised_as_huge_pages)
{
        struct pagebuf_pool *pool;
        void *bufs[512]; /* 4 MiB of 8 KiB buffers */
        uintptr_t start = 0;
        bool advised = false;

        if (!thp_offered() || !jemalloc_retains())
                cr_skip("no transparent huge pages here, or jemalloc maps small extents");
        cr_assert(eq(int, pagebuf_pool_create(8192, 0, &pool), SOMBRA_OK));
        for (int i = 0; i < 512; i++) {
                bufs[i] = pagebuf_get(pool);
                cr_assert(not(eq(ptr, bufs[i], NULL)));
        }
        cr_assert(mapping_of(bufs[511], &start, &advised), "no mapping holds the buffer");
        cr_expect(advised, "the buffers' mapping was not advised MADV_HUGEPAGE");
        cr_expect(eq(u64, start % ((uintptr_t)2 << 20), 0), "the mapping is not 2 MiB aligned");
        for (int i = 0; i < 512; i++)
                pagebuf_put(pool, bufs[i]);
        pagebuf_pool_destroy(pool);
}

/*
 * The pool keeps the mappings its arena was given until it is destroyed
 * (freed extents stay for reuse), and destroying it unmaps every one of
 * them: no buffer's address is mapped afterwards.
 */
Test(pagebuf, a_destroyed_pool_leaves_none_of_its_mappings_behind)
{
        struct pagebuf_pool *pool;
        void *bufs[600];
        uintptr_t start;
        bool advised;

        cr_assert(eq(int, pagebuf_pool_create(8192, 0, &pool), SOMBRA_OK));
        for (int i = 0; i < 600; i++) {
                bufs[i] = pagebuf_get(pool);
                cr_assert(not(eq(ptr, bufs[i], NULL)));
        }
        for (int i = 0; i < 600; i++)
                pagebuf_put(pool, bufs[i]); /* keeps none: each goes back to the arena */
        cr_assert(mapping_of(bufs[0], &start, &advised), "freed, but its memory is kept");
        pagebuf_pool_destroy(pool);
        for (int i = 0; i < 600; i += 37)
                cr_assert(not(mapping_of(bufs[i], &start, &advised)), "buffer %d is still mapped",
                          i);
}

Test(zpages, a_table_reads_as_zeros_keeps_what_is_written_and_overflow_is_refused)
{
        enum { N = 1 << 20 }; /* 8 MiB of words */
        uint64_t *t = zpages_alloc(N, sizeof(*t));

        cr_assert_not_null(t);
        cr_assert(eq(u64, t[0], 0));
        cr_assert(eq(u64, t[N / 2], 0));
        cr_assert(eq(u64, t[N - 1], 0));
        t[12345] = 7;
        cr_assert(eq(u64, t[12345], 7));
        cr_assert(eq(u64, t[12346], 0));
        zpages_free(t, N, sizeof(*t));
        cr_assert_null(zpages_alloc(SIZE_MAX / 2, 4));
        cr_assert_null(zpages_alloc(0, 8));
        zpages_free(NULL, 1, 1); /* nothing to unmap */
}
