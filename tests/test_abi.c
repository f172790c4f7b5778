/*
 * test_abi.c - the promises that let a program built against one version of
 * sombra.h run with another library: sombra_version() against the header's
 * macros, and the sizes of the caller-allocated structs (struct
 * sombra_config, sombra_stats, sombra_metrics): the library writes exactly
 * the caller's bytes and refuses sizes too small for the first layout.
 * (What the shared library exports is tests/abi_test.py's.)
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "support.h"

/* Bytes after a struct that the library must leave alone. */
#define GUARD 64
#define FILL  0xa5

static sombra_db *db;

static void
setup(void)
{
        support_dir_make("abi");
        db = NULL;
}

static void
teardown(void)
{
        support_db_close(&db);
        support_dir_remove();
}

TestSuite(abi, .init = setup, .fini = teardown, .timeout = 60);

/* A caller's buffer: a struct of up to ROOM bytes and the guard after it, all FILL. */
#define ROOM 4096
union caller_buf {
        uint8_t bytes[ROOM + GUARD];
        struct sombra_config config;
        struct sombra_stats stats;
        struct sombra_metrics metrics;
};

static void
fill(union caller_buf *b)
{
        memset(b->bytes, FILL, sizeof(b->bytes));
}

/* Whether bytes [from, to) of b are still FILL. */
static bool
untouched(const union caller_buf *b, size_t from, size_t to)
{
        for (size_t i = from; i < to; i++)
                if (b->bytes[i] != FILL)
                        return false;
        return true;
}

Test(abi, sombra_version_is_the_headers_version)
{
        char composed[32];

        snprintf(composed, sizeof(composed), "%d.%d.%d", SOMBRA_VERSION_MAJOR, SOMBRA_VERSION_MINOR,
                 SOMBRA_VERSION_PATCH);
        cr_expect_str_eq(sombra_version(), SOMBRA_VERSION_STRING);
        cr_expect_str_eq(composed, SOMBRA_VERSION_STRING);
}

Test(abi, an_older_stats_gets_only_its_own_bytes)
{
        union caller_buf b;
        sombra_conn *c;

        cr_assert_leq(sizeof(struct sombra_stats), ROOM);
        cr_assert_lt(SOMBRA_STATS_SIZE_MIN, sizeof(struct sombra_stats));
        cr_assert_eq(sombra_open(support_path("db"), NULL, &db), SOMBRA_OK);
        c = support_conn_acquire(db);
        support_node_make(c, "L");
        fill(&b);
        cr_assert_eq(sombra_stats_sized(db, &b.stats, SOMBRA_STATS_SIZE_MIN), SOMBRA_OK);
        cr_expect_eq(b.stats.nodes, 1);
        cr_expect_eq(b.stats.page_size, SOMBRA_DEFAULT_PAGESIZE);
        cr_expect(untouched(&b, SOMBRA_STATS_SIZE_MIN, sizeof(b.bytes)),
                  "the library wrote past the caller's struct");
        /* The current layout gets the newer field too. */
        fill(&b);
        cr_assert_eq(sombra_stats(db, &b.stats), SOMBRA_OK);
        cr_expect_eq(b.stats.acquired, 1);
        cr_expect(untouched(&b, sizeof(struct sombra_stats), sizeof(b.bytes)));
        cr_assert_eq(sombra_conn_release(c), SOMBRA_OK);
}

Test(abi, a_newer_caller_gets_zeros_past_the_fields_the_library_knows)
{
        size_t size = sizeof(struct sombra_metrics) + 16;
        union caller_buf b;

        cr_assert_leq(size, ROOM);
        cr_assert_eq(sombra_open(support_path("db"), NULL, &db), SOMBRA_OK);
        fill(&b);
        cr_assert_eq(sombra_metrics_sized(db, &b.metrics, size), SOMBRA_OK);
        for (size_t i = sizeof(struct sombra_metrics); i < size; i++)
                cr_expect_eq(b.bytes[i], 0, "byte %zu of a newer caller's metrics", i);
        cr_expect(untouched(&b, size, sizeof(b.bytes)));
        fill(&b);
        cr_assert_eq(sombra_metrics(db, &b.metrics), SOMBRA_OK);
        cr_expect(untouched(&b, sizeof(struct sombra_metrics), sizeof(b.bytes)));
}

Test(abi, sizes_below_the_first_layout_are_refused_and_nothing_is_written)
{
        union caller_buf b;

        cr_assert_eq(sombra_open(support_path("db"), NULL, &db), SOMBRA_OK);
        fill(&b);
        cr_expect_eq(sombra_stats_sized(db, &b.stats, SOMBRA_STATS_SIZE_MIN - 1), SOMBRA_EINVAL);
        cr_expect_eq(sombra_metrics_sized(db, &b.metrics, SOMBRA_METRICS_SIZE_MIN - 1),
                     SOMBRA_EINVAL);
        cr_expect_eq(sombra_config_production_sized(&b.config, SOMBRA_CONFIG_SIZE_MIN - 1),
                     SOMBRA_EINVAL);
        cr_expect_eq(sombra_config_balanced_sized(&b.config, 0), SOMBRA_EINVAL);
        cr_expect_eq(sombra_config_benchmark_sized(&b.config, 4), SOMBRA_EINVAL);
        cr_expect(untouched(&b, 0, sizeof(b.bytes)));
}

Test(abi, presets_write_the_callers_size_and_open_reads_no_more)
{
        union caller_buf b;
        sombra_db *other;

        fill(&b);
        cr_assert_eq(sombra_config_balanced_sized(&b.config, SOMBRA_CONFIG_SIZE_MIN), SOMBRA_OK);
        cr_expect_eq(b.config.size, SOMBRA_CONFIG_SIZE_MIN);
        cr_expect_eq(b.config.sync_mode, SOMBRA_SYNC_NORMAL);
        cr_expect(untouched(&b, SOMBRA_CONFIG_SIZE_MIN, sizeof(b.bytes)));
        /* Bytes past the caller's size are not the library's to read. */
        cr_assert_eq(sombra_open(support_path("db"), &b.config, &db), SOMBRA_OK);
        /*
         * A newer header's fields, which this library does not know, are
         * ignored. (Such a caller has set the fields this one knows.)
         */
        b.config.read_only = false;
        b.config.size = sizeof(struct sombra_config) + 16;
        cr_expect_eq(sombra_open(support_path("db2"), &b.config, &other), SOMBRA_OK);
        cr_expect_eq(sombra_close(other), SOMBRA_OK);
}

Test(abi, a_config_without_its_size_is_refused)
{
        struct sombra_config cfg;

        sombra_config_production(&cfg);
        cr_expect_eq(cfg.size, sizeof(cfg));
        cfg.size = 0;
        cr_expect_eq(sombra_open(support_path("db"), &cfg, &db), SOMBRA_EINVAL);
        cfg.size = SOMBRA_CONFIG_SIZE_MIN - 1;
        cr_expect_eq(sombra_open(support_path("db"), &cfg, &db), SOMBRA_EINVAL);
        cr_expect(!support_file_exists("db"));
        db = NULL;
}
