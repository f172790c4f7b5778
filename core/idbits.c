/*
 * idbits.c - a set of ids as a bitmap in chunks (see idbits.h).
 *
 * Id x is bit x % 64 of word (x % IDBITS_CHUNK) / 64 of chunk
 * x / IDBITS_CHUNK. The slot array grows to the largest chunk index added;
 * clearing frees the chunks rather than zeroing them, so that emptying a
 * large set costs a free per chunk and the memory of chunks that are not
 * needed again goes back.
 */
#include "idbits.h"

#include <stdlib.h>

#include "sombra.h"

#define CHUNK_WORDS (IDBITS_CHUNK / 64)

bool
idbits_has(const struct idbits *b, uint64_t id)
{
        uint64_t i = id / IDBITS_CHUNK, bit = id % IDBITS_CHUNK;

        if (i >= b->nslots || b->chunks[i] == NULL)
                return false;
        return (b->chunks[i][bit / 64] >> (bit % 64)) & 1;
}

/* Makes slot i exist. */
static int
slots_grow(struct idbits *b, size_t i)
{
        size_t n = b->nslots ? b->nslots : 1;
        uint64_t **v;

        while (n <= i)
                n *= 2;
        v = realloc(b->chunks, n * sizeof(*v));
        if (v == NULL)
                return SOMBRA_ENOMEM;
        for (size_t k = b->nslots; k < n; k++)
                v[k] = NULL;
        b->chunks = v;
        b->nslots = n;
        return SOMBRA_OK;
}

int
idbits_add(struct idbits *b, uint64_t id)
{
        uint64_t i = id / IDBITS_CHUNK, bit = id % IDBITS_CHUNK;
        int rc;

        if (id >= IDBITS_MAX_ID)
                return SOMBRA_ENOSPC;
        if (i >= b->nslots) {
                rc = slots_grow(b, (size_t)i);
                if (rc != SOMBRA_OK)
                        return rc;
        }
        if (b->chunks[i] == NULL) {
                if (b->made == IDBITS_MAX_CHUNKS)
                        return SOMBRA_ENOSPC;
                b->chunks[i] = calloc(CHUNK_WORDS, sizeof(uint64_t));
                if (b->chunks[i] == NULL)
                        return SOMBRA_ENOMEM;
                b->made++;
        }
        b->chunks[i][bit / 64] |= 1ull << (bit % 64);
        return SOMBRA_OK;
}

void
idbits_remove(struct idbits *b, uint64_t id)
{
        uint64_t i = id / IDBITS_CHUNK, bit = id % IDBITS_CHUNK;

        if (i < b->nslots && b->chunks[i] != NULL)
                b->chunks[i][bit / 64] &= ~(1ull << (bit % 64));
}

void
idbits_clear(struct idbits *b)
{
        for (size_t i = 0; i < b->nslots && b->made > 0; i++) {
                if (b->chunks[i] != NULL) {
                        free(b->chunks[i]);
                        b->chunks[i] = NULL;
                        b->made--;
                }
        }
}

void
idbits_free(struct idbits *b)
{
        idbits_clear(b);
        free(b->chunks);
        *b = (struct idbits)IDBITS_INIT;
}
