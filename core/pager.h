/*
 * pager.h - fixed-size pages of one file, a bounded page cache, and the
 * copy-on-write page life cycle.
 *
 * Every page but the two meta pages (0 and 1) starts with this header:
 *
 *   offset size field
 *   0      1    type (enum page_type)
 *   1      1    cells: a leaf's cell layout (enum page_cells); zero on other pages
 *   2      2    nkeys: cells in a leaf or branch; pgnos on a free-list page;
 *               data bytes on an overflow page
 *   4      4    upper: offset of the lowest cell byte (leaf, branch)
 *   8      8    checksum: XXH3-64 of the page with these 8 bytes zero
 *   16     8    pgno: the page's own number, so that a misplaced page is caught
 *   24     8    txn: the transaction (= commit LSN) that wrote this version
 *   32     8    aux: leftmost child (branch), next page (overflow, free list)
 *   40          body
 *
 * All integers are big-endian. The `txn` field carries the copy-on-write
 * rules: a page written by the current transaction may be changed in place;
 * any other page is copied to a new number first and the old number retired.
 * A page whose txn is newer than the last checkpoint (the one under way, if
 * any) is "fresh": no durable meta page refers to it, so it may be written to
 * the file at any time (the cache spills such pages when it needs room) and,
 * once retired, reused without waiting for a checkpoint.
 *
 * Threads: one writer thread calls everything here. Pages reachable from a
 * committed state are never modified, which is what lets readers of that
 * state (the engine's snapshot readers) share them.
 */
#ifndef SOMBRA_PAGER_H
#define SOMBRA_PAGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "io.h"
#include "buf.h"

typedef uint64_t pgno_t;

/* Pages 0 and 1 are the meta pages, so no tree ever points at page 0. */
#define PGNO_NONE ((pgno_t)0)
#define PAGE_HDR  40u

enum page_type { PAGE_LEAF = 1, PAGE_BRANCH = 2, PAGE_OVERFLOW = 3, PAGE_FREELIST = 4 };

/*
 * How a leaf lays out its cells (btree.c): with fixed-width lengths, as
 * files of format 5 and older have them, or with varints. Every leaf of a
 * file has the file's layout; pager_get refuses a page of another.
 */
enum page_cells { PAGE_CELLS_FIXED = 0, PAGE_CELLS_VARINT = 1 };

/* A cached page. `data` is page_size bytes; the fields after it are the cache's own. */
struct page {
        uint8_t *data;
        pgno_t pgno;
        uint32_t pins;   /* users holding it; a pinned page is never evicted */
        bool dirty;      /* differs from the file; always a fresh page */
        bool referenced; /* CLOCK bit */
        bool listed;     /* on the pager's write-back list */
};

struct pager_stats {
        uint64_t hits, misses, evictions, spills;
        uint64_t pages_read, pages_written;
        uint64_t cached, dirty; /* pages in the cache now, and how many of them are dirty */
        uint64_t npages;        /* pages in the file, meta pages included */
        uint64_t free_pages;    /* reusable now */
        uint64_t retired_pages; /* unreachable, waiting for readers or a checkpoint */
};

struct pager;
struct idset;

/*
 * Creates a pager over an open file. `npages` is the file's page count
 * (from the meta page; at least 2), `ckpt_txn` the txn of the last
 * checkpoint. SOMBRA_EINVAL for a bad page size, SOMBRA_ENOMEM.
 */
int pager_create(struct io_file *file, uint32_t page_size, uint32_t cache_pages, bool checksums,
                 uint64_t npages, uint64_t ckpt_txn, struct pager **out);
/*
 * pager_create, with the readers' map's first segment at least map_bytes
 * (PAGER_MAP_BYTES for pager_create) instead of twice the file: the map
 * grows in doubling segments from there (tests use small ones).
 */
int pager_create_mapped(struct io_file *file, uint32_t page_size, uint32_t cache_pages,
                        bool checksums, uint64_t npages, uint64_t ckpt_txn, uint64_t map_bytes,
                        struct pager **out);
/* Frees the cache; writes nothing. */
void pager_destroy(struct pager *p);

uint32_t pager_page_size(const struct pager *p);

/*
 * The file's leaf layout: new leaves get it, and pages read must have it
 * (PAGE_CELLS_FIXED until set).
 */
void pager_set_leaf_cells(struct pager *p, enum page_cells cells);
enum page_cells pager_leaf_cells(const struct pager *p);
/*
 * Writer-owned scratch memory of PAGER_SCRATCH_PAGES page sizes, for the
 * B+tree's splits and cell building; never used across calls.
 */
#define PAGER_SCRATCH_PAGES 5u
uint8_t *pager_scratch(struct pager *p);
/*
 * n page sizes of memory in a row, scratch for an open's reads: from the
 * spare before the cache's frames while it has room (its huge page is the
 * first frames' too), else from the page arena (pagebuf_get_run). Either
 * way it costs no page faults of its own. NULL when memory is short. The
 * writer's thread only, like the spare's bookkeeping.
 */
uint8_t *pager_run_get(struct pager *p, size_t n);
/* Gives back a run from pager_run_get, with the same n; NULL is ignored. */
void pager_run_put(struct pager *p, uint8_t *run, size_t n);
/* Pages in the file as the pager knows it; a walker's: whole pages at its open. */
uint64_t pager_npages(const struct pager *p);
void pager_stats(const struct pager *p, struct pager_stats *out);

/*
 * Pins page pgno, reading it when it is not cached; the page's checksum (when
 * checksums are on), type and self-number are checked on read. SOMBRA_ECORRUPT
 * for a bad page or a pgno past the end, SOMBRA_EIO, SOMBRA_ENOMEM when every
 * cached page is pinned.
 */
int pager_get(struct pager *p, pgno_t pgno, struct page **out);
void pager_unpin(struct pager *p, struct page *pg);

/*
 * Snapshot readers. A reader handle is a `struct pager` that any thread may
 * use (one thread at a time) with pager_get, pager_unpin and the B+tree's
 * read functions; it reads committed pages from a read-only map of the file
 * and never blocks on, or is blocked by, the writer. Its pages must belong to
 * a state published with pager_publish after pager_write_back wrote them, and
 * the caller must keep page reuse away while it reads (store.c does, with
 * its reader table). At most PAGER_READER_PINS pages are pinned at once per handle
 * (a walker's: 4).
 */
#define PAGER_READER_PINS 64u
/*
 * The readers' map: its first segment at open, PAGER_MAP_BYTES or twice the
 * file (rounded up to a power of two), then one more segment each time the
 * file outgrows it, as large as all before; at most PAGER_MAP_SEGS of them.
 * Address space only, but reserved whole: 1 GiB, not the 64 GiB of the
 * single map before segments, lets a process hold many databases open, and
 * open one for writing under an address-space limit (RLIMIT_AS; a
 * read-only open's private copy still reserves more: store.c).
 */
#define PAGER_MAP_BYTES (1ull << 30)
#define PAGER_MAP_SEGS  40u
int pager_reader_open(struct pager *writer, struct pager **out);
void pager_reader_close(struct pager *reader);
/*
 * A reader handle for one pass over pages that nobody reads again soon
 * (recovery's walk, adopt.h): it copies each page into a buffer of its own
 * with pread and checks it every time, instead of taking it from the map.
 * On a virtual machine each first touch of the map is a fault that costs
 * several microseconds, more than the copy. Its buffers are scratch runs
 * (pager_run_get), which cost no faults of their own either. Opened and
 * closed (pager_reader_close) on the writer's thread only, like those runs.
 */
int pager_walker_open(struct pager *writer, struct pager **out);

/*
 * Before a write-back: pages written and superseded by transactions after
 * published_txn (the newest state readers can have) were never visible to
 * anyone and are not in a durable meta: they become free at once, so the
 * write-back does not write them.
 */
void pager_forget_unpublished(struct pager *p, uint64_t published_txn);
/* Retired pages that wait for readers to move on, those retired by txns after `txn`. */
uint64_t pager_limbo_after(const struct pager *p, uint64_t txn);
/* Frames dirtied since the last write-back (an upper bound on the dirty ones). */
uint64_t pager_dirty_listed(const struct pager *p);

/* Writes every dirty page (no sync); they stay cached, clean. */
int pager_write_back(struct pager *p);
/*
 * pager_write_back in steps, so that another thread can do the writing
 * while the writer goes on (store_publish_begin):
 *   pager_write_take   the writer takes the dirty frames (*count of them,
 *                      in an array of the pager's), in page order, pinned
 *                      and no longer dirty; one take at a time, until its
 *                      pager_write_done;
 *   pager_write_seal   any thread: stores their checksums;
 *   pager_write_frames any thread: writes them; *written gets how many
 *                      reached the file, in order, before a failure;
 *   pager_write_done   the writer unpins them and lists the unwritten ones
 *                      as dirty again.
 * Between take and done, the writer may read the frames but not change them;
 * it never does, since they hold committed pages, which a transaction copies
 * before changing. The other steps touch no pager field but the frames' data
 * and the atomic `validated` bits.
 */
uint32_t pager_cache_pages(const struct pager *p);
struct page **pager_write_take(struct pager *p, size_t *count);
void pager_write_seal(struct pager *p, struct page *const *frames, size_t n);
int pager_write_frames(struct pager *p, struct page *const *frames, size_t n, size_t *written);
void pager_write_done(struct pager *p, struct page *const *frames, size_t n, size_t written);
/* Any thread: lets readers read the file's first npages pages (all written by now). */
void pager_publish(struct pager *p, uint64_t npages);

/* Type and fields of a page's header. */
uint8_t page_type(const struct page *pg);
uint64_t page_txn(const struct page *pg);
uint64_t page_aux(const struct page *pg);
void page_set_aux(struct page *pg, uint64_t aux);
/*
 * Stores the checksum (bytes 8..16) of a whole page; pager_flush does it for
 * cached pages, a page written outside the cache (btree_build) needs it too.
 */
void page_seal(uint8_t *data, uint32_t page_size);

/*
 * Write transactions. Only one is open at a time; `txn` is its number, larger
 * than every committed one. Pages allocated inside the transaction are
 * released by pager_txn_abort; pages retired inside it are released by
 * pager_txn_commit (at once if no reader can see them, otherwise later).
 */
void pager_txn_begin(struct pager *p, uint64_t txn);
int pager_txn_commit(struct pager *p);
void pager_txn_abort(struct pager *p);

/*
 * A new page of `type`, pinned and dirty, header filled, body zero.
 * SOMBRA_ENOMEM, SOMBRA_EIO (a spill failed).
 */
int pager_alloc(struct pager *p, uint8_t type, struct page **out);

/*
 * Makes *pg (pinned) writable by the current transaction: unchanged when the
 * transaction wrote it already, otherwise replaced by a pinned copy under a
 * new number while the old page is retired and unpinned. A clean page that
 * only the caller holds keeps its frame (and *pg its address) under the new
 * number: its old bytes are in the file.
 */
int pager_make_writable(struct pager *p, struct page **pg);

/* Whether the current transaction wrote *pg already (pager_make_writable keeps its number). */
bool pager_writable(const struct pager *p, const struct page *pg);

/* The pinned page becomes unreachable in the current transaction; unpins it. */
int pager_retire(struct pager *p, struct page *pg);

/*
 * Readers. `oldest_txn` is the oldest committed state any reader still uses
 * (UINT64_MAX with no readers): retired pages that only older states could
 * reach become reusable. The store calls this after commits.
 */
void pager_reclaim(struct pager *p, uint64_t oldest_txn);

/*
 * Checkpoint support, one checkpoint at a time. pager_checkpoint_begin
 * names the txn of the state being checkpointed: from then on pages of that
 * txn or older count as referenced by a durable meta page, and pages retired
 * from then on wait for a later checkpoint. pager_freelist_build stores
 * every page that is not reachable from that state (free, retired, and the
 * old free-list pages in `old_head`) in a chain of new free-list pages and
 * returns its head (PGNO_NONE when empty) and the number of pages listed.
 * pager_flush then writes every dirty page and makes the file at least
 * npages long; the caller syncs, writes the meta page and syncs again (on
 * any thread: transactions may go on meanwhile), then calls
 * pager_checkpoint_done, which makes reusable the pages that no meta page
 * on file reaches any more: neither slot's, since open falls back to the
 * older slot when the newer is damaged.
 */
void pager_checkpoint_begin(struct pager *p, uint64_t ckpt_txn);
int pager_freelist_build(struct pager *p, uint64_t ckpt_txn, pgno_t old_head, pgno_t *head,
                         uint64_t *count);
int pager_flush(struct pager *p);
void pager_checkpoint_done(struct pager *p);

/*
 * Reads the free-list chain starting at head into the reusable set. At most
 * `expect` pages are accepted; SOMBRA_ECORRUPT for a chain that is longer,
 * loops, or names a page outside the file. `older_meta`: the other meta
 * slot holds a checkpoint that open could fall back to (one that the WAL
 * still continues), whose pages the list may name: they wait for the next
 * checkpoint instead.
 */
int pager_freelist_load(struct pager *p, pgno_t head, uint64_t expect, bool older_meta);

/*
 * Recovery taking over a state that the file holds (adopt.h), on a pager
 * fresh from pager_freelist_load of the checkpoint that state grew from, in
 * steps:
 *   pager_adopt_begin  pager_get, of the writer or of a reader handle,
 *                      may read the state's `npages` pages (SOMBRA_ECORRUPT
 *                      for fewer than the checkpoint's, or more than the
 *                      file holds);
 *   pager_adopt        `reached`, the state's pages written since the
 *                      checkpoint, are no longer reusable; `retired`, pages
 *                      of the checkpoint's state that the new one left, wait
 *                      like pages retired now; pages added to the file since
 *                      the checkpoint that the state does not use are
 *                      reusable at once. SOMBRA_ECORRUPT, with nothing
 *                      changed, when a reached page below the checkpoint's
 *                      end was not on its free list: the file does not hold
 *                      that state. SOMBRA_ENOMEM.
 *   pager_adopt_cancel instead of pager_adopt, or after its SOMBRA_ECORRUPT:
 *                      back to the checkpoint's pages.
 * The walk in between reads through a walker (pager_walker_open): pages
 * cached by the writer's pager_get would include free ones, and a free page
 * must not be cached when it is handed out again.
 */
int pager_adopt_begin(struct pager *p, uint64_t npages);
int pager_adopt(struct pager *p, const struct idset *reached, const pgno_t *retired,
                size_t nretired);
void pager_adopt_cancel(struct pager *p);

/*
 * Readers in other processes (store.c) read the pages of an older durable
 * checkpoint, which this pager knows nothing of. While `hold` is on, no page
 * that a durable meta page ever reached becomes reusable: such pages wait in
 * `pending`, checkpoint after checkpoint (the file grows instead), and so do
 * the pages pager_freelist_load reads. Turning it off lets the next
 * pager_checkpoint_done release them. Pages no durable meta page ever
 * reached are reused as usual.
 */
void pager_set_hold(struct pager *p, bool hold);

/*
 * Verify: calls fn once for every page the pager knows to be unreachable from
 * the committed state (reusable, retired, and the pages of the on-disk free
 * list whose head is `head`). Stops at the first non-zero return.
 */
int pager_visit_unreachable(struct pager *p, pgno_t head, int (*fn)(void *arg, pgno_t pgno),
                            void *arg);

#endif
