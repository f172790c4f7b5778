/*
 * buf.c - a growable byte buffer owned by its user.
 *
 * Design
 *   The capacity at least doubles on every growth, starting at BUF_MIN_CAP,
 *   so appending n bytes one at a time costs O(n) copies in total. Every
 *   growth goes through buf_reserve, which either succeeds or leaves the
 *   buffer exactly as it was; an append that cannot grow appends nothing.
 *
 *   Invariants: len <= cap; data is NULL exactly when cap is 0.
 *
 * Threads
 *   None of its own: a buffer belongs to one thread at a time.
 */
#include "buf.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sombra.h"

#define BUF_MIN_CAP 64u
/* No object may be larger than PTRDIFF_MAX; buf_reserve refuses before asking realloc. */
#define BUF_MAX_CAP ((size_t)PTRDIFF_MAX)

int
buf_reserve(struct buf *b, size_t cap)
{
        size_t newcap;
        uint8_t *data;

        assert(b != NULL && b->len <= b->cap);
        if (cap <= b->cap)
                return SOMBRA_OK;
        if (cap > BUF_MAX_CAP)
                return SOMBRA_ENOMEM;

        newcap = b->cap < BUF_MIN_CAP ? BUF_MIN_CAP : b->cap;
        while (newcap < cap)
                newcap = newcap > BUF_MAX_CAP / 2 ? cap : newcap * 2;

        data = realloc(b->data, newcap);
        if (data == NULL)
                return SOMBRA_ENOMEM;
        b->data = data;
        b->cap = newcap;
        return SOMBRA_OK;
}

int
buf_append(struct buf *b, const void *data, size_t len)
{
        int rc;

        if (len == 0)
                return SOMBRA_OK;
        if (len > SIZE_MAX - b->len)
                return SOMBRA_ENOMEM;
        rc = buf_reserve(b, b->len + len);
        if (rc != SOMBRA_OK)
                return rc;
        memcpy(b->data + b->len, data, len);
        b->len += len;
        return SOMBRA_OK;
}

int
buf_put_u8(struct buf *b, uint8_t v)
{
        return buf_append(b, &v, 1);
}

int
buf_put_u16(struct buf *b, uint16_t v)
{
        uint8_t p[2];

        put_be16(p, v);
        return buf_append(b, p, sizeof(p));
}

int
buf_put_u32(struct buf *b, uint32_t v)
{
        uint8_t p[4];

        put_be32(p, v);
        return buf_append(b, p, sizeof(p));
}

int
buf_put_u64(struct buf *b, uint64_t v)
{
        uint8_t p[8];

        put_be64(p, v);
        return buf_append(b, p, sizeof(p));
}

void
buf_reset(struct buf *b)
{
        b->len = 0;
}

void
buf_free(struct buf *b)
{
        free(b->data);
        b->data = NULL;
        b->len = 0;
        b->cap = 0;
}
