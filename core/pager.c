/*
 * pager.c - page cache and page life cycle (see pager.h for the page header).
 *
 * The cache is a fixed array of `cache_cap` frames, a map from page number to
 * frame, and a CLOCK hand. A frame is found for a new page by taking an empty
 * one or sweeping the hand past pinned and recently used frames. A dirty
 * victim is written ("spilled") before its buffer is reused: that is always
 * safe because only fresh pages are ever dirty, and no durable meta page
 * refers to a fresh page.
 *
 * Where a page number lives, exactly one of:
 *   reachable   from the current state (a tree, an overflow chain), or from
 *               the free-list chain of the last durable meta page;
 *   free        reusable now (`free`);
 *   limbo       retired by a committed txn; readers of older states may still
 *               read it (`limbo`, in txn order);
 *   pending     no reader can see it, but a meta page on file (or the one a
 *               checkpoint under way is writing) may still refer to it, so
 *               it must not be overwritten yet (`pending`; see "Epochs");
 *   txn         allocated or retired by the open transaction (`txn_alloc`,
 *               `txn_retired`) until it commits or aborts.
 * The free list written at a checkpoint lists free, limbo and pending pages and
 * the pages of the previous list: after a crash nothing is read any more, so
 * everything outside the new state is reusable.
 *
 * Epochs. Checkpoints are numbered as they begin (the state opened counts as
 * the first); a page retired while checkpoint e was the last begun carries
 * epoch e, and is reachable from checkpoint e's meta page at most. Both meta
 * slots must stay whole: if the newer one is damaged, open falls back to the
 * older. So such a page is reused once neither slot can hold a meta page
 * that reaches it: after the two checkpoints that follow e are durable.
 * (After one that restarted the WAL, falling back past it is refused, but
 * only while the new log header is on disk, which nothing syncs at once.)
 * `release_below` is the first epoch still kept.
 *
 * Checksums: XXH3-64 of bytes 16..size seeded with bytes 0..8, so the stored
 * checksum (bytes 8..16) never has to be zeroed to be computed.
 */
#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "hash.h"

#include "sombra.h"
#include "pager.h"
#include "idset.h"
#include "radix.h"
#include "btree.h"
#include "../alloc/pagebuf.h"
#include "../alloc/zpages.h"

/* Pages in a row that pager_write_frames hands to one io_write_blocks. */
#define PAGER_WRITE_RUN 256

struct pgvec {
        pgno_t *v;
        size_t n, cap;
};

struct retired {
        pgno_t pgno;
        uint64_t txn;        /* the txn that made it unreachable */
        uint64_t ckpt_epoch; /* the last checkpoint begun when it was retired (see Epochs) */
        uint64_t born;       /* the txn that wrote it */
        bool durable;        /* the last durable meta could reach it when retired */
        bool born_in_txn;    /* allocated by the same txn that retired it */
};

struct retvec {
        struct retired *v;
        size_t head, n, cap; /* live entries are v[head..n) */
};

/* A frame pager_write_take writes, and its page number to sort it by. */
struct take_key {
        uint64_t pgno;
        struct page *pg;
};

struct pager {
        struct io_file *file;
        uint32_t page_size;
        uint32_t cache_cap;
        bool checksums;
        uint8_t leaf_cells; /* enum page_cells */
        uint64_t npages;
        /* Pages with txn <= this are referenced by durable metas, or by the one being written. */
        uint64_t ckpt_txn;
        uint64_t ckpt_begun;    /* the number of the last checkpoint begun (see Epochs) */
        uint64_t ckpt_done;     /* ... and of the last one completed */
        uint64_t release_below; /* pending pages of an older epoch are reusable */
        uint64_t txn;           /* the open transaction, 0 when none */
        uint64_t adopt_from;    /* pages in the file at the checkpoint (pager_adopt_begin) */
        bool hold;              /* another process reads an older checkpoint (pager_set_hold) */

        struct pagebuf_pool *bufs;
        uint8_t *scratch;
        struct page *frames;
        uint8_t *frame_mem;        /* the spare (pager_run_get), then the frames in index order */
        size_t spare_top;          /* spare pages handed out, from the start */
        size_t spare_out;          /* spare runs out: the spare is free again at 0 */
        struct idset map;          /* pgno -> frame index */
        struct pgvec empty_frames; /* indexes of frames released, without a page */
        uint32_t frames_used;      /* frames [0, frames_used) were ever handed out */
        size_t hand;

        struct pgvec free;
        struct retvec pending; /* by pgno and ckpt_epoch only */
        struct retvec limbo;
        struct pgvec txn_alloc;
        struct retvec txn_retired;

        struct pager_stats st;

        /*
         * Snapshot readers (see pager_reader_open). The file is mapped
         * read-only in segments that never move (map_grow); readers take
         * committed pages straight from them. Written by the writer:
         * `published_npages`, the segments' pointers and bits of their
         * `valid` maps, with __atomic builtins (see store.c). `map_first`
         * and `map_shift` never change after creation; `nmaps` is the
         * writer's.
         */
        uint8_t *maps[PAGER_MAP_SEGS];   /* segment k: map_seg's pages of the file */
        uint64_t *valid[PAGER_MAP_SEGS]; /* a bit per page of a segment: checked since written */
        uint64_t map_first;        /* pages of segment 0 (a power of two, but for a private file) */
        uint32_t map_shift;        /* log2 of map_first, for a shared map */
        uint32_t nmaps;            /* segments mapped */
        uint64_t published_npages; /* pages readers may touch */
        struct page **dirty;       /* frames dirtied since the last write-back, each once */
        size_t ndirty;
        struct page **taken;        /* pager_write_take's frames, until pager_write_done */
        struct take_key *take_keys; /* 2 * cache_cap: pager_write_take's sort and its spare */
        bool taking;                /* a take is out: the next one waits for its done */

        /* Reader handles only: the writer's pager, and page descriptors to pin. */
        struct pager *writer;
        struct page *descs;
        struct pgvec free_descs;
        uint8_t *copies; /* a walker's buffers, one for each of its WALKER_PINS descriptors */
        uint8_t *block;  /* a walker's WALK_BLOCK pages from block_at, block_n of them read */
        pgno_t block_at;
        uint64_t block_n, block_used, singles; /* pages of the block served; read alone since */
        uint64_t file_pages;                   /* whole pages in the file at the walker's open */
};

static int
pgvec_reserve(struct pgvec *a, size_t want)
{
        size_t cap = a->cap ? a->cap : 64;
        pgno_t *v;

        if (want <= a->cap)
                return SOMBRA_OK;
        while (cap < want)
                cap *= 2;
        v = realloc(a->v, cap * sizeof(*v));
        if (v == NULL)
                return SOMBRA_ENOMEM;
        a->v = v;
        a->cap = cap;
        return SOMBRA_OK;
}

static int
pgvec_push(struct pgvec *a, pgno_t x)
{
        int rc = pgvec_reserve(a, a->n + 1);
        if (rc != SOMBRA_OK)
                return rc;
        a->v[a->n++] = x;
        return SOMBRA_OK;
}

static int
retvec_push(struct retvec *a, const struct retired *r)
{
        if (a->n == a->cap) {
                if (a->head > 0) { /* slide the live part down before growing */
                        memmove(a->v, a->v + a->head, (a->n - a->head) * sizeof(*a->v));
                        a->n -= a->head;
                        a->head = 0;
                }
        }
        if (a->n == a->cap) {
                size_t cap = a->cap ? a->cap * 2 : 64;
                struct retired *v = realloc(a->v, cap * sizeof(*v));
                if (v == NULL)
                        return SOMBRA_ENOMEM;
                a->v = v;
                a->cap = cap;
        }
        a->v[a->n++] = *r;
        return SOMBRA_OK;
}

/* A page that the meta page of checkpoint `epoch` may reach waits until no slot can hold it. */
static int
pending_add(struct pager *p, pgno_t pgno, uint64_t epoch)
{
        struct retired r = {.pgno = pgno, .ckpt_epoch = epoch, .durable = true};

        return retvec_push(&p->pending, &r);
}

/* Appends the page numbers of a's live entries to out. */
static int
retvec_pgnos(const struct retvec *a, struct pgvec *out)
{
        int rc = SOMBRA_OK;

        for (size_t i = a->head; i < a->n && rc == SOMBRA_OK; i++)
                rc = pgvec_push(out, a->v[i].pgno);
        return rc;
}

static uint64_t
page_checksum(const uint8_t *data, uint32_t size)
{
        return XXH3_64bits_withSeed(data + 16, size - 16, get_be64(data));
}

void
page_seal(uint8_t *data, uint32_t page_size)
{
        put_be64(data + 8, page_checksum(data, page_size));
}

uint8_t
page_type(const struct page *pg)
{
        return pg->data[0];
}

uint64_t
page_txn(const struct page *pg)
{
        return get_be64(pg->data + 24);
}

uint64_t
page_aux(const struct page *pg)
{
        return get_be64(pg->data + 32);
}

void
page_set_aux(struct page *pg, uint64_t aux)
{
        put_be64(pg->data + 32, aux);
}

/*
 * Where a page lies in the readers' map: segment 0 holds the first
 * map_first pages, and each segment k after it as many as all before it,
 * pages [map_first << (k - 1), map_first << k). *at gets the page's index
 * in its segment.
 */
static uint32_t
map_seg(const struct pager *p, pgno_t pgno, uint64_t *at)
{
        uint32_t k;

        if (pgno < p->map_first) {
                *at = pgno;
                return 0;
        }
        k = 64 - (uint32_t)__builtin_clzll(pgno >> p->map_shift);
        *at = pgno - (p->map_first << (k - 1));
        return k;
}

/* Pages of segment k. */
static uint64_t
seg_pages(const struct pager *p, uint32_t k)
{
        return k == 0 ? p->map_first : p->map_first << (k - 1);
}

/* Pages the map covers: segment nmaps would start there. */
static uint64_t
map_end(const struct pager *p)
{
        return p->nmaps == 0 ? 0 : seg_pages(p, p->nmaps);
}

/*
 * Maps the next segment of the file for readers, as many pages as the map
 * covers so far (its size doubles), with a bitmap of checked pages for it.
 * The writer's, before it numbers a page past the map: a reader only reads
 * pages below published_npages, which the writer raises (release) after
 * the segment's pointers are stored (release). SOMBRA_ENOSPC when no more
 * address space can be had, or for a private file, which is its own map.
 */
static int
map_grow(struct pager *p)
{
        uint32_t k = p->nmaps;
        uint64_t pages = seg_pages(p, k);
        uint64_t *bits;
        void *m;

        if (p->file->priv != NULL || k == PAGER_MAP_SEGS ||
            pages > (uint64_t)INT64_MAX / p->page_size - map_end(p))
                return SOMBRA_ENOSPC;
        m = mmap(NULL, pages * p->page_size, PROT_READ, MAP_SHARED, p->file->fd,
                 (off_t)(map_end(p) * p->page_size));
        if (m == MAP_FAILED)
                return SOMBRA_ENOSPC;
        /* A bit for every page it can hold: a MiB for 64 GiB of 8 KiB pages, zero until set. */
        bits = zpages_alloc((pages + 63) / 64, sizeof(uint64_t));
        if (bits == NULL) {
                munmap(m, pages * p->page_size);
                return SOMBRA_ENOMEM;
        }
        __atomic_store_n(&p->valid[k], bits, __ATOMIC_RELEASE);
        __atomic_store_n(&p->maps[k], (uint8_t *)m, __ATOMIC_RELEASE);
        p->nmaps = k + 1;
        return SOMBRA_OK;
}

/*
 * Maps the file for readers: at first map_bytes of address space (twice the
 * file when that is more), and more as the file grows past it (map_grow).
 * Pages past the end of the file are never touched: readers only read pages
 * that were written before the snapshot naming them was published.
 */
static int
map_create(struct pager *p, uint64_t map_bytes)
{
        uint64_t want = map_bytes / p->page_size, pages = 1;
        uint64_t step = (uint64_t)sysconf(_SC_PAGESIZE) / p->page_size;

        if (want < 2 * p->npages)
                want = 2 * p->npages;
        if (want < step)
                want = step;
        /*
         * A power of two: a page's segment is then a shift and a count of
         * leading zeros (map_seg), and every segment starts at a multiple of
         * the system's page size, where mmap can map it.
         */
        while (pages < want)
                pages <<= 1;
        if (p->file->priv != NULL) {
                /* A private file is its own map: readers see what this process wrote there. */
                p->map_first = p->file->priv_cap / p->page_size;
                p->valid[0] = zpages_alloc((p->map_first + 63) / 64, sizeof(uint64_t));
                if (p->valid[0] == NULL)
                        return SOMBRA_ENOMEM;
                p->maps[0] = p->file->priv;
                p->nmaps = 1;
        } else {
                p->map_first = pages;
                p->map_shift = (uint32_t)__builtin_ctzll(pages);
                if (map_grow(p) != SOMBRA_OK)
                        return SOMBRA_ENOMEM;
        }
        p->published_npages = p->npages;
        return SOMBRA_OK;
}

static void
map_destroy(struct pager *p)
{
        for (uint32_t k = 0; k < p->nmaps; k++) {
                if (p->maps[k] != p->file->priv)
                        munmap(p->maps[k], seg_pages(p, k) * p->page_size);
                zpages_free(p->valid[k], (seg_pages(p, k) + 63) / 64, sizeof(uint64_t));
        }
        p->nmaps = 0;
}

/*
 * A page's place in the readers' map: its bytes, and the word and bit that
 * say whether it was checked since it was last written.
 */
struct map_slot {
        uint8_t *data;
        uint64_t *word;
        uint64_t bit;
};

static struct map_slot
map_slot(struct pager *p, pgno_t pgno)
{
        uint64_t at;
        uint32_t k = map_seg(p, pgno, &at);
        uint8_t *seg = __atomic_load_n(&p->maps[k], __ATOMIC_ACQUIRE);
        uint64_t *bits = __atomic_load_n(&p->valid[k], __ATOMIC_ACQUIRE);

        return (struct map_slot){seg + at * p->page_size, &bits[at / 64], 1ull << (at % 64)};
}

static void
validated_set(struct pager *p, pgno_t pgno)
{
        struct map_slot at = map_slot(p, pgno);

        __atomic_fetch_or(at.word, at.bit, __ATOMIC_RELEASE);
}

/*
 * Pages before the frames in the cache's run, for an open's scratch runs
 * (recovery's log window, a walker's buffers: pager_run_get). Beside the
 * first frames they share their huge page: apart, the open touched two, and
 * on the project machine the first touch of a huge page takes 3-6 ms now
 * and then instead of 0.1-0.3 (bench/README.md, "One run for the cache").
 */
#define PAGER_SPARE_BYTES ((size_t)512 << 10)

static size_t
spare_pages(const struct pager *p)
{
        return PAGER_SPARE_BYTES / p->page_size;
}

int
pager_create(struct io_file *file, uint32_t page_size, uint32_t cache_pages, bool checksums,
             uint64_t npages, uint64_t ckpt_txn, struct pager **out)
{
        return pager_create_mapped(file, page_size, cache_pages, checksums, npages, ckpt_txn,
                                   PAGER_MAP_BYTES, out);
}

int
pager_create_mapped(struct io_file *file, uint32_t page_size, uint32_t cache_pages, bool checksums,
                    uint64_t npages, uint64_t ckpt_txn, uint64_t map_bytes, struct pager **out)
{
        struct pager *p;
        int rc;

        if (page_size < SOMBRA_MIN_PAGESIZE || page_size > SOMBRA_MAX_PAGESIZE ||
            (page_size & (page_size - 1)) != 0 || npages < 2)
                return SOMBRA_EINVAL;
        if (cache_pages < SOMBRA_MIN_CACHE_PAGES)
                cache_pages = SOMBRA_MIN_CACHE_PAGES;
        p = calloc(1, sizeof(*p));
        if (p == NULL)
                return SOMBRA_ENOMEM;
        p->file = file;
        p->page_size = page_size;
        p->cache_cap = cache_pages;
        p->checksums = checksums;
        p->npages = npages;
        p->ckpt_txn = ckpt_txn;
        p->ckpt_begun = p->ckpt_done = p->release_below = 1; /* the state opened is the first */
        p->frames = zpages_alloc(cache_pages, sizeof(*p->frames)); /* used from the low end */
        if (p->frames == NULL) {
                rc = SOMBRA_ENOMEM;
                goto label_fail;
        }
        rc = pagebuf_pool_create(page_size, &p->bufs);
        if (rc != SOMBRA_OK)
                goto label_fail;
        /*
         * The whole cache in one run, so that its frames lie side by side and
         * each huge page the frames touch holds nothing but frames. Only
         * address space until a frame is first used: a page fault then, as
         * before, but fewer (pagebuf.c, Design).
         */
        p->frame_mem = pagebuf_get_run(p->bufs, spare_pages(p) + cache_pages);
        if (p->frame_mem == NULL) {
                rc = SOMBRA_ENOMEM;
                goto label_fail;
        }
        p->scratch = malloc((size_t)page_size * PAGER_SCRATCH_PAGES);
        if (p->scratch == NULL) {
                rc = SOMBRA_ENOMEM;
                goto label_fail;
        }
        rc = map_create(p, map_bytes);
        if (rc != SOMBRA_OK)
                goto label_fail;
        p->dirty = malloc(cache_pages * sizeof(*p->dirty));
        p->taken = malloc(cache_pages * sizeof(*p->taken));
        p->take_keys = malloc(2 * (size_t)cache_pages * sizeof(*p->take_keys));
        if (p->dirty == NULL || p->taken == NULL || p->take_keys == NULL) {
                rc = SOMBRA_ENOMEM;
                goto label_fail;
        }
        /*
         * Room for every frame, so that a release never fails; the memory is
         * touched only as frames come back: filling it here cost half a
         * millisecond of every open on the project machine, in page faults.
         */
        rc = pgvec_reserve(&p->empty_frames, cache_pages);
        if (rc != SOMBRA_OK)
                goto label_fail;
        *out = p;
        return SOMBRA_OK;
label_fail:
        pager_destroy(p);
        return rc;
}

void
pager_destroy(struct pager *p)
{
        if (p == NULL)
                return;
        zpages_free(p->frames, p->cache_cap, sizeof(*p->frames));
        if (p->frame_mem != NULL)
                pagebuf_put_run(p->bufs, p->frame_mem, spare_pages(p) + p->cache_cap);
        pagebuf_pool_destroy(p->bufs);
        map_destroy(p);
        free(p->dirty);
        free(p->taken);
        free(p->take_keys);
        free(p->scratch);
        idset_free(&p->map);
        free(p->empty_frames.v);
        free(p->free.v);
        free(p->pending.v);
        free(p->limbo.v);
        free(p->txn_alloc.v);
        free(p->txn_retired.v);
        free(p);
}

uint32_t
pager_page_size(const struct pager *p)
{
        return p->page_size;
}

void
pager_set_leaf_cells(struct pager *p, enum page_cells cells)
{
        p->leaf_cells = (uint8_t)cells;
}

enum page_cells
pager_leaf_cells(const struct pager *p)
{
        return (enum page_cells)p->leaf_cells;
}

uint8_t *
pager_scratch(struct pager *p)
{
        return p->scratch;
}

uint8_t *
pager_run_get(struct pager *p, size_t n)
{
        uint8_t *run;

        if (n == 0 || n > spare_pages(p) - p->spare_top)
                return pagebuf_get_run(p->bufs, n);
        run = p->frame_mem + p->spare_top * p->page_size;
        p->spare_top += n;
        p->spare_out++;
        return run;
}

void
pager_run_put(struct pager *p, uint8_t *run, size_t n)
{
        /* As integers: the run may be another allocation's, which pointers may not compare. */
        uintptr_t off = (uintptr_t)run - (uintptr_t)p->frame_mem;

        if (run == NULL)
                return; /* any reader's close, on its own thread: nothing to give back */
        if (off >= spare_pages(p) * p->page_size) {
                pagebuf_put_run(p->bufs, run, n);
                return;
        }
        if (--p->spare_out == 0)
                p->spare_top = 0;
}

uint64_t
pager_npages(const struct pager *p)
{
        return p->npages;
}

uint32_t
pager_cache_pages(const struct pager *p)
{
        return p->cache_cap;
}

void
pager_stats(const struct pager *p, struct pager_stats *out)
{
        *out = p->st;
        out->cached = p->map.count;
        out->dirty = 0;
        for (uint32_t i = 0; i < p->frames_used; i++)
                if (p->frames[i].dirty)
                        out->dirty++;
        out->npages = p->npages;
        out->free_pages = p->free.n;
        out->retired_pages = (p->limbo.n - p->limbo.head) + p->pending.n;
}

static int
write_page(struct pager *p, struct page *pg)
{
        int rc;

        page_seal(pg->data, p->page_size);
        rc = io_write(p->file, pg->data, p->page_size, pg->pgno * p->page_size);
        if (rc != SOMBRA_OK)
                return rc;
        pg->dirty = false;
        p->st.pages_written++;
        validated_set(p, pg->pgno); /* we made it: it is well formed */
        return SOMBRA_OK;
}

/*
 * Marks pg dirty and lists it for the next write-back, so that a write-back
 * visits the frames dirtied since the last one, not the whole cache.
 */
static void
frame_dirty(struct pager *p, struct page *pg)
{
        pg->dirty = true;
        if (!pg->listed) { /* room for every frame: each is listed at most once */
                pg->listed = true;
                p->dirty[p->ndirty++] = pg;
        }
}

/* Detaches a frame from its page; the buffer stays with the frame. */
static void
frame_unmap(struct pager *p, struct page *pg)
{
        idset_del(&p->map, pg->pgno);
        pg->pgno = PGNO_NONE;
        pg->dirty = false;
        pg->referenced = false;
}

/*
 * A frame for a new page: an empty one, or the first unpinned frame the CLOCK
 * hand finds without its referenced bit, spilling it when dirty.
 */
static int
frame_take(struct pager *p, struct page **out)
{
        struct page *pg;
        int rc;

        if (p->empty_frames.n > 0) {
                *out = &p->frames[p->empty_frames.v[--p->empty_frames.n]];
                return SOMBRA_OK;
        }
        if (p->frames_used < p->cache_cap) { /* low frames first */
                pg = &p->frames[p->frames_used];
                pg->data = p->frame_mem + (spare_pages(p) + p->frames_used) * p->page_size;
                p->frames_used++;
                *out = pg;
                return SOMBRA_OK;
        }
        for (size_t sweep = 0; sweep < 2 * (size_t)p->cache_cap + 1; sweep++) {
                pg = &p->frames[p->hand];
                p->hand = (p->hand + 1) % p->cache_cap;
                if (pg->pins > 0)
                        continue;
                if (pg->referenced) {
                        pg->referenced = false;
                        continue;
                }
                if (pg->dirty) {
                        rc = write_page(p, pg);
                        if (rc != SOMBRA_OK)
                                return rc;
                        p->st.spills++;
                }
                frame_unmap(p, pg);
                p->st.evictions++;
                *out = pg;
                return SOMBRA_OK;
        }
        return SOMBRA_ENOMEM; /* every frame is pinned: the cache is far too small */
}

static void
frame_release(struct pager *p, struct page *pg)
{
        frame_unmap(p, pg);
        pg->pins = 0;
        /* Cannot fail: empty_frames was sized for every frame at creation. */
        p->empty_frames.v[p->empty_frames.n++] = (pgno_t)(pg - p->frames);
}

static int
frame_map(struct pager *p, struct page *pg, pgno_t pgno)
{
        int rc = idset_put(&p->map, pgno, (uint64_t)(pg - p->frames), NULL);
        if (rc != SOMBRA_OK) {
                pg->pgno = PGNO_NONE;
                p->empty_frames.v[p->empty_frames.n++] = (pgno_t)(pg - p->frames);
                return rc;
        }
        pg->pgno = pgno;
        pg->pins = 1;
        pg->referenced = true;
        pg->dirty = false;
        return SOMBRA_OK;
}

static int
page_check(const struct pager *p, const struct page *pg, pgno_t pgno)
{
        uint8_t type = pg->data[0];

        if (type < PAGE_LEAF || type > PAGE_FREELIST)
                return SOMBRA_ECORRUPT;
        if (get_be64(pg->data + 16) != pgno)
                return SOMBRA_ECORRUPT;
        if (pg->data[1] != (type == PAGE_LEAF ? p->leaf_cells : PAGE_CELLS_FIXED))
                return SOMBRA_ECORRUPT;
        if (p->checksums && get_be64(pg->data + 8) != page_checksum(pg->data, p->page_size))
                return SOMBRA_ECORRUPT;
        /* Even without checksums, nothing read from the file may send the B+tree out of bounds. */
        return btree_page_check(pg->data, p->page_size);
}

/*
 * A walker reads WALK_BLOCK pages with one pread when the pages it reads lie
 * close together: a pread costs a few microseconds here, about what copying
 * 16 pages does. It goes on doing so while a block serves several pages, and
 * tries again after WALK_BLOCK pages read alone.
 */
#define WALK_BLOCK  16u
#define WALKER_PINS 4u /* a walker's descriptors: the first of the reader's PAGER_READER_PINS */

static int
walker_read(struct pager *r, pgno_t pgno, uint8_t *dst)
{
        struct pager *w = r->writer;
        size_t ps = w->page_size;
        int rc;

        if (pgno - r->block_at < r->block_n) {
                memcpy(dst, r->block + (pgno - r->block_at) * ps, ps);
                r->block_used++;
                return SOMBRA_OK;
        }
        if ((r->block_used >= WALK_BLOCK / 4 || r->singles >= WALK_BLOCK) && pgno < r->file_pages) {
                uint64_t n = r->file_pages - pgno < WALK_BLOCK ? r->file_pages - pgno : WALK_BLOCK;
                rc = io_read(w->file, r->block, n * ps, pgno * ps);
                if (rc == SOMBRA_OK) {
                        r->block_at = pgno;
                        r->block_n = n;
                        r->block_used = 1;
                        r->singles = 0;
                        memcpy(dst, r->block, ps);
                        return SOMBRA_OK;
                }
        }
        r->singles++;
        return io_read(w->file, dst, ps, pgno * ps);
}

/*
 * A reader's pager_get: the page comes straight from the map, checked the
 * first time anyone reads it after it was written. The writer never changes a
 * page that a published state can reach, and reuses its number only after
 * every reader that could see it has moved on (store.c), so what the map
 * shows is the page of the reader's snapshot.
 */
static int
reader_get(struct pager *r, pgno_t pgno, struct page **out)
{
        struct pager *w = r->writer;
        struct map_slot at;
        struct page *pg;

        if (pgno < 2 || pgno >= __atomic_load_n(&w->published_npages, __ATOMIC_ACQUIRE))
                return SOMBRA_ECORRUPT;
        if (r->free_descs.n == 0)
                return SOMBRA_ENOMEM; /* more pages pinned than any walk needs */
        pg = &r->descs[r->free_descs.v[--r->free_descs.n]];
        pg->pgno = pgno;
        pg->pins = 1;
        if (r->copies != NULL) { /* a walker's: read into the descriptor's own buffer */
                int rc;
                pg->data = r->copies + (size_t)(pg - r->descs) * w->page_size;
                rc = walker_read(r, pgno, pg->data);
                if (rc == SOMBRA_OK)
                        rc = page_check(w, pg, pgno);
                if (rc != SOMBRA_OK) {
                        r->free_descs.n++;
                        return rc;
                }
                *out = pg;
                return SOMBRA_OK;
        }
        at = map_slot(w, pgno);
        pg->data = at.data;
        if (!(__atomic_load_n(at.word, __ATOMIC_ACQUIRE) & at.bit)) {
                int rc = page_check(w, pg, pgno);
                if (rc != SOMBRA_OK) {
                        r->free_descs.n++;
                        return rc;
                }
                __atomic_fetch_or(at.word, at.bit, __ATOMIC_RELEASE);
        }
        r->st.hits++;
        *out = pg;
        return SOMBRA_OK;
}

int
pager_reader_open(struct pager *w, struct pager **out)
{
        struct pager *r = calloc(1, sizeof(*r));
        int rc = SOMBRA_OK;

        if (r == NULL)
                return SOMBRA_ENOMEM;
        r->writer = w;
        r->page_size = w->page_size;
        r->checksums = w->checksums;
        r->descs = calloc(PAGER_READER_PINS, sizeof(*r->descs));
        if (r->descs == NULL)
                rc = SOMBRA_ENOMEM;
        for (uint32_t i = 0; rc == SOMBRA_OK && i < PAGER_READER_PINS; i++)
                rc = pgvec_push(&r->free_descs, i);
        if (rc != SOMBRA_OK) {
                pager_reader_close(r);
                return rc;
        }
        *out = r;
        return SOMBRA_OK;
}

int
pager_walker_open(struct pager *w, struct pager **out)
{
        uint64_t size;
        int rc = pager_reader_open(w, out);

        if (rc != SOMBRA_OK)
                return rc;
        /* A walk pins a page at a time (btree_walk): a few descriptors, a copy each. */
        (*out)->free_descs.n = WALKER_PINS;
        (*out)->copies = pager_run_get(w, WALKER_PINS);
        (*out)->block = pager_run_get(w, WALK_BLOCK);
        (*out)->block_used = WALK_BLOCK / 4; /* the first read tries a block */
        rc = (*out)->copies == NULL || (*out)->block == NULL ? SOMBRA_ENOMEM
                                                             : io_size(w->file, &size);
        if (rc != SOMBRA_OK) {
                pager_reader_close(*out);
                *out = NULL;
                return rc;
        }
        (*out)->file_pages = size / w->page_size;
        (*out)->npages = (*out)->file_pages; /* its pager_npages: the pages it may read */
        return SOMBRA_OK;
}

void
pager_reader_close(struct pager *r)
{
        if (r == NULL)
                return;
        /* A walker's runs; NULL for any other reader, which run_put ignores. */
        pager_run_put(r->writer, r->copies, WALKER_PINS);
        pager_run_put(r->writer, r->block, WALK_BLOCK);
        free(r->descs);
        free(r->free_descs.v);
        free(r);
}

int
pager_get(struct pager *p, pgno_t pgno, struct page **out)
{
        struct page *pg;
        uint64_t idx;
        int rc;

        if (p->writer != NULL)
                return reader_get(p, pgno, out);

        if (idset_get(&p->map, pgno, &idx)) {
                pg = &p->frames[idx];
                pg->pins++;
                pg->referenced = true;
                p->st.hits++;
                *out = pg;
                return SOMBRA_OK;
        }
        if (pgno < 2 || pgno >= p->npages)
                return SOMBRA_ECORRUPT;
        p->st.misses++;
        rc = frame_take(p, &pg);
        if (rc != SOMBRA_OK)
                return rc;
        rc = io_read(p->file, pg->data, p->page_size, pgno * p->page_size);
        if (rc == SOMBRA_OK)
                rc = page_check(p, pg, pgno);
        if (rc != SOMBRA_OK) {
                p->empty_frames.v[p->empty_frames.n++] = (pgno_t)(pg - p->frames);
                return rc;
        }
        p->st.pages_read++;
        rc = frame_map(p, pg, pgno);
        if (rc != SOMBRA_OK)
                return rc;
        *out = pg;
        return SOMBRA_OK;
}

void
pager_unpin(struct pager *p, struct page *pg)
{
        if (pg == NULL || pg->pins == 0)
                return;
        if (--pg->pins == 0 && p->writer != NULL)
                p->free_descs.v[p->free_descs.n++] = (pgno_t)(pg - p->descs);
}

void
pager_txn_begin(struct pager *p, uint64_t txn)
{
        p->txn = txn;
        p->txn_alloc.n = 0;
        p->txn_retired.head = p->txn_retired.n = 0;
}

/*
 * A page number becomes reusable: its cached copy, if any, is garbage now.
 * `free` keeps room for the open transaction's pages as well, as
 * txn_page_new does: pages may go free while it is open (a publish lets go
 * of what readers held), and its abort gives its own back without
 * allocating.
 */
static int
page_free(struct pager *p, pgno_t pgno)
{
        uint64_t idx;
        int rc = pgvec_reserve(&p->free, p->free.n + p->txn_alloc.n + 1);

        if (rc != SOMBRA_OK)
                return rc;
        if (idset_get(&p->map, pgno, &idx))
                frame_release(p, &p->frames[idx]);
        p->free.v[p->free.n++] = pgno;
        return SOMBRA_OK;
}

int
pager_txn_commit(struct pager *p)
{
        int rc = SOMBRA_OK;

        for (size_t i = 0; i < p->txn_retired.n; i++) {
                struct retired *r = &p->txn_retired.v[i];
                /* A page born and retired in this txn was never visible to anyone. */
                int r2 = r->born_in_txn ? page_free(p, r->pgno) : retvec_push(&p->limbo, r);
                if (r2 != SOMBRA_OK && rc == SOMBRA_OK)
                        rc = r2; /* the page leaks until verify finds it; the state is intact */
        }
        p->txn = 0;
        p->txn_alloc.n = 0;
        p->txn_retired.n = 0;
        return rc;
}

void
pager_txn_abort(struct pager *p)
{
        for (size_t i = 0; i < p->txn_alloc.n; i++) {
                uint64_t idx;
                if (idset_get(&p->map, p->txn_alloc.v[i], &idx))
                        frame_release(p, &p->frames[idx]);
                /* pager_alloc reserved this slot, so aborting never needs memory. */
                p->free.v[p->free.n++] = p->txn_alloc.v[i];
        }
        p->txn = 0;
        p->txn_alloc.n = 0;
        p->txn_retired.n = 0;
}

/* A number for a new page: a reusable one, or the next past the file's end (*extended). */
static int
pgno_take(struct pager *p, pgno_t *pgno, bool *extended)
{
        *extended = false;
        if (p->free.n > 0) {
                *pgno = p->free.v[--p->free.n];
                return SOMBRA_OK;
        }
        if (p->npages >= map_end(p)) {
                int rc = map_grow(p); /* the file has grown to the size of its map */
                if (rc != SOMBRA_OK)
                        return rc;
        }
        *pgno = p->npages++;
        *extended = true;
        return SOMBRA_OK;
}

/* Undoes the pgno_take just made. */
static void
pgno_untake(struct pager *p, bool extended)
{
        if (extended)
                p->npages--;
        else
                p->free.n++;
}

/*
 * A new page; its body is zeroed unless the caller fills it (a copy, which
 * leaves a leaf's free gap with whatever the frame held before: page_copy).
 */
static int
page_new(struct pager *p, uint8_t type, uint64_t txn, bool zero, struct page **out)
{
        struct page *pg;
        pgno_t pgno;
        bool extended;
        int rc = pgno_take(p, &pgno, &extended);

        if (rc != SOMBRA_OK)
                return rc;
        rc = frame_take(p, &pg);
        if (rc == SOMBRA_OK)
                rc = frame_map(p, pg, pgno);
        if (rc != SOMBRA_OK) {
                pgno_untake(p, extended);
                return rc;
        }
        memset(pg->data, 0, zero ? p->page_size : PAGE_HDR);
        pg->data[0] = type;
        pg->data[1] = type == PAGE_LEAF ? p->leaf_cells : PAGE_CELLS_FIXED;
        put_be32(pg->data + 4, p->page_size);
        put_be64(pg->data + 16, pgno);
        put_be64(pg->data + 24, txn);
        frame_dirty(p, pg);
        *out = pg;
        return SOMBRA_OK;
}

static int
txn_page_new(struct pager *p, uint8_t type, bool zero, struct page **out)
{
        struct page *pg;
        int rc;

        if (p->txn == 0)
                return SOMBRA_ENOTXN;
        rc = pgvec_reserve(&p->txn_alloc, p->txn_alloc.n + 1);
        if (rc == SOMBRA_OK)
                rc = pgvec_reserve(&p->free, p->free.n + p->txn_alloc.n + 1);
        if (rc != SOMBRA_OK)
                return rc;
        rc = page_new(p, type, p->txn, zero, &pg);
        if (rc != SOMBRA_OK)
                return rc;
        p->txn_alloc.v[p->txn_alloc.n++] = pg->pgno;
        *out = pg;
        return SOMBRA_OK;
}

int
pager_alloc(struct pager *p, uint8_t type, struct page **out)
{
        return txn_page_new(p, type, true, out);
}

/* What retiring pg in the current transaction records. */
static struct retired
retired_of(const struct pager *p, const struct page *pg)
{
        return (struct retired){
            .pgno = pg->pgno,
            .txn = p->txn,
            .ckpt_epoch = p->ckpt_begun,
            .born = page_txn(pg),
            .durable = page_txn(pg) <= p->ckpt_txn,
            .born_in_txn = page_txn(pg) == p->txn,
        };
}

int
pager_retire(struct pager *p, struct page *pg)
{
        struct retired r = retired_of(p, pg);

        pager_unpin(p, pg);
        if (p->txn == 0)
                return SOMBRA_ENOTXN;
        return retvec_push(&p->txn_retired, &r);
}

/*
 * The copy-on-write of a clean page that only the caller holds: its frame
 * takes the copy's new number instead of a copy of its bytes being made in
 * another frame. The old page's bytes are in the file, where readers (the
 * map) and a rollback find them; the cache saves a frame and the 8 KiB copy,
 * and the first touch of a fresh frame, a page fault, that the copy would
 * often have cost. Nothing changes on failure (SOMBRA_ENOMEM, SOMBRA_ENOSPC).
 */
static int
frame_renumber(struct pager *p, struct page *pg)
{
        struct retired r = retired_of(p, pg);
        pgno_t pgno;
        bool extended;
        int rc = pgvec_reserve(&p->txn_alloc, p->txn_alloc.n + 1);

        if (rc == SOMBRA_OK)
                rc = pgvec_reserve(&p->free, p->free.n + p->txn_alloc.n + 1);
        if (rc == SOMBRA_OK)
                rc = retvec_push(&p->txn_retired, &r);
        if (rc != SOMBRA_OK)
                return rc;
        rc = pgno_take(p, &pgno, &extended);
        if (rc == SOMBRA_OK) {
                /* A free list naming a live page would give it back to itself. */
                rc = pgno == pg->pgno ? SOMBRA_ECORRUPT
                                      : idset_put(&p->map, pgno, (uint64_t)(pg - p->frames), NULL);
                if (rc != SOMBRA_OK)
                        pgno_untake(p, extended);
        }
        if (rc != SOMBRA_OK) {
                p->txn_retired.n--;
                return rc;
        }
        idset_del(&p->map, pg->pgno);
        pg->pgno = pgno;
        put_be64(pg->data + 16, pgno);
        put_be64(pg->data + 24, p->txn);
        frame_dirty(p, pg);
        p->txn_alloc.v[p->txn_alloc.n++] = pgno;
        return SOMBRA_OK;
}

bool
pager_writable(const struct pager *p, const struct page *pg)
{
        return p->txn != 0 && page_txn(pg) == p->txn;
}

/*
 * Copies everything but the identity fields (checksum, pgno, txn). A leaf's
 * or a branch's free gap, between its slot array and its lowest cell, stays
 * as the frame had it: nothing reads the gap before writing it. The copies
 * were 12% of the writer in durable_commit_async, and a leaf filled by
 * random inserts is about a third gap. A header that does not add up is
 * copied whole, to be refused where it is read.
 */
static void
page_copy(const struct pager *p, uint8_t *to, const uint8_t *from)
{
        uint32_t lower, upper;

        if (!btree_page_gap(from, p->page_size, &lower, &upper))
                lower = upper = p->page_size;
        memcpy(to, from, 8);
        memcpy(to + 32, from + 32, lower - 32);
        memcpy(to + upper, from + upper, p->page_size - upper);
}

int
pager_make_writable(struct pager *p, struct page **pgp)
{
        struct page *old = *pgp, *copy;
        int rc;

        if (page_txn(old) == p->txn) {
                frame_dirty(p, old);
                return SOMBRA_OK;
        }
        if (p->txn != 0 && old->pins == 1 && !old->dirty) {
                rc = frame_renumber(p, old);
                if (rc == SOMBRA_OK || rc == SOMBRA_ECORRUPT)
                        return rc;
        }
        rc = txn_page_new(p, page_type(old), false, &copy);
        if (rc != SOMBRA_OK)
                return rc;
        page_copy(p, copy->data, old->data);
        rc = pager_retire(p, old);
        if (rc != SOMBRA_OK) {
                pager_unpin(p, copy);
                return rc;
        }
        *pgp = copy;
        return SOMBRA_OK;
}

void
pager_reclaim(struct pager *p, uint64_t oldest_txn)
{
        struct retvec *l = &p->limbo;

        while (l->head < l->n && l->v[l->head].txn <= oldest_txn) {
                struct retired *r = &l->v[l->head];
                int rc;
                if (r->durable && (p->hold || r->ckpt_epoch >= p->release_below))
                        rc = retvec_push(&p->pending, r);
                else
                        rc = page_free(p, r->pgno);
                if (rc != SOMBRA_OK)
                        return; /* stays in limbo; the next call retries */
                l->head++;
        }
        if (l->head == l->n)
                l->head = l->n = 0;
}

void
pager_forget_unpublished(struct pager *p, uint64_t published_txn)
{
        struct retvec *l = &p->limbo;
        size_t keep = l->head;

        for (size_t i = l->head; i < l->n; i++) {
                struct retired *r = &l->v[i];
                /* Written and superseded since the last publish: nobody ever saw it. */
                if (!r->durable && r->born > published_txn && page_free(p, r->pgno) == SOMBRA_OK)
                        continue;
                l->v[keep++] = *r;
        }
        l->n = keep;
}

uint64_t
pager_limbo_after(const struct pager *p, uint64_t txn)
{
        const struct retvec *l = &p->limbo;
        size_t lo = l->head, hi = l->n;

        while (lo < hi) { /* retired in txn order (pager_txn_commit) */
                size_t mid = lo + (hi - lo) / 2;
                if (l->v[mid].txn <= txn)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return l->n - lo;
}

uint64_t
pager_dirty_listed(const struct pager *p)
{
        return p->ndirty;
}

static int
freelist_collect(struct pager *p, pgno_t head, struct pgvec *out)
{
        uint64_t limit = p->npages;

        while (head != PGNO_NONE) {
                struct page *pg;
                int rc;
                if (limit-- == 0)
                        return SOMBRA_ECORRUPT; /* a loop */
                rc = pager_get(p, head, &pg);
                if (rc != SOMBRA_OK)
                        return rc;
                if (page_type(pg) != PAGE_FREELIST) {
                        pager_unpin(p, pg);
                        return SOMBRA_ECORRUPT;
                }
                rc = pgvec_push(out, head);
                head = page_aux(pg);
                pager_unpin(p, pg);
                if (rc != SOMBRA_OK)
                        return rc;
        }
        return SOMBRA_OK;
}

static size_t
freelist_capacity(const struct pager *p)
{
        return (p->page_size - PAGE_HDR) / 8;
}

int
pager_freelist_build(struct pager *p, uint64_t ckpt_txn, pgno_t old_head, pgno_t *head,
                     uint64_t *count)
{
        struct pgvec old = {0}, lists = {0};
        size_t per = freelist_capacity(p), total, nlists, at = 0;
        const pgno_t *srcs[3];
        size_t lens[3];
        int rc;

        assert(p->ckpt_begun > p->ckpt_done); /* pager_checkpoint_begin came first */
        rc = freelist_collect(p, old_head, &old);
        /* The old list is the previous checkpoint's: its meta page reaches it. */
        for (size_t i = 0; rc == SOMBRA_OK && i < old.n; i++)
                rc = pending_add(p, old.v[i], p->ckpt_begun - 1);
        if (rc != SOMBRA_OK)
                goto label_out;

        total = p->free.n + (p->limbo.n - p->limbo.head) + (p->pending.n - p->pending.head);
        nlists = (total + per - 1) / per;
        for (size_t i = 0; i < nlists; i++) {
                struct page *pg;
                rc = pgvec_push(&lists, 0);
                if (rc == SOMBRA_OK)
                        rc = page_new(p, PAGE_FREELIST, ckpt_txn, true, &pg);
                if (rc != SOMBRA_OK)
                        goto label_out;
                lists.v[i] = pg->pgno;
                pager_unpin(p, pg);
        }

        /* Taking list pages from `free` only shrank it, so nlists pages still suffice. */
        srcs[0] = p->free.v;
        lens[0] = p->free.n;
        lens[1] = p->pending.n - p->pending.head;
        lens[2] = p->limbo.n - p->limbo.head;
        rc = retvec_pgnos(&p->pending, &old);
        if (rc == SOMBRA_OK)
                rc = retvec_pgnos(&p->limbo, &old);
        if (rc != SOMBRA_OK)
                goto label_out;
        /* old.v is NULL while old is empty, and NULL + 0 is undefined. */
        srcs[1] = lens[1] + lens[2] > 0 ? old.v + (old.n - lens[1] - lens[2]) : old.v;
        srcs[2] = lens[2] > 0 ? old.v + (old.n - lens[2]) : old.v;
        total = lens[0] + lens[1] + lens[2];

        for (size_t i = 0; i < nlists; i++) {
                struct page *pg;
                size_t n = 0;
                rc = pager_get(p, lists.v[i], &pg);
                if (rc != SOMBRA_OK)
                        goto label_out;
                for (; n < per && at < total; n++, at++) {
                        size_t s = 0, k = at;
                        while (k >= lens[s])
                                k -= lens[s++];
                        put_be64(pg->data + PAGE_HDR + n * 8, srcs[s][k]);
                }
                put_be16(pg->data + 2, (uint16_t)n);
                page_set_aux(pg, i + 1 < nlists ? lists.v[i + 1] : PGNO_NONE);
                frame_dirty(p, pg);
                pager_unpin(p, pg);
        }
        *head = nlists ? lists.v[0] : PGNO_NONE;
        *count = total;
label_out:
        free(old.v);
        free(lists.v);
        return rc;
}

struct page **
pager_write_take(struct pager *p, size_t *count)
{
        struct take_key *keys = p->take_keys;
        size_t n = 0;

        assert(!p->taking);
        p->taking = true;
        /* Some listed frames were spilled or dropped since: only the dirty ones stay. */
        for (size_t i = 0; i < p->ndirty; i++) {
                struct page *pg = p->dirty[i];
                pg->listed = false;
                if (pg->pgno == PGNO_NONE || !pg->dirty)
                        continue;
                pg->dirty = false; /* the taker writes it now */
                pg->pins++;
                keys[n++] = (struct take_key){.pgno = pg->pgno, .pg = pg};
        }
        p->ndirty = 0;
        /*
         * Ascending, for sequential writes. The numbers go beside the frames:
         * sorting the frames by the number in each took a cache miss a
         * compare, about 0.9 ms for a publication of 3,000 pages.
         */
        radix_sort(keys, keys + p->cache_cap, n, sizeof(*keys), offsetof(struct take_key, pgno));
        for (size_t i = 0; i < n; i++)
                p->taken[i] = keys[i].pg;
        *count = n;
        return p->taken;
}

int
pager_write_frames(struct pager *p, struct page *const *frames, size_t n, size_t *written)
{
        const void *run[PAGER_WRITE_RUN];

        /* The take is in page order: pages in a row go out in one call. */
        for (*written = 0; *written < n;) {
                size_t k = 0, at = *written;
                int rc;
                do
                        run[k] = frames[at + k]->data;
                while (++k < PAGER_WRITE_RUN && at + k < n &&
                       frames[at + k]->pgno == frames[at]->pgno + k);
                rc =
                    io_write_blocks(p->file, run, k, p->page_size, frames[at]->pgno * p->page_size);
                if (rc != SOMBRA_OK)
                        return rc; /* none of the run counts as written: all are tried again */
                for (size_t i = 0; i < k; i++)
                        validated_set(p, frames[at + i]->pgno); /* we made it: well formed */
                *written += k;
        }
        return SOMBRA_OK;
}

void
pager_write_seal(struct pager *p, struct page *const *frames, size_t n)
{
        for (size_t i = 0; i < n; i++)
                page_seal(frames[i]->data, p->page_size);
}

void
pager_write_done(struct pager *p, struct page *const *frames, size_t n, size_t written)
{
        p->taking = false;
        p->st.pages_written += written;
        for (size_t i = 0; i < n; i++) {
                pager_unpin(p, frames[i]);
                if (i >= written)
                        frame_dirty(p, frames[i]); /* the next write-back tries again */
        }
}

int
pager_write_back(struct pager *p)
{
        size_t n, written;
        struct page **frames = pager_write_take(p, &n);
        int rc;

        pager_write_seal(p, frames, n);
        rc = pager_write_frames(p, frames, n, &written);
        pager_write_done(p, frames, n, written);
        return rc;
}

int
pager_flush(struct pager *p)
{
        uint64_t size;
        int rc = pager_write_back(p);

        if (rc != SOMBRA_OK)
                return rc;
        /* Pages allocated and freed without ever being written leave a hole at the end. */
        rc = io_size(p->file, &size);
        if (rc == SOMBRA_OK && size < p->npages * p->page_size)
                rc = io_truncate(p->file, p->npages * p->page_size);
        return rc;
}

void
pager_publish(struct pager *p, uint64_t npages)
{
        __atomic_store_n(&p->published_npages, npages, __ATOMIC_RELEASE);
}

void
pager_checkpoint_begin(struct pager *p, uint64_t ckpt_txn)
{
        assert(p->ckpt_begun == p->ckpt_done); /* one at a time */
        p->ckpt_begun++;
        p->ckpt_txn = ckpt_txn;
}

void
pager_checkpoint_done(struct pager *p)
{
        struct retvec *l = &p->pending;
        size_t keep = l->head;

        p->ckpt_done = p->ckpt_begun;
        p->release_below = p->ckpt_begun - 1; /* the older slot now holds checkpoint begun - 1 */
        for (size_t i = l->head; i < l->n; i++) {
                /* page_free can only fail to grow `free`: the page waits on then. */
                if (!p->hold && l->v[i].ckpt_epoch < p->release_below &&
                    page_free(p, l->v[i].pgno) == SOMBRA_OK)
                        continue;
                l->v[keep++] = l->v[i];
        }
        l->n = keep;
}

int
pager_freelist_load(struct pager *p, pgno_t head, uint64_t expect, bool older_meta)
{
        uint64_t seen = 0, hops = 0;
        int rc = SOMBRA_OK;

        if (older_meta)
                p->release_below = 0; /* the older slot's epoch is kept too */
        while (head != PGNO_NONE && rc == SOMBRA_OK) {
                struct page *pg;
                uint16_t n;
                if (hops++ > p->npages)
                        return SOMBRA_ECORRUPT;
                rc = pager_get(p, head, &pg);
                if (rc != SOMBRA_OK)
                        return rc;
                n = get_be16(pg->data + 2);
                if (page_type(pg) != PAGE_FREELIST || n > freelist_capacity(p) ||
                    seen + n > expect) {
                        pager_unpin(p, pg);
                        return SOMBRA_ECORRUPT;
                }
                for (uint16_t i = 0; i < n && rc == SOMBRA_OK; i++) {
                        pgno_t x = get_be64(pg->data + PAGE_HDR + i * 8);
                        /* Epoch 0: the older meta page's, which may reach it. */
                        rc = (x < 2 || x >= p->npages)          ? SOMBRA_ECORRUPT
                             : p->hold || p->release_below == 0 ? pending_add(p, x, 0)
                                                                : pgvec_push(&p->free, x);
                }
                seen += n;
                head = page_aux(pg);
                pager_unpin(p, pg);
        }
        if (rc == SOMBRA_OK && seen != expect)
                rc = SOMBRA_ECORRUPT;
        return rc;
}

int
pager_adopt_begin(struct pager *p, uint64_t npages)
{
        uint64_t size;
        int rc = SOMBRA_OK;

        assert(p->txn == 0 && p->ndirty == 0);
        if (npages < p->npages)
                return SOMBRA_ECORRUPT;
        /*
         * npages comes from the log: the map grows for pages the file holds,
         * and a state past its end is refused (recovery then replays the log).
         */
        if (npages > map_end(p)) {
                rc = io_size(p->file, &size);
                if (rc == SOMBRA_OK && npages > size / p->page_size)
                        rc = SOMBRA_ECORRUPT;
        }
        while (rc == SOMBRA_OK && npages > map_end(p))
                rc = map_grow(p);
        if (rc != SOMBRA_OK)
                return rc;
        p->adopt_from = p->npages;
        p->npages = npages;
        __atomic_store_n(&p->published_npages, npages, __ATOMIC_RELEASE);
        return SOMBRA_OK;
}

/* Whether every reached page below the checkpoint's end is on the free list loaded from it. */
static bool
adopt_reached_were_free(const struct pager *p, const struct idset *reached)
{
        size_t below = 0, listed = 0, pos = 0;
        uint64_t pgno, unused;

        while (idset_next(reached, &pos, &pgno, &unused))
                below += pgno < p->adopt_from;
        for (size_t i = 0; i < p->free.n; i++)
                listed += idset_get(reached, p->free.v[i], NULL);
        for (size_t i = p->pending.head; i < p->pending.n; i++)
                listed += idset_get(reached, p->pending.v[i].pgno, NULL);
        return listed == below;
}

int
pager_adopt(struct pager *p, const struct idset *reached, const pgno_t *retired, size_t nretired)
{
        size_t keep = 0;
        int rc = SOMBRA_OK;

        if (!adopt_reached_were_free(p, reached))
                return SOMBRA_ECORRUPT;
        for (size_t i = 0; i < p->free.n; i++)
                if (!idset_get(reached, p->free.v[i], NULL))
                        p->free.v[keep++] = p->free.v[i];
        p->free.n = keep;
        keep = p->pending.head;
        for (size_t i = p->pending.head; i < p->pending.n; i++)
                if (!idset_get(reached, p->pending.v[i].pgno, NULL))
                        p->pending.v[keep++] = p->pending.v[i];
        p->pending.n = keep;
        for (size_t i = 0; i < nretired && rc == SOMBRA_OK; i++)
                rc = pending_add(p, retired[i], p->ckpt_begun);
        /* Added since the checkpoint: no meta page ever reached those the state does not use. */
        for (pgno_t x = p->adopt_from; x < p->npages && rc == SOMBRA_OK; x++)
                if (!idset_get(reached, x, NULL))
                        rc = page_free(p, x);
        return rc;
}

void
pager_adopt_cancel(struct pager *p)
{
        p->npages = p->adopt_from;
        __atomic_store_n(&p->published_npages, p->adopt_from, __ATOMIC_RELEASE);
}

void
pager_set_hold(struct pager *p, bool hold)
{
        p->hold = hold;
}

int
pager_visit_unreachable(struct pager *p, pgno_t head, int (*fn)(void *arg, pgno_t pgno), void *arg)
{
        struct pgvec lists = {0};
        int rc = freelist_collect(p, head, &lists);

        for (size_t i = 0; rc == SOMBRA_OK && i < lists.n; i++)
                rc = fn(arg, lists.v[i]);
        for (size_t i = 0; rc == SOMBRA_OK && i < p->free.n; i++)
                rc = fn(arg, p->free.v[i]);
        for (size_t i = p->pending.head; rc == SOMBRA_OK && i < p->pending.n; i++)
                rc = fn(arg, p->pending.v[i].pgno);
        for (size_t i = p->limbo.head; rc == SOMBRA_OK && i < p->limbo.n; i++)
                rc = fn(arg, p->limbo.v[i].pgno);
        free(lists.v);
        return rc;
}
