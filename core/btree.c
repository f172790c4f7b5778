/*
 * btree.c - the copy-on-write B+tree.
 *
 * Page layout (after the 40-byte page header of pager.h):
 *   a slot array of nkeys u16 cell offsets in key order, growing up from
 *   byte 40, and the cells, growing down from the page end; `upper` is the
 *   lowest cell byte. Deleting a cell leaves a hole that the next insert that
 *   needs the room compacts away.
 * Leaf cell, in the leaf's layout (the page header's `cells`, pager.h):
 *   varint: varint klen | key | varint vinfo | value
 *           vinfo = value length << 1, | 1 when the value lives in a chain
 *           of overflow pages (nkeys = bytes on that page, aux = next page);
 *   fixed:  u16 klen | u32 vinfo | key | value
 *           vinfo = value length, top bit VAL_OVERFLOW for a chain
 *           (files of format 5 and older; no new file gets it).
 *   With a chain, the value in the cell is the u64 number of its first page.
 *   Varints are buf.h's; klen takes at most 2 bytes, vinfo at most 4.
 * Branch cell: u16 klen | u64 child | key
 *   A branch with n cells has n + 1 children: the header's aux is the
 *   leftmost, cell i's child holds the keys >= key i (and < key i+1).
 *
 * Size rules: a cell is at most a quarter of the page body, so a page split
 * in two by bytes always leaves room on both sides, and a branch always holds
 * several keys. Values that would make a larger leaf cell go to overflow.
 * A full page splits in the middle, except under a run of increasing keys,
 * which leaves the page full instead (enum split_policy).
 *
 * Copy-on-write: a write walks down recursively; on the way back up each page
 * on the path is made writable (copied when an earlier transaction wrote it)
 * and its parent is told the new page number. Splits travel up the same way.
 *
 * Deletion policy (lazy): a leaf left empty is removed from its parent, and so
 * is a branch whose last child goes; partly filled pages are not merged with
 * their siblings. A branch below the root may be left with one child and no
 * keys: replacing it by that child would lift the child's leaves a level
 * above their cousins', and every leaf must stay at the same depth. The root
 * alone is replaced by its only child, so a tree never holds empty pages and
 * shrinks in height as it empties. Insertion fills holes first, so space is
 * reused under churn; `btree_check` reports the tree as it is.
 *
 * Bottom-up building (btree_build_*, for a compacting copy): entries come in
 * key order and fill leaves left to right, each to the last cell that fits;
 * each finished page hands its number and lowest key to the level above,
 * which fills branch pages the same way. Since nothing is inserted in the
 * middle, no page is split, so the pages end up full rather than the
 * ln 2 or so that random inserts leave. The first later insert into such a
 * page splits it, as usual.
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "sombra.h"
#include "btree.h"

#define VAL_OVERFLOW    0x80000000u
#define LEAF_CELL_HDR   6u
#define BRANCH_CELL_HDR 10u

/*
 * Inserts in a row, each right after the one before, that make a run (see
 * SPLIT_RUN): enough that a sorted batch's occasional pair of neighbours
 * does not count as one.
 */
#define RUN_MIN 8u

/* ---- page accessors ---- */

static uint16_t
nkeys(const uint8_t *d)
{
        return get_be16(d + 2);
}

static void
set_nkeys(uint8_t *d, uint16_t n)
{
        put_be16(d + 2, n);
}

static uint32_t
upper(const uint8_t *d)
{
        return get_be32(d + 4);
}

static void
set_upper(uint8_t *d, uint32_t u)
{
        put_be32(d + 4, u);
}

static uint16_t
slot(const uint8_t *d, uint32_t i)
{
        return get_be16(d + PAGE_HDR + 2 * i);
}

static const uint8_t *
cell(const uint8_t *d, uint32_t i)
{
        return d + slot(d, i);
}

static bool
is_leaf(const uint8_t *d)
{
        return d[0] == PAGE_LEAF;
}

/* Whether d is a leaf of varint cells (other pages have zero there). */
static bool
varint_cells(const uint8_t *d)
{
        return d[1] == PAGE_CELLS_VARINT;
}

/* The key length of cell c of page d; the page passed btree_page_check. */
static uint16_t
cell_klen(const uint8_t *d, const uint8_t *c)
{
        if (!varint_cells(d))
                return get_be16(c);
        return c[0] < 0x80 ? c[0] : (uint16_t)((c[0] & 0x7f) | c[1] << 7);
}

static const uint8_t *
cell_key(const uint8_t *d, const uint8_t *c)
{
        if (varint_cells(d))
                return c + 1 + (c[0] >= 0x80);
        return c + (is_leaf(d) ? LEAF_CELL_HDR : BRANCH_CELL_HDR);
}

/* A leaf cell taken apart. */
struct leaf_cell {
        const uint8_t *key;
        const uint8_t *val; /* the value, or with `ovf` the u64 first page of its chain */
        uint32_t klen;
        uint32_t vlen; /* the whole value's */
        bool ovf;
        uint32_t size; /* the cell's bytes */
};

static struct leaf_cell
leaf_cell(const uint8_t *d, const uint8_t *c)
{
        struct leaf_cell lc = {cell_key(d, c), NULL, cell_klen(d, c), 0, false, 0};
        uint64_t vinfo = 0;

        if (varint_cells(d)) {
                lc.val = lc.key + lc.klen;
                lc.val += varint_get(lc.val, 4, 4, &vinfo);
                lc.ovf = vinfo & 1;
                lc.vlen = (uint32_t)(vinfo >> 1);
        } else {
                vinfo = get_be32(c + 2);
                lc.val = lc.key + lc.klen;
                lc.ovf = (vinfo & VAL_OVERFLOW) != 0;
                lc.vlen = (uint32_t)vinfo & ~VAL_OVERFLOW;
        }
        lc.size = (uint32_t)(lc.val - c) + (lc.ovf ? 8 : lc.vlen);
        return lc;
}

static size_t
cell_size(const uint8_t *d, const uint8_t *c)
{
        if (!is_leaf(d))
                return BRANCH_CELL_HDR + cell_klen(d, c);
        return leaf_cell(d, c).size;
}

static pgno_t
branch_child(const uint8_t *d, uint32_t i)
{
        return i == 0 ? get_be64(d + 32) : get_be64(cell(d, i - 1) + 2);
}

static void
branch_set_child(uint8_t *d, uint32_t i, pgno_t child)
{
        if (i == 0)
                put_be64(d + 32, child);
        else
                put_be64((uint8_t *)cell(d, i - 1) + 2, child);
}

static size_t
cell_max(uint32_t page_size)
{
        return (page_size - PAGE_HDR) / 4 - 2;
}

static int
key_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
        size_t n = alen < blen ? alen : blen;
        int c;

        /*
         * memcmp order, eight bytes at a time as big-endian integers first:
         * the keys of older files are made of 8-byte ids, and the property
         * index's of several fields; most comparisons of such keys end
         * there, without a memcmp call.
         */
        while (n >= 8) {
                uint64_t x = get_be64(a), y = get_be64(b);
                if (x != y)
                        return x < y ? -1 : 1;
                a += 8;
                b += 8;
                n -= 8;
        }
        c = memcmp(a, b, n);
        if (c != 0)
                return c;
        return (alen > blen) - (alen < blen);
}

/* Index of the first cell whose key is >= key (leaf) or > key (branch, when `upper_bound`). */
static uint32_t
search(const uint8_t *d, const uint8_t *key, size_t klen, bool upper_bound, bool *exact)
{
        uint32_t lo = 0, hi = nkeys(d);

        *exact = false;
        while (lo < hi) {
                uint32_t mid = lo + (hi - lo) / 2;
                const uint8_t *c = cell(d, mid);
                /*
                 * The two cells the next step may compare with: fetched now,
                 * their cache misses overlap this one's instead of following it.
                 */
                if (hi - lo > 2) {
                        __builtin_prefetch(cell(d, lo + (mid - lo) / 2));
                        __builtin_prefetch(cell(d, mid + 1 + (hi - mid - 1) / 2));
                }
                int cmp = key_cmp(cell_key(d, c), cell_klen(d, c), key, klen);
                if (cmp == 0)
                        *exact = true;
                if (cmp < 0 || (upper_bound && cmp == 0))
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo;
}

/* Whether key sorts after every key of the non-empty page d. */
static bool
key_after_last(const uint8_t *d, const uint8_t *key, size_t klen)
{
        const uint8_t *last = cell(d, nkeys(d) - 1u);

        return key_cmp(cell_key(d, last), cell_klen(d, last), key, klen) < 0;
}

/* Child index of a branch for key: the number of separators <= key. */
static uint32_t
branch_index(const uint8_t *d, const uint8_t *key, size_t klen)
{
        bool exact;
        return search(d, key, klen, true, &exact);
}

/* ---- page editing ---- */

static size_t
page_free_contiguous(const uint8_t *d)
{
        return upper(d) - (PAGE_HDR + 2u * nkeys(d));
}

static size_t
page_used(const uint8_t *d)
{
        size_t used = PAGE_HDR + 2u * nkeys(d);
        for (uint32_t i = 0; i < nkeys(d); i++)
                used += cell_size(d, cell(d, i));
        return used;
}

/* Appends a cell after the existing ones; the caller checked the room. */
static void
page_append(uint8_t *d, const uint8_t *c, size_t len)
{
        uint32_t n = nkeys(d), up = upper(d) - (uint32_t)len;

        memcpy(d + up, c, len);
        put_be16(d + PAGE_HDR + 2 * n, (uint16_t)up);
        set_upper(d, up);
        set_nkeys(d, (uint16_t)(n + 1));
}

/* A list of cells, pointing into scratch copies, used to rebuild pages. */
struct cells {
        const uint8_t **ptr;
        uint16_t *len;
        uint32_t n;
};

static void
cells_from_page(struct cells *cs, const uint8_t *d)
{
        for (uint32_t i = 0; i < nkeys(d); i++) {
                cs->ptr[cs->n] = cell(d, i);
                cs->len[cs->n] = (uint16_t)cell_size(d, cell(d, i));
                cs->n++;
        }
}

static void
page_rebuild(uint8_t *d, uint32_t page_size, const struct cells *cs, uint32_t from, uint32_t to)
{
        set_nkeys(d, 0);
        set_upper(d, page_size);
        for (uint32_t i = from; i < to; i++)
                page_append(d, cs->ptr[i], cs->len[i]);
}

/*
 * Scratch layout: [0, ps) the cell being inserted, [ps, 2ps) a copy of the
 * page being rebuilt, then the cell list arrays (about 2 ps together, of
 * the PAGER_SCRATCH_PAGES).
 */
static void
scratch_cells(struct pager *p, struct cells *cs, uint8_t **copy)
{
        uint32_t ps = pager_page_size(p);
        uint8_t *s = pager_scratch(p);
        /*
         * A page's cells, and the one being inserted: a varint leaf cell
         * takes 3 bytes at least (key length, a 1-byte key, value info), 5
         * with its slot, and btree_page_check holds a page to what fits.
         */
        size_t max_cells = (ps - PAGE_HDR) / 5 + 2;

        *copy = s + ps;
        cs->ptr = (const uint8_t **)(void *)(s + 2 * (size_t)ps);
        cs->len = (uint16_t *)(void *)(s + 2 * (size_t)ps + max_cells * sizeof(*cs->ptr));
        cs->n = 0;
}

/* Removes cell i's slot; its bytes become a hole. */
static void
page_remove(uint8_t *d, uint32_t i)
{
        uint32_t n = nkeys(d);
        memmove(d + PAGE_HDR + 2 * i, d + PAGE_HDR + 2 * (i + 1), 2 * (n - i - 1));
        set_nkeys(d, (uint16_t)(n - 1));
}

/* Inserts a cell at position i when it fits (compacting if needed); false when it does not. */
static bool
page_insert_fits(struct pager *p, uint8_t *d, uint32_t i, const uint8_t *c, size_t len)
{
        uint32_t ps = pager_page_size(p), n = nkeys(d), up;

        if (page_free_contiguous(d) < len + 2) {
                struct cells cs;
                uint8_t *copy;
                if (ps - page_used(d) < len + 2)
                        return false;
                scratch_cells(p, &cs, &copy);
                memcpy(copy, d, ps);
                cells_from_page(&cs, copy);
                page_rebuild(d, ps, &cs, 0, cs.n);
        }
        up = upper(d) - (uint32_t)len;
        memcpy(d + up, c, len);
        memmove(d + PAGE_HDR + 2 * (i + 1), d + PAGE_HDR + 2 * i, 2 * (n - i));
        put_be16(d + PAGE_HDR + 2 * i, (uint16_t)up);
        set_upper(d, up);
        set_nkeys(d, (uint16_t)(n + 1));
        return true;
}

/* What a write below tells the level above. */
struct child_result {
        pgno_t pgno; /* the child's (possibly new) number; PGNO_NONE: gone */
        bool split;  /* a new right sibling follows the child */
        pgno_t right;
        uint16_t sep_len;
        uint8_t sep[BTREE_MAX_KEY]; /* the right sibling's lowest key */
};

/*
 * How page_insert splits a full page. SPLIT_HALF: the page keeps the lower
 * half of the bytes and a new right sibling gets the upper half.
 * SPLIT_APPEND, for an insert at the right edge of the tree: only the new
 * cell goes to the sibling, so that keys inserted in increasing order (node
 * and edge ids) leave full pages behind, not half-full ones. SPLIT_RUN, for a
 * leaf insert right after the previous insert into the same leaf: the
 * page keeps the new cell and the cells before it, provided they are at least
 * half of the bytes, and the sibling gets the cells after it: the next keys
 * of the run then go on filling the page, and those after them wait in the
 * sibling. Increasing keys inserted in the middle of a tree (each label's
 * nodes, a sorted batch) so leave full pages behind as well.
 */
enum split_policy { SPLIT_HALF, SPLIT_APPEND, SPLIT_RUN };

/*
 * SPLIT_RUN's split point in cs, whose cell i is the new one: after it when
 * the page can hold cells 0..i, otherwise (or when nothing would be left for
 * the sibling) at it.
 */
static uint32_t
run_split(const struct cells *cs, uint32_t i, uint32_t page_size)
{
        size_t used = PAGE_HDR;

        if (i + 1 >= cs->n)
                return i;
        for (uint32_t k = 0; k <= i; k++)
                used += cs->len[k] + 2u;
        return used <= page_size ? i + 1 : i;
}

/*
 * Inserts cell c at position i of the writable page pg, splitting it (as
 * `policy` says) when it is full; res describes the split.
 */
static int
page_insert(struct pager *p, struct page *pg, uint32_t i, const uint8_t *c, size_t len,
            enum split_policy policy, struct child_result *res)
{
        uint32_t ps = pager_page_size(p), total = 0, acc = 0, m, rfrom;
        struct cells cs;
        struct page *right;
        uint8_t *copy, *d = pg->data;
        const uint8_t *sep;
        bool leaf = is_leaf(d);
        int rc;

        if (page_insert_fits(p, d, i, c, len))
                return SOMBRA_OK;

        scratch_cells(p, &cs, &copy);
        memcpy(copy, d, ps);
        for (uint32_t k = 0; k < nkeys(copy); k++) {
                if (k == i) {
                        cs.ptr[cs.n] = c;
                        cs.len[cs.n++] = (uint16_t)len;
                }
                cs.ptr[cs.n] = cell(copy, k);
                cs.len[cs.n++] = (uint16_t)cell_size(copy, cell(copy, k));
        }
        if (i == nkeys(copy)) {
                cs.ptr[cs.n] = c;
                cs.len[cs.n++] = (uint16_t)len;
        }
        for (uint32_t k = 0; k < cs.n; k++)
                total += cs.len[k] + 2u;
        /* Split where the lower half first reaches half the bytes; keep both sides non-empty. */
        for (m = 0; m < cs.n - 1; m++) {
                acc += cs.len[m] + 2u;
                if (acc >= total / 2)
                        break;
        }
        m++;
        if (m >= cs.n)
                m = cs.n - 1;
        if (policy == SPLIT_APPEND && cs.n >= 3)
                m = leaf ? cs.n - 1 : cs.n - 2;
        if (policy == SPLIT_RUN && leaf && i >= m)
                m = run_split(&cs, i, ps);

        rc = pager_alloc(p, leaf ? PAGE_LEAF : PAGE_BRANCH, &right);
        if (rc != SOMBRA_OK)
                return rc;
        sep = cs.ptr[m];
        res->sep_len = cell_klen(copy, sep);
        memcpy(res->sep, cell_key(copy, sep), res->sep_len);
        /* A branch's middle key moves up; its child becomes the right page's leftmost. */
        rfrom = m;
        if (!leaf) {
                page_set_aux(right, get_be64(sep + 2));
                rfrom = m + 1;
        }
        page_rebuild(right->data, ps, &cs, rfrom, cs.n);
        page_rebuild(d, ps, &cs, 0, m);
        res->split = true;
        res->right = right->pgno;
        pager_unpin(p, right);
        return SOMBRA_OK;
}

/* ---- overflow chains ---- */

static size_t
ovf_room(uint32_t ps)
{
        return ps - PAGE_HDR;
}

static int
ovf_write(struct pager *p, const uint8_t *val, size_t vlen, pgno_t *first)
{
        size_t room = ovf_room(pager_page_size(p));
        struct page *prev = NULL;
        int rc = SOMBRA_OK;

        *first = PGNO_NONE;
        while (vlen > 0) {
                struct page *pg;
                size_t n = vlen < room ? vlen : room;
                rc = pager_alloc(p, PAGE_OVERFLOW, &pg);
                if (rc != SOMBRA_OK)
                        break;
                memcpy(pg->data + PAGE_HDR, val, n);
                set_nkeys(pg->data, (uint16_t)n);
                if (prev != NULL) {
                        page_set_aux(prev, pg->pgno);
                        pager_unpin(p, prev);
                } else {
                        *first = pg->pgno;
                }
                prev = pg;
                val += n;
                vlen -= n;
        }
        pager_unpin(p, prev);
        return rc; /* on failure the pages already made are freed by the txn abort */
}

/* Follows a chain; with `retire` set, retires its pages, otherwise appends its bytes to out. */
static int
ovf_walk(struct pager *p, pgno_t pgno, size_t vlen, struct buf *out, bool retire,
         int (*fn)(void *arg, pgno_t pgno), void *arg)
{
        size_t got = 0;
        int rc = SOMBRA_OK;

        /* No value that long was ever stored: a damaged length must not size an allocation. */
        if (vlen > SOMBRA_MAX_RECORD)
                return SOMBRA_ECORRUPT;
        if (out != NULL)
                rc = buf_reserve(out, out->len + vlen);
        while (rc == SOMBRA_OK && got < vlen) {
                struct page *pg;
                size_t n;
                if (pgno == PGNO_NONE)
                        return SOMBRA_ECORRUPT;
                rc = pager_get(p, pgno, &pg);
                if (rc != SOMBRA_OK)
                        break;
                n = nkeys(pg->data);
                if (page_type(pg) != PAGE_OVERFLOW || n == 0 || n > vlen - got) {
                        pager_unpin(p, pg);
                        return SOMBRA_ECORRUPT;
                }
                if (out != NULL)
                        buf_append(out, pg->data + PAGE_HDR, n); /* reserved above */
                if (fn != NULL)
                        rc = fn(arg, pgno);
                got += n;
                pgno = page_aux(pg);
                if (retire) {
                        int r2 = pager_retire(p, pg);
                        if (rc == SOMBRA_OK)
                                rc = r2;
                } else {
                        pager_unpin(p, pg);
                }
        }
        if (rc == SOMBRA_OK && pgno != PGNO_NONE)
                rc = SOMBRA_ECORRUPT;
        return rc;
}

static int
leaf_value(struct pager *p, const uint8_t *d, const uint8_t *c, struct buf *out)
{
        struct leaf_cell lc = leaf_cell(d, c);

        buf_reset(out);
        if (lc.ovf)
                return ovf_walk(p, get_be64(lc.val), lc.vlen, out, false, NULL, NULL);
        return buf_append(out, lc.val, lc.vlen);
}

/* Retires the overflow chain of a leaf cell, if it has one. */
static int
cell_release(struct pager *p, const uint8_t *d, const uint8_t *c)
{
        struct leaf_cell lc = leaf_cell(d, c);

        if (!lc.ovf)
                return SOMBRA_OK;
        return ovf_walk(p, get_be64(lc.val), lc.vlen, NULL, true, NULL, NULL);
}

/* ---- get ---- */

static int
key_ok(const void *key, size_t klen)
{
        return (key != NULL && klen >= 1 && klen <= BTREE_MAX_KEY) ? SOMBRA_OK : SOMBRA_EINVAL;
}

int
btree_get(struct pager *p, pgno_t root, const void *key, size_t klen, struct buf *val)
{
        pgno_t pgno = root;
        int rc = key_ok(key, klen);

        if (rc != SOMBRA_OK)
                return rc;
        for (int depth = 0; pgno != PGNO_NONE; depth++) {
                struct page *pg;
                bool exact;
                uint32_t i;
                if (depth >= BTREE_MAX_DEPTH)
                        return SOMBRA_ECORRUPT;
                rc = pager_get(p, pgno, &pg);
                if (rc != SOMBRA_OK)
                        return rc;
                if (page_type(pg) == PAGE_BRANCH) {
                        pgno = branch_child(pg->data, branch_index(pg->data, key, klen));
                        pager_unpin(p, pg);
                        continue;
                }
                if (page_type(pg) != PAGE_LEAF) {
                        pager_unpin(p, pg);
                        return SOMBRA_ECORRUPT;
                }
                i = search(pg->data, key, klen, false, &exact);
                rc = SOMBRA_ENOTFOUND;
                if (exact && val != NULL)
                        rc = leaf_value(p, pg->data, cell(pg->data, i), val);
                else if (exact)
                        rc = SOMBRA_OK;
                pager_unpin(p, pg);
                return rc;
        }
        return SOMBRA_ENOTFOUND;
}

/* ---- put ---- */

struct put_args {
        const uint8_t *key;
        size_t klen;
        const uint8_t *cell;
        size_t clen;
        struct btree_hint *hint; /* NULL: none to keep */
        /* The previous insert, as the hint remembers it: */
        pgno_t run_leaf;            /* its leaf (PGNO_NONE: none) */
        uint32_t run_slot, run_len; /* its position there, and the run it ended */
};

/*
 * The keys a subtree holds, [lo, hi), as separators in the pinned pages above
 * it; NULL when unbounded. An unbounded hi is the tree's right edge.
 */
struct key_range {
        const uint8_t *lo, *hi;
        uint16_t lo_len, hi_len;
};

/* The range of child i of branch d, which covers `r`. */
static struct key_range
child_range(const uint8_t *d, uint32_t i, struct key_range r)
{
        if (i > 0) {
                r.lo = cell_key(d, cell(d, i - 1));
                r.lo_len = cell_klen(d, cell(d, i - 1));
        }
        if (i < nkeys(d)) {
                r.hi = cell_key(d, cell(d, i));
                r.hi_len = cell_klen(d, cell(d, i));
        }
        return r;
}

/* Notes an insert at `slot` of the leaf h remembers. */
static void
hint_slot(struct btree_hint *h, uint32_t slot)
{
        h->run = slot == h->slot + 1 ? h->run + 1 : 0;
        h->slot = slot;
}

static void
hint_keep(struct btree_hint *h, pgno_t leaf, uint32_t slot, const struct key_range *r)
{
        if (h == NULL)
                return;
        if (h->leaf == leaf) {
                hint_slot(h, slot);
                return;
        }
        h->slot = slot;
        h->run = 0;
        h->leaf = leaf;
        h->lo_len = r->lo != NULL ? r->lo_len : 0;
        h->hi_len = r->hi != NULL ? r->hi_len : 0;
        if (r->lo != NULL)
                memcpy(h->lo, r->lo, h->lo_len);
        if (r->hi != NULL)
                memcpy(h->hi, r->hi, h->hi_len);
}

void
btree_hint_clear(struct btree_hint *h)
{
        h->leaf = PGNO_NONE;
}

/* How an insert at position i of pg, which covers r, splits it: see enum split_policy. */
static enum split_policy
edge_split(const struct key_range *r, uint32_t i, const struct page *pg)
{
        return r->hi == NULL && i == nkeys(pg->data) ? SPLIT_APPEND : SPLIT_HALF;
}

/* The same for a leaf, whose number was `was` before it was made writable. */
static enum split_policy
leaf_split(const struct put_args *a, pgno_t was, uint32_t i, const struct key_range *r,
           const struct page *pg)
{
        enum split_policy policy = edge_split(r, i, pg);

        if (policy == SPLIT_HALF && a->run_leaf == was && i == a->run_slot + 1 &&
            a->run_len >= RUN_MIN)
                policy = SPLIT_RUN;
        return policy;
}

static int
put_rec(struct pager *p, pgno_t pgno, const struct put_args *a, int depth, struct key_range r,
        struct child_result *res)
{
        struct page *pg;
        uint32_t i;
        bool exact;
        int rc;

        if (depth >= BTREE_MAX_DEPTH)
                return SOMBRA_ECORRUPT;
        rc = pager_get(p, pgno, &pg);
        if (rc != SOMBRA_OK)
                return rc;
        if (page_type(pg) == PAGE_LEAF) {
                i = search(pg->data, a->key, a->klen, false, &exact);
                if (exact)
                        rc = cell_release(p, pg->data, cell(pg->data, i));
                if (rc == SOMBRA_OK)
                        rc = pager_make_writable(p, &pg);
                if (rc != SOMBRA_OK)
                        goto label_out;
                if (exact)
                        page_remove(pg->data, i);
                rc = page_insert(p, pg, i, a->cell, a->clen, leaf_split(a, pgno, i, &r, pg), res);
                if (rc == SOMBRA_OK && !res->split)
                        hint_keep(a->hint, pg->pgno, i, &r);
        } else if (page_type(pg) == PAGE_BRANCH) {
                struct child_result below;
                pgno_t child;
                below.split = false; /* the rest is set by whoever sets split */
                i = branch_index(pg->data, a->key, a->klen);
                child = branch_child(pg->data, i);
                rc = put_rec(p, child, a, depth + 1, child_range(pg->data, i, r), &below);
                if (rc != SOMBRA_OK || (below.pgno == child && !below.split))
                        goto label_out;
                rc = pager_make_writable(p, &pg);
                if (rc != SOMBRA_OK)
                        goto label_out;
                branch_set_child(pg->data, i, below.pgno);
                if (below.split) {
                        uint8_t c[BRANCH_CELL_HDR + BTREE_MAX_KEY];
                        put_be16(c, below.sep_len);
                        put_be64(c + 2, below.right);
                        memcpy(c + BRANCH_CELL_HDR, below.sep, below.sep_len);
                        rc = page_insert(p, pg, i, c, BRANCH_CELL_HDR + below.sep_len,
                                         edge_split(&r, i, pg), res);
                }
        } else {
                rc = SOMBRA_ECORRUPT;
        }
label_out:
        res->pgno = pg->pgno;
        pager_unpin(p, pg);
        return rc;
}

/*
 * The insert of a->cell into the leaf a->hint remembers, when the key falls
 * in its range, is new there, and fits: the one case in which no page above
 * the leaf changes (the leaf was written in this transaction, so it keeps its
 * number). *done tells whether it was made; otherwise nothing was changed.
 */
static int
put_hinted(struct pager *p, const struct put_args *a, bool *done)
{
        struct btree_hint *h = a->hint;
        struct page *pg;
        uint32_t i, n;
        bool exact = false;
        int rc;

        *done = false;
        if (h == NULL || h->leaf == PGNO_NONE ||
            (h->lo_len > 0 && key_cmp(a->key, a->klen, h->lo, h->lo_len) < 0) ||
            (h->hi_len > 0 && key_cmp(a->key, a->klen, h->hi, h->hi_len) >= 0))
                return SOMBRA_OK;
        rc = pager_get(p, h->leaf, &pg);
        if (rc != SOMBRA_OK)
                return rc;
        n = nkeys(pg->data);
        if (page_type(pg) == PAGE_LEAF && pager_writable(p, pg) && n > 0) {
                /* Keys in increasing order: one compare with the last key instead of a search. */
                if (key_after_last(pg->data, a->key, a->klen))
                        i = n;
                else
                        i = search(pg->data, a->key, a->klen, false, &exact);
                /* Writable already: this only marks it dirty, under the same number. */
                if (!exact && page_insert_fits(p, pg->data, i, a->cell, a->clen))
                        *done = pager_make_writable(p, &pg) == SOMBRA_OK;
                if (*done)
                        hint_slot(h, i);
        }
        pager_unpin(p, pg);
        return SOMBRA_OK;
}

/* The bytes of a leaf cell's lengths in layout `cells`, for a value held inline or not. */
static size_t
leaf_cell_hdr(enum page_cells cells, size_t klen, size_t vlen, bool ovf)
{
        if (cells == PAGE_CELLS_FIXED)
                return LEAF_CELL_HDR;
        return varint_size(klen) + varint_size((uint64_t)vlen << 1 | ovf);
}

/* Whether a leaf cell holds the value itself; a larger one goes to overflow pages. */
static bool
value_inline(enum page_cells cells, uint32_t page_size, size_t klen, size_t vlen)
{
        return leaf_cell_hdr(cells, klen, vlen, false) + klen + vlen <= cell_max(page_size);
}

/*
 * Encodes a leaf cell in layout `cells` at c: with ovf == PGNO_NONE the
 * value inline, else the first page of the overflow chain holding it.
 * Returns the cell's length.
 */
static size_t
leaf_cell_encode(enum page_cells cells, uint8_t *c, const void *key, size_t klen, const void *val,
                 size_t vlen, pgno_t ovf)
{
        uint8_t *v;

        if (cells == PAGE_CELLS_FIXED) {
                put_be16(c, (uint16_t)klen);
                put_be32(c + 2, (uint32_t)vlen | (ovf != PGNO_NONE ? VAL_OVERFLOW : 0));
                memcpy(c + LEAF_CELL_HDR, key, klen);
                v = c + LEAF_CELL_HDR + klen;
        } else {
                v = put_varint(c, klen);
                memcpy(v, key, klen);
                v = put_varint(v + klen, (uint64_t)vlen << 1 | (ovf != PGNO_NONE));
        }
        if (ovf != PGNO_NONE) {
                put_be64(v, ovf);
                return (size_t)(v - c) + 8;
        }
        if (vlen > 0)
                memcpy(v, val, vlen);
        return (size_t)(v - c) + vlen;
}

/*
 * Builds the leaf cell for key/val in scratch, in the file's leaf layout,
 * moving a large value to overflow pages.
 */
static int
leaf_cell_build(struct pager *p, const void *key, size_t klen, const void *val, size_t vlen,
                size_t *clen)
{
        enum page_cells cells = pager_leaf_cells(p);
        pgno_t first = PGNO_NONE;
        int rc;

        if (!value_inline(cells, pager_page_size(p), klen, vlen)) {
                rc = ovf_write(p, val, vlen, &first);
                if (rc != SOMBRA_OK)
                        return rc;
        }
        *clen = leaf_cell_encode(cells, pager_scratch(p), key, klen, val, vlen, first);
        return SOMBRA_OK;
}

/* A key and value that a tree can take: SOMBRA_EINVAL, SOMBRA_ETOOBIG or SOMBRA_OK. */
static int
entry_ok(const void *key, size_t klen, const void *val, size_t vlen)
{
        int rc = key_ok(key, klen);

        if (rc == SOMBRA_OK && vlen > SOMBRA_MAX_RECORD)
                rc = SOMBRA_ETOOBIG;
        if (rc == SOMBRA_OK && val == NULL && vlen > 0)
                rc = SOMBRA_EINVAL;
        return rc;
}

int
btree_put_hinted(struct pager *p, pgno_t *root, struct btree_hint *h, const void *key, size_t klen,
                 const void *val, size_t vlen)
{
        struct child_result res; /* not zeroed: a 512-byte memset per put showed in profiles */
        struct put_args a = {key, klen, NULL, 0, h, PGNO_NONE, 0, 0};
        struct key_range whole = {NULL, NULL, 0, 0};
        bool done;
        int rc = entry_ok(key, klen, val, vlen);

        if (rc != SOMBRA_OK)
                return rc;
        rc = leaf_cell_build(p, key, klen, val, vlen, &a.clen);
        if (rc != SOMBRA_OK)
                return rc;
        a.cell = pager_scratch(p);
        if (*root == PGNO_NONE) {
                struct page *leaf;
                rc = pager_alloc(p, PAGE_LEAF, &leaf);
                if (rc != SOMBRA_OK)
                        return rc;
                page_append(leaf->data, a.cell, a.clen);
                *root = leaf->pgno;
                pager_unpin(p, leaf);
                return SOMBRA_OK;
        }
        rc = put_hinted(p, &a, &done);
        if (rc != SOMBRA_OK || done)
                return rc;
        /* The tree may change shape below: the hint is made again on the way down. */
        if (h != NULL) {
                a.run_leaf = h->leaf;
                a.run_slot = h->slot;
                a.run_len = h->run;
                btree_hint_clear(h);
        }
        res.split = false;
        rc = put_rec(p, *root, &a, 0, whole, &res);
        if (rc != SOMBRA_OK)
                return rc;
        if (res.split) {
                struct page *top;
                uint8_t c[BRANCH_CELL_HDR + BTREE_MAX_KEY];
                rc = pager_alloc(p, PAGE_BRANCH, &top);
                if (rc != SOMBRA_OK)
                        return rc;
                page_set_aux(top, res.pgno);
                put_be16(c, res.sep_len);
                put_be64(c + 2, res.right);
                memcpy(c + BRANCH_CELL_HDR, res.sep, res.sep_len);
                page_append(top->data, c, BRANCH_CELL_HDR + res.sep_len);
                res.pgno = top->pgno;
                pager_unpin(p, top);
        }
        *root = res.pgno;
        return SOMBRA_OK;
}

int
btree_put(struct pager *p, pgno_t *root, const void *key, size_t klen, const void *val, size_t vlen)
{
        return btree_put_hinted(p, root, NULL, key, klen, val, vlen);
}

/* ---- delete ---- */

static int
del_rec(struct pager *p, pgno_t pgno, const uint8_t *key, size_t klen, int depth, pgno_t *out)
{
        struct page *pg;
        uint32_t i;
        bool exact;
        int rc;

        if (depth >= BTREE_MAX_DEPTH)
                return SOMBRA_ECORRUPT;
        rc = pager_get(p, pgno, &pg);
        if (rc != SOMBRA_OK)
                return rc;
        *out = pgno;
        if (page_type(pg) == PAGE_LEAF) {
                i = search(pg->data, key, klen, false, &exact);
                if (!exact) {
                        pager_unpin(p, pg);
                        return SOMBRA_ENOTFOUND;
                }
                rc = cell_release(p, pg->data, cell(pg->data, i));
                if (rc != SOMBRA_OK) {
                        pager_unpin(p, pg);
                        return rc;
                }
                if (nkeys(pg->data) == 1) { /* the leaf empties: it goes away */
                        *out = PGNO_NONE;
                        return pager_retire(p, pg);
                }
                rc = pager_make_writable(p, &pg);
                if (rc == SOMBRA_OK)
                        page_remove(pg->data, i);
        } else if (page_type(pg) == PAGE_BRANCH) {
                pgno_t child, below;
                i = branch_index(pg->data, key, klen);
                child = branch_child(pg->data, i);
                rc = del_rec(p, child, key, klen, depth + 1, &below);
                if (rc != SOMBRA_OK || below == child) {
                        pager_unpin(p, pg);
                        return rc;
                }
                if (below == PGNO_NONE && nkeys(pg->data) == 0) {
                        /* Its only child went: the branch goes too. */
                        *out = PGNO_NONE;
                        return pager_retire(p, pg);
                }
                rc = pager_make_writable(p, &pg);
                if (rc == SOMBRA_OK && below != PGNO_NONE) {
                        branch_set_child(pg->data, i, below);
                } else if (rc == SOMBRA_OK) {
                        if (i == 0) /* cell 0's child becomes the leftmost */
                                branch_set_child(pg->data, 0, branch_child(pg->data, 1));
                        page_remove(pg->data, i == 0 ? 0 : i - 1);
                }
        } else {
                rc = SOMBRA_ECORRUPT;
        }
        *out = pg->pgno;
        pager_unpin(p, pg);
        return rc;
}

int
btree_del(struct pager *p, pgno_t *root, const void *key, size_t klen)
{
        pgno_t out;
        int rc = key_ok(key, klen);

        if (rc != SOMBRA_OK)
                return rc;
        if (*root == PGNO_NONE)
                return SOMBRA_ENOTFOUND;
        rc = del_rec(p, *root, key, klen, 0, &out);
        /* A root branch left with one child and no keys is replaced by that child. */
        while (rc == SOMBRA_OK && out != PGNO_NONE) {
                struct page *pg;
                rc = pager_get(p, out, &pg);
                if (rc != SOMBRA_OK)
                        break;
                if (page_type(pg) != PAGE_BRANCH || nkeys(pg->data) > 0) {
                        pager_unpin(p, pg);
                        break;
                }
                out = branch_child(pg->data, 0);
                rc = pager_retire(p, pg);
        }
        if (rc == SOMBRA_OK)
                *root = out;
        return rc;
}

static int
drop_rec(struct pager *p, pgno_t pgno, int depth)
{
        struct page *pg;
        int rc;

        if (depth >= BTREE_MAX_DEPTH)
                return SOMBRA_ECORRUPT;
        rc = pager_get(p, pgno, &pg);
        if (rc != SOMBRA_OK)
                return rc;
        for (uint32_t i = 0; rc == SOMBRA_OK && i <= nkeys(pg->data); i++) {
                if (page_type(pg) == PAGE_BRANCH)
                        rc = drop_rec(p, branch_child(pg->data, i), depth + 1);
                else if (i < nkeys(pg->data))
                        rc = cell_release(p, pg->data, cell(pg->data, i));
        }
        if (rc != SOMBRA_OK) {
                pager_unpin(p, pg);
                return rc;
        }
        return pager_retire(p, pg);
}

int
btree_drop(struct pager *p, pgno_t *root)
{
        int rc = SOMBRA_OK;

        if (*root != PGNO_NONE)
                rc = drop_rec(p, *root, 0);
        if (rc == SOMBRA_OK)
                *root = PGNO_NONE;
        return rc;
}

/* ---- cursors ---- */

void
btree_cursor_init(struct btree_cursor *c, struct pager *p, pgno_t root)
{
        memset(c, 0, sizeof(*c));
        c->pager = p;
        c->root = root;
}

static void
cursor_drop_leaf(struct btree_cursor *c)
{
        if (c->leaf != NULL)
                pager_unpin(c->pager, c->leaf);
        c->leaf = NULL;
        c->valid = false;
}

/* Descends from path[depth-1] (a branch, at its idx) to the leftmost leaf below. */
static int
cursor_descend(struct btree_cursor *c, pgno_t pgno)
{
        for (;;) {
                struct page *pg;
                int rc;
                if (c->depth >= BTREE_MAX_DEPTH)
                        return SOMBRA_ECORRUPT;
                rc = pager_get(c->pager, pgno, &pg);
                if (rc != SOMBRA_OK)
                        return rc;
                c->path[c->depth].pgno = pgno;
                c->path[c->depth].idx = 0;
                c->depth++;
                if (page_type(pg) == PAGE_LEAF) {
                        c->leaf = pg;
                        return SOMBRA_OK;
                }
                if (page_type(pg) != PAGE_BRANCH) {
                        pager_unpin(c->pager, pg);
                        return SOMBRA_ECORRUPT;
                }
                pgno = branch_child(pg->data, 0);
                pager_unpin(c->pager, pg);
        }
}

/* From an exhausted leaf, moves to the first key of the next leaf, or ends. */
static int
cursor_next_leaf(struct btree_cursor *c)
{
        cursor_drop_leaf(c);
        c->depth--;
        while (c->depth > 0) {
                struct page *pg;
                pgno_t child;
                uint32_t n;
                int rc = pager_get(c->pager, c->path[c->depth - 1].pgno, &pg);
                if (rc != SOMBRA_OK)
                        return rc;
                n = nkeys(pg->data);
                if (c->path[c->depth - 1].idx < n) {
                        c->path[c->depth - 1].idx++;
                        child = branch_child(pg->data, c->path[c->depth - 1].idx);
                        pager_unpin(c->pager, pg);
                        rc = cursor_descend(c, child);
                        if (rc != SOMBRA_OK)
                                return rc;
                        if (nkeys(c->leaf->data) > 0) {
                                c->valid = true;
                                return SOMBRA_OK;
                        }
                        cursor_drop_leaf(c);
                        c->depth--;
                        continue;
                }
                pager_unpin(c->pager, pg);
                c->depth--;
        }
        return SOMBRA_OK;
}

int
btree_cursor_seek(struct btree_cursor *c, const void *key, size_t klen)
{
        pgno_t pgno = c->root;

        cursor_drop_leaf(c);
        c->depth = 0;
        if (pgno == PGNO_NONE)
                return SOMBRA_OK;
        if (klen > BTREE_MAX_KEY || (key == NULL && klen > 0))
                return SOMBRA_EINVAL;
        for (;;) {
                struct page *pg;
                bool exact;
                uint32_t i;
                int rc;
                if (c->depth >= BTREE_MAX_DEPTH)
                        return SOMBRA_ECORRUPT;
                rc = pager_get(c->pager, pgno, &pg);
                if (rc != SOMBRA_OK)
                        return rc;
                if (page_type(pg) == PAGE_LEAF) {
                        i = klen ? search(pg->data, key, klen, false, &exact) : 0;
                        c->path[c->depth].pgno = pgno;
                        c->path[c->depth].idx = i;
                        c->depth++;
                        c->leaf = pg;
                        if (i < nkeys(pg->data)) {
                                c->valid = true;
                                return SOMBRA_OK;
                        }
                        return cursor_next_leaf(c);
                }
                if (page_type(pg) != PAGE_BRANCH) {
                        pager_unpin(c->pager, pg);
                        return SOMBRA_ECORRUPT;
                }
                i = klen ? branch_index(pg->data, key, klen) : 0;
                c->path[c->depth].pgno = pgno;
                c->path[c->depth].idx = i;
                c->depth++;
                pgno = branch_child(pg->data, i);
                pager_unpin(c->pager, pg);
        }
}

int
btree_cursor_next(struct btree_cursor *c)
{
        if (!c->valid)
                return SOMBRA_OK;
        if (++c->path[c->depth - 1].idx < nkeys(c->leaf->data))
                return SOMBRA_OK;
        return cursor_next_leaf(c);
}

bool
btree_cursor_valid(const struct btree_cursor *c)
{
        return c->valid;
}

void
btree_cursor_key(const struct btree_cursor *c, const uint8_t **key, size_t *klen)
{
        const uint8_t *cl = cell(c->leaf->data, c->path[c->depth - 1].idx);
        *key = cell_key(c->leaf->data, cl);
        *klen = cell_klen(c->leaf->data, cl);
}

int
btree_cursor_value(struct btree_cursor *c, struct buf *val)
{
        if (!c->valid)
                return SOMBRA_ENOTFOUND;
        return leaf_value(c->pager, c->leaf->data, cell(c->leaf->data, c->path[c->depth - 1].idx),
                          val);
}

void
btree_cursor_close(struct btree_cursor *c)
{
        cursor_drop_leaf(c);
        c->depth = 0;
}

/* ---- verify ---- */

struct check_ctx {
        struct pager *p;
        int (*fn)(void *arg, pgno_t pgno);
        void *arg;
        uint64_t entries;
        int leaf_depth; /* -1 until the first leaf */
};

struct bound {
        const uint8_t *key;
        size_t len;
};

static int
check_rec(struct check_ctx *x, pgno_t pgno, int depth, struct bound lo, struct bound hi)
{
        uint8_t lo_copy[BTREE_MAX_KEY], hi_copy[BTREE_MAX_KEY];
        struct page *pg;
        uint32_t n;
        int rc;

        if (depth >= BTREE_MAX_DEPTH)
                return SOMBRA_ECORRUPT;
        rc = pager_get(x->p, pgno, &pg);
        if (rc != SOMBRA_OK)
                return rc;
        rc = x->fn(x->arg, pgno);
        n = nkeys(pg->data);
        if (rc == SOMBRA_OK && page_type(pg) != PAGE_LEAF && page_type(pg) != PAGE_BRANCH)
                rc = SOMBRA_ECORRUPT;
        if (rc == SOMBRA_OK && page_type(pg) == PAGE_LEAF) {
                if (x->leaf_depth < 0)
                        x->leaf_depth = depth;
                if (x->leaf_depth != depth || n == 0)
                        rc = SOMBRA_ECORRUPT;
                x->entries += n;
        }
        for (uint32_t i = 0; rc == SOMBRA_OK && i < n; i++) {
                const uint8_t *c = cell(pg->data, i);
                const uint8_t *k = cell_key(pg->data, c);
                size_t kl = cell_klen(pg->data, c);
                if (i > 0) {
                        const uint8_t *pc = cell(pg->data, i - 1);
                        if (key_cmp(cell_key(pg->data, pc), cell_klen(pg->data, pc), k, kl) >= 0)
                                rc = SOMBRA_ECORRUPT;
                }
                if (lo.key != NULL && key_cmp(k, kl, lo.key, lo.len) < 0)
                        rc = SOMBRA_ECORRUPT;
                if (hi.key != NULL && key_cmp(k, kl, hi.key, hi.len) >= 0)
                        rc = SOMBRA_ECORRUPT;
                if (rc == SOMBRA_OK && page_type(pg) == PAGE_LEAF) {
                        struct leaf_cell lc = leaf_cell(pg->data, c);
                        if (lc.ovf)
                                rc = ovf_walk(x->p, get_be64(lc.val), lc.vlen, NULL, false, x->fn,
                                              x->arg);
                }
        }
        for (uint32_t i = 0; rc == SOMBRA_OK && page_type(pg) == PAGE_BRANCH && i <= n; i++) {
                struct bound clo = lo, chi = hi;
                if (i > 0) {
                        const uint8_t *c = cell(pg->data, i - 1);
                        memcpy(lo_copy, cell_key(pg->data, c), cell_klen(pg->data, c));
                        clo.key = lo_copy;
                        clo.len = cell_klen(pg->data, c);
                }
                if (i < n) {
                        const uint8_t *c = cell(pg->data, i);
                        memcpy(hi_copy, cell_key(pg->data, c), cell_klen(pg->data, c));
                        chi.key = hi_copy;
                        chi.len = cell_klen(pg->data, c);
                }
                rc = check_rec(x, branch_child(pg->data, i), depth + 1, clo, chi);
        }
        pager_unpin(x->p, pg);
        return rc;
}

int
btree_check(struct pager *p, pgno_t root, int (*fn)(void *arg, pgno_t pgno), void *arg,
            uint64_t *entries)
{
        struct check_ctx x = {p, fn, arg, 0, -1};
        struct bound none = {NULL, 0};
        int rc = SOMBRA_OK;

        if (root != PGNO_NONE)
                rc = check_rec(&x, root, 0, none, none);
        *entries = x.entries;
        return rc;
}

/* ---- walk ---- */

struct walk_ctx {
        struct pager *p;
        int (*visit)(void *arg, const struct page *pg, bool *descend);
        void *arg;
};

/*
 * Page numbers to visit next, a level of the trees or the overflow chains'
 * first pages, as pgno_t values in a struct buf.
 */
static int
walk_list_push(struct buf *l, pgno_t pgno)
{
        return buf_append(l, &pgno, sizeof(pgno));
}

static size_t
walk_list_len(const struct buf *l)
{
        return l->len / sizeof(pgno_t);
}

static pgno_t *
walk_list_at(const struct buf *l)
{
        return (pgno_t *)(void *)l->data;
}

static int
pgno_order(const void *a, const void *b)
{
        pgno_t x = *(const pgno_t *)a, y = *(const pgno_t *)b;

        return (x > y) - (x < y);
}

/* An overflow chain from its first page, as far as the visits let it go. */
static int
walk_chain(struct walk_ctx *x, pgno_t pgno)
{
        /* No value that long was ever stored: a longer chain is damaged, or loops. */
        uint64_t hops = 0, limit = SOMBRA_MAX_RECORD / ovf_room(pager_page_size(x->p)) + 1;
        bool descend = true;
        int rc = SOMBRA_OK;

        while (rc == SOMBRA_OK && descend && pgno != PGNO_NONE) {
                struct page *pg;
                if (hops++ > limit)
                        return SOMBRA_ECORRUPT;
                rc = pager_get(x->p, pgno, &pg);
                if (rc != SOMBRA_OK)
                        break;
                rc = page_type(pg) == PAGE_OVERFLOW ? x->visit(x->arg, pg, &descend)
                                                    : SOMBRA_ECORRUPT;
                pgno = page_aux(pg);
                pager_unpin(x->p, pg);
        }
        return rc;
}

/*
 * Visits one page of a level; what it points to goes on `next` (a branch's
 * children) or `chains` (the first pages of a leaf's overflow values).
 */
static int
walk_page(struct walk_ctx *x, pgno_t pgno, struct buf *next, struct buf *chains)
{
        struct page *pg;
        bool descend = true;
        uint32_t n;
        int rc = pager_get(x->p, pgno, &pg);

        if (rc != SOMBRA_OK)
                return rc;
        n = nkeys(pg->data);
        rc = page_type(pg) == PAGE_LEAF || page_type(pg) == PAGE_BRANCH
                 ? x->visit(x->arg, pg, &descend)
                 : SOMBRA_ECORRUPT;
        for (uint32_t i = 0; rc == SOMBRA_OK && descend && page_type(pg) == PAGE_LEAF && i < n;
             i++) {
                struct leaf_cell lc = leaf_cell(pg->data, cell(pg->data, i));
                if (lc.ovf)
                        rc = walk_list_push(chains, get_be64(lc.val));
        }
        for (uint32_t i = 0; rc == SOMBRA_OK && descend && page_type(pg) == PAGE_BRANCH && i <= n;
             i++)
                rc = walk_list_push(next, branch_child(pg->data, i));
        pager_unpin(x->p, pg);
        return rc;
}

int
btree_walk(struct pager *p, const pgno_t *roots, size_t nroots,
           int (*visit)(void *arg, const struct page *pg, bool *descend), void *arg)
{
        struct walk_ctx x = {p, visit, arg};
        struct buf level = BUF_INIT, next = BUF_INIT, chains = BUF_INIT;
        uint64_t limit = pager_npages(p);
        int rc = SOMBRA_OK;

        for (size_t t = 0; t < nroots && rc == SOMBRA_OK; t++)
                if (roots[t] != PGNO_NONE)
                        rc = walk_list_push(&level, roots[t]);
        for (int depth = 0; rc == SOMBRA_OK && walk_list_len(&level) > 0; depth++) {
                struct buf done;
                if (depth >= BTREE_MAX_DEPTH) {
                        rc = SOMBRA_ECORRUPT;
                        break;
                }
                qsort(walk_list_at(&level), walk_list_len(&level), sizeof(pgno_t), pgno_order);
                buf_reset(&next);
                /*
                 * A level of a tree, or the chains, cannot hold more pages than the
                 * file: past that, pages point to each other, and the lists would
                 * grow by a fan-out at every level before a visit meets a page twice.
                 */
                for (size_t i = 0; i < walk_list_len(&level) && rc == SOMBRA_OK; i++) {
                        rc = walk_page(&x, walk_list_at(&level)[i], &next, &chains);
                        if (rc == SOMBRA_OK &&
                            (walk_list_len(&next) > limit || walk_list_len(&chains) > limit))
                                rc = SOMBRA_ECORRUPT;
                }
                done = level;
                level = next;
                next = done;
        }
        if (walk_list_len(&chains) > 0) /* qsort must not be handed a NULL array */
                qsort(walk_list_at(&chains), walk_list_len(&chains), sizeof(pgno_t), pgno_order);
        for (size_t i = 0; i < walk_list_len(&chains) && rc == SOMBRA_OK; i++)
                rc = walk_chain(&x, walk_list_at(&chains)[i]);
        buf_free(&level);
        buf_free(&next);
        buf_free(&chains);
        return rc;
}

/*
 * The bytes of the varint leaf cell at `off`, or 0 when it does not lie
 * within the page with its varints whole and shortest: what leaf_cell would
 * take it to be, worked out once.
 */
static uint32_t
varint_cell_bytes(const uint8_t *d, uint32_t off, uint32_t ps)
{
        uint64_t klen, vinfo, body;
        size_t n, at;

        /* Both lengths in a byte each: most cells, and no loop to decode them. */
        if (d[off] - 1u < 0x7fu) {
                klen = d[off];
                at = off + 1 + klen;
                if (at < ps && d[at] < 0x80) {
                        body = (d[at] & 1) ? 8 : d[at] >> 1u;
                        return klen <= BTREE_MAX_KEY && body <= ps - at - 1
                                   ? (uint32_t)(at + 1 + body - off)
                                   : 0;
                }
        }
        n = varint_get(d + off, ps - off, 2, &klen);
        if (n == 0 || klen == 0 || klen > BTREE_MAX_KEY || klen > ps - off - n)
                return 0;
        at = off + n + klen;
        n = varint_get(d + at, ps - at, 4, &vinfo);
        if (n == 0)
                return 0;
        body = (vinfo & 1) ? 8 : vinfo >> 1;
        if (body > ps - at - n)
                return 0;
        return (uint32_t)(at + n + body - off);
}

/* The same for a branch cell or a leaf cell of the fixed layout. */
static uint32_t
fixed_cell_bytes(const uint8_t *d, uint32_t off, uint32_t ps)
{
        const uint8_t *c = d + off;
        size_t size;

        if (off + (is_leaf(d) ? LEAF_CELL_HDR : BRANCH_CELL_HDR) > ps)
                return 0;
        size = cell_size(d, c);
        if (cell_klen(d, c) == 0 || cell_klen(d, c) > BTREE_MAX_KEY || size > ps - off)
                return 0;
        return (uint32_t)size;
}

int
btree_page_check(const uint8_t *d, uint32_t ps)
{
        uint32_t n = nkeys(d), up = upper(d);
        size_t cells_bytes = 0;
        bool varint;

        if (d[0] == PAGE_OVERFLOW)
                return nkeys(d) <= ovf_room(ps) ? SOMBRA_OK : SOMBRA_ECORRUPT;
        if (d[0] != PAGE_LEAF && d[0] != PAGE_BRANCH)
                return SOMBRA_OK;
        if (PAGE_HDR + 2 * n > up || up > ps)
                return SOMBRA_ECORRUPT;
        if (d[1] != PAGE_CELLS_FIXED && (d[1] != PAGE_CELLS_VARINT || !is_leaf(d)))
                return SOMBRA_ECORRUPT;
        varint = varint_cells(d);
        for (uint32_t i = 0; i < n; i++) {
                uint32_t off = slot(d, i), bytes;
                if (off < up || off >= ps)
                        return SOMBRA_ECORRUPT;
                bytes = varint ? varint_cell_bytes(d, off, ps) : fixed_cell_bytes(d, off, ps);
                /* Overlapping cells could count more cells than the page holds (scratch_cells). */
                cells_bytes += bytes;
                if (bytes == 0 || cells_bytes > ps - up)
                        return SOMBRA_ECORRUPT;
        }
        return SOMBRA_OK;
}

bool
btree_page_gap(const uint8_t *d, uint32_t ps, uint32_t *lo, uint32_t *hi)
{
        uint32_t slots_end = PAGE_HDR + 2u * nkeys(d), up = upper(d);

        if ((d[0] != PAGE_LEAF && d[0] != PAGE_BRANCH) || slots_end > up || up > ps)
                return false;
        *lo = slots_end;
        *hi = up;
        return true;
}

/* ---- bottom-up building ---- */

/*
 * One level of a tree being built: the page being filled and, on a branch
 * level, the page finished before it, held back until the page being filled
 * gets a cell. A branch level may end on a page that got its leftmost child
 * and nothing more; btree_build_end then moves the held page's last cell
 * over (build_borrow), so that no branch is left with a single child.
 */
struct build_level {
        uint8_t *page;
        uint8_t *held;    /* branch levels only */
        pgno_t held_pgno; /* PGNO_NONE while nothing is held */
        bool open;        /* page has its first cell (leaf) or its leftmost child (branch) */
        uint64_t finished;
        uint16_t low_len;
        uint8_t low[BTREE_MAX_KEY]; /* the lowest key under page: its separator above */
};

struct btree_builder {
        struct btree_build_out *out;
        uint8_t *cell; /* the leaf cell being added */
        uint8_t *ovf;  /* the overflow page being written */
        int nlevels;   /* levels with pages; level 0 holds the leaves */
        bool any;      /* an entry was added: `last` holds its key */
        uint16_t last_len;
        uint8_t last[BTREE_MAX_KEY];
        struct build_level level[BTREE_MAX_DEPTH];
};

static void
build_page_init(const struct btree_build_out *out, uint8_t *d, uint8_t type)
{
        memset(d, 0, out->page_size);
        d[0] = type;
        d[1] = type == PAGE_LEAF ? (uint8_t)out->cells : PAGE_CELLS_FIXED;
        set_upper(d, out->page_size);
        put_be64(d + 24, out->txn);
}

static int
build_write(const struct btree_build_out *out, uint8_t *d, pgno_t pgno)
{
        put_be64(d + 16, pgno);
        page_seal(d, out->page_size);
        return io_write(out->file, d, out->page_size, pgno * out->page_size);
}

/* Writes val as an overflow chain on consecutive pages; *first gets its first page. */
static int
build_overflow(struct btree_builder *b, const uint8_t *val, size_t vlen, pgno_t *first)
{
        struct btree_build_out *out = b->out;
        size_t room = ovf_room(out->page_size);
        int rc = SOMBRA_OK;

        *first = out->next;
        while (rc == SOMBRA_OK && vlen > 0) {
                size_t n = vlen < room ? vlen : room;
                pgno_t pgno = out->next++;
                build_page_init(out, b->ovf, PAGE_OVERFLOW);
                memcpy(b->ovf + PAGE_HDR, val, n);
                set_nkeys(b->ovf, (uint16_t)n);
                put_be64(b->ovf + 32, vlen > n ? pgno + 1 : PGNO_NONE);
                rc = build_write(out, b->ovf, pgno);
                val += n;
                vlen -= n;
        }
        return rc;
}

static int build_push(struct btree_builder *b, int l, pgno_t child, const uint8_t *low,
                      size_t low_len);

/*
 * Level l's page is full: it gets its number and goes to the level above. A
 * leaf is written at once; a branch is held until its successor has a cell.
 */
static int
build_finish(struct btree_builder *b, int l)
{
        struct build_level *lv = &b->level[l];
        pgno_t pgno = b->out->next++;
        int rc = SOMBRA_OK;

        if (l == 0) {
                rc = build_write(b->out, lv->page, pgno);
        } else {
                uint8_t *t = lv->held;
                assert(lv->held_pgno == PGNO_NONE); /* written when this page got its first cell */
                lv->held = lv->page;
                lv->page = t;
                lv->held_pgno = pgno;
        }
        lv->open = false;
        lv->finished++;
        if (rc == SOMBRA_OK)
                rc = build_push(b, l + 1, pgno, lv->low, lv->low_len);
        return rc;
}

/* Adds child, whose subtree's lowest key is low, to the branch level l. */
static int
build_push(struct btree_builder *b, int l, pgno_t child, const uint8_t *low, size_t low_len)
{
        uint8_t c[BRANCH_CELL_HDR + BTREE_MAX_KEY];
        struct build_level *lv;
        int rc = SOMBRA_OK;

        if (l >= BTREE_MAX_DEPTH)
                return SOMBRA_ETOOBIG; /* unreachable: a level holds at least 3 children */
        lv = &b->level[l];
        if (l == b->nlevels) {
                lv->page = malloc(b->out->page_size);
                lv->held = malloc(b->out->page_size);
                if (lv->page == NULL || lv->held == NULL)
                        return SOMBRA_ENOMEM;
                b->nlevels++;
        }
        if (!lv->open) {
                build_page_init(b->out, lv->page, PAGE_BRANCH);
                put_be64(lv->page + 32, child);
                memcpy(lv->low, low, low_len);
                lv->low_len = (uint16_t)low_len;
                lv->open = true;
                return SOMBRA_OK;
        }
        if (page_free_contiguous(lv->page) < BRANCH_CELL_HDR + low_len + 2) {
                rc = build_finish(b, l);
                return rc == SOMBRA_OK ? build_push(b, l, child, low, low_len) : rc;
        }
        put_be16(c, (uint16_t)low_len);
        put_be64(c + 2, child);
        memcpy(c + BRANCH_CELL_HDR, low, low_len);
        page_append(lv->page, c, BRANCH_CELL_HDR + low_len);
        if (lv->held_pgno != PGNO_NONE) {
                rc = build_write(b->out, lv->held, lv->held_pgno);
                lv->held_pgno = PGNO_NONE;
        }
        return rc;
}

int
btree_build_begin(struct btree_build_out *out, struct btree_builder **bp)
{
        struct btree_builder *b = calloc(1, sizeof(*b));

        if (b == NULL)
                return SOMBRA_ENOMEM;
        b->out = out;
        b->cell = malloc(out->page_size);
        b->ovf = malloc(out->page_size);
        b->level[0].page = malloc(out->page_size);
        b->nlevels = 1;
        for (int l = 0; l < BTREE_MAX_DEPTH; l++)
                b->level[l].held_pgno = PGNO_NONE;
        if (b->cell == NULL || b->ovf == NULL || b->level[0].page == NULL) {
                btree_build_abort(b);
                return SOMBRA_ENOMEM;
        }
        *bp = b;
        return SOMBRA_OK;
}

int
btree_build_add(struct btree_builder *b, const void *key, size_t klen, const void *val, size_t vlen)
{
        struct build_level *leaf = &b->level[0];
        pgno_t first = PGNO_NONE;
        size_t len;
        int rc = entry_ok(key, klen, val, vlen);

        if (rc == SOMBRA_OK && b->any && key_cmp(key, klen, b->last, b->last_len) <= 0)
                rc = SOMBRA_EINVAL;
        if (rc == SOMBRA_OK && !value_inline(b->out->cells, b->out->page_size, klen, vlen))
                rc = build_overflow(b, val, vlen, &first);
        if (rc != SOMBRA_OK)
                return rc;
        len = leaf_cell_encode(b->out->cells, b->cell, key, klen, val, vlen, first);
        if (leaf->open && page_free_contiguous(leaf->page) < len + 2)
                rc = build_finish(b, 0);
        if (rc != SOMBRA_OK)
                return rc;
        if (!leaf->open) {
                build_page_init(b->out, leaf->page, PAGE_LEAF);
                memcpy(leaf->low, key, klen);
                leaf->low_len = (uint16_t)klen;
                leaf->open = true;
        }
        page_append(leaf->page, b->cell, len);
        memcpy(b->last, key, klen);
        b->last_len = (uint16_t)klen;
        b->any = true;
        return SOMBRA_OK;
}

/* The last page of a branch level has one child: the held page's last cell joins it. */
static void
build_borrow(struct build_level *lv)
{
        uint8_t *h = lv->held, *d = lv->page;
        uint32_t n = nkeys(h), up = upper(h);
        const uint8_t *c = cell(h, n - 1);
        uint8_t moved[BRANCH_CELL_HDR + BTREE_MAX_KEY];
        size_t len = cell_size(h, c);

        assert(lv->held_pgno != PGNO_NONE && n >= 2 && slot(h, n - 1) == up);
        /* The page's only child becomes its first cell, under the page's old lowest key. */
        put_be16(moved, lv->low_len);
        put_be64(moved + 2, get_be64(d + 32));
        memcpy(moved + BRANCH_CELL_HDR, lv->low, lv->low_len);
        page_append(d, moved, BRANCH_CELL_HDR + lv->low_len);
        put_be64(d + 32, get_be64(c + 2));
        lv->low_len = cell_klen(h, c);
        memcpy(lv->low, cell_key(h, c), lv->low_len);
        /* It was the held page's last cell appended, so its bytes are the lowest. */
        set_nkeys(h, (uint16_t)(n - 1));
        set_upper(h, up + (uint32_t)len);
        memset(h + up, 0, len);
}

int
btree_build_end(struct btree_builder *b, pgno_t *root)
{
        int rc = SOMBRA_OK;

        *root = PGNO_NONE;
        for (int l = 0; rc == SOMBRA_OK && l < b->nlevels && b->level[l].open; l++) {
                struct build_level *lv = &b->level[l];
                pgno_t pgno = b->out->next++;
                if (lv->finished == 0) { /* the level's only page: the root */
                        rc = build_write(b->out, lv->page, pgno);
                        if (rc == SOMBRA_OK)
                                *root = pgno;
                        break;
                }
                if (l > 0 && nkeys(lv->page) == 0)
                        build_borrow(lv);
                if (lv->held_pgno != PGNO_NONE)
                        rc = build_write(b->out, lv->held, lv->held_pgno);
                lv->held_pgno = PGNO_NONE;
                if (rc == SOMBRA_OK)
                        rc = build_write(b->out, lv->page, pgno);
                if (rc == SOMBRA_OK)
                        rc = build_push(b, l + 1, pgno, lv->low, lv->low_len);
        }
        btree_build_abort(b);
        return rc;
}

void
btree_build_abort(struct btree_builder *b)
{
        if (b == NULL)
                return;
        for (int l = 0; l < BTREE_MAX_DEPTH; l++) {
                free(b->level[l].page);
                free(b->level[l].held);
        }
        free(b->cell);
        free(b->ovf);
        free(b);
}
