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

/*
 * Varints: unsigned LEB128, seven bits a byte, low bits first, the top bit
 * set on every byte but the last. Only the shortest form is read (no final
 * zero byte after the first), so that a number has one encoding.
 */
static inline size_t
varint_size(uint64_t v)
{
        size_t n = 1;

        while (v >= 0x80) {
                v >>= 7;
                n++;
        }
        return n;
}

/* Writes v at p; returns the byte after it. */
static inline uint8_t *
put_varint(uint8_t *p, uint64_t v)
{
        while (v >= 0x80) {
                *p++ = (uint8_t)(v | 0x80);
                v >>= 7;
        }
        *p++ = (uint8_t)v;
        return p;
}

/*
 * Reads a varint of at most max_bytes bytes (1..10) from the avail bytes at
 * p: the bytes it took, or 0 for one that is cut short, longer, or not in
 * its shortest form.
 */
static inline size_t
varint_get(const uint8_t *p, size_t avail, size_t max_bytes, uint64_t *v)
{
        uint64_t x = 0;

        for (size_t i = 0; i < avail && i < max_bytes; i++) {
                if (i == 9 && p[i] > 1)
                        return 0; /* past 64 bits */
                x |= (uint64_t)(p[i] & 0x7f) << (7 * i);
                if ((p[i] & 0x80) == 0) {
                        if (p[i] == 0 && i > 0)
                                return 0;
                        *v = x;
                        return i + 1;
                }
        }
        return 0;
}

#endif
