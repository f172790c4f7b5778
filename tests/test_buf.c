/*
 * test_buf.c - the growable byte buffer: growth policy, failure atomicity
 * and the big-endian helpers.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <string.h>

#include "buf.h"
#include "sombra.h"

Test(buf, first_growth_is_at_least_64_bytes)
{
        struct buf b = BUF_INIT;

        cr_assert(eq(int, buf_put_u8(&b, 7), SOMBRA_OK));
        cr_assert(eq(sz, b.len, 1));
        cr_assert(ge(sz, b.cap, 64));
        cr_assert(eq(u8, b.data[0], 7));
        buf_free(&b);
}

Test(buf, growth_doubles_capacity)
{
        struct buf b = BUF_INIT;

        cr_assert(eq(int, buf_reserve(&b, 64), SOMBRA_OK));
        cr_assert(eq(sz, b.cap, 64));
        cr_assert(eq(int, buf_reserve(&b, 65), SOMBRA_OK));
        cr_assert(eq(sz, b.cap, 128));
        cr_assert(eq(int, buf_reserve(&b, 1000), SOMBRA_OK));
        cr_assert(eq(sz, b.cap, 1024));
        buf_free(&b);
}

Test(buf, appends_keep_earlier_bytes_across_growth)
{
        struct buf b = BUF_INIT;
        uint8_t chunk[37];

        for (int i = 0; i < 200; i++) {
                memset(chunk, i, sizeof(chunk));
                cr_assert(eq(int, buf_append(&b, chunk, sizeof(chunk)), SOMBRA_OK));
        }
        cr_assert(eq(sz, b.len, 200 * sizeof(chunk)));
        for (size_t i = 0; i < b.len; i++)
                cr_assert(eq(u8, b.data[i], (uint8_t)(i / sizeof(chunk))));
        buf_free(&b);
}

Test(buf, failed_reserve_leaves_buffer_unchanged)
{
        struct buf b = BUF_INIT;
        uint8_t *data;
        size_t cap;

        cr_assert(eq(int, buf_append(&b, "abc", 3), SOMBRA_OK));
        data = b.data;
        cap = b.cap;
        cr_assert(eq(int, buf_reserve(&b, SIZE_MAX), SOMBRA_ENOMEM));
        cr_assert(eq(int, buf_append(&b, "x", SIZE_MAX - 1), SOMBRA_ENOMEM));
        cr_assert(eq(ptr, b.data, data));
        cr_assert(eq(sz, b.cap, cap));
        cr_assert(eq(sz, b.len, 3));
        cr_assert(eq(int, memcmp(b.data, "abc", 3), 0));
        buf_free(&b);
}

Test(buf, empty_append_needs_no_memory)
{
        struct buf b = BUF_INIT;

        cr_assert(eq(int, buf_append(&b, NULL, 0), SOMBRA_OK));
        cr_assert(eq(ptr, b.data, NULL));
        cr_assert(eq(sz, b.cap, 0));
}

Test(buf, integers_are_written_big_endian)
{
        struct buf b = BUF_INIT;
        const uint8_t want[] = {0xab, 0x12, 0x34, 0xde, 0xad, 0xbe, 0xef, 0x01,
                                0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08};

        cr_assert(eq(int, buf_put_u8(&b, 0xab), SOMBRA_OK));
        cr_assert(eq(int, buf_put_u16(&b, 0x1234), SOMBRA_OK));
        cr_assert(eq(int, buf_put_u32(&b, 0xdeadbeef), SOMBRA_OK));
        cr_assert(eq(int, buf_put_u64(&b, 0x0102030405060708ull), SOMBRA_OK));
        cr_assert(eq(sz, b.len, sizeof(want)));
        cr_assert(eq(int, memcmp(b.data, want, sizeof(want)), 0));
        cr_assert(eq(u16, get_be16(b.data + 1), 0x1234));
        cr_assert(eq(u32, get_be32(b.data + 3), 0xdeadbeef));
        cr_assert(eq(u64, get_be64(b.data + 7), 0x0102030405060708ull));
        buf_free(&b);
}

Test(buf, reset_keeps_memory_and_free_releases_it)
{
        struct buf b = BUF_INIT;
        uint8_t *data;

        cr_assert(eq(int, buf_put_u64(&b, 1), SOMBRA_OK));
        data = b.data;
        buf_reset(&b);
        cr_assert(eq(sz, b.len, 0));
        cr_assert(eq(ptr, b.data, data));
        cr_assert(eq(int, buf_put_u32(&b, 2), SOMBRA_OK));
        cr_assert(eq(ptr, b.data, data));
        buf_free(&b);
        cr_assert(eq(ptr, b.data, NULL));
        cr_assert(eq(sz, b.cap, 0));
        cr_assert(eq(sz, b.len, 0));
}
