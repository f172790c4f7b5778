/*
 * pagebuf.h - page buffers from a dedicated jemalloc arena.
 *
 * Every page the engine holds in memory lives in a buffer from this pool: one
 * jemalloc arena made for the database (arenas.create), buffers aligned to the
 * page size, allocated and freed with MALLOCX_TCACHE_NONE so that no thread
 * cache keeps page memory away from the arena. Freed buffers are kept on a
 * free stack (up to `keep` of them) and handed out again before the arena is
 * asked for more, so that a warm engine does not call the allocator at all.
 *
 * Thread safety: pagebuf_get and pagebuf_put may be called from any thread
 * (the free stack is guarded by a spinlock held for a pointer swap); the
 * counters are read with ck_pr loads.
 */
#ifndef SOMBRA_PAGEBUF_H
#define SOMBRA_PAGEBUF_H

#include <stddef.h>
#include <stdint.h>

struct pagebuf_stats {
        uint64_t allocated; /* buffers obtained from the arena, ever (a run counts its buffers) */
        uint64_t in_use;    /* buffers handed out and not yet returned (runs included) */
        uint64_t recycled;  /* gets served from the free stack */
        uint64_t cached;    /* buffers sitting on the free stack now */
};

struct pagebuf_pool;

/*
 * Creates a pool of buffers of `size` bytes (a power of two >= 512), keeping
 * up to `keep` freed buffers for reuse. SOMBRA_ENOMEM if the arena or the pool
 * cannot be made.
 */
int pagebuf_pool_create(size_t size, size_t keep, struct pagebuf_pool **out);
/* Frees every cached buffer and the pool. Buffers still in use must have been put back. */
void pagebuf_pool_destroy(struct pagebuf_pool *pool);

/* A buffer of the pool's size, contents undefined; NULL when memory is exhausted. */
void *pagebuf_get(struct pagebuf_pool *pool);
/* Returns a buffer obtained from pagebuf_get on the same pool. NULL is ignored. */
void pagebuf_put(struct pagebuf_pool *pool, void *buf);

/*
 * n buffers in a row: n * size bytes aligned to size, contents undefined, for
 * reads of several pages at once (recovery's log window and walk). They come
 * from the same arena as the buffers, whose extents of 2 MiB or more are
 * advised as huge pages: once such a page is touched, the rest of it costs
 * no fault, where each fresh 4 KiB page of the C heap costs one (about 10 us
 * on the project machine). Not seen by AddressSanitizer, like the buffers.
 * NULL when memory is exhausted or n is 0. Not recycled through the free
 * stack: pagebuf_put_run gives it back to the arena.
 */
void *pagebuf_get_run(struct pagebuf_pool *pool, size_t n);
/* Returns a run from pagebuf_get_run on the same pool, with the same n. NULL is ignored. */
void pagebuf_put_run(struct pagebuf_pool *pool, void *run, size_t n);

size_t pagebuf_size(const struct pagebuf_pool *pool);
void pagebuf_stats(const struct pagebuf_pool *pool, struct pagebuf_stats *out);

#endif
