/*
 * pagebuf.c - page buffers from a dedicated jemalloc arena.
 *
 * Design
 *   A pool owns one manual jemalloc arena (arenas.create). Every buffer comes
 *   from mallocx with MALLOCX_ARENA, MALLOCX_ALIGN(size) and
 *   MALLOCX_TCACHE_NONE, and goes back with dallocx(MALLOCX_TCACHE_NONE):
 *   page memory never sits in a thread cache, where it would be invisible to
 *   the arena and could outlive the pool. Nothing here ever calls free() on a
 *   buffer, and nothing binds a thread to the arena.
 *
 *   Freed buffers go onto a free stack, an array of `keep` pointers made once
 *   at create, so that put and get never allocate. The stack is guarded by a
 *   spinlock held only for a push or a pop; the allocator is always called
 *   with the lock released. A put that finds the stack full returns the
 *   buffer to the arena.
 *
 *   On destroy the cached buffers go back to the arena, and the arena itself
 *   is destroyed (arena.<i>.destroy) when no buffer is still handed out, so
 *   that its index can be reused by the next pool. If buffers are still out
 *   (a caller bug) the arena is left alone: those buffers stay valid memory
 *   instead of becoming dangling pointers.
 *
 * Threads
 *   pagebuf_get and pagebuf_put run on any thread. `top` and `stack` change
 *   only under `lock`. The counters change under `lock` or with ck_pr atomic
 *   adds, and every reader loads them with ck_pr_load_64; a stats snapshot is
 *   four separate loads, not one consistent cut.
 */
#include "pagebuf.h"

#include <assert.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include <ck_pr.h>
#include <ck_spinlock.h>
#include <jemalloc/jemalloc.h>

#include "sombra.h"

#define PAGEBUF_MIN_SIZE 512u

struct pagebuf_pool {
        size_t size;
        size_t keep;    /* slots in stack */
        unsigned arena; /* index from arenas.create */
        int alloc_flags;
        ck_spinlock_t lock;
        void **stack;       /* keep slots; [0, top) hold cached buffers; under lock */
        uint64_t top;       /* buffers on the stack; written under lock, read with ck_pr */
        uint64_t allocated; /* ck_pr_inc_64 */
        uint64_t in_use;    /* ck_pr_inc_64 / ck_pr_dec_64 */
        uint64_t recycled;  /* ck_pr_inc_64 */
};

static bool
is_pow2(size_t x)
{
        return x != 0 && (x & (x - 1)) == 0;
}

int
pagebuf_pool_create(size_t size, size_t keep, struct pagebuf_pool **out)
{
        struct pagebuf_pool *pool;
        size_t sz = sizeof(unsigned);

        if (out == NULL || size < PAGEBUF_MIN_SIZE || !is_pow2(size))
                return SOMBRA_EINVAL;

        pool = calloc(1, sizeof(*pool));
        if (pool == NULL)
                return SOMBRA_ENOMEM;
        if (keep > 0) {
                pool->stack = calloc(keep, sizeof(*pool->stack));
                if (pool->stack == NULL)
                        goto label_fail;
        }
        if (mallctl("arenas.create", &pool->arena, &sz, NULL, 0) != 0)
                goto label_fail;

        pool->size = size;
        pool->keep = keep;
        pool->alloc_flags = MALLOCX_ARENA(pool->arena) | MALLOCX_TCACHE_NONE | MALLOCX_ALIGN(size);
        ck_spinlock_init(&pool->lock);
        *out = pool;
        return SOMBRA_OK;

label_fail:
        free(pool->stack);
        free(pool);
        return SOMBRA_ENOMEM;
}

void
pagebuf_pool_destroy(struct pagebuf_pool *pool)
{
        char name[48];

        if (pool == NULL)
                return;
        for (uint64_t i = 0; i < pool->top; i++)
                dallocx(pool->stack[i], MALLOCX_TCACHE_NONE);

        if (ck_pr_load_64(&pool->in_use) == 0) {
                snprintf(name, sizeof(name), "arena.%u.destroy", pool->arena);
                /* Failure only leaks an empty arena; there is nothing to undo. */
                (void)mallctl(name, NULL, NULL, NULL, 0);
        }
        free(pool->stack);
        free(pool);
}

void *
pagebuf_get(struct pagebuf_pool *pool)
{
        void *buf = NULL;

        ck_spinlock_lock(&pool->lock);
        if (pool->top > 0) {
                buf = pool->stack[pool->top - 1];
                ck_pr_store_64(&pool->top, pool->top - 1);
        }
        ck_spinlock_unlock(&pool->lock);

        if (buf != NULL) {
                ck_pr_inc_64(&pool->recycled);
        } else {
                buf = mallocx(pool->size, pool->alloc_flags);
                if (buf == NULL)
                        return NULL;
                ck_pr_inc_64(&pool->allocated);
        }
        ck_pr_inc_64(&pool->in_use);
        return buf;
}

void
pagebuf_put(struct pagebuf_pool *pool, void *buf)
{
        bool kept = false;

        if (buf == NULL)
                return;
        assert(((uintptr_t)buf & (pool->size - 1)) == 0);

        ck_pr_dec_64(&pool->in_use);
        ck_spinlock_lock(&pool->lock);
        if (pool->top < pool->keep) {
                pool->stack[pool->top] = buf;
                ck_pr_store_64(&pool->top, pool->top + 1);
                kept = true;
        }
        ck_spinlock_unlock(&pool->lock);

        if (!kept)
                dallocx(buf, MALLOCX_TCACHE_NONE);
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
        out->recycled = ck_pr_load_64(&pool->recycled);
        out->cached = ck_pr_load_64(&pool->top);
}
