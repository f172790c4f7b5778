/*
 * test_pagebuf.c - the page buffer pool: runs, their alignment, the
 * counters, concurrent use, huge pages, memory committed only as touched,
 * and the mappings given back; and zpages, the zeroed tables beside it in
 * alloc/.
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

        cr_assert(eq(int, pagebuf_pool_create(0, &pool), SOMBRA_EINVAL));
        cr_assert(eq(int, pagebuf_pool_create(256, &pool), SOMBRA_EINVAL));
        cr_assert(eq(int, pagebuf_pool_create(4097, &pool), SOMBRA_EINVAL));
        cr_assert(eq(int, pagebuf_pool_create(6144, &pool), SOMBRA_EINVAL));
        cr_assert(eq(int, pagebuf_pool_create(4096, NULL), SOMBRA_EINVAL));
        cr_assert(eq(ptr, pool, NULL));
}

Test(pagebuf, runs_are_aligned_to_the_buffer_size_and_writable)
{
        static const size_t sizes[] = {512, 4096, 8192, 65536};
        static const size_t lengths[] = {1, 3, 16};

        for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
                struct pagebuf_pool *pool;

                cr_assert(eq(int, pagebuf_pool_create(sizes[s], &pool), SOMBRA_OK));
                cr_assert(eq(sz, pagebuf_size(pool), sizes[s]));
                for (size_t l = 0; l < sizeof(lengths) / sizeof(lengths[0]); l++) {
                        size_t len = lengths[l] * sizes[s];
                        uint8_t *run = pagebuf_get_run(pool, lengths[l]);

                        cr_assert(not(eq(ptr, run, NULL)));
                        cr_assert(eq(u64, (uintptr_t)run % sizes[s], 0), "size %zu", sizes[s]);
                        memset(run, (int)l + 1, len);
                        cr_assert(eq(u8, run[len - 1], (uint8_t)(l + 1)));
                        pagebuf_put_run(pool, run, lengths[l]);
                }
                pagebuf_pool_destroy(pool);
        }
}

/* A run is counted as n buffers while it is out; an empty or overflowing request gets nothing. */
Test(pagebuf, a_run_is_n_buffers_counted_while_out)
{
        struct pagebuf_pool *pool;
        uint8_t *a, *b;

        cr_assert(eq(int, pagebuf_pool_create(8192, &pool), SOMBRA_OK));
        cr_assert(eq(ptr, pagebuf_get_run(pool, 0), NULL));
        cr_assert(eq(ptr, pagebuf_get_run(pool, SIZE_MAX / 4096), NULL));
        a = pagebuf_get_run(pool, 16);
        b = pagebuf_get_run(pool, 5);
        cr_assert(not(eq(ptr, a, NULL)));
        cr_assert(not(eq(ptr, b, NULL)));
        cr_assert(b >= a + 16 * 8192 || b + 5 * 8192 <= a, "the runs overlap");
        cr_assert(eq(u64, stats_of(pool).in_use, 21));
        cr_assert(eq(u64, stats_of(pool).allocated, 21));
        pagebuf_put_run(pool, a, 16);
        pagebuf_put_run(pool, NULL, 3); /* ignored */
        cr_assert(eq(u64, stats_of(pool).in_use, 5));
        pagebuf_put_run(pool, b, 5);
        cr_assert(eq(u64, stats_of(pool).in_use, 0));
        cr_assert(eq(u64, stats_of(pool).allocated, 21), "allocated counts every run ever taken");
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

                cr_assert(eq(int, pagebuf_pool_create(4096, &pool), SOMBRA_OK), "pool %d", i);
                a = pagebuf_get_run(pool, 1);
                cr_assert(not(eq(ptr, a, NULL)));
                pagebuf_put_run(pool, a, 1);
                pagebuf_pool_destroy(pool);
        }
}

enum { THREADS = 8, ROUNDS = 5000, HELD = 4 };

struct churner {
        struct pagebuf_pool *pool;
        int index;
};

static void *
churn(void *arg)
{
        struct churner *c = arg;
        struct pagebuf_pool *pool = c->pool;
        size_t size = pagebuf_size(pool);
        unsigned char tag = (unsigned char)(c->index * HELD); /* no two threads share a tag */
        uint8_t *held[HELD];

        for (int r = 0; r < ROUNDS; r++) {
                for (int i = 0; i < HELD; i++) {
                        held[i] = pagebuf_get_run(pool, (size_t)i + 1);
                        cr_assert(not(eq(ptr, held[i], NULL)));
                        memset(held[i], tag + i, size * ((size_t)i + 1));
                }
                /* A run handed to two threads at once would show the other's bytes. */
                for (int i = 0; i < HELD; i++) {
                        cr_assert(eq(u8, held[i][0], (unsigned char)(tag + i)));
                        cr_assert(
                            eq(u8, held[i][size * ((size_t)i + 1) - 1], (unsigned char)(tag + i)));
                        pagebuf_put_run(pool, held[i], (size_t)i + 1);
                }
        }
        return NULL;
}

Test(pagebuf, concurrent_runs_keep_counters_consistent)
{
        struct pagebuf_pool *pool;
        pthread_t threads[THREADS];
        struct churner churners[THREADS];
        struct pagebuf_stats st;

        cr_assert(eq(int, pagebuf_pool_create(4096, &pool), SOMBRA_OK));
        for (int i = 0; i < THREADS; i++) {
                churners[i] = (struct churner){pool, i};
                cr_assert(eq(int, pthread_create(&threads[i], NULL, churn, &churners[i]), 0));
        }
        for (int i = 0; i < THREADS; i++)
                cr_assert(eq(int, pthread_join(threads[i], NULL), 0));

        st = stats_of(pool);
        cr_assert(eq(u64, st.in_use, 0));
        cr_assert(eq(u64, st.allocated, (uint64_t)THREADS * ROUNDS * (1 + 2 + 3 + 4)));
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

/* What /proc/self/smaps says of the mapping that holds an address. */
struct mapping {
        uintptr_t start;
        size_t rss_kib;
        bool advised;   /* VmFlags `hg`: advised MADV_HUGEPAGE */
        bool noreserve; /* VmFlags `nr`: no swap space reserved */
};

/* False if no mapping holds addr. */
static bool
mapping_of(const void *addr, struct mapping *m)
{
        char line[512];
        bool inside = false, found = false;
        FILE *f = fopen("/proc/self/smaps", "r");

        cr_assert(not(eq(ptr, f, NULL)));
        while (!found && fgets(line, sizeof(line), f) != NULL) {
                unsigned long lo, hi;
                size_t kib;
                if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2) {
                        inside = (uintptr_t)addr >= lo && (uintptr_t)addr < hi;
                        *m = (struct mapping){.start = lo};
                } else if (inside && sscanf(line, "Rss: %zu kB", &kib) == 1) {
                        m->rss_kib = kib;
                } else if (inside && strncmp(line, "VmFlags:", 8) == 0) {
                        m->advised = strstr(line, " hg") != NULL;
                        m->noreserve = strstr(line, " nr") != NULL;
                        found = true;
                }
        }
        fclose(f);
        return found;
}

Test(pagebuf, a_run_of_several_megabytes_is_advised_as_huge_pages)
{
        struct pagebuf_pool *pool;
        uint8_t *run;
        struct mapping m;

        if (!thp_offered() || !jemalloc_retains())
                cr_skip("no transparent huge pages here, or jemalloc maps small extents");
        cr_assert(eq(int, pagebuf_pool_create(8192, &pool), SOMBRA_OK));
        run = pagebuf_get_run(pool, 512); /* 4 MiB */
        cr_assert(not(eq(ptr, run, NULL)));
        cr_assert(mapping_of(run + 511 * 8192, &m), "no mapping holds the run");
        cr_expect(m.advised, "the run's mapping was not advised MADV_HUGEPAGE");
        cr_expect(eq(u64, m.start % ((uintptr_t)2 << 20), 0), "the mapping is not 2 MiB aligned");
        pagebuf_put_run(pool, run, 512);
        pagebuf_pool_destroy(pool);
}

/*
 * The pager takes its whole cache as one run when it is made: memory must
 * be committed only as it is touched, and not reserved against the
 * overcommit limit, or every open would pay for a cache it may never fill.
 */
Test(pagebuf, a_large_run_costs_memory_only_where_it_is_touched)
{
        enum { N = 8192, TOUCHED = 300 }; /* 64 MiB; 2.3 MiB of it touched */
        struct pagebuf_pool *pool;
        uint8_t *run;
        struct mapping before, after;

        cr_assert(eq(int, pagebuf_pool_create(8192, &pool), SOMBRA_OK));
        run = pagebuf_get_run(pool, N);
        cr_assert(not(eq(ptr, run, NULL)));
        cr_assert(mapping_of(run, &before));
        cr_expect(before.noreserve, "the run's mapping reserves swap space");
        cr_assert(lt(sz, before.rss_kib, (size_t)2048), "an untouched run is resident");
        for (size_t i = 0; i < TOUCHED; i++)
                run[i * 8192] = 1;
        cr_assert(mapping_of(run, &after));
        /* At most three huge pages: the touched 2.3 MiB may straddle two boundaries. */
        cr_assert(le(sz, after.rss_kib, before.rss_kib + 3 * 2048), "rss %zu kB", after.rss_kib);
        cr_assert(ge(sz, after.rss_kib, (size_t)TOUCHED * 4), "the touched pages are resident");
        pagebuf_put_run(pool, run, N);
        pagebuf_pool_destroy(pool);
}

/*
 * The pool keeps the mappings its arena was given until it is destroyed
 * (freed extents stay for reuse), and destroying it unmaps every one of
 * them: no run's address is mapped afterwards.
 */
Test(pagebuf, a_destroyed_pool_leaves_none_of_its_mappings_behind)
{
        struct pagebuf_pool *pool;
        uint8_t *runs[40];
        struct mapping m;

        cr_assert(eq(int, pagebuf_pool_create(8192, &pool), SOMBRA_OK));
        for (int i = 0; i < 40; i++) {
                runs[i] = pagebuf_get_run(pool, (size_t)i % 7 + 1);
                cr_assert(not(eq(ptr, runs[i], NULL)));
        }
        for (int i = 0; i < 40; i++)
                pagebuf_put_run(pool, runs[i], (size_t)i % 7 + 1);
        cr_assert(mapping_of(runs[0], &m), "freed, but its memory is kept");
        pagebuf_pool_destroy(pool);
        for (int i = 0; i < 40; i++)
                cr_assert(not(mapping_of(runs[i], &m)), "run %d is still mapped", i);
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
