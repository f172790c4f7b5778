/*
 * idset.c - an open-addressing hash map from 64-bit ids to 64-bit values.
 *
 * Design
 *   keys[] and vals[] are the two halves of one allocation of 2 * cap words
 *   (vals == keys + cap), so growing either succeeds or fails as a whole. A
 *   free slot holds IDSET_EMPTY in keys[]; its vals[] word is meaningless.
 *
 *   A key's home slot is mix(key) & (cap - 1). Ids are often dense or share
 *   low bits (page numbers, sequential node ids), so they go through a full
 *   64-bit finaliser (splitmix64) before masking. Collisions probe forward
 *   one slot at a time, wrapping at the end.
 *
 *   Invariants:
 *     - cap is 0 or a power of two >= IDSET_MIN_CAP, and count <= cap / 2,
 *       so every probe sequence reaches an empty slot;
 *     - every key sits at its home slot or after it with no empty slot in
 *       between (the run property that lookups rely on).
 *
 *   Deletion keeps the run property without tombstones (backward shift):
 *   after emptying a slot, the entries after it in the same run move back
 *   into the hole whenever the hole lies between their home and their slot.
 *
 * Threads
 *   None: one owner at a time.
 */
#include "idset.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "sombra.h"

#define IDSET_MIN_CAP 16u

static uint64_t
mix(uint64_t x)
{
        x ^= x >> 30;
        x *= 0xbf58476d1ce4e5b9ull;
        x ^= x >> 27;
        x *= 0x94d049bb133111ebull;
        x ^= x >> 31;
        return x;
}

static size_t
home_slot(const struct idset *s, uint64_t key)
{
        return (size_t)mix(key) & (s->cap - 1);
}

/*
 * The slot holding key, or the empty slot where it would go. The set must
 * have at least one slot.
 */
static size_t
find_slot(const struct idset *s, uint64_t key)
{
        size_t mask = s->cap - 1;
        size_t i = home_slot(s, key);

        while (s->keys[i] != key && s->keys[i] != IDSET_EMPTY)
                i = (i + 1) & mask;
        return i;
}

/* Moves every entry into a fresh table of newcap slots. */
static int
resize(struct idset *s, size_t newcap)
{
        struct idset grown = {NULL, NULL, newcap, s->count};

        if (newcap > SIZE_MAX / (2 * sizeof(uint64_t)))
                return SOMBRA_ENOMEM;
        grown.keys = malloc(newcap * 2 * sizeof(uint64_t));
        if (grown.keys == NULL)
                return SOMBRA_ENOMEM;
        grown.vals = grown.keys + newcap;
        memset(grown.keys, 0xff, newcap * sizeof(uint64_t));

        for (size_t i = 0; i < s->cap; i++) {
                size_t j;

                if (s->keys[i] == IDSET_EMPTY)
                        continue;
                j = find_slot(&grown, s->keys[i]);
                grown.keys[j] = s->keys[i];
                grown.vals[j] = s->vals[i];
        }
        free(s->keys);
        *s = grown;
        return SOMBRA_OK;
}

int
idset_put(struct idset *s, uint64_t key, uint64_t val, bool *added)
{
        size_t i;
        int rc;

        if (key == IDSET_EMPTY)
                return SOMBRA_EINVAL;

        if (s->cap > 0) {
                i = find_slot(s, key);
                if (s->keys[i] == key) {
                        s->vals[i] = val;
                        if (added != NULL)
                                *added = false;
                        return SOMBRA_OK;
                }
        }
        if (s->count + 1 > s->cap / 2) {
                if (s->cap > SIZE_MAX / 2)
                        return SOMBRA_ENOMEM;
                rc = resize(s, s->cap == 0 ? IDSET_MIN_CAP : s->cap * 2);
                if (rc != SOMBRA_OK)
                        return rc;
        }
        i = find_slot(s, key);
        s->keys[i] = key;
        s->vals[i] = val;
        s->count++;
        if (added != NULL)
                *added = true;
        return SOMBRA_OK;
}

bool
idset_get(const struct idset *s, uint64_t key, uint64_t *val)
{
        size_t i;

        if (s->cap == 0 || key == IDSET_EMPTY)
                return false;
        i = find_slot(s, key);
        if (s->keys[i] != key)
                return false;
        if (val != NULL)
                *val = s->vals[i];
        return true;
}

bool
idset_del(struct idset *s, uint64_t key)
{
        size_t mask = s->cap - 1;
        size_t hole, j;

        if (s->cap == 0 || key == IDSET_EMPTY)
                return false;
        hole = find_slot(s, key);
        if (s->keys[hole] != key)
                return false;

        for (j = (hole + 1) & mask; s->keys[j] != IDSET_EMPTY; j = (j + 1) & mask) {
                size_t home = home_slot(s, s->keys[j]);

                /*
                 * The entry at j may move back to the hole only if its home
                 * is not cyclically inside (hole, j]: then the hole lies on
                 * its probe path, and filling it keeps the run unbroken.
                 */
                if (((j - home) & mask) >= ((j - hole) & mask)) {
                        s->keys[hole] = s->keys[j];
                        s->vals[hole] = s->vals[j];
                        hole = j;
                }
        }
        s->keys[hole] = IDSET_EMPTY;
        s->count--;
        return true;
}

void
idset_clear(struct idset *s)
{
        if (s->cap > 0)
                memset(s->keys, 0xff, s->cap * sizeof(uint64_t));
        s->count = 0;
}

void
idset_free(struct idset *s)
{
        free(s->keys);
        s->keys = NULL;
        s->vals = NULL;
        s->cap = 0;
        s->count = 0;
}

bool
idset_next(const struct idset *s, size_t *pos, uint64_t *key, uint64_t *val)
{
        for (size_t i = *pos; i < s->cap; i++) {
                if (s->keys[i] == IDSET_EMPTY)
                        continue;
                *key = s->keys[i];
                if (val != NULL)
                        *val = s->vals[i];
                *pos = i + 1;
                return true;
        }
        *pos = s->cap;
        return false;
}
