/*
 * pagebuf.h - runs of page buffers from a dedicated jemalloc arena.
 *
 * Every page the engine holds in memory lives in a run from this pool: one
 * jemalloc arena made for the database (arenas.create), runs aligned to the
 * page size, allocated and freed with MALLOCX_TCACHE_NONE so that no thread
 * cache keeps page memory away from the arena. The pager takes its whole
 * cache as one run when it is made; walkers and recovery take runs for
 * reads of several pages at once.
 *
 * Thread safety: runs may be taken and given back from any thread; the
 * counters are read with ck_pr loads.
 */
#ifndef SOMBRA_PAGEBUF_H
#define SOMBRA_PAGEBUF_H

#include <stddef.h>
#include <stdint.h>

struct pagebuf_stats {
        uint64_t allocated; /* buffers in the runs obtained from the arena, ever */
        uint64_t in_use;    /* buffers in the runs handed out and not yet returned */
};

struct pagebuf_pool;

/*
 * Creates a pool of buffers of `size` bytes (a power of two >= 512).
 * SOMBRA_ENOMEM if the arena or the pool cannot be made.
 */
int pagebuf_pool_create(size_t size, struct pagebuf_pool **out);
/* Frees the pool and its arena's memory. Every run must have been put back. */
void pagebuf_pool_destroy(struct pagebuf_pool *pool);

/*
 * n buffers in a row: n * size bytes aligned to size, contents undefined.
 * The arena's extents of 2 MiB or more are advised as huge pages: once such
 * a page is touched, the rest of it costs no fault, where each fresh 4 KiB
 * page of the C heap costs one (about 10 us on the project machine). Memory
 * is committed as it is touched, so a large run that is only partly used
 * costs only what is used. Not seen by AddressSanitizer. NULL when memory
 * is exhausted or n is 0.
 */
void *pagebuf_get_run(struct pagebuf_pool *pool, size_t n);
/* Returns a run from pagebuf_get_run on the same pool, with the same n. NULL is ignored. */
void pagebuf_put_run(struct pagebuf_pool *pool, void *run, size_t n);

size_t pagebuf_size(const struct pagebuf_pool *pool);
void pagebuf_stats(const struct pagebuf_pool *pool, struct pagebuf_stats *out);

#endif
