/*
 * test_idset.c - the id hash map, checked against a plain array model.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <stdlib.h>
#include <string.h>

#include "idset.h"
#include "sombra.h"
#include "support.h"

/* Checks, key by key, that lookups find exactly the model's keys and values. */
static void
expect_lookups_match_model(const struct idset *s, const uint64_t *keys, const bool *present,
                           const uint64_t *vals, size_t nkeys)
{
        size_t want = 0;
        uint64_t val;

        for (size_t i = 0; i < nkeys; i++) {
                bool found = idset_get(s, keys[i], &val);

                cr_assert(eq(int, found, present[i]), "key %#llx", (unsigned long long)keys[i]);
                if (present[i]) {
                        cr_assert(eq(u64, val, vals[i]));
                        want++;
                }
        }
        cr_assert(eq(sz, s->count, want));
}

/* Checks lookups, then that iteration yields each present key once with its value. */
static void
expect_same_as_model(const struct idset *s, const uint64_t *keys, const bool *present,
                     const uint64_t *vals, size_t nkeys)
{
        size_t pos = 0, seen = 0;
        uint64_t key, val;

        expect_lookups_match_model(s, keys, present, vals, nkeys);
        while (idset_next(s, &pos, &key, &val)) {
                size_t i = 0;

                while (i < nkeys && keys[i] != key)
                        i++;
                cr_assert(lt(sz, i, nkeys), "iteration returned unknown key %#llx",
                          (unsigned long long)key);
                cr_assert(present[i]);
                cr_assert(eq(u64, val, vals[i]));
                seen++;
        }
        cr_assert(eq(sz, seen, s->count));
}

Test(idset, random_ops_match_reference_model)
{
        enum { NKEYS = 2048, NOPS = 100000 };
        static uint64_t keys[NKEYS], vals[NKEYS];
        static bool present[NKEYS];
        struct idset s = IDSET_INIT;
        uint64_t rng = 42;

        /*
         * Dense runs, the extremes and random ids: dense ids are what the
         * engine stores, and they are what a weak hash would cluster.
         */
        for (size_t i = 0; i < NKEYS; i++) {
                if (i < NKEYS / 2)
                        keys[i] = i;
                else if (i == NKEYS / 2)
                        keys[i] = IDSET_EMPTY - 1;
                else if (i < NKEYS * 3 / 4)
                        keys[i] = (uint64_t)i << 32;
                else
                        /* odd, so distinct from the others */
                        keys[i] = support_next_rand(&rng) | 1;
        }

        for (int op = 0; op < NOPS; op++) {
                uint64_t r = support_next_rand(&rng);
                size_t i = (size_t)(r % NKEYS);
                unsigned kind = (unsigned)((r >> 32) % 100);
                uint64_t val;
                bool added;

                if (kind < 45) {
                        val = support_next_rand(&rng);
                        cr_assert(eq(int, idset_put(&s, keys[i], val, &added), SOMBRA_OK));
                        cr_assert(eq(int, added, !present[i]));
                        present[i] = true;
                        vals[i] = val;
                } else if (kind < 80) {
                        cr_assert(eq(int, idset_del(&s, keys[i]), present[i]));
                        present[i] = false;
                } else {
                        cr_assert(eq(int, idset_get(&s, keys[i], &val), present[i]));
                        if (present[i])
                                cr_assert(eq(u64, val, vals[i]));
                }
                cr_assert(le(sz, s.count * 2, s.cap));
                if (op % 10000 == 0)
                        expect_same_as_model(&s, keys, present, vals, NKEYS);
        }
        expect_same_as_model(&s, keys, present, vals, NKEYS);
        idset_free(&s);
}

Test(idset, deleting_from_a_cluster_keeps_every_other_key_reachable)
{
        enum { N = 1500 };
        static uint64_t keys[N], vals[N];
        static bool present[N];
        struct idset s = IDSET_INIT;
        uint64_t rng = 7;

        for (size_t i = 0; i < N; i++) {
                keys[i] = i * 1024;
                vals[i] = i;
                present[i] = true;
                cr_assert(eq(int, idset_put(&s, keys[i], vals[i], NULL), SOMBRA_OK));
        }
        for (size_t left = N; left > 0; left--) {
                size_t i = (size_t)(support_next_rand(&rng) % N);

                while (!present[i])
                        i = (i + 1) % N;
                cr_assert(idset_del(&s, keys[i]));
                present[i] = false;
                expect_lookups_match_model(&s, keys, present, vals, N);
        }
        cr_assert(eq(sz, s.count, 0));
        idset_free(&s);
}

Test(idset, put_reports_added_then_overwrites)
{
        struct idset s = IDSET_INIT;
        uint64_t val;
        bool added;

        cr_assert(eq(int, idset_put(&s, 5, 50, &added), SOMBRA_OK));
        cr_assert(added);
        cr_assert(eq(int, idset_put(&s, 5, 51, &added), SOMBRA_OK));
        cr_assert(not(added));
        cr_assert(idset_get(&s, 5, &val));
        cr_assert(eq(u64, val, 51));
        cr_assert(eq(sz, s.count, 1));
        idset_free(&s);
}

Test(idset, empty_key_is_rejected_and_never_found)
{
        struct idset s = IDSET_INIT;

        cr_assert(eq(int, idset_put(&s, IDSET_EMPTY, 1, NULL), SOMBRA_EINVAL));
        cr_assert(eq(sz, s.count, 0));
        cr_assert(eq(int, idset_put(&s, 0, 1, NULL), SOMBRA_OK));
        cr_assert(not(idset_get(&s, IDSET_EMPTY, NULL)));
        cr_assert(not(idset_del(&s, IDSET_EMPTY)));
        cr_assert(eq(sz, s.count, 1));
        idset_free(&s);
}

Test(idset, lookups_on_an_unallocated_set_find_nothing)
{
        struct idset s = IDSET_INIT;
        size_t pos = 0;
        uint64_t key, val;

        cr_assert(not(idset_get(&s, 1, &val)));
        cr_assert(not(idset_del(&s, 1)));
        cr_assert(not(idset_next(&s, &pos, &key, &val)));
        idset_clear(&s);
        idset_free(&s);
}

Test(idset, capacity_is_a_power_of_two_at_most_half_full)
{
        struct idset s = IDSET_INIT;

        for (uint64_t k = 0; k < 5000; k++) {
                cr_assert(eq(int, idset_put(&s, k, k, NULL), SOMBRA_OK));
                cr_assert(eq(sz, s.cap & (s.cap - 1), 0));
                cr_assert(le(sz, s.count * 2, s.cap));
        }
        idset_free(&s);
}

Test(idset, clear_empties_and_keeps_memory)
{
        struct idset s = IDSET_INIT;
        uint64_t *keys;
        size_t cap, pos = 0;
        uint64_t key;

        for (uint64_t k = 1; k <= 100; k++)
                cr_assert(eq(int, idset_put(&s, k, k, NULL), SOMBRA_OK));
        keys = s.keys;
        cap = s.cap;
        idset_clear(&s);
        cr_assert(eq(sz, s.count, 0));
        cr_assert(eq(ptr, s.keys, keys));
        cr_assert(eq(sz, s.cap, cap));
        cr_assert(not(idset_get(&s, 50, NULL)));
        cr_assert(not(idset_next(&s, &pos, &key, NULL)));
        cr_assert(eq(int, idset_put(&s, 50, 5, NULL), SOMBRA_OK));
        cr_assert(idset_get(&s, 50, NULL));
        idset_free(&s);
}

Test(idset, iteration_visits_every_key_once)
{
        struct idset s = IDSET_INIT;
        static bool seen[1000];
        size_t pos = 0, n = 0;
        uint64_t key, val;

        for (uint64_t k = 0; k < 1000; k++)
                cr_assert(eq(int, idset_put(&s, k, k * 3, NULL), SOMBRA_OK));
        while (idset_next(&s, &pos, &key, &val)) {
                cr_assert(lt(u64, key, 1000));
                cr_assert(not(seen[key]));
                cr_assert(eq(u64, val, key * 3));
                seen[key] = true;
                n++;
        }
        cr_assert(eq(sz, n, 1000));
        idset_free(&s);
}
