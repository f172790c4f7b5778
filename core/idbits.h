/*
 * idbits.h - a set of ids kept as a bitmap, in chunks made on first use.
 *
 * For ids handed out densely from 1 up (node ids): a member costs one bit,
 * a lookup one load and a shift, and the memory follows the largest ids
 * present, IDBITS_CHUNK ids (a page-sized chunk) at a time. Where an idset
 * (idset.h) hashes every id into a table that doubles and rehashes as it
 * grows, this set of 20,000 nodes is a single 8 KiB chunk.
 *
 * A set holds ids below IDBITS_MAX_ID in at most IDBITS_MAX_CHUNKS chunks
 * (16 MiB); it is meant as a cache of facts that can be looked up again, so
 * an id beyond either bound is simply not kept (idbits_add says so).
 *
 * Not thread-safe: one owner at a time.
 */
#ifndef SOMBRA_IDBITS_H
#define SOMBRA_IDBITS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IDBITS_CHUNK      (1u << 16) /* ids a chunk covers: 8 KiB of bits */
#define IDBITS_MAX_ID     (1ull << 32)
#define IDBITS_MAX_CHUNKS 2048u

struct idbits {
        uint64_t **chunks; /* chunks[i] covers ids from i * IDBITS_CHUNK; NULL: none of them */
        size_t nslots;     /* entries in chunks[] */
        size_t made;       /* chunks allocated */
};

#define IDBITS_INIT                                                                                \
        {                                                                                          \
                NULL, 0, 0                                                                         \
        }

bool idbits_has(const struct idbits *b, uint64_t id);

/*
 * Adds id. SOMBRA_ENOMEM (set unchanged), or SOMBRA_ENOSPC for an id the
 * bounds above keep out: either way the caller may go on without it.
 */
int idbits_add(struct idbits *b, uint64_t id);

void idbits_remove(struct idbits *b, uint64_t id);

/* Empties the set and returns its chunks. */
void idbits_clear(struct idbits *b);

void idbits_free(struct idbits *b);

#endif
