/*
 * btree.h - one copy-on-write B+tree with byte-comparable keys, used for every
 * index of the graph.
 *
 * Keys are compared with memcmp, a shorter key sorting before any longer key
 * it is a prefix of; they are 1..BTREE_MAX_KEY bytes. Values are 0 bytes up
 * to SOMBRA_MAX_RECORD; large ones live in overflow pages. A tree is named by
 * its root page number, PGNO_NONE for an empty tree. Writes take the root by
 * reference because copy-on-write gives the tree a new root on every change.
 *
 * Reads (get, cursors) never modify pages and may run against any committed
 * root. Writes need an open pager transaction.
 */
#ifndef SOMBRA_BTREE_H
#define SOMBRA_BTREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pager.h"
#include "buf.h"

#define BTREE_MAX_KEY   512u
#define BTREE_MAX_DEPTH 32

/*
 * Copies the value of key into *val (which may be NULL to test presence).
 * SOMBRA_ENOTFOUND when absent, SOMBRA_EINVAL for a bad key, page errors.
 */
int btree_get(struct pager *p, pgno_t root, const void *key, size_t klen, struct buf *val);

/* Inserts or replaces. SOMBRA_EINVAL for a bad key, SOMBRA_ETOOBIG for a value over the limit. */
int btree_put(struct pager *p, pgno_t *root, const void *key, size_t klen, const void *val,
              size_t vlen);

/*
 * A writer's memory of the leaf its last insert went into and of the key
 * range that leaf covers, so that a run of inserts into one leaf (ids in
 * increasing order, a sorted batch, a replayed log) descends the tree once
 * per leaf, not once per key. It holds only while the tree keeps its shape in
 * one transaction: the caller clears it when a transaction begins and when
 * it deletes from the tree; btree_put_hinted keeps it up to date otherwise.
 */
struct btree_hint {
        pgno_t leaf;                                  /* PGNO_NONE: nothing remembered */
        uint32_t slot;                                /* where the last insert went in it */
        uint32_t run;                                 /* inserts before it, each one slot lower */
        uint16_t lo_len, hi_len;                      /* 0: unbounded on that side */
        uint8_t lo[BTREE_MAX_KEY], hi[BTREE_MAX_KEY]; /* the leaf holds keys in [lo, hi) */
};

void btree_hint_clear(struct btree_hint *h);

/* btree_put, first trying the leaf h remembers; h may be NULL. */
int btree_put_hinted(struct pager *p, pgno_t *root, struct btree_hint *h, const void *key,
                     size_t klen, const void *val, size_t vlen);

/* Removes key. SOMBRA_ENOTFOUND when absent. */
int btree_del(struct pager *p, pgno_t *root, const void *key, size_t klen);

/* Retires every page of the tree; *root becomes PGNO_NONE. */
int btree_drop(struct pager *p, pgno_t *root);

/*
 * Cursors walk keys in ascending order. A cursor pins the current leaf, so the
 * key it shows stays valid until the next move or close. A write to the same
 * tree in the same transaction invalidates its cursors: collect, then write.
 */
struct btree_cursor {
        struct pager *pager;
        pgno_t root;
        int depth; /* entries in path; path[depth-1] is the leaf */
        struct {
                pgno_t pgno;
                uint32_t idx;
        } path[BTREE_MAX_DEPTH];
        struct page *leaf; /* pinned while valid */
        bool valid;
};

void btree_cursor_init(struct btree_cursor *c, struct pager *p, pgno_t root);
/* Positions at the first key >= key (klen 0: the first key). Check btree_cursor_valid. */
int btree_cursor_seek(struct btree_cursor *c, const void *key, size_t klen);
int btree_cursor_next(struct btree_cursor *c);
bool btree_cursor_valid(const struct btree_cursor *c);
void btree_cursor_key(const struct btree_cursor *c, const uint8_t **key, size_t *klen);
int btree_cursor_value(struct btree_cursor *c, struct buf *val);
void btree_cursor_close(struct btree_cursor *c);

/*
 * Verify: walks the whole tree checking page types, key order inside and
 * across pages, equal leaf depth and overflow chains; calls fn for every page
 * (tree and overflow) and counts the entries. SOMBRA_ECORRUPT on any flaw.
 */
int btree_check(struct pager *p, pgno_t root, int (*fn)(void *arg, pgno_t pgno), void *arg,
                uint64_t *entries);

/*
 * Walks the trees at roots[0..nroots) (PGNO_NONE: an empty tree) from the
 * top: visit(arg, pg, &descend) is called for every page (overflow pages
 * included) before the pages it points to, with descend true; a visit that
 * clears it keeps the walk out of what the page points to. The walk goes a
 * level at a time, across all the trees, each level in increasing page
 * order, and the overflow chains last: pages that lie together in the file
 * are read one after the other (a walker reads such pages in blocks). Pages
 * are checked as pager_get checks them; a page of the wrong type, too deep a
 * tree or too long an overflow chain is SOMBRA_ECORRUPT. An error from visit
 * stops the walk and is returned; SOMBRA_ENOMEM. A level that would hold more
 * pages than pager_npages(p) is SOMBRA_ECORRUPT too. For recovery's
 * comparison of two states of the file (adopt.c).
 */
int btree_walk(struct pager *p, const pgno_t *roots, size_t nroots,
               int (*visit)(void *arg, const struct page *pg, bool *descend), void *arg);

/*
 * Structural check of a leaf or branch page read from the file, so that a
 * damaged page is an error, never an out-of-bounds access. Other page types
 * pass. SOMBRA_ECORRUPT or SOMBRA_OK.
 */
int btree_page_check(const uint8_t *data, uint32_t page_size);
/*
 * A leaf's or a branch's free gap, [*lo, *hi): between its slot array and its
 * lowest cell, bytes nothing reads before writing them. False for another
 * page, or a header that does not add up.
 */
bool btree_page_gap(const uint8_t *data, uint32_t page_size, uint32_t *lo, uint32_t *hi);

/*
 * Bottom-up building, for a compacting copy: a whole tree made from entries
 * given in strictly increasing key order, written straight into a file that
 * no pager serves (a new database file). Leaves are filled left to right
 * until the next cell does not fit, then each branch level above them the
 * same way, so every page but the last of a level is full. Pages are
 * numbered from out->next on in the order they are finished (an overflow
 * chain as its value arrives) and each is written once, with its checksum
 * and out->txn as its txn; out->next ends past the last page used. Runs on
 * any thread: it touches no pager.
 */
struct btree_build_out {
        struct io_file *file;
        uint32_t page_size;
        uint64_t txn;
        pgno_t next;
        enum page_cells cells; /* the leaves' layout */
};

struct btree_builder;

/* SOMBRA_ENOMEM. `out` must outlive the builder. */
int btree_build_begin(struct btree_build_out *out, struct btree_builder **b);
/*
 * Adds one entry. SOMBRA_EINVAL for a bad key or one not above the one
 * before, SOMBRA_ETOOBIG for a value over the limit, write errors
 * (SOMBRA_EIO, SOMBRA_ENOSPC). After a failure, only btree_build_abort.
 */
int btree_build_add(struct btree_builder *b, const void *key, size_t klen, const void *val,
                    size_t vlen);
/*
 * Writes the pages still being filled and gives the root (PGNO_NONE for a
 * tree without entries). Frees b, also when it fails (write errors).
 */
int btree_build_end(struct btree_builder *b, pgno_t *root);
/* Frees b without finishing; pages already written stay where they are. */
void btree_build_abort(struct btree_builder *b);

#endif
