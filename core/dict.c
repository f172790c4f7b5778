/*
 * dict.c - the in-memory name table (see dict.h) and its two trees.
 *
 * The hash table holds ids, not names: a slot's name is found through the
 * chunk array, so the table is 4 bytes a slot and rehashing moves no strings.
 * Linear probing, kept at most half full. Only the writer touches the table;
 * readers on other threads use dict_get, which reads `count` atomically.
 */
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "sombra.h"
#include "dict.h"
#include "zpages.h"

static uint64_t
name_hash(const char *name, size_t len)
{
        return XXH3_64bits(name, len);
}

const struct dict_name *
dict_get(const struct dict *d, uint32_t id)
{
        /* Readers on other threads: the acquire pairs with dict_add's release. */
        if (id == 0 || id > __atomic_load_n(&d->count, __ATOMIC_ACQUIRE))
                return NULL;
        return d->chunks[(id - 1) / DICT_CHUNK][(id - 1) % DICT_CHUNK];
}

static bool
name_eq(const struct dict_name *n, const char *name, size_t len)
{
        return n->len == len && memcmp(n->text, name, len) == 0;
}

static void
table_insert(struct dict *d, uint32_t id)
{
        const struct dict_name *n = dict_get(d, id);
        uint32_t mask = d->table_cap - 1, i = (uint32_t)name_hash(n->text, n->len) & mask;

        while (d->table[i] != 0)
                i = (i + 1) & mask;
        d->table[i] = id;
}

static int
table_grow(struct dict *d)
{
        uint32_t cap = d->table_cap ? d->table_cap * 2 : 1024;
        uint32_t *old = d->table;

        d->table = calloc(cap, sizeof(*d->table));
        if (d->table == NULL) {
                d->table = old;
                return SOMBRA_ENOMEM;
        }
        d->table_cap = cap;
        for (uint32_t id = 1; id <= d->count; id++)
                table_insert(d, id);
        free(old);
        return SOMBRA_OK;
}

int
dict_lookup(const struct dict *d, const char *name, size_t len, uint32_t *id)
{
        uint32_t mask, i;

        if (d->table_cap == 0)
                return SOMBRA_ENOTFOUND;
        mask = d->table_cap - 1;
        for (i = (uint32_t)name_hash(name, len) & mask; d->table[i] != 0; i = (i + 1) & mask) {
                if (name_eq(dict_get(d, d->table[i]), name, len)) {
                        *id = d->table[i];
                        return SOMBRA_OK;
                }
        }
        return SOMBRA_ENOTFOUND;
}

/* Appends a name as id count + 1. */
static int
dict_add(struct dict *d, const char *name, size_t len)
{
        uint32_t id = d->count + 1, c = (id - 1) / DICT_CHUNK;
        struct dict_name *n;

        if (c >= DICT_CHUNKS)
                return SOMBRA_ETOOBIG;
        /* Readers look only below `count`, released after the slots are in place. */
        if (d->chunks == NULL) {
                d->chunks = zpages_alloc(DICT_CHUNKS, sizeof(*d->chunks));
                if (d->chunks == NULL)
                        return SOMBRA_ENOMEM;
        }
        if ((uint64_t)(d->count + 1) * 2 > d->table_cap) {
                int rc = table_grow(d);
                if (rc != SOMBRA_OK)
                        return rc;
        }
        if (d->chunks[c] == NULL) {
                d->chunks[c] = calloc(DICT_CHUNK, sizeof(*d->chunks[c]));
                if (d->chunks[c] == NULL)
                        return SOMBRA_ENOMEM;
        }
        n = malloc(sizeof(*n) + len + 1);
        if (n == NULL)
                return SOMBRA_ENOMEM;
        n->len = (uint32_t)len;
        memcpy(n->text, name, len);
        n->text[len] = '\0';
        d->chunks[c][(id - 1) % DICT_CHUNK] = n;
        __atomic_store_n(&d->count, id, __ATOMIC_RELEASE); /* the name first, then its id */
        table_insert(d, id);
        return SOMBRA_OK;
}

int
dict_name_check(const char *name, size_t *len)
{
        size_t n;

        if (name == NULL)
                return SOMBRA_EINVAL;
        n = strnlen(name, SOMBRA_MAX_NAME + 1);
        if (n == 0)
                return SOMBRA_EINVAL;
        if (n > SOMBRA_MAX_NAME)
                return SOMBRA_ETOOBIG;
        *len = n;
        return SOMBRA_OK;
}

/* Whether name is the stored text: read only up to the first byte that differs. */
static bool
same_text(const char *stored, const char *name)
{
        for (size_t i = 0;; i++) {
                if (stored[i] != name[i])
                        return false;
                if (stored[i] == '\0')
                        return true;
        }
}

/*
 * A batch repeats the same few names, a node's label and keys or an edge's
 * type, a thousand times over. Those the writer interned last are compared
 * first, which costs neither the length scan nor the hash of a lookup (a
 * tenth of the writer's time in a load of nodes). A name found here is one
 * the dict holds, so it needs no check. An id that dict_truncate forgot is
 * harmless: its text is looked up again each time, and is either gone or
 * the name that took the id since.
 */
static bool
recent_find(const struct dict *d, const char *name, uint32_t *id)
{
        for (uint32_t i = 0; i < DICT_RECENT; i++) {
                const struct dict_name *n = dict_get(d, d->recent[i]);
                if (n != NULL && same_text(n->text, name)) {
                        *id = d->recent[i];
                        return true;
                }
        }
        return false;
}

static void
recent_note(struct dict *d, uint32_t id)
{
        d->recent[d->recent_next] = id;
        d->recent_next = (d->recent_next + 1) % DICT_RECENT;
}

static int
intern_new(struct dict *d, struct store *s, const char *name, size_t len, uint32_t *id)
{
        struct store_state *st = store_txn_state(s);
        uint8_t key[4];
        int rc;

        if (st->next_name != d->count + 1)
                return SOMBRA_ECORRUPT;
        put_be32(key, st->next_name);
        rc = store_put(s, TREE_NAMES, name, len, key, 4);
        if (rc == SOMBRA_OK)
                rc = store_put(s, TREE_NAME_IDS, key, 4, name, len);
        if (rc == SOMBRA_OK)
                rc = dict_add(d, name, len);
        if (rc != SOMBRA_OK)
                return rc;
        *id = st->next_name++;
        return SOMBRA_OK;
}

/*
 * A batch stores each of its recent names once (copy_name, pool/batch.c), so
 * every node of a load hands the writer the same few pointers for its label
 * and keys. The memo maps such a pointer to the name it held last time, one
 * slot per pointer by its address: a hit is one compare of the text instead
 * of the walk through the recent ids. The text is still compared with the
 * id's name, as the memory behind a pointer may hold another name by then
 * (a batch reset writes over its names), and an id that dict_truncate
 * forgot may name another name since, as in recent_find.
 */
static struct dict_memo *
memo_slot(struct dict *d, const char *name)
{
        /*
         * A batch's names are 16-byte aligned (its arena's): the bits above
         * those tell them apart. Any other pointer works too, only less evenly.
         */
        return &d->memo[((uintptr_t)name >> 4) % DICT_MEMO];
}

int
dict_intern(struct dict *d, struct store *s, const char *name, uint32_t *id)
{
        const struct dict_name *n;
        struct dict_memo *m;
        size_t len;
        int rc;

        if (name == NULL)
                return SOMBRA_EINVAL;
        m = memo_slot(d, name);
        if (m->ptr == name && (n = dict_get(d, m->id)) != NULL && same_text(n->text, name)) {
                *id = m->id;
                return SOMBRA_OK;
        }
        if (!recent_find(d, name, id)) {
                rc = dict_name_check(name, &len);
                if (rc == SOMBRA_OK && dict_lookup(d, name, len, id) != SOMBRA_OK)
                        rc = intern_new(d, s, name, len, id);
                if (rc != SOMBRA_OK)
                        return rc;
                recent_note(d, *id);
        }
        *m = (struct dict_memo){.ptr = name, .id = *id};
        return SOMBRA_OK;
}

static void
bury(struct dict *d, struct dict_name *n)
{
        if (d->ndead == d->dead_cap) {
                size_t cap = d->dead_cap ? d->dead_cap * 2 : 16;
                struct dict_name **v = realloc(d->dead, cap * sizeof(*v));
                if (v == NULL)
                        return; /* out of memory: leaking the name is the safe choice */
                d->dead = v;
                d->dead_cap = cap;
        }
        d->dead[d->ndead++] = n;
}

void
dict_truncate(struct dict *d, uint32_t count)
{
        if (count >= d->count)
                return;
        while (d->count > count) {
                uint32_t id = d->count;
                struct dict_name **slot = &d->chunks[(id - 1) / DICT_CHUNK][(id - 1) % DICT_CHUNK];
                bury(d, *slot);
                *slot = NULL;
                __atomic_store_n(&d->count, d->count - 1, __ATOMIC_RELEASE);
        }
        if (d->table != NULL)
                memset(d->table, 0, d->table_cap * sizeof(*d->table));
        for (uint32_t id = 1; id <= d->count; id++)
                table_insert(d, id);
}

int
dict_load(struct dict *d, struct store *s)
{
        struct btree_cursor c;
        struct buf val = BUF_INIT;
        int rc;

        store_cursor(s, store_committed(s), TREE_NAME_IDS, &c);
        rc = btree_cursor_seek(&c, NULL, 0);
        while (rc == SOMBRA_OK && btree_cursor_valid(&c)) {
                const uint8_t *k;
                size_t klen;
                btree_cursor_key(&c, &k, &klen);
                rc = btree_cursor_value(&c, &val);
                if (rc != SOMBRA_OK)
                        break;
                if (klen != 4 || get_be32(k) != d->count + 1 || val.len == 0 ||
                    val.len > SOMBRA_MAX_NAME || memchr(val.data, 0, val.len) != NULL) {
                        rc = SOMBRA_ECORRUPT;
                        break;
                }
                rc = dict_add(d, (const char *)val.data, val.len);
                if (rc == SOMBRA_OK)
                        rc = btree_cursor_next(&c);
        }
        btree_cursor_close(&c);
        buf_free(&val);
        if (rc == SOMBRA_OK && d->count + 1 != store_committed(s)->next_name)
                rc = SOMBRA_ECORRUPT;
        return rc;
}

void
dict_free(struct dict *d)
{
        dict_truncate(d, 0);
        for (size_t i = 0; i < d->ndead; i++)
                free(d->dead[i]);
        free(d->dead);
        for (uint32_t c = 0; d->chunks != NULL && c < DICT_CHUNKS; c++)
                free(d->chunks[c]);
        zpages_free(d->chunks, DICT_CHUNKS, sizeof(*d->chunks));
        free(d->table);
        memset(d, 0, sizeof(*d));
}
