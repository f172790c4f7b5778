/*
 * stress.h - the readers-against-writer scenario, shared by the Criterion test
 * (test_concurrency.c) and the ThreadSanitizer program (tsan_stress.c), which
 * cannot use Criterion: its runner does not start under TSan.
 *
 * Every transaction k adds a node labelled T with property k and
 * STRESS_EDGES_PER edges from it to the hub (node 1), and from k =
 * STRESS_WINDOW on also deletes the node of transaction k - STRESS_WINDOW. So
 * in every committed state: nodes = 1 + live T nodes, edges = STRESS_EDGES_PER
 * x live T nodes, the hub's in-degree = edges, and every T node has
 * out-degree STRESS_EDGES_PER. Reader threads check that inside read
 * transactions, which only holds if each read sees one whole commit and no
 * page of it was reused under it.
 */
#ifndef SOMBRA_TEST_STRESS_H
#define SOMBRA_TEST_STRESS_H

#include <stdint.h>

#include "sombra.h"

#define STRESS_EDGES_PER 3
#define STRESS_WINDOW    40

struct stress_result {
        uint64_t reads; /* read transactions completed */
        int failures;   /* read transactions that saw a broken state */
        int status;     /* SOMBRA_OK, or the first error of the writer, verify or close */
        char problem[256];
};

/* Runs the scenario on a new database at path with `readers` reader threads. */
void stress_readers_vs_writer(const char *path, const struct sombra_config *cfg, int64_t txns,
                              int readers, struct stress_result *out);

/*
 * The public API under load: `threads` threads, each with its own pooled
 * connection, for duration_ms: 80% reads (half node gets, half neighbour
 * lists), 20% writes, each write its own transaction creating one edge
 * between nodes made at the start. Afterwards every acknowledged edge must be
 * there with its endpoints, and the edge count must equal the acknowledged
 * ones (nothing else wrote).
 */
struct engine_stress_result {
        uint64_t nodes, edges, reads, writes;
        int failures;
        char problem[256];
};

void engine_stress(sombra_db *db, int threads, uint32_t duration_ms,
                   struct engine_stress_result *out);

#endif
