/*
 * abi_host.c - a host program of the shared library, built the way a user
 * builds one: sombra.h only, linked against libsombra.so. It defines io_sync,
 * the name of libsombra's internal fdatasync (core/io.c). Were the library's
 * internal names exported, the dynamic linker would bind the library's own
 * calls to this one and FULL commits would be acknowledged with no sync at
 * all. Run by abi_test.py with a directory to work in; prints one line per
 * check and exits non-zero on any failure.
 */
#include <stdio.h>
#include <string.h>

#include <sombra.h>

#define COMMITS 100

int io_sync(void *file);

static unsigned host_syncs; /* calls that reached this io_sync */

int
io_sync(void *file)
{
        (void)file;
        host_syncs++;
        return 0;
}

static int
check(int ok, const char *what)
{
        printf("%s %s\n", ok ? "PASS" : "FAIL", what);
        return ok;
}

/* COMMITS FULL commits, then the library's count of the WAL syncs behind them in *syncs. */
static int
full_commits(const char *path, uint64_t *syncs)
{
        struct sombra_stats st;
        sombra_db *db;
        sombra_conn *c;
        int rc = sombra_open(path, NULL, &db);

        if (rc != SOMBRA_OK)
                return rc;
        rc = sombra_conn_acquire(db, &c);
        for (int i = 0; rc == SOMBRA_OK && i < COMMITS; i++)
                rc = sombra_node_create(c, NULL, 0, NULL, 0, NULL);
        if (rc == SOMBRA_OK)
                rc = sombra_conn_release(c);
        if (rc == SOMBRA_OK)
                rc = sombra_stats(db, &st);
        if (rc == SOMBRA_OK)
                *syncs = st.wal_syncs;
        if (sombra_close(db) != SOMBRA_OK && rc == SOMBRA_OK)
                rc = SOMBRA_EIO;
        return rc;
}

int
main(int argc, char **argv)
{
        char path[4096];
        uint64_t syncs = 0;
        int rc, ok = 1;

        if (argc != 2) {
                fprintf(stderr, "usage: abi_host DIRECTORY\n");
                return 2;
        }
        snprintf(path, sizeof(path), "%s/host.sombra", argv[1]);
        ok &= check(strcmp(sombra_version(), SOMBRA_VERSION_STRING) == 0,
                    "the library's sombra_version() is the header's SOMBRA_VERSION_STRING");
        rc = full_commits(path, &syncs);
        ok &= check(rc == SOMBRA_OK, "100 FULL commits through libsombra.so");
        ok &= check(host_syncs == 0, "the host's io_sync was never called by the library");
        ok &= check(syncs > 0, "the library synced the WAL for them");
        return ok ? 0 : 1;
}
