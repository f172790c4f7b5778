/*
 * pagebuf.c - runs of page buffers from a dedicated jemalloc arena.
 *
 * Design
 *   A pool owns one manual jemalloc arena (arenas.create). Every run comes
 *   from mallocx with MALLOCX_ARENA, MALLOCX_ALIGN(size) and
 *   MALLOCX_TCACHE_NONE, and goes back with dallocx(MALLOCX_TCACHE_NONE):
 *   page memory never sits in a thread cache, where it would be invisible to
 *   the arena and could outlive the pool. Nothing here ever calls free() on a
 *   run, and nothing binds a thread to the arena.
 *
 *   There are runs only, no single buffers. jemalloc serves an 8 KiB
 *   allocation aligned to 8 KiB from its 16 KiB size class, and spaced such
 *   allocations about 28 KiB apart: a page cache of 8 KiB buffers got one
 *   at a time spread over three times its size, and every transparent huge
 *   page it touched (2 MiB zeroed at the first touch) held a third of that
 *   in pages. The pager takes its whole cache as one run instead
 *   (pager_create), touched only as frames are used.
 *
 *   On destroy the arena is destroyed (arena.<i>.destroy) when no run is
 *   still handed out, so that its index can be reused by the next pool. If
 *   runs are still out (a caller bug) the arena is left alone: they stay
 *   valid memory instead of becoming dangling pointers.
 *
 *   The arena gets its memory through extent hooks of its own (mmap and
 *   munmap). jemalloc's default hooks on Linux retain the virtual memory of
 *   freed extents for reuse (opt.retain), and a destroyed arena's retained
 *   extents are never reused by the next one: every open and close of a
 *   database left a few mappings behind, until a process that reopened
 *   often enough ran out of them (vm.max_map_count) - found by fuzz_wal.
 *   With these hooks a destroyed arena gives its address space back.
 *
 *   The hooks record the mappings they make (struct pagebuf_space), and an
 *   extent inside a recorded mapping is never unmapped or purged on its own:
 *   jemalloc keeps it for reuse, and the pool unmaps each mapping once, when
 *   it is destroyed. jemalloc cuts its mappings into many small extents;
 *   giving those back one by one was an munmap or madvise each, every one a
 *   TLB shootdown across the process's CPUs: a thousand of them, 17 ms, to
 *   close a database whose recovery had filled 4 MiB of pages. The price: a
 *   pool's memory does not shrink while it lives. It is the page cache's,
 *   bounded by its size anyway. A mapping that finds the table full is
 *   handled as before, unmapped when freed.
 *
 *   The mappings are MAP_NORESERVE: a page cache is reserved whole at open
 *   and filled as it is used, and a large configured cache must not be
 *   refused at open by the kernel's overcommit heuristic for memory it may
 *   never touch. Under strict overcommit (mode 2) the kernel ignores the
 *   flag and charges the whole run: the administrator asked for that.
 *
 * Threads
 *   Runs may be taken and given back on any thread. The counters change
 *   with ck_pr atomic adds, and every reader loads them with ck_pr_load_64;
 *   a stats snapshot is two separate loads, not one consistent cut.
 */
#include "pagebuf.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

#include <ck_pr.h>
#include <ck_spinlock.h>
#include <jemalloc/jemalloc.h>

#include "sombra.h"

#define PAGEBUF_MIN_SIZE 512u
#define PAGEBUF_HUGE     ((size_t)2 << 20) /* a transparent huge page with 4 KiB base pages */
#define PAGEBUF_MAPS     128u              /* mappings a pool records (see Design) */

/* The mappings made for a pool's arena; the hooks get a pointer to `hooks` back. */
struct pagebuf_space {
        extent_hooks_t hooks; /* first, so that a hook's `hooks` argument is the space */
        ck_spinlock_t lock;
        /*
         * Off while arenas.create maps the arena's own metadata: a few KiB of
         * it are touched, and a huge page there is 2 MiB of memory for them,
         * and 70 us to fault in, but 3-6 ms now and then on the project
         * machine (12 of 75 arenas made in the benchmark).
         */
        bool huge;
        size_t n;
        struct {
                uint8_t *at;
                size_t size;
        } maps[PAGEBUF_MAPS];
};

struct pagebuf_pool {
        size_t size;
        unsigned arena; /* index from arenas.create */
        struct pagebuf_space *space;
        int alloc_flags;
        uint64_t allocated; /* buffers in runs ever taken; ck_pr_add_64 */
        uint64_t in_use;    /* buffers in runs out now; ck_pr_add_64 / ck_pr_sub_64 */
};

static bool
is_pow2(size_t x)
{
        return x != 0 && (x & (x - 1)) == 0;
}

/* ---- the arena's extent hooks: anonymous mappings, unmapped with the pool ---- */

static struct pagebuf_space *
space_of(extent_hooks_t *hooks)
{
        return (struct pagebuf_space *)hooks;
}

/* Records a new mapping; one that finds the table full is freed on its own. */
static void
space_add(struct pagebuf_space *sp, uint8_t *at, size_t size)
{
        ck_spinlock_lock(&sp->lock);
        if (sp->n < PAGEBUF_MAPS) {
                sp->maps[sp->n].at = at;
                sp->maps[sp->n].size = size;
                sp->n++;
        }
        ck_spinlock_unlock(&sp->lock);
}

/* Whether addr lies in a recorded mapping: its extents stay until the pool goes. */
static bool
space_holds(struct pagebuf_space *sp, const void *addr)
{
        const uint8_t *a = addr;
        bool held = false;

        ck_spinlock_lock(&sp->lock);
        for (size_t i = 0; i < sp->n && !held; i++)
                held = a >= sp->maps[i].at && a < sp->maps[i].at + sp->maps[i].size;
        ck_spinlock_unlock(&sp->lock);
        return held;
}

/*
 * Maps size bytes aligned to `alignment` (a power of two, at least a page):
 * maps more and trims both ends. At new_addr only when jemalloc asks for
 * that exact place (to grow an extent in place); NULL when it cannot be had.
 *
 * An extent of a huge page or more is aligned to one and advised as huge
 * (transparent huge pages), so that filling it takes one fault per 2 MiB,
 * not one per 4 KiB: on a virtual machine each fault is an exit to the
 * hypervisor, and a recovery that makes 4 MiB of new pages spent a third of
 * its time in them. The advice is only that: without THP it does nothing.
 */
static void *
extent_map(extent_hooks_t *hooks, void *new_addr, size_t size, size_t alignment, bool *zero,
           bool *commit, unsigned arena_ind)
{
        size_t span;
        uint8_t *m, *at;
        bool huge;

        (void)arena_ind;
        huge = size >= PAGEBUF_HUGE && space_of(hooks)->huge;
        if (huge && alignment < PAGEBUF_HUGE)
                alignment = PAGEBUF_HUGE;
        span = size + alignment;
        if (span < size)
                return NULL;
        m = mmap(new_addr, new_addr != NULL ? size : span, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (m == MAP_FAILED)
                return NULL;
        if (new_addr != NULL) {
                if (m == new_addr)
                        goto label_done;
                munmap(m, size);
                return NULL;
        }
        at = (uint8_t *)(((uintptr_t)m + alignment - 1) & ~(uintptr_t)(alignment - 1));
        if (at > m)
                munmap(m, (size_t)(at - m));
        if (at + size < m + span)
                munmap(at + size, (size_t)(m + span - (at + size)));
        m = at;
label_done:
        if (huge)
                (void)madvise(m, size, MADV_HUGEPAGE); /* advice: failing changes nothing */
        space_add(space_of(hooks), m, size);
        *zero = true; /* fresh anonymous memory reads as zeros */
        *commit = true;
        return m;
}

/* True (kept) for an extent of a recorded mapping; else unmapped, and false. */
static bool
extent_unmap(extent_hooks_t *hooks, void *addr, size_t size, bool committed, unsigned arena_ind)
{
        (void)committed;
        (void)arena_ind;
        if (space_holds(space_of(hooks), addr))
                return true;
        return munmap(addr, size) != 0;
}

static void
extent_destroy(extent_hooks_t *hooks, void *addr, size_t size, bool committed, unsigned arena_ind)
{
        (void)extent_unmap(hooks, addr, size, committed, arena_ind);
}

/* Gives the pages back, to read as zeros when touched again; not a recorded mapping's. */
static bool
extent_purge(extent_hooks_t *hooks, void *addr, size_t size, size_t offset, size_t length,
             unsigned arena_ind)
{
        (void)size;
        (void)arena_ind;
        if (space_holds(space_of(hooks), addr))
                return true;
        return madvise((uint8_t *)addr + offset, length, MADV_DONTNEED) != 0;
}

/* Mappings can be cut and joined at any page: munmap takes any page range. */
static bool
extent_split(extent_hooks_t *hooks, void *addr, size_t size, size_t size_a, size_t size_b,
             bool committed, unsigned arena_ind)
{
        (void)hooks;
        (void)addr;
        (void)size;
        (void)size_a;
        (void)size_b;
        (void)committed;
        (void)arena_ind;
        return false;
}

/*
 * Joined only when both are recorded or neither is: a partly recorded
 * extent would be unmapped whole by extent_unmap (its start not recorded),
 * and the recorded part then unmapped again with the pool.
 */
static bool
extent_merge(extent_hooks_t *hooks, void *addr_a, size_t size_a, void *addr_b, size_t size_b,
             bool committed, unsigned arena_ind)
{
        struct pagebuf_space *sp = space_of(hooks);

        (void)size_a;
        (void)size_b;
        (void)committed;
        (void)arena_ind;
        return space_holds(sp, addr_a) != space_holds(sp, addr_b);
}

/* No commit hooks: the memory is always committed. */
static const extent_hooks_t pagebuf_hooks = {
    .alloc = extent_map,
    .dalloc = extent_unmap,
    .destroy = extent_destroy,
    .purge_forced = extent_purge,
    .split = extent_split,
    .merge = extent_merge,
};

/* Once the arena is gone: every recorded mapping, unmapped. */
static void
space_free(struct pagebuf_space *sp)
{
        for (size_t i = 0; i < sp->n; i++)
                munmap(sp->maps[i].at, sp->maps[i].size);
        free(sp);
}

int
pagebuf_pool_create(size_t size, struct pagebuf_pool **out)
{
        struct pagebuf_pool *pool;
        extent_hooks_t *hooks;
        size_t sz = sizeof(unsigned);

        if (out == NULL || size < PAGEBUF_MIN_SIZE || !is_pow2(size))
                return SOMBRA_EINVAL;

        pool = calloc(1, sizeof(*pool));
        if (pool == NULL)
                return SOMBRA_ENOMEM;
        pool->space = calloc(1, sizeof(*pool->space));
        if (pool->space == NULL)
                goto label_fail;
        pool->space->hooks = pagebuf_hooks;
        ck_spinlock_init(&pool->space->lock);
        hooks = &pool->space->hooks;
        if (mallctl("arenas.create", &pool->arena, &sz, &hooks, sizeof(hooks)) != 0)
                goto label_fail;
        pool->space->huge = true; /* from now on the extents are for buffers */

        pool->size = size;
        pool->alloc_flags = MALLOCX_ARENA(pool->arena) | MALLOCX_TCACHE_NONE | MALLOCX_ALIGN(size);
        *out = pool;
        return SOMBRA_OK;

label_fail:
        if (pool->space != NULL)
                space_free(pool->space); /* no arena: what it mapped is nobody's */
        free(pool);
        return SOMBRA_ENOMEM;
}

void
pagebuf_pool_destroy(struct pagebuf_pool *pool)
{
        char name[48];

        if (pool == NULL)
                return;
        /* With runs still out the arena and its memory stay: they must remain valid. */
        if (ck_pr_load_64(&pool->in_use) == 0) {
                snprintf(name, sizeof(name), "arena.%u.destroy", pool->arena);
                /* A failure leaves the arena, which may still use its mappings: leak them. */
                if (mallctl(name, NULL, NULL, NULL, 0) == 0)
                        space_free(pool->space);
        }
        free(pool);
}

void *
pagebuf_get_run(struct pagebuf_pool *pool, size_t n)
{
        void *run;

        if (n == 0 || n > SIZE_MAX / pool->size)
                return NULL;
        run = mallocx(n * pool->size, pool->alloc_flags);
        if (run != NULL) {
                ck_pr_add_64(&pool->allocated, n);
                ck_pr_add_64(&pool->in_use, n);
        }
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
