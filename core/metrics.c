/*
 * metrics.c - latency histograms, and struct sombra_metrics as JSON or as
 * Prometheus text.
 *
 * Histograms are log-linear, as in HdrHistogram: a value below HIST_SUB has
 * a bucket of its own; a larger one, whose highest set bit is e, falls in
 * one of HIST_SUB equal buckets between 2^e and 2^(e+1), chosen by the
 * HIST_SUB_BITS bits under that highest bit. Every bucket is thus at most
 * 1/HIST_SUB of its values wide (12.5%), 64-bit values need HIST_BUCKETS
 * (496) counters, and finding a bucket is a count of leading zeros and two
 * shifts: cheap enough to run on every read and every commit.
 *
 * Recording is three relaxed atomic adds and, rarely, a compare-and-swap
 * on `max`; nothing orders them, so a reader merging a histogram while
 * samples arrive may find `count` and the buckets a few samples apart.
 * hist_quantile therefore ranks within the buckets' own total, and caps the
 * result at the (exact) maximum.
 *
 * The exports walk one table of the struct's fields, so the JSON and the
 * Prometheus output always name the same metrics in the same order.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>

#include "metrics.h"

uint32_t
hist_bucket(uint64_t value)
{
        uint32_t e;

        if (value < HIST_SUB)
                return (uint32_t)value;
        e = 63u - (uint32_t)__builtin_clzll(value); /* >= HIST_SUB_BITS */
        return (e - HIST_SUB_BITS + 1u) * HIST_SUB +
               (uint32_t)((value >> (e - HIST_SUB_BITS)) & (HIST_SUB - 1u));
}

uint64_t
hist_bucket_max(uint32_t bucket)
{
        uint32_t e, sub;
        uint64_t low;

        if (bucket < HIST_SUB)
                return bucket;
        e = bucket / HIST_SUB + HIST_SUB_BITS - 1u;
        sub = bucket % HIST_SUB;
        low = (uint64_t)(HIST_SUB + sub) << (e - HIST_SUB_BITS);
        return low + ((1ull << (e - HIST_SUB_BITS)) - 1u);
}

void
hist_record(struct hist *h, uint64_t value)
{
        uint64_t max = __atomic_load_n(&h->max, __ATOMIC_RELAXED);

        __atomic_fetch_add(&h->buckets[hist_bucket(value)], 1, __ATOMIC_RELAXED);
        __atomic_fetch_add(&h->sum, value, __ATOMIC_RELAXED);
        __atomic_fetch_add(&h->count, 1, __ATOMIC_RELAXED);
        while (value > max && !__atomic_compare_exchange_n(&h->max, &max, value, true,
                                                           __ATOMIC_RELAXED, __ATOMIC_RELAXED))
                ;
}

void
hist_merge(struct hist *into, const struct hist *from)
{
        uint64_t max = __atomic_load_n(&from->max, __ATOMIC_RELAXED);

        into->count += __atomic_load_n(&from->count, __ATOMIC_RELAXED);
        into->sum += __atomic_load_n(&from->sum, __ATOMIC_RELAXED);
        if (max > into->max)
                into->max = max;
        for (uint32_t i = 0; i < HIST_BUCKETS; i++)
                into->buckets[i] += __atomic_load_n(&from->buckets[i], __ATOMIC_RELAXED);
}

uint64_t
hist_quantile(const struct hist *h, double q)
{
        uint64_t total = 0, rank, seen = 0;

        for (uint32_t i = 0; i < HIST_BUCKETS; i++)
                total += h->buckets[i];
        if (total == 0)
                return 0;
        /* The rank-th smallest sample, rank = ceil(q * total), at least the first. */
        rank = (uint64_t)(q * (double)total);
        if ((double)rank < q * (double)total)
                rank++;
        if (rank == 0)
                rank = 1;
        for (uint32_t i = 0; i < HIST_BUCKETS; i++) {
                seen += h->buckets[i];
                if (seen >= rank) {
                        uint64_t bound = hist_bucket_max(i);
                        return bound < h->max ? bound : h->max;
                }
        }
        return h->max;
}

void
hist_distribution(const struct hist *h, struct sombra_distribution *out)
{
        out->count = h->count;
        out->sum = h->sum;
        out->p50 = hist_quantile(h, 0.5);
        out->p90 = hist_quantile(h, 0.9);
        out->p99 = hist_quantile(h, 0.99);
        out->p999 = hist_quantile(h, 0.999);
        out->max = h->max;
}

const char *
sombra_op_name(enum sombra_op_kind kind)
{
        static const char *const names[SOMBRA_OP_KINDS] = {
            [SOMBRA_OP_NODE_CREATE] = "node_create",
            [SOMBRA_OP_NODE_DELETE] = "node_delete",
            [SOMBRA_OP_NODE_SET] = "node_set",
            [SOMBRA_OP_NODE_UNSET] = "node_unset",
            [SOMBRA_OP_LABEL_ADD] = "label_add",
            [SOMBRA_OP_LABEL_REMOVE] = "label_remove",
            [SOMBRA_OP_EDGE_CREATE] = "edge_create",
            [SOMBRA_OP_EDGE_DELETE] = "edge_delete",
            [SOMBRA_OP_EDGE_SET] = "edge_set",
            [SOMBRA_OP_EDGE_UNSET] = "edge_unset",
            [SOMBRA_OP_INDEX_CREATE] = "index_create",
            [SOMBRA_OP_INDEX_DROP] = "index_drop",
            [SOMBRA_OP_NODE_GET] = "node_get",
            [SOMBRA_OP_EDGE_GET] = "edge_get",
            [SOMBRA_OP_NEIGHBORS] = "neighbors",
            [SOMBRA_OP_DEGREE] = "degree",
            [SOMBRA_OP_COUNT] = "count",
            [SOMBRA_OP_TWO_HOP_COUNT] = "two_hop_count",
            [SOMBRA_OP_NODES_BY_LABEL] = "nodes_by_label",
            [SOMBRA_OP_NODES_BY_PROP] = "nodes_by_prop",
            [SOMBRA_OP_NODES_BY_RANGE] = "nodes_by_range",
            [SOMBRA_OP_BFS] = "bfs",
            [SOMBRA_OP_SHORTEST_PATH] = "shortest_path",
        };
        return (unsigned)kind < SOMBRA_OP_KINDS ? names[kind] : NULL;
}

/* ---- the exports ---- */

enum field_kind {
        F_COUNTER,      /* uint64_t, only grows */
        F_GAUGE,        /* uint64_t */
        F_REAL,         /* double gauge */
        F_REAL_COUNTER, /* double, only grows */
        F_OPS,          /* the ops array, one series per kind */
        F_NANOS,        /* struct sombra_distribution of nanoseconds, exported in seconds */
        F_COUNTS        /* struct sombra_distribution of plain counts */
};

struct field {
        enum field_kind kind;
        size_t off;
        const char *json; /* the key in the JSON object */
        const char *prom; /* the metric family's name */
        const char *help;
};

#define FIELD(kind, member, prom, help)                                                            \
        {                                                                                          \
                kind, offsetof(struct sombra_metrics, member), #member, prom, help                 \
        }

static const struct field fields[] = {
    FIELD(F_REAL, uptime_seconds, "sombra_uptime_seconds",
          "Seconds since the database was opened."),
    FIELD(F_COUNTER, commits, "sombra_commits_total", "Transactions committed."),
    FIELD(F_COUNTER, rollbacks, "sombra_rollbacks_total", "Transactions rolled back."),
    FIELD(F_REAL, commits_per_second, "sombra_commits_per_second",
          "Commits per second since the previous read of the metrics at least a second ago."),
    FIELD(F_OPS, ops, "sombra_operations_total",
          "Operations by kind: writes the writer applied, reads that returned."),
    FIELD(F_COUNTER, wal_bytes, "sombra_wal_bytes_total", "Bytes appended to the write-ahead log."),
    FIELD(F_COUNTER, fsyncs, "sombra_fsyncs_total", "fdatasyncs of the write-ahead log."),
    FIELD(F_COUNTS, commits_per_fsync, "sombra_commits_per_fsync",
          "FULL commits acknowledged by one group fdatasync (quantile 1 is the maximum)."),
    FIELD(F_COUNTER, checkpoints, "sombra_checkpoints_total", "Checkpoints completed."),
    FIELD(F_REAL_COUNTER, checkpoint_seconds, "sombra_checkpoint_seconds_total",
          "Seconds spent in checkpoints."),
    FIELD(F_REAL, checkpoint_max_seconds, "sombra_checkpoint_max_seconds",
          "The longest checkpoint, in seconds."),
    FIELD(F_COUNTER, cache_hits, "sombra_cache_hits_total", "Page cache lookups that hit."),
    FIELD(F_COUNTER, cache_misses, "sombra_cache_misses_total", "Page cache lookups that missed."),
    FIELD(F_COUNTER, cache_evictions, "sombra_cache_evictions_total",
          "Pages evicted from the page cache."),
    FIELD(F_REAL, cache_hit_rate, "sombra_cache_hit_ratio", "Page cache hits over lookups."),
    FIELD(F_COUNTER, pages_read, "sombra_pages_read_total", "Pages read from the database file."),
    FIELD(F_COUNTER, pages_written, "sombra_pages_written_total",
          "Pages written to the database file."),
    FIELD(F_COUNTER, bytes_read, "sombra_read_bytes_total", "Bytes of pages read from the file."),
    FIELD(F_COUNTER, bytes_written, "sombra_written_bytes_total",
          "Bytes of pages and write-ahead log written."),
    FIELD(F_GAUGE, ring_depth, "sombra_ring_depth", "Requests waiting for the writer thread."),
    FIELD(F_COUNTER, backpressure_waits, "sombra_backpressure_waits_total",
          "Submissions that found their ring full and waited."),
    FIELD(F_COUNTS, writer_group, "sombra_writer_group_commits",
          "Commits the writer applied between two publishes (quantile 1 is the maximum)."),
    FIELD(F_NANOS, read_latency_ns, "sombra_read_latency_seconds",
          "Read calls, on the caller's thread (quantile 1 is the maximum)."),
    FIELD(F_NANOS, commit_latency_ns, "sombra_commit_latency_seconds",
          "Writes from submission to acknowledgement (quantile 1 is the maximum)."),
    FIELD(F_NANOS, fsync_latency_ns, "sombra_fsync_latency_seconds",
          "Group fdatasyncs: the committer's, and the writer's for a caller alone (quantile 1 is "
          "the maximum)."),
};

#define NFIELDS (sizeof(fields) / sizeof(fields[0]))

/* Text being written into a caller's buffer: counts what would not fit. */
struct out {
        char *buf;
        size_t len;
        size_t pos; /* bytes produced, written or not */
};

__attribute__((format(printf, 2, 3))) static void
out_printf(struct out *o, const char *fmt, ...)
{
        char *dst = o->pos < o->len ? o->buf + o->pos : NULL;
        size_t room = o->pos < o->len ? o->len - o->pos : 0;
        va_list ap;
        int n;

        va_start(ap, fmt);
        n = vsnprintf(dst, room, fmt, ap);
        va_end(ap);
        if (n > 0)
                o->pos += (size_t)n;
}

static int
out_finish(struct out *o, size_t *needed)
{
        if (needed != NULL)
                *needed = o->pos + 1;
        if (o->pos + 1 > o->len)
                return SOMBRA_ETOOBIG;
        return SOMBRA_OK;
}

static uint64_t
field_u64(const struct sombra_metrics *m, const struct field *f)
{
        return *(const uint64_t *)(const void *)((const char *)m + f->off);
}

static double
field_real(const struct sombra_metrics *m, const struct field *f)
{
        return *(const double *)(const void *)((const char *)m + f->off);
}

static const struct sombra_distribution *
field_dist(const struct sombra_metrics *m, const struct field *f)
{
        return (const struct sombra_distribution *)(const void *)((const char *)m + f->off);
}

static void
json_field(struct out *o, const struct sombra_metrics *m, const struct field *f)
{
        const struct sombra_distribution *d;

        switch (f->kind) {
        case F_COUNTER:
        case F_GAUGE:
                out_printf(o, "\"%s\":%llu", f->json, (unsigned long long)field_u64(m, f));
                return;
        case F_REAL:
        case F_REAL_COUNTER:
                out_printf(o, "\"%s\":%.9g", f->json, field_real(m, f));
                return;
        case F_OPS:
                out_printf(o, "\"operations\":{");
                for (int k = 0; k < SOMBRA_OP_KINDS; k++)
                        out_printf(o, "%s\"%s\":%llu", k ? "," : "", sombra_op_name(k),
                                   (unsigned long long)m->ops[k]);
                out_printf(o, "}");
                return;
        case F_NANOS:
        case F_COUNTS:
                d = field_dist(m, f);
                out_printf(o,
                           "\"%s\":{\"count\":%llu,\"sum\":%llu,\"p50\":%llu,\"p90\":%llu,"
                           "\"p99\":%llu,\"p999\":%llu,\"max\":%llu}",
                           f->json, (unsigned long long)d->count, (unsigned long long)d->sum,
                           (unsigned long long)d->p50, (unsigned long long)d->p90,
                           (unsigned long long)d->p99, (unsigned long long)d->p999,
                           (unsigned long long)d->max);
                return;
        }
}

int
metrics_format_json(const struct sombra_metrics *m, char *buf, size_t len, size_t *needed)
{
        struct out o = {buf, len, 0};

        out_printf(&o, "{");
        for (size_t i = 0; i < NFIELDS; i++) {
                if (i > 0)
                        out_printf(&o, ",");
                json_field(&o, m, &fields[i]);
        }
        out_printf(&o, "}\n");
        return out_finish(&o, needed);
}

/* A summary: quantiles, then _sum and _count; quantile 1 carries the exact maximum. */
static void
prom_summary(struct out *o, const char *name, const struct sombra_distribution *d, double scale)
{
        static const char *const q[] = {"0.5", "0.9", "0.99", "0.999", "1"};
        const uint64_t v[] = {d->p50, d->p90, d->p99, d->p999, d->max};

        for (size_t i = 0; i < sizeof(q) / sizeof(q[0]); i++)
                out_printf(o, "%s{quantile=\"%s\"} %.9g\n", name, q[i], (double)v[i] * scale);
        out_printf(o, "%s_sum %.9g\n", name, (double)d->sum * scale);
        out_printf(o, "%s_count %llu\n", name, (unsigned long long)d->count);
}

static void
prom_field(struct out *o, const struct sombra_metrics *m, const struct field *f)
{
        static const char *const types[] = {
            [F_COUNTER] = "counter",      [F_GAUGE] = "gauge", [F_REAL] = "gauge",
            [F_REAL_COUNTER] = "counter", [F_OPS] = "counter", [F_NANOS] = "summary",
            [F_COUNTS] = "summary"};

        out_printf(o, "# HELP %s %s\n# TYPE %s %s\n", f->prom, f->help, f->prom, types[f->kind]);
        switch (f->kind) {
        case F_COUNTER:
        case F_GAUGE:
                out_printf(o, "%s %llu\n", f->prom, (unsigned long long)field_u64(m, f));
                return;
        case F_REAL:
        case F_REAL_COUNTER:
                out_printf(o, "%s %.9g\n", f->prom, field_real(m, f));
                return;
        case F_OPS:
                for (int k = 0; k < SOMBRA_OP_KINDS; k++)
                        out_printf(o, "%s{kind=\"%s\"} %llu\n", f->prom, sombra_op_name(k),
                                   (unsigned long long)m->ops[k]);
                return;
        case F_NANOS:
                prom_summary(o, f->prom, field_dist(m, f), 1e-9);
                return;
        case F_COUNTS:
                prom_summary(o, f->prom, field_dist(m, f), 1.0);
                return;
        }
}

int
metrics_format_prometheus(const struct sombra_metrics *m, char *buf, size_t len, size_t *needed)
{
        struct out o = {buf, len, 0};

        for (size_t i = 0; i < NFIELDS; i++)
                prom_field(&o, m, &fields[i]);
        return out_finish(&o, needed);
}

typedef int (*metrics_format_fn)(const struct sombra_metrics *m, char *buf, size_t len,
                                 size_t *needed);

/*
 * The public exports. A NULL buf is a size query: only with len 0, and only
 * with somewhere to put the answer; out_printf would write through it
 * otherwise.
 */
static int
metrics_text(sombra_db *db, char *buf, size_t len, size_t *needed, metrics_format_fn format)
{
        struct sombra_metrics m;
        int rc;

        if (buf == NULL && (len != 0 || needed == NULL))
                return SOMBRA_EINVAL;
        rc = sombra_metrics(db, &m);
        return rc != SOMBRA_OK ? rc : format(&m, buf, len, needed);
}

int
sombra_metrics_json(sombra_db *db, char *buf, size_t len, size_t *needed)
{
        return metrics_text(db, buf, len, needed, metrics_format_json);
}

int
sombra_metrics_prometheus(sombra_db *db, char *buf, size_t len, size_t *needed)
{
        return metrics_text(db, buf, len, needed, metrics_format_prometheus);
}
