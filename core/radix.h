/*
 * radix.h - a stable radix sort of fixed-size records by a 64-bit key
 * stored inside each record, least significant byte first.
 *
 * For the writer's sorts of thousands of records whose keys are spread out
 * (page numbers, tree-and-key heads). A comparison sort there makes n log n
 * calls through a pointer, and when the key sits behind a pointer each is a
 * cache miss; these passes read each record twice and move it once. Bytes
 * that every key shares are skipped, so page numbers below 65,536 take two
 * passes at most. The functions are inline so that the record size and the
 * key's offset, constants at each caller, make the moves fixed-size copies
 * (the release build's passes call no memcpy).
 */
#ifndef SOMBRA_RADIX_H
#define SOMBRA_RADIX_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline uint64_t
radix_key(const uint8_t *rec, size_t key_off)
{
        uint64_t k;

        memcpy(&k, rec + key_off, sizeof(k));
        return k;
}

/* One pass: src into dst by the key's byte at `shift`, keeping the order of equal bytes. */
static inline void
radix_pass(const uint8_t *src, uint8_t *dst, size_t n, size_t size, size_t key_off, unsigned shift)
{
        size_t at[256] = {0}, sum = 0;

        for (size_t i = 0; i < n; i++)
                at[(radix_key(src + i * size, key_off) >> shift) & 0xff]++;
        for (size_t b = 0; b < 256; b++) {
                size_t count = at[b];
                at[b] = sum;
                sum += count;
        }
        for (size_t i = 0; i < n; i++) {
                size_t b = (radix_key(src + i * size, key_off) >> shift) & 0xff;
                memcpy(dst + at[b]++ * size, src + i * size, size);
        }
}

/*
 * Sorts the n records of `size` bytes at v by the uint64_t at key_off in
 * each, ascending, equal keys in the order given; spare has room for n
 * records. The result is in v.
 */
static inline void
radix_sort(void *v, void *spare, size_t n, size_t size, size_t key_off)
{
        uint8_t *src = v, *dst = spare;
        uint64_t differ = 0, first;

        if (n < 2)
                return;
        first = radix_key(src, key_off);
        for (size_t i = 1; i < n; i++)
                differ |= radix_key(src + i * size, key_off) ^ first;
        for (unsigned shift = 0; shift < 64; shift += 8) {
                uint8_t *t = src;
                if (((differ >> shift) & 0xff) == 0)
                        continue;
                radix_pass(src, dst, n, size, key_off, shift);
                src = dst;
                dst = t;
        }
        if (src != (uint8_t *)v)
                memcpy(v, src, n * size);
}

#endif
