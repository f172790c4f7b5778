/*
 * test_radix.c - the radix sort of records by a key inside them: order,
 * stability, nothing lost or doubled, for keys that take every pass and
 * for keys whose shared bytes it skips.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <stddef.h>
#include <stdlib.h>

#include "radix.h"

/* The key away from the record's start, as in the engine's records. */
struct rec {
        uint32_t seq; /* the place the record was given at */
        uint64_t key;
        uint16_t tag;
};

static uint64_t
next_random(uint64_t *x)
{
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        return *x;
}

/* Sorts n records whose keys `make` gives, and checks the result through and through. */
static void
sort_and_check(size_t n, uint64_t (*make)(uint64_t *rng, size_t i))
{
        struct rec *v = calloc(n ? n : 1, sizeof(*v)), *spare = calloc(n ? n : 1, sizeof(*spare));
        bool *seen = calloc(n ? n : 1, sizeof(*seen));
        uint64_t rng = 0x9e3779b97f4a7c15ull;

        cr_assert(v != NULL && spare != NULL && seen != NULL);
        for (size_t i = 0; i < n; i++)
                v[i] = (struct rec){.seq = (uint32_t)i, .key = make(&rng, i), .tag = (uint16_t)i};
        radix_sort(v, spare, n, sizeof(*v), offsetof(struct rec, key));
        for (size_t i = 0; i < n; i++) {
                cr_assert(lt(sz, v[i].seq, n));
                cr_assert(not(seen[v[i].seq]), "record %u twice", v[i].seq);
                seen[v[i].seq] = true;
                cr_assert(eq(u16, v[i].tag, (uint16_t)v[i].seq), "a record was torn");
                if (i == 0)
                        continue;
                cr_assert(le(u64, v[i - 1].key, v[i].key), "out of order at %zu", i);
                if (v[i - 1].key == v[i].key)
                        cr_assert(lt(u32, v[i - 1].seq, v[i].seq), "equal keys reordered at %zu",
                                  i);
        }
        free(v);
        free(spare);
        free(seen);
}

static uint64_t
any_key(uint64_t *rng, size_t i)
{
        (void)i;
        return next_random(rng);
}

/* Page numbers below 65,536: two passes, the result in place. */
static uint64_t
page_number(uint64_t *rng, size_t i)
{
        (void)i;
        return next_random(rng) % 60000u;
}

/* Keys that differ in one byte only: one pass, the result copied back from the spare. */
static uint64_t
one_byte_differs(uint64_t *rng, size_t i)
{
        (void)i;
        return 0x1122334455660077ull | (next_random(rng) & 0xff00u);
}

/* Few distinct keys: long runs of equal keys, whose order must stay as given. */
static uint64_t
few_keys(uint64_t *rng, size_t i)
{
        (void)i;
        return (next_random(rng) % 5u) << 40;
}

static uint64_t
descending(uint64_t *rng, size_t i)
{
        (void)rng;
        return UINT64_MAX - i;
}

Test(radix, sorts_keys_spread_over_all_bytes)
{
        sort_and_check(5000, any_key);
}

Test(radix, sorts_page_numbers)
{
        sort_and_check(3000, page_number);
}

Test(radix, sorts_keys_differing_in_one_byte)
{
        sort_and_check(1000, one_byte_differs);
}

Test(radix, keeps_equal_keys_in_the_order_given)
{
        sort_and_check(2000, few_keys);
}

Test(radix, reverses_a_descending_run)
{
        sort_and_check(777, descending);
}

Test(radix, leaves_empty_and_single_arrays_alone)
{
        struct rec one = {.seq = 7, .key = 42, .tag = 7}, spare;

        sort_and_check(0, any_key);
        radix_sort(&one, &spare, 1, sizeof(one), offsetof(struct rec, key));
        cr_assert(eq(u64, one.key, 42));
        cr_assert(eq(u32, one.seq, 7));
}
