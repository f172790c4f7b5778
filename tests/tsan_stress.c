/*
 * tsan_stress.c - the concurrency scenarios as a plain program, for the
 * ThreadSanitizer build (Criterion's runner does not start under TSan).
 * Prints one line per scenario and "N passed, N failed"; exits non-zero on
 * any failure. TSan itself aborts the run on a data race (halt_on_error).
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "stress.h"

static int
scenario(const char *name, const struct sombra_config *cfg, int64_t txns)
{
        char dir[] = "/tmp/sombra-tsan-XXXXXX", path[64], wal[80];
        struct stress_result res;
        bool ok;

        if (mkdtemp(dir) == NULL)
                return 0;
        snprintf(path, sizeof(path), "%s/t.sombra", dir);
        snprintf(wal, sizeof(wal), "%s-wal", path);
        stress_readers_vs_writer(path, cfg, txns, 4, &res);
        ok = res.status == SOMBRA_OK && res.failures == 0 && res.reads > 0;
        printf("%s %s: %lu read transactions, %d broken%s%s\n", ok ? "PASS" : "FAIL", name,
               (unsigned long)res.reads, res.failures, res.status ? ", " : "", res.problem);
        unlink(path);
        unlink(wal);
        rmdir(dir);
        return ok;
}

/* The public API from 16 threads in FULL mode: the writer, the committer, readers. */
static int
engine_scenario(void)
{
        char dir[] = "/tmp/sombra-tsan-XXXXXX", path[64], wal[80];
        struct engine_stress_result res;
        sombra_db *db;
        bool ok = false;

        if (mkdtemp(dir) == NULL)
                return 0;
        snprintf(path, sizeof(path), "%s/e.sombra", dir);
        snprintf(wal, sizeof(wal), "%s-wal", path);
        if (sombra_open(path, NULL, &db) == SOMBRA_OK) {
                engine_stress(db, 16, 1500, &res);
                ok = res.failures == 0 && res.writes > 0;
                ok = sombra_close(db) == SOMBRA_OK && ok;
                printf("%s engine_16_threads_full: %lu reads, %lu writes%s%s\n",
                       ok ? "PASS" : "FAIL", (unsigned long)res.reads, (unsigned long)res.writes,
                       res.failures ? ", " : "", res.problem);
        }
        unlink(path);
        unlink(wal);
        rmdir(dir);
        return ok;
}

struct stress_job {
        sombra_db *db;
        struct engine_stress_result res;
};

static void *
stress_job_main(void *arg)
{
        struct stress_job *job = arg;

        engine_stress(job->db, 8, 1000, &job->res);
        return NULL;
}

/* Whether the file at path opens and verifies; removes it and its WAL after. */
static bool
copy_healthy(const char *path)
{
        char wal[96];
        sombra_db *db;
        bool ok = false;

        if (sombra_open(path, NULL, &db) == SOMBRA_OK) {
                ok = sombra_verify(db, NULL, 0) == SOMBRA_OK;
                ok = sombra_close(db) == SOMBRA_OK && ok;
        }
        snprintf(wal, sizeof(wal), "%s-wal", path);
        unlink(path);
        unlink(wal);
        return ok;
}

/* sombra_backup three times while 8 threads write and read: every copy is healthy. */
static int
backup_scenario(void)
{
        char dir[] = "/tmp/sombra-tsan-XXXXXX", path[64], wal[80], copy[80];
        struct stress_job job = {0};
        pthread_t tid;
        int copies = 0;
        bool ok = false;

        if (mkdtemp(dir) == NULL)
                return 0;
        snprintf(path, sizeof(path), "%s/b.sombra", dir);
        snprintf(wal, sizeof(wal), "%s-wal", path);
        if (sombra_open(path, NULL, &job.db) == SOMBRA_OK &&
            pthread_create(&tid, NULL, stress_job_main, &job) == 0) {
                for (int k = 0; k < 3; k++) {
                        struct timespec pause = {0, 200 * 1000000};
                        nanosleep(&pause, NULL);
                        snprintf(copy, sizeof(copy), "%s/copy%d.sombra", dir, k);
                        copies += sombra_backup(job.db, copy) == SOMBRA_OK && copy_healthy(copy);
                }
                pthread_join(tid, NULL);
                ok = copies == 3 && job.res.failures == 0 && job.res.writes > 0;
        }
        ok = job.db != NULL && sombra_close(job.db) == SOMBRA_OK && ok;
        printf("%s backup_under_8_threads: %d healthy copies, %lu writes meanwhile%s%s\n",
               ok ? "PASS" : "FAIL", copies, (unsigned long)job.res.writes,
               job.res.failures ? ", " : "", job.res.problem);
        unlink(path);
        unlink(wal);
        rmdir(dir);
        return ok;
}

int
main(void)
{
        struct sombra_config cfg;
        int passed = 0, total = 0;

        sombra_config_benchmark(&cfg);
        cfg.checksums = true;
        passed += scenario("readers_vs_writer", &cfg, 1500);
        total++;
        cfg.checkpoint_threshold = 64u << 10;
        cfg.page_cache_size = SOMBRA_MIN_CACHE_PAGES;
        passed += scenario("readers_vs_writer_checkpoints_small_cache", &cfg, 1000);
        total++;
        passed += engine_scenario();
        total++;
        passed += backup_scenario();
        total++;
        printf("tsan: %d passed, %d failed\n", passed, total - passed);
        return passed == total ? 0 : 1;
}
