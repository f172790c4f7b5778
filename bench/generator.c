/*
 * generator.c - the benchmark's three graphs (generator.h).
 *
 * Everything comes from one SplitMix64 stream per dataset, consumed in a
 * fixed order, so a seed names the data exactly.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "generator.h"
#include "sombra.h"

const struct bench_schema bench_social = {
    "social", {"age", "joined"}, "score", "User", 18, 63,
};
const struct bench_schema bench_catalogue = {
    "catalogue", {"stock", "price_cents"}, "rating", "Product", 0, 200,
};
const struct bench_schema bench_knowledge = {
    "knowledge", {"year", "rank"}, "weight", "Person", 1900, 120,
};

enum { PERSON, ORGANIZATION, PLACE, WORK, CONCEPT, NENTITIES };

static const char *const entity_labels[NENTITIES] = {"Person", "Organization", "Place", "Work",
                                                     "Concept"};

uint64_t
bench_random(uint64_t *state)
{
        uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
}

/* A uniform double in [0, 1). */
static double
unit(uint64_t *rng)
{
        return (double)(bench_random(rng) >> 11) / 9007199254740992.0;
}

/* An index below n, drawn with density falling like u^power: low indexes are hubs. */
static uint64_t
skewed(uint64_t *rng, uint64_t n, int power)
{
        double u = unit(rng), x = u;
        uint64_t i;

        for (int p = 1; p < power; p++)
                x *= u;
        i = (uint64_t)((double)n * x);
        return i < n ? i : n - 1;
}

static void
node_fill(struct bench_node *n, const char *label, const char *prefix, uint64_t i)
{
        n->label = label;
        snprintf(n->name, sizeof(n->name), "%s-%" PRIu64, prefix, i);
}

void
bench_user_make(struct bench_node *n, uint64_t i, uint64_t *rng)
{
        node_fill(n, "User", "user", i);
        n->bare = false;
        n->ints[0] = 18 + (int64_t)(bench_random(rng) % 63);
        n->ints[1] = (int64_t)(bench_random(rng) % 9000);
        n->real = (double)(bench_random(rng) % 100000) / 100.0;
}

static void
link_add(struct dataset *d, uint64_t src, uint64_t dst, const char *type, int64_t since)
{
        d->links[d->nedges++] = (struct bench_link){(uint32_t)src, (uint32_t)dst, type, since};
}

static void
social_make(struct dataset *d, uint64_t edges, uint64_t *rng)
{
        for (uint64_t i = 0; i < d->nnodes; i++)
                bench_user_make(&d->nodes[i], i, rng);
        for (uint64_t i = 0; i < edges; i++) {
                uint64_t dst = skewed(rng, d->nnodes, 3);
                link_add(d, bench_random(rng) % d->nnodes, dst, "FRIENDS_WITH",
                         (int64_t)(2000 + i % 25));
        }
}

/* Categories first (a tree of fan-out 8), then products in one or two of them. */
static void
catalogue_make(struct dataset *d, uint64_t *rng)
{
        uint64_t ncat = d->nnodes / 50 ? d->nnodes / 50 : 1;

        for (uint64_t i = 0; i < ncat; i++) {
                node_fill(&d->nodes[i], "Category", "category", i);
                d->nodes[i].bare = true;
                if (i > 0)
                        link_add(d, i, (i - 1) / 8, "BELONGS_TO", 2000);
        }
        for (uint64_t i = ncat; i < d->nnodes; i++) {
                struct bench_node *n = &d->nodes[i];
                int64_t added = 2000 + (int64_t)(bench_random(rng) % 25);

                node_fill(n, "Product", "product", i - ncat);
                n->ints[0] = (int64_t)(bench_random(rng) % 200);
                n->ints[1] = 100 + (int64_t)(bench_random(rng) % 100000);
                n->real = 1.0 + (double)(bench_random(rng) % 401) / 100.0;
                link_add(d, i, skewed(rng, ncat, 2), "BELONGS_TO", added);
                if (bench_random(rng) % 10 < 3)
                        link_add(d, i, skewed(rng, ncat, 2), "BELONGS_TO", added);
        }
}

/* Node i has label i % 5; the j-th entity of label l is node 5j + l. */
static uint64_t
entity_pick(const struct dataset *d, uint64_t *rng, int label)
{
        uint64_t count = (d->nnodes - (uint64_t)label + NENTITIES - 1) / NENTITIES;
        return count ? skewed(rng, count, 2) * NENTITIES + (uint64_t)label : 0;
}

static void
knowledge_relate(struct dataset *d, uint64_t i, uint64_t *rng)
{
        int64_t since = 1900 + (int64_t)(bench_random(rng) % 120);

        switch (i % NENTITIES) {
        case PERSON:
                link_add(d, i, entity_pick(d, rng, ORGANIZATION), "WORKS_AT", since);
                link_add(d, i, entity_pick(d, rng, PLACE), "LIVES_IN", since);
                for (uint64_t k = bench_random(rng) % 3; k > 0; k--)
                        link_add(d, i, entity_pick(d, rng, WORK), "CREATED", since);
                break;
        case ORGANIZATION:
                link_add(d, i, entity_pick(d, rng, PLACE), "LOCATED_IN", since);
                break;
        case WORK:
                for (uint64_t k = 1 + bench_random(rng) % 3; k > 0; k--)
                        link_add(d, i, entity_pick(d, rng, CONCEPT), "ABOUT", since);
                break;
        default: /* places and concepts are only pointed at */
                break;
        }
}

static void
knowledge_make(struct dataset *d, uint64_t *rng)
{
        for (uint64_t i = 0; i < d->nnodes; i++) {
                struct bench_node *n = &d->nodes[i];

                node_fill(n, entity_labels[i % NENTITIES], "entity", i);
                n->ints[0] = 1900 + (int64_t)(bench_random(rng) % 120);
                n->ints[1] = (int64_t)(bench_random(rng) % 1000);
                n->real = (double)(bench_random(rng) % 10000) / 10000.0;
        }
        /* Relations only after every node exists: entity_pick needs nnodes alone. */
        for (uint64_t i = 0; i < d->nnodes; i++)
                knowledge_relate(d, i, rng);
}

int
bench_dataset_make(struct dataset *d, const struct bench_schema *schema, uint64_t nodes,
                   uint64_t edges, uint64_t seed)
{
        /* Catalogue: at most 2 links a node; knowledge: at most 4 per person, 3 per work. */
        uint64_t cap = schema == &bench_social ? edges : nodes * 2 + 1;
        uint64_t rng = seed;

        *d = (struct dataset){.schema = schema, .nnodes = nodes, .seed = seed};
        if (nodes == 0 || nodes > UINT32_MAX)
                return SOMBRA_EINVAL;
        d->nodes = calloc(nodes, sizeof(*d->nodes));
        d->links = calloc(cap ? cap : 1, sizeof(*d->links));
        d->ids = calloc(nodes, sizeof(*d->ids));
        if (d->nodes == NULL || d->links == NULL || d->ids == NULL)
                return SOMBRA_ENOMEM;
        if (schema == &bench_social)
                social_make(d, edges, &rng);
        else if (schema == &bench_catalogue)
                catalogue_make(d, &rng);
        else
                knowledge_make(d, &rng);
        return 0;
}

void
bench_dataset_free(struct dataset *d)
{
        free(d->nodes);
        free(d->links);
        free(d->ids);
        *d = (struct dataset){0};
}

void
bench_friendship(const struct dataset *d, uint64_t *rng, struct bench_edge *e)
{
        uint64_t dst = skewed(rng, d->nnodes, 3);

        e->src = d->ids[bench_random(rng) % d->nnodes];
        e->dst = d->ids[dst];
        e->type = "FRIENDS_WITH";
        e->since = (int64_t)(2000 + bench_random(rng) % 25);
}
