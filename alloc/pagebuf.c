/*
 * pagebuf.c - runs of page buffers from jemalloc.
 *
 * Design
 *   Every run comes from mallocx with MALLOCX_ALIGN and MALLOCX_TCACHE_NONE
 *   and goes back with dallocx(MALLOCX_TCACHE_NONE): page memory never sits
 *   in a thread cache. Nothing here ever calls free() on a run.
 *
 *   There are runs only, no single buffers. jemalloc serves an 8 KiB
 *   allocation aligned to 8 KiB from its 16 KiB class, and spaced such
 *   allocations about 28 KiB apart: a page cache of 8 KiB buffers got one
 *   at a time spread over three times its size, and every transparent huge
 *   page it touched (2 MiB zeroed at the first touch) held a third of that
 *   in pages. The pager takes its whole cache as one run instead
 *   (pager_create), touched only as frames are used.
 *
 *   A run of 2 MiB or more is aligned to 2 MiB and advised as transparent
 *   huge pages (MADV_HUGEPAGE), so that filling it takes one fault per
 *   2 MiB, not one per 4 KiB: on a virtual machine each fault is an exit to
 *   the hypervisor, and a recovery that made 4 MiB of new pages spent a
 *   third of its time in them. The advice is only that: without THP it
 *   does nothing.
 *
 *   The runs come from jemalloc's own arenas. A pool used to make an arena
 *   of its own (arenas.create, with extent hooks that mapped and unmapped
 *   its memory) and destroy it with the database. That cost every open
 *   0.25-0.9 ms of arena metadata (21-63 page faults) and every close
 *   0.1-0.4 ms, and each open's cache was fresh memory, faulted in again.
 *   jemalloc keeps a run given back for the next one (its dirty pages are
 *   returned to the kernel after opt.dirty_decay_ms, 10 s by default), so a
 *   database reopened in the same process finds its cache's memory already
 *   there. jemalloc maps with MAP_NORESERVE where the kernel overcommits,
 *   so a large cache reserved whole at open is not refused for memory it
 *   may never touch.
 *
 * Threads
 *   Runs may be taken and given back on any thread. The counters change
 *   with ck_pr atomic adds, and every reader loads them with ck_pr_load_64;
 *   a stats snapshot is two separate loads, not one consistent cut.
 */
#include "pagebuf.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

#include <ck_pr.h>
#include <jemalloc/jemalloc.h>

#include "sombra.h"

#define PAGEBUF_MIN_SIZE 512u
#define PAGEBUF_HUGE     ((size_t)2 << 20) /* a transparent huge page with 4 KiB base pages */

struct pagebuf_pool {
        size_t size;
        uint64_t allocated; /* buffers in runs ever taken; ck_pr_add_64 */
        uint64_t in_use;    /* buffers in runs out now; ck_pr_add_64 / ck_pr_sub_64 */
};

static bool
is_pow2(size_t x)
{
        return x != 0 && (x & (x - 1)) == 0;
}

int
pagebuf_pool_create(size_t size, struct pagebuf_pool **out)
{
        struct pagebuf_pool *pool;

        if (out == NULL || size < PAGEBUF_MIN_SIZE || !is_pow2(size))
                return SOMBRA_EINVAL;
        pool = calloc(1, sizeof(*pool));
        if (pool == NULL)
                return SOMBRA_ENOMEM;
        pool->size = size;
        *out = pool;
        return SOMBRA_OK;
}

void
pagebuf_pool_destroy(struct pagebuf_pool *pool)
{
        free(pool);
}

void *
pagebuf_get_run(struct pagebuf_pool *pool, size_t n)
{
        size_t bytes;
        bool huge;
        void *run;

        if (n == 0 || n > SIZE_MAX / pool->size)
                return NULL;
        bytes = n * pool->size;
        huge = bytes >= PAGEBUF_HUGE;
        run = mallocx(bytes, MALLOCX_TCACHE_NONE | MALLOCX_ALIGN(huge ? PAGEBUF_HUGE : pool->size));
        if (run == NULL)
                return NULL;
        if (huge)
                (void)madvise(run, bytes, MADV_HUGEPAGE); /* advice: failing changes nothing */
        ck_pr_add_64(&pool->allocated, n);
        ck_pr_add_64(&pool->in_use, n);
        return run;
}

void
pagebuf_put_run(struct pagebuf_pool *pool, void *run, size_t n)
{
        if (run == NULL)
                return;
        ck_pr_sub_64(&pool->in_use, n);
        dallocx(run, MALLOCX_TCACHE_NONE);
}

size_t
pagebuf_size(const struct pagebuf_pool *pool)
{
        return pool->size;
}

void
pagebuf_stats(const struct pagebuf_pool *pool, struct pagebuf_stats *out)
{
        out->allocated = ck_pr_load_64(&pool->allocated);
        out->in_use = ck_pr_load_64(&pool->in_use);
}
