/*
 * metrics.h - lock-free histograms and counters, and the two text exports of
 * struct sombra_metrics (JSON and the Prometheus exposition format).
 *
 * Threads: hist_record may run on any number of threads at once (relaxed
 * atomic adds); hist_merge reads a live histogram with atomic loads into a
 * private one, which hist_distribution then reads without atomics. A merged
 * copy is not a snapshot of one instant: `count` and the buckets may differ
 * by the samples being recorded meanwhile. Percentiles tolerate that (see
 * metrics.c).
 */
#ifndef SOMBRA_METRICS_H
#define SOMBRA_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "sombra.h"

/* Log-linear buckets: values below HIST_SUB exactly, then HIST_SUB buckets per power of two. */
#define HIST_SUB_BITS 3u
#define HIST_SUB      (1u << HIST_SUB_BITS)
#define HIST_BUCKETS  ((64u - HIST_SUB_BITS + 1u) * HIST_SUB)

struct hist {
        uint64_t count, sum, max;
        uint64_t buckets[HIST_BUCKETS];
};

/* What one connection counts; only the thread holding the connection writes it. */
struct metrics_conn {
        uint64_t ops[SOMBRA_OP_KINDS];
        uint64_t backpressure_waits;
        struct hist read_latency;
};

/* Adds one sample. Any thread; never blocks. */
void hist_record(struct hist *h, uint64_t value);
/* Adds a live histogram into a private one. */
void hist_merge(struct hist *into, const struct hist *from);
/* The smallest bucket bound that at least q (0 < q <= 1) of the samples are under, capped at max.
 */
uint64_t hist_quantile(const struct hist *h, double q);
/* count, sum, the four percentiles and the maximum of a private histogram. */
void hist_distribution(const struct hist *h, struct sombra_distribution *out);
/* Bucket arithmetic, exposed for the tests: a value's bucket and a bucket's largest value. */
uint32_t hist_bucket(uint64_t value);
uint64_t hist_bucket_max(uint32_t bucket);

/* Relaxed atomic add, for counters that other threads read while they grow. */
static inline void
metrics_add(uint64_t *counter, uint64_t n)
{
        __atomic_fetch_add(counter, n, __ATOMIC_RELAXED);
}

/*
 * The exports of a filled struct: text and NUL into buf (len bytes), *needed
 * (may be NULL) the bytes they take. SOMBRA_ETOOBIG when len is short.
 */
int metrics_format_json(const struct sombra_metrics *m, char *buf, size_t len, size_t *needed);
int metrics_format_prometheus(const struct sombra_metrics *m, char *buf, size_t len,
                              size_t *needed);

#endif
