/*
 * test_concurrency.c - snapshot readers on their own threads while the writer
 * commits, deletes and checkpoints (the scenario of stress.h). The same
 * scenario runs under ThreadSanitizer from tsan_stress.c.
 */
#include <criterion/criterion.h>

#include "graph.h"
#include "stress.h"
#include "support.h"

static void
setup(void)
{
        support_dir_make("conc");
}

TestSuite(concurrency, .init = setup, .fini = support_dir_remove, .timeout = 300);

static void
expect_clean_run(const struct sombra_config *cfg, int64_t txns)
{
        struct stress_result res;

        stress_readers_vs_writer(support_path("c.sombra"), cfg, txns, 4, &res);
        cr_assert_eq(res.status, SOMBRA_OK, "%s", res.problem);
        cr_assert_eq(res.failures, 0, "%d of %lu read transactions saw a broken state",
                     res.failures, (unsigned long)res.reads);
        cr_assert_gt(res.reads, 0);
}

Test(concurrency, readers_see_whole_commits_while_the_writer_runs)
{
        struct sombra_config cfg;

        sombra_config_benchmark(&cfg);
        cfg.checksums = true;
        expect_clean_run(&cfg, 3000);
}

Test(concurrency, readers_survive_checkpoints_and_a_small_cache)
{
        struct sombra_config cfg;

        sombra_config_benchmark(&cfg);
        cfg.checkpoint_threshold = 64u << 10; /* many checkpoints: pages move to the free list */
        cfg.page_cache_size = SOMBRA_MIN_CACHE_PAGES;
        expect_clean_run(&cfg, 2000);
}

Test(concurrency, too_many_readers_get_ebusy_not_a_crash)
{
        struct sombra_config cfg;
        struct graph *g;
        struct graph_reader *r[64];
        size_t n = 0;
        int rc;

        sombra_config_benchmark(&cfg);
        cfg.max_connections = 2;
        cr_assert_eq(graph_open(support_path("c.sombra"), &cfg, NULL, &g), SOMBRA_OK);
        while ((rc = graph_reader_open(g, &r[n])) == SOMBRA_OK && n < 63)
                n++;
        cr_assert_eq(rc, SOMBRA_EBUSY);
        cr_assert_eq(n, 2 + 8);
        while (n > 0)
                graph_reader_close(r[--n]);
        cr_assert_eq(graph_reader_open(g, &r[0]), SOMBRA_OK);
        graph_reader_close(r[0]);
        cr_assert_eq(graph_close(g), SOMBRA_OK);
}
