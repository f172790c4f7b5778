/*
 * test_idbits.c - the bitmap id set, checked against a plain array model.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <stdlib.h>
#include <string.h>

#include "idbits.h"
#include "sombra.h"
#include "support.h"

/*
 * Random adds and removes over ids spread across many chunks, with a clear
 * now and then: the set answers for every id as the model does.
 */
Test(idbits, random_ops_match_reference_model)
{
        enum { NIDS = 3000, NOPS = 200000 }; /* fewer scattered ids than chunks it may make */
        static uint64_t ids[NIDS];
        static bool present[NIDS];
        struct idbits b = IDBITS_INIT;
        uint64_t rng = 3;

        /* A dense run, then distinct ids scattered below the bound (an odd multiplier). */
        for (size_t i = 0; i < NIDS; i++)
                ids[i] = i < NIDS / 2 ? i : (i * 2654435761u) % IDBITS_MAX_ID;
        for (size_t op = 0; op < NOPS; op++) {
                size_t i = support_next_rand(&rng) % NIDS;
                switch (support_next_rand(&rng) % 8) {
                case 0:
                        idbits_remove(&b, ids[i]);
                        present[i] = false;
                        break;
                case 1:
                        if (op % 10000 == 1) {
                                idbits_clear(&b);
                                memset(present, 0, sizeof(present));
                                cr_assert(eq(sz, b.made, 0));
                        }
                        break;
                default:
                        cr_assert(eq(int, idbits_add(&b, ids[i]), SOMBRA_OK));
                        present[i] = true;
                        break;
                }
                if (op % 997 == 0)
                        for (size_t k = 0; k < NIDS; k++)
                                cr_assert(eq(int, idbits_has(&b, ids[k]), present[k]), "id %llu",
                                          (unsigned long long)ids[k]);
        }
        idbits_free(&b);
        cr_assert(eq(ptr, b.chunks, NULL));
}

Test(idbits, neighbours_across_a_chunk_boundary_are_told_apart)
{
        struct idbits b = IDBITS_INIT;
        const uint64_t edge = IDBITS_CHUNK;

        cr_assert(eq(int, idbits_add(&b, edge - 1), SOMBRA_OK));
        cr_assert(idbits_has(&b, edge - 1));
        cr_assert(not(idbits_has(&b, edge)));
        cr_assert(not(idbits_has(&b, edge - 2)));
        cr_assert(eq(int, idbits_add(&b, edge), SOMBRA_OK));
        cr_assert(eq(sz, b.made, 2));
        idbits_remove(&b, edge - 1);
        cr_assert(not(idbits_has(&b, edge - 1)));
        cr_assert(idbits_has(&b, edge));
        idbits_free(&b);
}

/* The bounds keep ids out, and the set goes on answering for the ids it holds. */
Test(idbits, ids_past_its_bounds_are_not_kept)
{
        struct idbits b = IDBITS_INIT;

        cr_assert(eq(int, idbits_add(&b, IDBITS_MAX_ID), SOMBRA_ENOSPC));
        cr_assert(eq(int, idbits_add(&b, UINT64_MAX), SOMBRA_ENOSPC));
        cr_assert(not(idbits_has(&b, IDBITS_MAX_ID)));
        cr_assert(not(idbits_has(&b, UINT64_MAX)));
        for (uint64_t i = 0; i < IDBITS_MAX_CHUNKS; i++)
                cr_assert(eq(int, idbits_add(&b, i * IDBITS_CHUNK + 7), SOMBRA_OK));
        cr_assert(
            eq(int, idbits_add(&b, (uint64_t)IDBITS_MAX_CHUNKS * IDBITS_CHUNK), SOMBRA_ENOSPC));
        cr_assert(eq(int, idbits_add(&b, 8), SOMBRA_OK)); /* in a chunk it has */
        for (uint64_t i = 0; i < IDBITS_MAX_CHUNKS; i++)
                cr_assert(idbits_has(&b, i * IDBITS_CHUNK + 7));
        cr_assert(not(idbits_has(&b, (uint64_t)IDBITS_MAX_CHUNKS * IDBITS_CHUNK)));
        idbits_clear(&b); /* and a clear gives the room back */
        cr_assert(eq(int, idbits_add(&b, (uint64_t)IDBITS_MAX_CHUNKS * IDBITS_CHUNK), SOMBRA_OK));
        cr_assert(not(idbits_has(&b, 7)));
        idbits_free(&b);
}
