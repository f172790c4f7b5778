/*
 * idset.h - an open-addressing hash map from 64-bit ids to 64-bit values.
 *
 * Serves traversals (visited sets, BFS parents), verify (pages seen) and the
 * pager (pages allocated since the last checkpoint). Keys are any uint64_t
 * except IDSET_EMPTY. Linear probing, power-of-two capacity, grows at 1/2 load.
 * Not thread-safe: one owner at a time.
 */
#ifndef SOMBRA_IDSET_H
#define SOMBRA_IDSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IDSET_EMPTY UINT64_MAX

struct idset {
        uint64_t *keys;
        uint64_t *vals;
        size_t cap;   /* slots, a power of two, or 0 before the first insert */
        size_t count; /* keys present */
};

#define IDSET_INIT                                                                                 \
        {                                                                                          \
                NULL, NULL, 0, 0                                                                   \
        }

/*
 * Inserts key -> val, or overwrites val when key is present. *added (if not
 * NULL) tells which. SOMBRA_ENOMEM on failure (set unchanged); SOMBRA_EINVAL
 * for IDSET_EMPTY.
 */
int idset_put(struct idset *s, uint64_t key, uint64_t val, bool *added);
/* True and *val (if not NULL) set when key is present. */
bool idset_get(const struct idset *s, uint64_t key, uint64_t *val);
/* Removes key; true if it was present (backward-shift deletion, no tombstones). */
bool idset_del(struct idset *s, uint64_t key);
/* Empties the set, keeping its memory. */
void idset_clear(struct idset *s);
void idset_free(struct idset *s);

/*
 * Iteration: start with *pos = 0; each call returns true with the next key
 * and value until none is left. The set must not change during iteration.
 */
bool idset_next(const struct idset *s, size_t *pos, uint64_t *key, uint64_t *val);

#endif
