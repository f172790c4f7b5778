/*
 * buf.h - a growable byte buffer owned by its user.
 *
 * Used wherever the engine hands variable-length bytes back (B+tree values,
 * encoded records): the caller keeps one buffer and reuses it across calls,
 * so the steady state allocates nothing.
 */
#ifndef SOMBRA_BUF_H
#define SOMBRA_BUF_H

#include <stddef.h>
#include <stdint.h>

struct buf {
        uint8_t *data;
        size_t len;
        size_t cap;
};

#define BUF_INIT                                                                                   \
        {                                                                                          \
                NULL, 0, 0                                                                         \
        }

/* Makes room for at least `cap` bytes in total. SOMBRA_ENOMEM on failure (buffer unchanged). */
int buf_reserve(struct buf *b, size_t cap);
/* Appends len bytes. SOMBRA_ENOMEM on failure. */
int buf_append(struct buf *b, const void *data, size_t len);
/* Appends fixed-width big-endian integers. */
int buf_put_u8(struct buf *b, uint8_t v);
int buf_put_u16(struct buf *b, uint16_t v);
int buf_put_u32(struct buf *b, uint32_t v);
int buf_put_u64(struct buf *b, uint64_t v);
/* Sets len to 0, keeping the memory. */
void buf_reset(struct buf *b);
void buf_free(struct buf *b);

/* Big-endian loads and stores on raw memory (no alignment needed). */
static inline void
put_be16(uint8_t *p, uint16_t v)
{
        p[0] = (uint8_t)(v >> 8);
        p[1] = (uint8_t)v;
}

static inline void
put_be32(uint8_t *p, uint32_t v)
{
        p[0] = (uint8_t)(v >> 24);
        p[1] = (uint8_t)(v >> 16);
        p[2] = (uint8_t)(v >> 8);
        p[3] = (uint8_t)v;
}

static inline void
put_be64(uint8_t *p, uint64_t v)
{
        put_be32(p, (uint32_t)(v >> 32));
        put_be32(p + 4, (uint32_t)v);
}

static inline uint16_t
get_be16(const uint8_t *p)
{
        return (uint16_t)((p[0] << 8) | p[1]);
}

static inline uint32_t
get_be32(const uint8_t *p)
{
        return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static inline uint64_t
get_be64(const uint8_t *p)
{
        return ((uint64_t)get_be32(p) << 32) | get_be32(p + 4);
}

#endif
