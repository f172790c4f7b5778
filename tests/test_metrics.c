/*
 * test_metrics.c - core/metrics.c and sombra_metrics: histogram arithmetic,
 * the counters after a known workload, and both text exports (the JSON
 * parsed with jansson, the Prometheus text checked against the rules of
 * the exposition format, version 0.0.4).
 */
#include <criterion/criterion.h>
#include <ctype.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "support.h"

static sombra_db *db;

static void
setup(void)
{
        support_dir_make("metrics");
        db = NULL;
}

static void
teardown(void)
{
        support_db_close(&db);
        support_dir_remove();
}

TestSuite(metrics, .init = setup, .fini = teardown, .timeout = 240);

static void
open_with(bool metrics)
{
        struct sombra_config cfg;

        sombra_config_production(&cfg);
        cfg.metrics = metrics;
        cr_assert_eq(sombra_open(support_path("m.sombra"), &cfg, &db), SOMBRA_OK);
}

/* ---- histograms ---- */

Test(metrics, buckets_are_exact_below_sixteen_and_at_most_an_eighth_wide_above)
{
        for (uint64_t v = 0; v < 16; v++)
                cr_assert_eq(hist_bucket_max(hist_bucket(v)), v);
        for (uint64_t v = 16; v < (1ull << 62); v += v / 7 + 1) {
                uint32_t b = hist_bucket(v);
                uint64_t hi = hist_bucket_max(b), lo = hist_bucket_max(b - 1) + 1;
                cr_assert(lo <= v && v <= hi, "%llu not in bucket %u [%llu, %llu]",
                          (unsigned long long)v, b, (unsigned long long)lo, (unsigned long long)hi);
                cr_assert_leq(hi - lo + 1, lo / 8, "bucket %u wider than an eighth", b);
        }
        cr_assert_eq(hist_bucket(UINT64_MAX), HIST_BUCKETS - 1);
        cr_assert_eq(hist_bucket_max(HIST_BUCKETS - 1), UINT64_MAX);
}

/* Within the bucket's width above the true value, never below it. */
static void
expect_near(uint64_t got, uint64_t truth)
{
        cr_assert(got >= truth && got <= truth + truth / 8, "got %llu for %llu",
                  (unsigned long long)got, (unsigned long long)truth);
}

Test(metrics, percentiles_of_known_samples)
{
        static struct hist h;
        struct sombra_distribution d;

        memset(&h, 0, sizeof(h));
        for (uint64_t v = 1000; v >= 1; v--)
                hist_record(&h, v);
        hist_distribution(&h, &d);
        cr_assert_eq(d.count, 1000);
        cr_assert_eq(d.sum, 500500);
        cr_assert_eq(d.max, 1000);
        expect_near(d.p50, 500);
        expect_near(d.p90, 900);
        expect_near(d.p99, 990);
        expect_near(d.p999, 999);
        cr_assert_leq(d.p999, d.max);
}

Test(metrics, one_slow_sample_in_a_thousand_shows_in_p999_and_max_only)
{
        static struct hist h;
        struct sombra_distribution d;

        memset(&h, 0, sizeof(h));
        for (int i = 0; i < 999; i++)
                hist_record(&h, 10);
        hist_record(&h, 1000000);
        hist_distribution(&h, &d);
        cr_assert_eq(d.p50, 10);
        cr_assert_eq(d.p99, 10);
        cr_assert_eq(d.p999, 10);
        cr_assert_eq(d.max, 1000000);
        cr_assert_eq(hist_quantile(&h, 1.0), 1000000);
}

Test(metrics, an_empty_histogram_reports_zeros)
{
        static struct hist h;
        struct sombra_distribution d;

        memset(&h, 0, sizeof(h));
        hist_distribution(&h, &d);
        cr_assert_eq(d.count + d.sum + d.p50 + d.p999 + d.max, 0);
}

Test(metrics, merging_adds_counts_and_keeps_the_larger_max)
{
        static struct hist a, b, into;
        struct sombra_distribution d;

        memset(&a, 0, sizeof(a));
        memset(&b, 0, sizeof(b));
        memset(&into, 0, sizeof(into));
        for (uint64_t v = 1; v <= 10; v++) {
                hist_record(&a, v);
                hist_record(&b, 100 * v);
        }
        hist_merge(&into, &a);
        hist_merge(&into, &b);
        hist_distribution(&into, &d);
        cr_assert_eq(d.count, 20);
        cr_assert_eq(d.sum, 55 + 5500);
        cr_assert_eq(d.max, 1000);
        cr_assert_eq(d.p50, 10);
}

/* ---- counters of a known workload ---- */

static struct sombra_metrics
metrics_now(void)
{
        struct sombra_metrics m;

        cr_assert_eq(sombra_metrics(db, &m), SOMBRA_OK);
        return m;
}

#define N 40

Test(metrics, counters_after_a_known_workload)
{
        const struct sombra_entity *e;
        struct sombra_metrics before, after;
        uint64_t ids[N], edge;
        sombra_conn *c;

        open_with(true);
        c = support_conn_acquire(db);
        before = metrics_now();
        for (int i = 0; i < N; i++)
                ids[i] = support_node_make(c, "Person");
        cr_assert_eq(sombra_edge_create(c, ids[0], ids[1], "KNOWS", NULL, 0, &edge), SOMBRA_OK);
        for (int i = 0; i < N; i++)
                cr_assert_eq(sombra_node_get(c, ids[i], &e), SOMBRA_OK);
        cr_assert_eq(sombra_node_get(c, 1u << 30, &e), SOMBRA_ENOTFOUND);
        cr_assert_eq(sombra_txn_begin(c), SOMBRA_OK);
        cr_assert_eq(sombra_node_delete(c, ids[2]), SOMBRA_OK);
        cr_assert_eq(sombra_txn_rollback(c), SOMBRA_OK);
        cr_assert_eq(sombra_checkpoint(db), SOMBRA_OK);
        after = metrics_now();

        cr_assert_eq(after.commits - before.commits, N + 1);
        cr_assert_geq(after.rollbacks - before.rollbacks, 1);
        cr_assert_eq(after.ops[SOMBRA_OP_NODE_CREATE], N);
        cr_assert_eq(after.ops[SOMBRA_OP_EDGE_CREATE], 1);
        cr_assert_eq(after.ops[SOMBRA_OP_NODE_DELETE], 1, "applied, then rolled back");
        cr_assert_eq(after.ops[SOMBRA_OP_NODE_GET], N + 1, "a read that fails counts too");
        cr_assert_eq(after.read_latency_ns.count, N + 1);
        cr_assert_gt(after.read_latency_ns.max, 0);
        /* FULL: every acknowledged commit waited for a group sync that covered it. */
        cr_assert_eq(after.commit_latency_ns.count, N + 1);
        cr_assert_geq(after.commit_latency_ns.p50, after.fsync_latency_ns.p50 / 2);
        cr_assert_geq(after.fsyncs, 1);
        cr_assert_geq(after.fsync_latency_ns.count, 1);
        cr_assert_eq(after.commits_per_fsync.sum, N + 1);
        cr_assert_leq(after.commits_per_fsync.count, N + 1);
        cr_assert_geq(after.checkpoints - before.checkpoints, 1);
        cr_assert_gt(after.checkpoint_seconds, 0.0);
        cr_assert_geq(after.checkpoint_max_seconds * (double)after.checkpoints,
                      after.checkpoint_seconds - 1e-9);
        cr_assert_gt(after.wal_bytes, before.wal_bytes);
        cr_assert_geq(after.bytes_written, after.wal_bytes);
        cr_assert_gt(after.pages_written, 0);
        cr_assert_eq(after.ring_depth, 0);
        cr_assert_geq(after.writer_group.sum, N + 1);
        cr_assert(after.cache_hit_rate >= 0.0 && after.cache_hit_rate <= 1.0);
        cr_assert_gt(after.commits_per_second, 0.0);
        cr_assert_gt(after.uptime_seconds, before.uptime_seconds);
        cr_assert_eq(sombra_conn_release(c), SOMBRA_OK);
}

Test(metrics, switched_off_they_record_no_latencies_and_no_operations)
{
        const struct sombra_entity *e;
        struct sombra_metrics m;
        sombra_conn *c;
        uint64_t id;

        open_with(false);
        c = support_conn_acquire(db);
        id = support_node_make(c, "Person");
        cr_assert_eq(sombra_node_get(c, id, &e), SOMBRA_OK);
        m = metrics_now();
        cr_assert_eq(m.commits, 1);
        cr_assert_geq(m.fsyncs, 1, "the engine's own counters are kept either way");
        for (int k = 0; k < SOMBRA_OP_KINDS; k++)
                cr_assert_eq(m.ops[k], 0, "%s", sombra_op_name(k));
        cr_assert_eq(m.read_latency_ns.count + m.commit_latency_ns.count +
                         m.fsync_latency_ns.count + m.writer_group.count,
                     0);
        cr_assert_eq(sombra_conn_release(c), SOMBRA_OK);
}

Test(metrics, bad_arguments)
{
        struct sombra_metrics m;
        size_t needed;

        cr_assert_eq(sombra_metrics(NULL, &m), SOMBRA_EINVAL);
        cr_assert_eq(sombra_metrics_json(NULL, NULL, 0, &needed), SOMBRA_EINVAL);
        cr_assert_eq(sombra_metrics_prometheus(NULL, NULL, 0, &needed), SOMBRA_EINVAL);
        open_with(true);
        cr_assert_eq(sombra_metrics(db, NULL), SOMBRA_EINVAL);
        cr_assert_null(sombra_op_name(SOMBRA_OP_KINDS));
}

/* ---- the exports ---- */

Test(metrics, a_null_buffer_is_a_size_query_and_nothing_else)
{
        size_t needed = 0;

        open_with(true);
        cr_assert_eq(sombra_metrics_json(db, NULL, 0, &needed), SOMBRA_ETOOBIG);
        cr_assert_gt(needed, 1);
        needed = 0;
        cr_assert_eq(sombra_metrics_prometheus(db, NULL, 0, &needed), SOMBRA_ETOOBIG);
        cr_assert_gt(needed, 1);
        /* A length with no buffer behind it: nothing may be written. */
        cr_assert_eq(sombra_metrics_json(db, NULL, 4096, &needed), SOMBRA_EINVAL);
        cr_assert_eq(sombra_metrics_prometheus(db, NULL, 4096, &needed), SOMBRA_EINVAL);
        cr_assert_eq(sombra_metrics_json(db, NULL, 1, NULL), SOMBRA_EINVAL);
        /* A size query with nowhere to put the size. */
        cr_assert_eq(sombra_metrics_json(db, NULL, 0, NULL), SOMBRA_EINVAL);
        cr_assert_eq(sombra_metrics_prometheus(db, NULL, 0, NULL), SOMBRA_EINVAL);
        cr_assert_eq(sombra_metrics_json(NULL, NULL, 4096, &needed), SOMBRA_EINVAL);
}

typedef int (*export_fn)(sombra_db *db, char *buf, size_t len, size_t *needed);

/* The export in a buffer of its own (free it), after finding its size with a short one. */
static char *
export_text(export_fn fn)
{
        char small[16];
        size_t needed = 0, again;
        char *buf;

        cr_assert_eq(fn(db, NULL, 0, &needed), SOMBRA_ETOOBIG);
        cr_assert_gt(needed, sizeof(small));
        cr_assert_eq(fn(db, small, sizeof(small), &again), SOMBRA_ETOOBIG);
        cr_assert_eq(strlen(small), sizeof(small) - 1, "a truncated prefix, terminated");
        buf = malloc(needed + 4096); /* numbers may grow between the calls */
        cr_assert_not_null(buf);
        cr_assert_eq(fn(db, buf, needed + 4096, &again), SOMBRA_OK);
        cr_assert_eq(strlen(buf) + 1, again);
        return buf;
}

static void
load_some(void)
{
        const struct sombra_entity *e;
        sombra_conn *c = support_conn_acquire(db);

        for (int i = 0; i < 10; i++)
                cr_assert_eq(sombra_node_get(c, support_node_make(c, "P"), &e), SOMBRA_OK);
        cr_assert_eq(sombra_conn_release(c), SOMBRA_OK);
}

Test(metrics, json_parses_and_names_every_metric)
{
        json_error_t err;
        json_t *root, *lat, *ops;
        char *text;

        open_with(true);
        load_some();
        text = export_text(sombra_metrics_json);
        root = json_loads(text, 0, &err);
        cr_assert_not_null(root, "line %d: %s\n%s", err.line, err.text, text);
        cr_assert(json_is_object(root));
        cr_assert_eq(json_integer_value(json_object_get(root, "commits")), 10);
        ops = json_object_get(root, "operations");
        cr_assert(json_is_object(ops));
        cr_assert_eq(json_object_size(ops), SOMBRA_OP_KINDS);
        cr_assert_eq(json_integer_value(json_object_get(ops, "node_get")), 10);
        lat = json_object_get(root, "read_latency_ns");
        cr_assert(json_is_object(lat));
        cr_assert_eq(json_integer_value(json_object_get(lat, "count")), 10);
        cr_assert_leq(json_integer_value(json_object_get(lat, "p50")),
                      json_integer_value(json_object_get(lat, "max")));
        cr_assert(json_is_number(json_object_get(root, "cache_hit_rate")));
        cr_assert(json_is_number(json_object_get(root, "commits_per_second")));
        cr_assert(json_is_object(json_object_get(root, "commits_per_fsync")));
        json_decref(root);
        free(text);
}

/*
 * The exposition format's rules, as the Prometheus text parser applies
 * them: names match [a-zA-Z_:][a-zA-Z0-9_:]*; a family's HELP and TYPE come
 * once each, before its samples, and its samples are contiguous; a counter's
 * family ends in _total; a summary's samples are the family with a quantile
 * label, _sum and _count; label values are quoted; each sample's value is a
 * float; no series (name and labels) twice.
 */
static bool
valid_name(const char *s, size_t n)
{
        if (n == 0 || !(isalpha((unsigned char)s[0]) || s[0] == '_' || s[0] == ':'))
                return false;
        for (size_t i = 1; i < n; i++)
                if (!(isalnum((unsigned char)s[i]) || s[i] == '_' || s[i] == ':'))
                        return false;
        return true;
}

struct family {
        char name[128];
        char type[16];
        bool help;
};

static bool
sample_belongs(const struct family *f, const char *name, bool has_quantile)
{
        size_t n = strlen(f->name);

        if (strcmp(name, f->name) == 0)
                return strcmp(f->type, "summary") != 0 || has_quantile;
        return strcmp(f->type, "summary") == 0 && strncmp(name, f->name, n) == 0 &&
               (strcmp(name + n, "_sum") == 0 || strcmp(name + n, "_count") == 0);
}

static void
check_sample(const char *line, struct family *fam, char (*series)[192], size_t *nseries)
{
        const char *p = line, *brace;
        char name[128], *end;
        size_t n;

        while (*p && *p != ' ' && *p != '{')
                p++;
        n = (size_t)(p - line);
        cr_assert(valid_name(line, n) && n < sizeof(name), "bad metric name: %s", line);
        memcpy(name, line, n);
        name[n] = '\0';
        brace = *p == '{' ? p : NULL;
        if (brace != NULL) {
                /* label="value"(,label="value")* } */
                p++;
                for (;;) {
                        const char *l = p;
                        while (*p && *p != '=')
                                p++;
                        cr_assert(valid_name(l, (size_t)(p - l)), "bad label: %s", line);
                        cr_assert(p[0] == '=' && p[1] == '"', "unquoted label value: %s", line);
                        p += 2;
                        while (*p && *p != '"')
                                p += *p == '\\' ? 2 : 1;
                        cr_assert_eq(*p, '"', "unterminated label value: %s", line);
                        p++;
                        if (*p == ',') {
                                p++;
                                continue;
                        }
                        cr_assert_eq(*p, '}', "bad label list: %s", line);
                        p++;
                        break;
                }
        }
        cr_assert(fam->name[0] && fam->help, "sample before its HELP and TYPE: %s", line);
        cr_assert(sample_belongs(fam, name, brace && strstr(brace, "quantile=\"") != NULL),
                  "sample %s outside its family %s (%s)", line, fam->name, fam->type);
        cr_assert_eq(*p, ' ', "no space before the value: %s", line);
        strtod(p + 1, &end);
        cr_assert(end != p + 1 && *end == '\0', "value is not a float: %s", line);
        /* The series: the line up to the value. */
        n = (size_t)(p - line);
        cr_assert_lt(n, 192);
        for (size_t i = 0; i < *nseries; i++)
                cr_assert(strncmp(series[i], line, n) != 0 || series[i][n] != '\0',
                          "duplicate series: %s", line);
        memcpy(series[*nseries], line, n);
        series[(*nseries)++][n] = '\0';
}

static void
check_comment(const char *line, struct family *fam, char (*seen)[128], size_t *nseen)
{
        char kind[8], name[128], rest[256];

        if (sscanf(line, "# %7s %127s %255[^\n]", kind, name, rest) != 3)
                return; /* a plain comment */
        if (strcmp(kind, "HELP") != 0 && strcmp(kind, "TYPE") != 0)
                return;
        cr_assert(valid_name(name, strlen(name)), "bad name: %s", line);
        cr_assert(strncmp(name, "sombra_", 7) == 0, "not a sombra_ metric: %s", line);
        if (strcmp(name, fam->name) != 0) {
                for (size_t i = 0; i < *nseen; i++)
                        cr_assert_str_neq(seen[i], name, "family %s comes twice", name);
                strcpy(seen[(*nseen)++], name);
                memset(fam, 0, sizeof(*fam));
                strcpy(fam->name, name);
        }
        if (strcmp(kind, "HELP") == 0) {
                cr_assert(!fam->help, "second HELP: %s", line);
                fam->help = true;
                return;
        }
        cr_assert_eq(fam->type[0], '\0', "second TYPE: %s", line);
        cr_assert(strcmp(rest, "counter") == 0 || strcmp(rest, "gauge") == 0 ||
                      strcmp(rest, "summary") == 0 || strcmp(rest, "histogram") == 0 ||
                      strcmp(rest, "untyped") == 0,
                  "bad type: %s", line);
        strcpy(fam->type, rest);
        if (strcmp(rest, "counter") == 0)
                cr_assert(strlen(name) > 6 && strcmp(name + strlen(name) - 6, "_total") == 0,
                          "counter without _total: %s", name);
}

Test(metrics, prometheus_text_follows_the_exposition_format)
{
        static char seen[128][128], series[512][192];
        size_t nseen = 0, nseries = 0, nlines = 0;
        struct family fam = {0};
        char *text, *line, *save;

        open_with(true);
        load_some();
        text = export_text(sombra_metrics_prometheus);
        cr_assert_eq(text[strlen(text) - 1], '\n', "the last line ends with a line feed");
        for (line = strtok_r(text, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
                nlines++;
                if (line[0] == '#')
                        check_comment(line, &fam, seen, &nseen);
                else
                        check_sample(line, &fam, series, &nseries);
        }
        cr_assert_gt(nseen, 20);
        cr_assert_gt(nlines, 3 * nseen);
        free(text);
        text = export_text(sombra_metrics_prometheus);
        cr_assert_not_null(strstr(text, "\nsombra_commits_total 10\n"), "%s", text);
        cr_assert_not_null(strstr(text, "\nsombra_operations_total{kind=\"node_get\"} 10\n"));
        cr_assert_not_null(strstr(text, "\nsombra_read_latency_seconds_count 10\n"));
        free(text);
}
