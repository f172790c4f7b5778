/*
 * test_btree.c - the copy-on-write B+tree over a real pager and file.
 *
 * The central test runs random inserts, replaces and deletes (with aborted
 * transactions, snapshot readers, checkpoints and a reopen) against a model
 * kept in plain arrays, and after each phase checks every key, a full cursor
 * scan, btree_check and the page accounting: every page of the file is either
 * in the tree or known to the pager as unreachable, and none is both or twice.
 * The other tests pin down cursors, overflow values, copy-on-write, abort,
 * deletion down to nothing, and argument checks.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "btree.h"
#include "buf.h"
#include "idset.h"
#include "io.h"
#include "pager.h"
#include "sombra.h"
#include "support.h"

static struct io_file file = {.fd = -1};
static struct pager *pager;
static uint64_t committed; /* the last committed txn */
static pgno_t free_head;   /* the free list written by the last checkpoint */
static uint64_t free_count;
static struct buf val = BUF_INIT;
/* The leaves' layout of the file under test: what new files have, unless a test says otherwise. */
static enum page_cells cells = PAGE_CELLS_VARINT;

/*
 * The reference model: distinct keys in key order (so index order is scan
 * order), and per key whether it is present and its value as (length, seed).
 */
struct model {
        size_t n;
        uint8_t *bytes;
        size_t *off;
        uint16_t *len;
        bool *present;
        uint32_t *vlen;
        uint64_t *vseed;
        size_t count; /* present keys */
};

/*
 * Which keys are present with which values: the model's own arrays
 * (model_now) or a copy kept for a reader of an older root (snapshot_take).
 */
struct snapshot {
        bool *present;
        uint32_t *vlen;
        uint64_t *vseed;
};

static struct model model;
static void model_free(struct model *m);
struct workload;
static struct workload *work; /* the random workload of the running test */
static void workload_free(struct workload *w);

static void
setup(void)
{
        support_dir_make("btree");
}

static void
teardown(void)
{
        pager_destroy(pager);
        pager = NULL;
        io_close(&file);
        buf_free(&val);
        model_free(&model);
        workload_free(work);
        work = NULL;
        support_dir_remove();
}

TestSuite(btree, .init = setup, .fini = teardown);

/* ---- the pager around the tree ---- */

/* A pager over `file` of npages pages checkpointed at txn, with leaves of layout `cells`. */
static void
pager_open(uint32_t page_size, uint32_t cache_pages, uint64_t npages, uint64_t txn)
{
        cr_assert(eq(int, pager_create(&file, page_size, cache_pages, true, npages, txn, &pager),
                     SOMBRA_OK));
        pager_set_leaf_cells(pager, cells);
}

static void
db_open(uint32_t page_size, uint32_t cache_pages)
{
        cr_assert(eq(int, io_open(&file, support_path("db"), true), SOMBRA_OK));
        pager_open(page_size, cache_pages, 2, 0);
}

static void
txn_begin(void)
{
        pager_txn_begin(pager, committed + 1);
}

/* Commits; `oldest_reader` is the oldest state still read (UINT64_MAX: none). */
static void
txn_commit_for(uint64_t oldest_reader)
{
        cr_assert(eq(int, pager_txn_commit(pager), SOMBRA_OK));
        committed++;
        pager_reclaim(pager, oldest_reader);
}

static void
txn_commit(void)
{
        txn_commit_for(UINT64_MAX);
}

/* The checkpoint sequence of store_checkpoint, minus the meta page. */
static void
checkpoint(void)
{
        pager_checkpoint_begin(pager, committed);
        cr_assert(eq(int,
                     pager_freelist_build(pager, committed, free_head, &free_head, &free_count),
                     SOMBRA_OK));
        cr_assert(eq(int, pager_flush(pager), SOMBRA_OK));
        cr_assert(eq(int, io_sync(&file), SOMBRA_OK));
        pager_checkpoint_done(pager);
}

/* Drops the pager and opens a new one over the checkpointed file, as open does. */
static void
reopen(uint32_t cache_pages)
{
        uint32_t ps = pager_page_size(pager);
        uint64_t npages = pager_npages(pager);

        pager_destroy(pager);
        pager = NULL;
        pager_open(ps, cache_pages, npages, committed);
        cr_assert(eq(int, pager_freelist_load(pager, free_head, free_count, false), SOMBRA_OK));
}

/* ---- page accounting ---- */

struct census {
        struct idset seen;
        uint64_t npages;
        pgno_t bad; /* a page out of range or seen twice */
};

static int
census_add(void *arg, pgno_t pgno)
{
        struct census *c = arg;
        bool added = false;

        if (pgno < 2 || pgno >= c->npages || idset_put(&c->seen, pgno, 0, &added) != SOMBRA_OK ||
            !added) {
                c->bad = pgno;
                return SOMBRA_ECORRUPT;
        }
        return SOMBRA_OK;
}

/*
 * Checks the tree, then that its pages and the pages the pager knows to be
 * unreachable are together every page of the file, each once. Returns the
 * tree's entry count; *tree_pages (if not NULL) gets its page count.
 */
static uint64_t
expect_pages_accounted(pgno_t root, uint64_t *tree_pages)
{
        struct census c = {IDSET_INIT, pager_npages(pager), PGNO_NONE};
        uint64_t entries = 0, in_tree;
        int rc;

        rc = btree_check(pager, root, census_add, &c, &entries);
        cr_assert(eq(int, rc, SOMBRA_OK), "btree_check (page %llu)", (unsigned long long)c.bad);
        in_tree = c.seen.count;
        rc = pager_visit_unreachable(pager, free_head, census_add, &c);
        cr_assert(eq(int, rc, SOMBRA_OK), "page %llu is in the tree or listed twice",
                  (unsigned long long)c.bad);
        cr_assert(eq(u64, c.seen.count, pager_npages(pager) - 2), "%llu tree pages",
                  (unsigned long long)in_tree);
        idset_free(&c.seen);
        if (tree_pages != NULL)
                *tree_pages = in_tree;
        return entries;
}

static uint64_t
tree_page_count(pgno_t root)
{
        uint64_t pages;

        expect_pages_accounted(root, &pages);
        return pages;
}

/* ---- values ---- */

static void
value_fill(uint8_t *out, size_t len, uint64_t seed)
{
        uint64_t s = seed;

        for (size_t i = 0; i < len; i += 8) {
                uint64_t x = support_next_rand(&s);
                memcpy(out + i, &x, len - i < 8 ? len - i : 8);
        }
}

static uint8_t *
value_make(size_t len, uint64_t seed)
{
        uint8_t *v = malloc(len ? len : 1);

        cr_assert(not(eq(ptr, v, NULL)));
        value_fill(v, len, seed);
        return v;
}

/*
 * The bytes of a leaf cell's lengths in the layout under test, as btree.c
 * describes them: 6 fixed, or the key length's and the value's varints
 * (length << 1, | 1 for an overflow chain).
 */
static size_t
cell_hdr(size_t klen, size_t vlen, bool ovf)
{
        if (cells == PAGE_CELLS_FIXED)
                return 6;
        return varint_size(klen) + varint_size((uint64_t)vlen << 1 | ovf);
}

/* The bytes a leaf takes for an entry: slot, lengths, key, and the value or its chain's page. */
static size_t
leaf_entry_size(size_t klen, size_t vlen, bool inl)
{
        return 2 + cell_hdr(klen, vlen, !inl) + klen + (inl ? vlen : 8);
}

/*
 * The longest value a leaf keeps inline for a key of klen bytes: a leaf cell
 * (lengths, key, value) is at most a quarter of the page body less its
 * 2-byte slot, the size rule at the top of btree.c.
 */
static size_t
inline_max(uint32_t page_size, size_t klen)
{
        size_t max = (page_size - PAGE_HDR) / 4 - 2, v = max - klen;

        while (cell_hdr(klen, v, false) + klen + v > max)
                v--;
        return v;
}

/* Overflow pages holding a value of vlen bytes. */
static uint64_t
overflow_pages(uint32_t page_size, size_t vlen)
{
        size_t room = page_size - PAGE_HDR;
        return (vlen + room - 1) / room;
}

/* ---- small helpers over string and integer keys ---- */

static void
put_str(pgno_t *root, const char *key, const void *v, size_t vlen)
{
        cr_assert(eq(int, btree_put(pager, root, key, strlen(key), v, vlen), SOMBRA_OK), "put %s",
                  key);
}

static void
put_u32(pgno_t *root, uint32_t k, uint64_t vseed, size_t vlen)
{
        uint8_t key[4], v[64];

        cr_assert(le(sz, vlen, sizeof(v)));
        put_be32(key, k);
        value_fill(v, vlen, vseed);
        cr_assert(eq(int, btree_put(pager, root, key, 4, v, vlen), SOMBRA_OK), "put %u", k);
}

static uint32_t
cursor_u32(const struct btree_cursor *c)
{
        const uint8_t *k;
        size_t klen;

        btree_cursor_key(c, &k, &klen);
        cr_assert(eq(sz, klen, 4));
        return get_be32(k);
}

static void
expect_value(const struct buf *b, size_t vlen, uint64_t vseed, const char *what)
{
        uint8_t *want;

        cr_assert(eq(sz, b->len, vlen), "%s", what);
        want = value_make(vlen, vseed);
        cr_assert(vlen == 0 || memcmp(b->data, want, vlen) == 0, "%s: value bytes differ", what);
        free(want);
}

/* ---- the reference model ---- */

/* Room for n keys of key_bytes bytes in all, none of them present yet. */
static void
model_alloc(struct model *m, size_t n, size_t key_bytes)
{
        m->n = n;
        m->bytes = malloc(key_bytes);
        m->off = malloc(n * sizeof(*m->off));
        m->len = malloc(n * sizeof(*m->len));
        m->present = calloc(n, sizeof(*m->present));
        m->vlen = calloc(n, sizeof(*m->vlen));
        m->vseed = calloc(n, sizeof(*m->vseed));
        m->count = 0;
        cr_assert(m->bytes != NULL && m->off != NULL && m->len != NULL && m->present != NULL &&
                  m->vlen != NULL && m->vseed != NULL);
}

static const uint8_t *
model_key(const struct model *m, size_t i)
{
        return m->bytes + m->off[i];
}

static int
key_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
        int c = memcmp(a, b, alen < blen ? alen : blen);
        return c != 0 ? c : (alen > blen) - (alen < blen);
}

static const uint8_t *sort_bytes;
static const size_t *sort_off;
static const uint16_t *sort_len;

static int
cand_cmp(const void *a, const void *b)
{
        size_t x = *(const size_t *)a, y = *(const size_t *)b;
        return key_cmp(sort_bytes + sort_off[x], sort_len[x], sort_bytes + sort_off[y],
                       sort_len[y]);
}

/*
 * Makes at least `want` distinct keys of 1..BTREE_MAX_KEY bytes: mostly short,
 * some long, some over a two-letter alphabet (long shared prefixes), some
 * holding 0x00 and 0xff, and some prefixes or extensions of another key.
 */
static void
model_make(struct model *m, size_t want, uint64_t *rng)
{
        size_t cap = want + want / 8, used = 0, bytes_cap = cap * 64;
        uint8_t *bytes = malloc(bytes_cap);
        size_t *off = malloc(cap * sizeof(*off)), *order = malloc(cap * sizeof(*order));
        uint16_t *len = malloc(cap * sizeof(*len));
        size_t n = 0, total = 0;

        cr_assert(bytes != NULL && off != NULL && order != NULL && len != NULL);
        for (size_t i = 0; i < cap; i++) {
                uint64_t r = support_next_rand(rng);
                unsigned kind = (unsigned)(r % 100), l;
                bool derived = i > 0 && kind < 10;

                if (derived) /* a prefix or an extension of the previous key */
                        l = 1 + (unsigned)((r >> 8) % (len[i - 1] + 8u < BTREE_MAX_KEY
                                                           ? len[i - 1] + 8u
                                                           : BTREE_MAX_KEY));
                else if (kind < 14)
                        l = 1 + (unsigned)((r >> 8) % 3);
                else if (kind < 80)
                        l = 4 + (unsigned)((r >> 8) % 37);
                else if (kind < 95)
                        l = 41 + (unsigned)((r >> 8) % 160);
                else
                        l = 201 + (unsigned)((r >> 8) % (BTREE_MAX_KEY - 200));
                if (used + l > bytes_cap) {
                        bytes_cap *= 2;
                        bytes = realloc(bytes, bytes_cap);
                        cr_assert(not(eq(ptr, bytes, NULL)));
                }
                off[i] = used;
                len[i] = (uint16_t)l;
                for (unsigned k = 0; k < l; k++) {
                        uint64_t b = support_next_rand(rng);
                        if (derived && k < len[i - 1])
                                bytes[used + k] = bytes[off[i - 1] + k];
                        else if (r & (1u << 20))
                                bytes[used + k] = (uint8_t)('a' + (b & 1));
                        else
                                bytes[used + k] = (uint8_t)b;
                }
                used += l;
                order[i] = i;
        }
        sort_bytes = bytes;
        sort_off = off;
        sort_len = len;
        qsort(order, cap, sizeof(*order), cand_cmp);
        for (size_t i = 0; i < cap; i++)
                if (i == 0 || cand_cmp(&order[i - 1], &order[i]) != 0) {
                        order[n++] = order[i];
                        total += len[order[i]];
                }
        cr_assert(ge(sz, n, want), "only %zu distinct keys", n);

        model_alloc(m, n, total);
        used = 0;
        for (size_t i = 0; i < n; i++) {
                m->off[i] = used;
                m->len[i] = len[order[i]];
                memcpy(m->bytes + used, bytes + off[order[i]], m->len[i]);
                used += m->len[i];
        }
        free(bytes);
        free(off);
        free(order);
        free(len);
}

static void
model_free(struct model *m)
{
        free(m->bytes);
        free(m->off);
        free(m->len);
        free(m->present);
        free(m->vlen);
        free(m->vseed);
        memset(m, 0, sizeof(*m));
}

/*
 * A value length: often empty or short, sometimes medium, sometimes right at
 * the inline limit for this key, and sometimes a few overflow pages.
 */
static uint32_t
pick_vlen(uint64_t *rng, uint32_t page_size, size_t klen)
{
        uint64_t r = support_next_rand(rng);
        unsigned kind = (unsigned)(r % 1000);

        r >>= 10;
        if (kind < 80)
                return 0;
        if (kind < 850)
                return 1 + (uint32_t)(r % 48);
        if (kind < 970)
                return 49 + (uint32_t)(r % 552);
        if (kind < 990)
                return (uint32_t)(inline_max(page_size, klen) - 2 + r % 5);
        return (uint32_t)(inline_max(page_size, klen) + 1 + r % (3 * page_size));
}

/*
 * Every key of the snapshot: btree_get finds exactly the present ones with
 * their values, a full cursor scan yields exactly them in key order, and
 * btree_check passes and counts them. Returns how many are present.
 */
static uint64_t
expect_contents(const struct model *m, pgno_t root, const struct snapshot *s)
{
        struct btree_cursor c;
        uint64_t want = 0, entries = 0;
        size_t j = 0;
        uint8_t *expect = malloc(SOMBRA_MAX_PAGESIZE * 4);
        struct census census = {IDSET_INIT, pager_npages(pager), PGNO_NONE};
        int rc;

        cr_assert(not(eq(ptr, expect, NULL)));
        for (size_t i = 0; i < m->n; i++) {
                rc = btree_get(pager, root, model_key(m, i), m->len[i], &val);
                if (!s->present[i]) {
                        if (rc != SOMBRA_ENOTFOUND)
                                cr_fatal("absent key %zu: get gave %d", i, rc);
                        continue;
                }
                want++;
                value_fill(expect, s->vlen[i], s->vseed[i]);
                if (rc != SOMBRA_OK || val.len != s->vlen[i] ||
                    (val.len > 0 && memcmp(val.data, expect, val.len) != 0))
                        cr_fatal("key %zu: get gave %d, %zu bytes, want %u bytes", i, rc, val.len,
                                 s->vlen[i]);
        }

        btree_cursor_init(&c, pager, root);
        cr_assert(eq(int, btree_cursor_seek(&c, NULL, 0), SOMBRA_OK));
        while (btree_cursor_valid(&c)) {
                const uint8_t *k;
                size_t klen;

                while (j < m->n && !s->present[j])
                        j++;
                if (j == m->n)
                        cr_fatal("the scan yields more keys than the model holds");
                btree_cursor_key(&c, &k, &klen);
                if (klen != m->len[j] || memcmp(k, model_key(m, j), klen) != 0)
                        cr_fatal("scan position %zu: wrong key", j);
                rc = btree_cursor_value(&c, &val);
                value_fill(expect, s->vlen[j], s->vseed[j]);
                if (rc != SOMBRA_OK || val.len != s->vlen[j] ||
                    (val.len > 0 && memcmp(val.data, expect, val.len) != 0))
                        cr_fatal("scan position %zu: value gave %d, %zu bytes", j, rc, val.len);
                j++;
                cr_assert(eq(int, btree_cursor_next(&c), SOMBRA_OK));
        }
        btree_cursor_close(&c);
        while (j < m->n && !s->present[j])
                j++;
        cr_assert(eq(sz, j, m->n), "the scan ended before the model's last key");
        free(expect);

        /* An old root's pages are retired ones: check only for repeats and range here. */
        cr_assert(eq(int, btree_check(pager, root, census_add, &census, &entries), SOMBRA_OK));
        idset_free(&census.seen);
        cr_assert(eq(u64, entries, want));
        return want;
}

static void
expect_tree_matches(const struct model *m, pgno_t root, const struct snapshot *s)
{
        uint64_t want = expect_contents(m, root, s);
        cr_assert(eq(u64, expect_pages_accounted(root, NULL), want));
}

static struct snapshot
model_now(const struct model *m)
{
        struct snapshot s = {m->present, m->vlen, m->vseed};
        return s;
}

static struct snapshot
snapshot_take(const struct model *m)
{
        struct snapshot s = {malloc(m->n * sizeof(bool)), malloc(m->n * sizeof(uint32_t)),
                             malloc(m->n * sizeof(uint64_t))};

        cr_assert(s.present != NULL && s.vlen != NULL && s.vseed != NULL);
        memcpy(s.present, m->present, m->n * sizeof(bool));
        memcpy(s.vlen, m->vlen, m->n * sizeof(uint32_t));
        memcpy(s.vseed, m->vseed, m->n * sizeof(uint64_t));
        return s;
}

/* Makes the model hold the snapshot's keys and values again. */
static void
model_restore(struct model *m, const struct snapshot *s)
{
        memcpy(m->present, s->present, m->n * sizeof(bool));
        memcpy(m->vlen, s->vlen, m->n * sizeof(uint32_t));
        memcpy(m->vseed, s->vseed, m->n * sizeof(uint64_t));
        m->count = 0;
        for (size_t i = 0; i < m->n; i++)
                m->count += m->present[i];
}

static void
snapshot_free(struct snapshot *s)
{
        free(s->present);
        free(s->vlen);
        free(s->vseed);
}

/* ---- the random workload ---- */

struct undo {
        size_t id;
        bool present;
        uint32_t vlen;
        uint64_t vseed;
};

enum { MAX_TXN_OPS = 2000, READER_TXNS = 12 };

struct workload {
        uint32_t page_size;
        uint64_t rng;
        pgno_t root;
        bool in_txn;
        pgno_t txn_root; /* the root when the open transaction began */
        size_t txn_left; /* operations before it ends */
        size_t nundo;
        struct undo undo[MAX_TXN_OPS];
        uint64_t checkpoint_every; /* commits between checkpoints; 0: none */
        uint64_t txns, aborts, checkpoints, readers;
        /* A snapshot reader: a root and the model as they were at reader_txn. */
        bool reading;
        uint64_t reader_txn;
        pgno_t reader_root;
        size_t reader_left; /* commits before it lets go */
        struct snapshot snap;
        uint8_t *vbuf;
        size_t *perm;
        struct pager_stats before_reopen;
        struct btree_hint hint; /* kept as the store keeps it: cleared at begin and on deletes */
};

static void
reader_start(struct workload *w)
{
        const struct model *m = &model;

        memcpy(w->snap.present, m->present, m->n * sizeof(*m->present));
        memcpy(w->snap.vlen, m->vlen, m->n * sizeof(*m->vlen));
        memcpy(w->snap.vseed, m->vseed, m->n * sizeof(*m->vseed));
        w->reading = true;
        w->reader_txn = committed;
        w->reader_root = w->root;
        w->reader_left = READER_TXNS;
        w->readers++;
}

/*
 * The reader's root still reads exactly its snapshot, though later commits
 * (and checkpoints) went by; then it lets go and its pages become reusable.
 */
static void
reader_finish(struct workload *w)
{
        if (!w->reading)
                return;
        expect_contents(&model, w->reader_root, &w->snap);
        w->reading = false;
        pager_reclaim(pager, UINT64_MAX);
}

static void
workload_txn_end(struct workload *w, bool commit)
{
        struct model *m = &model;

        w->in_txn = false;
        if (!commit) {
                pager_txn_abort(pager);
                while (w->nundo > 0) {
                        const struct undo *u = &w->undo[--w->nundo];
                        m->count -= m->present[u->id];
                        m->count += u->present;
                        m->present[u->id] = u->present;
                        m->vlen[u->id] = u->vlen;
                        m->vseed[u->id] = u->vseed;
                }
                w->root = w->txn_root;
                w->aborts++;
                return;
        }
        txn_commit_for(w->reading ? w->reader_txn : UINT64_MAX);
        w->nundo = 0;
        w->txns++;
        cr_assert(eq(u64, expect_pages_accounted(w->root, NULL), m->count));
        if (w->reading && --w->reader_left == 0)
                reader_finish(w);
        if (w->checkpoint_every != 0 && w->txns % w->checkpoint_every == 0) {
                checkpoint();
                w->checkpoints++;
                expect_pages_accounted(w->root, NULL);
        }
        if (!w->reading && support_next_rand(&w->rng) % 40 == 0)
                reader_start(w);
}

static void
op_begin(struct workload *w, size_t id)
{
        struct model *m = &model;

        if (!w->in_txn) {
                txn_begin();
                btree_hint_clear(&w->hint);
                w->in_txn = true;
                w->txn_root = w->root;
                w->txn_left = 1 + support_next_rand(&w->rng) % MAX_TXN_OPS;
        }
        w->undo[w->nundo++] = (struct undo){id, m->present[id], m->vlen[id], m->vseed[id]};
}

/* Ends the transaction after its share of operations; one in ten aborts. */
static void
op_end(struct workload *w)
{
        if (--w->txn_left == 0)
                workload_txn_end(w, support_next_rand(&w->rng) % 10 != 0);
}

static void
op_put(struct workload *w, size_t id)
{
        struct model *m = &model;
        uint32_t vlen = pick_vlen(&w->rng, w->page_size, m->len[id]);
        uint64_t vseed = support_next_rand(&w->rng);
        int rc;

        op_begin(w, id);
        value_fill(w->vbuf, vlen, vseed);
        rc = btree_put_hinted(pager, &w->root, &w->hint, model_key(m, id), m->len[id], w->vbuf,
                              vlen);
        if (rc != SOMBRA_OK)
                cr_fatal("put of key %zu (%u-byte value): %d", id, vlen, rc);
        m->count += !m->present[id];
        m->present[id] = true;
        m->vlen[id] = vlen;
        m->vseed[id] = vseed;
        op_end(w);
}

static void
op_del(struct workload *w, size_t id)
{
        struct model *m = &model;
        int rc;

        op_begin(w, id);
        btree_hint_clear(&w->hint);
        rc = btree_del(pager, &w->root, model_key(m, id), m->len[id]);
        if (rc != (m->present[id] ? SOMBRA_OK : SOMBRA_ENOTFOUND))
                cr_fatal("del of key %zu (present %d): %d", id, m->present[id], rc);
        m->count -= m->present[id];
        m->present[id] = false;
        op_end(w);
}

static void
workload_finish_txn(struct workload *w)
{
        if (w->in_txn)
                workload_txn_end(w, true);
}

static void
shuffle(size_t *a, size_t n, uint64_t *rng)
{
        for (size_t i = 0; i < n; i++)
                a[i] = i;
        for (size_t i = n; i > 1; i--) {
                size_t j = support_next_rand(rng) % i, t = a[i - 1];
                a[i - 1] = a[j];
                a[j] = t;
        }
}

/* Puts (want_present) or deletes every key in random order until all are so. */
static void
phase_all(struct workload *w, bool want_present)
{
        struct model *m = &model;

        while (m->count != (want_present ? m->n : 0)) {
                shuffle(w->perm, m->n, &w->rng);
                for (size_t i = 0; i < m->n; i++) {
                        size_t id = w->perm[i];
                        if (m->present[id] == want_present)
                                continue;
                        if (want_present)
                                op_put(w, id);
                        else
                                op_del(w, id);
                }
                workload_finish_txn(w);
        }
}

/* Random puts (new keys and replacements), deletes (some of absent keys) and lookups. */
static void
phase_random(struct workload *w, size_t nops)
{
        struct model *m = &model;

        for (size_t i = 0; i < nops; i++) {
                uint64_t r = support_next_rand(&w->rng);
                size_t id = (size_t)((r >> 8) % m->n);
                unsigned kind = (unsigned)(r % 100);

                if (kind < 50) {
                        op_put(w, id);
                } else if (kind < 90) {
                        op_del(w, id);
                } else {
                        int rc = btree_get(pager, w->root, model_key(m, id), m->len[id], NULL);
                        if (rc != (m->present[id] ? SOMBRA_OK : SOMBRA_ENOTFOUND))
                                cr_fatal("get of key %zu (present %d): %d", id, m->present[id], rc);
                }
        }
        workload_finish_txn(w);
}

/*
 * Deletes runs of neighbouring keys, so that whole leaves and branches empty
 * while the rest of the tree stays (random deletes alone empty a leaf only
 * when nearly every key is gone).
 */
static void
phase_ranges(struct workload *w, size_t nranges)
{
        struct model *m = &model;

        for (size_t r = 0; r < nranges; r++) {
                size_t id = support_next_rand(&w->rng) % m->n, run = m->n / (2 * nranges);
                for (size_t k = 0; k < run; k++, id = (id + 1) % m->n)
                        if (m->present[id])
                                op_del(w, id);
        }
        workload_finish_txn(w);
}

/*
 * Puts the absent keys back in ascending order, the pattern the put hint is
 * for: runs of inserts into one leaf, between keys already there, across
 * leaf splits, aborts and checkpoints.
 */
static void
phase_ascending(struct workload *w)
{
        struct model *m = &model;

        while (m->count != m->n) { /* aborted transactions leave some out */
                for (size_t id = 0; id < m->n; id++)
                        if (!m->present[id])
                                op_put(w, id);
                workload_finish_txn(w);
        }
}

/* Opens the file and makes the model; the workload is `work`, freed by teardown. */
static struct workload *
workload_open(uint64_t seed, uint32_t page_size, uint32_t cache_pages, size_t nkeys)
{
        struct workload *w = work = calloc(1, sizeof(*w));
        struct model *m = &model;

        cr_assert(not(eq(ptr, w, NULL)));
        w->rng = seed;
        w->page_size = page_size;
        w->checkpoint_every = 4;
        db_open(page_size, cache_pages);
        model_make(m, nkeys, &w->rng);
        w->vbuf = malloc(4 * (size_t)page_size);
        w->perm = malloc(m->n * sizeof(*w->perm));
        w->snap.present = malloc(m->n * sizeof(*w->snap.present));
        w->snap.vlen = malloc(m->n * sizeof(*w->snap.vlen));
        w->snap.vseed = malloc(m->n * sizeof(*w->snap.vseed));
        cr_assert(w->vbuf != NULL && w->perm != NULL && w->snap.present != NULL &&
                  w->snap.vlen != NULL && w->snap.vseed != NULL);
        return w;
}

static void
workload_free(struct workload *w)
{
        if (w == NULL)
                return;
        free(w->vbuf);
        free(w->perm);
        free(w->snap.present);
        free(w->snap.vlen);
        free(w->snap.vseed);
        free(w);
}

/*
 * Fill, churn, reopen, cut out ranges, empty; the whole model is checked
 * after each phase, the tree and the page accounting after every commit,
 * snapshot readers as they let go.
 */
static void
run_workload(struct workload *w, uint32_t cache_pages, size_t nops)
{
        struct model *m = &model;
        struct snapshot now = model_now(m);

        phase_all(w, true);
        expect_tree_matches(m, w->root, &now);

        phase_random(w, nops);
        reader_finish(w);
        expect_tree_matches(m, w->root, &now);

        /* Everything the tree needs reached the file at the checkpoint. */
        checkpoint();
        pager_stats(pager, &w->before_reopen);
        reopen(cache_pages);
        expect_tree_matches(m, w->root, &now);

        phase_ranges(w, 20);
        reader_finish(w);
        expect_tree_matches(m, w->root, &now);

        phase_ascending(w);
        reader_finish(w);
        expect_tree_matches(m, w->root, &now);

        phase_ranges(w, 20);
        reader_finish(w);
        expect_tree_matches(m, w->root, &now);

        phase_all(w, false);
        reader_finish(w);
        cr_assert(eq(u64, w->root, PGNO_NONE));
        cr_assert(eq(u64, expect_pages_accounted(w->root, NULL), 0));

        /* The run went through every kind of event it is meant to cover. */
        cr_assert(gt(u64, w->aborts, 0));
        cr_assert(gt(u64, w->checkpoints, 0));
        cr_assert(gt(u64, w->readers, 0));
}

Test(btree, random_ops_match_reference_model)
{
        struct workload *w = workload_open(1, 8192, 1024, 100000);

        run_workload(w, 1024, 100000);
}

Test(btree, random_ops_match_reference_model_with_64k_pages)
{
        struct workload *w = workload_open(3, 65536, 64, 20000);

        run_workload(w, 64, 20000);
}

/* Files of format 5 and older keep leaves of the fixed layout, and work the same. */
Test(btree, random_ops_match_reference_model_with_fixed_cells)
{
        struct workload *w;

        cells = PAGE_CELLS_FIXED;
        w = workload_open(5, 4096, 256, 50000);
        run_workload(w, 256, 50000);
}

Test(btree, small_cache_evicts_and_spills_without_losing_data)
{
        struct workload *w = workload_open(2, 4096, SOMBRA_MIN_CACHE_PAGES, 20000);
        struct pager_stats st;

        run_workload(w, SOMBRA_MIN_CACHE_PAGES, 20000);
        st = w->before_reopen;
        cr_assert(gt(u64, st.evictions, 0));
        cr_assert(gt(u64, st.spills, 0));
        cr_assert(le(u64, st.cached, SOMBRA_MIN_CACHE_PAGES));
        cr_assert(gt(u64, st.npages, 4 * SOMBRA_MIN_CACHE_PAGES), "the tree outgrew the cache");
}

/*
 * A crash after a checkpoint: the work done since (spilled to the file by a
 * small cache, but never checkpointed) is lost, and the file opened with the
 * checkpoint's page count and free list holds exactly the checkpointed tree.
 * Pages the checkpoint refers to must not have been overwritten meanwhile.
 */
Test(btree, crash_after_a_checkpoint_reopens_the_checkpointed_tree)
{
        struct workload *w = workload_open(4, 4096, SOMBRA_MIN_CACHE_PAGES, 8000);
        struct model *m = &model;
        struct snapshot now = model_now(m), durable;
        struct pager_stats st;
        pgno_t durable_root;
        uint64_t durable_txn, durable_npages, durable_head, durable_count;

        phase_all(w, true);
        phase_random(w, 8000);
        reader_finish(w);
        checkpoint();
        durable = snapshot_take(m);
        durable_root = w->root;
        durable_txn = committed;
        durable_npages = pager_npages(pager);
        durable_head = free_head;
        durable_count = free_count;

        w->checkpoint_every = 0;
        phase_random(w, 30000);
        phase_ranges(w, 10);
        reader_finish(w);
        pager_stats(pager, &st);
        cr_assert(gt(u64, st.spills, 0), "later work reached the file");

        /* The crash: nothing more is written; open reads the checkpoint's meta. */
        pager_destroy(pager);
        pager = NULL;
        committed = durable_txn;
        free_head = durable_head;
        free_count = durable_count;
        pager_open(4096, SOMBRA_MIN_CACHE_PAGES, durable_npages, durable_txn);
        cr_assert(eq(int, pager_freelist_load(pager, free_head, free_count, false), SOMBRA_OK));
        model_restore(m, &durable);
        w->root = durable_root;
        snapshot_free(&durable);
        expect_tree_matches(m, w->root, &now);

        /* And the reopened tree takes new work. */
        w->checkpoint_every = 4;
        phase_random(w, 8000);
        expect_tree_matches(m, w->root, &now);
}

/* ---- integer-keyed models for the focused tests ---- */

/*
 * A model over the keys 0..n-1 as 4-byte big-endian numbers padded to klen
 * bytes (key order = numeric order); long keys make narrow, tall trees.
 */
static void
model_ints(struct model *m, size_t n, size_t klen)
{
        model_alloc(m, n, klen * n);
        for (size_t i = 0; i < n; i++) {
                m->off[i] = klen * i;
                m->len[i] = (uint16_t)klen;
                put_be32(m->bytes + m->off[i], (uint32_t)i);
                memset(m->bytes + m->off[i] + 4, 'p', klen - 4);
        }
}

static void
model_put(pgno_t *root, size_t id, size_t vlen, uint64_t vseed)
{
        struct model *m = &model;
        uint8_t *v = value_make(vlen, vseed);

        cr_assert(eq(int, btree_put(pager, root, model_key(m, id), m->len[id], v, vlen), SOMBRA_OK),
                  "put %zu", id);
        free(v);
        m->count += !m->present[id];
        m->present[id] = true;
        m->vlen[id] = (uint32_t)vlen;
        m->vseed[id] = vseed;
}

static void
model_del(pgno_t *root, size_t id)
{
        struct model *m = &model;

        cr_assert(eq(int, btree_del(pager, root, model_key(m, id), m->len[id]),
                     m->present[id] ? SOMBRA_OK : SOMBRA_ENOTFOUND),
                  "del %zu", id);
        m->count -= m->present[id];
        m->present[id] = false;
}

/* Keys 0..n-1 of klen bytes, every 97th with a three-page overflow value, the rest 16 bytes. */
static pgno_t
fill_ints(size_t n, size_t klen)
{
        pgno_t root = PGNO_NONE;

        model_ints(&model, n, klen);
        txn_begin();
        for (size_t i = 0; i < n; i++)
                model_put(&root, i, i % 97 == 0 ? 3 * pager_page_size(pager) : 16, i);
        txn_commit();
        return root;
}

/*
 * A copy leaves a leaf's or a branch's free gap as its frame had it
 * (page_copy, pager.c): the tree must read the same whatever those bytes
 * are, in the cache and back from the file. The frames an aborted
 * transaction gives back are first filled with 0xAA, and the next
 * transaction's copies land in them.
 */
Test(btree, copies_into_frames_full_of_garbage_keep_the_tree_intact)
{
        struct snapshot s;
        pgno_t root, before;

        db_open(4096, 512);
        root = fill_ints(2000, 8);
        txn_begin();
        for (int i = 0; i < 128; i++) {
                struct page *pg;
                cr_assert(eq(int, pager_alloc(pager, PAGE_OVERFLOW, &pg), SOMBRA_OK));
                memset(pg->data + PAGE_HDR, 0xAA, 4096 - PAGE_HDR);
                pager_unpin(pager, pg);
        }
        pager_txn_abort(pager);
        before = root;
        txn_begin();
        for (size_t i = 0; i < 2000; i += 7)
                model_put(&root, i, 16, i + 5000);
        txn_commit();
        /* Its pages still dirty from the first transaction: a new root number is a copy. */
        cr_assert(not(eq(u64, root, before)), "the tree was changed in place");
        s = snapshot_take(&model);
        expect_tree_matches(&model, root, &s);
        checkpoint();
        reopen(512);
        expect_tree_matches(&model, root, &s);
        snapshot_free(&s);
}

/* ---- cursors ---- */

/* Keys 0, 10, 20, ... as 4-byte big-endian numbers, over many leaves. */
static pgno_t
fill_tens(uint32_t n)
{
        pgno_t root = PGNO_NONE;

        txn_begin();
        for (uint32_t i = 0; i < n; i++)
                put_u32(&root, i * 10, i, 16);
        txn_commit();
        cr_assert(gt(u64, tree_page_count(root), 3), "the keys span several leaves");
        return root;
}

static void
seek_u32(struct btree_cursor *c, uint32_t k)
{
        uint8_t key[4];

        put_be32(key, k);
        cr_assert(eq(int, btree_cursor_seek(c, key, 4), SOMBRA_OK));
}

Test(btree, seek_to_a_missing_key_lands_on_the_next_key)
{
        enum { N = 5000 };
        struct btree_cursor c;
        pgno_t root;

        db_open(4096, 256);
        root = fill_tens(N);
        btree_cursor_init(&c, pager, root);
        for (uint32_t k = 0; k <= 10 * (N - 2); k += 7) {
                uint32_t want = (k + 9) / 10 * 10;

                seek_u32(&c, k);
                cr_assert(btree_cursor_valid(&c), "seek %u", k);
                cr_assert(eq(u32, cursor_u32(&c), want), "seek %u", k);
                cr_assert(eq(int, btree_cursor_value(&c, &val), SOMBRA_OK));
                expect_value(&val, 16, want / 10, "value after seek");
                cr_assert(eq(int, btree_cursor_next(&c), SOMBRA_OK));
                cr_assert(btree_cursor_valid(&c));
                cr_assert(eq(u32, cursor_u32(&c), want + 10), "next after seek %u", k);
        }
        btree_cursor_close(&c);
}

Test(btree, seek_with_a_shorter_key_lands_on_its_first_extension)
{
        const uint8_t prefix[3] = {0, 0, 1}; /* 256..511 start with these bytes */
        struct btree_cursor c;
        pgno_t root;

        db_open(4096, 256);
        root = fill_tens(1000);
        btree_cursor_init(&c, pager, root);
        cr_assert(eq(int, btree_cursor_seek(&c, prefix, sizeof(prefix)), SOMBRA_OK));
        cr_assert(btree_cursor_valid(&c));
        cr_assert(eq(u32, cursor_u32(&c), 260));
        btree_cursor_close(&c);
}

Test(btree, seek_past_the_last_key_is_invalid)
{
        const uint8_t ff[1] = {0xff};
        struct btree_cursor c;
        pgno_t root;

        db_open(4096, 256);
        root = fill_tens(3000);
        btree_cursor_init(&c, pager, root);
        seek_u32(&c, 10 * 2999 + 1);
        cr_assert(not(btree_cursor_valid(&c)));
        cr_assert(eq(int, btree_cursor_value(&c, &val), SOMBRA_ENOTFOUND));
        cr_assert(eq(int, btree_cursor_next(&c), SOMBRA_OK));
        cr_assert(not(btree_cursor_valid(&c)), "next does not revive an ended cursor");
        cr_assert(eq(int, btree_cursor_seek(&c, ff, 1), SOMBRA_OK));
        cr_assert(not(btree_cursor_valid(&c)));
        /* The last key itself is found, and next from it ends. */
        seek_u32(&c, 10 * 2999);
        cr_assert(btree_cursor_valid(&c));
        cr_assert(eq(int, btree_cursor_next(&c), SOMBRA_OK));
        cr_assert(not(btree_cursor_valid(&c)));
        btree_cursor_close(&c);
}

Test(btree, cursor_on_an_empty_tree_is_invalid)
{
        struct btree_cursor c;

        db_open(4096, 64);
        btree_cursor_init(&c, pager, PGNO_NONE);
        cr_assert(eq(int, btree_cursor_seek(&c, NULL, 0), SOMBRA_OK));
        cr_assert(not(btree_cursor_valid(&c)));
        cr_assert(eq(int, btree_cursor_seek(&c, "a", 1), SOMBRA_OK));
        cr_assert(not(btree_cursor_valid(&c)));
        btree_cursor_close(&c);
}

Test(btree, empty_seek_key_starts_at_the_first_key_and_scans_all_in_order)
{
        enum { N = 4000 };
        struct btree_cursor c;
        uint32_t seen = 0;
        pgno_t root;

        db_open(4096, 256);
        root = fill_tens(N);
        btree_cursor_init(&c, pager, root);
        cr_assert(eq(int, btree_cursor_seek(&c, NULL, 0), SOMBRA_OK));
        for (; btree_cursor_valid(&c); seen++) {
                cr_assert(eq(u32, cursor_u32(&c), seen * 10));
                cr_assert(eq(int, btree_cursor_next(&c), SOMBRA_OK));
        }
        cr_assert(eq(u32, seen, N));
        btree_cursor_close(&c);
}

Test(btree, prefix_scan_yields_exactly_the_keys_with_that_prefix)
{
        static const char *const others[] = {"use",   "user",   "user;", "users:1",
                                             "usea:", "item:1", "zzz",   "u"};
        struct btree_cursor c;
        pgno_t root = PGNO_NONE;
        char key[32], prev[32] = "";
        const uint8_t *k;
        size_t klen;
        int n = 0;

        db_open(4096, 256);
        txn_begin();
        for (int i = 0; i < 3000; i++) {
                snprintf(key, sizeof(key), "user:%d", i);
                put_str(&root, key, key, strlen(key));
        }
        for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++)
                put_str(&root, others[i], "x", 1);
        txn_commit();

        btree_cursor_init(&c, pager, root);
        cr_assert(eq(int, btree_cursor_seek(&c, "user:", 5), SOMBRA_OK));
        while (btree_cursor_valid(&c)) {
                btree_cursor_key(&c, &k, &klen);
                if (klen < 5 || memcmp(k, "user:", 5) != 0)
                        break;
                cr_assert(lt(sz, klen, sizeof(key)));
                memcpy(key, k, klen);
                key[klen] = '\0';
                cr_assert(gt(int, strcmp(key, prev), 0), "%s after %s", key, prev);
                cr_assert(eq(int, btree_cursor_value(&c, &val), SOMBRA_OK));
                cr_assert(eq(sz, val.len, klen));
                cr_assert(eq(int, memcmp(val.data, k, klen), 0));
                strcpy(prev, key);
                n++;
                cr_assert(eq(int, btree_cursor_next(&c), SOMBRA_OK));
        }
        cr_assert(eq(int, n, 3000));
        /* The first key after the prefix range is "user;" (';' follows ':'). */
        cr_assert(btree_cursor_valid(&c));
        btree_cursor_key(&c, &k, &klen);
        cr_assert(eq(sz, klen, 5));
        cr_assert(eq(int, memcmp(k, "user;", 5), 0));
        btree_cursor_close(&c);
}

Test(btree, shorter_keys_sort_before_their_extensions)
{
        static const struct {
                const char *bytes;
                size_t len;
        } order[] = {{"\x00", 1}, {"a", 1}, {"a\x00", 2}, {"a\x00\x00", 3},
                     {"ab", 2},   {"b", 1}, {"\xff", 1},  {"\xff\xff", 2}};
        enum { N = sizeof(order) / sizeof(order[0]) };
        struct btree_cursor c;
        pgno_t root = PGNO_NONE;
        size_t i = 0;

        db_open(4096, 64);
        txn_begin();
        for (size_t k = N; k-- > 0;)
                cr_assert(eq(int, btree_put(pager, &root, order[k].bytes, order[k].len, &k, 1),
                             SOMBRA_OK));
        txn_commit();
        btree_cursor_init(&c, pager, root);
        cr_assert(eq(int, btree_cursor_seek(&c, NULL, 0), SOMBRA_OK));
        for (; btree_cursor_valid(&c); i++) {
                const uint8_t *k;
                size_t klen;

                cr_assert(lt(sz, i, N));
                btree_cursor_key(&c, &k, &klen);
                cr_assert(eq(sz, klen, order[i].len), "position %zu", i);
                cr_assert(eq(int, memcmp(k, order[i].bytes, klen), 0), "position %zu", i);
                cr_assert(eq(int, btree_cursor_next(&c), SOMBRA_OK));
        }
        cr_assert(eq(sz, i, N));
        btree_cursor_close(&c);
}

/* ---- overflow values ---- */

Test(btree, values_round_trip_at_every_size_class)
{
        const uint32_t ps = 4096;
        const size_t im = inline_max(ps, 2), room = ps - PAGE_HDR;
        const size_t sizes[] = {0,        1,    im - 1,   im,       im + 1,
                                room - 1, room, room + 1, 3 * room, 1u << 20};
        struct btree_cursor c;

        db_open(ps, 128);
        for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
                size_t n = sizes[i];
                uint8_t *v = value_make(n, i);
                pgno_t root = PGNO_NONE;
                uint64_t pages;

                txn_begin();
                cr_assert(eq(int, btree_put(pager, &root, "k1", 2, v, n), SOMBRA_OK), "%zu", n);
                put_str(&root, "k0", "before", 6);
                put_str(&root, "k2", "after", 5);
                txn_commit();

                cr_assert(eq(int, btree_get(pager, root, "k1", 2, &val), SOMBRA_OK));
                expect_value(&val, n, i, "get");
                btree_cursor_init(&c, pager, root);
                cr_assert(eq(int, btree_cursor_seek(&c, "k1", 2), SOMBRA_OK));
                cr_assert(eq(int, btree_cursor_value(&c, &val), SOMBRA_OK));
                expect_value(&val, n, i, "cursor");
                btree_cursor_close(&c);
                cr_assert(eq(int, btree_get(pager, root, "k2", 2, &val), SOMBRA_OK));
                cr_assert(eq(sz, val.len, 5), "the neighbour is intact");

                /* Inline up to the limit, then exactly enough overflow pages. */
                pages = tree_page_count(root);
                cr_assert(eq(u64, pages, 1 + (n > im ? overflow_pages(ps, n) : 0)),
                          "%zu-byte value", n);

                txn_begin();
                cr_assert(eq(int, btree_drop(pager, &root), SOMBRA_OK));
                txn_commit();
                cr_assert(eq(u64, root, PGNO_NONE));
                cr_assert(eq(u64, expect_pages_accounted(root, NULL), 0));
                free(v);
        }
}

/* A 1 MiB value and some small ones; returns the root. */
static pgno_t
fill_with_big_value(size_t big)
{
        uint8_t *v = value_make(big, 7);
        pgno_t root = PGNO_NONE;

        txn_begin();
        put_str(&root, "a", "1", 1);
        cr_assert(eq(int, btree_put(pager, &root, "big", 3, v, big), SOMBRA_OK));
        put_str(&root, "z", "2", 1);
        txn_commit();
        free(v);
        cr_assert(eq(u64, tree_page_count(root), 1 + overflow_pages(pager_page_size(pager), big)));
        return root;
}

Test(btree, replacing_an_overflow_value_frees_its_pages)
{
        const size_t big = 1u << 20;
        pgno_t root;
        uint64_t npages;
        struct pager_stats st;
        uint8_t *v = value_make(big / 2, 9);

        db_open(4096, 128);
        root = fill_with_big_value(big);

        txn_begin();
        put_str(&root, "big", "small now", 9);
        txn_commit();
        npages = pager_npages(pager);
        cr_assert(eq(u64, tree_page_count(root), 1));
        pager_stats(pager, &st);
        cr_assert(ge(u64, st.free_pages, overflow_pages(4096, big)));
        cr_assert(eq(int, btree_get(pager, root, "big", 3, &val), SOMBRA_OK));
        cr_assert(eq(sz, val.len, 9));

        /* Another overflow value replaces the small one; the old chain's pages are reused. */
        txn_begin();
        cr_assert(eq(int, btree_put(pager, &root, "big", 3, v, big / 2), SOMBRA_OK));
        txn_commit();
        cr_assert(eq(u64, tree_page_count(root), 1 + overflow_pages(4096, big / 2)));
        cr_assert(eq(u64, pager_npages(pager), npages), "the file did not grow");
        cr_assert(eq(int, btree_get(pager, root, "big", 3, &val), SOMBRA_OK));
        expect_value(&val, big / 2, 9, "replacement");
        free(v);
}

Test(btree, replacing_an_overflow_value_with_another_frees_the_old_chain)
{
        const size_t big = 1u << 20;
        uint8_t *v = value_make(100000, 3);
        pgno_t root;

        db_open(4096, 128);
        root = fill_with_big_value(big);
        txn_begin();
        cr_assert(eq(int, btree_put(pager, &root, "big", 3, v, 100000), SOMBRA_OK));
        txn_commit();
        cr_assert(eq(u64, tree_page_count(root), 1 + overflow_pages(4096, 100000)));
        cr_assert(eq(int, btree_get(pager, root, "big", 3, &val), SOMBRA_OK));
        expect_value(&val, 100000, 3, "replacement");
        free(v);
}

Test(btree, deleting_an_overflow_value_frees_its_pages)
{
        const size_t big = 1u << 20;
        pgno_t root;
        struct pager_stats st;

        db_open(4096, 128);
        root = fill_with_big_value(big);
        txn_begin();
        cr_assert(eq(int, btree_del(pager, &root, "big", 3), SOMBRA_OK));
        txn_commit();
        cr_assert(eq(u64, tree_page_count(root), 1));
        pager_stats(pager, &st);
        cr_assert(ge(u64, st.free_pages, overflow_pages(4096, big)));
        cr_assert(eq(int, btree_get(pager, root, "big", 3, NULL), SOMBRA_ENOTFOUND));
}

Test(btree, value_of_max_record_fits_and_one_byte_more_is_etoobig)
{
        uint8_t *v = malloc(SOMBRA_MAX_RECORD + 1);
        pgno_t root = PGNO_NONE;
        uint64_t npages;

        cr_assert(not(eq(ptr, v, NULL)));
        value_fill(v, SOMBRA_MAX_RECORD, 11);
        db_open(8192, 64);
        txn_begin();
        put_str(&root, "a", "1", 1);
        npages = pager_npages(pager);
        cr_assert(
            eq(int, btree_put(pager, &root, "big", 3, v, SOMBRA_MAX_RECORD + 1), SOMBRA_ETOOBIG));
        cr_assert(eq(u64, pager_npages(pager), npages), "nothing was allocated");
        cr_assert(eq(int, btree_put(pager, &root, "big", 3, v, SOMBRA_MAX_RECORD), SOMBRA_OK));
        txn_commit();
        cr_assert(eq(int, btree_get(pager, root, "big", 3, &val), SOMBRA_OK));
        cr_assert(eq(sz, val.len, SOMBRA_MAX_RECORD));
        cr_assert(eq(int, memcmp(val.data, v, SOMBRA_MAX_RECORD), 0));
        free(v);
}

/* ---- copy-on-write and abort ---- */

Test(btree, root_saved_before_a_commit_still_reads_the_old_contents)
{
        struct model *m = &model;
        struct snapshot before, now;
        struct pager_stats st;
        pgno_t root, old;
        uint64_t reader;

        db_open(4096, 256);
        root = fill_ints(4000, 4);
        now = model_now(m);
        before = snapshot_take(m);
        old = root;
        reader = committed;

        txn_begin();
        for (size_t i = 0; i < m->n; i += 3)
                model_put(&root, i, i % 2 ? 40 : 3 * 4096, i + 100000);
        for (size_t i = 1; i < m->n; i += 5)
                model_del(&root, i);
        txn_commit_for(reader); /* a reader still uses the state of `reader` */

        pager_stats(pager, &st);
        cr_assert(gt(u64, st.retired_pages, 0), "the old pages wait for the reader");
        expect_contents(m, old, &before);
        expect_tree_matches(m, root, &now);

        pager_reclaim(pager, UINT64_MAX);
        pager_stats(pager, &st);
        cr_assert(eq(u64, st.retired_pages, 0));
        expect_tree_matches(m, root, &now);
        snapshot_free(&before);
}

/*
 * A clean page that only the writer holds is made writable in its own frame,
 * under the new number (pager_make_writable): no frame more in the cache,
 * while the old page's bytes stay in the file for a reader of the state
 * before and for a rollback.
 */
Test(btree, a_clean_page_made_writable_in_its_frame_keeps_its_old_bytes_in_the_file)
{
        struct pager_stats before, after;
        struct pager *reader;
        struct page *pg, *frame;
        pgno_t root = PGNO_NONE, old;

        db_open(4096, 64);
        txn_begin();
        put_str(&root, "a", "old", 3);
        put_str(&root, "b", "bee", 3);
        txn_commit();
        checkpoint();                              /* written: clean */
        pager_publish(pager, pager_npages(pager)); /* readers may read it */
        old = root;
        cr_assert(eq(int, pager_get(pager, old, &frame), SOMBRA_OK));
        pager_unpin(pager, frame);
        pager_stats(pager, &before);

        txn_begin();
        put_str(&root, "a", "new", 3);
        pager_stats(pager, &after);
        cr_assert(not(eq(u64, root, old)));
        cr_assert(eq(u64, after.cached, before.cached), "the old page's frame became the new one");
        cr_assert(eq(int, pager_get(pager, root, &pg), SOMBRA_OK));
        cr_assert(eq(ptr, pg, frame));
        pager_unpin(pager, pg);

        cr_assert(eq(int, pager_reader_open(pager, &reader), SOMBRA_OK));
        cr_assert(eq(int, btree_get(reader, old, "a", 1, &val), SOMBRA_OK));
        cr_assert(eq(int, memcmp(val.data, "old", 3), 0), "a reader of the state before");
        pager_reader_close(reader);
        cr_assert(eq(int, btree_get(pager, root, "a", 1, &val), SOMBRA_OK));
        cr_assert(eq(int, memcmp(val.data, "new", 3), 0));

        pager_txn_abort(pager);
        cr_assert(eq(int, btree_get(pager, old, "a", 1, &val), SOMBRA_OK));
        cr_assert(eq(int, memcmp(val.data, "old", 3), 0),
                  "the rollback's tree, read from the file");
        cr_assert(eq(u64, expect_pages_accounted(old, NULL), 2));
}

Test(btree, retired_pages_wait_for_the_oldest_reader)
{
        struct pager_stats st;
        pgno_t root;

        db_open(4096, 256);
        root = fill_ints(1000, 4);
        txn_begin();
        model_put(&root, 500, 8, 1);
        txn_commit_for(0); /* a reader is at txn 0: nothing retired since may be reused */
        pager_stats(pager, &st);
        cr_assert(gt(u64, st.retired_pages, 0));
        pager_reclaim(pager, committed - 1);
        pager_stats(pager, &st);
        cr_assert(gt(u64, st.retired_pages, 0), "a reader of the state before still needs them");
        pager_reclaim(pager, committed);
        pager_stats(pager, &st);
        cr_assert(eq(u64, st.retired_pages, 0));
}

Test(btree, writes_in_one_transaction_copy_each_page_once)
{
        pgno_t root = PGNO_NONE, first;
        uint64_t npages;

        db_open(4096, 64);
        txn_begin();
        put_str(&root, "a", "1", 1);
        txn_commit();

        txn_begin();
        put_str(&root, "b", "2", 1);
        first = root;
        npages = pager_npages(pager);
        put_str(&root, "c", "3", 1);
        put_str(&root, "a", "4", 1);
        cr_assert(eq(int, btree_del(pager, &root, "b", 1), SOMBRA_OK));
        cr_assert(eq(u64, root, first), "the leaf copied once is changed in place");
        cr_assert(eq(u64, pager_npages(pager), npages));
        txn_commit();

        txn_begin();
        put_str(&root, "d", "5", 1);
        cr_assert(not(eq(u64, root, first)), "a committed page is copied before a change");
        txn_commit();
        cr_assert(eq(u64, expect_pages_accounted(root, NULL), 3));
}

/*
 * A hint names a leaf of the transaction that made it. One carried into the
 * next transaction (the store clears it; this test does not) must not let a
 * put write into that leaf, which is committed now: the put copies it.
 */
Test(btree, a_hint_from_a_committed_transaction_does_not_write_in_place)
{
        struct btree_hint hint;
        pgno_t root = PGNO_NONE, old;
        uint8_t key[4];

        db_open(4096, 64);
        btree_hint_clear(&hint);
        txn_begin();
        for (uint32_t k = 0; k < 40; k += 2) {
                put_be32(key, k);
                cr_assert(
                    eq(int, btree_put_hinted(pager, &root, &hint, key, 4, "old", 3), SOMBRA_OK));
        }
        txn_commit();
        cr_assert(not(eq(u64, hint.leaf, PGNO_NONE)), "the inserts left a hint");
        old = root;

        txn_begin();
        put_be32(key, 7);
        cr_assert(eq(int, btree_put_hinted(pager, &root, &hint, key, 4, "new", 3), SOMBRA_OK));
        cr_assert(not(eq(u64, root, old)), "the committed leaf was copied");
        cr_assert(eq(int, btree_get(pager, old, key, 4, NULL), SOMBRA_ENOTFOUND));
        cr_assert(eq(int, btree_get(pager, root, key, 4, &val), SOMBRA_OK));
        txn_commit();
        cr_assert(eq(u64, expect_pages_accounted(root, NULL), 21));
}

Test(btree, abort_restores_the_old_root_exactly)
{
        struct model *m = &model;
        struct snapshot before, now;
        pgno_t root, saved;

        db_open(4096, 128);
        root = fill_ints(5000, 4);
        now = model_now(m);
        before = snapshot_take(m);
        saved = root;

        txn_begin();
        for (size_t i = 0; i < m->n; i += 2)
                model_put(&root, i, i % 7 ? 200 : 5 * 4096, i + 1);
        for (size_t i = 1; i < m->n; i += 4)
                model_del(&root, i);
        cr_assert(eq(int, btree_drop(pager, &root), SOMBRA_OK));
        pager_txn_abort(pager);
        root = saved;

        expect_tree_matches(m, root, &before);

        /* The next transaction (the same txn number again) works on the restored tree. */
        model_restore(m, &before);
        txn_begin();
        for (size_t i = 0; i < m->n; i += 3)
                model_del(&root, i);
        txn_commit();
        expect_tree_matches(m, root, &now);
        snapshot_free(&before);
}

/* ---- failures ---- */

Test(btree, failed_spill_fails_the_write_and_abort_restores_the_tree)
{
        struct model *m = &model;
        struct io_faults faults = {
            .ops = 1u << IO_OP_WRITE, .countdown = 20, .err = ENOSPC, .sticky = true};
        struct snapshot before, now;
        pgno_t root, saved;
        int rc = SOMBRA_OK;

        db_open(4096, SOMBRA_MIN_CACHE_PAGES);
        root = fill_ints(3000, 4);
        before = snapshot_take(m);
        saved = root;

        /* The disk fills up while a large transaction spills its pages. */
        file.faults = &faults;
        txn_begin();
        for (size_t i = 0; i < m->n && rc == SOMBRA_OK; i++) {
                uint8_t *v = value_make(3000, i);
                rc = btree_put(pager, &root, model_key(m, i), 4, v, 3000);
                free(v);
        }
        cr_assert(eq(int, rc, SOMBRA_ENOSPC));
        cr_assert(gt(u64, faults.fired, 0));
        pager_txn_abort(pager);
        file.faults = NULL;
        root = saved;
        expect_tree_matches(m, root, &before);

        /* With room again, the same work commits. */
        txn_begin();
        for (size_t i = 0; i < m->n; i += 2)
                model_put(&root, i, 3000, i + 5);
        txn_commit();
        now = model_now(m);
        expect_tree_matches(m, root, &now);
        snapshot_free(&before);
}

Test(btree, read_error_is_returned_and_leaves_the_tree_readable)
{
        struct model *m = &model;
        struct io_faults faults = {.ops = 1u << IO_OP_READ, .countdown = 1};
        struct snapshot now;
        pgno_t root;

        db_open(4096, SOMBRA_MIN_CACHE_PAGES);
        root = fill_ints(3000, 4);
        now = model_now(m);
        checkpoint();
        reopen(SOMBRA_MIN_CACHE_PAGES); /* nothing cached: every lookup reads */
        file.faults = &faults;
        cr_assert(eq(int, btree_get(pager, root, model_key(m, 2000), 4, &val), SOMBRA_EIO));
        cr_assert(eq(u64, faults.fired, 1));
        file.faults = NULL;
        expect_tree_matches(m, root, &now);
}

/* ---- deletion ---- */

enum delete_order { ASCENDING, DESCENDING, SHUFFLED };

/* Fills a tree, then deletes every key in the given order, checking the tree after each commit. */
static void
delete_all(size_t n, size_t klen, enum delete_order order)
{
        struct model *m = &model;
        struct snapshot now;
        size_t *ids = malloc(n * sizeof(*ids));
        uint64_t rng = 5;
        pgno_t root;

        cr_assert(not(eq(ptr, ids, NULL)));
        root = fill_ints(n, klen);
        now = model_now(m);
        for (size_t i = 0; i < m->n; i++)
                ids[i] = order == DESCENDING ? m->n - 1 - i : i;
        if (order == SHUFFLED)
                shuffle(ids, m->n, &rng);
        for (size_t i = 0; i < m->n;) {
                txn_begin();
                for (size_t end = i + 300; i < m->n && i < end; i++)
                        model_del(&root, ids[i]);
                txn_commit();
                cr_assert(eq(u64, expect_pages_accounted(root, NULL), m->count));
        }
        cr_assert(eq(u64, root, PGNO_NONE));
        expect_tree_matches(m, root, &now);
        free(ids);
}

Test(btree, deleting_every_key_empties_the_tree_and_frees_every_page)
{
        const enum delete_order orders[] = {ASCENDING, DESCENDING, SHUFFLED};

        db_open(4096, 256);
        for (size_t i = 0; i < 3; i++) {
                /* 200-byte keys: 19 children per branch, so the tree is three levels deep. */
                delete_all(6000, 200, orders[i]);
                model_free(&model);
        }
}

Test(btree, deleting_a_missing_key_is_notfound_and_changes_nothing)
{
        pgno_t root = PGNO_NONE, before;
        uint64_t npages;

        db_open(4096, 64);
        txn_begin();
        cr_assert(eq(int, btree_del(pager, &root, "a", 1), SOMBRA_ENOTFOUND));
        put_str(&root, "a", "1", 1);
        put_str(&root, "c", "3", 1);
        txn_commit();
        before = root;
        npages = pager_npages(pager);
        txn_begin();
        cr_assert(eq(int, btree_del(pager, &root, "b", 1), SOMBRA_ENOTFOUND));
        cr_assert(eq(int, btree_del(pager, &root, "aa", 2), SOMBRA_ENOTFOUND));
        cr_assert(eq(u64, root, before));
        cr_assert(eq(u64, pager_npages(pager), npages));
        txn_commit();
        cr_assert(eq(u64, expect_pages_accounted(root, NULL), 2));
}

Test(btree, drop_frees_every_page)
{
        pgno_t root, empty = PGNO_NONE;

        db_open(4096, 128);
        root = fill_ints(6000, 4);
        cr_assert(gt(u64, tree_page_count(root), 100));
        txn_begin();
        cr_assert(eq(int, btree_drop(pager, &root), SOMBRA_OK));
        cr_assert(eq(int, btree_drop(pager, &empty), SOMBRA_OK));
        txn_commit();
        cr_assert(eq(u64, root, PGNO_NONE));
        cr_assert(eq(u64, expect_pages_accounted(root, NULL), 0));
}

/* ---- arguments ---- */

Test(btree, bad_keys_are_einval)
{
        static uint8_t key[BTREE_MAX_KEY + 1];
        struct btree_cursor c;
        pgno_t root = PGNO_NONE;

        memset(key, 'k', sizeof(key));
        db_open(4096, 64);
        txn_begin();
        cr_assert(eq(int, btree_put(pager, &root, NULL, 1, "v", 1), SOMBRA_EINVAL));
        cr_assert(eq(int, btree_put(pager, &root, key, 0, "v", 1), SOMBRA_EINVAL));
        cr_assert(eq(int, btree_put(pager, &root, key, BTREE_MAX_KEY + 1, "v", 1), SOMBRA_EINVAL));
        cr_assert(eq(u64, root, PGNO_NONE));
        cr_assert(eq(int, btree_put(pager, &root, key, BTREE_MAX_KEY, "v", 1), SOMBRA_OK));
        cr_assert(eq(int, btree_del(pager, &root, NULL, 1), SOMBRA_EINVAL));
        cr_assert(eq(int, btree_del(pager, &root, key, 0), SOMBRA_EINVAL));
        cr_assert(eq(int, btree_del(pager, &root, key, BTREE_MAX_KEY + 1), SOMBRA_EINVAL));
        txn_commit();
        cr_assert(eq(int, btree_get(pager, root, NULL, 1, &val), SOMBRA_EINVAL));
        cr_assert(eq(int, btree_get(pager, root, key, 0, &val), SOMBRA_EINVAL));
        cr_assert(eq(int, btree_get(pager, root, key, BTREE_MAX_KEY + 1, &val), SOMBRA_EINVAL));
        cr_assert(eq(int, btree_get(pager, root, key, BTREE_MAX_KEY, &val), SOMBRA_OK));
        btree_cursor_init(&c, pager, root);
        cr_assert(eq(int, btree_cursor_seek(&c, key, BTREE_MAX_KEY + 1), SOMBRA_EINVAL));
        cr_assert(eq(int, btree_cursor_seek(&c, NULL, 1), SOMBRA_EINVAL));
        cr_assert(not(btree_cursor_valid(&c)));
        btree_cursor_close(&c);
        cr_assert(eq(u64, expect_pages_accounted(root, NULL), 1));
}

Test(btree, null_value_with_a_length_is_einval_and_without_one_is_empty)
{
        pgno_t root = PGNO_NONE;

        db_open(4096, 64);
        txn_begin();
        cr_assert(eq(int, btree_put(pager, &root, "k", 1, NULL, 5), SOMBRA_EINVAL));
        cr_assert(eq(int, btree_put(pager, &root, "k", 1, NULL, 0), SOMBRA_OK));
        txn_commit();
        cr_assert(eq(int, btree_get(pager, root, "k", 1, &val), SOMBRA_OK));
        cr_assert(eq(sz, val.len, 0));
}

Test(btree, writes_outside_a_transaction_are_enotxn)
{
        pgno_t root = PGNO_NONE, saved;

        db_open(4096, 64);
        cr_assert(eq(int, btree_put(pager, &root, "k", 1, "v", 1), SOMBRA_ENOTXN));
        txn_begin();
        put_str(&root, "k", "v", 1);
        txn_commit();
        saved = root;
        cr_assert(eq(int, btree_put(pager, &root, "k", 1, "w", 1), SOMBRA_ENOTXN));
        cr_assert(eq(int, btree_del(pager, &root, "k", 1), SOMBRA_ENOTXN));
        cr_assert(eq(u64, root, saved));
        cr_assert(eq(int, btree_get(pager, root, "k", 1, &val), SOMBRA_OK));
        cr_assert(eq(int, memcmp(val.data, "v", 1), 0));
}

/* ---- layout ---- */

Test(btree, ascending_inserts_fill_pages_instead_of_halving_them)
{
        enum { N = 20000 };
        const size_t cell = leaf_entry_size(4, 16, true);
        const size_t per_leaf = (4096 - PAGE_HDR) / cell;
        pgno_t root = PGNO_NONE;
        uint64_t pages;

        db_open(4096, 128);
        txn_begin();
        for (uint32_t i = 0; i < N; i++)
                put_u32(&root, i, i, 16);
        txn_commit();
        pages = tree_page_count(root);
        /* Full leaves plus a few branches; half-full leaves would need twice the pages. */
        cr_assert(lt(u64, pages, (N / per_leaf + 1) * 11 / 10), "%llu pages",
                  (unsigned long long)pages);
}

/*
 * Keys in random order split in the middle, so pages stay about two thirds
 * full (ln 2 for 50/50 splits); the split that keeps a page full when the new
 * key is its last must not make that worse.
 */
Test(btree, random_inserts_keep_pages_two_thirds_full)
{
        enum { N = 20000 };
        const size_t per_leaf = (4096 - PAGE_HDR) / leaf_entry_size(4, 16, true);
        size_t *order = malloc(N * sizeof(*order));
        pgno_t root = PGNO_NONE;
        uint64_t rng = 11, pages;

        cr_assert(not(eq(ptr, order, NULL)));
        shuffle(order, N, &rng);
        db_open(4096, 128);
        txn_begin();
        for (size_t i = 0; i < N; i++)
                put_u32(&root, (uint32_t)order[i], order[i], 16);
        txn_commit();
        cr_assert(eq(u64, expect_pages_accounted(root, &pages), N));
        cr_assert(lt(u64, pages, N / per_leaf * 8 / 5), "%llu pages", (unsigned long long)pages);
        free(order);
}

/*
 * Increasing keys inside the tree, as a label's nodes arrive: each round,
 * every group gets the next K keys of its own range, so each run goes in
 * before the next group's keys. The put hint sees the run, and the splits it
 * makes leave full pages behind rather than half-full ones (about twice the
 * pages, which is what splitting in the middle made of this pattern).
 */
Test(btree, runs_of_increasing_keys_inside_the_tree_fill_pages)
{
        enum { GROUPS = 5, ROUNDS = 40, K = 200, N = GROUPS * ROUNDS * K };
        const size_t per_leaf = (4096 - PAGE_HDR) / leaf_entry_size(5, 16, true);
        struct btree_hint hint;
        pgno_t root = PGNO_NONE;
        uint64_t pages;
        uint8_t key[5];

        db_open(4096, 256);
        for (uint32_t r = 0; r < ROUNDS; r++) {
                txn_begin();
                btree_hint_clear(&hint);
                for (uint8_t g = 0; g < GROUPS; g++) {
                        for (uint32_t k = 0; k < K; k++) {
                                uint8_t v[16];
                                key[0] = g;
                                put_be32(key + 1, r * K + k);
                                value_fill(v, sizeof(v), r * K + k);
                                cr_assert(
                                    eq(int,
                                       btree_put_hinted(pager, &root, &hint, key, 5, v, sizeof(v)),
                                       SOMBRA_OK));
                        }
                }
                txn_commit();
        }
        cr_assert(eq(u64, expect_pages_accounted(root, &pages), N));
        cr_assert(lt(u64, pages, N / per_leaf * 6 / 5), "%llu pages", (unsigned long long)pages);
}

static int
cmp_u32(const void *a, const void *b)
{
        uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

        return (x > y) - (x < y);
}

/*
 * A sorted batch of random keys puts a few neighbours in a row now and then;
 * those are no run, and the pages stay as full as random inserts leave them.
 */
Test(btree, sorted_batches_of_random_keys_keep_pages_two_thirds_full)
{
        enum { BATCHES = 40, PER = 500, N = BATCHES * PER };
        const size_t per_leaf = (4096 - PAGE_HDR) / leaf_entry_size(4, 16, true);
        uint32_t *keys = malloc(N * sizeof(*keys));
        struct btree_hint hint;
        pgno_t root = PGNO_NONE;
        uint64_t rng = 5, pages;

        cr_assert(not(eq(ptr, keys, NULL)));
        for (size_t i = 0; i < N; i++)
                keys[i] = (uint32_t)support_next_rand(&rng);
        db_open(4096, 256);
        for (size_t b = 0; b < BATCHES; b++) {
                uint32_t *batch = keys + b * PER;
                qsort(batch, PER, sizeof(*batch), cmp_u32);
                txn_begin();
                btree_hint_clear(&hint);
                for (size_t i = 0; i < PER; i++) {
                        uint8_t key[4], v[16];
                        put_be32(key, batch[i]);
                        value_fill(v, sizeof(v), batch[i]);
                        cr_assert(eq(int,
                                     btree_put_hinted(pager, &root, &hint, key, 4, v, sizeof(v)),
                                     SOMBRA_OK));
                }
                txn_commit();
        }
        expect_pages_accounted(root, &pages);
        cr_assert(lt(u64, pages, N / per_leaf * 8 / 5), "%llu pages", (unsigned long long)pages);
        free(keys);
}

/* ---- the structural checks ---- */

static int
count_page(void *arg, pgno_t pgno)
{
        (void)pgno;
        ++*(uint64_t *)arg;
        return SOMBRA_OK;
}

Test(btree, check_reports_keys_out_of_order)
{
        struct page *pg;
        pgno_t root = PGNO_NONE;
        uint64_t entries, pages = 0;
        uint8_t slot0[2];

        db_open(4096, 64);
        txn_begin();
        put_str(&root, "a", "1", 1);
        put_str(&root, "b", "2", 1);
        put_str(&root, "c", "3", 1);
        txn_commit();
        cr_assert(eq(int, btree_check(pager, root, count_page, &pages, &entries), SOMBRA_OK));
        cr_assert(eq(u64, entries, 3));
        cr_assert(eq(int, pager_get(pager, root, &pg), SOMBRA_OK));
        memcpy(slot0, pg->data + PAGE_HDR, 2); /* swap the slots of "a" and "c" */
        memcpy(pg->data + PAGE_HDR, pg->data + PAGE_HDR + 4, 2);
        memcpy(pg->data + PAGE_HDR + 4, slot0, 2);
        pager_unpin(pager, pg);
        cr_assert(eq(int, btree_check(pager, root, count_page, &pages, &entries), SOMBRA_ECORRUPT));
}

/* A leaf holding "a" -> "1" and "b" -> "2", copied into out. */
static void
small_leaf(uint8_t *out)
{
        struct page *pg;
        pgno_t root = PGNO_NONE;

        db_open(4096, 64);
        txn_begin();
        put_str(&root, "a", "1", 1);
        put_str(&root, "b", "2", 1);
        txn_commit();
        cr_assert(eq(int, pager_get(pager, root, &pg), SOMBRA_OK));
        memcpy(out, pg->data, 4096);
        pager_unpin(pager, pg);
        cr_assert(eq(int, btree_page_check(out, 4096), SOMBRA_OK));
}

Test(btree, page_check_rejects_cells_outside_the_page)
{
        uint8_t orig[4096], copy[4096];

        cells = PAGE_CELLS_FIXED;
        small_leaf(orig);
        memcpy(copy, orig, sizeof(copy));

        put_be16(copy + PAGE_HDR, 4096 - 2); /* a slot near the end: the cell runs past it */
        cr_assert(eq(int, btree_page_check(copy, 4096), SOMBRA_ECORRUPT));
        put_be16(copy + PAGE_HDR, PAGE_HDR); /* a slot below `upper`, inside the slot array */
        cr_assert(eq(int, btree_page_check(copy, 4096), SOMBRA_ECORRUPT));
        memcpy(copy, orig, sizeof(copy));
        put_be16(copy + 2, 3000); /* more slots than the page holds */
        cr_assert(eq(int, btree_page_check(copy, 4096), SOMBRA_ECORRUPT));
        memcpy(copy, orig, sizeof(copy));
        put_be16(copy + get_be16(copy + PAGE_HDR), 0); /* an empty key */
        cr_assert(eq(int, btree_page_check(copy, 4096), SOMBRA_ECORRUPT));
        memcpy(copy, orig, sizeof(copy));
        put_be32(copy + get_be16(copy + PAGE_HDR) + 2, 5000); /* a value past the page end */
        cr_assert(eq(int, btree_page_check(copy, 4096), SOMBRA_ECORRUPT));
}

/*
 * The same for varint cells: the last cell of the page ("a" -> "1", at its
 * very end) is 01 'a' 02 '1'. Every length must be a whole varint in its
 * shortest form, and everything it counts must lie inside the page.
 */
Test(btree, page_check_rejects_varint_cells_that_do_not_add_up)
{
        static const uint8_t bad[][4] = {
            {0x00, 'a', 0x02, '1'},  /* an empty key */
            {0x81, 0x00, 0x02, '1'}, /* a key length not in its shortest form */
            {0xff, 0x7f, 0x02, '1'}, /* a key longer than BTREE_MAX_KEY */
            {0x04, 'a', 0x02, '1'},  /* a key running past the page end */
            {0x01, 'a', 0x04, '1'},  /* a value running past it */
            {0x01, 'a', 0x03, '1'},  /* an overflow chain's page number running past it */
            {0x02, 'a', 'b', 0x82},  /* a value length cut short by the page end */
            {0x01, 'a', 0x82, 0x00}, /* ... or not in its shortest form */
        };
        static const uint8_t good[4] = {0x01, 'a', 0x02, '1'};
        uint8_t orig[4096], copy[4096];
        uint16_t last;

        small_leaf(orig);
        cr_assert(eq(u8, orig[1], PAGE_CELLS_VARINT));
        last = get_be16(orig + PAGE_HDR);
        cr_assert(eq(u16, last, 4096 - 4));
        cr_assert(eq(int, memcmp(orig + last, good, sizeof(good)), 0));
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                memcpy(copy, orig, sizeof(copy));
                memcpy(copy + last, bad[i], 4);
                cr_assert(eq(int, btree_page_check(copy, 4096), SOMBRA_ECORRUPT), "case %zu", i);
        }
        memcpy(copy, orig, sizeof(copy));
        put_be16(copy + 2, 100); /* 100 slots, all on one cell: more cells than the page holds */
        for (int i = 0; i < 100; i++)
                put_be16(copy + PAGE_HDR + 2 * i, last);
        cr_assert(eq(int, btree_page_check(copy, 4096), SOMBRA_ECORRUPT));
        memcpy(copy, orig, sizeof(copy));
        copy[1] = 2; /* a layout nobody knows */
        cr_assert(eq(int, btree_page_check(copy, 4096), SOMBRA_ECORRUPT));
        memcpy(copy, orig, sizeof(copy));
        copy[0] = PAGE_BRANCH; /* varint cells are for leaves only */
        cr_assert(eq(int, btree_page_check(copy, 4096), SOMBRA_ECORRUPT));
}

/*
 * Every leaf of a file has the file's layout: a pager told the other one
 * refuses the leaf rather than read its cells wrongly.
 */
Test(btree, a_leaf_of_the_other_layout_is_corrupt)
{
        pgno_t root = PGNO_NONE;

        cells = PAGE_CELLS_FIXED;
        db_open(4096, 64);
        txn_begin();
        put_str(&root, "a", "1", 1);
        txn_commit();
        checkpoint();
        cells = PAGE_CELLS_VARINT;
        reopen(64);
        cr_assert(eq(int, btree_get(pager, root, "a", 1, &val), SOMBRA_ECORRUPT));
}

/* ---- bottom-up building ---- */

/* Opens the pager over the built file as a checkpointed database of `pages` pages. */
static void
built_open(uint32_t page_size, uint64_t pages)
{
        pager_open(page_size, 64, pages, 1);
}

/*
 * Builds a tree of the model's first n keys (made present, values drawn as
 * in the random workload) into the file, from page 2 on, and opens it.
 * Returns the root.
 */
static pgno_t
build_model(struct model *m, size_t n, uint32_t page_size, uint64_t *rng)
{
        struct btree_build_out out = {&file, page_size, 1, 2, cells};
        struct btree_builder *b;
        pgno_t root;

        cr_assert(eq(int, io_open(&file, support_path("built"), true), SOMBRA_OK));
        cr_assert(eq(int, btree_build_begin(&out, &b), SOMBRA_OK));
        for (size_t i = 0; i < n; i++) {
                uint8_t *v;
                m->present[i] = true;
                m->vlen[i] = pick_vlen(rng, page_size, m->len[i]);
                m->vseed[i] = i + 1;
                v = value_make(m->vlen[i], m->vseed[i]);
                cr_assert(eq(int, btree_build_add(b, model_key(m, i), m->len[i], v, m->vlen[i]),
                             SOMBRA_OK));
                free(v);
        }
        m->count = n;
        cr_assert(eq(int, btree_build_end(b, &root), SOMBRA_OK));
        built_open(page_size, out.next);
        return root;
}

/*
 * The built file is packed: as many leaves as filling them in key order, each
 * up to the last cell that fits, takes; as many overflow pages as the values
 * need; and no branch with a single child (no keys).
 */
static void
expect_packed(const struct model *m, size_t n, uint32_t page_size)
{
        uint64_t leaves = 0, want_leaves = 0, ovf = 0, want_ovf = 0;
        size_t room = 0;

        for (size_t i = 0; i < n; i++) {
                bool inl = m->vlen[i] <= inline_max(page_size, m->len[i]);
                size_t cell = leaf_entry_size(m->len[i], m->vlen[i], inl);
                if (want_leaves == 0 || room < cell) {
                        want_leaves++;
                        room = page_size - PAGE_HDR;
                }
                room -= cell;
                if (!inl)
                        want_ovf += overflow_pages(page_size, m->vlen[i]);
        }
        for (pgno_t pgno = 2; pgno < pager_npages(pager); pgno++) {
                struct page *pg;
                cr_assert(eq(int, pager_get(pager, pgno, &pg), SOMBRA_OK));
                leaves += page_type(pg) == PAGE_LEAF;
                ovf += page_type(pg) == PAGE_OVERFLOW;
                if (page_type(pg) == PAGE_BRANCH && get_be16(pg->data + 2) == 0)
                        cr_fatal("%zu entries: branch page %llu has one child", n,
                                 (unsigned long long)pgno);
                pager_unpin(pager, pg);
        }
        cr_assert(eq(u64, leaves, want_leaves), "%zu entries", n);
        cr_assert(eq(u64, ovf, want_ovf), "%zu entries", n);
}

Test(btree, a_tree_built_bottom_up_holds_every_entry_in_full_pages_and_no_free_one)
{
        uint64_t rng = 21;

        for (uint32_t ps = 4096; ps <= 16384; ps *= 4) {
                struct snapshot now;
                pgno_t root;
                model_make(&model, 20000, &rng);
                root = build_model(&model, model.n, ps, &rng);
                now = model_now(&model);
                /* Every key and value, and every page of the file in the tree, each once. */
                expect_tree_matches(&model, root, &now);
                expect_packed(&model, model.n, ps);
                pager_destroy(pager);
                pager = NULL;
                io_close(&file);
                support_remove("built");
                model_free(&model);
        }
}

/*
 * Every size from none to a few levels, with 4 entries a leaf and 31
 * children a branch, so that the last page of a branch level sometimes gets
 * a single child, which must not stay alone.
 */
Test(btree, built_trees_of_every_size_are_whole_and_packed)
{
        enum { KEY = 120, VAL = 800, MAX = 4000 };
        uint8_t *bytes = malloc((size_t)MAX * KEY);

        cr_assert(not(eq(ptr, bytes, NULL)));
        model_alloc(&model, MAX, (size_t)MAX * KEY);
        for (size_t i = 0; i < MAX; i++) {
                model.off[i] = i * KEY;
                model.len[i] = KEY;
                memset(model.bytes + i * KEY, 'k', KEY);
                put_be32(model.bytes + i * KEY, (uint32_t)i);
        }
        for (size_t n = 0; n <= MAX; n += n < 300 ? 1 : n < 3940 ? 97 : 3) {
                struct btree_build_out out = {&file, 4096, 1, 2, cells};
                struct btree_builder *b;
                pgno_t root;
                uint64_t entries = 0, pages = 0;
                cr_assert(eq(int, io_open(&file, support_path("built"), true), SOMBRA_OK));
                cr_assert(eq(int, btree_build_begin(&out, &b), SOMBRA_OK));
                for (size_t i = 0; i < n; i++) {
                        model.vlen[i] = VAL;
                        model.vseed[i] = i;
                        value_fill(bytes, VAL, i);
                        cr_assert(eq(int, btree_build_add(b, model_key(&model, i), KEY, bytes, VAL),
                                     SOMBRA_OK));
                }
                cr_assert(eq(int, btree_build_end(b, &root), SOMBRA_OK));
                cr_assert(eq(int, root == PGNO_NONE, n == 0));
                built_open(4096, out.next);
                cr_assert(
                    eq(int, btree_check(pager, root, count_page, &pages, &entries), SOMBRA_OK));
                cr_assert(eq(u64, entries, n));
                cr_assert(eq(u64, pages, out.next - 2), "%zu entries: pages not in the tree", n);
                if (n > 0) {
                        cr_assert(eq(int,
                                     btree_get(pager, root, model_key(&model, n - 1), KEY, &val),
                                     SOMBRA_OK));
                        expect_value(&val, VAL, n - 1, "the last key");
                }
                expect_packed(&model, n, 4096);
                pager_destroy(pager);
                pager = NULL;
                io_close(&file);
                support_remove("built");
        }
        free(bytes);
}

Test(btree, building_refuses_keys_out_of_order_and_bad_entries)
{
        struct btree_build_out out = {&file, 4096, 1, 2, cells};
        struct btree_builder *b;
        static uint8_t big[SOMBRA_MAX_RECORD + 1];
        pgno_t root;

        cr_assert(eq(int, io_open(&file, support_path("built"), true), SOMBRA_OK));
        cr_assert(eq(int, btree_build_begin(&out, &b), SOMBRA_OK));
        cr_assert(eq(int, btree_build_add(b, "b", 1, "1", 1), SOMBRA_OK));
        cr_assert(eq(int, btree_build_add(b, "b", 1, "2", 1), SOMBRA_EINVAL));
        cr_assert(eq(int, btree_build_add(b, "a", 1, "2", 1), SOMBRA_EINVAL));
        cr_assert(eq(int, btree_build_add(b, "", 0, "2", 1), SOMBRA_EINVAL));
        cr_assert(eq(int, btree_build_add(b, "c", 1, NULL, 1), SOMBRA_EINVAL));
        cr_assert(eq(int, btree_build_add(b, "c", 1, big, sizeof(big)), SOMBRA_ETOOBIG));
        /* None of them took a page: the tree is still the one entry. */
        cr_assert(eq(int, btree_build_add(b, "ba", 2, NULL, 0), SOMBRA_OK));
        cr_assert(eq(int, btree_build_end(b, &root), SOMBRA_OK));
        cr_assert(eq(u64, out.next, 3));
        built_open(4096, out.next);
        cr_assert(eq(int, btree_get(pager, root, "b", 1, &val), SOMBRA_OK));
        cr_assert(eq(int, btree_get(pager, root, "ba", 2, &val), SOMBRA_OK));
        cr_assert(eq(sz, val.len, 0));
}

/*
 * The smallest entries: a varint cell of a 2-byte key and an empty value is
 * 4 bytes, 6 with its slot, so a 4 KiB leaf holds 676 of them. Splits and
 * compactions list every cell of a page, and their lists must hold them.
 */
Test(btree, leaves_of_the_smallest_varint_cells_split_and_compact)
{
        enum { N = 3000 };
        pgno_t root = PGNO_NONE;
        uint64_t entries = 0;

        db_open(4096, 256);
        txn_begin();
        for (uint32_t j = 0; j < N; j++) {
                uint32_t k = (j * 7919u) % N;
                uint8_t key[2] = {(uint8_t)((k >> 8) + 1), (uint8_t)k};
                cr_assert(eq(int, btree_put(pager, &root, key, 2, "", 0), SOMBRA_OK));
        }
        txn_commit();
        entries = expect_pages_accounted(root, NULL);
        cr_assert(eq(u64, entries, N));
        for (uint32_t k = 0; k < N; k++) {
                uint8_t key[2] = {(uint8_t)((k >> 8) + 1), (uint8_t)k};
                cr_assert(eq(int, btree_get(pager, root, key, 2, &val), SOMBRA_OK), "get %u", k);
        }
}

/* ---- the walk ---- */

/* A visitor that counts and always goes on, even into a page it met before. */
static int
count_visit(void *arg, const struct page *pg, bool *descend)
{
        (void)pg;
        *descend = true;
        ++*(uint64_t *)arg;
        return SOMBRA_OK;
}

/*
 * A branch whose children all point back to it: every level would hold the
 * one before times its fan-out. The walk refuses a level larger than the
 * file instead of growing it level by level up to BTREE_MAX_DEPTH.
 */
Test(btree, a_walk_refuses_a_level_larger_than_the_file)
{
        struct page *pg;
        pgno_t root = PGNO_NONE;
        uint64_t visits = 0;
        char key[16];

        db_open(4096, 256);
        txn_begin();
        for (int i = 0; i < 400; i++) {
                snprintf(key, sizeof(key), "key%05d", i);
                put_str(&root, key, "value", 5);
        }
        txn_commit();
        cr_assert(eq(int, btree_walk(pager, &root, 1, count_visit, &visits), SOMBRA_OK));
        cr_assert(eq(u64, visits, pager_npages(pager) - 2), "every page but the meta pages, once");
        cr_assert(eq(int, pager_get(pager, root, &pg), SOMBRA_OK));
        cr_assert(eq(u8, pg->data[0], PAGE_BRANCH));
        put_be64(pg->data + 32, root); /* the leftmost child, then every cell's */
        for (uint32_t i = 0; i < get_be16(pg->data + 2); i++)
                put_be64(pg->data + get_be16(pg->data + PAGE_HDR + 2 * i) + 2, root);
        pager_unpin(pager, pg);
        visits = 0;
        cr_assert(eq(int, btree_walk(pager, &root, 1, count_visit, &visits), SOMBRA_ECORRUPT));
        cr_assert(lt(u64, visits, 2 * pager_npages(pager)), "%" PRIu64 " visits", visits);
}
