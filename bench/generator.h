/*
 * generator.h - the benchmark's data, deterministic from a seed.
 *
 * Three graphs, each the same for every engine (by position; each engine
 * loads the nodes and reports its own ids, and edges are stored as node
 * positions until load time):
 *   social     User nodes; FRIENDS_WITH edges whose targets are drawn with a
 *              density falling as a power of the index, so some users are hubs;
 *   catalogue  Category nodes in a tree (BELONGS_TO the parent category) and
 *              Product nodes, each BELONGS_TO one or two categories drawn with
 *              a skew, so some categories are large;
 *   knowledge  five entity labels (Person, Organization, Place, Work, Concept)
 *              and five relation types between them (WORKS_AT, LIVES_IN,
 *              CREATED, LOCATED_IN, ABOUT).
 * Every node has a name and, unless it is bare, two integer properties and
 * one real property whose keys the dataset names; every edge has an integer
 * property `since`.
 */
#ifndef SOMBRA_BENCH_GENERATOR_H
#define SOMBRA_BENCH_GENERATOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The property keys and query targets of one dataset. */
struct bench_schema {
        const char *name;        /* social, catalogue, knowledge */
        const char *int_keys[2]; /* the two integer properties */
        const char *real_key;    /* the real property */
        const char *scan_label;  /* label_scan and property_lookup look at this label */
        int64_t lookup_lo;       /* property_lookup asks int_keys[0] == lo + [0, span) */
        int64_t lookup_span;
};

struct bench_node {
        const char *label;
        char name[32]; /* the longest prefix and a 64-bit number fit */
        bool bare;     /* only a name: no integer or real properties */
        int64_t ints[2];
        double real;
};

/* An edge between node positions; the harness maps them onto engine ids. */
struct bench_link {
        uint32_t src, dst;
        const char *type;
        int64_t since;
};

/* An edge between engine ids, as the adapters take it. */
struct bench_edge {
        uint64_t src, dst;
        const char *type;
        int64_t since;
};

struct dataset {
        const struct bench_schema *schema;
        struct bench_node *nodes;
        struct bench_link *links;
        uint64_t nnodes, nedges;
        uint64_t *ids; /* engine ids of the nodes, filled by each engine's load */
        uint64_t seed;
};

extern const struct bench_schema bench_social, bench_catalogue, bench_knowledge;

/* SplitMix64: the one random source of the benchmark. */
uint64_t bench_random(uint64_t *state);

/*
 * Makes dataset `schema` with about `nodes` nodes; `edges` is the number of
 * social edges (the other graphs size their edges from their nodes). 0 or
 * SOMBRA_ENOMEM; bench_dataset_free releases it either way.
 */
int bench_dataset_make(struct dataset *d, const struct bench_schema *schema, uint64_t nodes,
                       uint64_t edges, uint64_t seed);
void bench_dataset_free(struct dataset *d);

/* A user not in the dataset, for insert_nodes_tx1. */
void bench_user_make(struct bench_node *n, uint64_t i, uint64_t *rng);

/* A random social edge between loaded users (for the write workloads). */
void bench_friendship(const struct dataset *d, uint64_t *rng, struct bench_edge *e);

#endif
